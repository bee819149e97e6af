//! The downstream listener: binding it, and guarding each connection on it.
//!
//! **Binding.** Pingora binds its listeners itself, late, inside its service runtime; when
//! the address is taken it logs a warning, retries every second for half a minute and
//! then panics a runtime thread while the rest of the process — and `/readyz` — carries
//! on. So the proxy binds the socket itself before anything starts ([`bind`]): a taken
//! port, an address this host does not have or a privileged port stops start-up with the
//! address, the OS reason and a help line, and a non-zero exit. The bound socket is
//! handed to Pingora through the listening-socket table Pingora keeps for graceful
//! upgrades (`PreBound`), so Pingora never binds and no other process can take the
//! port in between. `/readyz` is ready only once Pingora has taken the socket.
//!
//! **Guarding.** Every accepted connection passes the `Gate` before Pingora's HTTP
//! code sees it:
//! - at most `connections.max_connections` are served at once; one more is answered
//!   `503` with a JSON-RPC error and closed (`mcp_warden_connections_refused_total
//!   {reason="connection_limit"}`, `mcp_warden_connections_open`);
//! - each request head (request line and headers) must arrive whole within
//!   `connections.header_timeout` of its first byte, and be at most [`MAX_HEAD`] bytes;
//!   Pingora's own limit is a timeout per read, which a client sending one byte at a
//!   time (slowloris) never trips. A slow head is answered `408` and cut off, a huge one
//!   `431`. The body has its own deadline (`limits.body_read_timeout`, in
//!   `proxy::body`);
//! - a connection idle for `connections.idle_timeout` between requests is closed.
//!
//! The gate reads the head itself and gives it to Pingora as the session's first bytes
//! (Pingora's "pipelined prefix"), so Pingora parses exactly the bytes the client sent.
//!
//! **HTTP/2.** On TLS, ALPN `h2` hands the connection to Pingora's HTTP/2 server. On a
//! plain connection the first head read tells an HTTP/2 prior-knowledge client by its
//! preface ([`is_h2_preface`]): with `connections.h2c` the bytes are put back and Pingora's
//! h2c server takes the connection; without it the client is told `HTTP_1_1_REQUIRED` in a
//! GOAWAY frame ([`H2C_REFUSAL`]) and the connection closed
//! (`mcp_warden_connections_refused_total{reason="h2c_disabled"}`). Either way every
//! stream is then one request through the same `ProxyHttp` callbacks as HTTP/1.1.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{ConnectionsConfig, ENV_PREFIX};
use crate::exchange::refusal::Cutoff;
use crate::metrics::Metrics;
use crate::tls::TlsVersion;

/// Largest request head accepted (request line and headers), in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// The first line of the HTTP/2 connection preface (RFC 9113 section 3.4), which an HTTP/1
/// head reader sees as a complete head.
const H2_PREFACE_HEAD: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";
/// What an HTTP/2 client is told when h2c is off: the server's connection preface (an
/// empty SETTINGS frame) and a GOAWAY frame with error `HTTP_1_1_REQUIRED` (0x0d), last
/// stream 0 (RFC 9113 sections 3.4, 6.8, 7).
pub const H2C_REFUSAL: [u8; 26] = [
    0, 0, 0, 0x04, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 8, 0x07, 0, 0, 0, 0, 0, // GOAWAY, length 8, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 0x0d, // HTTP_1_1_REQUIRED
];
/// How long a refused client gets to take its answer before the socket is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and discarded from a refused client before closing (so the close
/// does not reset the connection before the client has read the refusal).
const REFUSAL_DRAIN: usize = 64 * 1024;

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on `{addr}` (`{key}`): {source}\nhelp: {}", help(self))]
pub struct BindError {
    /// The configuration key naming the address (`listen`, `admin.listen`).
    pub key: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

fn help(e: &BindError) -> String {
    let var = format!(
        "{ENV_PREFIX}{}",
        e.key.to_ascii_uppercase().replace('.', "__")
    );
    match e.source.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process is listening on port {port} (`ss -ltnp 'sport = :{port}'` shows \
             which); stop it, or set `{key}` (or `{var}`) to a free address",
            port = e.addr.port(),
            key = e.key
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "ports below 1024 need privileges (CAP_NET_BIND_SERVICE); set `{}` (or `{var}`) \
             to a port of 1024 or more",
            e.key
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "no network interface of this host has that address; set `{}` (or `{var}`) to \
             `127.0.0.1`, `0.0.0.0` or one of this host's addresses",
            e.key
        ),
        _ => format!("check `{}` (or `{var}`)", e.key),
    }
}

