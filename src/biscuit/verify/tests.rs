//! Tests of Biscuit verification: shapes, keys and rotation, revocation, expiry, the
//! identity read from the authority block, and the verified-token cache.

use super::*;
use crate::biscuit::tools::{attenuate, mint, BlockSpec};
use base64::Engine;
use biscuit_auth::KeyPair;

struct Setup {
    dir: tempfile::TempDir,
    roots: Vec<KeyPair>,
    verifier: BiscuitVerifier,
}

fn setup_with(cfg: impl FnOnce(&mut BiscuitConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let roots = vec![
        KeyPair::new(),
        KeyPair::new_with_algorithm(biscuit_auth::builder::Algorithm::Secp256r1),
    ];
    std::fs::write(
        dir.path().join("root2.public"),
        keys::public_key_text(&roots[1].public()),
    )
    .unwrap();
    std::fs::write(dir.path().join("revoked.txt"), "# revoked tokens\n").unwrap();
    let mut config = BiscuitConfig {
        keys: vec![
            BiscuitKeyConfig {
                id: Some(1),
                public_key: Some(keys::public_key_text(&roots[0].public())),
                ..BiscuitKeyConfig::default()
            },
            BiscuitKeyConfig {
                id: Some(2),
                algorithm: Some("secp256r1".to_owned()),
                public_key_file: Some("root2.public".into()),
                ..BiscuitKeyConfig::default()
            },
        ],
        revocation_file: Some("revoked.txt".into()),
        claim_facts: vec!["patient_name".to_owned()],
        ..BiscuitConfig::default()
    };
    cfg(&mut config);
    let mut verifier =
        BiscuitVerifier::from_config(&config, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    verifier.set_limits(crate::testing::biscuit_limits());
    Setup {
        dir,
        roots,
        verifier,
    }
}

fn setup() -> Setup {
    setup_with(|_| {})
}

fn spec(facts: &[&str], checks: &[&str]) -> BlockSpec {
    BlockSpec {
        facts: facts.iter().map(|s| (*s).to_owned()).collect(),
        checks: checks.iter().map(|s| (*s).to_owned()).collect(),
        ..BlockSpec::default()
    }
}

fn token(root: &KeyPair, id: Option<u32>, facts: &[&str]) -> String {
    mint(&root.private(), id, &spec(facts, &[]), SystemTime::now()).unwrap()
}

#[test]
fn identity_comes_from_the_authority_block() {
    let s = setup();
    let t = token(
        &s.roots[0],
        Some(1),
        &[
            "user(\"alice\")",
            "agent(\"claude\")",
            "role(\"staff\")",
            "role(\"nurse\")",
            "scope(\"mcp:tools\")",
            "patient_name(\"Zoë\")",
        ],
    );
    let id = s.verifier.verify(&t).unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.agent.as_deref(), Some("claude"));
    assert_eq!(id.roles, ["nurse", "staff"]);
    assert_eq!(id.scopes, ["mcp:tools"]);
    assert_eq!(id.claims["patient_name"], "Zoë");
    // (The identity's auth method and principal key are asserted where the authenticator
    // builds it: `auth::tests::biscuit_identity_keeps_the_token_and_names_the_principal`.)
    let b = &id.token;
    assert_eq!(b.root_key_id(), Some(1));
    assert_eq!(b.revocation_ids().len(), 1);

    // Facts appended by attenuation never count: a holder cannot rename themselves.
    let attenuated = attenuate(
        &t,
        &spec(&["user(\"mallory\")", "role(\"admin\")"], &[]),
        SystemTime::now(),
    )
    .unwrap();
    let id = s.verifier.verify(&attenuated).unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.roles, ["nurse", "staff"]);
}

#[test]
fn subject_rules() {
    let s = setup();
    let two = token(&s.roots[0], Some(1), &["user(\"a\")", "user(\"b\")"]);
    assert_eq!(s.verifier.verify(&two), Err(VerifyError::AmbiguousSubject));
    let none = token(&s.roots[0], Some(1), &["right(\"tool\", \"echo\")"]);
    let id = s.verifier.verify(&none).unwrap();
    assert!(id.subject.starts_with("biscuit:"), "{}", id.subject);
    assert_eq!(id.subject.len(), "biscuit:".len() + 16);
}

