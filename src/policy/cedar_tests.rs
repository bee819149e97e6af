//! Unit tests of the Cedar engine: each guards one rule of the model or the decision
//! semantics, and fails if that rule is removed.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::*;
use crate::auth::AuthMethod;
use crate::mcp::CompletionRef;
use crate::policy::load::{compile, SourceFile};
use crate::policy::ItemAnnotations;

const EXAMPLE_SCHEMA: &str = include_str!("../../policies/example/mcp.cedarschema");

const ROLES: &str = r#"[
  {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": [{"type": "Role", "id": "staff"}]},
  {"uid": {"type": "Role", "id": "staff"}, "attrs": {}, "parents": []}
]"#;

/// The example schema with more arguments and claims declared, for the tests below.
fn schema() -> String {
    let args = "type Arguments = {\n  city?: String,\n};";
    let claims = "type Claims = {\n  department?: String,\n  email?: String,\n};";
    assert!(EXAMPLE_SCHEMA.contains(args) && EXAMPLE_SCHEMA.contains(claims));
    EXAMPLE_SCHEMA
        .replace(
            args,
            r#"type Arguments = {
  city?: String,
  ratio?: String,
  note?: String,
  count?: Long,
  tags?: Set<String>,
  nested?: { deep?: { x?: Long } },
  x?: { "__entity"?: { "type"?: String, id?: String } },
};"#,
        )
        .replace(
            claims,
            "type Claims = {\n  department?: String,\n  level?: Long,\n};",
        )
}

pub(super) fn engine(policies: &str) -> CedarEngine {
    let bundle = compile(
        &[SourceFile {
            path: PathBuf::from("t.cedar"),
            text: policies.to_owned(),
        }],
        &SourceFile {
            path: PathBuf::from("t.cedarschema"),
            text: schema(),
        },
        Some(&SourceFile {
            path: PathBuf::from("entities.json"),
            text: ROLES.to_owned(),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    CedarEngine::new(bundle, 7).unwrap()
}

pub(super) fn user(subject: &str, roles: &[&str]) -> Identity {
    Identity {
        subject: subject.to_owned(),
        agent: None,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        scopes: vec!["mcp:tools".to_owned()],
        claims: Map::new(),
        method: AuthMethod::Jwt,
        biscuit: None,
    }
}

pub(super) fn env() -> RequestEnv {
    RequestEnv {
        time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        source_ip: None,
        session_id: None,
        taints: Vec::new(),
        protocol_version: None,
        mtls: None,
    }
}

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub(super) fn decide_with(
    engine: &CedarEngine,
    identity: &Identity,
    action: &McpAction,
    annotations: Option<Map<String, Value>>,
    env: &RequestEnv,
) -> Decision {
    engine.decide(&AuthzRequest {
        identity,
        action,
        annotations: annotations.as_ref(),
        definition: Default::default(),
        env,
    })
}

fn call(engine: &CedarEngine, identity: &Identity, tool: &str, args: Value) -> Decision {
    call_annotated(engine, identity, tool, args, None)
}

fn call_annotated(
    engine: &CedarEngine,
    identity: &Identity,
    tool: &str,
    args: Value,
    annotations: Option<Value>,
) -> Decision {
    let action = McpAction::CallTool {
        name: tool.to_owned(),
        arguments: args,
    };
    decide_with(engine, identity, &action, annotations.map(obj), &env())
}

fn listed(engine: &CedarEngine, identity: &Identity, kind: ListKind, name: &str) -> bool {
    listed_annotated(engine, identity, kind, name, None)
}

fn listed_annotated(
    engine: &CedarEngine,
    identity: &Identity,
    kind: ListKind,
    name: &str,
    annotations: Option<Value>,
) -> bool {
    let annotations = annotations.map(obj);
    engine.may_list(
        identity,
        &ListedItem {
            kind,
            name,
            annotations: annotations.as_ref().map(Into::into),
            definition: Default::default(),
        },
        &env(),
    )
}

const ANY_TOOL_FOR_STAFF: &str = r#"
@id("staff-tools")
permit (principal in Role::"staff", action == Action::"call_tool", resource);
"#;

#[test]
fn call_tool_is_denied_by_default() {
    let e = engine(ANY_TOOL_FOR_STAFF);
    let d = call(&e, &user("bob", &[]), "echo", json!({}));
    assert!(!d.allow);
    assert!(d.policy_ids.is_empty() && d.errors.is_empty(), "{d:?}");
}

#[test]
fn permit_through_role_and_role_parent() {
    let e = engine(ANY_TOOL_FOR_STAFF);
    let staff = call(&e, &user("carol", &["staff"]), "echo", json!({}));
    assert!(staff.allow, "{staff:?}");
    // `Role::"admin"` is in `Role::"staff"` only through entities.json.
    let admin = call(&e, &user("alice", &["admin"]), "echo", json!({}));
    assert!(admin.allow, "{admin:?}");
    assert_eq!(admin.policy_ids, ["staff-tools"]);
}

#[test]
fn forbid_wins_over_permit() {
    let e = engine(
        r#"
        @id("all") permit (principal, action == Action::"call_tool", resource);
        @id("no-rm") forbid (principal, action == Action::"call_tool", resource == Tool::"rm");
        "#,
    );
    assert!(call(&e, &user("a", &[]), "ls", json!({})).allow);
    let d = call(&e, &user("a", &[]), "rm", json!({}));
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["no-rm"]);
}

#[test]
fn list_and_protocol_are_allowed_unless_forbidden() {
    let e = engine(
        r#"
        @id("no-anon-list")
        forbid (principal, action == Action::"list_tools", resource)
        when { principal.auth_method == "anonymous" };
        "#,
    );
    let list = McpAction::List(ListKind::Tools);
    let ok = decide_with(&e, &user("a", &[]), &list, None, &env());
    assert!(ok.allow && ok.policy_ids.is_empty(), "{ok:?}");
    let anon = decide_with(&e, &Identity::anonymous(), &list, None, &env());
    assert!(!anon.allow);
    assert_eq!(anon.policy_ids, ["no-anon-list"]);

    let ping = McpAction::Protocol {
        method: "ping".into(),
    };
    assert!(decide_with(&e, &Identity::anonymous(), &ping, None, &env()).allow);
    assert!(decide_with(&e, &user("a", &[]), &McpAction::Response, None, &env()).allow);
    // `other` is not one of them: it needs a permit.
    let other = McpAction::Other {
        method: "x/y".into(),
    };
    assert!(!decide_with(&e, &user("a", &[]), &other, None, &env()).allow);
}

#[test]
fn forbid_on_protocol_method_resource() {
    let e = engine(
        r#"forbid (principal, action == Action::"protocol", resource == Method::"logging/setLevel");"#,
    );
    let set_level = McpAction::Protocol {
        method: "logging/setLevel".into(),
    };
    let d = decide_with(&e, &user("a", &[]), &set_level, None, &env());
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["t/policy0"]);
}

#[test]
fn annotations_drive_rules() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { resource.annotations has readOnlyHint && resource.annotations.readOnlyHint };"#,
    );
    let u = user("a", &[]);
    let ro = json!({"readOnlyHint": true, "title": "Read"});
    assert!(call_annotated(&e, &u, "t", json!({}), Some(ro)).allow);
    let rw = json!({"readOnlyHint": false});
    assert!(!call_annotated(&e, &u, "t", json!({}), Some(rw)).allow);
    assert!(!call(&e, &u, "t", json!({})).allow);
}

