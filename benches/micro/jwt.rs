//! JWT verification through the proxy's own path: `Authenticator::authenticate` with an
//! `[auth.jwt]` configuration holding an HS256 secret, an RS256 key and an ES256 key
//! (the throw-away keys of `src/auth/testdata`), issuer and audience checked.
//!
//! Why: every JWT request pays it. `verify_uncached` (the cache of verified tokens off,
//! as on a session's first request) covers the header checks, key selection by `kid` and
//! `alg`, the signature, the claim checks and mapping the claims to an `Identity`, so the
//! difference between algorithms is the signature verification itself (RSA-2048 and
//! P-256). `verify_cached` is every later request of a session: the token's digest, the
//! cache lookup, the `exp`/`nbf` check and a copy of the identity.

use std::hint::black_box;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mcp_warden::auth::{AuthConfig, Authenticator};
use serde_json::json;

const CONFIG: &str = r#"
[jwt]
issuer = "https://idp.example"
audience = ["mcp-warden"]
algorithms = ["HS256", "RS256", "ES256"]

[[jwt.keys]]
kid = "hs"
alg = "HS256"
secret = "bench-secret-bench-secret-bench-secret-0123"

[[jwt.keys]]
kid = "rs"
alg = "RS256"
public_key_file = "rsa_public.pem"

[[jwt.keys]]
kid = "es"
alg = "ES256"
public_key_file = "ec_public.pem"
"#;

fn testdata() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth/testdata")
}

/// A realistic access token signed with `alg` under key id `kid`.
fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "iss": "https://idp.example",
        "aud": "mcp-warden",
        "sub": "alice",
        "azp": "scheduler-bot",
        "iat": now,
        "exp": now + 3_600,
        "jti": "8a6f3e0c-4b1d-4d2e-9c7a-2f5b1e9d0a11",
        "scope": "openid mcp:tools mcp:resources",
        "roles": ["staff", "scheduler"],
        "email": "alice@example.com",
        "department": "cardiology",
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, key).expect("sign")
}

/// Registers the `jwt/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let cfg: AuthConfig = toml::from_str(CONFIG).expect("auth config");
    let auth = Authenticator::from_config(&cfg, &testdata()).expect("authenticator");
    let read = |file: &str| std::fs::read(testdata().join(file)).expect("test key");
    let cases = [
        (
            "HS256",
            token(
                Algorithm::HS256,
                "hs",
                &EncodingKey::from_secret(b"bench-secret-bench-secret-bench-secret-0123"),
            ),
        ),
        (
            "RS256",
            token(
                Algorithm::RS256,
                "rs",
                &EncodingKey::from_rsa_pem(&read("rsa_private.pem")).expect("rsa key"),
            ),
        ),
        (
            "ES256",
            token(
                Algorithm::ES256,
                "es",
                &EncodingKey::from_ec_pem(&read("ec_private.pem")).expect("ec key"),
            ),
        ),
    ];

    // The same configuration with the cache of verified tokens off: every request pays
    // the signature check (a session's first request, or `cache_size = 0`).
    let uncached: AuthConfig =
        toml::from_str(&CONFIG.replace("[jwt]\n", "[jwt]\ncache_size = 0\n")).expect("auth config");
    let uncached = Authenticator::from_config(&uncached, &testdata()).expect("authenticator");

    let mut group = c.benchmark_group("jwt");
    for (alg, token) in cases {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii");
        headers.insert(AUTHORIZATION, value);
        let identity = auth.authenticate(&headers).expect("token verifies");
        assert_eq!(identity.subject, "alice");
        assert_eq!(
            uncached.authenticate(&headers).expect("verifies").subject,
            "alice"
        );
        group.bench_with_input(
            BenchmarkId::new("verify_uncached", alg),
            &headers,
            |b, h| b.iter(|| uncached.authenticate(black_box(h)).expect("verifies")),
        );
        group.bench_with_input(BenchmarkId::new("verify_cached", alg), &headers, |b, h| {
            b.iter(|| auth.authenticate(black_box(h)).expect("verifies"))
        });
    }
    group.finish();
}
