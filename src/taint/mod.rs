//! Taint tracking (information-flow control): once a session has received data from a
//! tool the operator marked as a sensitive *source*, policies can refuse it tools that
//! could carry the data away (*sinks*).
//!
//! The attack it answers: an agent reads sensitive rows, then a prompt-injected
//! instruction makes it send them to an internet-facing tool. The pieces:
//!
//! - **Sources** are declared in configuration (`[[taint.sources]]`: a tool name and a
//!   label). When a source call *succeeds* — its answer is a JSON-RPC `result` whose
//!   `isError` is not `true` — its label is recorded for the caller's session and for the
//!   caller's credential ([`TaintStore`]). A JSON-RPC error or `isError: true` records
//!   nothing. Where the proxy cannot tell (the answer is unreadable, or the exchange ended
//!   without the proxy seeing it) it records the label anyway: the data may have reached
//!   the client ([`TaintReason`]).
//! - **Sinks** are not special in code. The policy decides, from the request's taint
//!   labels (`context.session.taints` in Cedar) and the tool's annotations: the example
//!   policy forbids tools with `openWorldHint` once tainted. The MCP spec's default for
//!   that hint is `true`, so a tool that declares nothing counts as open-world. Operators
//!   add sinks with `taint.sinks` (which forces `openWorldHint = true` for those tools) or
//!   override any tool's annotations under `[tools."<name>"]`.
//! - Labels are keyed by session **and** by credential ([`crate::auth::Identity::credential_key`]),
//!   so a new session with the same token starts tainted. The store is bounded and
//!   expires entries (see [`TaintStore`] for its limits).
//!
//! Nothing here does I/O; the exchange watches answers (`crate::exchange::response`) and
//! audits each taint event (`crate::exchange::observe`).

mod store;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::auth::Identity;
use crate::mcp::{Classified, McpAction};

pub use store::TaintStore;

/// The label of a source that names none.
pub const DEFAULT_LABEL: &str = "sensitive";

/// Longest taint label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// The `[taint]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaintConfig {
    /// Tools whose successful answers taint the session and the credential, each with
    /// the label it adds: `sources = [{ tool = "get_medical_records", label = "phi" }]`.
    /// A tool may be listed more than once, with different labels. Empty (the default):
    /// taint tracking records nothing.
    pub sources: Vec<SourceConfig>,
    /// Tools treated as sinks besides those whose annotations say `openWorldHint: true`:
    /// the proxy sets `openWorldHint = true` for them before the policy sees them, so one
    /// policy rule covers both (default: none).
    pub sinks: Vec<String>,
    /// What "the same credential" means for taint: `token` (default) — the token itself
    /// (JWT `jti`, else issuer and subject; an API key's subject; a Biscuit's first
    /// revocation id), so a freshly issued token starts clean; or `principal` — the
    /// caller (auth method, subject and agent), so the taint outlives token refreshes.
    pub credential_key: CredentialKeyMode,
    /// Most sessions and credentials remembered as tainted (default 200 000). When full,
    /// expired entries are dropped first, then the entry tainted longest ago (counted in
    /// `mcp_warden_taint_evictions_total`).
    pub max_entries: usize,
    /// How long a taint lasts after it was last recorded for a session or credential
    /// (default 24h). Keep it longer than `sessions.idle_timeout` and the lifetime of your
    /// tokens, or a session or token can outlive its taint.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for TaintConfig {
    fn default() -> Self {
        TaintConfig {
            sources: Vec::new(),
            sinks: Vec::new(),
            credential_key: CredentialKeyMode::Token,
            max_entries: 200_000,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// One `[[taint.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The tool's name, exactly as the server lists it.
    pub tool: String,
    /// The label its answers add (default `sensitive`): 1–64 characters from
    /// `A-Z a-z 0-9 _ - . :`. Policies see it in `context.session.taints` (Cedar) and as
    /// `taint("<label>")` (Biscuit), metrics as the `taint` label.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_label() -> String {
    DEFAULT_LABEL.to_owned()
}

/// See [`TaintConfig::credential_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKeyMode {
    /// The token: [`Identity::credential_key`].
    Token,
    /// The caller: [`Identity::principal_key`].
    Principal,
}

