//! What the proxy records about each request: the diagnostic log line, the metrics and
//! the audit line, from plain data the `ProxyHttp` callbacks hand over.
//!
//! Also the request id: taken from the client's `X-Request-Id` when it is a sane token,
//! otherwise generated; it is forwarded upstream, echoed to the client and written in
//! every audit line of the request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::audit::{AuditError, AuditEvent, AuditOutcome, EventKind, Principal};
use crate::auth::Identity;
use crate::mcp::{Classified, McpAction};
use crate::policy::RequestEnv;
use crate::taint::{SourceCall, TaintReason};

use super::refusal::Refusal;
use super::verdict::MessageDecision;
use super::Warden;

/// The request-id header, read from clients, sent upstream and echoed back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-supplied request id accepted.
const MAX_REQUEST_ID: usize = 128;

/// The request id: the client's `X-Request-Id` if it is one value of 1–128 characters
/// from `A-Z a-z 0-9 . _ ~ : @ / + = -`, otherwise a new random UUID (v4).
pub fn request_id(headers: &http::HeaderMap) -> String {
    let mut values = headers.get_all(REQUEST_ID_HEADER).iter();
    if let (Some(value), None) = (values.next(), values.next()) {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._~:@/+=-".contains(b));
        if sane {
            return String::from_utf8_lossy(bytes).into_owned();
        }
    }
    new_request_id()
}

/// A random UUID, version 4.
pub fn new_request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written directly: one allocation, no formatting machinery (one per request).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

/// Facts about one request that every record of it shares.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// See [`request_id`].
    pub request_id: String,
    /// `POST`, `GET`, …
    pub http_method: String,
    /// The client's address.
    pub source: Option<SocketAddr>,
    /// `Mcp-Session-Id`, if known.
    pub session_id: Option<String>,
    /// When the request arrived.
    pub started: Instant,
}

