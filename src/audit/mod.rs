//! The audit log: one JSON line per decision, authentication failure and refusal.
//!
//! The request path never waits on the sink. [`AuditLog::record`] puts an [`AuditEvent`]
//! into a bounded channel; a writer thread serializes it and appends it to stdout or a
//! file. When the buffer is full the line is dropped and counted
//! (`mcp_warden_audit_lines_total{outcome="dropped_buffer_full"}`). When a write fails the
//! writer keeps the line, marks the sink down (`mcp_warden_audit_sink_up 0`) and retries
//! it every second, reopening a file sink each time; lines queue up behind it meanwhile.
//!
//! What the proxy does while the sink is down is [`FailureMode`]: by default it keeps
//! serving (the metric is the alarm); with `fail_closed` it refuses requests while the
//! sink is down or the buffer is full.
//!
//! The writer batches: it drains whatever is queued into one buffer and writes it with
//! one call, and when the queue is empty it polls every `POLL_INTERVAL` for a while
//! before it blocks. Under load the request threads therefore never have to wake it
//! (a futex call per line), and the sink sees one write per batch, not per line; a line
//! reaches the sink at most `POLL_INTERVAL` (10 ms) after it was recorded.
//!
//! File sinks are rotation-friendly: they append, and [`AuditLog::reopen`] (SIGHUP) makes
//! the writer reopen the path, so `logrotate` can rename the file and signal; an external
//! rotator using copy-and-truncate works too.

mod event;
mod sink;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use serde::Deserialize;

pub use event::{
    arguments_digest, AuditEvent, AuditOutcome, DefinitionRecord, EventKind, Principal,
};
pub use sink::{FileSink, Sink, StdoutSink};

use crate::metrics::Metrics;

/// How long the writer waits before retrying a failed write.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the writer looks for queued lines before it blocks. Each look that finds
/// lines is a wake-up, a batch and a write: at 2 ms the writer's thread took 13–16 ms of
/// CPU per 1,000 allowed calls at about 920 a second, at 10 ms 5–6 ms
/// (`docs/src/performance.md`), and a line still reaches the sink within 10 ms.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Empty polls (about one second of silence) before the writer blocks until woken.
const IDLE_POLLS: u32 = 100;
/// A batch is written once it holds this many bytes, whatever is still queued.
const BATCH_BYTES: usize = 64 * 1024;

/// Where audit lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Standard output (the diagnostic log is on stderr).
    Stdout,
    /// Append to `audit.path`.
    File,
}

/// What the proxy does while the audit log cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Keep serving; `mcp_warden_audit_sink_up` drops to 0 and lost lines are counted.
    FailOpen,
    /// Refuse requests (HTTP 503, JSON-RPC `-32603`) while the sink is down or the buffer
    /// is full.
    FailClosed,
}

/// The `[audit]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `stdout` (default) or `file`.
    pub sink: SinkKind,
    /// The file for `sink = "file"`, relative to the configuration file's directory. It is
    /// opened for appending and created if missing; SIGHUP reopens it.
    pub path: Option<PathBuf>,
    /// Lines buffered between the request path and the writer (default 8192). When it is
    /// full, lines are dropped and counted (or requests refused with `fail_closed`).
    pub buffer: usize,
    /// `fail_open` (default): keep serving while the sink fails, alarm via the metrics.
    /// `fail_closed`: refuse requests while the sink is down.
    pub failure_mode: FailureMode,
    /// Write the call's arguments themselves, not only their digest (default `false`:
    /// arguments may hold personal data).
    pub log_arguments: bool,
    /// Fraction of *allowed list* requests (`tools/list`, …) that are written, from `0.0`
    /// to `1.0` (default `1.0`: all). Every other decision is always written.
    pub allowed_list_sample_rate: f64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            sink: SinkKind::Stdout,
            path: None,
            buffer: 8192,
            failure_mode: FailureMode::FailOpen,
            log_arguments: false,
            allowed_list_sample_rate: 1.0,
        }
    }
}