impl CredentialKeyMode {
    /// The key taint is recorded under for this caller.
    pub fn key(self, identity: &Identity) -> String {
        match self {
            CredentialKeyMode::Token => identity.credential_key(),
            CredentialKeyMode::Principal => format!("principal:{}", identity.principal_key()),
        }
    }
}

impl TaintConfig {
    /// Checks serde cannot express: `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for source in &self.sources {
            if source.tool.is_empty() {
                return Err(("taint.sources", "a source has an empty `tool`".to_owned()));
            }
            check_label(&source.label).map_err(|m| ("taint.sources", m))?;
        }
        if self.sinks.iter().any(String::is_empty) {
            return Err(("taint.sinks", "a sink is an empty tool name".to_owned()));
        }
        if self.max_entries == 0 {
            return Err(("taint.max_entries", "must be at least 1".to_owned()));
        }
        if self.ttl.is_zero() {
            return Err(("taint.ttl", "must be more than zero".to_owned()));
        }
        Ok(())
    }

    /// The configured sources, indexed by tool.
    pub fn sources(&self) -> Sources {
        let mut by_tool: HashMap<String, Vec<String>> = HashMap::new();
        for source in &self.sources {
            let labels = by_tool.entry(source.tool.clone()).or_default();
            if !labels.contains(&source.label) {
                labels.push(source.label.clone());
            }
        }
        for labels in by_tool.values_mut() {
            labels.sort();
        }
        Sources { by_tool }
    }
}

fn check_label(label: &str) -> Result<(), String> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label `{label}` must be 1–{MAX_LABEL_LEN} characters from `A-Z a-z 0-9 _ - . :`"
        ))
    }
}

/// Source tools and the labels their answers add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    by_tool: HashMap<String, Vec<String>>,
}

impl Sources {
    /// The labels a successful call of `tool` adds (sorted), `None` if it is no source.
    pub fn labels(&self, tool: &str) -> Option<&[String]> {
        self.by_tool.get(tool).map(Vec::as_slice)
    }

    /// No sources configured: nothing is ever watched.
    pub fn is_empty(&self) -> bool {
        self.by_tool.is_empty()
    }