const WEATHER: &str = r#"
@id("weather")
permit (principal, action == Action::"call_tool", resource == Tool::"get_weather")
when { context.arguments has city && ["Paris", "Tokyo"].contains(context.arguments.city) };
"#;

#[test]
fn arguments_drive_rules() {
    let e = engine(WEATHER);
    let u = user("a", &[]);
    assert!(call(&e, &u, "get_weather", json!({"city": "Paris"})).allow);
    assert!(!call(&e, &u, "get_weather", json!({"city": "Atlantis"})).allow);
    assert!(!call(&e, &u, "get_weather", json!({})).allow);
    // A non-object `arguments` is refused outright.
    let d = call(&e, &u, "get_weather", json!(["Paris"]));
    assert!(!d.allow && !d.errors.is_empty(), "{d:?}");
}

#[test]
fn entity_escape_in_arguments_stays_a_record() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { context.arguments has x && context.arguments.x has "__entity" &&
                  context.arguments.x["__entity"] has id &&
                  context.arguments.x["__entity"].id == "admin" };"#,
    );
    let d = call(
        &e,
        &user("a", &[]),
        "t",
        json!({"x": {"__entity": {"type": "User", "id": "admin"}}}),
    );
    assert!(d.allow, "{d:?}");
    assert!(d.errors.is_empty(), "{d:?}");
}

#[test]
fn float_null_and_nested_arguments() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { context.arguments has ratio && context.arguments.ratio == "0.5" &&
                  !(context.arguments has note) &&
                  context.arguments has nested && context.arguments.nested has deep &&
                  context.arguments.nested.deep has x && context.arguments.nested.deep.x == 3 &&
                  context.arguments has tags && context.arguments.tags.contains("b") };"#,
    );
    let u = user("a", &[]);
    let args =
        json!({"ratio": 0.5, "note": null, "nested": {"deep": {"x": 3}}, "tags": ["a", "b"]});
    assert!(call(&e, &u, "t", args).allow);
    let wrong = json!({"ratio": 0.5, "note": "n", "nested": {"deep": {"x": 3}}, "tags": ["b"]});
    assert!(!call(&e, &u, "t", wrong).allow);
}

