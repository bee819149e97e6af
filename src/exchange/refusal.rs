//! Every error a client can get from the proxy, in one place: its HTTP status, its
//! JSON-RPC code and the short message the client reads. The audit log and the
//! diagnostic log get the detail; clients are told little.
//!
//! - [`Refusal`]: a request answered by the proxy instead of forwarded (before
//!   forwarding: path, method, origin, credential, session, body, policy, audit log,
//!   rate limits, shared state);
//! - [`MessageRefusal`]: the per-message errors of a body refused by policy (a batch is
//!   all or nothing);
//! - [`call_problem`]: a `tools/call` (or `prompts/get`) the tool catalogue refused before the policy
//!   (definition not approved, arguments that miss the tool's `inputSchema`);
//! - [`Withheld`]: an upstream answer the proxy could not filter, replaced by an error;
//! - [`UpstreamFailed`]: the upstream could not be reached or failed mid-answer.
//!
//! [`catalogue`] lists one [`WireError`] per distinct error on the wire; the table in
//! `docs/src/errors.md` is checked against it by a test, so the two cannot drift.

use std::fmt;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::{AuthError, CertRefusal};
use crate::mcp::errors::{
    error_response, BATCH_REFUSED, FORBIDDEN, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS,
    INVALID_REQUEST, OVERLOADED, RATE_LIMITED, STATE_UNAVAILABLE, UNAUTHENTICATED,
    UPSTREAM_UNFILTERABLE,
};
use crate::mcp::headers::HeaderMismatch;
use crate::mcp::BodyError;
use crate::pins::{CallProblem, PinStatus};
use crate::policy::Decision;

use super::sessions::SessionError;
use super::tasks::TaskError;

/// What a step-up challenge names ([`Refusal::InsufficientScope`]; boxed, as it is rare
/// and would make every refusal larger).
#[derive(Debug, Clone)]
pub struct StepUp {
    /// The scopes to ask the authorization server for.
    pub scopes: Vec<String>,
    /// The request's id.
    pub id: Value,
    /// The deciding policies.
    pub policy_ids: Vec<String>,
    /// RFC 9728 metadata URL to advertise.
    pub resource_metadata: Option<String>,
}

/// Why a request was answered by the proxy instead of forwarded.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A path other than the MCP endpoint.
    NotFound,
    /// An HTTP method MCP does not use.
    MethodNotAllowed,
    /// `Origin` not in the allow-list.
    BadOrigin {
        /// The origin sent.
        origin: String,
    },
    /// No or bad credential.
    Unauthenticated {
        /// Why.
        error: AuthError,
        /// RFC 9728 metadata URL to advertise.
        resource_metadata: Option<String>,
    },
    /// No client certificate where one is required, or one that cannot name a caller
    /// (several URI SANs, a CA certificate).
    ClientCert(CertRefusal),
    /// A request denied only for scopes the caller's token lacks (every deciding policy
    /// says `@insufficient_scope`): HTTP 403 with a step-up challenge (MCP 2025-11-25).
    InsufficientScope(Box<StepUp>),
    /// The session id is unknown or belongs to someone else.
    Session(SessionError),
    /// A task operation on a task the proxy did not see created for this caller.
    Task(TaskError),
    /// `Mcp-Session-Id` sent more than once or not text.
    BadSessionHeader,
    /// Body larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `Content-Encoding` other than identity.
    Encoded {
        /// The encoding sent.
        encoding: String,
    },
    /// A chunked body larger than the proxy can hand to Pingora intact.
    LengthRequired,
    /// A GET or DELETE carrying a body.
    UnexpectedBody,
    /// The body could not be read in time or the client went away.
    BodyRead {
        /// Why.
        reason: String,
    },
    /// Not JSON, or not JSON-RPC.
    Body(BodyError),
    /// `Mcp-Method`/`Mcp-Name` disagree with the body.
    HeaderMismatch(HeaderMismatch),
    /// The policy denied; the verdict supplies status and body (built by
    /// [`MessageRefusal::error`] and [`Refusal::denied_without_answer`]).
    Denied {
        /// HTTP status: 200 with per-request errors, or 403 when no message expects an
        /// answer.
        status: u16,
        /// The JSON-RPC error response(s).
        body: Value,
    },
    /// The audit log is down and configured to fail closed.
    AuditUnavailable,
    /// A `[[rate_limits]]` rule's bucket is empty.
    RateLimited {
        /// The rule.
        rule: String,
        /// When the same request would pass.
        retry_after: std::time::Duration,
    },
    /// Shared state (Redis) the decision needs is unavailable, and the feature fails
    /// closed.
    StateUnavailable {
        /// `taint`, `revocation` or `rate_limits`.
        feature: &'static str,
        /// Why (for the log).
        reason: String,
    },
    /// Something in the proxy itself failed; deny.
    Internal {
        /// Why (for the log).
        reason: String,
    },
}

