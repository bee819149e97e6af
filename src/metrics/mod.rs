//! Prometheus metrics: one typed [`Metrics`] struct, every series named here.
//!
//! The proxy's metrics live in the `prometheus` crate's default registry
//! ([`Metrics::global`]), so anything else in the process that registers there is served
//! by the same `/metrics` endpoint.
//!
//! Label values are bounded by construction: each is a `&'static str` from a fixed set
//! (decisions, reasons, MCP method names with `"other"` for the rest, HTTP status codes)
//! or goes through a [`BoundedLabels`] set: a tool name is a label only if the upstream
//! declared it in its own `tools/list`, and only the first [`MAX_TOOL_LABELS`] of those;
//! everything else is `"other"`. A user id, a session id or an argument is never a label.
//! The book's operations page (`docs/src/operations.md`) documents every series.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::mcp::{methods, ListKind};
use crate::policy::{Decision, Outcome};

/// Prefix of every metric name.
pub const PREFIX: &str = "mcp_warden";

/// Most distinct tool names used as label values; later names count as `"other"`.
pub const MAX_TOOL_LABELS: usize = 500;

/// Most distinct taint labels used as label values; later ones count as `"other"`.
pub const MAX_TAINT_LABELS: usize = 100;

/// The label value for anything outside a bounded set.
pub const OTHER: &str = "other";

/// MCP methods that get their own `method` label value; any other method is
/// `"other"` (`"notifications/other"` for other notifications).
const KNOWN_METHODS: &[&str] = &[
    methods::INITIALIZE,
    methods::PING,
    methods::SERVER_DISCOVER,
    methods::TOOLS_LIST,
    methods::TOOLS_CALL,
    methods::RESOURCES_LIST,
    methods::RESOURCES_TEMPLATES_LIST,
    methods::RESOURCES_READ,
    methods::RESOURCES_SUBSCRIBE,
    methods::RESOURCES_UNSUBSCRIBE,
    methods::PROMPTS_LIST,
    methods::PROMPTS_GET,
    methods::COMPLETION_COMPLETE,
    methods::LOGGING_SET_LEVEL,
    methods::TASKS_GET,
    methods::TASKS_RESULT,
    methods::TASKS_LIST,
    methods::TASKS_CANCEL,
    methods::TASKS_UPDATE,
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

/// The `method` label for a JSON-RPC method (`None`: a response the client sends).
pub fn method_label(method: Option<&str>) -> &'static str {
    let Some(method) = method else {
        return "response";
    };
    if let Some(known) = KNOWN_METHODS.iter().find(|m| **m == method) {
        return known;
    }
    if method.starts_with(methods::NOTIFICATIONS_PREFIX) {
        "notifications/other"
    } else {
        OTHER
    }
}

/// The `decision` label: `allow`, `deny` (by policy, a failed check included), or
/// `error` (denied because evaluation failed); see [`crate::policy::Outcome`].
pub fn decision_label(decision: &Decision) -> &'static str {
    match decision.outcome() {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Error => "error",
    }
}

/// The `list` label of a list kind.
pub fn list_label(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Tools => "tools",
        ListKind::Resources => "resources",
        ListKind::ResourceTemplates => "resource_templates",
        ListKind::Prompts => "prompts",
    }
}

/// A set of label values that stops growing at a cap: values admitted before the cap
/// keep their own series, later ones share [`OTHER`].
#[derive(Debug)]
pub struct BoundedLabels {
    seen: Mutex<HashSet<String>>,
    cap: usize,
}

impl BoundedLabels {
    /// An empty set admitting at most `cap` values.
    pub fn new(cap: usize) -> Self {
        BoundedLabels {
            seen: Mutex::new(HashSet::new()),
            cap,
        }
    }

    /// `f` of `value` if it is (or can still become) one of the set's values, else of
    /// `"other"`, without copying the label.
    pub fn with_label<R>(&self, value: &str, f: impl FnOnce(&str) -> R) -> R {
        let mut seen = self.seen.lock();
        if seen.contains(value) {
            return f(value);
        }
        if seen.len() < self.cap && value != OTHER {
            seen.insert(value.to_owned());
            return f(value);
        }
        drop(seen);
        f(OTHER)
    }