#[test]
fn too_deep_arguments_deny() {
    let e = engine(r#"permit (principal, action == Action::"call_tool", resource);"#);
    let mut v = json!(1);
    for _ in 0..40 {
        v = json!({ "a": v });
    }
    let d = call(&e, &user("a", &[]), "t", v);
    assert!(!d.allow);
    assert!(d.errors[0].contains("deeper"), "{d:?}");
}

#[test]
fn evaluation_errors_never_allow() {
    // The schema says `claims.level` is a Long; a token with a string makes `>` fail.
    let mut u = user("a", &[]);
    u.claims = obj(json!({"level": "high"}));

    let permit_errs = engine(
        r#"@id("level") permit (principal, action == Action::"call_tool", resource)
           when { principal.claims has level && principal.claims.level > 3 };"#,
    );
    let d = call(&permit_errs, &u, "t", json!({}));
    assert!(!d.allow);
    assert_eq!(d.errors.len(), 1, "{d:?}");

    // A forbid that errors denies even though a permit matched.
    let forbid_errs = engine(
        r#"@id("all") permit (principal, action == Action::"call_tool", resource);
           @id("low-level") forbid (principal, action, resource)
           when { principal.claims has level && principal.claims.level < 3 };"#,
    );
    let d = call(&forbid_errs, &u, "t", json!({}));
    assert!(!d.allow, "{d:?}");
    assert_eq!(d.policy_ids, ["low-level"]);
    assert!(d.errors[0].contains("low-level"), "{d:?}");
    // Same for allowed-unless-forbidden actions, and for listing.
    let list = McpAction::List(ListKind::Tools);
    assert!(!decide_with(&forbid_errs, &u, &list, None, &env()).allow);
    assert!(!listed(&forbid_errs, &u, ListKind::Tools, "t"));
    // With a well-typed claim, all is well.
    u.claims = obj(json!({"level": 5}));
    assert!(call(&forbid_errs, &u, "t", json!({})).allow);
}

#[test]
fn listing_uses_partial_evaluation() {
    let e = engine(&format!(
        "{WEATHER}\n{ANY_TOOL_FOR_STAFF}\n{}",
        r#"@id("no-destructive") forbid (principal, action == Action::"call_tool", resource)
           when { resource.annotations has destructiveHint && resource.annotations.destructiveHint };
           @id("prompt") permit (principal, action == Action::"get_prompt", resource == Prompt::"p");
           @id("docs") permit (principal, action == Action::"read_resource", resource)
           when { resource.uri like "docs://*" };"#
    ));
    let bob = user("bob", &[]);
    let safe = || Some(json!({"readOnlyHint": true}));
    // Residual: depends on arguments → listed.
    assert!(listed_annotated(
        &e,
        &bob,
        ListKind::Tools,
        "get_weather",
        safe()
    ));
    // Concrete deny: no permit can apply → hidden.
    assert!(!listed_annotated(&e, &bob, ListKind::Tools, "echo", safe()));
    // Concrete allow.
    let staff = user("carol", &["staff"]);
    assert!(listed_annotated(
        &e,
        &staff,
        ListKind::Tools,
        "echo",
        safe()
    ));
    // A tool that declares nothing gets the spec's defaults: destructive.
    assert!(!listed(&e, &staff, ListKind::Tools, "echo"));
    // A forbid on the item's annotations hides it even from staff.
    let destructive = Some(json!({"destructiveHint": true}));
    assert!(!listed_annotated(
        &e,
        &staff,
        ListKind::Tools,
        "rm",
        destructive
    ));
    assert!(listed(&e, &bob, ListKind::Prompts, "p"));
    assert!(!listed(&e, &bob, ListKind::Prompts, "q"));
    assert!(listed(&e, &bob, ListKind::Resources, "docs://a"));
    assert!(listed(
        &e,
        &bob,
        ListKind::ResourceTemplates,
        "docs://{page}"
    ));
    assert!(!listed(&e, &bob, ListKind::Resources, "file:///etc/passwd"));
}

#[test]
fn listing_sees_the_real_context_besides_arguments() {
    // The forbid reads `context.session`, the permit `context.arguments`: only the
    // arguments are unknown at list time, so the taint still hides the tool.
    let e = engine(&format!(
        "{WEATHER}\n{}",
        r#"@id("tainted") forbid (principal, action == Action::"call_tool", resource)
           when { !context.session.taints.isEmpty() };"#
    ));
    let u = user("a", &[]);
    assert!(listed(&e, &u, ListKind::Tools, "get_weather"));
    let mut tainted = env();
    tainted.taints = vec!["pii".into()];
    let item = ListedItem {
        kind: ListKind::Tools,
        name: "get_weather",
        annotations: None,
        definition: Default::default(),
    };
    assert!(!e.may_list(&u, &item, &tainted));
}

#[test]
fn listing_variant_rewrites_only_context_arguments() {
    let policy: Policy = r#"permit (principal, action, resource)
        when { context has arguments && context.arguments has city && context.time > 0 };"#
        .parse()
        .unwrap();
    let rewritten = listing_variant(&policy).unwrap();
    let text = rewritten.to_string();
    assert!(
        text.contains(r#"McpWarden::Listing::"arguments".arguments has city"#),
        "{text}"
    );
    assert!(text.contains("context has arguments"), "{text}");
    assert!(text.contains("context.time"), "{text}");
    let untouched: Policy = r#"permit (principal, action, resource) when { context.time > 0 };"#
        .parse()
        .unwrap();
    assert_eq!(listing_variant(&untouched).unwrap(), untouched);
}

#[test]
fn resource_index_keeps_generic_policies() {
    let e = engine(
        r#"@id("echo") permit (principal, action == Action::"call_tool", resource == Tool::"echo");
           @id("ro") permit (principal, action == Action::"call_tool", resource)
           when { resource.annotations has readOnlyHint && resource.annotations.readOnlyHint };
           @id("no-echo-for-bob") forbid (principal == User::"bob", action, resource == Tool::"echo");"#,
    );
    let index = &e.by_action["call_tool"];
    assert_eq!(index.generic.len(), 1);
    assert_eq!(index.by_resource.len(), 1);
    let u = user("a", &[]);
    assert!(call(&e, &u, "echo", json!({})).allow);
    let ro = Some(json!({"readOnlyHint": true}));
    let d = call_annotated(&e, &u, "echo", json!({}), ro.clone());
    assert_eq!(d.policy_ids, ["echo", "ro"]);
    assert!(call_annotated(&e, &u, "other", json!({}), ro).allow);
    assert!(!call(&e, &u, "other", json!({})).allow);
    assert_eq!(
        call(&e, &user("bob", &[]), "echo", json!({})).policy_ids,
        ["no-echo-for-bob"]
    );
}

#[test]
fn argument_dependent_forbid_keeps_listing_when_permitted() {
    let e = engine(&format!(
        "{ANY_TOOL_FOR_STAFF}\n{}",
        r#"forbid (principal, action == Action::"call_tool", resource == Tool::"sh")
           when { context.arguments has count && context.arguments.count > 10 };"#
    ));
    let staff = user("carol", &["staff"]);
    assert!(listed(&e, &staff, ListKind::Tools, "sh"));
    assert!(call(&e, &staff, "sh", json!({"count": 1})).allow);
    assert!(!call(&e, &staff, "sh", json!({"count": 11})).allow);
}

#[test]
fn decision_carries_ids_and_generation() {
    let e = engine(ANY_TOOL_FOR_STAFF);
    let d = call(&e, &user("c", &["staff"]), "x", json!({}));
    assert_eq!(
        d,
        Decision {
            allow: true,
            policy_ids: vec!["staff-tools".into()],
            errors: vec![],
            generation: 7,
        }
    );
    let denied = call(&e, &user("c", &[]), "x", json!({}));
    assert_eq!(denied.generation, 7);
}

#[test]
fn context_carries_environment() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { context.time == 1700000000 &&
                  context.datetime == datetime("2023-11-14T22:13:20Z") &&
                  context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) &&
                  context.session.id == "s1" && context.session.taints.contains("pii") &&
                  context.protocol_version == "2025-06-18" &&
                  context has agent && context.agent == "claude" &&
                  principal has agent && principal.agent == "claude" };"#,
    );
    let mut u = user("a", &[]);
    u.agent = Some("claude".into());
    let mut env = env();
    // An IPv4-mapped IPv6 address is read as the IPv4 address.
    env.source_ip = Some("::ffff:10.1.2.3".parse().unwrap());
    env.session_id = Some("s1".into());
    env.taints = vec!["pii".into()];
    env.protocol_version = Some("2025-06-18".into());
    let action = McpAction::CallTool {
        name: "t".into(),
        arguments: json!({}),
    };
    let d = decide_with(&e, &u, &action, None, &env);
    assert!(d.allow, "{d:?}");
    env.source_ip = Some("2001:db8::1".parse().unwrap());
    let d = decide_with(&e, &u, &action, None, &env);
    assert!(!d.allow && d.errors.is_empty(), "{d:?}");
}

