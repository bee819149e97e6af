//! The facts the proxy adds to the authorizer for one question. These names and arities
//! are the Biscuit request model; operators write policies and tokens carry checks
//! against them, so they are stable (the fact reference in `docs/src/biscuit.md` lists them too).
//!
//! | fact | when |
//! |---|---|
//! | `method($m)` | always: the JSON-RPC method (`"tools/call"`; `"response"` for a response) |
//! | `action($a)` | always: the action name, as in Cedar (`"call_tool"`, `"list_tools"`, `"protocol"`, …) |
//! | `tool($name)` | `tools/call` |
//! | `prompt($name)` | `prompts/get`, `completion/complete` of a prompt |
//! | `resource($uri)` | `resources/read`, `resources/subscribe`/`unsubscribe`, completion of a resource |
//! | `arg($name, $value)` | `tools/call`, `prompts/get`: one per top-level argument |
//! | `annotation($hint, $value)` | `tools/call`: one per tool annotation (hints default as in the MCP spec) |
//! | `pinned($name)` | `tools/call`: the tool's definition matches an approved pin (see [`crate::pins`]) |
//! | `invisible_characters($name)` | `tools/call`: the tool's definition carries invisible or control characters |
//! | `time($t)` | always: arrival time (a Datalog date) |
//! | `source_ip($ip)` | when the client address is known (text, e.g. `"10.0.0.7"`) |
//! | `session($id)` | when the request carries `Mcp-Session-Id` |
//! | `protocol_version($v)` | when known |
//! | `taint($label)` | one per taint label of the session and credential |
//! | `mtls_client($id)` | when the connection presented a verified client certificate: its SPIFFE ID, or its SHA-256 fingerprint (hex) when it has none |
//! | `mtls_spiffe_id($id)`, `mtls_subject($cn)`, `mtls_fingerprint($hex)` | with a verified client certificate: its SPIFFE ID (when it has one), subject CN (when not empty), fingerprint |
//! | `mtls_dns($name)` | one per DNS SAN of the verified client certificate |
//! | `auth_method($m)` | always: `"biscuit"`, `"jwt"`, `"api_key"`, `"mtls"` or `"anonymous"` |
//! | `caller($subject)` | always: the authenticated user |
//! | `caller_agent($a)` | when the credential names an agent |
//! | `caller_role($r)`, `caller_scope($s)` | one per role, per scope |
//!
//! Argument values: strings, booleans, integers and `null` as themselves; other
//! numbers as their JSON text (a string: Datalog has no floats); arrays as Datalog
//! arrays and objects as maps (string keys), recursively, at most
//! [`MAX_DEPTH`] deep. So `arg("filter", $f),
//! $f.get("status") == "open"` reads a nested field.
//!
//! The listing question for a tool (see [`super::BiscuitEngine`]) has the facts of a
//! `tools/call` of that tool with no `arg` facts.

use biscuit_auth::builder::{date, Fact, MapKey, Term};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::mcp::{methods, CompletionRef, ListKind, McpAction};
use crate::policy::cedar::with_hint_defaults;
use crate::policy::{DefinitionFacts, ListedItem, RequestEnv, MAX_DEPTH};

/// An argument could not become a Datalog term (always a deny).
#[derive(Debug, thiserror::Error)]
#[error("argument `{name}` nests deeper than {MAX_DEPTH} levels")]
pub(crate) struct TooDeep {
    name: String,
}

fn fact(name: &str, terms: Vec<Term>) -> Fact {
    Fact::new(name.to_owned(), terms)
}

fn string(s: &str) -> Term {
    Term::Str(s.to_owned())
}

