//! Tests of JWT verification, one per property the module promises.

use std::path::Path;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::auth::config::JwtKeyConfig;
use crate::auth::keys::tests::{public_jwk, read_testdata, testdata};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "mcp-warden";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Valid claims: sub, iss, aud, exp in an hour.
fn claims() -> Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600})
}

fn encoding_key(alg: Algorithm, private: &str) -> EncodingKey {
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&read_testdata(private)).expect("rsa"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read_testdata(private)).expect("ec"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read_testdata(private)).expect("ed"),
        _ => panic!("not used in tests"),
    }
}

fn private_pem(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "rsa_private.pem",
        Algorithm::ES256 => "ec_private.pem",
        Algorithm::EdDSA => "ed_private.pem",
        _ => "",
    }
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("sign")
}

/// A token signed by the test key of `alg`, with `kid` = the alg name.
fn sign(alg: Algorithm, claims: &Value) -> String {
    let name = alg_name(alg);
    sign_with(
        alg,
        Some(name),
        claims,
        &encoding_key(alg, private_pem(alg)),
    )
}

/// One inline key per tested algorithm, `kid` = alg name.
fn config() -> JwtConfig {
    let key = |alg: &str, file: Option<&str>| JwtKeyConfig {
        kid: Some(alg.to_owned()),
        alg: alg.to_owned(),
        secret: file.is_none().then(|| SECRET.to_owned()),
        public_key_file: file.map(Into::into),
        ..JwtKeyConfig::default()
    };
    JwtConfig {
        issuer: Some(ISSUER.to_owned()),
        audience: vec![AUDIENCE.to_owned()],
        keys: vec![
            key("HS256", None),
            key("RS256", Some("rsa_public.pem")),
            key("ES256", Some("ec_public.pem")),
            key("EdDSA", Some("ed_public.pem")),
        ],
        ..JwtConfig::default()
    }
}

fn verifier(cfg: &JwtConfig) -> JwtVerifier {
    JwtVerifier::from_config(cfg, &testdata("")).expect("valid config")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

const ALGS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

#[test]
fn valid_token_passes_for_each_algorithm() {
    let v = verifier(&config());
    for alg in ALGS {
        let id = v
            .verify(&sign(alg, &claims()))
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(id.subject, "alice");
        assert_eq!(id.method, AuthMethod::Jwt);
    }
}

#[test]
fn expired_token_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c["exp"] = json!(now() - 3600);
    for alg in ALGS {
        assert_eq!(v.verify(&sign(alg, &c)), Err(AuthError::Expired), "{alg:?}");
    }
}

#[test]
fn leeway_tolerates_small_skew() {
    let v = verifier(&config());
    let mut c = claims();
    c["exp"] = json!(now() - 10);
    c["nbf"] = json!(now() + 10);
    assert!(v.verify(&sign(Algorithm::HS256, &c)).is_ok());
    let strict = verifier(&JwtConfig {
        leeway: std::time::Duration::ZERO,
        ..config()
    });
    assert_eq!(
        strict.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::Expired)
    );
}

#[test]
fn future_nbf_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c["nbf"] = json!(now() + 600);
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, &c)),
        Err(AuthError::NotYetValid)
    );
}

#[test]
fn missing_exp_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::MissingClaim { claim: "exp" })
    );
    c["exp"] = json!("tomorrow");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::MissingClaim { claim: "exp" })
    );
}