/// The engine reuses the `datetime` and `ip` expressions of the context (per second, per
/// address): each request must still see its own second and its own address.
#[test]
fn cached_datetime_and_source_ip_follow_each_request() {
    let e = engine(
        r#"@id("at-t0") permit (principal, action == Action::"call_tool", resource == Tool::"t0")
           when { context.datetime == datetime("2023-11-14T22:13:20Z") };
           @id("after-t0") permit (principal, action == Action::"call_tool", resource == Tool::"t1")
           when { context.datetime > datetime("2023-11-14T22:13:20Z") };
           @id("inside") permit (principal, action == Action::"call_tool", resource == Tool::"t2")
           when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
    );
    let u = user("a", &[]);
    let call = |tool: &str, env: &RequestEnv| {
        let action = McpAction::CallTool {
            name: tool.into(),
            arguments: json!({}),
        };
        decide_with(&e, &u, &action, None, env).allow
    };
    let t0 = env();
    let mut t1 = env();
    t1.time += Duration::from_secs(1);
    let mut t0_late = env();
    t0_late.time += Duration::from_millis(999);
    for _ in 0..2 {
        assert!(call("t0", &t0) && !call("t1", &t0));
        assert!(!call("t0", &t1) && call("t1", &t1));
        // Same second, later in it: still that second.
        assert!(call("t0", &t0_late) && !call("t1", &t0_late));
    }
    let mut inside = env();
    inside.source_ip = Some("10.9.8.7".parse().unwrap());
    let mut outside = env();
    outside.source_ip = Some("192.0.2.1".parse().unwrap());
    for _ in 0..2 {
        assert!(call("t2", &inside));
        assert!(!call("t2", &outside));
        assert!(!call("t2", &env()), "no address, no `source_ip`");
    }
    // The listing rule builds its context the same way.
    let item = ListedItem {
        kind: ListKind::Tools,
        name: "t1",
        annotations: None,
        definition: Default::default(),
    };
    assert!(!e.may_list(&u, &item, &t0) && e.may_list(&u, &item, &t1));
}

