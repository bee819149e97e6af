//! The audit record: what was asked, by whom, and what was decided, with the reasons.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Identity;
use crate::mcp::{CompletionRef, McpAction};
use crate::policy::{Decision, Outcome};

/// Longest JSON-RPC string id copied into a line, in characters.
const MAX_ID_CHARS: usize = 128;

/// What a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A policy decision on one JSON-RPC message.
    Decision,
    /// A request without a valid credential.
    AuthFailure,
    /// A request refused before any decision (bad path, body, session, …).
    Refusal,
    /// A taint source call's answer tainted the caller's session and credential
    /// (`tool`, `taints`: the labels recorded, `reason`: why).
    Taint,
    /// A tool, prompt or resource template definition seen in a list result is new,
    /// changed since its pin, was pinned on first sight, or carries invisible characters
    /// (`definition` says which and how; once per definition digest).
    Definition,
}

/// What a `definition` line records (see [`crate::pins::PinEvent`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionRecord {
    /// `tool`, `prompt` or `resource_template`.
    pub kind: &'static str,
    /// Its name (`uriTemplate` for a template).
    pub name: String,
    /// `new`, `drifted`, `learned` or `invisible_characters`.
    pub change: &'static str,
    /// The pin's digest, if it has one.
    pub old_digest: Option<String>,
    /// The digest seen.
    pub new_digest: String,
    /// The covered fields that differ from the pin.
    pub fields: Vec<&'static str>,
    /// Flagged characters, each an object: where (`at`), which (`code_point`), what
    /// (`class`). Plain JSON here, so the audit log does not depend on the pinning module.
    pub findings: Vec<serde_json::Value>,
    /// Whether it stays listed.
    pub listed: bool,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Forwarded.
    Allow,
    /// Refused: a policy denied, or the request was refused before a decision.
    Deny,
    /// Refused because evaluating the policies failed (fail closed); a failed check
    /// (a Biscuit attenuation's, say) is a [`AuditOutcome::Deny`].
    Error,
}

impl AuditOutcome {
    /// The outcome of a policy decision.
    pub fn of(decision: &Decision) -> Self {
        match decision.outcome() {
            Outcome::Allow => AuditOutcome::Allow,
            Outcome::Deny => AuditOutcome::Deny,
            Outcome::Error => AuditOutcome::Error,
        }
    }
}

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The user (JWT `sub`, API key subject, or `anonymous`).
    pub user: String,
    /// The agent acting for the user, if the credential names one.
    pub agent: Option<String>,
    /// `jwt`, `api_key`, `anonymous`, …
    pub auth_method: String,
}

impl From<&Identity> for Principal {
    fn from(identity: &Identity) -> Self {
        Principal {
            user: identity.subject.clone(),
            agent: identity.agent.clone(),
            auth_method: identity.method.as_str().to_owned(),
        }
    }
}

/// One audit line. Every field is always present (`null` or `[]` when it does not apply),
/// so a SIEM can map the schema once; `docs/src/operations.md` documents each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// When the line was made, RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// What the line records.
    pub event: EventKind,
    /// The request id (`X-Request-Id`, taken from the client or generated).
    pub request_id: String,
    /// `Mcp-Session-Id`, if any.
    pub session_id: Option<String>,
    /// The authenticated caller (`null` when authentication failed or had not happened).
    pub principal: Option<Principal>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The client's port.
    pub source_port: Option<u16>,
    /// `POST`, `GET`, `DELETE`, …
    pub http_method: String,
    /// The JSON-RPC method (`null` for a response the client sends, or no body).
    pub mcp_method: Option<String>,
    /// The JSON-RPC id (strings cut to 128 characters).
    pub jsonrpc_id: Option<Value>,
    /// The tool of a `tools/call`.
    pub tool: Option<String>,
    /// The resource URI of `resources/read`, `subscribe`, `unsubscribe`, or a completion.
    pub resource: Option<String>,
    /// The prompt of `prompts/get` or a completion.
    pub prompt: Option<String>,
    /// `sha256:<hex>` of the arguments as canonical JSON (keys sorted, no spaces).
    pub arguments_digest: Option<String>,
    /// The arguments themselves, only with `audit.log_arguments = true`.
    pub arguments: Option<Value>,
    /// `allow`, `deny` or `error`.
    pub decision: AuditOutcome,
    /// For authentication failures and refusals: a stable reason label.
    pub reason: Option<String>,
    /// The deciding policies (permits for an allow, forbids for a deny).
    pub policy_ids: Vec<String>,
    /// Policy evaluation errors (each one denies).
    pub errors: Vec<String>,
    /// The policy engine (`cedar`), for decisions.
    pub engine: Option<String>,
    /// The policy generation that decided.
    pub policy_generation: Option<u64>,
    /// Taint labels of the session and credential at decision time; for a `taint` event,
    /// the labels it recorded.
    pub taints: Vec<String>,
    /// Microseconds from the request's arrival to this line's event (the decision).
    pub latency_us: u64,
    /// For a `tools/call`: where its definition stands against the pins (`pinned`,
    /// `unpinned`, `drifted`, `unknown`; `not_checked` with pinning off).
    pub pin_status: Option<&'static str>,
    /// Checks that failed but are not enforced (`warn` modes), with the detail.
    pub warnings: Vec<String>,
    /// For a `definition` line: what changed.
    pub definition: Option<DefinitionRecord>,
}