#[test]
fn tampered_payload_is_refused() {
    let v = verifier(&config());
    for alg in ALGS {
        let token = sign(alg, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged["sub"] = json!("admin");
        let payload = b64(&serde_json::to_vec(&forged).expect("json"));
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(v.verify(&tampered), Err(AuthError::BadSignature), "{alg:?}");
    }
}

#[test]
fn token_signed_with_another_key_is_refused() {
    let v = verifier(&config());
    let rsa2 = encoding_key(Algorithm::RS256, "rsa2_private.pem");
    let token = sign_with(Algorithm::RS256, Some("RS256"), &claims(), &rsa2);
    assert_eq!(v.verify(&token), Err(AuthError::BadSignature));
    let other_secret = EncodingKey::from_secret(b"another-secret-another-secret-another");
    let token = sign_with(Algorithm::HS256, Some("HS256"), &claims(), &other_secret);
    assert_eq!(v.verify(&token), Err(AuthError::BadSignature));
}

#[test]
fn unknown_kid_is_refused() {
    let v = verifier(&config());
    let key = encoding_key(Algorithm::RS256, "rsa_private.pem");
    let token = sign_with(Algorithm::RS256, Some("nope"), &claims(), &key);
    assert_eq!(v.verify(&token), Err(AuthError::UnknownKey));
}

#[test]
fn token_without_kid_does_not_use_keyed_keys() {
    let v = verifier(&config());
    let key = encoding_key(Algorithm::RS256, "rsa_private.pem");
    let token = sign_with(Algorithm::RS256, None, &claims(), &key);
    assert_eq!(v.verify(&token), Err(AuthError::UnknownKey));
}

#[test]
fn token_without_kid_tries_every_unkeyed_key_of_its_alg() {
    let mut cfg = config();
    cfg.keys = [
        ("RS256", "rsa2_public.pem"),
        ("ES256", "ec_public.pem"),
        ("RS256", "rsa_public.pem"),
    ]
    .into_iter()
    .map(|(alg, file)| JwtKeyConfig {
        alg: alg.to_owned(),
        public_key_file: Some(file.into()),
        ..JwtKeyConfig::default()
    })
    .collect();
    let v = verifier(&cfg);
    for private in ["rsa_private.pem", "rsa2_private.pem"] {
        let key = encoding_key(Algorithm::RS256, private);
        let token = sign_with(Algorithm::RS256, None, &claims(), &key);
        assert!(v.verify(&token).is_ok(), "{private}");
    }
    // A token with a kid finds no keyed key here.
    assert_eq!(
        v.verify(&sign(Algorithm::RS256, &claims())),
        Err(AuthError::UnknownKey)
    );
}

#[test]
fn wrong_issuer_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::WrongIssuer)
    );
    c.as_object_mut().expect("object").remove("iss");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::MissingClaim { claim: "iss" })
    );
}

#[test]
fn wrong_audience_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c["aud"] = json!("another-service");
    assert_eq!(
        v.verify(&sign(Algorithm::ES256, &c)),
        Err(AuthError::WrongAudience)
    );
    c["aud"] = json!(["another-service", AUDIENCE]);
    assert!(v.verify(&sign(Algorithm::ES256, &c)).is_ok());
    c.as_object_mut().expect("object").remove("aud");
    assert_eq!(
        v.verify(&sign(Algorithm::ES256, &c)),
        Err(AuthError::MissingClaim { claim: "aud" })
    );
}

#[test]
fn audience_and_issuer_unchecked_when_unset() {
    let v = verifier(&JwtConfig {
        issuer: None,
        audience: Vec::new(),
        ..config()
    });
    let mut c = claims();
    c["aud"] = json!("another-service");
    c["iss"] = json!("https://elsewhere.example");
    assert!(v.verify(&sign(Algorithm::HS256, &c)).is_ok());
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(&config());
    let payload = b64(&serde_json::to_vec(&claims()).expect("json"));
    for alg in ["none", "None", "NONE"] {
        let header = b64(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}").as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            let err = v.verify(&token).expect_err("refused");
            assert!(
                matches!(err, AuthError::AlgorithmNotAllowed { .. }),
                "{token}: {err}"
            );
        }
    }
    let header = b64(br#"{"alg":"none"}"#);
    assert_eq!(
        v.verify(&format!("{header}.{payload}.")),
        Err(AuthError::AlgorithmNotAllowed { alg: "none" })
    );
}