/// Listing reuses the previous item's principal and context only for an equal caller
/// and environment: a change in either must be seen by the next item.
#[test]
fn listing_reuses_caller_parts_only_while_they_are_equal() {
    let e = engine(
        r#"@id("staff") permit (principal in Role::"staff", action == Action::"call_tool", resource);
           @id("tainted") forbid (principal, action == Action::"call_tool", resource)
           when { context.session.taints.contains("pii") };
           @id("dept") permit (principal, action == Action::"call_tool", resource == Tool::"d")
           when { principal.claims has department && principal.claims.department == "x" };"#,
    );
    let listed = |identity: &Identity, env: &RequestEnv, name: &str| {
        let item = ListedItem {
            kind: ListKind::Tools,
            name,
            annotations: None,
            definition: Default::default(),
        };
        e.may_list(identity, &item, env)
    };
    let staff = user("s", &["staff"]);
    let other = user("s", &["guest"]);
    let clean = env();
    let mut tainted = env();
    tainted.taints = vec!["pii".into()];
    for _ in 0..2 {
        assert!(listed(&staff, &clean, "a") && listed(&staff, &clean, "b"));
        assert!(!listed(&other, &clean, "a"), "roles changed");
        assert!(listed(&staff, &clean, "a"));
        assert!(!listed(&staff, &tainted, "a"), "taints changed");
        assert!(listed(&staff, &clean, "a"));
    }
    let mut x = user("s", &[]);
    x.claims = obj(json!({"department": "x"}));
    let mut y = x.clone();
    y.claims = obj(json!({"department": "y"}));
    assert!(listed(&x, &clean, "d") && !listed(&y, &clean, "d") && listed(&x, &clean, "d"));
}

#[test]
fn blind_answers_kept_across_lists_follow_the_context_they_read() {
    let e = engine(
        r#"@id("staff") permit (principal in Role::"staff", action == Action::"call_tool", resource);
           @id("late") forbid (principal, action == Action::"call_tool", resource)
           when { context.time >= 1700000005 && resource.annotations.openWorldHint };"#,
    );
    let staff = user("s", &["staff"]);
    let at = |second: u64, session: Option<&str>| RequestEnv {
        time: env().time + Duration::from_secs(second),
        session_id: session.map(str::to_owned),
        ..env()
    };
    let listed = |env: &RequestEnv| {
        let item = ListedItem {
            kind: ListKind::Tools,
            name: "web",
            annotations: None,
            definition: Default::default(),
        };
        e.may_list(&staff, &item, env)
    };
    let kept = || {
        e.callers
            .get(&e, &staff)
            .expect("caller")
            .listing_answers
            .len()
    };
    assert!(listed(&at(0, None)));
    assert_eq!(kept(), 1);
    // The same second in another session: the policies read the time, not the session,
    // so the answer kept is the answer.
    assert!(listed(&at(0, Some("other"))));
    assert_eq!(kept(), 1);
    // Five seconds later the forbid holds: a kept answer keyed without the time would
    // list the tool.
    assert!(!listed(&at(5, None)));
    assert_eq!(kept(), 2);
    assert!(listed(&at(0, None)));
}

#[test]
fn resources_prompts_and_completion_targets() {
    let e = engine(
        r#"permit (principal, action == Action::"read_resource", resource == Resource::"file:///a");
           permit (principal, action == Action::"subscribe_resource", resource == Resource::"file:///a");
           permit (principal, action == Action::"get_prompt", resource == Prompt::"p");
           permit (principal, action == Action::"complete", resource == Prompt::"p");"#,
    );
    let u = user("a", &[]);
    let check = |action: McpAction| decide_with(&e, &u, &action, None, &env()).allow;
    assert!(check(McpAction::ReadResource {
        uri: "file:///a".into()
    }));
    assert!(!check(McpAction::ReadResource {
        uri: "file:///b".into()
    }));
    assert!(check(McpAction::SubscribeResource {
        uri: "file:///a".into(),
        unsubscribe: true
    }));
    assert!(check(McpAction::GetPrompt {
        name: "p".into(),
        arguments: json!({})
    }));
    assert!(check(McpAction::Complete {
        reference: CompletionRef::Prompt("p".into())
    }));
    assert!(!check(McpAction::Complete {
        reference: CompletionRef::Resource("file:///a".into())
    }));
}

#[test]
fn action_lists_match_their_members() {
    let e = engine(
        r#"@id("both") permit (principal, action in [Action::"call_tool", Action::"get_prompt"], resource);"#,
    );
    let d = call(&e, &user("a", &[]), "t", json!({}));
    assert_eq!(d.policy_ids, ["both"]);
    let read = McpAction::ReadResource { uri: "x".into() };
    assert!(!decide_with(&e, &user("a", &[]), &read, None, &env()).allow);
}

