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
//!
//! The counting itself is plain code: [`crate::exchange::in_flight`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};

use crate::exchange::Warden;

/// How often the drain checks whether exchanges are still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// How long the final audit flush may take.
pub(crate) const FINAL_FLUSH: Duration = Duration::from_secs(2);

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
#[allow(
    clippy::disallowed_methods,
    reason = "polls the in-flight count every DRAIN_POLL, bounded by `drain`"
)]
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
    fn durations_round_up_to_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(20)), 20);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }
}
