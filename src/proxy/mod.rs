//! The proxy: Pingora glue around plain functions.
//!
//! Pingora is used only in this module ([`service`] implements `ProxyHttp`, [`body`]
//! reads request bodies). The decisions themselves live in plain, unit-tested code:
//! [`verdict::authorize_body`] decides a body, [`response`] filters answers,
//! [`forward`] rewrites identity headers, [`sessions`] binds sessions to principals and
//! [`respond::Refusal`] says what a refused client gets.
//!
//! Where is a `tools/call` decided? [`service`]'s `request_filter` reads the body,
//! parses it with [`crate::mcp::parse_request_body`] and calls
//! [`verdict::authorize_body`], which asks [`crate::policy::PolicyEngine::decide`].

pub mod annotations;
mod body;
pub mod forward;
pub mod respond;
pub mod response;
mod service;
pub mod sessions;
pub mod verdict;

use std::sync::Arc;

use crate::auth::{AuthConfigError, Authenticator};
use crate::config::Config;
use crate::policy::{watch, PolicyLoadError, PolicyStore};

pub use service::WardenProxy;

/// Everything a request needs, shared by all requests: the authenticator, the policy
/// store, the session table and what the proxy learned of the upstream's tools.
pub struct Warden {
    /// The checked configuration.
    pub config: Config,
    /// Verifies credentials.
    pub auth: Authenticator,
    /// The current policy generation.
    pub policies: PolicyStore,
    /// Session ownership and outstanding list requests.
    pub sessions: sessions::SessionTable,
    /// Tool annotations learned from `tools/list`.
    pub annotations: annotations::AnnotationCache,
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
        Ok(Warden {
            config,
            auth,
            policies,
            sessions,
            annotations: Default::default(),
        })
    }

    /// Reload everything reloadable (policies, key files). Each part keeps its last
    /// good state on error; errors are logged with file and line.
    pub fn reload(&self) {
        match self.policies.reload() {
            Ok(generation) => tracing::info!(generation, "policies reloaded"),
            Err(e) => {
                tracing::error!("policy reload rejected, keeping the last good generation:\n{e}")
            }
        }
        match self.auth.reload() {
            Ok(()) => tracing::info!("keys and revocation list reloaded"),
            Err(e) => tracing::error!("key reload rejected, keeping the previous keys: {e}"),
        }
    }
}

/// Start watching policy and key files, and listening for SIGHUP; both reload.
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
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start SIGHUP listener: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::error!("cannot listen for SIGHUP");
                    return;
                };
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading");
                    w.reload();
                }
            });
        })?;
    Ok(handles)
}

/// Run the proxy until the process is told to stop (SIGTERM: graceful, SIGINT: fast).
pub fn run(warden: Warden) -> anyhow::Result<()> {
    use pingora::server::configuration::ServerConf;
    use pingora::server::Server;

    let listen = warden.config.raw.listen;
    let warden = Arc::new(warden);
    let _watchers = spawn_reloaders(&warden)?;

    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
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
        upstream = %warden.config.raw.upstream,
        generation = warden.policies.current().number,
        "mcp-warden listening"
    );
    server.run_forever()
}