impl AuditEvent {
    /// An event of `kind` stamped now, every optional field empty, outcome `deny`.
    pub fn new(kind: EventKind, request_id: &str, http_method: &str) -> Self {
        AuditEvent {
            timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event: kind,
            request_id: request_id.to_owned(),
            session_id: None,
            principal: None,
            source_ip: None,
            source_port: None,
            http_method: http_method.to_owned(),
            mcp_method: None,
            jsonrpc_id: None,
            tool: None,
            resource: None,
            prompt: None,
            arguments_digest: None,
            arguments: None,
            decision: AuditOutcome::Deny,
            reason: None,
            policy_ids: Vec::new(),
            errors: Vec::new(),
            engine: None,
            policy_generation: None,
            taints: Vec::new(),
            latency_us: 0,
            pin_status: None,
            warnings: Vec::new(),
            definition: None,
        }
    }

    /// Fill the target (tool, resource or prompt) and the arguments' digest from the
    /// classified action; the arguments themselves only if `log_arguments`.
    pub fn set_action(&mut self, action: &McpAction, log_arguments: bool) {
        let arguments = match action {
            McpAction::CallTool { name, arguments } => {
                self.tool = Some(name.clone());
                Some(arguments)
            }
            McpAction::GetPrompt { name, arguments } => {
                self.prompt = Some(name.clone());
                Some(arguments)
            }
            McpAction::ReadResource { uri } | McpAction::SubscribeResource { uri, .. } => {
                self.resource = Some(uri.clone());
                None
            }
            McpAction::Complete {
                reference: CompletionRef::Prompt(name),
            } => {
                self.prompt = Some(name.clone());
                None
            }
            McpAction::Complete {
                reference: CompletionRef::Resource(uri),
            } => {
                self.resource = Some(uri.clone());
                None
            }
            McpAction::List(_)
            | McpAction::Protocol { .. }
            | McpAction::Response
            | McpAction::Other { .. } => None,
        };
        if let Some(arguments) = arguments {
            self.arguments_digest = Some(arguments_digest(arguments));
            if log_arguments {
                self.arguments = Some(arguments.clone());
            }
        }
    }

    /// Set the JSON-RPC id, cutting long string ids.
    pub fn set_jsonrpc_id(&mut self, id: Option<&Value>) {
        self.jsonrpc_id = id.map(|id| match id {
            Value::String(s) if s.chars().count() > MAX_ID_CHARS => {
                Value::String(s.chars().take(MAX_ID_CHARS).collect())
            }
            other => other.clone(),
        });
    }
}

/// `sha256:<hex>` of `value` as canonical JSON: object keys sorted by their UTF-8 bytes,
/// no whitespace, strings escaped as `serde_json` does. Equal arguments give equal
/// digests whatever the client's key order or spacing.
pub fn arguments_digest(value: &Value) -> String {
    let mut text = Vec::new();
    canonical(value, &mut text);
    let digest = Sha256::digest(&text);
    let mut out = String::with_capacity(7 + 2 * digest.len());
    out.push_str("sha256:");
    out.push_str(&hex::encode(digest));
    out
}

/// Writes `value` as canonical JSON into `out`. Strings and numbers are written by
/// serde_json's serializer straight into the buffer (no copy of the value, no string
/// per scalar).
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_scalar(s, out),
        Value::Number(n) => write_scalar(n, out),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

/// A string or number as serde_json writes it (writing into a `Vec` cannot fail).
fn write_scalar(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_spacing() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y":2,"x":1}], "a": "é"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"é","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(arguments_digest(&a), arguments_digest(&b));
        assert_ne!(arguments_digest(&a), arguments_digest(&json!({"a": "e"})));
        // The canonical text itself: keys sorted, no spaces, serde_json's escapes.
        let value = json!({"b": [1, 2.5, {"y": true, "x": null}], "a": "é\n\"q\""});
        let text = r#"{"a":"é\n\"q\"","b":[1,2.5,{"x":null,"y":true}]}"#;
        assert_eq!(
            arguments_digest(&value),
            format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
        );
        // the canonical text of {} is "{}"
        assert_eq!(
            arguments_digest(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn targets_and_arguments() {
        let call = McpAction::CallTool {
            name: "delete_records".into(),
            arguments: json!({"table": "patients"}),
        };
        let mut e = AuditEvent::new(EventKind::Decision, "r1", "POST");
        e.set_action(&call, false);
        assert_eq!(e.tool.as_deref(), Some("delete_records"));
        assert!(e
            .arguments_digest
            .as_deref()
            .unwrap()
            .starts_with("sha256:"));
        assert_eq!(e.arguments, None, "arguments stay out unless configured");
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("patients"), "{line}");

        let mut e = AuditEvent::new(EventKind::Decision, "r1", "POST");
        e.set_action(&call, true);
        assert_eq!(e.arguments, Some(json!({"table": "patients"})));

        let mut e = AuditEvent::new(EventKind::Decision, "r1", "POST");
        e.set_action(
            &McpAction::ReadResource {
                uri: "file:///a".into(),
            },
            false,
        );
        assert_eq!(e.resource.as_deref(), Some("file:///a"));
        assert_eq!(e.arguments_digest, None);
    }

    #[test]
    fn line_has_every_field_and_a_utc_timestamp() {
        let mut e = AuditEvent::new(EventKind::AuthFailure, "r1", "GET");
        e.set_jsonrpc_id(Some(&json!("x".repeat(500))));
        let v = serde_json::to_value(&e).unwrap();
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert_eq!(v["event"], "auth_failure");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["jsonrpc_id"].as_str().unwrap().len(), MAX_ID_CHARS);
        for key in [
            "request_id",
            "session_id",
            "principal",
            "source_ip",
            "source_port",
            "http_method",
            "mcp_method",
            "tool",
            "resource",
            "prompt",
            "arguments_digest",
            "arguments",
            "reason",
            "policy_ids",
            "errors",
            "engine",
            "policy_generation",
            "taints",
            "latency_us",
            "pin_status",
            "warnings",
            "definition",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }
}
