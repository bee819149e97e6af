//! The shared state's Prometheus metrics, registered once in the default registry.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

use super::Feature;
use crate::metrics::{counter_vec, PREFIX};

/// `mcp_warden_state_*` and `mcp_warden_rate_limited_total`.
#[derive(Clone)]
pub struct StateMetrics(Arc<Inner>);

struct Inner {
    unavailable: IntCounterVec,
    rate_limited: IntCounterVec,
    up: IntGauge,
    round_trip: Histogram,
}

impl StateMetrics {
    /// The process-wide set.
    pub fn global() -> StateMetrics {
        static GLOBAL: OnceLock<StateMetrics> = OnceLock::new();
        GLOBAL.get_or_init(StateMetrics::register).clone()
    }

    fn register() -> StateMetrics {
        let unavailable = counter_vec(
            "state_unavailable_total",
            "Requests (or taint writes) that needed shared state it could not read or \
             write in time, by feature (taint, revocation, rate_limits).",
            &["feature"],
        );
        let rate_limited = counter_vec(
            "rate_limited_total",
            "Request bodies refused by a [[rate_limits]] rule, by rule.",
            &["rule"],
        );
        let up = IntGauge::with_opts(
            Opts::new(
                "state_up",
                "1 while the shared-state backend answers (always 1 for memory).",
            )
            .namespace(PREFIX),
        )
        .expect("static metric definition");
        let round_trip = Histogram::with_opts(
            HistogramOpts::new(
                "state_round_trip_seconds",
                "Time of one round trip to the shared-state backend (Redis), failures included.",
            )
            .namespace(PREFIX)
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ]),
        )
        .expect("static metric definition");
        up.set(1);
        let registry = prometheus::default_registry();
        for collector in [
            Box::new(unavailable.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rate_limited.clone()),
            Box::new(up.clone()),
            Box::new(round_trip.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                tracing::error!("cannot register state metrics: {e}");
            }
        }
        StateMetrics(Arc::new(Inner {
            unavailable,
            rate_limited,
            up,
            round_trip,
        }))
    }

    pub(super) fn unavailable(&self, feature: Feature) {
        self.0
            .unavailable
            .with_label_values(&[feature.as_str()])
            .inc();
        self.0.up.set(0);
    }

    pub(super) fn rate_limited(&self, rule: &str) {
        // Rule names come from the configuration: a bounded label set.
        self.0.rate_limited.with_label_values(&[rule]).inc();
    }

    pub(super) fn observe(&self, took: Duration, ok: bool) {
        self.0.round_trip.observe(took.as_secs_f64());
        if ok {
            self.0.up.set(1);
        }
    }

    pub(super) fn set_up(&self, up: bool) {
        self.0.up.set(i64::from(up));
    }
}
