//! The loaded-state path ([`super::super::loaded`], [`super::super::cache`]) decides
//! exactly as the per-request authorizer: every decision and listing answer of an engine
//! is compared with the same engine built `uncached()`, over tokens of one and several
//! blocks, attenuations, expiry, failing checks, third-party blocks, callers without a
//! token, every mode, repeated questions (cache hits) and alternating tokens.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::*;
use crate::policy::biscuit::cache::LoadedCache;

/// Programs: the test authorizer, one with its own checks and rules, one that runs into
/// a run limit, one with a deny on a derived fact.
fn programs() -> Vec<String> {
    let facts: String = (0..40).map(|i| format!("n({i});")).collect();
    vec![
        AUTHORIZER.to_owned(),
        r#"
            check if user("alice") or caller_role("admin");
            // @id("has-session")
            check if session($s);
            reject if arg("force", true);
            granted($t) <- right("tool", $t);
            granted($t) <- role("admin"), tool($t);
            allow if tool($t), granted($t);
            allow if action("read_resource"), resource($u), $u.starts_with("docs://");
        "#
        .to_owned(),
        format!("{facts}\npair($x, $y) <- n($x), n($y);\nallow if true;"),
        r#"
            blocked($t) <- tool($t), annotation("destructiveHint", true);
            deny if blocked($t);
            check all arg($n, $v), $n != "secret";
            allow if true;
        "#
        .to_owned(),
        // Expressions reading request strings and nested arguments: the request's
        // symbols must resolve to their text.
        r#"
            allow if tool($t), $t.starts_with("get_"), arg("opts", $o), $o.get("units") == "metric";
            allow if arg("tags", $t), $t.contains("metric"), caller($c), $c.length() > 2;
            deny if session($s), $s.starts_with("evil");
            allow if arg("f", $f), $f == "2.5", source_ip($ip), $ip.starts_with("10.");
        "#
        .to_owned(),
    ]
}

