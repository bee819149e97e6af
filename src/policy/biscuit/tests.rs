//! The Biscuit engine and the token checks under Cedar, with real tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::KeyPair;
use serde_json::{json, Map, Value};

use super::*;
use crate::auth::AuthMethod;
use crate::biscuit::BiscuitToken;
use crate::mcp::{ListKind, McpAction};
use crate::policy::{ListEverything, ListedItem, RequestEnv};

const AUTHORIZER: &str = r#"
// @id("admin-any-tool")
allow if action("call_tool"), role("admin");

// @id("destructive-admin-only")
deny if action("call_tool"), annotation("destructiveHint", true);

// @id("token-grants-tool")
allow if action("call_tool"), tool($t), right("tool", $t);

// @id("weather-served-cities")
allow if tool("get_weather"), right("weather"), arg("city", $c), ["Paris", "Tokyo"].contains($c);

// @id("no-anonymous-protocol")
deny if action("protocol"), auth_method("anonymous");
"#;

fn program(text: &str) -> AuthorizerProgram {
    compile(
        &[(PathBuf::from("authorizer.datalog"), text.to_owned())],
        &HashMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn engine(text: &str) -> BiscuitEngine {
    BiscuitEngine::new(program(text), 3, crate::testing::biscuit_limits())
}

fn identity(authority: &str, blocks: &[&str]) -> Identity {
    let root = KeyPair::new();
    let mut token = Biscuit::builder()
        .code(authority)
        .unwrap()
        .build(&root)
        .unwrap();
    for block in blocks {
        token = token
            .append(BlockBuilder::new().code(block).unwrap())
            .unwrap();
    }
    let text = token.to_base64().unwrap();
    Identity {
        subject: "alice".into(),
        agent: None,
        roles: vec![],
        scopes: vec![],
        claims: Map::new(),
        method: AuthMethod::Biscuit,
        biscuit: Some(Arc::new(BiscuitToken::new(token, &text))),
    }
}

fn env() -> RequestEnv {
    RequestEnv {
        time: SystemTime::now(),
        source_ip: None,
        session_id: Some("s1".into()),
        taints: vec![],
        protocol_version: None,
        mtls: None,
    }
}

fn call(name: &str, arguments: Value) -> McpAction {
    McpAction::CallTool {
        name: name.into(),
        arguments,
    }
}

fn read_only() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("readOnlyHint".into(), json!(true));
    m
}

fn decide(engine: &dyn PolicyEngine, identity: &Identity, action: &McpAction) -> Decision {
    let annotations = read_only();
    engine.decide(&AuthzRequest {
        identity,
        action,
        annotations: Some(&annotations),
        definition: Default::default(),
        env: &env(),
    })
}

fn listed(engine: &dyn PolicyEngine, identity: &Identity, name: &str) -> bool {
    let annotations = read_only();
    engine.may_list(
        identity,
        &ListedItem {
            kind: ListKind::Tools,
            name,
            annotations: Some((&annotations).into()),
            definition: Default::default(),
        },
        &env(),
    )
}

#[test]
fn token_facts_allow_and_deny() {
    let e = engine(AUTHORIZER);
    let alice = identity(r#"user("alice"); right("tool", "echo");"#, &[]);
    let d = decide(&e, &alice, &call("echo", json!({})));
    assert!(d.allow, "{d:?}");
    assert_eq!(d.policy_ids, ["token-grants-tool"]);
    assert_eq!(d.generation, 3);
    let d = decide(&e, &alice, &call("whoami", json!({})));
    assert!(!d.allow);
    assert!(d.policy_ids.is_empty(), "default deny: {d:?}");
    let admin = identity(r#"user("ada"); role("admin");"#, &[]);
    assert!(decide(&e, &admin, &call("whoami", json!({}))).allow);
}

#[test]
fn deny_policy_is_named() {
    let e = engine(AUTHORIZER);
    let alice = identity(r#"right("tool", "delete_records");"#, &[]);
    let action = call("delete_records", json!({}));
    let mut destructive = Map::new();
    destructive.insert("destructiveHint".into(), json!(true));
    let d = e.decide(&AuthzRequest {
        identity: &alice,
        action: &action,
        annotations: Some(&destructive),
        definition: Default::default(),
        env: &env(),
    });
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["destructive-admin-only"]);
}

#[test]
fn attenuation_narrows_and_cannot_widen() {
    let e = engine(AUTHORIZER);
    let authority = r#"user("alice"); right("tool", "echo"); right("tool", "whoami");"#;
    let narrowed = identity(authority, &[r#"check if tool("echo");"#]);
    assert!(decide(&e, &narrowed, &call("echo", json!({}))).allow);
    let d = decide(&e, &narrowed, &call("whoami", json!({})));
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["token/block1/check0"]);
    assert!(
        d.errors[0].starts_with("failed_check: token/block1/check0: check if tool(\"echo\")"),
        "{d:?}"
    );
    assert!(listed(&e, &narrowed, "echo"));
    assert!(!listed(&e, &narrowed, "whoami"));
    // Protocol and list messages name no tool: the attenuation does not block them.
    let init = McpAction::Protocol {
        method: "initialize".into(),
    };
    assert!(decide(&e, &narrowed, &init).allow);
    assert!(decide(&e, &narrowed, &McpAction::List(ListKind::Tools)).allow);
    // A block that adds rights gains nothing.
    let widened = identity(
        r#"user("alice");"#,
        &[r#"role("admin"); right("tool", "whoami");"#],
    );
    assert!(!decide(&e, &widened, &call("whoami", json!({}))).allow);
    assert!(!listed(&e, &widened, "whoami"));
}

#[test]
fn expired_block_denies() {
    let e = engine(AUTHORIZER);
    let expired = identity(
        r#"right("tool", "echo");"#,
        &[r#"check if time($t), $t < 2000-01-01T00:00:00Z;"#],
    );
    let d = decide(&e, &expired, &call("echo", json!({})));
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["token/block1/check0"]);
}

#[test]
fn argument_dependent_allow_is_listed_and_checked_per_call() {
    let e = engine(AUTHORIZER);
    let weather = identity(r#"right("weather");"#, &[]);
    assert!(listed(&e, &weather, "get_weather"));
    assert!(!listed(&e, &weather, "echo"));
    assert!(decide(&e, &weather, &call("get_weather", json!({"city": "Paris"}))).allow);
    assert!(
        !decide(
            &e,
            &weather,
            &call("get_weather", json!({"city": "London"}))
        )
        .allow
    );
    // An attenuation to one city keeps the tool listed, and is enforced.
    let paris = identity(
        r#"right("weather");"#,
        &[r#"check if arg("city", "Paris");"#],
    );
    assert!(listed(&e, &paris, "get_weather"));
    assert!(!decide(&e, &paris, &call("get_weather", json!({"city": "Tokyo"}))).allow);
}

#[test]
fn non_biscuit_callers_run_without_a_token() {
    let e = engine(&format!(
        "{AUTHORIZER}\n// @id(\"jwt-admins\")\nallow if action(\"call_tool\"), auth_method(\"jwt\"), caller_role(\"admin\");\n"
    ));
    let mut jwt = Identity::anonymous();
    jwt.method = AuthMethod::Jwt;
    jwt.subject = "ada".into();
    assert!(!decide(&e, &jwt, &call("echo", json!({}))).allow);
    jwt.roles = vec!["admin".into()];
    let d = decide(&e, &jwt, &call("echo", json!({})));
    assert_eq!(d.policy_ids, ["jwt-admins"], "{d:?}");
    // Protocol messages are allowed unless denied...
    let init = McpAction::Protocol {
        method: "initialize".into(),
    };
    assert!(decide(&e, &jwt, &init).allow);
    // ...and here anonymous callers are denied them.
    let d = decide(&e, &Identity::anonymous(), &init);
    assert_eq!(d.policy_ids, ["no-anonymous-protocol"]);
}

#[test]
fn run_limit_is_a_deny_with_its_own_reason() {
    let facts: String = (0..40).map(|i| format!("n({i});")).collect();
    let e = engine(&format!(
        "{facts}\npair($x, $y) <- n($x), n($y);\nallow if true;"
    ));
    let d = decide(&e, &Identity::anonymous(), &call("echo", json!({})));
    assert!(!d.allow);
    assert!(d.errors[0].starts_with("run_limit: "), "{d:?}");
    assert!(!listed(&e, &Identity::anonymous(), "echo"));
}

#[test]
fn third_party_blocks_are_trusted_where_the_policy_says() {
    let root = KeyPair::new();
    let partner = KeyPair::new();
    let token = Biscuit::builder()
        .code(r#"user("alice");"#)
        .unwrap()
        .build(&root)
        .unwrap();
    let request = token.third_party_request().unwrap();
    let block = request
        .create_block(
            &partner.private(),
            BlockBuilder::new().code(r#"certified("alice");"#).unwrap(),
        )
        .unwrap();
    let token = token.append_third_party(partner.public(), block).unwrap();
    let text = token.to_base64().unwrap();
    let mut alice = identity("", &[]);
    alice.biscuit = Some(Arc::new(BiscuitToken::new(token, &text)));
    let policy = "allow if user($u), certified($u) trusting authority, {partner};";
    let keys = HashMap::from([("partner".to_owned(), partner.public())]);
    let p = compile(&[(PathBuf::from("a.datalog"), policy.to_owned())], &keys).unwrap();
    let e = BiscuitEngine::new(p, 1, crate::testing::biscuit_limits());
    assert!(decide(&e, &alice, &call("echo", json!({}))).allow);
    // Without the trust annotation the third-party fact is invisible.
    let e = engine("allow if user($u), certified($u);");
    assert!(!decide(&e, &alice, &call("echo", json!({}))).allow);
    // Signed by another key: not trusted.
    let stranger = KeyPair::new();
    let keys = HashMap::from([("partner".to_owned(), stranger.public())]);
    let p = compile(&[(PathBuf::from("a.datalog"), policy.to_owned())], &keys).unwrap();
    let e = BiscuitEngine::new(p, 1, crate::testing::biscuit_limits());
    assert!(!decide(&e, &alice, &call("echo", json!({}))).allow);
}

/// An engine that allows everything, to see what the token checks add.
struct AllowAll;
impl PolicyEngine for AllowAll {
    fn name(&self) -> &'static str {
        "allow-all"
    }
    fn decide(&self, _: &AuthzRequest<'_>) -> Decision {
        Decision {
            allow: true,
            policy_ids: vec!["all".into()],
            errors: vec![],
            generation: 9,
        }
    }
    fn listing<'a>(&'a self, _: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
        Box::new(ListEverything)
    }
}

#[test]
fn token_checks_apply_under_another_engine() {
    let e = TokenChecks::new(AllowAll, 9, crate::testing::biscuit_limits());
    assert_eq!(e.name(), "allow-all");
    let narrowed = identity(r#"user("alice");"#, &[r#"check if tool("echo");"#]);
    assert_eq!(
        decide(&e, &narrowed, &call("echo", json!({}))).policy_ids,
        ["all"]
    );
    let d = decide(&e, &narrowed, &call("whoami", json!({})));
    assert!(!d.allow);
    assert_eq!(d.policy_ids, ["token/block1/check0"]);
    assert_eq!(d.generation, 9);
    assert!(listed(&e, &narrowed, "echo"));
    assert!(!listed(&e, &narrowed, "whoami"));
    let init = McpAction::Protocol {
        method: "initialize".into(),
    };
    assert!(decide(&e, &narrowed, &init).allow);
    // Callers without a Biscuit are not affected.
    assert!(decide(&e, &Identity::anonymous(), &call("whoami", json!({}))).allow);
    // An expired token is refused by every engine.
    let expired = identity(
        r#"user("a");"#,
        &[r#"check if time($t), $t < 2000-01-01T00:00:00Z;"#],
    );
    assert!(!decide(&e, &expired, &init).allow);
}

/// A token check that fails is a denial by policy (`decision="deny"`); a run limit or a
/// Datalog error is an evaluation failure (`decision="error"`). Under either engine.
#[test]
fn failed_checks_are_denials_and_evaluation_failures_are_errors() {
    use crate::policy::Outcome;
    let e = engine(AUTHORIZER);
    let authority = r#"user("alice"); right("tool", "echo"); right("tool", "whoami");"#;
    let narrowed = identity(authority, &[r#"check if tool("echo");"#]);
    assert_eq!(
        decide(&e, &narrowed, &call("echo", json!({}))).outcome(),
        Outcome::Allow
    );
    let d = decide(&e, &narrowed, &call("whoami", json!({})));
    assert_eq!(d.outcome(), Outcome::Deny, "{d:?}");
    let wrapped = TokenChecks::new(AllowAll, 9, crate::biscuit::default_limits());
    let d = decide(&wrapped, &narrowed, &call("whoami", json!({})));
    assert_eq!(d.outcome(), Outcome::Deny, "{d:?}");
    // The operator's own failed check is a deny too.
    let checked = engine("check if user(\"bob\");\nallow if true;");
    let d = decide(&checked, &narrowed, &call("echo", json!({})));
    assert!(d.errors[0].starts_with("failed_check: "), "{d:?}");
    assert_eq!(d.outcome(), Outcome::Deny, "{d:?}");

    let facts: String = (0..40).map(|i| format!("n({i});")).collect();
    let limited = engine(&format!(
        "{facts}\npair($x, $y) <- n($x), n($y);\nallow if true;"
    ));
    let d = decide(&limited, &Identity::anonymous(), &call("echo", json!({})));
    assert_eq!(d.outcome(), Outcome::Error, "{d:?}");
}

mod differential;
