//! The admin listener: `/metrics`, `/healthz`, `/readyz`, on its own address.
//!
//! It runs on its own thread and tokio runtime rather than as a Pingora service, so it
//! keeps answering while Pingora drains: Prometheus can scrape the drain and the kubelet
//! sees `/readyz` turn 503. It speaks just enough HTTP/1.1 for probes and scrapers: one
//! `GET` (or `HEAD`) per connection, answered with `Connection: close`.
//!
//! With `[admin.tls]` it speaks HTTPS (tokio-rustls over the same reloading certificate
//! resolver and client verifier as the proxy's listener, [`crate::tls::ServerTls`]). With
//! `client_auth.mode = "required"`, `/metrics` is answered only to a client that presented a
//! certificate chaining to the configured CA ([`admit`]); the probes stay open to any client
//! that completes the handshake, because the kubelet's HTTPS probes present no certificate.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::Warden;
use crate::tls::{ClientAuthMode, ServerTls};

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the readiness check waits for the upstream to accept a connection.
const MAX_UPSTREAM_PROBE: Duration = Duration::from_secs(2);

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl AdminResponse {
    fn text(status: u16, body: &str) -> Self {
        AdminResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

/// What `/readyz` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The proxy's listener is bound and being served.
    pub listening: bool,
    /// A policy generation is loaded.
    pub policies_loaded: bool,
    /// Its number.
    pub policy_generation: u64,
    /// The upstream accepted a TCP connection just now.
    pub upstream_reachable: bool,
    /// Shutdown has begun.
    pub draining: bool,
    /// The audit log is not refusing requests (only `fail_closed` can).
    pub audit_ok: bool,
    /// The shared-state backend answered (always true for `memory`).
    pub state_ok: bool,
    /// Some shared-state feature fails closed, so an unreachable backend makes the
    /// proxy unready (`[state.on_unavailable]`).
    pub state_required: bool,
}

impl Readiness {
    /// Ready to take traffic?
    pub fn ready(&self) -> bool {
        self.listening
            && self.policies_loaded
            && self.upstream_reachable
            && !self.draining
            && self.audit_ok
            && (self.state_ok || !self.state_required)
    }
}

/// Check readiness now.
pub async fn readiness(warden: &Warden) -> Readiness {
    let generation = warden.policies.current();
    let probe = warden
        .config
        .raw
        .upstream_timeouts
        .connect
        .min(MAX_UPSTREAM_PROBE);
    let authority = warden.config.upstream.authority.as_str();
    let upstream_reachable = matches!(
        tokio::time::timeout(probe, TcpStream::connect(authority)).await,
        Ok(Ok(_))
    );
    Readiness {
        listening: warden.lifecycle.listening(),
        policies_loaded: generation.number > 0,
        policy_generation: generation.number,
        upstream_reachable,
        draining: warden.lifecycle.draining(),
        audit_ok: !warden.audit.refusing(),
        state_ok: warden.state.reachable().await,
        state_required: warden.state.required(),
    }
}

/// What the admin listener knows of a connection's client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert {
    /// `[admin.tls.client_auth] mode = "required"`.
    pub required: bool,
    /// The client presented a certificate the verifier accepted.
    pub presented: bool,
}

/// The refusal of a request the connection may not make: `/metrics` (and anything but the
/// probes) without a client certificate when one is required. `None`: go on.
pub fn admit(cert: ClientCert, target: &str) -> Option<AdminResponse> {
    let path = target.split('?').next().unwrap_or("");
    let probe = matches!(path, "/healthz" | "/readyz");
    (cert.required && !cert.presented && !probe)
        .then(|| AdminResponse::text(401, "a client certificate is required"))
}

/// Answer one request.
pub async fn respond(warden: &Warden, method: &str, target: &str) -> AdminResponse {
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return AdminResponse::text(405, "method not allowed");
    }
    match path {
        "/healthz" => AdminResponse::text(200, "ok"),
        "/readyz" => {
            let r = readiness(warden).await;
            AdminResponse {
                status: if r.ready() { 200 } else { 503 },
                content_type: "application/json",
                body: serde_json::json!({ "ready": r.ready(), "checks": r }).to_string() + "\n",
            }
        }
        "/metrics" => {
            warden.refresh_gauges();
            let mut body = String::new();
            let encoded =
                prometheus::TextEncoder::new().encode_utf8(&prometheus::gather(), &mut body);
            match encoded {
                Ok(()) => AdminResponse {
                    status: 200,
                    content_type: prometheus::TEXT_FORMAT,
                    body,
                },
                Err(e) => {
                    tracing::error!("cannot encode metrics: {e}");
                    AdminResponse::text(500, "cannot encode metrics")
                }
            }
        }
        _ => AdminResponse::text(404, "not found: try /metrics, /healthz or /readyz"),
    }
}

