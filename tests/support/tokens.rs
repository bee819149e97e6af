//! JWTs for tests, signed with the HS256 secret of [`AUTH_TOML`].
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The HMAC secret the test configurations trust.
pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
/// Issuer and audience the test configurations require.
pub const ISSUER: &str = "https://idp.test";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "mcp-warden";

/// `[auth]` section trusting [`SECRET`].
pub const AUTH_TOML: &str = r#"
[auth.jwt]
issuer = "https://idp.test"
audience = ["mcp-warden"]
algorithms = ["HS256"]
leeway = "5s"
[[auth.jwt.keys]]
alg = "HS256"
secret = "test-secret-0123456789-abcdefghijklmnop"
"#;

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sign arbitrary claims with [`SECRET`].
pub fn sign(claims: &Value) -> String {
    sign_with(claims, SECRET)
}

/// Sign arbitrary claims with another secret.
pub fn sign_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid token for `sub` with `roles` and `scope`, for an hour.
pub fn token(sub: &str, roles: &[&str], scope: &str) -> String {
    sign(&claims(sub, roles, scope))
}

/// The claims [`token`] signs, to tweak.
pub fn claims(sub: &str, roles: &[&str], scope: &str) -> Value {
    json!({
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 3600,
        "iat": now(),
        "roles": roles,
        "scope": scope,
        "azp": "test-agent",
    })
}