#[test]
fn two_roots_during_rotation_and_unknown_ids() {
    let s = setup();
    assert!(s
        .verifier
        .verify(&token(&s.roots[0], Some(1), &["user(\"a\")"]))
        .is_ok());
    assert!(s
        .verifier
        .verify(&token(&s.roots[1], Some(2), &["user(\"a\")"]))
        .is_ok());
    assert_eq!(
        s.verifier.verify(&token(&s.roots[0], Some(3), &[])),
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(
        s.verifier.verify(&token(&s.roots[0], None, &[])),
        Err(VerifyError::UnknownKey)
    );
    // Signed by root 1 but claiming root 2: the signature does not verify.
    let err = s.verifier.verify(&token(&s.roots[0], Some(2), &[]));
    assert_eq!(err, Err(VerifyError::BadSignature));
    let stranger = KeyPair::new();
    assert_eq!(
        s.verifier.verify(&token(&stranger, Some(1), &[])),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn tampered_and_truncated_tokens_are_refused() {
    let s = setup();
    let t = token(&s.roots[0], Some(1), &["user(\"alice\")"]);
    assert_eq!(
        s.verifier.verify(&t[..t.len() / 2]),
        Err(VerifyError::Malformed)
    );
    assert_eq!(
        s.verifier.verify("not base64 at all!"),
        Err(VerifyError::Malformed)
    );
    // Flip a character inside the authority block's payload: `alice` becomes `alicf`.
    let mut bytes = base64::engine::general_purpose::URL_SAFE
        .decode(&t)
        .unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"alice")
        .expect("fact text in the token");
    bytes[at + 4] = b'f';
    let tampered = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
    assert_eq!(s.verifier.verify(&tampered), Err(VerifyError::BadSignature));
}

#[test]
fn revocation_list_is_reloaded() {
    let s = setup();
    let t = token(&s.roots[0], Some(1), &["user(\"alice\")"]);
    let narrower = attenuate(&t, &spec(&[], &["tool(\"echo\")"]), SystemTime::now()).unwrap();
    assert!(s.verifier.verify(&narrower).is_ok());
    let id = s.verifier.verify(&narrower).unwrap();
    let ids = id.token.revocation_ids().to_vec();
    // Revoking the attenuation block kills that token only.
    std::fs::write(
        s.dir.path().join("revoked.txt"),
        format!("{}  # leaked\n", ids[1].to_uppercase()),
    )
    .unwrap();
    s.verifier.reload().unwrap();
    assert_eq!(s.verifier.verify(&narrower), Err(VerifyError::Revoked));
    assert!(s.verifier.verify(&t).is_ok());
    // Revoking the authority block kills every token derived from it.
    std::fs::write(s.dir.path().join("revoked.txt"), format!("{}\n", ids[0])).unwrap();
    s.verifier.reload().unwrap();
    assert_eq!(s.verifier.verify(&t), Err(VerifyError::Revoked));
    assert_eq!(s.verifier.verify(&narrower), Err(VerifyError::Revoked));
    // A broken list keeps the previous one.
    std::fs::write(s.dir.path().join("revoked.txt"), "xyz\n").unwrap();
    let err = s.verifier.reload().unwrap_err().to_string();
    assert!(
        err.contains("revoked.txt") && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(s.verifier.verify(&t), Err(VerifyError::Revoked));
}

#[test]
fn expired_blocks_are_refused() {
    let s = setup();
    let now = SystemTime::now();
    let t = mint(
        &s.roots[0].private(),
        Some(1),
        &BlockSpec {
            ttl: Some(Duration::from_secs(3600)),
            ..spec(&["user(\"a\")"], &["tool(\"echo\")"])
        },
        now,
    )
    .unwrap();
    // A check about the request (`tool`) is not expiry: authorization judges it.
    assert!(s.verifier.verify_at(&t, now).is_ok());
    assert_eq!(
        s.verifier.verify_at(&t, now + Duration::from_secs(7200)),
        Err(VerifyError::Expired)
    );
    let short = attenuate(
        &t,
        &BlockSpec {
            ttl: Some(Duration::from_secs(60)),
            ..BlockSpec::default()
        },
        now,
    )
    .unwrap();
    assert!(s.verifier.verify_at(&short, now).is_ok());
    assert_eq!(
        s.verifier.verify_at(&short, now + Duration::from_secs(120)),
        Err(VerifyError::Expired)
    );
}

/// The expiry check of a cached token is skipped within the second it last passed, and
/// only then: a later second checks again.
#[test]
fn cached_token_expiry_is_checked_each_second() {
    let s = setup();
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let t = mint(
        &s.roots[0].private(),
        Some(1),
        &BlockSpec {
            ttl: Some(Duration::from_secs(2)),
            ..spec(&["user(\"a\")"], &[])
        },
        now,
    )
    .unwrap();
    for _ in 0..3 {
        assert!(s.verifier.verify_at(&t, now).is_ok());
        assert!(s
            .verifier
            .verify_at(&t, now + Duration::from_millis(999))
            .is_ok());
    }
    assert!(s
        .verifier
        .verify_at(&t, now + Duration::from_secs(2))
        .is_ok());
    for _ in 0..2 {
        assert_eq!(
            s.verifier.verify_at(&t, now + Duration::from_secs(3)),
            Err(VerifyError::Expired)
        );
    }
    // A request stamped earlier (it arrived before the token expired) still passes.
    assert!(s
        .verifier
        .verify_at(&t, now + Duration::from_secs(1))
        .is_ok());
    assert_eq!(
        s.verifier.verify_at(&t, now + Duration::from_secs(3)),
        Err(VerifyError::Expired)
    );
}

#[test]
fn time_only_checks() {
    assert!(is_time_only_check(
        "check if time($t), $t <= 2030-01-01T00:00:00Z"
    ));
    assert!(!is_time_only_check("check if time($t), tool(\"echo\")"));
    assert!(!is_time_only_check("check if tool(\"echo\")"));
    assert!(!is_time_only_check("check if true"));
}

#[test]
fn run_limits_bound_token_evaluation() {
    let mut s = setup();
    let facts: Vec<String> = (0..40).map(|i| format!("n({i})")).collect();
    let refs: Vec<&str> = facts.iter().map(String::as_str).collect();
    let t = mint(
        &s.roots[0].private(),
        Some(1),
        &BlockSpec {
            code: Some("pair($x, $y) <- n($x), n($y);".to_owned()),
            ..spec(&refs, &[])
        },
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(s.verifier.verify(&t), Err(VerifyError::RunLimit));
    s.verifier.set_limits(AuthorizerLimits {
        max_facts: 10_000,
        max_iterations: 100,
        max_time: Duration::from_secs(5),
    });
    assert!(s.verifier.verify(&t).is_ok());
}

#[test]
fn cache_is_keyed_by_token_and_invalidated_by_key_reload() {
    let s = setup();
    let t = token(&s.roots[1], Some(2), &["user(\"a\")"]);
    assert!(s.verifier.verify(&t).is_ok());
    assert_eq!(s.verifier.cache.as_ref().unwrap().lock().len(), 1);
    assert!(s.verifier.verify(&t).is_ok());
    assert_eq!(s.verifier.cache.as_ref().unwrap().lock().len(), 1);
    // Rotate root 2 out: the file now holds another key; cached tokens stop working.
    let replacement = KeyPair::new_with_algorithm(biscuit_auth::builder::Algorithm::Secp256r1);
    std::fs::write(
        s.dir.path().join("root2.public"),
        keys::public_key_text(&replacement.public()),
    )
    .unwrap();
    s.verifier.reload().unwrap();
    assert_eq!(s.verifier.verify(&t), Err(VerifyError::BadSignature));
    // Failures are not cached.
    assert_eq!(s.verifier.cache.as_ref().unwrap().lock().len(), 0);
}

/// A hasher under which every token collides: the cache must still tell tokens apart.
#[derive(Default)]
struct Colliding;

impl std::hash::Hasher for Colliding {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

#[test]
fn tokens_whose_hashes_collide_keep_their_own_entries() {
    let s = setup();
    let keys = s.verifier.keys.load();
    let ttl = Duration::from_secs(60);
    let a = token(&s.roots[0], Some(1), &["user(\"a\")"]);
    let b = token(&s.roots[0], Some(1), &["user(\"b\")"]);
    let mut cache: TokenCache<std::hash::BuildHasherDefault<Colliding>> =
        lru::LruCache::with_hasher(NonZeroUsize::new(4).unwrap(), Default::default());
    let verified = |text: &str| Arc::new(s.verifier.verify_uncached(text, &keys).unwrap());
    cache.put(a.as_str().into(), verified(&a));
    assert!(
        cached_entry(&mut cache, &b, keys.generation, ttl).is_none(),
        "another token with the same hash is a miss"
    );
    cache.put(b.as_str().into(), verified(&b));
    for (text, subject) in [(&a, "a"), (&b, "b"), (&a, "a"), (&b, "b")] {
        let entry = cached_entry(&mut cache, text, keys.generation, ttl).unwrap();
        assert_eq!(entry.identity.subject, subject);
    }
    // A token differing from a cached one in its last character only is a miss too.
    let mut near = a.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    assert!(cached_entry(&mut cache, &near, keys.generation, ttl).is_none());
    // An entry of another key generation, or too old, is dropped, not served.
    assert!(cached_entry(&mut cache, &a, keys.generation + 1, ttl).is_none());
    assert_eq!(cache.len(), 1);
    crate::testing::let_the_clock_tick();
    assert!(cached_entry(&mut cache, &b, keys.generation, Duration::ZERO).is_none());
    assert_eq!(cache.len(), 0);
}

/// Through the verifier: alternating tokens each get their own identity from the cache.
#[test]
fn alternating_cached_tokens_keep_their_identities() {
    let s = setup();
    let tokens: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|u| token(&s.roots[0], Some(1), &[&format!("user(\"{u}\")")]))
        .collect();
    for _round in 0..3 {
        for (t, u) in tokens.iter().zip(["a", "b", "c"]) {
            assert_eq!(s.verifier.verify(t).unwrap().subject, u);
        }
    }
    assert_eq!(s.verifier.cache.as_ref().unwrap().lock().len(), 3);
}

#[test]
fn cache_can_be_disabled_and_expires() {
    let s = setup_with(|c| c.cache_size = 0);
    let t = token(&s.roots[0], Some(1), &["user(\"a\")"]);
    assert!(s.verifier.verify(&t).is_ok());
    assert!(s.verifier.cache.is_none());
    let s = setup_with(|c| c.cache_ttl = Duration::ZERO);
    let t = token(&s.roots[0], Some(1), &["user(\"a\")"]);
    assert!(s.verifier.verify(&t).is_ok());
    // Past the zero TTL: the cached entry is stale and the token is verified again.
    crate::testing::let_the_clock_tick();
    assert!(s.verifier.verify(&t).is_ok());
}

#[test]
fn configuration_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let err = |cfg: BiscuitConfig| {
        BiscuitVerifier::from_config(&cfg, dir.path())
            .err()
            .expect("refused")
            .to_string()
    };
    assert!(err(BiscuitConfig::default()).contains("no root keys"));
    let key = |id: Option<u32>| BiscuitKeyConfig {
        id,
        public_key: Some(keys::public_key_text(&KeyPair::new().public())),
        ..BiscuitKeyConfig::default()
    };
    let e = err(BiscuitConfig {
        keys: vec![key(Some(1)), key(Some(1))],
        ..BiscuitConfig::default()
    });
    assert!(e.contains("auth.biscuit.keys[1].id"), "{e}");
    let e = err(BiscuitConfig {
        keys: vec![BiscuitKeyConfig {
            id: Some(1),
            public_key: Some("00ff".into()),
            ..BiscuitKeyConfig::default()
        }],
        ..BiscuitConfig::default()
    });
    assert!(e.contains("without an algorithm"), "{e}");
    let e = err(BiscuitConfig {
        keys: vec![key(None)],
        subject_fact: "user($x)".into(),
        ..BiscuitConfig::default()
    });
    assert!(e.contains("auth.biscuit.subject_fact"), "{e}");
    let e = err(BiscuitConfig {
        keys: vec![key(None)],
        revocation_file: Some("nope.txt".into()),
        ..BiscuitConfig::default()
    });
    assert!(e.contains("nope.txt") && e.contains("cannot read"), "{e}");
}

#[test]
fn revocation_list_syntax() {
    let set = parse_revocation_list("# c\n\nABCD\n  0011 # x\n").unwrap();
    assert!(set.contains("abcd") && set.contains("0011"));
    assert_eq!(parse_revocation_list("ab\nabc\n").unwrap_err().0, 2);
}

/// A fresh clone has no key files: the error names the setting that points at the file
/// and the command that makes it.
#[test]
fn a_missing_key_file_names_its_setting_and_how_to_make_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BiscuitConfig {
        keys: vec![BiscuitKeyConfig {
            id: Some(1),
            public_key_file: Some("keys/biscuit-root-1.public".into()),
            ..BiscuitKeyConfig::default()
        }],
        ..BiscuitConfig::default()
    };
    let e = BiscuitVerifier::from_config(&cfg, dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("biscuit-root-1.public`: cannot read"), "{e}");
    assert!(
        e.contains("named by `auth.biscuit.keys[0].public_key_file`"),
        "{e}"
    );
    let prefix = dir.path().join("keys/biscuit-root-1");
    assert!(
        e.contains(&format!(
            "help: make a root key pair with `mcp-warden keygen --out {}`",
            prefix.display()
        )),
        "{e}"
    );
    assert!(e.contains("`mcp-warden demo`"), "{e}");

    let cfg = BiscuitConfig {
        keys: vec![BiscuitKeyConfig {
            public_key: Some(keys::public_key_text(&KeyPair::new().public())),
            ..BiscuitKeyConfig::default()
        }],
        revocation_file: Some("revoked.txt".into()),
        ..BiscuitConfig::default()
    };
    let e = BiscuitVerifier::from_config(&cfg, dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("named by `auth.biscuit.revocation_file`"), "{e}");
    assert!(e.contains("it may be empty"), "{e}");
}