/// Bind `addr` now, non-blocking, for the listener named by configuration key `key`.
pub fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, BindError> {
    let bound = TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    });
    bound.map_err(|source| BindError { key, addr, source })
}

/// A Pingora service whose listening socket was bound beforehand: the socket goes into
/// Pingora's listening-socket table under the service's address, where Pingora looks
/// before binding.
pub(crate) struct PreBound<S> {
    inner: S,
    key: String,
    listener: Option<TcpListener>,
    on_listening: Box<dyn Fn() + Send + Sync>,
}

impl<S> PreBound<S> {
    /// `inner` listens on `key` (the address string given to Pingora's `add_tcp`);
    /// `on_listening` runs when Pingora has the socket.
    pub(crate) fn new(
        inner: S,
        key: String,
        listener: TcpListener,
        on_listening: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        PreBound {
            inner,
            key,
            listener: Some(listener),
            on_listening: Box::new(on_listening),
        }
    }
}

#[async_trait]
impl<S: ServiceWithDependents> ServiceWithDependents for PreBound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        match (&fds, self.listener.take()) {
            (Some(table), Some(listener)) => {
                table.lock().add(self.key.clone(), listener.into_raw_fd());
                (self.on_listening)();
            }
            (None, Some(_)) => {
                // Not reached on Unix (Pingora always passes its table); dropping the
                // socket lets Pingora bind the address itself.
                tracing::warn!(address = %self.key, "no listening-socket table; Pingora binds");
            }
            (_, None) => {}
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd, ready_notifier)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

/// The bounds the `Gate` enforces (from `[connections]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time for a whole request head, from its first byte.
    pub header_timeout: Duration,
    /// Time a connection may wait idle for its next request.
    pub idle_timeout: Duration,
}

impl From<&ConnectionsConfig> for Limits {
    fn from(c: &ConnectionsConfig) -> Self {
        Limits {
            max_connections: c.max_connections,
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
        }
    }
}

/// Pingora's HTTP server options from `[connections]`: h2c as configured, and an HTTP/2
/// connection with no stream open for `idle_timeout` is closed, as an idle HTTP/1.1 one is.
pub(crate) fn server_options(c: &ConnectionsConfig) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = c.h2c;
    options.h2_idle_timeout = Some(c.idle_timeout);
    options
}

/// Where the request head in `buf` ends (the index after its empty line), if it is
/// whole. Empty lines before the request line are skipped, as HTTP/1.1 allows; bare
/// `\n` line ends are accepted, as Pingora's parser does.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    memchr::memchr_iter(b'\n', rest).find_map(|i| match rest.get(i + 1..) {
        Some([b'\n', ..]) => Some(start + i + 2),
        Some([b'\r', b'\n', ..]) => Some(start + i + 3),
        _ => None,
    })
}

/// Do the bytes read as a connection's first request head open an HTTP/2 connection
/// preface (prior knowledge, h2c)?
pub fn is_h2_preface(head: &[u8]) -> bool {
    head.starts_with(H2_PREFACE_HEAD)
}

/// Put `head` back in front of a plain TCP stream, for Pingora's h2c server to read again.
/// `None` if the stream is not Pingora's plain TCP stream (it always is on a plain listener).
fn rewound(stream: Stream, head: &[u8]) -> Option<Stream> {
    let mut tcp = stream
        .into_any()
        .downcast::<pingora::protocols::l4::stream::Stream>()
        .ok()?;
    tcp.rewind(head);
    let stream: Stream = tcp;
    Some(stream)
}

