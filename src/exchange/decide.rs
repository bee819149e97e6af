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

use crate::mcp::{check_mirrored_headers, id_key, parse_request_body, ListKind};
use crate::policy::{Generation, RequestEnv};
use crate::state::Spend;
use crate::taint::SourceCall;

use super::admission::Admitted;
use super::observe::{self, RequestFacts};
use super::refusal::Refusal;
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
    let parsed = parse_request_body(&body, cfg.limits.max_json_depth).map_err(Refusal::Body)?;
    check_mirrored_headers(headers, &parsed).map_err(Refusal::HeaderMismatch)?;

    let identity = &admitted.identity;
    let session_id = admitted.session_id.as_deref();
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
        BodyVerdict::Refuse { status, body, .. } => return Err(Refusal::Denied { status, body }),
        BodyVerdict::Forward { lists, .. } => lists,
    };
    if audited.is_err() && warden.audit.fails_closed() {
        return Err(Refusal::AuditUnavailable);
    }
    if let Some(sid) = session_id {
        for (key, kind) in &lists {
            warden.sessions.add_pending(sid, key.clone(), *kind)?;
        }
    }
    let mut awaited = Awaited {
        lists: lists.into_iter().collect(),
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
