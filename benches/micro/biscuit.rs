//! Biscuit: verifying a bearer token (`Authenticator::authenticate`), authorizing one
//! `tools/call` with it (`BiscuitEngine::decide` over `policies/biscuit-example`), and
//! the two together with the verified-token cache warm.
//!
//! Why: a Biscuit caller pays signature verification (one Ed25519 verification per
//! block) and a Datalog evaluation (the authorizer, the request facts and every block's
//! checks) per request. The proxy caches verified tokens by their text
//! (`[auth.biscuit] cache_size`), so a session pays the signatures once; what remains
//! per request is the cache lookup, the revocation and expiry checks, and authorization.
//!
//! Tokens: a 1-block token (the authority block: user, roles, scope, rights, a 1 h TTL)
//! and a 3-block token (that authority plus two attenuations: one narrowing it to two
//! tools, one adding a 10 min TTL), minted with the crate's own `token mint`/`attenuate`
//! functions.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use biscuit_auth::KeyPair;
use criterion::{BenchmarkId, Criterion};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use mcp_warden::auth::{AuthConfig, Authenticator};
use mcp_warden::biscuit::default_limits;
use mcp_warden::biscuit::keys::public_key_text;
use mcp_warden::biscuit::tools::{attenuate, mint, BlockSpec};
use mcp_warden::mcp::McpAction;
use mcp_warden::policy::biscuit::load_datalog_dir;
use mcp_warden::policy::{AuthzRequest, BiscuitEngine, PolicyEngine};
use serde_json::json;

use crate::cedar::{env, object};

/// The 1-block and 3-block tokens, by bench name.
fn tokens(keys: &KeyPair) -> [(&'static str, String); 2] {
    let now = SystemTime::now();
    let authority = BlockSpec {
        facts: [
            r#"user("alice")"#,
            r#"agent("scheduler-bot")"#,
            r#"role("staff")"#,
            r#"scope("mcp:tools")"#,
            r#"right("tool", "echo")"#,
            r#"right("weather")"#,
        ]
        .map(str::to_owned)
        .to_vec(),
        ttl: Some(Duration::from_secs(3_600)),
        ..BlockSpec::default()
    };
    let one = mint(&keys.private(), Some(1), &authority, now).expect("mint");
    let narrowed = BlockSpec {
        checks: vec![r#"check if tool($t), ["get_weather", "echo"].contains($t)"#.to_owned()],
        ..BlockSpec::default()
    };
    let short = BlockSpec {
        ttl: Some(Duration::from_secs(600)),
        ..BlockSpec::default()
    };
    let three = attenuate(&one, &narrowed, now)
        .and_then(|t| attenuate(&t, &short, now))
        .expect("attenuate");
    [("1_block", one), ("3_blocks", three)]
}

/// An authenticator that accepts Biscuits signed by `keys` (root key id 1).
fn authenticator(keys: &KeyPair, cache_size: usize) -> Authenticator {
    let text = format!(
        "[biscuit]\ncache_size = {cache_size}\n[[biscuit.keys]]\nid = 1\npublic_key = \"{}\"\n",
        public_key_text(&keys.public())
    );
    let cfg: AuthConfig = toml::from_str(&text).expect("auth config");
    Authenticator::from_config(&cfg, Path::new(".")).expect("authenticator")
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii");
    headers.insert(AUTHORIZATION, value);
    headers
}

/// Registers the `biscuit/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let keys = KeyPair::new();
    let uncached = authenticator(&keys, 0);
    let cached = authenticator(&keys, 10_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/biscuit-example");
    let program = load_datalog_dir(&dir, &HashMap::new()).expect("example authorizer");
    let engine = BiscuitEngine::new(program, 1, default_limits());
    let env = env();
    let call = McpAction::CallTool {
        name: "get_weather".to_owned(),
        arguments: json!({"city": "Paris", "units": "metric", "days": 3}),
    };
    let hints = object(json!({
        "title": "Weather forecast",
        "readOnlyHint": true,
        "openWorldHint": true,
    }));

    let mut group = c.benchmark_group("biscuit");
    for (name, token) in tokens(&keys) {
        let headers = bearer(&token);
        let identity = uncached.authenticate(&headers).expect("token verifies");
        let request = AuthzRequest {
            identity: &identity,
            action: &call,
            annotations: Some(&hints),
            definition: Default::default(),
            env: &env,
        };
        let d = engine.decide(&request);
        assert!(d.allow, "{name}: {d:?}");

        // Decode, verify every block's signature, read the identity facts, check
        // revocation and expiry: what a cache miss costs.
        group.bench_with_input(
            BenchmarkId::new("verify_uncached", name),
            &headers,
            |b, h| b.iter(|| uncached.authenticate(black_box(h)).expect("verifies")),
        );
        // Authorization alone, with an already verified token.
        group.bench_with_input(BenchmarkId::new("authorize", name), &request, |b, r| {
            b.iter(|| engine.decide(black_box(r)))
        });
        // The per-request path of a session: cache hit (hash of the token text, LRU
        // lookup, revocation and expiry checks), then authorization.
        cached.authenticate(&headers).expect("warms the cache");
        group.bench_with_input(BenchmarkId::new("verify_cached", name), &headers, |b, h| {
            b.iter(|| cached.authenticate(black_box(h)).expect("verifies"))
        });
        group.bench_with_input(
            BenchmarkId::new("cached_verify_authorize", name),
            &headers,
            |b, h| {
                b.iter(|| {
                    let identity = cached.authenticate(black_box(h)).expect("verifies");
                    engine.decide(&AuthzRequest {
                        identity: &identity,
                        action: black_box(&call),
                        annotations: Some(&hints),
                        definition: Default::default(),
                        env: &env,
                    })
                })
            },
        );
    }
    group.finish();
}