/// How reading a request head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRead {
    /// A whole head is in the buffer (maybe followed by body bytes).
    Complete,
    /// The client closed, went quiet between requests, or shutdown began.
    Closed,
    /// The client is to be answered and cut off.
    Cutoff(Cutoff),
}

/// Read one request head into `buf`: wait up to `idle_timeout` for its first byte (or
/// until `shutdown` turns true), then up to `header_timeout` for the rest.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &Limits,
    mut shutdown: ShutdownWatch,
) -> HeadRead {
    buf.reserve(4096);
    let first = tokio::select! {
        biased;
        read = tokio::time::timeout(limits.idle_timeout, stream.read_buf(buf)) => read,
        _ = shutdown.wait_for(|down| *down) => return HeadRead::Closed,
    };
    match first {
        Ok(Ok(n)) if n > 0 => {}
        _ => return HeadRead::Closed,
    }
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    loop {
        if head_end(buf).is_some() {
            return HeadRead::Complete;
        }
        if buf.len() >= MAX_HEAD {
            return HeadRead::Cutoff(Cutoff::HeaderTooLarge);
        }
        buf.reserve(4096);
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Err(_) => return HeadRead::Cutoff(Cutoff::HeaderTimeout),
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return HeadRead::Closed,
        }
    }
}

/// Answer `cutoff` and close: write the response, stop writing, and read (and discard)
/// what the client still sends for a moment, so that the close does not reset the
/// connection before the client has read the answer.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, cutoff: Cutoff) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&cutoff.response()).await?;
        AsyncWriteExt::shutdown(stream).await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Counts open connections against a cap.
pub struct ConnectionCount {
    open: AtomicUsize,
    max: usize,
    gauge: IntGauge,
}

/// One counted connection; uncounted when dropped.
pub struct Slot<'a> {
    count: &'a ConnectionCount,
}

impl ConnectionCount {
    /// At most `max`, mirrored into `gauge`.
    pub fn new(max: usize, gauge: IntGauge) -> Self {
        ConnectionCount {
            open: AtomicUsize::new(0),
            max,
            gauge,
        }
    }

    /// A slot, unless `max` are taken.
    pub fn try_take(&self) -> Option<Slot<'_>> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.gauge.inc();
        Some(Slot { count: self })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.count.open.fetch_sub(1, Ordering::AcqRel);
        self.count.gauge.dec();
    }
}

/// Pingora's HTTP application (`app`) behind the connection cap and the head deadline.
pub(crate) struct Gate<A> {
    app: Arc<A>,
    limits: Limits,
    count: ConnectionCount,
    refused: IntCounterVec,
    min_tls: Option<TlsVersion>,
    h2c: bool,
}

impl<A> Gate<A> {
    pub(crate) fn new(app: A, limits: Limits, metrics: &Metrics) -> Self {
        Gate {
            app: Arc::new(app),
            limits,
            count: ConnectionCount::new(limits.max_connections, metrics.connections_open.clone()),
            refused: metrics.connections_refused.clone(),
            min_tls: None,
            h2c: false,
        }
    }

    /// Serve HTTP/2 prior-knowledge clients on plain connections (`connections.h2c`; the
    /// app's `HttpServerOptions::h2c` must be on too, for Pingora to speak it).
    pub(crate) fn with_h2c(mut self, h2c: bool) -> Self {
        self.h2c = h2c;
        self
    }

    /// Close TLS connections that negotiated a version older than `min` (Pingora's
    /// rustls settings always offer TLS 1.2 and 1.3, so `tls.min_version = "1.3"` is
    /// enforced here, right after the handshake and before any request is read).
    pub(crate) fn with_min_tls(mut self, min: TlsVersion) -> Self {
        self.min_tls = Some(min);
        self
    }

    /// Is this connection's TLS version below the minimum?
    fn below_min_tls(&self, stream: &Stream) -> bool {
        let Some(min) = self.min_tls else {
            return false;
        };
        let version = stream.get_ssl_digest().and_then(|d| {
            d.extension
                .get::<super::tls::ConnectionTls>()
                .and_then(|t| t.version)
        });
        // Unknown version: fail closed.
        version.is_none_or(|v| v < min)
    }

