//! Requests in flight and graceful shutdown.
//!
//! On SIGTERM Pingora stops accepting connections, closes idle keep-alive connections
//! and then waits a fixed grace period (`lifecycle.drain_timeout`) before tearing its
//! runtimes down. A sidecar should not wait longer than it must, so the proxy counts the
//! requests in flight and exits as soon as no *exchange* (a POST or DELETE, whose answer
//! has an end — also when that answer is an SSE stream) is left. GET event streams carry
//! server-initiated messages and never end by themselves; they do not hold the drain up
//! and are closed when the process exits (MCP clients reconnect and resume them with
//! `Last-Event-ID`). `/readyz` answers 503 from the moment SIGTERM arrives.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use prometheus::IntGauge;

use crate::metrics::Metrics;

use super::Warden;

/// How often the drain checks whether exchanges are still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// How long the final audit flush may take.
pub(crate) const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// What a request in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A POST, DELETE or anything else with an end; the drain waits for these.
    Exchange,
    /// A GET event stream; the drain does not wait for these.
    Stream,
}

/// Counts of requests in flight, and whether the process is draining.
pub struct Lifecycle {
    exchanges: AtomicUsize,
    streams: AtomicUsize,
    draining: AtomicBool,
    listening: AtomicBool,
    exchange_gauge: IntGauge,
    stream_gauge: IntGauge,
}

impl Lifecycle {
    /// Counting into `metrics`' `mcp_warden_requests_in_flight`.
    pub fn new(metrics: &Metrics) -> Self {
        Lifecycle {
            exchanges: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            exchange_gauge: metrics.requests_in_flight.with_label_values(&["exchange"]),
            stream_gauge: metrics.requests_in_flight.with_label_values(&["stream"]),
        }
    }

    /// A request starts (as an exchange until told otherwise); dropping the guard ends it.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.counter(Kind::Exchange)
            .0
            .fetch_add(1, Ordering::AcqRel);
        self.counter(Kind::Exchange).1.inc();
        InFlight {
            lifecycle: Arc::clone(self),
            kind: Kind::Exchange,
        }
    }

    fn counter(&self, kind: Kind) -> (&AtomicUsize, &IntGauge) {
        match kind {
            Kind::Exchange => (&self.exchanges, &self.exchange_gauge),
            Kind::Stream => (&self.streams, &self.stream_gauge),
        }
    }

    /// Exchanges in flight.
    pub fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::Acquire)
    }

    /// GET streams open.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// Has shutdown begun?
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Is the proxy's listener bound and handed to Pingora?
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The listener is bound and Pingora has it: `/readyz` may turn true.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// Shutdown begins: `/readyz` turns false.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// One request in flight; counted until dropped.
pub struct InFlight {
    lifecycle: Arc<Lifecycle>,
    kind: Kind,
}

impl InFlight {
    /// Re-count this request as `kind`.
    pub fn set_kind(&mut self, kind: Kind) {
        if kind == self.kind {
            return;
        }
        let (from, from_gauge) = self.lifecycle.counter(self.kind);
        from.fetch_sub(1, Ordering::AcqRel);
        from_gauge.dec();
        let (to, to_gauge) = self.lifecycle.counter(kind);
        to.fetch_add(1, Ordering::AcqRel);
        to_gauge.inc();
        self.kind = kind;
    }

    /// What it is counted as.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (count, gauge) = self.lifecycle.counter(self.kind);
        count.fetch_sub(1, Ordering::AcqRel);
        gauge.dec();
    }
}

/// Pingora's shutdown signals, plus the proxy's drain: SIGTERM (and SIGQUIT) shut down
/// gracefully, SIGINT at once.
pub struct Signals {
    warden: Arc<Warden>,
}

impl Signals {
    /// Watch signals for `warden`.
    pub fn new(warden: Arc<Warden>) -> Self {
        Signals { warden }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut quit), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for shutdown signals");
            return std::future::pending().await;
        };
        let graceful = tokio::select! {
            _ = term.recv() => true,
            _ = quit.recv() => true,
            _ = int.recv() => false,
        };
        if !graceful {
            tracing::info!("SIGINT: stopping now");
            self.warden.lifecycle.start_draining();
            return ShutdownSignal::FastShutdown;
        }
        let drain = self.warden.config.raw.lifecycle.drain_timeout;
        tracing::info!(
            exchanges = self.warden.lifecycle.exchanges(),
            streams = self.warden.lifecycle.streams(),
            drain_timeout = ?drain,
            "SIGTERM: draining"
        );
        self.warden.lifecycle.start_draining();
        spawn_drain_watch(Arc::clone(&self.warden), drain);
        ShutdownSignal::GracefulTerminate
    }
}

/// Exit as soon as no exchange is in flight (Pingora would otherwise sleep out the whole
/// grace period); after `drain` Pingora's own teardown takes over.
fn spawn_drain_watch(warden: Arc<Warden>, drain: Duration) {
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            let deadline = Instant::now() + drain;
            // Let Pingora stop its listeners first.
            std::thread::sleep(DRAIN_POLL);
            while Instant::now() < deadline {
                if warden.lifecycle.exchanges() == 0 {
                    tracing::info!(
                        streams_closed = warden.lifecycle.streams(),
                        "drained: no request in flight; exiting"
                    );
                    warden.audit.flush(FINAL_FLUSH);
                    std::process::exit(0);
                }
                std::thread::sleep(DRAIN_POLL);
            }
            tracing::warn!(
                exchanges = warden.lifecycle.exchanges(),
                "drain timeout: closing what is still in flight"
            );
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the drain watch: {e}; waiting out the drain timeout");
    }
}

/// Whole seconds for Pingora, rounded up.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_requests_are_counted_by_kind_until_dropped() {
        let metrics = Metrics::new();
        let lc = Arc::new(Lifecycle::new(&metrics));
        let a = lc.enter();
        let mut b = lc.enter();
        assert_eq!((lc.exchanges(), lc.streams()), (2, 0));
        b.set_kind(Kind::Stream);
        assert_eq!((lc.exchanges(), lc.streams()), (1, 1));
        assert_eq!(
            metrics
                .requests_in_flight
                .with_label_values(&["stream"])
                .get(),
            1
        );
        drop(a);
        drop(b);
        assert_eq!((lc.exchanges(), lc.streams()), (0, 0));
        assert_eq!(
            metrics
                .requests_in_flight
                .with_label_values(&["exchange"])
                .get(),
            0
        );
    }

    #[test]
    fn durations_round_up_to_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(20)), 20);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }
}
