//! Where a request body is decided: every message of it goes through
//! [`PolicyEngine::decide`], and the body is forwarded only if every message is allowed.
//!
//! A batch is all or nothing: if any element is denied, nothing is forwarded and each
//! element that expects an answer gets its own JSON-RPC error (the denied ones
//! `FORBIDDEN` with the deciding policy ids, the others `BATCH_REFUSED`; see
//! [`MessageRefusal`]).
//!
//! Before the policy, a `tools/call` is checked against the catalogue
//! ([`Catalogue::check_call`]): a tool whose definition is not approved, or arguments
//! that do not match its `inputSchema`, are refused without asking the policy (the
//! error says which field and rule, see [`call_problem`]); otherwise the policy sees
//! the tool's pin facts (`resource.pinned`). A `prompts/get` is held to the prompt's
//! pin the same way ([`Catalogue::check_prompt`]).

use serde_json::Value;

use crate::auth::Identity;
use crate::mcp::{id_key, Classified, ListKind, McpAction, ParsedBody};
use crate::pins::{CallProblem, Catalogue};
use crate::policy::{AuthzRequest, Decision, PolicyEngine, RequestEnv};

use super::annotations::AnnotationCache;
use super::refusal::{call_problem, MessageRefusal, Refusal};

/// One message's decision, for the audit log.
#[derive(Debug, Clone)]
pub struct MessageDecision {
    /// The JSON-RPC method (`None` for a response).
    pub method: Option<String>,
    /// The policy action name.
    pub action: &'static str,
    /// The tool/resource/prompt the message targets, if any.
    pub target: Option<String>,
    /// The engine's answer (a deny without policy ids when `problem` refused it first).
    pub decision: Decision,
    /// The catalogue refused the call before the policy was asked.
    pub problem: Option<CallProblem>,
    /// The catalogue found a problem it does not enforce (`warn`): audited, forwarded.
    pub warning: Option<CallProblem>,
}

/// The verdict on a whole body.
#[derive(Debug, Clone)]
pub enum BodyVerdict {
    /// Forward the body unchanged.
    Forward {
        /// List requests in the body, by id key, whose results must be filtered.
        lists: Vec<(String, ListKind)>,
        /// Each message's decision.
        decisions: Vec<MessageDecision>,
    },
    /// Answer the client directly; nothing is forwarded.
    Refuse {
        /// HTTP status: 200 when the client gets per-request errors, 403 when the body
        /// held only notifications/responses.
        status: u16,
        /// The JSON-RPC error response(s).
        body: Value,
        /// Each message's decision.
        decisions: Vec<MessageDecision>,
    },
}

/// Decide every message of `body` with one engine (one policy generation).
pub fn authorize_body(
    engine: &dyn PolicyEngine,
    identity: &Identity,
    body: &ParsedBody,
    env: &RequestEnv,
    annotations: &AnnotationCache,
    catalogue: &Catalogue,
) -> BodyVerdict {
    let decisions: Vec<MessageDecision> = body
        .messages
        .iter()
        .map(|m| decide_message(engine, identity, m, env, annotations, catalogue))
        .collect();

    if decisions.iter().all(|d| d.decision.allow) {
        let lists = body
            .messages
            .iter()
            .filter_map(|m| match (&m.action, &m.id) {
                (McpAction::List(kind), Some(id)) => Some((id_key(id), *kind)),
                _ => None,
            })
            .collect();
        return BodyVerdict::Forward { lists, decisions };
    }

    let errors: Vec<Value> = body
        .messages
        .iter()
        .zip(&decisions)
        .filter_map(|(m, d)| {
            let id = m.id.as_ref()?;
            m.method.as_ref()?; // a response to the server expects no answer
            if let Some(problem) = d.problem.as_ref().filter(|_| !d.decision.allow) {
                return Some(call_problem(Some(id), problem));
            }
            let refusal = if d.decision.allow {
                MessageRefusal::BatchRefused
            } else {
                MessageRefusal::Denied
            };
            Some(refusal.error(Some(id), &d.decision))
        })
        .collect();

    let (status, body_json) = match (body.batch, errors.len()) {
        (_, 0) => {
            let denied = decisions
                .iter()
                .find(|d| !d.decision.allow)
                .map(|d| d.decision.clone())
                .unwrap_or_default();
            match Refusal::denied_without_answer(&denied) {
                Refusal::Denied { status, body } => (status, body),
                other => (other.status(), other.body()),
            }
        }
        (true, _) => (200, Value::Array(errors)),
        (false, _) => (200, errors.into_iter().next().unwrap_or(Value::Null)),
    };
    BodyVerdict::Refuse {
        status,
        body: body_json,
        decisions,
    }
}