impl From<SessionError> for Refusal {
    fn from(e: SessionError) -> Self {
        Refusal::Session(e)
    }
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::BadOrigin { .. } => 403,
            Refusal::Unauthenticated { .. } => 401,
            Refusal::ClientCert(_) => 401,
            Refusal::Session(SessionError::Unknown) => 404,
            Refusal::Session(SessionError::NotOwner) => 403,
            Refusal::Session(SessionError::TooManyPending) => 429,
            Refusal::Session(SessionError::Full) => 503,
            Refusal::Task(TaskError::Unknown | TaskError::NotOwner) => 403,
            Refusal::Task(TaskError::NoTaskId) => 400,
            Refusal::BadSessionHeader => 400,
            Refusal::TooLarge { .. } => 413,
            Refusal::Encoded { .. } => 415,
            Refusal::LengthRequired => 411,
            Refusal::UnexpectedBody => 400,
            Refusal::BodyRead { .. } => 400,
            Refusal::Body(_) => 400,
            Refusal::HeaderMismatch(_) => 400,
            Refusal::Denied { status, .. } => *status,
            Refusal::InsufficientScope(_) => 403,
            Refusal::AuditUnavailable => 503,
            Refusal::RateLimited { .. } => 429,
            Refusal::StateUnavailable { .. } => 503,
            Refusal::Internal { .. } => 500,
        }
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::BadOrigin { .. } => "bad_origin",
            Refusal::Unauthenticated { .. } => "unauthenticated",
            Refusal::ClientCert(refusal) => refusal.label(),
            Refusal::Session(SessionError::Unknown) => "unknown_session",
            Refusal::Session(SessionError::NotOwner) => "session_not_owner",
            Refusal::Session(SessionError::TooManyPending) => "too_many_pending_lists",
            Refusal::Session(SessionError::Full) => "too_many_sessions",
            Refusal::Task(TaskError::Unknown) => "unknown_task",
            Refusal::Task(TaskError::NotOwner) => "task_not_owner",
            Refusal::Task(TaskError::NoTaskId) => "task_without_id",
            Refusal::BadSessionHeader => "bad_session_header",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Encoded { .. } => "encoding",
            Refusal::LengthRequired => "length_required",
            Refusal::UnexpectedBody => "unexpected_body",
            Refusal::BodyRead { .. } => "body_read",
            Refusal::Body(BodyError::Malformed { .. }) => "malformed",
            Refusal::Body(BodyError::DuplicateKey { .. }) => "duplicate_key",
            Refusal::Body(BodyError::TooDeep { .. }) => "too_deep",
            Refusal::Body(BodyError::NotJsonRpc { .. }) => "not_jsonrpc",
            Refusal::HeaderMismatch(_) => "header_mismatch",
            Refusal::Denied { .. } => "denied",
            Refusal::InsufficientScope(_) => "insufficient_scope",
            Refusal::AuditUnavailable => "audit_unavailable",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::StateUnavailable { .. } => "state_unavailable",
            Refusal::Internal { .. } => "internal",
        }
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Refusal::Denied { .. } | Refusal::InsufficientScope(_) => FORBIDDEN,
            Refusal::BadOrigin { .. } | Refusal::Session(SessionError::NotOwner) => FORBIDDEN,
            Refusal::Unauthenticated { .. } | Refusal::ClientCert(_) => UNAUTHENTICATED,
            Refusal::Body(e) => e.code(),
            Refusal::HeaderMismatch(_) => HEADER_MISMATCH,
            Refusal::AuditUnavailable | Refusal::Internal { .. } => INTERNAL_ERROR,
            Refusal::RateLimited { .. } => RATE_LIMITED,
            Refusal::Session(SessionError::Full) => OVERLOADED,
            Refusal::Task(TaskError::Unknown | TaskError::NotOwner) => FORBIDDEN,
            Refusal::Task(TaskError::NoTaskId) => INVALID_PARAMS,
            Refusal::StateUnavailable { .. } => STATE_UNAVAILABLE,
            Refusal::NotFound
            | Refusal::MethodNotAllowed
            | Refusal::Session(SessionError::Unknown | SessionError::TooManyPending)
            | Refusal::BadSessionHeader
            | Refusal::TooLarge { .. }
            | Refusal::Encoded { .. }
            | Refusal::LengthRequired
            | Refusal::UnexpectedBody
            | Refusal::BodyRead { .. } => INVALID_REQUEST,
        }
    }

    /// The message the client reads.
    pub fn message(&self) -> String {
        match self {
            Refusal::Denied { .. } => DENIED_MESSAGE.into(),
            Refusal::InsufficientScope(step_up) => {
                format!(
                    "insufficient scope: this needs {}",
                    step_up.scopes.join(" ")
                )
            }
            Refusal::NotFound => "not found: not the MCP endpoint".into(),
            Refusal::MethodNotAllowed => "method not allowed: use POST, GET or DELETE".into(),
            Refusal::BadOrigin { .. } => "origin not allowed".into(),
            Refusal::Unauthenticated { error, .. } => format!("unauthenticated: {error}"),
            Refusal::ClientCert(refusal) => format!("unauthenticated: {refusal}"),
            Refusal::Session(SessionError::Unknown) => "session not found".into(),
            Refusal::Session(SessionError::NotOwner) => {
                "session belongs to another principal".into()
            }
            Refusal::Session(SessionError::TooManyPending) => {
                "too many outstanding list requests in this session".into()
            }
            Refusal::Session(SessionError::Full) => {
                "too many sessions: the new session was refused; try again later".into()
            }
            Refusal::Task(TaskError::Unknown) => "task not found".into(),
            Refusal::Task(TaskError::NotOwner) => "task belongs to another principal".into(),
            Refusal::Task(TaskError::NoTaskId) => "task operation without a taskId".into(),
            Refusal::BadSessionHeader => "invalid Mcp-Session-Id header".into(),
            Refusal::TooLarge { limit } => format!("request body too large (limit {limit} bytes)"),
            Refusal::Encoded { encoding } => {
                format!("unsupported Content-Encoding `{encoding}`: send the body uncompressed")
            }
            Refusal::LengthRequired => {
                "chunked request bodies over 64 KiB are not accepted: send Content-Length".into()
            }
            Refusal::UnexpectedBody => "GET and DELETE take no body".into(),
            Refusal::BodyRead { .. } => "request body could not be read".into(),
            Refusal::Body(e) => e.to_string(),
            Refusal::HeaderMismatch(e) => format!("header mismatch: {e}"),
            Refusal::AuditUnavailable => "audit log unavailable; request refused".into(),
            Refusal::RateLimited { .. } => "rate limit exceeded".into(),
            Refusal::StateUnavailable { .. } => "shared state unavailable; request refused".into(),
            Refusal::Internal { .. } => "internal error; request denied".into(),
        }
    }

    /// The JSON-RPC error body (id `null` except for policy denials, which carry ids).
    pub fn body(&self) -> Value {
        match self {
            Refusal::Denied { body, .. } => body.clone(),
            Refusal::InsufficientScope(step_up) => error_response(
                Some(&step_up.id),
                self.code(),
                &self.message(),
                Some(json!({
                    "policy_ids": step_up.policy_ids,
                    "scope": step_up.scopes.join(" "),
                })),
            ),
            Refusal::RateLimited { rule, retry_after } => error_response(
                None,
                self.code(),
                &self.message(),
                Some(json!({
                    "rule": rule,
                    "retry_after_seconds": retry_after_seconds(*retry_after),
                })),
            ),
            Refusal::StateUnavailable { feature, .. } => error_response(
                None,
                self.code(),
                &self.message(),
                Some(json!({ "feature": feature })),
            ),
            other => error_response(None, other.code(), &other.message(), None),
        }
    }

    /// A body denied whose messages expect no answer (notifications, responses): HTTP 403
    /// with one error, id `null`, naming the policies of the first denial.
    pub fn denied_without_answer(decision: &Decision) -> Refusal {
        Refusal::Denied {
            status: 403,
            body: MessageRefusal::Denied.error(None, decision),
        }
    }

    /// Extra response headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Refusal::Unauthenticated {
                error,
                resource_metadata,
            } => vec![(
                "WWW-Authenticate",
                error.www_authenticate(resource_metadata.as_deref()),
            )],
            Refusal::InsufficientScope(step_up) => vec![(
                "WWW-Authenticate",
                crate::auth::insufficient_scope_challenge(
                    &step_up.scopes,
                    step_up.resource_metadata.as_deref(),
                ),
            )],
            Refusal::MethodNotAllowed => vec![("Allow", "GET, POST, DELETE".into())],
            Refusal::RateLimited { retry_after, .. } => {
                vec![("Retry-After", retry_after_seconds(*retry_after).to_string())]
            }
            Refusal::StateUnavailable { .. } | Refusal::Session(SessionError::Full) => {
                vec![("Retry-After", "1".into())]
            }
            _ => Vec::new(),
        }
    }

    /// The client's answer to a refusal of the shared state (`resource_metadata` for
    /// the `WWW-Authenticate` of a revoked credential).
    pub fn from_state(
        refusal: crate::state::StateRefusal,
        resource_metadata: Option<String>,
    ) -> Refusal {
        use crate::state::StateRefusal;
        match refusal {
            StateRefusal::Revoked => Refusal::Unauthenticated {
                error: AuthError::Revoked,
                resource_metadata,
            },
            StateRefusal::RateLimited { rule, retry_after } => {
                Refusal::RateLimited { rule, retry_after }
            }
            StateRefusal::Unavailable { feature, reason } => Refusal::StateUnavailable {
                feature: feature.as_str(),
                reason,
            },
        }
    }
}