#[test]
fn policies_are_filtered_by_action_including_groups() {
    // Action groups are resolved through the schema's action entities.
    let schema_with_group = schema().replace(
        "action call_tool appliesTo",
        "action tools;\naction call_tool in [tools] appliesTo",
    );
    let bundle = compile(
        &[SourceFile {
            path: PathBuf::from("g.cedar"),
            text: r#"@id("g") permit (principal, action in Action::"tools", resource);"#.into(),
        }],
        &SourceFile {
            path: PathBuf::from("g.cedarschema"),
            text: schema_with_group,
        },
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = CedarEngine::new(bundle, 1).unwrap();
    let d = call(&e, &user("a", &[]), "t", json!({}));
    assert!(d.allow, "{d:?}");
    assert_eq!(e.by_action["call_tool"].generic.len(), 1);
    assert!(e.by_action["get_prompt"].generic.is_empty());
}

#[test]
fn datetime_formatting() {
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339_utc(951_825_600), "2000-02-29T12:00:00Z");
}

/// Each of 100 similar policies is the one that decides its own tool and city, and no
/// other. (What a decision over such a set costs is measured by the micro-benchmarks,
/// `cargo bench --bench micro -- cedar`; a timed assertion here would fail on a busy
/// machine, so none is made.)
#[test]
fn each_of_100_policies_decides_its_own_calls() {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "@id(\"p{i}\") permit (principal in Role::\"staff\", action == Action::\"call_tool\", resource == Tool::\"t{i}\")\n\
             when {{ context.arguments has city && context.arguments.city == \"c{i}\" }};\n"
        ));
    }
    let e = engine(&text);
    let u = user("c", &["admin"]);
    for i in 0..100 {
        let d = call(&e, &u, &format!("t{i}"), json!({"city": format!("c{i}")}));
        assert!(d.allow, "t{i}");
    }
    // Another policy's city is not enough.
    let d = call(&e, &u, "t1", json!({"city": "c2"}));
    assert!(!d.allow);
}

#[test]
fn undeclared_hints_take_the_spec_defaults() {
    // A caller who skips `tools/list` must not dodge a forbid written on annotations.
    let e = engine(
        r#"@id("staff-any") permit (principal in Role::"staff", action == Action::"call_tool", resource);
           @id("no-destructive") forbid (principal, action == Action::"call_tool", resource)
           when { resource.annotations.destructiveHint };
           @id("no-open-world") forbid (principal, action == Action::"call_tool", resource)
           when { resource.annotations.openWorldHint };"#,
    );
    let staff = user("carol", &["staff"]);
    let unknown = call(&e, &staff, "rm", json!({}));
    assert!(!unknown.allow);
    assert!(unknown.policy_ids.contains(&"no-destructive".to_owned()));
    assert!(unknown.policy_ids.contains(&"no-open-world".to_owned()));
    // Read-only implies non-destructive unless declared otherwise.
    let ro = obj(json!({"readOnlyHint": true, "openWorldHint": false}));
    let d = decide_with(
        &e,
        &staff,
        &McpAction::CallTool {
            name: "ls".into(),
            arguments: json!({}),
        },
        Some(ro),
        &env(),
    );
    assert!(d.allow, "{d:?}");
    // Non-boolean junk from the upstream counts as undeclared.
    let junk = obj(json!({"readOnlyHint": "yes", "destructiveHint": "no", "openWorldHint": false}));
    let d = decide_with(
        &e,
        &staff,
        &McpAction::CallTool {
            name: "x".into(),
            arguments: json!({}),
        },
        Some(junk),
        &env(),
    );
    assert!(!d.allow);
}

/// The one-pass listing (blind policies once per class of items, the rest per item)
/// against the single-pass rule (every policy, unindexed, for each item), on generated
/// policy sets, catalogues, callers and environments.
mod one_pass {
    use super::*;
    use proptest::prelude::*;