impl RequestFacts {
    fn event(&self, kind: EventKind, identity: Option<&Identity>) -> AuditEvent {
        let mut event = AuditEvent::new(kind, &self.request_id, &self.http_method);
        event.session_id = self.session_id.clone();
        event.principal = identity.map(Principal::from);
        event.source_ip = self.source.map(|s| s.ip().to_string());
        event.source_port = self.source.map(|s| s.port());
        event.latency_us = micros(self.started.elapsed());
        event
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Everything about one decided body, for [`record_decisions`].
pub struct Decided<'a> {
    /// The caller.
    pub identity: &'a Identity,
    /// The environment the engine saw (taints, session).
    pub env: &'a RequestEnv,
    /// The engine's name.
    pub engine: &'static str,
    /// The body's messages, in order.
    pub messages: &'a [Classified],
    /// Their decisions, in the same order.
    pub decisions: &'a [MessageDecision],
    /// How long deciding took.
    pub elapsed: Duration,
}

/// Log, count and audit each message's decision. `Err` if an audit line could not be
/// queued (the caller refuses the request when the audit log fails closed).
pub fn record_decisions(
    warden: &Warden,
    facts: &RequestFacts,
    decided: &Decided<'_>,
) -> Result<(), AuditError> {
    let metrics = &warden.metrics;
    metrics.decision_time(decided.engine, decided.elapsed);
    // Built only when a log line is on (`tracing` evaluates its fields lazily).
    let principal = || decided.identity.principal_key();
    let mut result = Ok(());
    for (message, d) in decided.messages.iter().zip(decided.decisions) {
        let allow = d.decision.allow;
        if allow {
            tracing::debug!(
                request_id = %facts.request_id,
                principal = %principal(),
                method = d.method.as_deref().unwrap_or("(response)"),
                target = d.target.as_deref().unwrap_or(""),
                policies = ?d.decision.policy_ids,
                generation = d.decision.generation,
                "allowed"
            );
        } else {
            tracing::info!(
                request_id = %facts.request_id,
                principal = %principal(),
                method = d.method.as_deref().unwrap_or("(response)"),
                target = d.target.as_deref().unwrap_or(""),
                allow = false,
                policies = ?d.decision.policy_ids,
                errors = ?d.decision.errors,
                generation = d.decision.generation,
                "decision"
            );
            metrics.taint_denial(&decided.env.taints);
        }
        let tool = match &message.action {
            McpAction::CallTool { name, .. } => {
                Some((name.as_str(), warden.annotations.get(name).is_some()))
            }
            _ => None,
        };
        metrics.decision(d.method.as_deref(), &d.decision, tool);

        let sampled_out = allow
            && matches!(message.action, McpAction::List(_))
            && !warden.audit.sample_allowed_list();
        if sampled_out {
            continue;
        }
        let mut event = facts.event(EventKind::Decision, Some(decided.identity));
        event.mcp_method = d.method.clone();
        event.set_jsonrpc_id(message.id.as_ref());
        event.set_action(&message.action, warden.audit.log_arguments());
        event.decision = AuditOutcome::of(&d.decision);
        event.policy_ids = d.decision.policy_ids.clone();
        event.errors = d.decision.errors.clone();
        event.engine = Some(decided.engine.to_owned());
        event.policy_generation = Some(d.decision.generation);
        event.taints = decided.env.taints.clone();
        if let McpAction::CallTool { name, .. } = &message.action {
            if warden.catalogue.active() {
                metrics.call_check(
                    d.problem.as_ref().map(crate::pins::CallProblem::label),
                    d.warning.as_ref().map(crate::pins::CallProblem::label),
                );
                event.pin_status = Some(warden.catalogue.status(name).label());
            }
        }
        if let Some(problem) = &d.problem {
            // Refused before the policy: no engine, no generation decided it.
            event.reason = Some(problem.label().to_owned());
            event.errors = problem.detail();
            event.engine = None;
            event.policy_generation = None;
        }
        if let Some(warning) = &d.warning {
            event.warnings = warning.detail();
        }
        if let Err(e) = warden.audit.record(event) {
            result = Err(e);
        }
    }
    result
}

/// Log, count and audit definition changes seen in a list result (each is reported by
/// the catalogue once per digest).
pub fn record_definitions(warden: &Warden, request_id: &str, events: &[crate::pins::PinEvent]) {
    if events.is_empty() {
        return;
    }
    let metrics = &warden.metrics;
    for e in events {
        metrics.definition_change(e.kind.label(), e.change.label());
        tracing::warn!(
            request_id,
            kind = e.kind.label(),
            name = %e.name,
            change = e.change.label(),
            old_digest = e.old_digest.as_deref().unwrap_or(""),
            new_digest = %e.new_digest,
            fields = ?e.fields,
            listed = e.listed,
            "definition change"
        );
        let mut event = AuditEvent::new(EventKind::Definition, request_id, "POST");
        event.decision = if e.listed {
            AuditOutcome::Allow
        } else {
            AuditOutcome::Deny
        };
        event.reason = Some(e.change.label().to_owned());
        match e.kind {
            crate::pins::DefinitionKind::Tool => event.tool = Some(e.name.clone()),
            crate::pins::DefinitionKind::Prompt => event.prompt = Some(e.name.clone()),
            crate::pins::DefinitionKind::ResourceTemplate => event.resource = Some(e.name.clone()),
        }
        event.definition = Some(crate::audit::DefinitionRecord {
            kind: e.kind.label(),
            name: e.name.clone(),
            change: e.change.label(),
            old_digest: e.old_digest.clone(),
            new_digest: e.new_digest.clone(),
            fields: e.fields.clone(),
            findings: e
                .findings
                .iter()
                .filter_map(|f| serde_json::to_value(f).ok())
                .collect(),
            listed: e.listed,
        });
        // Best effort, like refusals: the change is enforced either way.
        let _ = warden.audit.record(event);
    }
    metrics
        .definitions_drifted
        .set(i64::try_from(warden.catalogue.drifted()).unwrap_or(i64::MAX));
}

/// Record, count, log and audit one taint event: `call`'s labels for the request's
/// session (if any) and the caller's credential. Returns `false` when the shared state
/// could not be written and `[state.on_unavailable] taint` fails closed: the caller must
/// then withhold the answer (this replica still remembers the taint).
pub fn record_taint(
    warden: &Warden,
    facts: &RequestFacts,
    identity: &Identity,
    call: &SourceCall,
    reason: TaintReason,
) -> bool {
    let credential = warden.config.raw.taint.credential_key.key(identity);
    let (evicted, written) = match warden.state.record_taint_blocking(
        facts.session_id.as_deref(),
        &credential,
        &call.labels,
    ) {
        Ok(evicted) => (evicted, true),
        Err(e) => {
            warden.state.taint_write_failed(&e);
            (0, !warden.state.taint_fails_closed())
        }
    };
    let metrics = &warden.metrics;
    if evicted > 0 {
        metrics.taint_evictions.inc_by(evicted as u64);
        tracing::warn!(
            evicted,
            "taint store full: evicted the entries tainted longest ago (raise taint.max_entries)"
        );
    }
    for label in &call.labels {
        metrics.taint_event(label);
    }
    tracing::info!(
        request_id = %facts.request_id,
        principal = %identity.principal_key(),
        session_id = facts.session_id.as_deref().unwrap_or(""),
        tool = %call.tool,
        labels = ?call.labels,
        reason = reason.as_str(),
        "taint recorded"
    );
    let mut event = facts.event(EventKind::Taint, Some(identity));
    event.mcp_method = Some(crate::mcp::methods::TOOLS_CALL.to_owned());
    event.set_jsonrpc_id(call.jsonrpc_id.as_ref());
    event.tool = Some(call.tool.clone());
    event.decision = AuditOutcome::Allow;
    event.reason = Some(reason.as_str().to_owned());
    event.taints = call.labels.clone();
    if !written {
        event.errors = vec![
            "shared state unavailable: taint kept on this replica only; answer withheld".to_owned(),
        ];
    }
    // Best effort, like refusals: the taint itself is recorded either way.
    let _ = warden.audit.record(event);
    written
}

/// The `reason` of `mcp_warden_bodies_refused_total` if the refusal is about the body.
pub fn body_refusal_reason(refusal: &Refusal) -> Option<&'static str> {
    match refusal {
        Refusal::TooLarge { .. }
        | Refusal::Encoded { .. }
        | Refusal::LengthRequired
        | Refusal::UnexpectedBody
        | Refusal::BodyRead { .. }
        | Refusal::Body(_)
        | Refusal::HeaderMismatch(_) => Some(refusal.label()),
        _ => None,
    }
}

