//! The proxy: Pingora glue around plain functions.
//!
//! Pingora is used only in this module ([`service`] implements `ProxyHttp`, [`body`]
//! reads request bodies). The decisions themselves live in plain, unit-tested code:
//! [`verdict::authorize_body`] decides a body, [`response`] filters answers,
//! [`forward`] rewrites identity headers, [`sessions`] binds sessions to principals and
//! [`respond::Refusal`] says what a refused client gets, [`observe`] logs, counts and
//! audits each request, [`lifecycle`] counts requests in flight and drains on SIGTERM, and
//! [`admin`] serves `/metrics`, `/healthz` and `/readyz` on the admin address.
//!
//! Where is a `tools/call` decided? [`service`]'s `request_filter` reads the body,
//! parses it with [`crate::mcp::parse_request_body`] and calls
//! [`verdict::authorize_body`], which asks [`crate::policy::PolicyEngine::decide`].

pub mod admin;
pub mod annotations;
mod body;
pub mod forward;
pub mod lifecycle;
pub mod observe;
pub mod respond;
pub mod response;
mod service;
pub mod sessions;
pub mod verdict;

use std::sync::Arc;

use anyhow::Context as _;

use crate::audit::AuditLog;
use crate::auth::{AuthConfigError, Authenticator};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::{watch, PolicyLoadError, PolicyStore};

pub use service::WardenProxy;

/// Everything a request needs, shared by all requests: the authenticator, the policy
/// store, the session table, what the proxy learned of the upstream's tools, the taint
/// store, and the operations side (metrics, audit log, requests in flight).
pub struct Warden {
    /// The checked configuration.
    pub config: Config,
    /// Verifies credentials.
    pub auth: Authenticator,
    /// The current policy generation.
    pub policies: PolicyStore,
    /// Session ownership and outstanding list requests.
    pub sessions: sessions::SessionTable,
    /// Tool annotations learned from `tools/list`, and the operator's overrides.
    pub annotations: annotations::AnnotationCache,
    /// Taint sources (`[taint] sources`), by tool.
    pub sources: crate::taint::Sources,
    /// Shared state: taint labels by session and credential, revoked token ids,
    /// rate-limit buckets (in memory, or in Redis for several replicas).
    pub state: crate::state::SharedState,
    /// Prometheus metrics (the process-wide set).
    pub metrics: Arc<Metrics>,
    /// The audit log (its writer starts with [`run`]).
    pub audit: AuditLog,
    /// Requests in flight; draining.
    pub lifecycle: Arc<lifecycle::Lifecycle>,
}

/// Why the proxy could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The `[auth]` section or a key file.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// A policy, schema or entity file.
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The `[state]` section (Redis URL, TLS files, password).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl Warden {
    /// Build from a checked configuration: set up authentication and compile policies.
    /// Fails on any error, so a bad configuration never starts.
    pub fn build(config: Config) -> Result<Self, BuildError> {
        let mut auth = Authenticator::from_config(&config.raw.auth, &config.base_dir)?;
        auth.set_datalog_limits(config.raw.policy.biscuit.limits.to_limits());
        let policies = PolicyStore::load(&config.raw.policy, &config.base_dir)?;
        let sessions = sessions::SessionTable::new(
            config.raw.sessions.max_sessions,
            config.raw.sessions.idle_timeout,
        );
        let metrics = Metrics::global();
        let audit = AuditLog::new(&config.raw.audit, &config.base_dir, &metrics);
        let lifecycle = Arc::new(lifecycle::Lifecycle::new(&metrics));
        let annotations =
            annotations::AnnotationCache::with_overrides(config.raw.annotation_overrides());
        let sources = config.raw.taint.sources();
        let state = crate::state::SharedState::from_config(
            &config.raw.state,
            &config.raw.rate_limits,
            config.raw.taint.max_entries,
            config.raw.taint.ttl,
            &config.base_dir,
        )?;
        let warden = Warden {
            config,
            auth,
            policies,
            sessions,
            annotations,
            sources,
            state,
            metrics,
            audit,
            lifecycle,
        };
        warden.refresh_gauges();
        Ok(warden)
    }

    /// Reload everything reloadable (policies, key files). Each part keeps its last
    /// good state on error; errors are logged with file and line, and counted.
    pub fn reload(&self) {
        match self.policies.reload() {
            Ok(generation) => {
                self.metrics.reload(true, true);
                tracing::info!(generation, "policies reloaded")
            }
            Err(e) => {
                self.metrics.reload(true, false);
                tracing::error!("policy reload rejected, keeping the last good generation:\n{e}")
            }
        }
        let has_key_files = !self.auth.watched_files().is_empty();
        match self.auth.reload() {
            Ok(()) => {
                if has_key_files {
                    self.metrics.reload(false, true);
                    tracing::info!("keys and revocation list reloaded");
                }
            }
            Err(e) => {
                self.metrics.reload(false, false);
                tracing::error!("key reload rejected, keeping the previous keys: {e}");
            }
        }
        self.refresh_gauges();
    }

    /// Bring the gauges that mirror state (policy generation, sessions) up to date; the
    /// admin listener calls this before each scrape.
    pub fn refresh_gauges(&self) {
        let generation = self.policies.current();
        self.metrics
            .set_generation(generation.number, generation.loaded_at);
        self.metrics
            .sessions_active
            .set(i64::try_from(self.sessions.active()).unwrap_or(i64::MAX));
    }
}