    /// Policy templates; `{n}` is an item number. Together they reach every split: tool
    /// scopes, blind annotation rules, name patterns, conditions on `resource ==`,
    /// argument residuals, taints, pinning facts, forbids that always error, other kinds.
    const TEMPLATES: &[&str] = &[
        r#"permit (principal, action == Action::"call_tool", resource == Tool::"t{n}");"#,
        r#"forbid (principal, action == Action::"call_tool", resource == Tool::"t{n}") when { resource.annotations.destructiveHint };"#,
        r#"permit (principal in Role::"staff", action == Action::"call_tool", resource) when { resource.annotations.readOnlyHint };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.annotations.destructiveHint } unless { principal in Role::"admin" };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { resource.name like "t{n}*" };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { context.arguments has count && context.arguments.count < {n} };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { context.session.taints.contains("secret") && resource.annotations.openWorldHint };"#,
        r#"permit (principal, action, resource is Tool) when { resource.pinned };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.invisible_characters };"#,
        r#"permit (principal, action == Action::"read_resource", resource) when { resource.uri like "docs://*" };"#,
        r#"permit (principal in Role::"admin", action == Action::"get_prompt", resource == Prompt::"p{n}");"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource == Tool::"t{n}" };"#,
        r#"forbid (principal, action == Action::"call_tool", resource == Tool::"t{n}") when { context.time * 10000000000000 > 0 };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.annotations.idempotentHint && context.time * 10000000000000 > 0 };"#,
        r#"permit (principal, action in [Action::"call_tool", Action::"get_prompt"], resource);"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { resource.annotations has title && resource.annotations.title == "T{n}" };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { context.arguments has note && context.arguments.note == "x" && resource.annotations.readOnlyHint };"#,
        r#"permit (principal, action == Action::"read_resource", resource == Resource::"file://r{n}");"#,
        r#"permit (principal in Role::"staff", action == Action::"get_prompt", resource) when { resource.name != "p{n}" };"#,
        r#"forbid (principal, action, resource) when { context.session.taints.contains("quarantine") };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { "t{n}" == resource.name && resource.annotations.readOnlyHint };"#,
        r#"permit (principal in Role::"staff", action == Action::"call_tool", resource) when { resource.name like "*{n}" || resource.name != "t{n}" && resource.pinned };"#,
        r#"permit (principal, action == Action::"get_prompt", resource) when { resource.name like "p*{n}*" };"#,
        r#"forbid (principal, action == Action::"read_resource", resource) when { resource.uri like "docs://d{n}" };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { resource.name like "t{n}" && context.arguments has count };"#,
        r#"forbid (principal, action == Action::"call_tool", resource) when { context.time > 170000000{n} && resource.annotations.idempotentHint };"#,
        r#"permit (principal, action == Action::"call_tool", resource) when { context has source_ip && resource.annotations.readOnlyHint };"#,
        r#"permit (principal, action == Action::"get_prompt", resource) when { context.session.id == "s{n}" };"#,
    ];

    fn policy_set(picks: &[(usize, usize)]) -> String {
        picks
            .iter()
            .map(|&(t, n)| TEMPLATES[t].replace("{n}", &n.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[derive(Debug, Clone)]
    struct Item {
        kind: ListKind,
        n: usize,
        annotations: Option<Map<String, Value>>,
        definition: DefinitionFacts,
    }

    impl Item {
        fn name(&self) -> String {
            match self.kind {
                ListKind::Tools => format!("t{}", self.n),
                ListKind::Prompts => format!("p{}", self.n),
                ListKind::Resources => format!("file://r{}", self.n),
                ListKind::ResourceTemplates => format!("docs://d{}", self.n),
            }
        }
    }

    fn annotations() -> impl Strategy<Value = Option<Map<String, Value>>> {
        let hint = || prop_oneof![Just(None), Just(Some(true)), Just(Some(false))];
        (
            any::<bool>(),
            hint(),
            hint(),
            hint(),
            prop_oneof![Just(None), (0..3usize).prop_map(Some)],
        )
            .prop_map(|(present, read_only, destructive, idempotent, title)| {
                present.then(|| {
                    let mut m = Map::new();
                    for (k, v) in [
                        ("readOnlyHint", read_only),
                        ("destructiveHint", destructive),
                        ("idempotentHint", idempotent),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.to_owned(), Value::Bool(v));
                        }
                    }
                    if let Some(t) = title {
                        m.insert("title".to_owned(), json!(format!("T{t}")));
                    }
                    m
                })
            })
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            prop_oneof![
                4 => Just(ListKind::Tools),
                1 => Just(ListKind::Prompts),
                1 => Just(ListKind::Resources),
                1 => Just(ListKind::ResourceTemplates),
            ],
            0..6usize,
            annotations(),
            any::<(bool, bool)>(),
        )
            .prop_map(
                |(kind, n, annotations, (pinned, invisible_characters))| Item {
                    kind,
                    n,
                    annotations,
                    definition: DefinitionFacts {
                        pinned,
                        invisible_characters,
                    },
                },
            )
    }

    fn budget(cases: u32) -> ProptestConfig {
        crate::testing::proptest_budget(cases, 0x6c69_7374_696e_6721)
    }

    proptest! {
        #![proptest_config(budget(96))]

        #[test]
        fn one_pass_listing_equals_the_single_pass_rule(
            picks in proptest::collection::vec((0..TEMPLATES.len(), 0..6usize), 1..12),
            items in proptest::collection::vec(item(), 1..24),
            roles in proptest::sample::subsequence(vec!["admin", "staff"], 0..=2),
            requests in proptest::collection::vec((
                proptest::sample::subsequence(vec!["quarantine", "secret"], 0..=2),
                0..10u64,
                any::<bool>(),
                proptest::option::of(0..3usize),
            ), 1..4),
        ) {
            let engine = engine(&policy_set(&picks));
            let identity = user("u", &roles);
            // Several lists by one caller under one engine, each in its own context: the
            // blind answers a list leaves with the caller must not answer a list whose
            // context differs in what the policies read.
            for (taints, second, address, session) in &requests {
            let env = RequestEnv {
                taints: taints.iter().map(|t| (*t).to_owned()).collect(),
                time: env().time + Duration::from_secs(*second),
                source_ip: address.then(|| "10.0.0.1".parse().unwrap()),
                session_id: session.map(|n| format!("s{n}")),
                ..env()
            };
            let listing = engine.listing(&ListQuery { identity: &identity, env: &env });
            for item in &items {
                let name = item.name();
                let listed = ListedItem {
                    kind: item.kind,
                    name: &name,
                    annotations: item.annotations.as_ref().map(Into::into),
                    definition: item.definition,
                };
                let expected = engine.single_pass_may_list(&identity, &listed, &env);
                prop_assert_eq!(
                    listing.may_list(&listed),
                    expected,
                    "item {:?} under {}", item, policy_set(&picks)
                );
                // The same annotations as the filter reads them from an answer (raw
                // members of its text), in the same listing: the same answer, whichever
                // form a class was first met in.
                let text = item.annotations.as_ref().map(|a| Value::Object(a.clone()).to_string());
                let checked = text.as_ref().map(|t| crate::mcp::raw::check(t.as_bytes(), 8).unwrap());
                let object = checked.as_ref().map(|c| c.object(c.text()).unwrap());
                let raw = ListedItem {
                    annotations: object.as_ref().map(|o| ItemAnnotations::Raw(o.members())),
                    ..listed
                };
                prop_assert_eq!(
                    listing.may_list(&raw),
                    expected,
                    "raw item {:?} under {}", item, policy_set(&picks)
                );
            }
            }
        }
    }
}