/// How the admin listener speaks TLS: the acceptor, and whether `/metrics` needs a client
/// certificate.
#[derive(Clone)]
struct AdminTls {
    acceptor: TlsAcceptor,
    cert_required: bool,
}

/// Bind the admin address now (so a taken port stops the start) and serve it on its own
/// thread; over HTTPS when `tls` is given (`[admin.tls]`, loaded by the caller).
#[allow(
    clippy::disallowed_methods,
    reason = "a failed accept is retried after a pause"
)]
pub fn spawn(
    warden: &Arc<Warden>,
    tls: Option<&ServerTls>,
) -> anyhow::Result<std::net::SocketAddr> {
    let tls = match tls {
        Some(st) => Some(AdminTls {
            acceptor: TlsAcceptor::from(Arc::new(st.rustls_config()?)),
            cert_required: st.config.client_auth.mode == ClientAuthMode::Required,
        }),
        None => None,
    };
    let listener = super::listener::bind(warden.config.raw.admin.listen, "admin.listen")?;
    let local = listener.local_addr()?;
    let warden = Arc::clone(warden);
    super::spawn_with_runtime("admin", "admin listener", move || async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot start the admin listener: {e}");
                return;
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let warden = Arc::clone(&warden);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Err(e) = accept(stream, tls, &warden).await {
                            tracing::debug!(%peer, "admin connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("admin listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })?;
    Ok(local)
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_owned())
}

/// Serve one connection: plain, or after a TLS handshake (bounded by the same deadline
/// as the request head).
async fn accept(stream: TcpStream, tls: Option<AdminTls>, warden: &Warden) -> std::io::Result<()> {
    let Some(tls) = tls else {
        let plain = ClientCert {
            required: false,
            presented: false,
        };
        return serve(stream, plain, warden).await;
    };
    let stream = tokio::time::timeout(READ_TIMEOUT, tls.acceptor.accept(stream))
        .await
        .map_err(|_| timed_out("slow TLS handshake"))??;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|certs| !certs.is_empty());
    let cert = ClientCert {
        required: tls.cert_required,
        presented,
    };
    serve(stream, cert, warden).await
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    cert: ClientCert,
    warden: &Warden,
) -> std::io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| timed_out("slow request"))??;
    let response = match parse_request_line(&head) {
        Some((method, target)) => match admit(cert, target) {
            Some(refused) => {
                tracing::warn!(
                    target,
                    "admin: refused a request without a client certificate"
                );
                refused
            }
            None => respond(warden, method, target).await,
        },
        None => AdminResponse::text(400, "bad request"),
    };
    let is_head = head.starts_with(b"HEAD ");
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(response.body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
            return Ok(head);
        }
    }
}

/// `(method, target)` of an HTTP/1.x request line.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.")).then_some((method, target))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET / HTTP/2 x\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn metrics_need_a_client_certificate_when_one_is_required() {
        let required = |presented| ClientCert {
            required: true,
            presented,
        };
        let refused = admit(required(false), "/metrics").expect("refused");
        assert_eq!(refused.status, 401);
        assert_eq!(
            admit(required(false), "/metrics?x=1").map(|r| r.status),
            Some(401)
        );
        assert_eq!(
            admit(required(false), "/other").map(|r| r.status),
            Some(401)
        );
        assert_eq!(admit(required(true), "/metrics"), None);
        // The kubelet's HTTPS probes present no certificate.
        assert_eq!(admit(required(false), "/healthz"), None);
        assert_eq!(admit(required(false), "/readyz"), None);
        let optional = ClientCert {
            required: false,
            presented: false,
        };
        assert_eq!(admit(optional, "/metrics"), None);
    }

    #[test]
    fn readiness_needs_every_check() {
        let ok = Readiness {
            listening: true,
            policies_loaded: true,
            policy_generation: 1,
            upstream_reachable: true,
            draining: false,
            audit_ok: true,
            state_ok: true,
            state_required: true,
        };
        assert!(ok.ready());
        assert!(!Readiness {
            state_ok: false,
            ..ok
        }
        .ready());
        assert!(
            Readiness {
                state_ok: false,
                state_required: false,
                ..ok
            }
            .ready(),
            "a backend no feature fails closed on does not make the proxy unready"
        );
        assert!(!Readiness {
            upstream_reachable: false,
            ..ok
        }
        .ready());
        assert!(!Readiness {
            listening: false,
            ..ok
        }
        .ready());
        assert!(!Readiness {
            draining: true,
            ..ok
        }
        .ready());
        assert!(!Readiness {
            audit_ok: false,
            ..ok
        }
        .ready());
    }
}
