//! Admission: everything decided from a request's head, before a byte of its body is
//! read. One function, [`admit`], over the HTTP method, path, headers and peer address
//! (and the shared state it needs) returns one typed value: who asks ([`Identity`]), in
//! which session, and what kind of request it is ([`RequestKind`]) — or the
//! [`Refusal`] the client gets, with as much of the caller as was known ([`Refused`]).
//!
//! Order: the audit log can take a line → the path is the MCP endpoint → the method is one
//! MCP uses → `Origin` is allowed → the credential is valid → `Mcp-Session-Id` is one
//! text value of a session this principal owns → a GET or DELETE carries no body, a POST
//! body is not compressed. Deciding the body of a POST is [`super::decide`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::auth::{CertRefusal, ClientCert, Identity, PeerCert};
use crate::tls::ClientAuthMode;

use super::refusal::Refusal;
use super::Warden;

/// The header carrying the MCP session id (requests and answers).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// The header carrying the MCP protocol revision.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// What a request is, by its HTTP method (the three MCP's Streamable HTTP transport uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A POST: a JSON-RPC body, read whole and decided before it is forwarded.
    Post,
    /// A GET: the session's event stream (new or resumed with `Last-Event-ID`). It never
    /// ends by itself; answers to list requests of the session may arrive on it.
    StreamGet,
    /// A DELETE: the client ends its session; the proxy forgets it when the upstream
    /// agrees.
    DeleteSession,
}

impl RequestKind {
    /// The kind of a request with this HTTP method; `None` for a method MCP does not use.
    pub fn of(method: &Method) -> Option<RequestKind> {
        match *method {
            Method::POST => Some(RequestKind::Post),
            Method::GET => Some(RequestKind::StreamGet),
            Method::DELETE => Some(RequestKind::DeleteSession),
            _ => None,
        }
    }

    /// The `method` label of the upstream latency histogram, for kinds without a body
    /// (a POST is labelled by its JSON-RPC method once decided).
    pub fn upstream_label(self) -> Option<&'static str> {
        match self {
            RequestKind::Post => None,
            RequestKind::StreamGet => Some("http_get"),
            RequestKind::DeleteSession => Some("http_delete"),
        }
    }
}

/// A request's head: what admission reads.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The URI path.
    pub path: &'a str,
    /// The headers as sent.
    pub headers: &'a HeaderMap,
    /// The client's address, if known.
    pub peer: Option<SocketAddr>,
    /// What the TLS handshake said of the client's certificate; `None` on a plain
    /// (non-TLS) connection.
    pub client_cert: Option<&'a PeerCert>,
}

/// A request admitted: who asks, in which session, and what kind of request it is.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The authenticated caller (shared with the cache of verified tokens).
    pub identity: Arc<Identity>,
    /// The `Mcp-Session-Id` sent, checked to belong to this caller.
    pub session_id: Option<String>,
    /// By HTTP method.
    pub kind: RequestKind,
    /// `MCP-Protocol-Version`, if sent as text.
    pub protocol_version: Option<String>,
    /// The connection's verified client certificate (policies' `context.mtls`, the
    /// `X-MCP-Client-Cert-*` headers).
    pub client_cert: Option<Arc<ClientCert>>,
}

impl Admitted {
    /// `refusal` for this request after admission: the caller and session are known.
    pub fn refuse(&self, refusal: Refusal) -> Refused {
        Refused {
            refusal,
            identity: Some(self.identity.clone()),
            session_id: self.session_id.clone(),
        }
    }
}

/// A request refused, and as much of its caller as was known when it was (so the audit
/// line names who was refused).
#[derive(Debug, Clone)]
pub struct Refused {
    /// What the client gets.
    pub refusal: Refusal,
    /// The caller, once authenticated.
    pub identity: Option<Arc<Identity>>,
    /// The session, once checked to belong to the caller.
    pub session_id: Option<String>,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Refused {
            refusal,
            identity: None,
            session_id: None,
        }
    }
}