fn decide_message(
    engine: &dyn PolicyEngine,
    identity: &Identity,
    message: &Classified,
    env: &RequestEnv,
    annotations: &AnnotationCache,
    catalogue: &Catalogue,
) -> MessageDecision {
    let target = target_of(&message.action);
    let (known, check) = match &message.action {
        McpAction::CallTool { name, arguments } => (
            annotations.effective(name),
            catalogue.check_call(name, arguments),
        ),
        McpAction::GetPrompt { name, .. } => (None, catalogue.check_prompt(name)),
        _ => (None, Default::default()),
    };
    let mut decided = MessageDecision {
        method: message.method.clone(),
        action: message.action.policy_action(),
        target,
        decision: Decision::default(),
        problem: check.refusal,
        warning: check.warning,
    };
    if decided.problem.is_some() {
        // Refused before the policy: a deny that no policy decided.
        return decided;
    }
    let request = AuthzRequest {
        identity,
        action: &message.action,
        annotations: known.as_deref(),
        definition: check.facts,
        env,
    };
    decided.decision = engine.decide(&request);
    decided
}

/// The name of what an action targets, for audit lines.
pub fn target_of(action: &McpAction) -> Option<String> {
    use crate::mcp::CompletionRef;
    match action {
        McpAction::CallTool { name, .. } | McpAction::GetPrompt { name, .. } => Some(name.clone()),
        McpAction::ReadResource { uri } | McpAction::SubscribeResource { uri, .. } => {
            Some(uri.clone())
        }
        McpAction::Complete {
            reference: CompletionRef::Prompt(name),
        } => Some(name.clone()),
        McpAction::Complete {
            reference: CompletionRef::Resource(uri),
        } => Some(uri.clone()),
        McpAction::Protocol { method } | McpAction::Other { method } => Some(method.clone()),
        McpAction::List(_) | McpAction::Response => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::errors::{BATCH_REFUSED, FORBIDDEN};
    use crate::policy::{ListEverything, ListQuery, Listing};
    use serde_json::json;
    use std::time::SystemTime;

    /// An engine that allows exactly the tools named `ok*` and everything that is not a
    /// tool call; it records nothing else. Enough to test batch semantics.
    struct Prefix;
    impl PolicyEngine for Prefix {
        fn name(&self) -> &'static str {
            "test"
        }
        fn decide(&self, r: &AuthzRequest<'_>) -> Decision {
            let allow = match r.action {
                McpAction::CallTool { name, .. } => name.starts_with("ok"),
                _ => true,
            };
            Decision {
                allow,
                policy_ids: if allow {
                    vec![]
                } else {
                    vec!["deny-rule".into()]
                },
                errors: vec![],
                generation: 1,
            }
        }
        fn listing<'a>(&'a self, _: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
            Box::new(ListEverything)
        }
    }

    fn env() -> RequestEnv {
        RequestEnv {
            time: SystemTime::now(),
            source_ip: None,
            session_id: None,
            taints: vec![],
            protocol_version: None,
            mtls: None,
        }
    }

    fn call(id: Option<i64>, name: &str) -> Classified {
        Classified {
            id: id.map(Value::from),
            method: Some("tools/call".into()),
            action: McpAction::CallTool {
                name: name.into(),
                arguments: json!({}),
            },
            protocol_version: None,
            mcp_name: None,
        }
    }

    fn run(batch: bool, messages: Vec<Classified>) -> BodyVerdict {
        authorize_body(
            &Prefix,
            &Identity::anonymous(),
            &ParsedBody { batch, messages },
            &env(),
            &AnnotationCache::default(),
            &Catalogue::disabled(),
        )
    }

    #[test]
    fn allowed_body_is_forwarded_with_its_list_ids() {
        let list = Classified {
            id: Some(json!("L")),
            method: Some("tools/list".into()),
            action: McpAction::List(ListKind::Tools),
            protocol_version: None,
            mcp_name: None,
        };
        match run(true, vec![call(Some(1), "ok_a"), list]) {
            BodyVerdict::Forward { lists, .. } => {
                assert_eq!(lists, vec![("\"L\"".to_owned(), ListKind::Tools)])
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn denied_call_gets_forbidden_with_policy_ids() {
        match run(false, vec![call(Some(5), "bad")]) {
            BodyVerdict::Refuse { status, body, .. } => {
                assert_eq!(status, 200);
                assert_eq!(body["id"], 5);
                assert_eq!(body["error"]["code"], FORBIDDEN);
                assert_eq!(body["error"]["data"]["policy_ids"][0], "deny-rule");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn batch_with_one_denied_element_is_refused_whole() {
        match run(
            true,
            vec![
                call(Some(1), "ok_a"),
                call(Some(2), "bad"),
                call(None, "ok_n"),
            ],
        ) {
            BodyVerdict::Refuse { status, body, .. } => {
                assert_eq!(status, 200);
                let arr = body.as_array().unwrap();
                assert_eq!(arr.len(), 2, "notifications get no answer");
                assert_eq!(arr[0]["error"]["code"], BATCH_REFUSED);
                assert_eq!(arr[1]["error"]["code"], FORBIDDEN);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn denied_notification_only_body_is_403() {
        match run(false, vec![call(None, "bad")]) {
            BodyVerdict::Refuse { status, body, .. } => {
                assert_eq!(status, 403);
                assert_eq!(body["id"], Value::Null);
            }
            v => panic!("{v:?}"),
        }
    }
}