    /// `value` if it is (or can still become) one of the set's values, else `"other"`.
    pub fn label(&self, value: &str) -> String {
        self.with_label(value, str::to_owned)
    }
}

/// Every metric the proxy exports. Cheap to share (`Arc`); each field is a handle into
/// the registry it was registered with.
pub struct Metrics {
    /// `mcp_warden_requests_total{method,decision}`: JSON-RPC messages decided.
    pub requests: IntCounterVec,
    /// `mcp_warden_tool_calls_total{tool,decision}`: `tools/call` decisions by tool.
    pub tool_calls: IntCounterVec,
    /// `mcp_warden_http_responses_total{code}`: HTTP responses sent to clients.
    pub http_responses: IntCounterVec,
    /// `http_responses`' series for the statuses 100 to 599, each looked up once: every
    /// response is counted, and a lookup hashes the label and formats the status.
    http_by_status: Box<[OnceLock<IntCounter>]>,
    /// `mcp_warden_decision_duration_seconds{engine}`: time to decide one request body.
    pub decision_seconds: HistogramVec,
    /// `mcp_warden_upstream_duration_seconds{method}`: until the upstream's response header.
    pub upstream_seconds: HistogramVec,
    /// `mcp_warden_upstream_errors_total{kind}`: upstream unreachable or too slow.
    pub upstream_errors: IntCounterVec,
    /// `mcp_warden_auth_failures_total{reason}`.
    pub auth_failures: IntCounterVec,
    /// `mcp_warden_list_items_hidden_total{list}`: items filtered out of list results.
    pub list_items_hidden: IntCounterVec,
    /// `mcp_warden_list_results_withheld_total`: answers replaced by an error because
    /// they could not be filtered.
    pub list_results_withheld: IntCounter,
    /// `mcp_warden_taint_events_total{taint}`: a session or credential gained a label.
    pub taint_events: IntCounterVec,
    /// `mcp_warden_taint_denials_total{taint}`: denials of requests carrying a label.
    pub taint_denials: IntCounterVec,
    /// `mcp_warden_taint_evictions_total`: live taint entries evicted because the taint
    /// store was full (each washes a session's or credential's taint).
    pub taint_evictions: IntCounter,
    /// `mcp_warden_policy_reloads_total{result}`.
    pub policy_reloads: IntCounterVec,
    /// `mcp_warden_key_reloads_total{result}`.
    pub key_reloads: IntCounterVec,
    /// `mcp_warden_tls_reloads_total{listener,result}`: TLS material reloads (certificate,
    /// key, client CA bundle, CRLs) of the `proxy` listener, or of the `upstream`.
    pub tls_reloads: IntCounterVec,
    /// `mcp_warden_tls_cert_expiry_timestamp_seconds{listener}`: `notAfter` of the served
    /// certificate, Unix seconds.
    pub tls_cert_expiry: IntGaugeVec,
    /// `mcp_warden_policy_generation`.
    pub policy_generation: IntGauge,
    /// `mcp_warden_policy_loaded_timestamp_seconds`.
    pub policy_loaded: Gauge,
    /// `mcp_warden_sessions_active`.
    pub sessions_active: IntGauge,
    /// `mcp_warden_bodies_refused_total{reason}`: request bodies refused unread or unparsed.
    pub bodies_refused: IntCounterVec,
    /// `mcp_warden_requests_refused_total{reason}`: other refusals before any decision.
    pub requests_refused: IntCounterVec,
    /// `mcp_warden_connections_open`: downstream connections being served.
    pub connections_open: IntGauge,
    /// `mcp_warden_connections_refused_total{reason}`: downstream connections refused or
    /// cut off by the proxy (`connection_limit`, `header_timeout`, `header_too_large`,
    /// `tls_version`, `h2c_disabled`).
    pub connections_refused: IntCounterVec,
    /// `mcp_warden_requests_in_flight{kind}`: `exchange` (POST, DELETE) or `stream` (GET).
    pub requests_in_flight: IntGaugeVec,
    /// `mcp_warden_audit_lines_total{outcome}`: `written`, `dropped_buffer_full`.
    pub audit_lines: IntCounterVec,
    /// `mcp_warden_audit_write_errors_total`: failed attempts to write the audit sink.
    pub audit_write_errors: IntCounter,
    /// `mcp_warden_audit_sink_up`: 1 while the last write succeeded.
    pub audit_sink_up: IntGauge,
    /// `mcp_warden_build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
    /// `mcp_warden_definition_changes_total{kind,change}`: definitions seen new, drifted
    /// from their pin, learned, or carrying invisible characters (once per digest).
    pub definition_changes: IntCounterVec,
    /// `mcp_warden_definitions_drifted`: listed definitions that differ from their pin.
    pub definitions_drifted: IntGauge,
    /// `mcp_warden_tool_call_checks_total{result,outcome}`: `tools/call` pin and argument
    /// checks; `result` is `ok` or the problem, `outcome` `passed`, `refused` or `warned`.
    pub tool_call_checks: IntCounterVec,
    tools: BoundedLabels,
    taints: BoundedLabels,
}