impl AuditConfig {
    /// Checks serde cannot express: `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.allowed_list_sample_rate) {
            return Err((
                "audit.allowed_list_sample_rate",
                format!(
                    "`{}` is not between 0.0 and 1.0",
                    self.allowed_list_sample_rate
                ),
            ));
        }
        if self.buffer == 0 {
            return Err(("audit.buffer", "must be at least 1".to_owned()));
        }
        match (self.sink, &self.path) {
            (SinkKind::File, None) => Err((
                "audit.path",
                "required when `audit.sink = \"file\"`".to_owned(),
            )),
            (SinkKind::Stdout, Some(_)) => Err((
                "audit.path",
                "only used with `audit.sink = \"file\"`".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

/// Why a line was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The buffer is full.
    #[error("audit buffer full")]
    BufferFull,
    /// The writer has stopped.
    #[error("audit writer stopped")]
    Stopped,
}

enum Message {
    Event(Box<AuditEvent>),
    Flush(mpsc::Sender<()>),
    Wake,
}

/// Counters the writer updates.
#[derive(Clone)]
struct Counters {
    written: IntCounter,
    dropped_full: IntCounter,
    write_errors: IntCounter,
    sink_up: IntGauge,
}

impl Counters {
    fn from(metrics: &Metrics) -> Self {
        Counters {
            written: metrics.audit_lines.with_label_values(&["written"]),
            dropped_full: metrics
                .audit_lines
                .with_label_values(&["dropped_buffer_full"]),
            write_errors: metrics.audit_write_errors.clone(),
            sink_up: metrics.audit_sink_up.clone(),
        }
    }
}

struct Shared {
    healthy: AtomicBool,
    reopen: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
        self.counters.sink_up.set(i64::from(healthy));
    }
}

/// Handle to the audit log, shared by all requests.
pub struct AuditLog {
    tx: SyncSender<Message>,
    rx: Mutex<Option<Receiver<Message>>>,
    shared: Arc<Shared>,
    sink: SinkKind,
    path: Option<PathBuf>,
    failure_mode: FailureMode,
    log_arguments: bool,
    list_sample_rate: f64,
}

impl AuditLog {
    /// A log for `cfg` (paths relative to `base_dir`), counting into `metrics`. Nothing is
    /// opened or written until [`AuditLog::start`].
    pub fn new(cfg: &AuditConfig, base_dir: &Path, metrics: &Metrics) -> Self {
        let (tx, rx) = mpsc::sync_channel(cfg.buffer.max(1));
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            reopen: AtomicBool::new(false),
            counters: Counters::from(metrics),
        });
        AuditLog {
            tx,
            rx: Mutex::new(Some(rx)),
            shared,
            sink: cfg.sink,
            path: cfg.path.as_ref().map(|p| base_dir.join(p)),
            failure_mode: cfg.failure_mode,
            log_arguments: cfg.log_arguments,
            list_sample_rate: cfg.allowed_list_sample_rate,
        }
    }

    /// Open the configured sink and start the writer thread. Fails if the file cannot be
    /// opened, so a misconfigured audit log stops the proxy from starting.
    pub fn start(&self) -> std::io::Result<()> {
        let sink: Box<dyn Sink> = match (self.sink, &self.path) {
            (SinkKind::File, Some(path)) => Box::new(FileSink::open(path)?),
            _ => Box::new(StdoutSink),
        };
        self.start_with(sink)
    }

    /// Start the writer thread with a given sink.
    pub fn start_with(&self, sink: Box<dyn Sink>) -> std::io::Result<()> {
        let Some(rx) = self.rx.lock().take() else {
            return Err(std::io::Error::other("audit writer already started"));
        };
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_loop(rx, sink, &shared))?;
        Ok(())
    }

    /// Queue an event without waiting. A full buffer drops it and counts it.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        match self.tx.try_send(Message::Event(Box::new(event))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.counters.dropped_full.inc();
                Err(AuditError::BufferFull)
            }
            Err(TrySendError::Disconnected(_)) => Err(AuditError::Stopped),
        }
    }

    /// Is the sink writable (the last write succeeded)?
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Should requests be refused now (`fail_closed` and the sink is down)?
    pub fn refusing(&self) -> bool {
        self.failure_mode == FailureMode::FailClosed && !self.healthy()
    }

    /// Is the audit log configured to fail closed (refuse what it cannot record)?
    pub fn fails_closed(&self) -> bool {
        self.failure_mode == FailureMode::FailClosed
    }

    /// Write arguments themselves, not only their digest?
    pub fn log_arguments(&self) -> bool {
        self.log_arguments
    }

    /// Should this allowed list request be written (sampling)?
    pub fn sample_allowed_list(&self) -> bool {
        self.list_sample_rate >= 1.0 || rand::random::<f64>() < self.list_sample_rate
    }

    /// Reopen a file sink before the next write (SIGHUP; after log rotation).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        let _ = self.tx.try_send(Message::Wake);
    }

    /// Wait until every line queued so far is written, at most `timeout`. Returns whether
    /// it was (for shutdown).
    #[allow(
        clippy::disallowed_methods,
        reason = "polls for room in a full queue, bounded by `timeout`"
    )]
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut message = Message::Flush(ack_tx);
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return false,
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the writer polls briefly before blocking (POLL_INTERVAL), so request threads need not wake it"
)]
fn write_loop(rx: Receiver<Message>, mut sink: Box<dyn Sink>, shared: &Shared) {
    let mut batch = Batch::default();
    let mut idle = 0;
    loop {
        let message = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => {
                batch.write(sink.as_mut(), shared);
                if idle < IDLE_POLLS {
                    idle += 1;
                    std::thread::sleep(POLL_INTERVAL);
                    continue;
                }
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => {
                batch.write(sink.as_mut(), shared);
                return;
            }
        };
        idle = 0;
        reopen_if_asked(sink.as_mut(), shared);
        match message {
            Message::Wake => {}
            Message::Flush(ack) => {
                batch.write(sink.as_mut(), shared);
                let _ = ack.send(());
            }
            Message::Event(event) => {
                if let Err(e) = serde_json::to_writer(&mut batch.bytes, &event) {
                    tracing::error!("cannot serialize an audit event: {e}");
                    continue;
                }
                batch.bytes.push(b'\n');
                batch.lines += 1;
                if batch.bytes.len() >= BATCH_BYTES {
                    batch.write(sink.as_mut(), shared);
                }
            }
        }
    }
}