#[test]
fn alg_confusion_rsa_public_key_as_hmac_secret_is_refused() {
    // The attacker knows the RSA public key and signs an HS256 token with its PEM bytes.
    let public_pem = read_testdata("rsa_public.pem");
    let forged_key = EncodingKey::from_secret(&public_pem);
    let v = verifier(&config());
    for kid in [Some("RS256"), None] {
        let token = sign_with(Algorithm::HS256, kid, &claims(), &forged_key);
        assert_eq!(v.verify(&token), Err(AuthError::UnknownKey), "{kid:?}");
    }
    // Same with an unkeyed RSA key and an unkeyed HMAC key both configured.
    let mut cfg = config();
    for key in &mut cfg.keys {
        key.kid = None;
    }
    let v = verifier(&cfg);
    let token = sign_with(Algorithm::HS256, None, &claims(), &forged_key);
    assert_eq!(v.verify(&token), Err(AuthError::BadSignature));
}

#[test]
fn alg_outside_allow_list_is_refused() {
    let mut cfg = config();
    cfg.algorithms = vec!["RS256".to_owned()];
    cfg.keys.retain(|k| k.alg == "RS256");
    let v = verifier(&cfg);
    assert!(v.verify(&sign(Algorithm::RS256, &claims())).is_ok());
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &claims())),
        Err(AuthError::AlgorithmNotAllowed { alg: "HS256" })
    );
    let header = b64(br#"{"alg":"XY999"}"#);
    assert_eq!(
        v.verify(&format!("{header}.e30.c2ln")),
        Err(AuthError::AlgorithmNotAllowed { alg: "unsupported" })
    );
}

#[test]
fn inline_key_outside_allow_list_is_a_config_error() {
    let mut cfg = config();
    cfg.algorithms = vec!["RS256".to_owned()];
    let err = JwtVerifier::from_config(&cfg, &testdata(""))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("not in `auth.jwt.algorithms`"),
        "{err}"
    );
}

#[test]
fn missing_or_empty_sub_is_refused() {
    let v = verifier(&config());
    let mut c = claims();
    c.as_object_mut().expect("object").remove("sub");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c)),
        Err(AuthError::MissingClaim { claim: "sub" })
    );
    for bad in [json!(""), json!(42), json!(null)] {
        c["sub"] = bad.clone();
        assert_eq!(
            v.verify(&sign(Algorithm::HS256, &c)),
            Err(AuthError::MissingClaim { claim: "sub" }),
            "{bad}"
        );
    }
    // jsonwebtoken's claim pre-parser trips over a structured `sub` (reported as
    // malformed): refused all the same.
    for bad in [json!(["alice"]), json!({"id": "alice"})] {
        c["sub"] = bad;
        assert!(v.verify(&sign(Algorithm::HS256, &c)).is_err());
    }
}

#[test]
fn scope_string_and_scp_array() {
    let v = verifier(&config());
    let mut c = claims();
    c["scope"] = json!("tools:read  tools:call");
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.scopes, vec!["tools:read", "tools:call"]);

    let mut c = claims();
    c["scp"] = json!(["tools:read", "tools:call", 7]);
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.scopes, vec!["tools:read", "tools:call"]);

    let mut c = claims();
    c["scp"] = json!("a b");
    c["scope"] = json!("b c");
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.scopes, vec!["b", "c", "a"]);
}

#[test]
fn roles_from_roles_and_groups() {
    let v = verifier(&config());
    let mut c = claims();
    c["groups"] = json!(["eng", "oncall", {"not": "a string"}]);
    c["roles"] = json!("admin");
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.roles, vec!["admin", "eng", "oncall"]);
}

#[test]
fn roles_by_json_pointer() {
    let v = verifier(&JwtConfig {
        roles_claims: vec![
            "/realm_access/roles".to_owned(),
            "https://x.example/roles".to_owned(),
        ],
        ..config()
    });
    let mut c = claims();
    c["realm_access"] = json!({"roles": ["viewer", "editor"]});
    c["https://x.example/roles"] = json!(["ns"]);
    c["groups"] = json!(["ignored"]);
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.roles, vec!["viewer", "editor", "ns"]);
}

