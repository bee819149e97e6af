//! Tests of the decision's shortcuts (`cedar_index.rs`, `cedar_targets.rs`): which
//! policies are evaluated, the caches' bounds and keys, and a differential property test
//! against the unoptimised decision ([`CedarEngine::naive_decide`]).

use serde_json::{json, Map, Value};

use super::tests::{decide_with, engine, env, obj, user};
use super::*;

/// The ids of the policies a decision of `identity` calling `tool` evaluates.
fn evaluated(e: &CedarEngine, identity: &Identity, tool: &str, taints: &[&str]) -> Vec<String> {
    let caller = e.callers.get(e, identity).unwrap();
    let target = targets::TargetRef::Tool {
        name: tool,
        annotations: None,
        definition: Default::default(),
    };
    let target = caller
        .targets
        .get(e, &caller.entities, target)
        .unwrap()
        .unwrap();
    let taints: Vec<String> = taints.iter().map(|t| (*t).to_owned()).collect();
    let policies = target
        .policies(e, "call_tool", &caller.class, &taints)
        .unwrap();
    policies.iter().map(|p| p.id().to_string()).collect()
}

fn call_in(e: &CedarEngine, identity: &Identity, tool: &str, taints: &[&str]) -> Decision {
    let action = McpAction::CallTool {
        name: tool.to_owned(),
        arguments: json!({}),
    };
    let env = RequestEnv {
        taints: taints.iter().map(|t| (*t).to_owned()).collect(),
        ..env()
    };
    let decision = decide_with(e, identity, &action, None, &env);
    let request = AuthzRequest {
        identity,
        action: &action,
        annotations: None,
        definition: Default::default(),
        env: &env,
    };
    assert_eq!(decision, e.naive_decide(&request));
    decision
}

#[test]
fn policy_ids_are_written_as_cedar_writes_them() {
    for id in [
        "plain-id_1",
        "with space",
        "quote\"d",
        "apostrophe'",
        "back\\slash",
        "tab\tnew\nline",
        "caf\u{e9}",
        "\u{301}accent first",
        "zero\u{200b}width",
        "",
    ] {
        let id = PolicyId::new(id);
        assert_eq!(id_string(&id), id.to_string(), "{id:?}");
    }
}

#[test]
fn a_policy_for_another_principal_is_not_evaluated() {
    let e = engine(
        r#"@id("staff") permit (principal in Role::"staff", action == Action::"call_tool", resource);
           @id("team") permit (principal in Role::"team1", action == Action::"call_tool", resource);
           @id("typed-team") permit (principal is User in Role::"team1", action == Action::"call_tool", resource);
           @id("bob") permit (principal == User::"bob", action == Action::"call_tool", resource);
           @id("users") permit (principal is User, action == Action::"call_tool", resource)
           when { principal.scopes.contains("none") };
           @id("any") forbid (principal, action == Action::"call_tool", resource == Tool::"rm");"#,
    );
    let carol = user("carol", &["staff"]);
    assert_eq!(evaluated(&e, &carol, "ls", &[]), ["staff", "users"]);
    assert_eq!(evaluated(&e, &carol, "rm", &[]), ["staff", "users", "any"]);
    // Through a role's parent (admin is in staff in the static entities).
    let alice = user("alice", &["admin", "team1"]);
    assert_eq!(
        evaluated(&e, &alice, "ls", &[]),
        ["staff", "team", "typed-team", "users"]
    );
    let bob = user("bob", &[]);
    assert_eq!(evaluated(&e, &bob, "ls", &[]), ["bob", "users"]);
    assert_eq!(call_in(&e, &bob, "ls", &[]).policy_ids, ["bob"]);
    assert!(!call_in(&e, &user("dave", &[]), "ls", &[]).allow);
    assert_eq!(
        call_in(&e, &alice, "ls", &[]).policy_ids,
        ["staff", "team", "typed-team"]
    );
}

#[test]
fn a_guarded_policy_is_evaluated_when_the_session_has_its_label() {
    let e = engine(
        r#"@id("all") permit (principal, action == Action::"call_tool", resource);
           @id("pii") forbid (principal, action == Action::"call_tool", resource)
           when { context.session.taints.contains("pii") && resource.annotations.openWorldHint };
           @id("secret") forbid (principal, action == Action::"call_tool", resource)
           when { context.session.taints.contains("secret") };"#,
    );
    let u = user("u", &[]);
    assert_eq!(evaluated(&e, &u, "fetch", &[]), ["all"]);
    assert_eq!(evaluated(&e, &u, "fetch", &["other"]), ["all"]);
    assert_eq!(evaluated(&e, &u, "fetch", &["pii"]), ["all", "pii"]);
    assert_eq!(
        evaluated(&e, &u, "fetch", &["other", "pii", "secret"]),
        ["all", "pii", "secret"]
    );
    assert!(call_in(&e, &u, "fetch", &[]).allow);
    assert_eq!(call_in(&e, &u, "fetch", &["pii"]).policy_ids, ["pii"]);
    assert_eq!(
        call_in(&e, &u, "fetch", &["pii", "secret"]).policy_ids,
        ["pii", "secret"]
    );
    assert!(call_in(&e, &u, "fetch", &["other"]).allow);
}