    /// The calls of source tools among a body's messages, in order.
    pub fn calls_in(&self, messages: &[Classified]) -> Vec<SourceCall> {
        if self.is_empty() {
            return Vec::new();
        }
        messages
            .iter()
            .filter_map(|m| match &m.action {
                McpAction::CallTool { name, .. } => Some(SourceCall {
                    tool: name.clone(),
                    labels: self.labels(name)?.to_vec(),
                    jsonrpc_id: m.id.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// What a source call's answer says, for taint purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A `result` whose `isError` is absent or `false`: the data reached the client.
    Succeeded,
    /// A JSON-RPC `error`, or a `result` with `isError: true`: no data, no taint.
    Failed,
    /// Neither, with certainty (both `result` and `error`, a `result` that is not an
    /// object, an `isError` that is not a boolean): tainted, failing closed.
    Unreadable,
}

/// Classify the JSON-RPC response `message` to a `tools/call`.
pub fn call_outcome(message: &Value) -> CallOutcome {
    let Some(message) = message.as_object() else {
        return CallOutcome::Unreadable;
    };
    match (message.get("result"), message.get("error")) {
        (None, Some(_)) => CallOutcome::Failed,
        (Some(Value::Object(result)), None) => match result.get("isError") {
            None | Some(Value::Bool(false)) => CallOutcome::Succeeded,
            Some(Value::Bool(true)) => CallOutcome::Failed,
            Some(_) => CallOutcome::Unreadable,
        },
        _ => CallOutcome::Unreadable,
    }
}

/// Why a taint was recorded; the audit line's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintReason {
    /// The source call's answer was a successful result.
    SourceSucceeded,
    /// An answer on the source call's stream could not be read (malformed JSON, an odd
    /// shape, an oversized or undecodable body): it may have been the data.
    AnswerUnreadable,
    /// The exchange ended (upstream answered 2xx) without the proxy seeing the answer:
    /// a dropped stream the client may resume elsewhere, a call sent as a notification.
    AnswerUnseen,
}

impl TaintReason {
    /// Stable name for audit lines and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintReason::SourceSucceeded => "source_succeeded",
            TaintReason::AnswerUnreadable => "answer_unreadable",
            TaintReason::AnswerUnseen => "answer_unseen",
        }
    }
}

/// A source call in a forwarded request, awaiting its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceCall {
    /// The tool called.
    pub tool: String,
    /// The labels its success adds.
    pub labels: Vec<String>,
    /// Its JSON-RPC id (`None` for a call sent as a notification).
    pub jsonrpc_id: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_of_answers() {
        let cases = [
            (
                json!({"jsonrpc":"2.0","id":1,"result":{"content":[]}}),
                CallOutcome::Succeeded,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}),
                CallOutcome::Succeeded,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}),
                CallOutcome::Failed,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}),
                CallOutcome::Failed,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"result":{"isError":"yes"}}),
                CallOutcome::Unreadable,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}),
                CallOutcome::Unreadable,
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"result":"text"}),
                CallOutcome::Unreadable,
            ),
            (json!({"jsonrpc":"2.0","id":1}), CallOutcome::Unreadable),
            (json!([1]), CallOutcome::Unreadable),
        ];
        for (message, expected) in cases {
            assert_eq!(call_outcome(&message), expected, "{message}");
        }
    }

    #[test]
    fn sources_default_label_and_merge() {
        let cfg: TaintConfig = toml::from_str(
            r#"
            sources = [{ tool = "db" }, { tool = "ehr", label = "phi" }, { tool = "ehr", label = "pii" }, { tool = "ehr", label = "phi" }]
            "#,
        )
        .unwrap();
        cfg.check().unwrap();
        let sources = cfg.sources();
        assert_eq!(sources.labels("db"), Some(&["sensitive".to_owned()][..]));
        assert_eq!(
            sources.labels("ehr"),
            Some(&["phi".to_owned(), "pii".to_owned()][..])
        );
        assert_eq!(sources.labels("echo"), None);
        assert!(TaintConfig::default().sources().is_empty());
    }

    #[test]
    fn source_calls_are_picked_from_a_body() {
        let cfg: TaintConfig =
            toml::from_str(r#"sources = [{ tool = "ehr", label = "phi" }]"#).unwrap();
        let call = |id: Option<Value>, name: &str| Classified {
            id,
            method: Some("tools/call".into()),
            action: McpAction::CallTool {
                name: name.into(),
                arguments: json!({}),
            },
            protocol_version: None,
            mcp_name: None,
        };
        let messages = [
            call(Some(json!(1)), "echo"),
            call(Some(json!("a")), "ehr"),
            call(None, "ehr"),
        ];
        let calls = cfg.sources().calls_in(&messages);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].jsonrpc_id, Some(json!("a")));
        assert_eq!(calls[0].labels, ["phi"]);
        assert_eq!(calls[1].jsonrpc_id, None);
        assert!(TaintConfig::default()
            .sources()
            .calls_in(&messages)
            .is_empty());
    }

    #[test]
    fn bad_values_are_refused() {
        for (text, key) in [
            (r#"sources = [{ tool = "" }]"#, "taint.sources"),
            (
                r#"sources = [{ tool = "t", label = "has space" }]"#,
                "taint.sources",
            ),
            (r#"sources = [{ tool = "t", label = "" }]"#, "taint.sources"),
            (r#"sinks = [""]"#, "taint.sinks"),
            ("max_entries = 0", "taint.max_entries"),
            (r#"ttl = "0s""#, "taint.ttl"),
        ] {
            let cfg: TaintConfig = toml::from_str(text).unwrap();
            assert_eq!(cfg.check().unwrap_err().0, key, "{text}");
        }
        assert!(
            toml::from_str::<TaintConfig>(r#"sources = [{ tool = "t", lable = "x" }]"#).is_err()
        );
        assert!(toml::from_str::<TaintConfig>(r#"credential_key = "session""#).is_err());
    }
}