/// Whole seconds a client should wait: rounded up, at least 1 (RFC 9110 §10.2.3).
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The message clients get for a policy denial (stable; documented in `docs/src/errors.md`).
pub const DENIED_MESSAGE: &str = "forbidden by policy";

/// The error of one message in a body refused by policy (HTTP 200, one error per message
/// that expects an answer, each with its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRefusal {
    /// This message was denied: the deciding policy ids, never the policy text.
    Denied,
    /// This message was allowed, but another one of its batch was denied.
    BatchRefused,
}

impl MessageRefusal {
    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            MessageRefusal::Denied => FORBIDDEN,
            MessageRefusal::BatchRefused => BATCH_REFUSED,
        }
    }

    /// The message the client reads.
    pub fn message(self) -> &'static str {
        match self {
            MessageRefusal::Denied => DENIED_MESSAGE,
            MessageRefusal::BatchRefused => {
                "not forwarded: another message in the batch was denied"
            }
        }
    }

    /// The JSON-RPC error response for the message with `id` (`decision` supplies the
    /// policy ids of a denial).
    pub fn error(self, id: Option<&Value>, decision: &Decision) -> Value {
        let data = match self {
            MessageRefusal::Denied => Some(json!({ "policy_ids": decision.policy_ids })),
            MessageRefusal::BatchRefused => None,
        };
        error_response(id, self.code(), self.message(), data)
    }
}