    /// A plain connection opened with the HTTP/2 preface: Pingora's h2c server with
    /// `connections.h2c`, else a GOAWAY (`HTTP_1_1_REQUIRED`) and close.
    async fn h2_prior_knowledge(
        self: &Arc<Self>,
        mut stream: Stream,
        head: &[u8],
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>
    where
        A: HttpServerApp + Send + Sync + 'static,
    {
        if self.h2c && stream.get_ssl_digest().is_none() {
            let stream = rewound(stream, head)?;
            return ServerApp::process_new(&self.app, stream, shutdown).await;
        }
        self.refused.with_label_values(&["h2c_disabled"]).inc();
        tracing::warn!(
            "connection refused: HTTP/2 prior knowledge on a plain listener without \
             `connections.h2c`"
        );
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(&H2C_REFUSAL).await?;
            stream.flush().await
        })
        .await;
        None
    }

    fn cut_off(&self, stream: &Stream, cutoff: Cutoff) {
        self.refused.with_label_values(&[cutoff.label()]).inc();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()))
            .unwrap_or_default();
        tracing::warn!(
            %peer,
            reason = cutoff.label(),
            open = self.count.open(),
            max_connections = self.limits.max_connections,
            header_timeout = ?self.limits.header_timeout,
            "connection refused"
        );
    }
}