#[test]
fn an_item_whose_annotations_cannot_be_built_is_hidden_even_in_a_known_class() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource) when { resource.annotations.readOnlyHint };"#,
    );
    let u = user("u", &[]);
    let shallow = obj(json!({"readOnlyHint": true, "extra": 1}));
    let mut nested = json!(1);
    for _ in 0..crate::policy::MAX_DEPTH + 1 {
        nested = json!({ "a": nested });
    }
    let deep = obj(json!({"readOnlyHint": true, "extra": nested}));
    let item = |annotations| ListedItem {
        kind: ListKind::Tools,
        name: "x",
        annotations: Some(ItemAnnotations::Map(annotations)),
        definition: Default::default(),
    };
    let env = env();
    let listing = e.listing(&ListQuery {
        identity: &u,
        env: &env,
    });
    // The same class for the blind policy (it reads `readOnlyHint` only), but the second
    // item's entity cannot be built: hidden, as the single-pass rule hides it.
    assert!(listing.may_list(&item(&shallow)));
    assert!(!listing.may_list(&item(&deep)));
    assert!(!e.single_pass_may_list(&u, &item(&deep), &env));
}

#[test]
fn name_tests_tell_classes_apart() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource) when { resource.name like "svc_*" };
           forbid (principal, action == Action::"call_tool", resource) when { resource.name == "svc_drop" };"#,
    );
    let u = user("u", &[]);
    let env = env();
    let listing = e.listing(&ListQuery {
        identity: &u,
        env: &env,
    });
    let item = |name| ListedItem {
        kind: ListKind::Tools,
        name,
        annotations: None,
        definition: Default::default(),
    };
    for (name, listed) in [
        ("svc_a", true),
        ("svc_drop", false),
        ("other", false),
        ("svc_b", true),
    ] {
        assert_eq!(listing.may_list(&item(name)), listed, "{name}");
    }
}

#[test]
fn a_cached_caller_with_other_claims_is_judged_by_its_own_claims() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { principal.claims has department && principal.claims.department == "a" };"#,
    );
    let mut a = user("u", &[]);
    a.claims = obj(json!({"department": "a"}));
    let mut b = a.clone();
    b.claims = obj(json!({"department": "b"}));
    // Same subject, roles and scopes: the same cache slot, told apart by the claims.
    for _ in 0..2 {
        assert!(call(&e, &a, "x", json!({})).allow);
        assert!(!call(&e, &b, "x", json!({})).allow);
        assert!(listed(&e, &a, ListKind::Tools, "x"));
        assert!(!listed(&e, &b, ListKind::Tools, "x"));
    }
}

#[test]
fn the_caller_cache_stays_bounded() {
    let e = engine(r#"permit (principal, action == Action::"call_tool", resource);"#);
    for i in 0..callers::MAX_CALLERS + 10 {
        assert!(call(&e, &user(&format!("u{i}"), &[]), "x", json!({})).allow);
        assert!(e.callers.len() <= callers::MAX_CALLERS);
    }
}

#[test]
fn each_list_is_judged_by_its_own_taints() {
    let e = engine(
        r#"permit (principal, action == Action::"call_tool", resource);
           forbid (principal, action == Action::"call_tool", resource)
           when { context.session.taints.contains("secret") && resource.annotations.openWorldHint };"#,
    );
    let u = user("u", &[]);
    let clean = env();
    let tainted = RequestEnv {
        taints: vec!["secret".to_owned()],
        ..env()
    };
    let item = ListedItem {
        kind: ListKind::Tools,
        name: "fetch",
        annotations: None,
        definition: Default::default(),
    };
    // The same class of item, asked in turn under both environments: no answer is
    // carried from one list to the next.
    for _ in 0..2 {
        let before = e.listing(&ListQuery {
            identity: &u,
            env: &clean,
        });
        assert!(before.may_list(&item) && before.may_list(&item));
        let after = e.listing(&ListQuery {
            identity: &u,
            env: &tainted,
        });
        assert!(!after.may_list(&item) && !after.may_list(&item));
    }
}
