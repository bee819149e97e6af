//! The one place refusals become HTTP: status, headers and the JSON-RPC error body.
//!
//! Every way the proxy can refuse a request before forwarding it is a [`Refusal`]
//! variant; [`Refusal::status`] and [`Refusal::body`] say what the client gets. Clients
//! are told little (a code and a short message); the audit log gets the detail.

use serde_json::Value;

use crate::auth::AuthError;
use crate::mcp::errors::{
    error_response, FORBIDDEN, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_REQUEST, RATE_LIMITED,
    STATE_UNAVAILABLE, UNAUTHENTICATED,
};
use crate::mcp::headers::HeaderMismatch;
use crate::mcp::BodyError;

use super::sessions::SessionError;

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
    /// The session id is unknown or belongs to someone else.
    Session(SessionError),
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
    /// The policy denied; the verdict supplies status and body.
    Denied {
        /// HTTP status (200 with per-request errors, or 403).
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
            Refusal::Session(SessionError::Unknown) => 404,
            Refusal::Session(SessionError::NotOwner) => 403,
            Refusal::Session(SessionError::TooManyPending) => 429,
            Refusal::BadSessionHeader => 400,
            Refusal::TooLarge { .. } => 413,
            Refusal::Encoded { .. } => 415,
            Refusal::LengthRequired => 411,
            Refusal::UnexpectedBody => 400,
            Refusal::BodyRead { .. } => 400,
            Refusal::Body(_) => 400,
            Refusal::HeaderMismatch(_) => 400,
            Refusal::Denied { status, .. } => *status,
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
            Refusal::Session(SessionError::Unknown) => "unknown_session",
            Refusal::Session(SessionError::NotOwner) => "session_not_owner",
            Refusal::Session(SessionError::TooManyPending) => "too_many_pending_lists",
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
            Refusal::AuditUnavailable => "audit_unavailable",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::StateUnavailable { .. } => "state_unavailable",
            Refusal::Internal { .. } => "internal",
        }
    }

    /// The JSON-RPC error body (id `null` except for policy denials, which carry ids).
    pub fn body(&self) -> Value {
        let (code, message): (i64, String) = match self {
            Refusal::Denied { body, .. } => return body.clone(),
            Refusal::RateLimited { rule, retry_after } => {
                return error_response(
                    None,
                    RATE_LIMITED,
                    "rate limit exceeded",
                    Some(serde_json::json!({
                        "rule": rule,
                        "retry_after_seconds": retry_after_seconds(*retry_after),
                    })),
                )
            }
            Refusal::StateUnavailable { feature, .. } => {
                return error_response(
                    None,
                    STATE_UNAVAILABLE,
                    "shared state unavailable; request refused",
                    Some(serde_json::json!({ "feature": feature })),
                )
            }
            Refusal::NotFound => (INVALID_REQUEST, "not found: not the MCP endpoint".into()),
            Refusal::MethodNotAllowed => (
                INVALID_REQUEST,
                "method not allowed: use POST, GET or DELETE".into(),
            ),
            Refusal::BadOrigin { .. } => (FORBIDDEN, "origin not allowed".into()),
            Refusal::Unauthenticated { error, .. } => {
                (UNAUTHENTICATED, format!("unauthenticated: {error}"))
            }
            Refusal::Session(SessionError::Unknown) => {
                (INVALID_REQUEST, "session not found".into())
            }
            Refusal::Session(SessionError::NotOwner) => {
                (FORBIDDEN, "session belongs to another principal".into())
            }
            Refusal::Session(SessionError::TooManyPending) => (
                INVALID_REQUEST,
                "too many outstanding list requests in this session".into(),
            ),
            Refusal::BadSessionHeader => (INVALID_REQUEST, "invalid Mcp-Session-Id header".into()),
            Refusal::TooLarge { limit } => (
                INVALID_REQUEST,
                format!("request body too large (limit {limit} bytes)"),
            ),
            Refusal::Encoded { encoding } => (
                INVALID_REQUEST,
                format!("unsupported Content-Encoding `{encoding}`: send the body uncompressed"),
            ),
            Refusal::LengthRequired => (
                INVALID_REQUEST,
                "chunked request bodies over 64 KiB are not accepted: send Content-Length".into(),
            ),
            Refusal::UnexpectedBody => (INVALID_REQUEST, "GET and DELETE take no body".into()),
            Refusal::BodyRead { .. } => (INVALID_REQUEST, "request body could not be read".into()),
            Refusal::Body(e) => (e.code(), e.to_string()),
            Refusal::HeaderMismatch(e) => (HEADER_MISMATCH, format!("header mismatch: {e}")),
            Refusal::AuditUnavailable => (
                INTERNAL_ERROR,
                "audit log unavailable; request refused".into(),
            ),
            Refusal::Internal { .. } => (INTERNAL_ERROR, "internal error; request denied".into()),
        };
        error_response(None, code, &message, None)
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
            Refusal::MethodNotAllowed => vec![("Allow", "GET, POST, DELETE".into())],
            Refusal::RateLimited { retry_after, .. } => {
                vec![("Retry-After", retry_after_seconds(*retry_after).to_string())]
            }
            Refusal::StateUnavailable { .. } => vec![("Retry-After", "1".into())],
            _ => Vec::new(),
        }
    }
}

/// Whole seconds a client should wait: rounded up, at least 1 (RFC 9110 §10.2.3).
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

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
    fn unauthenticated_carries_www_authenticate() {
        let r = Refusal::Unauthenticated {
            error: AuthError::Missing,
            resource_metadata: None,
        };
        assert_eq!(r.status(), 401);
        assert!(r.headers()[0].1.starts_with("Bearer"));
        assert_eq!(r.body()["error"]["code"], UNAUTHENTICATED);
    }
}