#[async_trait]
impl<A> ServerApp for Gate<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_slot) = self.count.try_take() else {
            self.cut_off(&stream, Cutoff::ConnectionLimit);
            refuse(&mut stream, Cutoff::ConnectionLimit).await;
            return None;
        };
        if self.below_min_tls(&stream) {
            self.refused.with_label_values(&["tls_version"]).inc();
            tracing::warn!(
                min_version = ?self.min_tls,
                "connection refused: TLS version below `tls.min_version`"
            );
            return None;
        }
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 (TLS with ALPN only): Pingora's own handling, per stream.
            return ServerApp::process_new(&self.app, stream, shutdown).await;
        }
        let keepalive = Some(super::lifecycle::whole_seconds(self.limits.idle_timeout));
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            let mut head = BytesMut::new();
            match read_head(&mut stream, &mut head, &self.limits, shutdown.clone()).await {
                HeadRead::Complete => {}
                HeadRead::Closed => return None,
                HeadRead::Cutoff(cutoff) => {
                    self.cut_off(&stream, cutoff);
                    refuse(&mut stream, cutoff).await;
                    return None;
                }
            }
            if std::mem::take(&mut first) && is_h2_preface(&head) {
                return self.h2_prior_knowledge(stream, &head, shutdown).await;
            }
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(reused) => reused.apply_to_session(&mut session),
                None => {
                    session.set_keepalive(keepalive);
                    session.set_keepalive_reuses_remaining(
                        self.app
                            .server_options()
                            .and_then(|o| o.keepalive_request_limit),
                    );
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            session.set_pipelined_prefix(head);
            let (next, reused) = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = next;
            settings = reused;
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::errors::OVERLOADED;

    fn limits() -> Limits {
        Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }

    fn no_shutdown() -> (tokio::sync::watch::Sender<bool>, ShutdownWatch) {
        tokio::sync::watch::channel(false)
    }

    #[test]
    fn head_ends_at_the_first_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"\r\nGET / HTTP/1.1\r\n\r\n"), Some(20));
        assert_eq!(head_end(b""), None);
        assert_eq!(head_end(b"\r\n\r\n"), None);
    }

    #[test]
    fn an_h2_preface_is_told_from_an_http1_head() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00";
        assert_eq!(
            head_end(preface),
            Some(18),
            "an HTTP/1 reader sees a whole head"
        );
        assert!(is_h2_preface(preface));
        assert!(is_h2_preface(b"PRI * HTTP/2.0\r\n\r\n"));
        assert!(!is_h2_preface(b"POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!is_h2_preface(b"PRI * HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn the_h2c_refusal_is_settings_then_goaway_http_1_1_required() {
        // SETTINGS: 24-bit length 0, type 4, no flags, stream 0.
        assert_eq!(&H2C_REFUSAL[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // GOAWAY: length 8, type 7, stream 0; last stream 0, error 0x0d.
        assert_eq!(&H2C_REFUSAL[9..18], &[0, 0, 8, 7, 0, 0, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(H2C_REFUSAL[22..26].try_into().unwrap()),
            0x0d
        );
    }

    #[test]
    fn the_cap_refuses_one_more_and_frees_on_drop() {
        let gauge = IntGauge::new("open_test", "test").unwrap();
        let count = ConnectionCount::new(2, gauge.clone());
        let a = count.try_take().expect("first");
        let b = count.try_take().expect("second");
        assert!(count.try_take().is_none(), "the third is over the cap");
        assert_eq!((count.open(), gauge.get()), (2, 2));
        drop(a);
        let c = count.try_take().expect("a slot was freed");
        drop((b, c));
        assert_eq!((count.open(), gauge.get()), (0, 0));
    }

    #[test]
    fn refusals_are_json_rpc_errors_that_close() {
        let text = String::from_utf8(Cutoff::ConnectionLimit.response()).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], OVERLOADED);
        let slow = String::from_utf8(Cutoff::HeaderTimeout.response()).unwrap();
        assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");
        let big = String::from_utf8(Cutoff::HeaderTooLarge.response()).unwrap();
        assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let (_tx, shutdown) = no_shutdown();
        let trickle = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle() {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                #[allow(clippy::disallowed_methods, reason = "a slow client: a byte a second")]
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut buf = BytesMut::new();
        let started = tokio::time::Instant::now();
        let read = read_head(&mut server, &mut buf, &limits(), shutdown).await;
        assert_eq!(read, HeadRead::Cutoff(Cutoff::HeaderTimeout));
        // Virtual time: the deadline counts from the first byte.
        assert_eq!(started.elapsed().as_secs(), 5);
        drop(server);
        trickle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_head_is_read_with_what_follows_it() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let (_tx, shutdown) = no_shutdown();
        client
            .write_all(b"POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let read = read_head(&mut server, &mut buf, &limits(), shutdown).await;
        assert_eq!(read, HeadRead::Complete);
        assert!(buf.ends_with(b"\r\n\r\n{}"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_head_is_refused_at_the_size_limit() {
        let (mut client, mut server) = tokio::io::duplex(MAX_HEAD * 2);
        let (_tx, shutdown) = no_shutdown();
        let flood = tokio::spawn(async move {
            let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            while client.write_all(line).await.is_ok() {}
        });
        let mut buf = BytesMut::new();
        let read = read_head(&mut server, &mut buf, &limits(), shutdown).await;
        assert_eq!(read, HeadRead::Cutoff(Cutoff::HeaderTooLarge));
        assert!(buf.len() < MAX_HEAD + 8192, "bounded: {}", buf.len());
        drop(server);
        flood.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes_quietly_and_shutdown_closes_it_at_once() {
        let (_client, mut server) = tokio::io::duplex(1024);
        let (_tx, shutdown) = no_shutdown();
        let mut buf = BytesMut::new();
        let started = tokio::time::Instant::now();
        assert_eq!(
            read_head(&mut server, &mut buf, &limits(), shutdown).await,
            HeadRead::Closed
        );
        assert_eq!(started.elapsed().as_secs(), 60);

        let (tx, shutdown) = no_shutdown();
        let waiting = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            read_head(&mut server, &mut buf, &limits(), shutdown).await
        });
        tx.send(true).unwrap();
        assert_eq!(waiting.await.unwrap(), HeadRead::Closed);
    }

    #[test]
    fn a_taken_port_says_where_why_and_what_to_do() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind(addr, "admin.listen").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot listen on `{addr}` (`admin.listen`): ")));
        assert!(text.contains("in use"), "{text}");
        assert!(
            text.contains("\nhelp: another process is listening on port"),
            "{text}"
        );
        assert!(text.contains("MCP_WARDEN__ADMIN__LISTEN"), "{text}");
    }
}
