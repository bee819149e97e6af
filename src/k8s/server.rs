//! The webhook's HTTPS server: rustls ([`crate::tls`], certificate reload on file
//! change) and hyper's HTTP/1.1 server, serving
//!
//! - `POST /mutate`: an `AdmissionReview` v1 ([`super::admission::review`]); the body is
//!   read whole up to `max_body_bytes` (HTTP 413 beyond), must be `application/json`;
//! - `GET /healthz`, `GET /readyz`: probes (`scheme: HTTPS`);
//! - `GET /metrics`: Prometheus text, `mcp_warden_webhook_admissions_total{decision}`.
//!
//! Every decision is one JSON audit line on standard output and one counter increment.
//! A connection that does not finish its TLS handshake or its request headers within
//! [`HANDSHAKE_TIMEOUT`] is closed. SIGTERM stops accepting, lets requests in flight
//! finish (bounded by `drain`), then returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admission::{review, AuditRecord, Decision, WebhookSettings};
use crate::tls::{self, CertFiles, CertReloader, ReloadingCertResolver};

/// Longest a client may take for the TLS handshake and its request headers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate could not be loaded or watched.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The metrics registry refused a metric (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The serving certificate and key.
    pub cert: CertFiles,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long SIGTERM waits for requests in flight.
    pub drain: Duration,
}

struct State {
    settings: WebhookSettings,
    max_body_bytes: usize,
    registry: Registry,
    admissions: IntCounterVec,
}

impl State {
    fn record(&self, audit: &AuditRecord) {
        self.admissions
            .with_label_values(&[audit.decision.as_str()])
            .inc();
        let mut line = serde_json::to_value(audit).unwrap_or_default();
        if let Some(map) = line.as_object_mut() {
            map.insert(
                "time".to_owned(),
                humantime::format_rfc3339_millis(std::time::SystemTime::now())
                    .to_string()
                    .into(),
            );
        }
        println!("{line}");
    }
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

fn error_json(status: StatusCode, message: &str) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") | (&Method::GET, "/readyz") => {
            respond(StatusCode::OK, "text/plain", "ok\n")
        }
        (&Method::GET, "/metrics") => {
            let mut out = Vec::new();
            match TextEncoder::new().encode(&state.registry.gather(), &mut out) {
                Ok(()) => respond(StatusCode::OK, prometheus::TEXT_FORMAT, out),
                Err(e) => error_json(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::POST, "/mutate") => mutate(state, request).await,
        (_, "/mutate") => error_json(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        _ => error_json(
            StatusCode::NOT_FOUND,
            "not found: try POST /mutate, /healthz, /readyz or /metrics",
        ),
    }
}

async fn mutate(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let refuse = |status: StatusCode, message: String| {
        state.record(&AuditRecord {
            kind: "admission",
            decision: Decision::Invalid,
            uid: String::new(),
            operation: None,
            namespace: None,
            name: None,
            user: None,
            reason: message.clone(),
            allowed: false,
        });
        error_json(status, &message)
    };
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type `{content_type}`: expected `application/json`"),
        );
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        format!(
            "request body larger than {} bytes\n  help: raise the webhook's --max-body-bytes",
            state.max_body_bytes
        )
    };
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let body = match Limited::new(request.into_body(), state.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large())
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let answer = review(&body, &state.settings);
    state.record(&answer.audit);
    respond(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        answer.body,
    )
}

/// A bound webhook server; [`Server::run`] serves it.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    drain: Duration,
    _reloader: CertReloader,
}

impl Server {
    /// Load the certificate, start watching it, bind the address.
    pub async fn bind(
        settings: ServerSettings,
        webhook: WebhookSettings,
    ) -> Result<Self, ServerError> {
        tls::install_default_provider();
        let resolver = Arc::new(ReloadingCertResolver::load(
            settings.cert.clone(),
            tls::provider(),
        )?);
        let reloader = CertReloader::spawn(Arc::clone(&resolver))?;
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(resolver)?));
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let registry = Registry::new();
        let admissions = IntCounterVec::new(
            Opts::new(
                "mcp_warden_webhook_admissions_total",
                "Admission reviews answered, by decision.",
            ),
            &["decision"],
        )?;
        for decision in Decision::ALL {
            admissions.with_label_values(&[decision.as_str()]);
        }
        registry.register(Box::new(admissions.clone()))?;
        Ok(Self {
            listener,
            acceptor,
            state: Arc::new(State {
                settings: webhook,
                max_body_bytes: settings.max_body_bytes,
                registry,
                admissions,
            }),
            drain: settings.drain,
            _reloader: reloader,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook: accept failed");
                            continue;
                        }
                    };
                    let acceptor = self.acceptor.clone();
                    let state = Arc::clone(&self.state);
                    tasks.spawn(async move {
                        serve_connection(acceptor, state, tcp, peer).await;
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tracing::info!("webhook: shutting down, draining connections");
        let drained = tokio::time::timeout(self.drain, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("webhook: drain timeout; closing the remaining connections");
        }
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    state: Arc<State>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "webhook: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "webhook: TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(state, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %e, "webhook: connection error");
    }
}
