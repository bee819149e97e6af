//! The load generator: many keep-alive HTTP/1.1 connections (hyper's client connection,
//! one per worker, over TLS when the target is), and an HDR histogram per worker, merged
//! at the end.
//!
//! Two shapes of load:
//! - [`saturate`]: closed loop. Every connection sends its next request as soon as the
//!   previous answer is read; the count over the window is the throughput at saturation.
//! - [`fixed_rate`]: open loop at a fixed offered rate. Request `i` is due at
//!   `start + i / rate`; a free connection takes the next due request. Latency runs from
//!   the moment the request is sent, or from the moment it was due when every connection
//!   was busy then (so a stall is charged to every request it delayed, the "coordinated
//!   omission" correction). Tokio's timer has millisecond granularity, so a request that is
//!   picked up on time is timed from its actual send, not from its due time: otherwise the
//!   timer's own slack would be charged to the server under test.
//!
//! Every answer is checked (status and a marker in the body); a wrong answer counts as an
//! error, and a run with errors is reported as such, never as a fast run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A request to repeat, and how to tell its answer is the right one.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Request path, e.g. `/mcp`.
    pub path: String,
    /// Extra headers (besides `Host`, `Content-Type`, `Accept`).
    pub headers: Vec<(String, String)>,
    /// The JSON-RPC body.
    pub body: Bytes,
    /// Statuses that count as the expected answer.
    pub statuses: Vec<u16>,
    /// A string the expected answer's body contains.
    pub marker: String,
    /// Speak TLS with this client configuration (the server's name is its IP address).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What one load phase measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Answers that were right.
    pub ok: u64,
    /// Wrong answers and failed requests.
    pub errors: u64,
    /// The measuring window.
    pub elapsed: Duration,
    /// Latencies of the right answers, in nanoseconds.
    pub latency: Histogram<u64>,
    /// The first wrong answer, for the report.
    pub first_error: Option<String>,
    /// Keep-alive connections the server closed between requests (reopened; the
    /// reconnection is part of the next request's latency).
    pub reconnects: u64,
}

impl Outcome {
    /// Right answers per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

/// One keep-alive connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects in plain text (with `TCP_NODELAY`) and performs the HTTP/1.1 handshake.
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        Self::open_with(addr, None).await
    }

    /// Connects as `spec` says: plain, or TLS with its client configuration.
    pub async fn open_for(spec: &RequestSpec) -> Result<Self, String> {
        Self::open_with(spec.addr, spec.tls.as_ref()).await
    }

    async fn open_with(
        addr: SocketAddr,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        match tls {
            None => Self::handshake(stream).await,
            Some(config) => {
                let name = rustls::pki_types::ServerName::from(addr.ip());
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                Self::handshake(stream).await
            }
        }
    }

    async fn handshake<T>(io: T) -> Result<Self, String>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Connection { sender })
    }

    /// Sends any request; the answer's body is left to the caller (event streams).
    pub async fn request(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))
    }

    /// Sends `spec` once; the body if the answer is the expected one.
    async fn send(&mut self, spec: &RequestSpec) -> Result<Bytes, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let mut request = hyper::Request::post(spec.path.as_str())
            .header("host", spec.addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in &spec.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(spec.body.clone()))
            .map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if !spec.statuses.contains(&status)
            || memchr::memmem::find(&body, spec.marker.as_bytes()).is_none()
        {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok(body)
    }
}

/// Sends `spec` once and returns the answer's body, for the pre-flight check.
pub async fn once(spec: &RequestSpec) -> Result<Bytes, String> {
    Connection::open_for(spec).await?.send(spec).await
}

/// Per-worker tally, merged into an [`Outcome`].
struct Tally {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    first_error: Option<String>,
    reconnects: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            ok: 0,
            errors: 0,
            latency: histogram(),
            first_error: None,
            reconnects: 0,
        }
    }

    fn record(&mut self, result: Result<Bytes, String>, latency: Duration) {
        match result {
            Ok(_) => {
                self.ok += 1;
                let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                self.latency.saturating_record(nanos);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

fn merge(tallies: Vec<Tally>, elapsed: Duration) -> Outcome {
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        elapsed,
        latency: histogram(),
        first_error: None,
        reconnects: 0,
    };
    for tally in tallies {
        outcome.ok += tally.ok;
        outcome.reconnects += tally.reconnects;
        outcome.errors += tally.errors;
        outcome.latency.add(&tally.latency).expect("same bounds");
        if outcome.first_error.is_none() {
            outcome.first_error = tally.first_error;
        }
    }
    outcome
}

/// Sends through `connection`: reopens it if the server closed it since the last answer
/// (counted in `tally`), and drops it after a failure.
async fn send_on(
    connection: &mut Option<Connection>,
    spec: &RequestSpec,
    tally: &mut Tally,
) -> Result<Bytes, String> {
    if let Some(open) = connection.as_mut() {
        if open.sender.ready().await.is_err() {
            *connection = None;
            tally.reconnects += 1;
        }
    }
    if connection.is_none() {
        *connection = Some(Connection::open_for(spec).await?);
    }
    let result = connection.as_mut().expect("opened above").send(spec).await;
    if result.is_err() {
        *connection = None;
    }
    result
}

/// Closed loop on `connections` connections for `duration` (after `warmup`).
pub async fn saturate(
    spec: Arc<RequestSpec>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Outcome {
    let begin = Instant::now() + warmup;
    let end = begin + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let spec = spec.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut connection = None;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let result = send_on(&mut connection, &spec, &mut tally).await;
                    if sent >= begin {
                        tally.record(result, sent.elapsed());
                    }
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::with_capacity(connections);
    for worker in workers {
        tallies.push(worker.await.expect("load worker"));
    }
    merge(tallies, duration)
}

/// Open loop at `rate` requests per second for `duration`, on up to `connections`
/// connections (see the module doc for how latency is timed).
pub async fn fixed_rate(
    spec: Arc<RequestSpec>,
    rate: u64,
    connections: usize,
    duration: Duration,
) -> Outcome {
    /// A request picked up later than this after its due time waited for a connection.
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    let total = rate * duration.as_secs().max(1);
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let spec = spec.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut connection = Connection::open_for(&spec).await.ok();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    let due = start + period * u32::try_from(index).unwrap_or(u32::MAX);
                    let now = Instant::now();
                    let origin = if now > due + TIMER_SLACK {
                        due
                    } else {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    };
                    let result = send_on(&mut connection, &spec, &mut tally).await;
                    tally.record(result, origin.elapsed());
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::with_capacity(connections);
    for worker in workers {
        tallies.push(worker.await.expect("load worker"));
    }
    merge(tallies, start.elapsed())
}