/// Serialized lines waiting for one write.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

impl Batch {
    fn write(&mut self, sink: &mut dyn Sink, shared: &Shared) {
        if self.lines > 0 {
            write_until_done(sink, shared, &self.bytes, self.lines);
        }
        self.bytes.clear();
        self.lines = 0;
    }
}

fn reopen_if_asked(sink: &mut dyn Sink, shared: &Shared) {
    if shared.reopen.swap(false, Ordering::AcqRel) {
        match sink.reopen() {
            Ok(()) => tracing::info!("audit log reopened"),
            Err(e) => tracing::error!("cannot reopen the audit log: {e}"),
        }
    }
}

/// Write a batch of `count` lines, retrying (and reopening) every [`RETRY_INTERVAL`]
/// until it succeeds. Lines queue up behind it meanwhile (and are dropped once the
/// buffer is full).
#[allow(
    clippy::disallowed_methods,
    reason = "a failed write is retried every RETRY_INTERVAL"
)]
fn write_until_done(sink: &mut dyn Sink, shared: &Shared, lines: &[u8], count: u64) {
    loop {
        match sink.write_lines(lines) {
            Ok(()) => {
                shared.counters.written.inc_by(count);
                if !shared.healthy.load(Ordering::Acquire) {
                    tracing::info!("audit log writable again");
                    shared.set_healthy(true);
                }
                return;
            }
            Err(e) => {
                shared.counters.write_errors.inc();
                if shared.healthy.load(Ordering::Acquire) {
                    tracing::error!("audit log write failed; retrying every second: {e}");
                    shared.set_healthy(false);
                }
            }
        }
        std::thread::sleep(RETRY_INTERVAL);
        if let Err(e) = sink.reopen() {
            tracing::debug!("cannot reopen the audit log: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sink::MemorySink;
    use super::*;

    fn log(cfg: AuditConfig) -> (AuditLog, Metrics) {
        let metrics = Metrics::new();
        let log = AuditLog::new(&cfg, Path::new("."), &metrics);
        (log, metrics)
    }

    fn event(id: &str) -> AuditEvent {
        AuditEvent::new(EventKind::Decision, id, "POST")
    }

    fn lines(sink: &MemorySink) -> Vec<serde_json::Value> {
        String::from_utf8(sink.lines.lock().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn config_checks() {
        assert!(AuditConfig::default().check().is_ok());
        let file_without_path = AuditConfig {
            sink: SinkKind::File,
            ..AuditConfig::default()
        };
        assert_eq!(file_without_path.check().unwrap_err().0, "audit.path");
        let bad_rate = AuditConfig {
            allowed_list_sample_rate: 1.5,
            ..AuditConfig::default()
        };
        assert!(bad_rate.check().is_err());
        let cfg: AuditConfig =
            toml::from_str("sink = \"file\"\npath = \"a.log\"\nfailure_mode = \"fail_closed\"")
                .unwrap();
        assert_eq!(cfg.failure_mode, FailureMode::FailClosed);
        assert!(toml::from_str::<AuditConfig>("sinc = \"file\"").is_err());
    }

    #[test]
    fn lines_are_written_in_order_one_json_per_line() {
        let (log, metrics) = log(AuditConfig::default());
        let sink = MemorySink::default();
        log.start_with(Box::new(sink.clone())).unwrap();
        for i in 0..3 {
            log.record(event(&format!("r{i}"))).unwrap();
        }
        assert!(log.flush(crate::testing::HANG));
        let ids: Vec<_> = lines(&sink)
            .iter()
            .map(|l| l["request_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
        assert_eq!(metrics.audit_lines.with_label_values(&["written"]).get(), 3);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let (log, metrics) = log(AuditConfig {
            buffer: 2,
            ..AuditConfig::default()
        });
        // Not started: nothing drains the buffer.
        assert!(log.record(event("a")).is_ok());
        assert!(log.record(event("b")).is_ok());
        // Nothing will ever drain the buffer, so a `record` that waited for room would
        // never return: it must come back at once with `BufferFull`.
        assert_eq!(log.record(event("c")), Err(AuditError::BufferFull));
        assert_eq!(
            metrics
                .audit_lines
                .with_label_values(&["dropped_buffer_full"])
                .get(),
            1
        );
    }

    #[test]
    fn a_failing_sink_is_reported_retried_and_loses_nothing() {
        let (log, metrics) = log(AuditConfig {
            failure_mode: FailureMode::FailClosed,
            ..AuditConfig::default()
        });
        let sink = MemorySink::default();
        sink.fail.store(true, Ordering::SeqCst);
        log.start_with(Box::new(sink.clone())).unwrap();
        assert!(!log.refusing());
        log.record(event("during-outage")).unwrap();
        crate::testing::wait_until("the failed write", || !log.healthy());
        assert!(log.refusing(), "fail_closed refuses while the sink is down");
        assert_eq!(metrics.audit_sink_up.get(), 0);
        assert!(metrics.audit_write_errors.get() >= 1);

        sink.fail.store(false, Ordering::SeqCst);
        log.record(event("after")).unwrap();
        assert!(log.flush(crate::testing::HANG));
        assert!(log.healthy());
        assert!(!log.refusing());
        assert_eq!(metrics.audit_sink_up.get(), 1);
        let ids: Vec<_> = lines(&sink)
            .iter()
            .map(|l| l["request_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["during-outage", "after"]);
    }

    #[test]
    fn fail_open_never_refuses() {
        let (log, _m) = log(AuditConfig::default());
        log.shared.set_healthy(false);
        assert!(!log.refusing());
    }

    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            sink: SinkKind::File,
            path: Some("audit.log".into()),
            ..AuditConfig::default()
        };
        let metrics = Metrics::new();
        let log = AuditLog::new(&cfg, dir.path(), &metrics);
        log.start().unwrap();
        log.record(event("before")).unwrap();
        assert!(log.flush(crate::testing::HANG));
        std::fs::rename(dir.path().join("audit.log"), dir.path().join("audit.log.1")).unwrap();
        log.reopen();
        log.record(event("after")).unwrap();
        assert!(log.flush(crate::testing::HANG));
        let old = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        let new = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert!(
            old.contains("\"before\"") && !old.contains("\"after\""),
            "{old}"
        );
        assert!(
            new.contains("\"after\"") && !new.contains("\"before\""),
            "{new}"
        );
    }

    #[test]
    fn sampling_of_allowed_lists() {
        let (all, _m1) = log(AuditConfig::default());
        assert!((0..100).all(|_| all.sample_allowed_list()));
        let (none, _m2) = log(AuditConfig {
            allowed_list_sample_rate: 0.0,
            ..AuditConfig::default()
        });
        assert!((0..100).all(|_| !none.sample_allowed_list()));
    }

    #[test]
    fn start_fails_on_an_unopenable_file() {
        let cfg = AuditConfig {
            sink: SinkKind::File,
            path: Some("/nonexistent-dir/audit.log".into()),
            ..AuditConfig::default()
        };
        let (log, _m) = log(cfg);
        let err = log.start().unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir/audit.log"), "{err}");
    }
}