/// An `mcp_warden_*` counter family (also used by `state`'s metrics).
pub(crate) fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help).namespace(PREFIX), labels)
        .expect("static metric definition")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace(PREFIX)
            .buckets(buckets.to_vec()),
        labels,
    )
    .expect("static metric definition")
}

/// Buckets for policy decisions: 10 µs … 100 ms.
const DECISION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,
];

/// Buckets for upstream answers: 5 ms … 2 min.
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

impl Metrics {
    /// Unregistered metrics (see [`Metrics::register`]).
    pub fn new() -> Self {
        let m = Metrics {
            requests: counter_vec(
                "requests_total",
                "JSON-RPC messages decided, by MCP method and decision (allow, deny, error).",
                &["method", "decision"],
            ),
            tool_calls: counter_vec(
                "tool_calls_total",
                "tools/call decisions by tool (tools the upstream declared; others are `other`).",
                &["tool", "decision"],
            ),
            http_responses: counter_vec(
                "http_responses_total",
                "HTTP responses sent to clients, by status code.",
                &["code"],
            ),
            http_by_status: (100..600).map(|_| OnceLock::new()).collect(),
            decision_seconds: histogram_vec(
                "decision_duration_seconds",
                "Time to decide every message of one request body, by policy engine.",
                &["engine"],
                DECISION_BUCKETS,
            ),
            upstream_seconds: histogram_vec(
                "upstream_duration_seconds",
                "Time from picking the upstream to its response header, by MCP method.",
                &["method"],
                UPSTREAM_BUCKETS,
            ),
            upstream_errors: counter_vec(
                "upstream_errors_total",
                "Requests that failed because the upstream was unreachable, slow or broke off.",
                &["kind"],
            ),
            auth_failures: counter_vec(
                "auth_failures_total",
                "Requests refused because the credential was missing or invalid, by reason.",
                &["reason"],
            ),
            list_items_hidden: counter_vec(
                "list_items_hidden_total",
                "Items removed from list results by the listing rule, by list.",
                &["list"],
            ),
            list_results_withheld: IntCounter::with_opts(
                Opts::new(
                    "list_results_withheld_total",
                    "Upstream answers withheld because they could not be filtered.",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            taint_events: counter_vec(
                "taint_events_total",
                "Taint labels gained by a session or credential, by label.",
                &["taint"],
            ),
            taint_denials: counter_vec(
                "taint_denials_total",
                "Denied messages whose session or credential carried a taint label, by label.",
                &["taint"],
            ),
            taint_evictions: IntCounter::with_opts(
                Opts::new(
                    "taint_evictions_total",
                    "Unexpired taint entries evicted because the taint store was full.",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            policy_reloads: counter_vec(
                "policy_reloads_total",
                "Policy reloads, by result (success, failure).",
                &["result"],
            ),
            key_reloads: counter_vec(
                "key_reloads_total",
                "Key file (JWKS, PEM) reloads, by result (success, failure).",
                &["result"],
            ),
            tls_reloads: counter_vec(
                "tls_reloads_total",
                "TLS certificate, key, client CA and CRL reloads, by listener (proxy, upstream) \
                 and result (success, failure).",
                &["listener", "result"],
            ),
            tls_cert_expiry: IntGaugeVec::new(
                Opts::new(
                    "tls_cert_expiry_timestamp_seconds",
                    "notAfter of the certificate a listener serves, Unix seconds.",
                )
                .namespace(PREFIX),
                &["listener"],
            )
            .expect("static metric definition"),
            policy_generation: IntGauge::with_opts(
                Opts::new(
                    "policy_generation",
                    "The policy generation in force (1 at start, +1 per successful reload).",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            policy_loaded: Gauge::with_opts(
                Opts::new(
                    "policy_loaded_timestamp_seconds",
                    "When the policy generation in force was loaded (Unix time).",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            sessions_active: IntGauge::with_opts(
                Opts::new(
                    "sessions_active",
                    "MCP sessions the proxy tracks (not expired).",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            bodies_refused: counter_vec(
                "bodies_refused_total",
                "Request bodies refused before any decision, by reason.",
                &["reason"],
            ),
            requests_refused: counter_vec(
                "requests_refused_total",
                "Requests refused before any decision for reasons other than the body or \
                 the credential (path, method, origin, session, audit), by reason.",
                &["reason"],
            ),
            connections_open: IntGauge::with_opts(
                Opts::new("connections_open", "Downstream connections being served.")
                    .namespace(PREFIX),
            )
            .expect("static metric definition"),
            connections_refused: counter_vec(
                "connections_refused_total",
                "Downstream connections refused or cut off by the proxy, by reason \
                 (connection_limit, header_timeout, header_too_large, tls_version, h2c_disabled).",
                &["reason"],
            ),
            requests_in_flight: IntGaugeVec::new(
                Opts::new(
                    "requests_in_flight",
                    "Requests being served: exchange (POST, DELETE) or stream (GET).",
                )
                .namespace(PREFIX),
                &["kind"],
            )
            .expect("static metric definition"),
            audit_lines: counter_vec(
                "audit_lines_total",
                "Audit lines, by outcome (written, dropped_buffer_full).",
                &["outcome"],
            ),
            audit_write_errors: IntCounter::with_opts(
                Opts::new(
                    "audit_write_errors_total",
                    "Failed attempts to write the audit log (each is retried).",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            audit_sink_up: IntGauge::with_opts(
                Opts::new(
                    "audit_sink_up",
                    "1 while the audit log is writable, 0 after a failed write.",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            build_info: IntGaugeVec::new(
                Opts::new("build_info", "Always 1; the version is a label.").namespace(PREFIX),
                &["version"],
            )
            .expect("static metric definition"),
            definition_changes: counter_vec(
                "definition_changes_total",
                "Tool, prompt and resource template definitions seen new, drifted from their \
                 pin, learned on first sight, or carrying invisible characters, once per digest.",
                &["kind", "change"],
            ),
            definitions_drifted: IntGauge::with_opts(
                Opts::new(
                    "definitions_drifted",
                    "Listed definitions that currently differ from their pin.",
                )
                .namespace(PREFIX),
            )
            .expect("static metric definition"),
            tool_call_checks: counter_vec(
                "tool_call_checks_total",
                "tools/call pin and argument checks, by result (ok or the problem) and \
                 outcome (passed, refused, warned).",
                &["result", "outcome"],
            ),
            tools: BoundedLabels::new(MAX_TOOL_LABELS),
            taints: BoundedLabels::new(MAX_TAINT_LABELS),
        };
        m.audit_sink_up.set(1);
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// Register every metric with `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.tool_calls.clone()))?;
        registry.register(Box::new(self.http_responses.clone()))?;
        registry.register(Box::new(self.decision_seconds.clone()))?;
        registry.register(Box::new(self.upstream_seconds.clone()))?;
        registry.register(Box::new(self.upstream_errors.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.list_items_hidden.clone()))?;
        registry.register(Box::new(self.list_results_withheld.clone()))?;
        registry.register(Box::new(self.taint_events.clone()))?;
        registry.register(Box::new(self.taint_denials.clone()))?;
        registry.register(Box::new(self.taint_evictions.clone()))?;
        registry.register(Box::new(self.policy_reloads.clone()))?;
        registry.register(Box::new(self.key_reloads.clone()))?;
        registry.register(Box::new(self.tls_reloads.clone()))?;
        registry.register(Box::new(self.tls_cert_expiry.clone()))?;
        registry.register(Box::new(self.policy_generation.clone()))?;
        registry.register(Box::new(self.policy_loaded.clone()))?;
        registry.register(Box::new(self.sessions_active.clone()))?;
        registry.register(Box::new(self.bodies_refused.clone()))?;
        registry.register(Box::new(self.requests_refused.clone()))?;
        registry.register(Box::new(self.connections_open.clone()))?;
        registry.register(Box::new(self.connections_refused.clone()))?;
        registry.register(Box::new(self.requests_in_flight.clone()))?;
        registry.register(Box::new(self.audit_lines.clone()))?;
        registry.register(Box::new(self.audit_write_errors.clone()))?;
        registry.register(Box::new(self.audit_sink_up.clone()))?;
        registry.register(Box::new(self.build_info.clone()))?;
        registry.register(Box::new(self.definition_changes.clone()))?;
        registry.register(Box::new(self.definitions_drifted.clone()))?;
        registry.register(Box::new(self.tool_call_checks.clone()))?;
        Ok(())
    }

    /// Count one definition change (see [`crate::pins::PinEvent`]).
    pub fn definition_change(&self, kind: &'static str, change: &'static str) {
        self.definition_changes
            .with_label_values(&[kind, change])
            .inc();
    }

    /// Count one `tools/call` check: `refused` and `warned` are the labels of the problem
    /// refused or warned about (`CallProblem::label`); neither: passed.
    pub fn call_check(&self, refused: Option<&'static str>, warned: Option<&'static str>) {
        let (result, outcome) = match (refused, warned) {
            (Some(label), _) => (label, "refused"),
            (None, Some(label)) => (label, "warned"),
            (None, None) => ("ok", "passed"),
        };
        self.tool_call_checks
            .with_label_values(&[result, outcome])
            .inc();
    }

    /// The process-wide metrics, registered in the default registry on first use.
    pub fn global() -> Arc<Metrics> {
        static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let metrics = Metrics::new();
                if let Err(e) = metrics.register(prometheus::default_registry()) {
                    tracing::error!("cannot register metrics: {e}");
                }
                Arc::new(metrics)
            })
            .clone()
    }

    /// Count one message's decision. `tool` is `Some((name, declared))` for `tools/call`,
    /// where `declared` says whether the upstream listed a tool of that name.
    pub fn decision(&self, method: Option<&str>, decision: &Decision, tool: Option<(&str, bool)>) {
        let label = decision_label(decision);
        self.requests
            .with_label_values(&[method_label(method), label])
            .inc();
        if let Some((name, declared)) = tool {
            let count = |tool: &str| self.tool_calls.with_label_values(&[tool, label]).inc();
            if declared {
                self.tools.with_label(name, count);
            } else {
                count(OTHER);
            }
        }
    }

    /// Count a taint event: a source call's answer recorded `taint` for a session and
    /// credential.
    pub fn taint_event(&self, taint: &str) {
        let label = self.taints.label(taint);
        self.taint_events.with_label_values(&[&label]).inc();
    }

    /// Count a denial of a request carrying `taints`, once per label.
    pub fn taint_denial(&self, taints: &[String]) {
        for taint in taints {
            let label = self.taints.label(taint);
            self.taint_denials.with_label_values(&[&label]).inc();
        }
    }

    /// Observe the time one body took to decide.
    pub fn decision_time(&self, engine: &'static str, elapsed: Duration) {
        self.decision_seconds
            .with_label_values(&[engine])
            .observe(elapsed.as_secs_f64());
    }

    /// Count a reload of policies or key files.
    pub fn reload(&self, policies: bool, ok: bool) {
        let vec = if policies {
            &self.policy_reloads
        } else {
            &self.key_reloads
        };
        vec.with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// Set the policy gauges from the generation in force.
    pub fn set_generation(&self, number: u64, loaded_at: SystemTime) {
        self.policy_generation
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        let secs = loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.policy_loaded.set(secs);
    }

    /// Count items hidden from a list result.
    pub fn hidden(&self, kind: ListKind, count: usize) {
        if count > 0 {
            self.list_items_hidden
                .with_label_values(&[list_label(kind)])
                .inc_by(count as u64);
        }
    }

    /// Count an HTTP response sent to a client.
    pub fn http_response(&self, status: u16) {
        match status
            .checked_sub(100)
            .and_then(|i| self.http_by_status.get(usize::from(i)))
        {
            Some(counter) => counter
                .get_or_init(|| {
                    self.http_responses
                        .with_label_values(&[&status.to_string()])
                })
                .inc(),
            None => self.http_responses.with_label_values(&[OTHER]).inc(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    fn scrape(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn allow() -> Decision {
        Decision {
            allow: true,
            ..Decision::default()
        }
    }

    #[test]
    fn methods_outside_the_spec_are_bucketed() {
        assert_eq!(method_label(Some("tools/call")), "tools/call");
        assert_eq!(method_label(Some("tools/call2")), "other");
        assert_eq!(method_label(Some("x".repeat(100).as_str())), "other");
        assert_eq!(
            method_label(Some("notifications/initialized")),
            "notifications/initialized"
        );
        assert_eq!(
            method_label(Some("notifications/whatever")),
            "notifications/other"
        );
        assert_eq!(method_label(None), "response");
    }

    #[test]
    fn decision_labels() {
        assert_eq!(decision_label(&allow()), "allow");
        assert_eq!(decision_label(&Decision::default()), "deny");
        assert_eq!(decision_label(&Decision::deny_error("boom", 1)), "error");
    }

    /// A token check that fails (an attenuation narrowing the token) is a deny, not an
    /// evaluation failure; a failed check next to a real error is still an error.
    #[test]
    fn a_failed_check_is_a_deny() {
        let failed = Decision::deny_error(
            "failed_check: token/block1/check0: check if tool(\"echo\")",
            1,
        );
        assert_eq!(decision_label(&failed), "deny");
        let mut both = failed.clone();
        both.errors.push("run_limit: timeout".into());
        assert_eq!(decision_label(&both), "error");
    }

    #[test]
    fn undeclared_and_excess_tools_are_other() {
        let m = Metrics::new();
        let registry = Registry::new();
        m.register(&registry).unwrap();
        m.decision(Some("tools/call"), &allow(), Some(("echo", true)));
        m.decision(Some("tools/call"), &allow(), Some(("secret-name", false)));
        for i in 0..MAX_TOOL_LABELS + 10 {
            m.decision(
                Some("tools/call"),
                &Decision::default(),
                Some((&format!("t{i}"), true)),
            );
        }
        let text = scrape(&registry);
        assert!(
            text.contains(r#"mcp_warden_tool_calls_total{decision="allow",tool="echo"} 1"#),
            "{text}"
        );
        assert!(!text.contains("secret-name"));
        assert!(
            text.contains(r#"mcp_warden_tool_calls_total{decision="allow",tool="other"} 1"#),
            "{text}"
        );
        // "echo" took one of the slots: 499 t* names are labelled, 11 are `other`.
        assert!(
            text.contains(r#"mcp_warden_tool_calls_total{decision="deny",tool="other"} 11"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcp_warden_requests_total{decision="deny",method="tools/call"} 510"#)
        );
    }

    #[test]
    fn every_metric_registers_and_renders() {
        let m = Metrics::new();
        let registry = Registry::new();
        m.register(&registry).unwrap();
        m.set_generation(
            3,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        m.reload(true, false);
        m.hidden(ListKind::Tools, 2);
        m.hidden(ListKind::Prompts, 0);
        m.http_response(200);
        m.taint_event("phi");
        m.taint_denial(&["phi".into(), "secrets".into()]);
        m.decision_time("cedar", Duration::from_micros(40));
        let text = scrape(&registry);
        for needle in [
            "mcp_warden_policy_generation 3",
            "mcp_warden_policy_loaded_timestamp_seconds 1700000000",
            r#"mcp_warden_policy_reloads_total{result="failure"} 1"#,
            r#"mcp_warden_list_items_hidden_total{list="tools"} 2"#,
            r#"mcp_warden_http_responses_total{code="200"} 1"#,
            r#"mcp_warden_taint_events_total{taint="phi"} 1"#,
            r#"mcp_warden_taint_denials_total{taint="secrets"} 1"#,
            r#"mcp_warden_decision_duration_seconds_bucket{engine="cedar",le="0.00005"} 1"#,
            "mcp_warden_audit_sink_up 1",
            "mcp_warden_build_info{version=",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
        assert!(
            !text.contains(r#"list="prompts""#),
            "zero counts add no series"
        );
        // Registering twice in one registry is refused, not silently duplicated.
        assert!(m.register(&registry).is_err());
    }
}