/// The message clients get for a tool whose definition is not approved (stable).
pub const NOT_APPROVED_MESSAGE: &str = "tool definition not approved";

/// The message clients get for a prompt whose definition is not approved (stable).
pub const PROMPT_NOT_APPROVED_MESSAGE: &str = "prompt definition not approved";

/// The JSON-RPC code of a `tools/call` or `prompts/get` the catalogue refused: `-32602`
/// for arguments that miss the schema and for a tool never listed, `FORBIDDEN` for a
/// definition that is not approved or cannot be checked.
pub fn call_problem_code(problem: &CallProblem) -> i64 {
    match problem {
        CallProblem::InvalidArguments { .. } | CallProblem::UnknownTool => INVALID_PARAMS,
        CallProblem::NotApproved { .. }
        | CallProblem::InvisibleCharacters
        | CallProblem::PromptNotApproved { .. }
        | CallProblem::PromptInvisibleCharacters
        | CallProblem::SchemaUnusable { .. } => FORBIDDEN,
    }
}

/// The message the client reads for a refused `tools/call`: for invalid arguments, the
/// first failing field and rule (never the value).
pub fn call_problem_message(problem: &CallProblem) -> String {
    match problem {
        CallProblem::InvalidArguments { errors } => {
            let first = errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "arguments do not match the schema".into());
            format!("invalid arguments: {first}")
        }
        CallProblem::UnknownTool => "unknown tool: not listed by the server".into(),
        CallProblem::NotApproved { .. } => NOT_APPROVED_MESSAGE.into(),
        CallProblem::InvisibleCharacters => "tool definition carries invisible characters".into(),
        CallProblem::PromptNotApproved { .. } => PROMPT_NOT_APPROVED_MESSAGE.into(),
        CallProblem::PromptInvisibleCharacters => {
            "prompt definition carries invisible characters".into()
        }
        CallProblem::SchemaUnusable { .. } => {
            "tool unavailable: its input schema cannot be checked".into()
        }
    }
}