#[test]
fn a_forbid_whose_guard_is_not_first_still_errors_and_denies() {
    // `context.time * 10^13` overflows: the condition errors wherever it is reached.
    let e = engine(
        r#"@id("all") permit (principal, action == Action::"call_tool", resource);
           @id("late-guard") forbid (principal, action == Action::"call_tool", resource == Tool::"a")
           when { context.time * 10000000000000 > 0 && context.session.taints.contains("pii") };
           @id("second-when") forbid (principal, action == Action::"call_tool", resource == Tool::"b")
           when { context.time * 10000000000000 > 0 } when { context.session.taints.contains("pii") };
           @id("guarded") forbid (principal, action == Action::"call_tool", resource == Tool::"c")
           when { context.session.taints.contains("pii") && context.time * 10000000000000 > 0 };"#,
    );
    let u = user("u", &[]);
    for tool in ["a", "b"] {
        let d = call_in(&e, &u, tool, &[]);
        assert!(!d.allow && d.errors.len() == 1, "{tool}: {d:?}");
    }
    assert_eq!(call_in(&e, &u, "a", &[]).policy_ids, ["late-guard"]);
    assert_eq!(call_in(&e, &u, "b", &[]).policy_ids, ["second-when"]);
    // A true guard comes first: without the label the forbid is false, without error.
    let clean = call_in(&e, &u, "c", &[]);
    assert!(clean.allow && clean.errors.is_empty(), "{clean:?}");
    let tainted = call_in(&e, &u, "c", &["pii"]);
    assert!(!tainted.allow && tainted.errors.len() == 1, "{tainted:?}");
    assert_eq!(tainted.policy_ids, ["guarded"]);
}

#[test]
fn targets_are_keyed_whole_and_bounded() {
    let e = engine(
        r#"@id("ro") permit (principal, action == Action::"call_tool", resource)
           when { resource.annotations.readOnlyHint && !resource.pinned };"#,
    );
    let u = user("u", &[]);
    let call = |annotations: Option<Value>, pinned: bool| {
        let action = McpAction::CallTool {
            name: "t".to_owned(),
            arguments: json!({}),
        };
        let annotations: Option<Map<String, Value>> = annotations.map(obj);
        let env = env();
        let request = AuthzRequest {
            identity: &u,
            action: &action,
            annotations: annotations.as_ref(),
            definition: DefinitionFacts {
                pinned,
                invisible_characters: false,
            },
            env: &env,
        };
        let d = e.decide(&request);
        assert_eq!(d, e.naive_decide(&request));
        d.allow
    };
    // The same name (and hash) each time: told apart by the annotations and the facts.
    for _ in 0..2 {
        assert!(call(Some(json!({"readOnlyHint": true})), false));
        assert!(!call(Some(json!({"readOnlyHint": false})), false));
        assert!(!call(None, false));
        assert!(!call(Some(json!({"readOnlyHint": true})), true));
    }
    // Other kinds with the same name are other targets.
    let prompt = McpAction::GetPrompt {
        name: "t".into(),
        arguments: json!({}),
    };
    assert!(!decide_with(&e, &u, &prompt, None, &env()).allow);

    let caller = e.callers.get(&e, &u).unwrap();
    for i in 0..targets::MAX_TARGETS + 10 {
        let d = call_in(&e, &u, &format!("t{i}"), &[]);
        assert!(!d.allow);
        assert!(caller.targets.len() <= targets::MAX_TARGETS);
    }
}

#[test]
fn selections_are_bounded() {
    let mut text = String::new();
    let n = index::MAX_SELECTIONS + 10;
    for i in 0..n {
        text.push_str(&format!(
            "@id(\"p{i}\") permit (principal, action == Action::\"call_tool\", resource == Tool::\"t{i}\");\n"
        ));
    }
    let e = engine(&text);
    for i in 0..n {
        // Another caller every few tools: the per-caller targets stay small.
        let u = user(&format!("u{}", i / 32), &[]);
        let action = McpAction::CallTool {
            name: format!("t{i}"),
            arguments: json!({}),
        };
        let d = decide_with(&e, &u, &action, None, &env());
        assert_eq!(d.policy_ids, [format!("p{i}")]);
        assert!(e.selections.len() <= index::MAX_SELECTIONS);
    }
}

