//! Deciding a POST body, read whole: parse it strictly, check the mirrored headers
//! against it, decide every message with one policy generation (with the session's and
//! the credential's taint labels, read from the shared state by
//! [`super::shared::check_caller`]), audit each decision, and remember what its answer
//! must be filtered and watched for and what rate-limit budget it spends ([`Forward`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;

use crate::mcp::{check_mirrored_headers, id_key, parse_request_body, ListKind, McpAction};
use crate::policy::{Generation, RequestEnv};
use crate::state::Spend;
use crate::taint::SourceCall;

use super::admission::Admitted;
use super::observe::{self, RequestFacts};
use super::refusal::Refusal;
use super::sessions::SessionError;
use super::tasks::{may_create_task, TaskCall, TaskError, TASK_METHODS};
use super::verdict::{authorize_body, BodyVerdict};
use super::Warden;

/// A body allowed: what is forwarded, and what its answer is filtered and watched for.
#[derive(Debug)]
pub struct Forward {
    /// The body as read, forwarded unchanged.
    pub body: Bytes,
    /// The policy generation the body was decided with; its answer is filtered by it too.
    pub generation: Arc<Generation>,
    /// The environment the engine saw.
    pub env: RequestEnv,
    /// What the answer is awaited for.
    pub awaited: Awaited,
    /// The `method` label of the upstream latency histogram.
    pub upstream_label: &'static str,
    /// The rate-limit buckets the body spends before it is forwarded
    /// ([`super::shared::spend`]): only bodies the policy allows spend budget.
    pub spends: Vec<Spend>,
}

/// What the answer to a forwarded body is awaited for: list requests to filter, calls of
/// taint sources to watch.
#[derive(Debug, Default)]
pub struct Awaited {
    /// List requests in the body, by id key.
    pub lists: HashMap<String, ListKind>,
    /// Calls of taint sources awaiting their answer, by id key.
    pub sources: HashMap<String, SourceCall>,
    /// Calls of taint sources sent as notifications: no answer to watch.
    pub silent_sources: Vec<SourceCall>,
    /// Calls of taint sources whose answer said they failed: still watched, since a
    /// second answer to the same id (a hostile upstream's) may carry the data.
    pub failed_sources: HashMap<String, SourceCall>,
    /// `tools/call` requests that may be answered with a task handle, by id key: a task
    /// id in the answer is bound to the caller ([`super::tasks`]).
    pub tasks: HashMap<String, TaskCall>,
    /// The body opens a `subscriptions/listen` stream: its answer is read like a GET
    /// stream's (list answers of the session filtered again, however often they come).
    pub listens: bool,
}