/// The JSON-RPC error for a `tools/call` the catalogue refused before the policy
/// ([`call_problem_code`], [`call_problem_message`]); `data.reason` is the problem's
/// label, and for invalid arguments `data.errors` lists every failure with values
/// masked. The audit line has the full detail.
pub fn call_problem(id: Option<&Value>, problem: &CallProblem) -> Value {
    let reason = problem.label();
    let data = match problem {
        CallProblem::InvalidArguments { errors } => json!({ "reason": reason, "errors": errors }),
        CallProblem::NotApproved { status } | CallProblem::PromptNotApproved { status } => {
            let status = match status {
                PinStatus::Drifted { .. } => "changed since it was approved",
                _ => "not approved",
            };
            json!({ "reason": reason, "status": status })
        }
        _ => json!({ "reason": reason }),
    };
    error_response(
        id,
        call_problem_code(problem),
        &call_problem_message(problem),
        Some(data),
    )
}

/// An upstream answer the proxy could not filter: withheld, replaced by an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Unreadable, compressed, in an unexpected shape or content type, or answering with
    /// a session id another principal owns.
    Unfilterable,
    /// A JSON answer to a list request larger than `limits.max_response_bytes`.
    TooLarge,
    /// The answer of a taint source whose taint could not be written to the shared
    /// state (`[state.on_unavailable] taint = "deny"`): the client must not hold the
    /// data while the other replicas see the credential clean.
    StateUnavailable,
    /// The answer to an `initialize` that would open a session over
    /// `sessions.max_sessions` (the table filled while it was forwarded): the client never
    /// learns the session id, and the upstream's session idles out.
    TooManySessions,
}

impl Withheld {
    /// The HTTP status when the whole answer is replaced before its head went out. (Once
    /// the head went out, the error takes the withheld message's place, in the
    /// upstream's status.)
    pub const STATUS: u16 = 502;

    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            Withheld::Unfilterable | Withheld::TooLarge => UPSTREAM_UNFILTERABLE,
            Withheld::StateUnavailable => STATE_UNAVAILABLE,
            Withheld::TooManySessions => OVERLOADED,
        }
    }

    /// The message the client reads.
    pub fn message(self) -> &'static str {
        match self {
            Withheld::Unfilterable => "upstream response could not be filtered",
            Withheld::TooLarge => "upstream response too large to filter",
            Withheld::StateUnavailable => "shared state unavailable; answer withheld",
            Withheld::TooManySessions => {
                "too many sessions: the new session was refused; try again later"
            }
        }
    }

    /// The error in place of the withheld message, with its id if known.
    pub fn error(self, id: Option<&Value>) -> Value {
        error_response(id, self.code(), self.message(), None)
    }

    /// [`Withheld::error`] without an id, as bytes.
    pub fn body(self) -> Bytes {
        Bytes::from(self.error(None).to_string())
    }
}

/// The upstream exchange failed before an answer went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailed {
    /// The upstream could not be reached, or was silent beyond `upstream_timeouts`, or
    /// broke off: HTTP 502.
    Unavailable,
    /// The proxy failed while forwarding: HTTP 500.
    Proxy,
}

impl UpstreamFailed {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            UpstreamFailed::Unavailable => 502,
            UpstreamFailed::Proxy => 500,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        INTERNAL_ERROR
    }

    /// The message the client reads.
    pub fn message(self) -> &'static str {
        "upstream MCP server unavailable"
    }

    /// The JSON-RPC error body.
    pub fn body(self) -> Value {
        error_response(None, self.code(), self.message(), None)
    }
}

/// How an error reaches the client over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// As the whole answer, with this status.
    Status(u16),
    /// In place of one message of the upstream's answer, whose status has gone out.
    InPlace,
}

impl fmt::Display for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Http::Status(status) => write!(f, "{status}"),
            Http::InPlace => f.write_str("in place"),
        }
    }
}

/// Why the listener answered a connection itself, before any request reached the
/// exchange, and closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// `connections.max_connections` connections were already open.
    ConnectionLimit,
    /// The request head did not arrive whole in `connections.header_timeout`.
    HeaderTimeout,
    /// The request head was larger than the listener reads (64 KiB).
    HeaderTooLarge,
}