#[test]
fn agent_from_azp_then_client_id_or_configured_claim() {
    let v = verifier(&config());
    let mut c = claims();
    c["client_id"] = json!("cursor");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c))
            .expect("valid")
            .agent
            .as_deref(),
        Some("cursor")
    );
    c["azp"] = json!("claude-desktop");
    assert_eq!(
        v.verify(&sign(Algorithm::HS256, &c))
            .expect("valid")
            .agent
            .as_deref(),
        Some("claude-desktop")
    );
    let custom = verifier(&JwtConfig {
        agent_claim: Some("act_as".to_owned()),
        ..config()
    });
    let id = custom.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.agent, None);
    c["act_as"] = json!("nightly-eval");
    let id = custom.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.agent.as_deref(), Some("nightly-eval"));
}

#[test]
fn all_claims_are_kept() {
    let v = verifier(&config());
    let mut c = claims();
    c["tenant"] = json!("acme");
    c["scope"] = json!("a");
    let id = v.verify(&sign(Algorithm::HS256, &c)).expect("valid");
    assert_eq!(id.claims["tenant"], "acme");
    assert_eq!(id.claims["sub"], "alice");
    assert_eq!(id.claims["scope"], "a");
}

#[test]
fn malformed_tokens_are_refused() {
    let v = verifier(&config());
    let good = sign(Algorithm::HS256, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let crit = b64(br#"{"alg":"HS256","kid":"HS256","crit":["b64"],"b64":false}"#);
    let dup = b64(br#"{"alg":"HS256","kid":"HS256","alg":"HS256"}"#);
    let array = b64(br#"["HS256"]"#);
    let cases = [
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{crit}.{}.{}", parts[1], parts[2]),
        format!("{dup}.{}.{}", parts[1], parts[2]),
        format!("{array}.{}.{}", parts[1], parts[2]),
        "abc".to_owned(),
    ];
    for token in cases {
        assert_eq!(v.verify(&token), Err(AuthError::Malformed), "{token}");
    }
}

#[test]
fn signed_non_object_payload_is_malformed() {
    let v = verifier(&config());
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let header = b64(br#"{"alg":"HS256","kid":"HS256"}"#);
    let payload = b64(b"[1,2]");
    let message = format!("{header}.{payload}");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    assert_eq!(
        v.verify(&format!("{message}.{sig}")),
        Err(AuthError::Malformed)
    );
}

/// An unset `secret_env` variable is a configuration error naming it. (A set one is tested
/// through the real binary, `tests/it/proxy.rs`, which gives the variable to the child
/// process: setting it here would race with the other tests' threads.)
#[test]
fn hmac_secret_from_an_unset_env_var_is_refused() {
    let unset = JwtConfig {
        keys: vec![JwtKeyConfig {
            alg: "HS256".to_owned(),
            secret_env: Some("MCP_WARDEN_AUTH_TEST_SURELY_UNSET".to_owned()),
            ..JwtKeyConfig::default()
        }],
        ..config()
    };
    let err = JwtVerifier::from_config(&unset, &testdata(""))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("is not set"), "{err}");
}

#[test]
fn config_errors_name_the_setting() {
    let check = |cfg: JwtConfig, expected: &str| {
        let err = JwtVerifier::from_config(&cfg, &testdata(""))
            .err()
            .expect("refused");
        assert!(err.to_string().starts_with(expected), "{err}");
    };
    check(
        JwtConfig {
            algorithms: vec!["HS999".to_owned()],
            ..config()
        },
        "`auth.jwt.algorithms`: unsupported alg `HS999`",
    );
    check(
        JwtConfig {
            algorithms: vec!["none".to_owned()],
            ..config()
        },
        "`auth.jwt.algorithms`: unsupported alg `none`",
    );
    check(
        JwtConfig {
            leeway: std::time::Duration::from_secs(3600),
            ..config()
        },
        "`auth.jwt.leeway`",
    );
    check(
        JwtConfig {
            keys: Vec::new(),
            ..config()
        },
        "`auth.jwt`: no verification keys",
    );
}

fn write_jwks(path: &Path, keys: &[Value]) {
    std::fs::write(
        path,
        serde_json::to_vec(&json!({ "keys": keys })).expect("json"),
    )
    .expect("write");
}

#[test]
fn jwks_file_load_reload_and_failed_reload_keeps_old_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    write_jwks(
        &jwks,
        &[public_jwk("rsa_private.pem", Algorithm::RS256, "k1")],
    );
    let cfg = JwtConfig {
        keys: Vec::new(),
        jwks_file: Some("jwks.json".into()),
        ..config()
    };
    let v = JwtVerifier::from_config(&cfg, dir.path()).expect("loads");
    assert_eq!(v.watched_files(), vec![jwks.clone()]);

    let rsa1 = encoding_key(Algorithm::RS256, "rsa_private.pem");
    let rsa2 = encoding_key(Algorithm::RS256, "rsa2_private.pem");
    let t1 = sign_with(Algorithm::RS256, Some("k1"), &claims(), &rsa1);
    let t2 = sign_with(Algorithm::RS256, Some("k2"), &claims(), &rsa2);
    assert!(v.verify(&t1).is_ok());
    assert_eq!(v.verify(&t2), Err(AuthError::UnknownKey));

    // Rotation: k1 retired, k2 introduced.
    write_jwks(
        &jwks,
        &[public_jwk("rsa2_private.pem", Algorithm::RS256, "k2")],
    );
    v.reload().expect("reloads");
    assert_eq!(v.verify(&t1), Err(AuthError::UnknownKey));
    assert!(v.verify(&t2).is_ok());

    // A broken edit is rejected and k2 keeps working.
    std::fs::write(&jwks, b"{\"keys\": [").expect("write");
    let err = v.reload().expect_err("broken file");
    assert!(err.to_string().contains("jwks.json"), "{err}");
    assert!(v.verify(&t2).is_ok());

    // So is a key with an unsupported algorithm.
    let mut bad = public_jwk("rsa_private.pem", Algorithm::RS256, "k1");
    bad["alg"] = json!("HS999");
    write_jwks(&jwks, &[bad]);
    let err = v.reload().expect_err("bad key");
    assert!(
        err.to_string()
            .ends_with("key `k1`: unsupported alg `HS999`"),
        "{err}"
    );
    assert!(v.verify(&t2).is_ok());

    // A missing file too.
    std::fs::remove_file(&jwks).expect("remove");
    assert!(matches!(v.reload(), Err(AuthConfigError::Read { .. })));
    assert!(v.verify(&t2).is_ok());
}

#[test]
fn jwks_with_mixed_key_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut enc = public_jwk("rsa2_private.pem", Algorithm::RS256, "enc");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    write_jwks(
        &dir.path().join("jwks.json"),
        &[
            public_jwk("rsa_private.pem", Algorithm::RS256, "RS256"),
            public_jwk("ec_private.pem", Algorithm::ES256, "ES256"),
            public_jwk("ed_private.pem", Algorithm::EdDSA, "EdDSA"),
            enc,
        ],
    );
    let cfg = JwtConfig {
        keys: Vec::new(),
        jwks_file: Some("jwks.json".into()),
        ..config()
    };
    let v = JwtVerifier::from_config(&cfg, dir.path()).expect("loads");
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        assert!(v.verify(&sign(alg, &claims())).is_ok(), "{alg:?}");
    }
}

/// A verifier whose token cache reads time from the returned cell (seconds since the
/// epoch; starts at the real time, which `jsonwebtoken` uses for the first check).
fn cached_verifier(cfg: &JwtConfig) -> (JwtVerifier, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut v = verifier(cfg);
    let clock = Arc::new(AtomicU64::new(now()));
    let read = Arc::clone(&clock);
    v.set_cache(
        VerifiedCache::new(16, cfg.leeway.as_secs())
            .with_clock(Arc::new(move || read.load(Ordering::SeqCst))),
    );
    (v, clock)
}

#[test]
fn a_cached_token_still_expires() {
    use std::sync::atomic::Ordering;
    let cfg = config();
    let (v, clock) = cached_verifier(&cfg);
    let mut c = claims();
    // One reading of the time: the checks below are relative to this `exp`, however long
    // signing and the first verification take.
    let exp = now() + 60;
    c["exp"] = json!(exp);
    let token = sign(Algorithm::RS256, &c);
    assert!(v.verify(&token).is_ok());
    assert_eq!(v.cache().len(), 1, "remembered");
    // within the leeway after `exp`: still served
    clock.store(exp + cfg.leeway.as_secs(), Ordering::SeqCst);
    assert!(v.verify(&token).is_ok());
    // past it: refused as expired and forgotten
    clock.store(exp + 1 + cfg.leeway.as_secs(), Ordering::SeqCst);
    assert_eq!(v.verify(&token), Err(AuthError::Expired));
    assert_eq!(v.cache().len(), 0);
}

#[test]
fn a_tampered_token_is_never_served_from_the_cache() {
    let (v, _clock) = cached_verifier(&config());
    let token = sign(Algorithm::RS256, &claims());
    assert!(v.verify(&token).is_ok());
    assert_eq!(v.cache().len(), 1);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // other claims under the same signature
    let mut forged = claims();
    forged["sub"] = json!("mallory");
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(v.verify(&tampered_claims), Err(AuthError::BadSignature));
    // the same claims under a changed signature: its first character (all six bits count;
    // the last one's low bits are padding, so changing it can make the text malformed)
    let first = parts[2].remove(0);
    parts[2].insert(0, if first == 'A' { 'B' } else { 'A' });
    assert_eq!(v.verify(&parts.join(".")), Err(AuthError::BadSignature));
    assert_eq!(v.cache().len(), 1, "refusals are not remembered");
}

#[test]
fn a_key_reload_forgets_every_verified_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    write_jwks(
        &jwks,
        &[public_jwk("rsa_private.pem", Algorithm::RS256, "k1")],
    );
    let cfg = JwtConfig {
        keys: Vec::new(),
        jwks_file: Some("jwks.json".into()),
        ..config()
    };
    let v = JwtVerifier::from_config(&cfg, dir.path()).expect("loads");
    let rsa1 = encoding_key(Algorithm::RS256, "rsa_private.pem");
    let t1 = sign_with(Algorithm::RS256, Some("k1"), &claims(), &rsa1);
    assert!(v.verify(&t1).is_ok());
    assert!(v.verify(&t1).is_ok());
    assert_eq!(v.cache().len(), 1);
    // k1 is retired: its token must fail at once, not be served from the cache
    write_jwks(
        &jwks,
        &[public_jwk("rsa2_private.pem", Algorithm::RS256, "k2")],
    );
    v.reload().expect("reloads");
    assert_eq!(v.cache().len(), 0);
    assert_eq!(v.verify(&t1), Err(AuthError::UnknownKey));

    // a verification that started under the old keys cannot store its result after
    // the reload
    let before = v.cache().generation();
    v.reload().expect("reloads");
    let id = verifier(&config())
        .verify(&sign(Algorithm::HS256, &claims()))
        .expect("valid");
    v.cache()
        .insert(VerifiedCache::digest("stale"), before, &id);
    assert_eq!(v.cache().len(), 0);
    assert!(v.cache().get(&VerifiedCache::digest("stale")).is_none());
}

#[test]
fn cache_size_zero_verifies_every_time() {
    let v = verifier(&JwtConfig {
        cache_size: 0,
        ..config()
    });
    let token = sign(Algorithm::HS256, &claims());
    assert!(v.verify(&token).is_ok());
    assert!(v.verify(&token).is_ok());
    assert_eq!(v.cache().len(), 0);
}