/// A JSON value as a Datalog term (see the module docs).
pub(crate) fn json_term(value: &Value, depth: usize) -> Option<Term> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => Term::Null,
        Value::Bool(b) => Term::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Term::Integer(i),
            None => Term::Str(n.to_string()),
        },
        Value::String(s) => Term::Str(s.clone()),
        Value::Array(items) => Term::Array(
            items
                .iter()
                .map(|v| json_term(v, depth + 1))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => Term::Map(
            map.iter()
                .map(|(k, v)| Some((MapKey::Str(k.clone()), json_term(v, depth + 1)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The JSON-RPC method of an action.
fn method_of(action: &McpAction) -> &str {
    match action {
        McpAction::CallTool { .. } => methods::TOOLS_CALL,
        McpAction::ReadResource { .. } => methods::RESOURCES_READ,
        McpAction::SubscribeResource { unsubscribe, .. } => {
            if *unsubscribe {
                methods::RESOURCES_UNSUBSCRIBE
            } else {
                methods::RESOURCES_SUBSCRIBE
            }
        }
        McpAction::GetPrompt { .. } => methods::PROMPTS_GET,
        McpAction::Complete { .. } => methods::COMPLETION_COMPLETE,
        McpAction::List(kind) => kind.method(),
        McpAction::Protocol { method } | McpAction::Other { method } => method,
        McpAction::Response => "response",
    }
}

/// Facts about the caller and the environment, common to every question.
fn context_facts(identity: &Identity, env: &RequestEnv, out: &mut Vec<Fact>) {
    out.push(fact("time", vec![date(&env.time)]));
    if let Some(ip) = env.source_ip {
        out.push(fact(
            "source_ip",
            vec![string(&ip.to_canonical().to_string())],
        ));
    }
    if let Some(id) = &env.session_id {
        out.push(fact("session", vec![string(id)]));
    }
    if let Some(v) = &env.protocol_version {
        out.push(fact("protocol_version", vec![string(v)]));
    }
    for label in &env.taints {
        out.push(fact("taint", vec![string(label)]));
    }
    if let Some(cert) = &env.mtls {
        mtls_facts(cert, out);
    }
    out.push(fact("auth_method", vec![string(identity.method.as_str())]));
    out.push(fact("caller", vec![string(&identity.subject)]));
    if let Some(agent) = &identity.agent {
        out.push(fact("caller_agent", vec![string(agent)]));
    }
    for role in &identity.roles {
        out.push(fact("caller_role", vec![string(role)]));
    }
    for scope in &identity.scopes {
        out.push(fact("caller_scope", vec![string(scope)]));
    }
}

/// The connection's verified client certificate as facts (see the module docs).
fn mtls_facts(cert: &crate::auth::ClientCert, out: &mut Vec<Fact>) {
    let id = cert.spiffe_id.as_deref().unwrap_or(&cert.fingerprint);
    out.push(fact("mtls_client", vec![string(id)]));
    if let Some(spiffe) = &cert.spiffe_id {
        out.push(fact("mtls_spiffe_id", vec![string(spiffe)]));
    }
    if !cert.subject.is_empty() {
        out.push(fact("mtls_subject", vec![string(&cert.subject)]));
    }
    out.push(fact("mtls_fingerprint", vec![string(&cert.fingerprint)]));
    for name in &cert.dns {
        out.push(fact("mtls_dns", vec![string(name)]));
    }
}

fn tool_facts(
    name: &str,
    annotations: Option<&Map<String, Value>>,
    definition: DefinitionFacts,
    out: &mut Vec<Fact>,
) {
    out.push(fact("tool", vec![string(name)]));
    if definition.pinned {
        out.push(fact("pinned", vec![string(name)]));
    }
    if definition.invisible_characters {
        out.push(fact("invisible_characters", vec![string(name)]));
    }
    for (hint, value) in with_hint_defaults(annotations) {
        if let Some(term) = json_term(&value, 1) {
            out.push(fact("annotation", vec![Term::Str(hint), term]));
        }
    }
}

fn argument_facts(arguments: &Value, out: &mut Vec<Fact>) -> Result<(), TooDeep> {
    if let Value::Object(map) = arguments {
        for (name, value) in map {
            let term = json_term(value, 1).ok_or_else(|| TooDeep { name: name.clone() })?;
            out.push(fact("arg", vec![string(name), term]));
        }
    }
    Ok(())
}

/// The facts for deciding `action`.
pub(crate) fn request_facts(
    identity: &Identity,
    action: &McpAction,
    annotations: Option<&Map<String, Value>>,
    definition: DefinitionFacts,
    env: &RequestEnv,
) -> Result<Vec<Fact>, TooDeep> {
    let mut out = Vec::with_capacity(16);
    out.push(fact("method", vec![string(method_of(action))]));
    out.push(fact("action", vec![string(action.policy_action())]));
    match action {
        McpAction::CallTool { name, arguments } => {
            tool_facts(name, annotations, definition, &mut out);
            argument_facts(arguments, &mut out)?;
        }
        McpAction::GetPrompt { name, arguments } => {
            out.push(fact("prompt", vec![string(name)]));
            argument_facts(arguments, &mut out)?;
        }
        McpAction::ReadResource { uri } | McpAction::SubscribeResource { uri, .. } => {
            out.push(fact("resource", vec![string(uri)]));
        }
        McpAction::Complete { reference } => match reference {
            CompletionRef::Prompt(name) => out.push(fact("prompt", vec![string(name)])),
            CompletionRef::Resource(uri) => out.push(fact("resource", vec![string(uri)])),
        },
        McpAction::List(_)
        | McpAction::Protocol { .. }
        | McpAction::Response
        | McpAction::Other { .. } => {}
    }
    context_facts(identity, env, &mut out);
    Ok(out)
}

/// The facts of the call a list item stands for that depend on the item.
pub(crate) fn item_facts(item: &ListedItem<'_>) -> Vec<Fact> {
    let mut out = Vec::with_capacity(8);
    match item.kind {
        ListKind::Tools => {
            out.push(fact("method", vec![string(methods::TOOLS_CALL)]));
            out.push(fact("action", vec![string("call_tool")]));
            tool_facts(item.name, item.annotations, item.definition, &mut out);
        }
        ListKind::Prompts => {
            out.push(fact("method", vec![string(methods::PROMPTS_GET)]));
            out.push(fact("action", vec![string("get_prompt")]));
            out.push(fact("prompt", vec![string(item.name)]));
        }
        ListKind::Resources | ListKind::ResourceTemplates => {
            out.push(fact("method", vec![string(methods::RESOURCES_READ)]));
            out.push(fact("action", vec![string("read_resource")]));
            out.push(fact("resource", vec![string(item.name)]));
        }
    }
    out
}

/// The facts of a listing that depend only on the caller and the environment.
pub(crate) fn caller_facts(identity: &Identity, env: &RequestEnv) -> Vec<Fact> {
    let mut out = Vec::with_capacity(8);
    context_facts(identity, env, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn printed(facts: &[Fact]) -> Vec<String> {
        let mut v: Vec<String> = facts.iter().map(ToString::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn tools_call_facts() {
        let mut identity = Identity::anonymous();
        identity.roles = vec!["staff".into()];
        let env = RequestEnv {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            source_ip: Some("::ffff:10.0.0.7".parse().unwrap()),
            session_id: Some("s1".into()),
            taints: vec!["phi".into()],
            protocol_version: Some("2025-06-18".into()),
            mtls: None,
        };
        let action = McpAction::CallTool {
            name: "search".into(),
            arguments: json!({"q": "x", "n": 3, "f": 1.5, "none": null, "tags": ["a"], "filter": {"k": true}}),
        };
        let mut annotations = Map::new();
        annotations.insert("readOnlyHint".into(), json!(true));
        let facts = printed(
            &request_facts(
                &identity,
                &action,
                Some(&annotations),
                DefinitionFacts {
                    pinned: true,
                    invisible_characters: false,
                },
                &env,
            )
            .unwrap(),
        );
        for want in [
            r#"method("tools/call")"#,
            r#"action("call_tool")"#,
            r#"tool("search")"#,
            r#"arg("q", "x")"#,
            r#"arg("n", 3)"#,
            r#"arg("f", "1.5")"#,
            r#"arg("none", null)"#,
            r#"arg("tags", ["a"])"#,
            r#"arg("filter", {"k": true})"#,
            r#"pinned("search")"#,
            r#"annotation("readOnlyHint", true)"#,
            r#"annotation("destructiveHint", false)"#,
            r#"annotation("openWorldHint", true)"#,
            r#"time(2023-11-14T22:13:20Z)"#,
            r#"source_ip("10.0.0.7")"#,
            r#"session("s1")"#,
            r#"protocol_version("2025-06-18")"#,
            r#"taint("phi")"#,
            r#"auth_method("anonymous")"#,
            r#"caller("anonymous")"#,
            r#"caller_role("staff")"#,
        ] {
            assert!(facts.contains(&want.to_owned()), "{want} not in {facts:#?}");
        }
    }

    #[test]
    fn too_deep_arguments_are_an_error() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!([deep]);
        }
        let action = McpAction::CallTool {
            name: "t".into(),
            arguments: json!({ "deep": deep }),
        };
        let env = RequestEnv {
            time: UNIX_EPOCH,
            source_ip: None,
            session_id: None,
            taints: vec![],
            protocol_version: None,
            mtls: None,
        };
        let err = request_facts(
            &Identity::anonymous(),
            &action,
            None,
            DefinitionFacts::default(),
            &env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`deep`"), "{err}");
    }
}