/// Start watching policy and key files, and listening for SIGHUP; both reload, and
/// SIGHUP also reopens the audit log file.
/// The returned handles keep the watchers alive.
pub fn spawn_reloaders(warden: &Arc<Warden>) -> anyhow::Result<Vec<watch::WatchHandle>> {
    let mut handles = Vec::new();
    let policy = &warden.config.raw.policy;
    if policy.watch {
        let mut paths = warden.policies.watched_paths();
        paths.extend(warden.auth.watched_files());
        let w = Arc::clone(warden);
        handles.push(watch::spawn_watcher(
            paths,
            policy.debounce,
            Box::new(move || w.reload()),
        )?);
    }

    let w = Arc::clone(warden);
    spawn_with_runtime("sighup", "SIGHUP listener", move || async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading, reopening the audit log");
            w.audit.reopen();
            w.reload();
        }
    })?;
    Ok(handles)
}

/// Runs `task` on a thread of its own (named `name`) with a single-threaded Tokio
/// runtime, so that it keeps working whatever Pingora's runtimes do (a drain, say).
/// `what` names it in the error logged when the runtime cannot be built.
pub(crate) fn spawn_with_runtime<F, Fut>(
    name: &str,
    what: &'static str,
    task: F,
) -> std::io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task()),
                Err(e) => tracing::error!("cannot start the {what}: {e}"),
            }
        })?;
    Ok(())
}

/// Run the proxy until the process is told to stop: SIGTERM (or SIGQUIT) drains
/// gracefully (see [`lifecycle`]), SIGINT stops at once.
pub fn run(warden: Warden) -> anyhow::Result<()> {
    use pingora::server::configuration::ServerConf;
    use pingora::server::{RunArgs, Server};

    let listen = warden.config.raw.listen;
    warden.audit.start().context("audit log")?;
    let warden = Arc::new(warden);
    let _watchers = spawn_reloaders(&warden)?;
    let admin = admin::spawn(&warden)?;

    let lc = &warden.config.raw.lifecycle;
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        grace_period_seconds: Some(lifecycle::whole_seconds(lc.drain_timeout)),
        graceful_shutdown_timeout_seconds: Some(lifecycle::whole_seconds(lc.shutdown_timeout)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        WardenProxy::new(Arc::clone(&warden)),
    );
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    tracing::info!(
        %listen,
        %admin,
        upstream = %warden.config.raw.upstream,
        generation = warden.policies.current().number,
        "mcp-warden listening"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(lifecycle::Signals::new(Arc::clone(&warden))),
    });
    warden.audit.flush(lifecycle::FINAL_FLUSH);
    tracing::info!("stopped");
    Ok(())
}
