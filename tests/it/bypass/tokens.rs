//! Credentials that must be refused with 401 and a challenge: missing, expired, tampered,
//! wrongly signed, unsigned, foreign issuer or audience, unknown API key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use super::{call, claims, setup, token, UNAUTHENTICATED};
use crate::support::http::{client, send};
use crate::support::tokens::{now, sign_with, SECRET};

#[tokio::test(flavor = "multi_thread")]
async fn missing_credential_is_401_with_a_bearer_challenge() {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("content-type", "application/json")
            .header("x-mcp-user", "alice")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    s.assert_nothing_forwarded();
}

/// A refused bearer token: 401, `error="invalid_token"`, nothing forwarded.
async fn assert_invalid_token(token: &str) {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        !challenge.contains(token),
        "the token was echoed: {challenge}"
    );
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_401() {
    let mut c = claims("alice");
    c["exp"] = json!(now() - 600);
    c["iat"] = json!(now() - 4200);
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_token_is_401() {
    // Flip one payload character to another base64url character: still decodable, no
    // longer the signed bytes.
    let good = token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload = parts[1].as_bytes().to_vec();
    let at = payload.len() / 2;
    payload[at] = if payload[at] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(payload).unwrap(),
        parts[2]
    );
    assert_ne!(tampered, good);
    assert_invalid_token(&tampered).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_signed_with_another_key_is_401() {
    assert_invalid_token(&sign_with(
        &claims("alice"),
        "another-secret-that-is-32-bytes-long!!",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_alg_none_token_is_401() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    assert_invalid_token(&format!("{header}.{payload}.")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_from_another_issuer_is_401() {
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_another_audience_is_401() {
    let mut c = claims("alice");
    c["aud"] = json!("another-service");
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_api_key_is_401() {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("x-api-key", "bypass-test-api-key-0123456788")
            .header("content-type", "application/json")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    s.assert_nothing_forwarded();
}
