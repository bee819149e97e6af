//! Requests in flight, counted by kind: exchanges (a POST or DELETE, whose answer has an
//! end) and GET event streams (which never end by themselves).
//!
//! The drain on SIGTERM (`crate::proxy::lifecycle`) waits for exchanges only; `/readyz`
//! turns false once [`Lifecycle::start_draining`] is called.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;

use crate::metrics::Metrics;

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

    /// Shutdown begins: `/readyz` turns false.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Is the proxy's listener bound and served by Pingora?
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The listener is bound and Pingora serves it: `/readyz` may turn true.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
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
}