/// Admit a request by its head, or refuse it.
#[allow(
    clippy::result_large_err,
    reason = "one refusal per refused request, moved once into the response; not a hot path"
)]
pub fn admit(warden: &Warden, head: &RequestHead<'_>) -> Result<Admitted, Refused> {
    if warden.audit.refusing() {
        return Err(Refusal::AuditUnavailable.into());
    }
    if head.path != warden.config.upstream.path {
        return Err(Refusal::NotFound.into());
    }
    let kind = RequestKind::of(head.method).ok_or(Refusal::MethodNotAllowed)?;
    let http = &warden.config.raw.http;
    check_origin(head.headers, &http.allowed_origins)?;
    let mode = warden
        .config
        .raw
        .tls
        .as_ref()
        .map_or(ClientAuthMode::Off, |t| t.client_auth.mode);
    let client_cert = client_cert(mode, head.client_cert)?;
    let identity = warden
        .auth
        .authenticate_peer(head.headers, client_cert.as_deref())
        .map_err(|error| Refusal::Unauthenticated {
            error,
            resource_metadata: warden.metadata_url(),
        })?;

    // Known from here on, so refusals name who was refused.
    let refuse = |refusal: Refusal, session_id: Option<String>| Refused {
        refusal,
        identity: Some(identity.clone()),
        session_id,
    };
    let session_id = session_header(head.headers).map_err(|r| refuse(r, None))?;
    if let Some(sid) = &session_id {
        warden
            .sessions
            .check(sid, &identity.principal_key())
            .map_err(|e| refuse(e.into(), None))?;
    }
    match kind {
        RequestKind::Post => {
            check_encoding(head.headers).map_err(|r| refuse(r, session_id.clone()))?
        }
        RequestKind::StreamGet | RequestKind::DeleteSession if has_body(head.headers) => {
            return Err(refuse(Refusal::UnexpectedBody, session_id));
        }
        RequestKind::StreamGet | RequestKind::DeleteSession => {}
    }
    let protocol_version = head
        .headers
        .get(PROTOCOL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Admitted {
        identity,
        session_id,
        kind,
        protocol_version,
        client_cert,
    })
}

/// The connection's verified client certificate, or the refusal of a connection without
/// one in `required` mode, or of one that cannot name a caller (in any mode: a
/// certificate presented but unusable is never treated as absent).
#[allow(
    clippy::result_large_err,
    reason = "one refusal per refused request, moved once into the response"
)]
fn client_cert(
    mode: ClientAuthMode,
    peer: Option<&PeerCert>,
) -> Result<Option<Arc<ClientCert>>, Refusal> {
    match peer {
        Some(PeerCert::Verified(cert)) => Ok(Some(Arc::clone(cert))),
        Some(PeerCert::Refused(refusal)) => Err(Refusal::ClientCert(*refusal)),
        Some(PeerCert::Absent) | None if mode == ClientAuthMode::Required => {
            Err(Refusal::ClientCert(CertRefusal::Required))
        }
        Some(PeerCert::Absent) | None => Ok(None),
    }
}

fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), Refusal> {
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    if origins.next().is_some() || !allowed.iter().any(|a| a == &text) {
        return Err(Refusal::BadOrigin { origin: text });
    }
    Ok(())
}

/// The session id sent: one non-empty text value, or none.
fn session_header(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(SESSION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::BadSessionHeader);
    }
    let text = value.to_str().map_err(|_| Refusal::BadSessionHeader)?;
    if text.is_empty() {
        return Err(Refusal::BadSessionHeader);
    }
    Ok(Some(text.to_owned()))
}

/// A POST body must arrive as sent: the proxy decides what the upstream will read.
fn check_encoding(headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(encoding) = headers.get(http::header::CONTENT_ENCODING) {
        let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Err(Refusal::Encoded { encoding });
        }
    }
    Ok(())
}