#[test]
fn many_label_combinations_stay_exact() {
    let mut text =
        String::from(r#"@id("all") permit (principal, action == Action::"call_tool", resource);"#);
    for i in 0..7 {
        text.push_str(&format!(
            "\n@id(\"l{i}\") forbid (principal, action == Action::\"call_tool\", resource)\n\
             when {{ context.session.taints.contains(\"l{i}\") && context.time > {i} }};"
        ));
    }
    let e = engine(&text);
    let u = user("u", &[]);
    let labels: Vec<String> = (0..7).map(|i| format!("l{i}")).collect();
    for round in 0..2 {
        for mask in 0u32..128 {
            let taints: Vec<&str> = (0..7)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| labels[i].as_str())
                .collect();
            let d = call_in(&e, &u, "x", &taints);
            assert_eq!(d.allow, mask == 0, "round {round}, {taints:?}");
            if mask == 0 {
                assert_eq!(d.policy_ids, ["all"]);
            } else {
                assert_eq!(d.policy_ids, taints);
            }
        }
    }
}

/// The optimised decision against the unoptimised one, on generated policy sets,
/// callers (roles, subjects, scopes, claims that make policies error), targets, taints
/// and environments, each request asked twice so that cached entries answer too.
mod differential {
    use super::*;
    use proptest::prelude::*;

    /// Policy templates; `{n}` is a number. Principal scopes of every kind, taint guards
    /// first and not first, forbids that error (always, or only behind a guard),
    /// argument conditions, other actions and resources.
    const TEMPLATES: &[&str] = &[
        r#"permit (principal in Role::"staff", action == Action::"call_tool", resource);"#,
        r#"permit (principal in Role::"admin", action == Action::"call_tool", resource == Tool::"t{n}");"#,
        r#"permit (principal == User::"u{n}", action == Action::"call_tool", resource);"#,
        r#"permit (principal is User in Role::"team{n}", action == Action::"call_tool", resource) when { resource.annotations.readOnlyHint };"#,
        r#"permit (principal in Role::"team{n}", action == Action::"call_tool", resource) when { resource.name like "t{n}*" };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { context.session.taints.contains("secret") && resource.annotations.openWorldHint };"#,
        r#"forbid (principal, action, resource) when { context.session.taints.contains("quarantine") };"#,
        r#"forbid (principal in Role::"team{n}", action == Action::"call_tool", resource) when { context.session.taints.contains("label{n}") && context.time * 10000000000000 > 0 };"#,
        r#"forbid (principal, action == Action::"call_tool", resource == Tool::"t{n}") when { context.time * 10000000000000 > 0 && context.session.taints.contains("label{n}") };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) unless { principal in Role::"staff" } when { context.session.taints.contains("secret") };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { context.session.taints.contains("label{n}") };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { context.session.taints.contains("label{n}") || resource.annotations.readOnlyHint };"#,
        r#"permit (principal in Role::"staff", action == Action::"get_prompt", resource == Prompt::"p{n}");"#,
        r#"forbid (principal == User::"u{n}", action, resource);"#,
        r#"permit (principal, action == Action::"read_resource", resource) when { resource.uri like "docs://*" };"#,
        r#"forbid (principal in Role::"admin", action == Action::"list_tools", resource) when { context.session.taints.contains("secret") };"#,
        r#"forbid (principal, action == Action::"call_tool", resource == Tool::"t{n}") when { context.arguments has count && context.arguments.count > {n} };"#,
        r#"permit (principal, action in [Action::"call_tool", Action::"get_prompt"], resource) when { principal.scopes.contains("s{n}") };"#,
        r#"forbid (principal in Role::"role{n}", action == Action::"call_tool", resource) when { principal.claims has level && principal.claims.level < 3 };"#,
        r#"permit (principal in Role::"role{n}", action == Action::"call_tool", resource) when { principal.claims has level && principal.claims.level > 3 };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.annotations.destructiveHint } unless { principal in Role::"admin" };"#,
        r#"permit (principal, action, resource is Tool) when { resource.pinned };"#,
        r#"forbid (principal in Role::"team{n}", action == Action::"protocol", resource) when { context.session.taints.contains("label{n}") };"#,
        r#"permit (principal == User::"u{n}", action == Action::"other", resource);"#,
        // Partial evaluation per caller and target (`cedar_eval.rs`): an error before
        // the context is reached, an error in the residual, an error Cedar's partial
        // evaluation sets aside behind an unknown, branches, literals folded.
        r#"permit (principal, action == Action::"call_tool", resource) when { principal.claims has level && principal.claims.level > {n} && context.arguments has count };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.annotations.openWorldHint && context.arguments has count && context.arguments.count * 5000000000000000000 > {n} };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { context.arguments has count || (principal.claims has level && principal.claims.level > {n}) };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { if context.arguments has count then context.arguments.count > {n} else resource.annotations.destructiveHint };"#,
        r#"permit (principal in Role::"staff", action == Action::"call_tool", resource) when { context.arguments has count && [0, {n}].contains(context.arguments.count) && context.session.taints.isEmpty() };"#,
    ];