impl Cutoff {
    /// The `reason` label of `mcp_warden_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Cutoff::ConnectionLimit => "connection_limit",
            Cutoff::HeaderTimeout => "header_timeout",
            Cutoff::HeaderTooLarge => "header_too_large",
        }
    }

    /// The HTTP status line.
    fn status_line(self) -> &'static str {
        match self {
            Cutoff::ConnectionLimit => "503 Service Unavailable",
            Cutoff::HeaderTimeout => "408 Request Timeout",
            Cutoff::HeaderTooLarge => "431 Request Header Fields Too Large",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Cutoff::ConnectionLimit => 503,
            Cutoff::HeaderTimeout => 408,
            Cutoff::HeaderTooLarge => 431,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            Cutoff::ConnectionLimit => OVERLOADED,
            Cutoff::HeaderTimeout | Cutoff::HeaderTooLarge => INVALID_REQUEST,
        }
    }

    /// The message the client reads.
    pub fn message(self) -> &'static str {
        match self {
            Cutoff::ConnectionLimit => "too many connections",
            Cutoff::HeaderTimeout => "request headers not received in time",
            Cutoff::HeaderTooLarge => "request headers too large",
        }
    }

    /// The whole HTTP response the client gets (the connection is closed after it).
    pub fn response(self) -> Vec<u8> {
        let extra = match self {
            Cutoff::ConnectionLimit => "retry-after: 1\r\n",
            Cutoff::HeaderTimeout | Cutoff::HeaderTooLarge => "",
        };
        let body = error_response(None, self.code(), self.message(), None).to_string();
        format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\ncache-control: no-store\r\n{extra}\r\n{body}",
            self.status_line(),
            body.len()
        )
        .into_bytes()
    }
}

/// One distinct error on the wire, for the documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Its name: for a [`Refusal`], its [`Refusal::label`] (the audit line's `reason` and
    /// the metrics' label).
    pub name: &'static str,
    /// How it reaches the client.
    pub http: Http,
    /// The JSON-RPC code.
    pub code: i64,
    /// The message (an example, for messages that name the bad input).
    pub message: String,
}

impl Refusal {
    /// One example of each refusal, every variant (and every distinct status) covered.
    pub fn examples() -> Vec<Refusal> {
        let decision = Decision::default();
        vec![
            Refusal::NotFound,
            Refusal::MethodNotAllowed,
            Refusal::BadOrigin {
                origin: "https://evil.example".into(),
            },
            Refusal::Unauthenticated {
                error: AuthError::Missing,
                resource_metadata: None,
            },
            Refusal::ClientCert(CertRefusal::Required),
            Refusal::ClientCert(CertRefusal::SeveralUris),
            Refusal::Session(SessionError::Unknown),
            Refusal::Session(SessionError::NotOwner),
            Refusal::Session(SessionError::TooManyPending),
            Refusal::Session(SessionError::Full),
            Refusal::Task(TaskError::Unknown),
            Refusal::Task(TaskError::NotOwner),
            Refusal::Task(TaskError::NoTaskId),
            Refusal::BadSessionHeader,
            Refusal::TooLarge { limit: 4_194_304 },
            Refusal::Encoded {
                encoding: "gzip".into(),
            },
            Refusal::LengthRequired,
            Refusal::UnexpectedBody,
            Refusal::BodyRead {
                reason: "timed out reading the request body".into(),
            },
            Refusal::Body(BodyError::Malformed {
                reason: "expected value at line 1 column 1".into(),
            }),
            Refusal::Body(BodyError::DuplicateKey { key: "id".into() }),
            Refusal::Body(BodyError::TooDeep { limit: 64 }),
            Refusal::Body(BodyError::NotJsonRpc {
                reason: "`jsonrpc` must be \"2.0\"".into(),
            }),
            Refusal::HeaderMismatch(HeaderMismatch {
                reason: "`Mcp-Method` is `tools/list`, the body's method is `tools/call`".into(),
            }),
            Refusal::Denied {
                status: 200,
                body: MessageRefusal::Denied.error(Some(&json!(1)), &decision),
            },
            Refusal::denied_without_answer(&decision),
            Refusal::InsufficientScope(Box::new(StepUp {
                scopes: vec!["mcp:admin".into()],
                id: json!(1),
                policy_ids: vec!["admin-tools-need-scope".into()],
                resource_metadata: None,
            })),
            Refusal::AuditUnavailable,
            Refusal::RateLimited {
                rule: "calls".into(),
                retry_after: std::time::Duration::from_millis(1_200),
            },
            Refusal::StateUnavailable {
                feature: "taint",
                reason: "connection refused".into(),
            },
            Refusal::Internal {
                reason: "request body could not be staged for forwarding".into(),
            },
        ]
    }
}