/// Log, count and audit a refusal (policy denials are recorded by [`record_decisions`]).
pub fn record_refusal(
    warden: &Warden,
    facts: &RequestFacts,
    path: &str,
    identity: Option<&Identity>,
    refusal: &Refusal,
) {
    let metrics = &warden.metrics;
    let mut event = match refusal {
        Refusal::Denied { .. } => return,
        Refusal::Unauthenticated { error, .. } => {
            tracing::info!(
                request_id = %facts.request_id,
                method = %facts.http_method,
                reason = error.reason(),
                "authentication failed"
            );
            metrics
                .auth_failures
                .with_label_values(&[error.reason()])
                .inc();
            let mut event = facts.event(EventKind::AuthFailure, None);
            event.reason = Some(error.reason().to_owned());
            event
        }
        other => {
            tracing::info!(
                request_id = %facts.request_id,
                method = %facts.http_method,
                path,
                principal = identity.map(|i| i.principal_key()),
                refusal = other.label(),
                detail = ?other,
                "request refused"
            );
            match body_refusal_reason(other) {
                Some(reason) => metrics.bodies_refused.with_label_values(&[reason]).inc(),
                None => metrics
                    .requests_refused
                    .with_label_values(&[other.label()])
                    .inc(),
            }
            let mut event = facts.event(EventKind::Refusal, identity);
            event.reason = Some(other.label().to_owned());
            match other {
                Refusal::RateLimited { rule, retry_after } => {
                    event.errors = vec![format!(
                        "rate limit `{rule}`: retry after {}",
                        humantime::format_duration(*retry_after)
                    )];
                }
                Refusal::StateUnavailable { feature, reason } => {
                    event.errors = vec![format!("shared state for {feature}: {reason}")];
                }
                _ => {}
            }
            event
        }
    };
    event.decision = AuditOutcome::Deny;
    // A refusal's line is best effort: the request is refused either way.
    let _ = warden.audit.record(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(REQUEST_ID_HEADER, v.parse().unwrap());
        }
        h
    }

    fn is_uuid_v4(s: &str) -> bool {
        let parts: Vec<_> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.as_bytes()[14] == b'4'
            && b"89ab".contains(&s.as_bytes()[19])
            && s.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn a_sane_client_request_id_is_kept() {
        assert_eq!(request_id(&headers(&["abc-123_X.y:z"])), "abc-123_X.y:z");
    }

    #[test]
    fn missing_odd_or_repeated_request_ids_are_replaced() {
        for case in [
            vec![],
            vec!["has space"],
            vec!["quote\""],
            vec![&*"a".repeat(129)],
            vec!["a", "b"],
        ] {
            let id = request_id(&headers(&case));
            assert!(is_uuid_v4(&id), "{case:?} → {id}");
        }
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn body_refusals_are_told_apart() {
        assert_eq!(
            body_refusal_reason(&Refusal::TooLarge { limit: 1 }),
            Some("too_large")
        );
        assert_eq!(
            body_refusal_reason(&Refusal::Encoded {
                encoding: "gzip".into()
            }),
            Some("encoding")
        );
        assert_eq!(body_refusal_reason(&Refusal::NotFound), None);
    }
}