/// Does the request declare a body (for GET/DELETE, which must not carry one)?
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::sessions::SessionError;
    use crate::exchange::test_warden;

    const API_KEY: &str = "demo-api-key";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    #[allow(
        clippy::result_large_err,
        reason = "a test helper returning `admit`'s result"
    )]
    fn run(
        warden: &Warden,
        method: Method,
        path: &str,
        h: &HeaderMap,
    ) -> Result<Admitted, Refused> {
        admit(
            warden,
            &RequestHead {
                method: &method,
                path,
                headers: h,
                peer: None,
                client_cert: None,
            },
        )
    }

    #[test]
    fn client_certificates_are_required_and_checked_before_the_credential() {
        use crate::auth::{CertRefusal, ClientCert, PeerCert};
        let mut w = test_warden();
        let tls: crate::tls::TlsConfig = toml::from_str(
            "cert_file = \"c\"\nkey_file = \"k\"\n[client_auth]\nmode = \"required\"\nca_files = [\"ca\"]",
        )
        .unwrap();
        w.config.raw.tls = Some(tls);
        let h = headers(&[("x-api-key", API_KEY)]);
        #[allow(clippy::result_large_err, reason = "`admit`'s result, in a test")]
        fn admit_with(
            w: &Warden,
            h: &HeaderMap,
            peer: Option<&PeerCert>,
        ) -> Result<Admitted, Refused> {
            admit(
                w,
                &RequestHead {
                    method: &Method::POST,
                    path: "/mcp",
                    headers: h,
                    peer: None,
                    client_cert: peer,
                },
            )
        }
        // required: no certificate (or no TLS at all) is a 401 even with a valid API key
        assert_eq!(label(admit_with(&w, &h, None)), "client_cert_required");
        assert_eq!(
            label(admit_with(&w, &h, Some(&PeerCert::Absent))),
            "client_cert_required"
        );
        let refused = admit_with(&w, &h, Some(&PeerCert::Absent))
            .unwrap_err()
            .refusal;
        assert_eq!(refused.status(), 401);
        // a certificate that cannot name a workload is refused in any mode
        let two_uris = PeerCert::Refused(CertRefusal::SeveralUris);
        assert_eq!(
            label(admit_with(&w, &h, Some(&two_uris))),
            "client_cert_refused"
        );
        let cert = std::sync::Arc::new(ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".into()),
            dns: vec![],
            subject: String::new(),
            fingerprint: "00".repeat(32),
            x5t_s256: "x".into(),
        });
        let admitted = admit_with(&w, &h, Some(&PeerCert::Verified(cert.clone()))).unwrap();
        assert_eq!(admitted.client_cert, Some(cert));
        assert_eq!(admitted.identity.subject, "ci-bot");
        // optional: a connection without one goes on to the other methods
        w.config.raw.tls.as_mut().unwrap().client_auth.mode = ClientAuthMode::Optional;
        let admitted = admit_with(&w, &h, Some(&PeerCert::Absent)).unwrap();
        assert_eq!(admitted.client_cert, None);
    }

    fn label(r: Result<Admitted, Refused>) -> &'static str {
        match r {
            Ok(a) => panic!("admitted {a:?}"),
            Err(refused) => refused.refusal.label(),
        }
    }

    #[test]
    fn each_method_is_a_kind() {
        let w = test_warden();
        let h = headers(&[
            ("x-api-key", API_KEY),
            ("mcp-protocol-version", "2025-06-18"),
        ]);
        for (method, kind) in [
            (Method::POST, RequestKind::Post),
            (Method::GET, RequestKind::StreamGet),
            (Method::DELETE, RequestKind::DeleteSession),
        ] {
            let a = run(&w, method, "/mcp", &h).unwrap();
            assert_eq!(a.kind, kind);
            assert_eq!(a.identity.subject, "ci-bot");
            assert_eq!(a.session_id, None);
            assert_eq!(a.protocol_version.as_deref(), Some("2025-06-18"));
        }
        assert_eq!(RequestKind::StreamGet.upstream_label(), Some("http_get"));
        assert_eq!(RequestKind::Post.upstream_label(), None);
    }

    #[test]
    fn path_method_and_origin_are_checked_before_the_credential() {
        let w = test_warden();
        let none = headers(&[]);
        assert_eq!(label(run(&w, Method::POST, "/other", &none)), "not_found");
        assert_eq!(
            label(run(&w, Method::PUT, "/mcp", &none)),
            "method_not_allowed"
        );
        let evil = headers(&[("origin", "https://evil.example"), ("x-api-key", API_KEY)]);
        assert_eq!(label(run(&w, Method::POST, "/mcp", &evil)), "bad_origin");
        let two = headers(&[
            ("origin", "http://localhost:6274"),
            ("origin", "http://localhost:6274"),
        ]);
        assert_eq!(label(run(&w, Method::POST, "/mcp", &two)), "bad_origin");
        let ok = headers(&[("origin", "http://localhost:6274"), ("x-api-key", API_KEY)]);
        assert!(run(&w, Method::POST, "/mcp", &ok).is_ok());
        match run(&w, Method::POST, "/mcp", &none) {
            Err(Refused {
                refusal: Refusal::Unauthenticated { .. },
                identity: None,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let bad = headers(&[("x-api-key", "wrong")]);
        assert_eq!(
            label(run(&w, Method::POST, "/mcp", &bad)),
            "unauthenticated"
        );
    }

    #[test]
    fn sessions_must_be_one_value_owned_by_the_caller() {
        let w = test_warden();
        let unknown = headers(&[("x-api-key", API_KEY), ("mcp-session-id", "s1")]);
        match run(&w, Method::POST, "/mcp", &unknown) {
            Err(Refused {
                refusal: Refusal::Session(SessionError::Unknown),
                identity: Some(identity),
                session_id: None,
            }) => assert_eq!(identity.subject, "ci-bot"),
            other => panic!("{other:?}"),
        }
        w.sessions.bind("s1", "jwt:someone-else").unwrap();
        assert_eq!(
            label(run(&w, Method::GET, "/mcp", &unknown)),
            "session_not_owner"
        );
        w.sessions.bind("s2", "api_key:ci-bot").unwrap();
        let own = headers(&[("x-api-key", API_KEY), ("mcp-session-id", "s2")]);
        let a = run(&w, Method::DELETE, "/mcp", &own).unwrap();
        assert_eq!(a.session_id.as_deref(), Some("s2"));
        let twice = headers(&[
            ("x-api-key", API_KEY),
            ("mcp-session-id", "s2"),
            ("mcp-session-id", "s2"),
        ]);
        assert_eq!(
            label(run(&w, Method::POST, "/mcp", &twice)),
            "bad_session_header"
        );
        let empty = headers(&[("x-api-key", API_KEY), ("mcp-session-id", "")]);
        assert_eq!(
            label(run(&w, Method::POST, "/mcp", &empty)),
            "bad_session_header"
        );
    }

    #[test]
    fn bodies_where_none_belong_and_compressed_bodies_are_refused() {
        let w = test_warden();
        w.sessions.bind("s3", "api_key:ci-bot").unwrap();
        for body in [("content-length", "5"), ("transfer-encoding", "chunked")] {
            let h = headers(&[("x-api-key", API_KEY), ("mcp-session-id", "s3"), body]);
            for method in [Method::GET, Method::DELETE] {
                match run(&w, method, "/mcp", &h) {
                    Err(Refused {
                        refusal: Refusal::UnexpectedBody,
                        session_id: Some(sid),
                        ..
                    }) => assert_eq!(sid, "s3"),
                    other => panic!("{other:?}"),
                }
            }
            assert!(run(&w, Method::POST, "/mcp", &h).is_ok());
        }
        let zero = headers(&[("x-api-key", API_KEY), ("content-length", "0")]);
        assert!(run(&w, Method::GET, "/mcp", &zero).is_ok());
        let gzip = headers(&[("x-api-key", API_KEY), ("content-encoding", "gzip")]);
        assert_eq!(label(run(&w, Method::POST, "/mcp", &gzip)), "encoding");
        let identity = headers(&[("x-api-key", API_KEY), ("content-encoding", " Identity ")]);
        assert!(run(&w, Method::POST, "/mcp", &identity).is_ok());
    }
}