/// One example of each refused `tools/call` and `prompts/get`.
fn call_problem_examples() -> Vec<CallProblem> {
    vec![
        CallProblem::NotApproved {
            status: PinStatus::Unpinned,
        },
        CallProblem::InvisibleCharacters,
        CallProblem::PromptNotApproved {
            status: PinStatus::Unpinned,
        },
        CallProblem::PromptInvisibleCharacters,
        CallProblem::UnknownTool,
        CallProblem::SchemaUnusable {
            reason: "too deep".into(),
        },
        CallProblem::InvalidArguments {
            errors: vec![crate::schema::ArgumentError {
                path: "/city".into(),
                rule: "type".into(),
                message: "want string, but got array".into(),
                detail: String::new(),
            }],
        },
    ]
}

/// Every distinct error a client can get from the proxy.
pub fn catalogue() -> Vec<WireError> {
    let mut all: Vec<WireError> = Refusal::examples()
        .into_iter()
        .map(|r| WireError {
            name: match (&r, r.status()) {
                (Refusal::Denied { .. }, 403) => "denied_without_answer",
                _ => r.label(),
            },
            http: Http::Status(r.status()),
            code: r.code(),
            message: r.message(),
        })
        .collect();
    all.push(WireError {
        name: "batch_refused",
        http: Http::Status(200),
        code: MessageRefusal::BatchRefused.code(),
        message: MessageRefusal::BatchRefused.message().into(),
    });
    for problem in call_problem_examples() {
        all.push(WireError {
            name: problem.label(),
            http: Http::Status(200),
            code: call_problem_code(&problem),
            message: call_problem_message(&problem),
        });
    }
    for (name, withheld, http) in [
        (
            "withheld",
            Withheld::Unfilterable,
            Http::Status(Withheld::STATUS),
        ),
        ("withheld_in_place", Withheld::Unfilterable, Http::InPlace),
        ("withheld_too_large", Withheld::TooLarge, Http::InPlace),
        (
            "withheld_state_unavailable",
            Withheld::StateUnavailable,
            Http::Status(Withheld::STATUS),
        ),
        (
            "withheld_state_unavailable_in_place",
            Withheld::StateUnavailable,
            Http::InPlace,
        ),
        (
            "withheld_too_many_sessions",
            Withheld::TooManySessions,
            Http::Status(Withheld::STATUS),
        ),
    ] {
        all.push(WireError {
            name,
            http,
            code: withheld.code(),
            message: withheld.message().into(),
        });
    }
    for (name, failed) in [
        ("upstream_unavailable", UpstreamFailed::Unavailable),
        ("proxy_failed", UpstreamFailed::Proxy),
    ] {
        all.push(WireError {
            name,
            http: Http::Status(failed.status()),
            code: failed.code(),
            message: failed.message().into(),
        });
    }
    for cutoff in [
        Cutoff::ConnectionLimit,
        Cutoff::HeaderTimeout,
        Cutoff::HeaderTooLarge,
    ] {
        all.push(WireError {
            name: cutoff.label(),
            http: Http::Status(cutoff.status()),
            code: cutoff.code(),
            message: cutoff.message().into(),
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(Refusal::TooLarge { limit: 1 }.status(), 413);
        assert_eq!(
            Refusal::Encoded {
                encoding: "gzip".into()
            }
            .status(),
            415
        );
        assert_eq!(Refusal::Session(SessionError::Unknown).status(), 404);
        assert_eq!(Refusal::Session(SessionError::NotOwner).status(), 403);
        let mismatch = Refusal::HeaderMismatch(HeaderMismatch { reason: "x".into() });
        assert_eq!(mismatch.status(), 400);
        assert_eq!(mismatch.body()["error"]["code"], HEADER_MISMATCH);
        let malformed = Refusal::Body(BodyError::Malformed { reason: "x".into() });
        assert_eq!(malformed.body()["error"]["code"], -32700);
        let dup = Refusal::Body(BodyError::DuplicateKey { key: "a".into() });
        assert_eq!(dup.body()["error"]["code"], -32600);
    }

    #[test]
    fn rate_limits_answer_429_with_retry_after() {
        let r = Refusal::RateLimited {
            rule: "calls".into(),
            retry_after: std::time::Duration::from_millis(1_200),
        };
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers(), vec![("Retry-After", "2".to_owned())]);
        let body = r.body();
        assert_eq!(body["error"]["code"], RATE_LIMITED);
        assert_eq!(body["error"]["data"]["rule"], "calls");
        assert_eq!(body["error"]["data"]["retry_after_seconds"], 2);
        assert_eq!(retry_after_seconds(std::time::Duration::ZERO), 1);
        let s = Refusal::StateUnavailable {
            feature: "taint",
            reason: "down".into(),
        };
        assert_eq!(s.status(), 503);
        assert_eq!(s.body()["error"]["code"], STATE_UNAVAILABLE);
        assert_eq!(s.body()["error"]["data"]["feature"], "taint");
        assert!(
            !s.body().to_string().contains("down"),
            "the reason stays in the log"
        );
        assert_eq!(
            Withheld::StateUnavailable.error(None)["error"]["code"],
            STATE_UNAVAILABLE
        );
    }

    #[test]
    fn unauthenticated_carries_www_authenticate() {
        let r = Refusal::Unauthenticated {
            error: AuthError::Missing,
            resource_metadata: None,
        };
        assert_eq!(r.status(), 401);
        assert!(r.headers()[0].1.starts_with("Bearer"));
        assert_eq!(r.body()["error"]["code"], UNAUTHENTICATED);
    }

    /// The rows of the table under "## The errors" in `docs/src/errors.md`: name, HTTP,
    /// code, message.
    fn documented() -> Vec<(String, String, i64, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/errors.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = text
            .split("## The errors")
            .nth(1)
            .expect("a section `## The errors`");
        section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // the header and its rule
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                assert!(cells.len() >= 5, "a row of five cells: {line}");
                let unquote = |c: &str| c.trim_matches('`').to_owned();
                let code = cells[2]
                    .parse()
                    .unwrap_or_else(|_| panic!("a JSON-RPC code: {line}"));
                (
                    unquote(cells[0]),
                    cells[1].to_owned(),
                    code,
                    unquote(cells[3]),
                )
            })
            .collect()
    }

    #[test]
    fn the_documented_table_is_every_error_and_nothing_else() {
        let documented = documented();
        let catalogue = catalogue();
        for e in &catalogue {
            let row = documented
                .iter()
                .find(|(name, ..)| name == e.name)
                .unwrap_or_else(|| panic!("`{}` is missing from docs/src/errors.md", e.name));
            assert_eq!(
                (row.1.as_str(), row.2),
                (e.http.to_string().as_str(), e.code),
                "status and code of `{}`",
                e.name
            );
            match row.3.split_once('…') {
                Some((prefix, _)) => assert!(
                    e.message.starts_with(prefix),
                    "`{}`: `{}` does not start with `{prefix}`",
                    e.name,
                    e.message
                ),
                None => assert_eq!(row.3, e.message, "message of `{}`", e.name),
            }
        }
        for (name, ..) in &documented {
            assert!(
                catalogue.iter().any(|e| e.name == name),
                "docs/src/errors.md lists `{name}`, which the proxy never sends"
            );
        }
        assert_eq!(documented.len(), catalogue.len(), "each error once");
    }

    #[test]
    fn every_refusal_has_a_distinct_name_status_and_code() {
        let catalogue = catalogue();
        let mut names: Vec<&str> = catalogue.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), catalogue.len(), "names are unique");
        for r in Refusal::examples() {
            let body = r.body();
            assert_eq!(body["jsonrpc"], "2.0");
            let error = if body.is_array() {
                &body[0]["error"]
            } else {
                &body["error"]
            };
            assert_eq!(error["code"], r.code(), "{r:?}");
            assert_eq!(error["message"], r.message(), "{r:?}");
        }
        assert_eq!(
            Withheld::Unfilterable.error(Some(&json!(7)))["id"],
            json!(7),
            "a withheld list result keeps its id"
        );
        assert_eq!(UpstreamFailed::Unavailable.status(), 502);
        let denied = MessageRefusal::Denied.error(
            Some(&json!("a")),
            &Decision {
                policy_ids: vec!["p1".into()],
                ..Decision::default()
            },
        );
        assert_eq!(denied["error"]["data"]["policy_ids"], json!(["p1"]));
        assert_eq!(denied["id"], "a");
    }
}