/// Decide a POST body of an admitted request, whose caller carries `taints` (the
/// session's and the credential's labels). `Err` is the refusal the client gets (the
/// decisions are audited either way).
pub fn decide(
    warden: &Warden,
    admitted: &Admitted,
    taints: Vec<String>,
    headers: &HeaderMap,
    body: Bytes,
    source_ip: Option<IpAddr>,
    facts: &RequestFacts,
) -> Result<Forward, Refusal> {
    let cfg = &warden.config.raw;
    let mut parsed = parse_request_body(&body, cfg.limits.max_json_depth).map_err(Refusal::Body)?;
    check_mirrored_headers(headers, &parsed).map_err(Refusal::HeaderMismatch)?;

    let identity = &admitted.identity;
    let task_calls = bind_task_operations(warden, identity, &body, &mut parsed)?;
    let session_id = admitted.session_id.as_deref();
    // A new session at `sessions.max_sessions` is refused before the upstream creates it;
    // existing sessions are never evicted for it.
    let opens_session = session_id.is_none()
        && parsed
            .messages
            .iter()
            .any(|m| m.method.as_deref() == Some("initialize"));
    let env = RequestEnv {
        time: SystemTime::now(),
        source_ip,
        session_id: admitted.session_id.clone(),
        taints,
        protocol_version: admitted.protocol_version.clone().or_else(|| {
            parsed
                .messages
                .iter()
                .find_map(|m| m.protocol_version.clone())
        }),
        mtls: admitted.client_cert.clone(),
    };
    let generation = warden.policies.current();
    let deciding = Instant::now();
    let verdict = authorize_body(
        generation.engine.as_ref(),
        identity,
        &parsed,
        &env,
        &warden.annotations,
        &warden.catalogue,
    );
    let elapsed = deciding.elapsed();
    let (BodyVerdict::Refuse { decisions, .. } | BodyVerdict::Forward { decisions, .. }) = &verdict;
    let decided = observe::Decided {
        identity,
        env: &env,
        engine: generation.engine.name(),
        messages: &parsed.messages,
        decisions,
        elapsed,
    };
    let audited = observe::record_decisions(warden, facts, &decided);
    let lists = match verdict {
        BodyVerdict::Refuse {
            status,
            body,
            decisions,
        } => {
            let step_up = super::step_up::challenge(
                identity,
                &parsed,
                &decisions,
                &generation.scopes,
                warden.metadata_url(),
            );
            return Err(step_up.unwrap_or(Refusal::Denied { status, body }));
        }
        BodyVerdict::Forward { lists, .. } => lists,
    };
    if audited.is_err() && warden.audit.fails_closed() {
        return Err(Refusal::AuditUnavailable);
    }
    if opens_session && !warden.sessions.has_room() {
        return Err(Refusal::Session(SessionError::Full));
    }
    if let Some(sid) = session_id {
        for (key, kind) in &lists {
            warden.sessions.add_pending(sid, key.clone(), *kind)?;
        }
    }
    let mut awaited = Awaited {
        lists: lists.into_iter().collect(),
        tasks: task_calls,
        listens: parsed
            .messages
            .iter()
            .any(|m| m.method.as_deref() == Some(crate::mcp::methods::SUBSCRIPTIONS_LISTEN)),
        ..Awaited::default()
    };
    for call in warden.sources.calls_in(&parsed.messages) {
        match &call.jsonrpc_id {
            Some(id) => {
                awaited.sources.insert(id_key(id), call);
            }
            None => awaited.silent_sources.push(call),
        }
    }
    let spends = warden.state.spends(identity, &parsed.messages);
    let upstream_label = match parsed.messages.as_slice() {
        [one] => crate::metrics::method_label(one.method.as_deref()),
        _ => "batch",
    };
    Ok(Forward {
        body,
        generation,
        env,
        awaited,
        upstream_label,
        spends,
    })
}

/// Task operations (`tasks/get`, `tasks/update`, `tasks/cancel`, `tasks/result`) are
/// decided as the call that created their task: each becomes that `tools/call` (the
/// task's tool, its arguments) for the policy, after checking that the caller owns the
/// task ([`super::tasks`]). Also returns the `tools/call` requests of the body that may be
/// answered with a task handle, whose answers bind the task to the caller.
///
/// The raw JSON is read again only when the body may hold either (a task method, or the
/// text `task` somewhere in it).
fn bind_task_operations(
    warden: &Warden,
    identity: &crate::auth::Identity,
    body: &[u8],
    parsed: &mut crate::mcp::ParsedBody,
) -> Result<HashMap<String, TaskCall>, Refusal> {
    let mut calls = HashMap::new();
    let operates = parsed.messages.iter().any(|m| {
        m.method
            .as_deref()
            .is_some_and(|m| TASK_METHODS.contains(&m))
    });
    if !operates && memchr::memmem::find(body, b"task").is_none() {
        return Ok(calls);
    }
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(|e| Refusal::Internal {
        reason: format!("a parsed body did not parse again: {e}"),
    })?;
    let raw: Vec<&serde_json::Value> = match &raw {
        serde_json::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    if raw.len() != parsed.messages.len() {
        // Every task operation must be matched to its raw params: fail closed.
        return Err(Refusal::Internal {
            reason: "a body's messages did not line up with its JSON".into(),
        });
    }
    let principal = identity.principal_key();
    for (message, raw) in parsed.messages.iter_mut().zip(raw) {
        let method = message.method.as_deref();
        if method.is_some_and(|m| TASK_METHODS.contains(&m)) {
            let task_id = raw
                .get("params")
                .and_then(|p| p.get("taskId"))
                .and_then(serde_json::Value::as_str)
                .ok_or(Refusal::Task(TaskError::NoTaskId))?;
            let call = warden
                .tasks
                .call_of(task_id, &principal)
                .map_err(Refusal::Task)?;
            message.action = McpAction::CallTool {
                name: call.tool,
                arguments: call.arguments,
            };
        } else if let (McpAction::CallTool { name, arguments }, Some(id)) =
            (&message.action, &message.id)
        {
            if may_create_task(raw) {
                calls.insert(
                    id_key(id),
                    TaskCall {
                        tool: name.clone(),
                        arguments: arguments.clone(),
                    },
                );
            }
        }
    }
    Ok(calls)
}