fn third_party() -> Identity {
    let root = KeyPair::new();
    let partner = KeyPair::new();
    let token = Biscuit::builder()
        .code(r#"user("alice"); right("tool", "echo");"#)
        .unwrap()
        .build(&root)
        .unwrap();
    let block = token
        .third_party_request()
        .unwrap()
        .create_block(
            &partner.private(),
            BlockBuilder::new()
                .code(r#"certified("alice"); check if tool("echo");"#)
                .unwrap(),
        )
        .unwrap();
    let token = token.append_third_party(partner.public(), block).unwrap();
    let text = token.to_base64().unwrap();
    let mut id = identity("", &[]);
    id.biscuit = Some(Arc::new(BiscuitToken::new(token, &text)));
    id
}

fn callers() -> Vec<Identity> {
    let authority =
        r#"user("alice"); right("tool", "echo"); right("tool", "whoami"); right("weather");"#;
    let mut jwt = Identity::anonymous();
    jwt.method = AuthMethod::Jwt;
    jwt.subject = "ada".into();
    jwt.roles = vec!["admin".into()];
    vec![
        identity(authority, &[]),
        identity(
            authority,
            &[
                r#"check if tool($t), ["echo", "get_weather"].contains($t);"#,
                r#"check if time($t), $t < 2100-01-01T00:00:00Z;"#,
            ],
        ),
        identity(
            authority,
            &[r#"check if time($t), $t < 2000-01-01T00:00:00Z;"#],
        ),
        identity(authority, &[r#"check if arg("city", "Paris");"#]),
        identity(
            r#"user("bob"); role("admin");"#,
            &[r#"can($t) <- tool($t); check if can("whoami") or method("initialize");"#],
        ),
        identity(
            r#"user("carol");"#,
            &[r#"role("admin"); right("tool", "whoami");"#],
        ),
        third_party(),
        jwt,
        Identity::anonymous(),
    ]
}

fn actions() -> Vec<McpAction> {
    vec![
        call("echo", json!({})),
        call("whoami", json!({"force": true})),
        call("get_weather", json!({"city": "Paris"})),
        call("get_weather", json!({"city": "London", "secret": 1})),
        call(
            "get_weather",
            json!({"city": "Tokyo", "opts": {"days": 3, "units": "metric"}, "tags": ["x", "metric"], "f": 2.5}),
        ),
        call(
            "echo",
            json!({"f": 2.5, "tags": ["metric", "metric"], "opts": {"units": "imperial"}}),
        ),
        McpAction::Protocol {
            method: "initialize".into(),
        },
        McpAction::List(ListKind::Tools),
        McpAction::Response,
        McpAction::ReadResource {
            uri: "docs://readme".into(),
        },
        McpAction::GetPrompt {
            name: "summary".into(),
            arguments: json!({"city": "Paris"}),
        },
    ]
}

fn annotations() -> [Map<String, Value>; 2] {
    let mut destructive = Map::new();
    destructive.insert("destructiveHint".into(), json!(true));
    [read_only(), destructive]
}

fn ask(
    engine: &dyn PolicyEngine,
    id: &Identity,
    action: &McpAction,
    hints: &Map<String, Value>,
    env: &RequestEnv,
) -> Decision {
    engine.decide(&AuthzRequest {
        identity: id,
        action,
        annotations: Some(hints),
        definition: Default::default(),
        env,
    })
}

fn list(engine: &dyn PolicyEngine, id: &Identity, env: &RequestEnv) -> Vec<bool> {
    let listing = engine.listing(&ListQuery { identity: id, env });
    let hints = annotations();
    let mut out = Vec::new();
    for name in ["echo", "whoami", "get_weather"] {
        for h in &hints {
            out.push(listing.may_list(&ListedItem {
                kind: ListKind::Tools,
                name,
                annotations: Some(h.into()),
                definition: Default::default(),
            }));
        }
    }
    for (kind, name) in [
        (ListKind::Prompts, "summary"),
        (ListKind::Resources, "docs://a"),
    ] {
        out.push(listing.may_list(&ListedItem {
            kind,
            name,
            annotations: None,
            definition: Default::default(),
        }));
    }
    out
}

/// Every question to `fast` and `reference`, twice to `fast` (the second a cache hit),
/// callers in turn so that states of several tokens alternate.
fn compare(fast: &dyn PolicyEngine, reference: &dyn PolicyEngine, what: &str) {
    let callers = callers();
    let mut later = env();
    later.time += Duration::from_secs(100 * 365 * 24 * 3600);
    // Every context fact: address, another session, taints, protocol version.
    let mut busy = env();
    busy.source_ip = Some("10.1.2.3".parse().unwrap());
    busy.session_id = Some("evil-1".into());
    busy.taints = vec!["phi".into(), "pii".into()];
    busy.protocol_version = Some("2025-06-18".into());
    for env in [env(), later, busy] {
        for action in actions() {
            for hints in &annotations() {
                for _round in 0..2 {
                    for (i, id) in callers.iter().enumerate() {
                        let want = ask(reference, id, &action, hints, &env);
                        let got = ask(fast, id, &action, hints, &env);
                        assert_eq!(got, want, "{what}, caller {i}, {action:?}");
                    }
                }
            }
        }
        for _round in 0..2 {
            for (i, id) in callers.iter().enumerate() {
                assert_eq!(
                    list(fast, id, &env),
                    list(reference, id, &env),
                    "{what}, listing for caller {i}"
                );
            }
        }
    }
}

#[test]
fn loaded_states_decide_as_the_per_request_authorizer() {
    for (i, text) in programs().iter().enumerate() {
        let fast = engine(text);
        let reference = engine(text).uncached();
        compare(&fast, &reference, &format!("program {i}"));
    }
}

#[test]
fn loaded_token_checks_decide_as_the_per_request_ones() {
    let fast = TokenChecks::new(AllowAll, 9, crate::testing::biscuit_limits());
    let reference = TokenChecks::new(AllowAll, 9, crate::testing::biscuit_limits()).uncached();
    compare(&fast, &reference, "token checks");
}

#[test]
fn a_tight_run_limit_is_reported_alike() {
    let text = "n(1); n(2); n(3);\npair($x, $y) <- n($x), n($y);\nallow if true;";
    let limits = AuthorizerLimits {
        max_facts: 8,
        ..crate::testing::biscuit_limits()
    };
    let fast = BiscuitEngine::new(program(text), 1, limits.clone());
    let reference = BiscuitEngine::new(program(text), 1, limits).uncached();
    let d = ask(
        &fast,
        &callers()[0],
        &call("echo", json!({})),
        &read_only(),
        &env(),
    );
    assert!(d.errors[0].starts_with("run_limit: "), "{d:?}");
    compare(&fast, &reference, "max_facts 8");
}

/// Request facts no rule, check or policy reads are left out of the loaded state's
/// run, and `max_facts` accounts for them: at every limit around the count of facts
/// the loaded state stops (or not) exactly where the per-request authorizer does.
#[test]
fn left_out_facts_count_against_max_facts_alike() {
    let text = "n(1); n(2); n(3);\npair($x, $y) <- n($x), n($y);\nallow if tool($t);";
    let mut busy = env();
    busy.source_ip = Some("10.1.2.3".parse().unwrap());
    busy.taints = vec!["phi".into(), "phi".into(), "pii".into()];
    busy.protocol_version = Some("2025-06-18".into());
    let loaded = engine(text)
        .program
        .loaded(callers()[0].biscuit.as_ref(), Mode::Targeted)
        .unwrap();
    for name in [
        "session",
        "source_ip",
        "taint",
        "caller",
        "method",
        "annotation",
        "arg",
    ] {
        assert!(loaded.leaves_out(name), "{name} is read by nothing");
    }
    for name in ["tool", "n", "pair", "right", "user"] {
        assert!(!loaded.leaves_out(name), "{name} is needed");
    }
    let mut flips = 0;
    let mut before = None;
    for max_facts in 0..60 {
        let limits = AuthorizerLimits {
            max_facts,
            ..crate::testing::biscuit_limits()
        };
        let fast = BiscuitEngine::new(program(text), 1, limits.clone());
        let reference = BiscuitEngine::new(program(text), 1, limits).uncached();
        for id in &callers() {
            for action in [call("echo", json!({"a": 1})), McpAction::Response] {
                let want = ask(&reference, id, &action, &read_only(), &busy);
                let got = ask(&fast, id, &action, &read_only(), &busy);
                assert_eq!(got, want, "max_facts {max_facts}, {action:?}");
            }
        }
        let d = ask(
            &fast,
            &callers()[0],
            &call("echo", json!({})),
            &read_only(),
            &busy,
        );
        if before.is_some_and(|b| b != d.allow) {
            flips += 1;
        }
        before = Some(d.allow);
    }
    assert_eq!(flips, 1, "the sweep crosses the limit once");
}

#[test]
fn the_token_time_is_the_requests_on_every_hit() {
    let e = engine(AUTHORIZER);
    let soon = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let id = identity(
        r#"right("tool", "echo");"#,
        &[&format!("check if time($t), $t < {soon};")],
    );
    let echo = call("echo", json!({}));
    assert!(ask(&e, &id, &echo, &read_only(), &env()).allow);
    let mut later = env();
    later.time += Duration::from_secs(7200);
    let d = ask(&e, &id, &echo, &read_only(), &later);
    assert_eq!(d.policy_ids, ["token/block1/check0"], "{d:?}");
    assert!(ask(&e, &id, &echo, &read_only(), &env()).allow);
}

#[test]
fn a_new_engine_does_not_reuse_the_old_states() {
    let id = identity(r#"right("tool", "echo");"#, &[]);
    let echo = call("echo", json!({}));
    let old = engine(AUTHORIZER);
    assert!(ask(&old, &id, &echo, &read_only(), &env()).allow);
    // The reload: a new program, a new generation, the same verified token.
    let new = BiscuitEngine::new(
        program("// @id(\"closed\")\ndeny if true;"),
        4,
        crate::testing::biscuit_limits(),
    );
    let d = ask(&new, &id, &echo, &read_only(), &env());
    assert_eq!(
        (d.allow, d.policy_ids.clone(), d.generation),
        (false, vec!["closed".to_owned()], 4)
    );
    assert!(ask(&old, &id, &echo, &read_only(), &env()).allow);
}

fn token_of(id: &Identity) -> Arc<BiscuitToken> {
    Arc::clone(id.biscuit.as_ref().unwrap())
}

#[test]
fn the_cache_is_bounded_and_keyed_by_the_whole_token() {
    let cache = LoadedCache::new(NonZeroUsize::new(2).unwrap());
    let tokens: Vec<_> = (0..3)
        .map(|i| token_of(&identity(&format!("user(\"u{i}\");"), &[])))
        .collect();
    let loads = std::cell::Cell::new(0);
    let get = |t: &Arc<BiscuitToken>, mode| {
        cache.get(Some(t), mode, || {
            loads.set(loads.get() + 1);
            None
        });
    };
    get(&tokens[0], Mode::Targeted);
    get(&tokens[1], Mode::Targeted);
    get(&tokens[0], Mode::Targeted);
    assert_eq!(loads.get(), 2, "a hit does not load");
    get(&tokens[0], Mode::Listing);
    assert_eq!(loads.get(), 3, "each mode has its own state");
    get(&tokens[2], Mode::Targeted);
    assert_eq!(cache.len(), 2, "bounded");
    get(&tokens[0], Mode::Targeted);
    assert_eq!(loads.get(), 4, "the most recently used token stayed");
    get(&tokens[1], Mode::Targeted);
    assert_eq!(loads.get(), 5, "the least recently used token was dropped");
    assert_eq!(cache.len(), 2);

    // The same token verified again (another `Arc`): a hit.
    let again = Arc::new(BiscuitToken::new(
        tokens[1].biscuit().clone(),
        &tokens[1].biscuit().to_base64().unwrap(),
    ));
    get(&again, Mode::Targeted);
    assert_eq!(loads.get(), 5);
    // Another token under the same digest (text of one, token of another): a miss.
    let impostor = Arc::new(BiscuitToken::new(
        tokens[0].biscuit().clone(),
        &tokens[1].biscuit().to_base64().unwrap(),
    ));
    assert_eq!(impostor.sha256(), tokens[1].sha256());
    get(&impostor, Mode::Targeted);
    assert_eq!(loads.get(), 6, "found by digest, compared whole");
}

#[test]
fn an_engine_keeps_at_most_its_bound() {
    let e = engine(AUTHORIZER);
    let echo = call("echo", json!({}));
    for i in 0..cache::TOKENS.get() + 5 {
        let id = identity(&format!("right(\"tool\", \"echo\"); user(\"u{i}\");"), &[]);
        assert!(ask(&e, &id, &echo, &read_only(), &env()).allow);
    }
    assert_eq!(e.program.cache.as_ref().unwrap().len(), cache::TOKENS.get());
}

/// The comparisons above are only worth something if the loaded path is taken: it is,
/// in every mode, for every caller but the third-party token.
#[test]
fn ordinary_callers_take_the_loaded_path() {
    let e = engine(AUTHORIZER);
    for (i, id) in callers().iter().enumerate() {
        // `callers()[6]` is `third_party()`.
        let third_party = i == 6;
        for mode in [Mode::Targeted, Mode::TargetFree, Mode::Listing] {
            let loaded = e.program.loaded(id.biscuit.as_ref(), mode);
            assert_eq!(
                loaded.is_some(),
                !third_party,
                "caller {i}, mode {}",
                mode.index()
            );
        }
    }
}