    fn policy_set(picks: &[(usize, usize)]) -> String {
        picks
            .iter()
            .map(|&(t, n)| TEMPLATES[t].replace("{n}", &n.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn identity() -> impl Strategy<Value = Identity> {
        (
            0..4usize,
            proptest::sample::subsequence(
                vec!["admin", "staff", "team1", "team2", "role1", "role2"],
                0..=3,
            ),
            proptest::sample::subsequence(vec!["mcp:tools", "s1", "s2"], 0..=2),
            prop_oneof![Just(None), Just(Some(json!(5))), Just(Some(json!("high")))],
        )
            .prop_map(|(subject, roles, scopes, level)| {
                let mut identity = user(&format!("u{subject}"), &roles);
                identity.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
                if let Some(level) = level {
                    identity.claims = obj(json!({ "level": level }));
                }
                identity
            })
    }

    fn action() -> impl Strategy<Value = McpAction> {
        prop_oneof![
            6 => (0..4usize, proptest::option::of(0..4i64)).prop_map(|(n, count)| McpAction::CallTool {
                name: format!("t{n}"),
                arguments: count.map_or_else(|| json!({}), |count| json!({ "count": count })),
            }),
            1 => (0..3usize).prop_map(|n| McpAction::GetPrompt {
                name: format!("p{n}"),
                arguments: json!({}),
            }),
            1 => prop_oneof![Just("docs://a"), Just("file://r1")]
                .prop_map(|uri| McpAction::ReadResource { uri: uri.into() }),
            1 => Just(McpAction::List(ListKind::Tools)),
            1 => Just(McpAction::Protocol { method: "ping".into() }),
            1 => Just(McpAction::Other { method: "x/y".into() }),
        ]
    }

    fn annotations() -> impl Strategy<Value = Option<Map<String, Value>>> {
        prop_oneof![
            Just(None),
            Just(Some(obj(
                json!({"readOnlyHint": true, "openWorldHint": false})
            ))),
            Just(Some(obj(
                json!({"readOnlyHint": false, "openWorldHint": true})
            ))),
        ]
    }

    #[derive(Debug, Clone)]
    struct Ask {
        identity: usize,
        action: McpAction,
        annotations: Option<Map<String, Value>>,
        pinned: bool,
        taints: Vec<&'static str>,
    }

    fn ask() -> impl Strategy<Value = Ask> {
        (
            0..3usize,
            action(),
            annotations(),
            any::<bool>(),
            proptest::sample::subsequence(
                vec!["label1", "label2", "other", "quarantine", "secret"],
                0..=3,
            ),
        )
            .prop_map(|(identity, action, annotations, pinned, taints)| Ask {
                identity,
                action,
                annotations,
                pinned,
                taints,
            })
    }

    fn budget(cases: u32) -> ProptestConfig {
        crate::testing::proptest_budget(cases, 0x6465_6369_6465_2121)
    }

    proptest! {
        #![proptest_config(budget(128))]

        #[test]
        fn decide_equals_the_unoptimised_decision(
            picks in proptest::collection::vec((0..TEMPLATES.len(), 0..4usize), 1..14),
            identities in proptest::collection::vec(identity(), 3),
            asks in proptest::collection::vec(ask(), 1..16),
        ) {
            let engine = engine(&policy_set(&picks));
            for round in 0..2 {
                for ask in &asks {
                    let env = RequestEnv {
                        taints: ask.taints.iter().map(|t| (*t).to_owned()).collect(),
                        ..env()
                    };
                    let request = AuthzRequest {
                        identity: &identities[ask.identity],
                        action: &ask.action,
                        annotations: ask.annotations.as_ref(),
                        definition: DefinitionFacts {
                            pinned: ask.pinned,
                            invisible_characters: false,
                        },
                        env: &env,
                    };
                    prop_assert_eq!(
                        engine.decide(&request),
                        engine.naive_decide(&request),
                        "round {}: {:?} by {:?} under {}",
                        round, ask, identities[ask.identity], policy_set(&picks)
                    );
                }
            }
        }
    }
}
