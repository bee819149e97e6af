//! The state every exchange shares: the authenticator, the policy store, the session
//! table, what the proxy learned of the upstream's tools, the shared state (taint,
//! revocation, rate limits), and the
//! operations side (metrics, audit log, requests in flight).
//!
//! Built once from a checked configuration ([`Warden::build`]), then shared by every
//! request; [`Warden::reload`] swaps in new policies and keys without a restart.

use std::sync::Arc;

use super::in_flight::Lifecycle;
use crate::audit::AuditLog;
use crate::auth::{AuthConfigError, Authenticator};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::{PolicyLoadError, PolicyStore};

use super::annotations::AnnotationCache;
use super::sessions::SessionTable;

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
    pub sessions: SessionTable,
    /// Task ownership (tasks extension) and the calls that created them.
    pub tasks: super::tasks::TaskTable,
    /// Tool annotations learned from `tools/list`, and the operator's overrides.
    pub annotations: AnnotationCache,
    /// Definitions seen and pinned, and each tool's compiled `inputSchema`.
    pub catalogue: crate::pins::Catalogue,
    /// Taint sources (`[taint] sources`), by tool.
    pub sources: crate::taint::Sources,
    /// Shared state: taint labels by session and credential, revoked token ids,
    /// rate-limit buckets (in memory, or in Redis for several replicas).
    pub state: crate::state::SharedState,
    /// Prometheus metrics (the process-wide set).
    pub metrics: Arc<Metrics>,
    /// The audit log (its writer starts with [`crate::proxy::run`]).
    pub audit: AuditLog,
    /// Requests in flight; draining.
    pub lifecycle: Arc<Lifecycle>,
    /// `[identity_headers]`, compiled: what is stripped from and added to a forwarded
    /// request.
    pub forwarding: super::forward::Forwarding,
    /// The OAuth protected-resource metadata document (`[oauth]`), if a resource is
    /// named.
    pub resource_metadata: Option<crate::auth::resource_metadata::ResourceMetadata>,
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
    /// The `[pinning]` section or the pin file.
    #[error(transparent)]
    Pinning(#[from] crate::pins::PinningConfigError),
    /// The `[state]` section (Redis URL, TLS files, password).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl Warden {
    /// Build from a checked configuration: set up authentication and compile policies.
    /// Fails on any error, so a bad configuration never starts.
    pub fn build(config: Config) -> Result<Self, BuildError> {
        let mut auth = Authenticator::from_config(&config.raw.effective_auth(), &config.base_dir)?;
        auth.set_datalog_limits(config.raw.policy.biscuit.limits.to_limits());
        let policies = PolicyStore::load(&config.raw.policy, &config.base_dir)?;
        let sessions = SessionTable::new(
            config.raw.sessions.max_sessions,
            config.raw.sessions.idle_timeout,
        );
        let metrics = Metrics::global();
        let audit = AuditLog::new(&config.raw.audit, &config.base_dir, &metrics);
        let lifecycle = Arc::new(Lifecycle::new(&metrics));
        let annotations = AnnotationCache::with_overrides(config.raw.annotation_overrides());
        let pinning = &config.raw.pinning;
        pinning.check()?;
        let catalogue = crate::pins::Catalogue::new(
            pinning,
            pinning.file.as_ref().map(|f| config.base_dir.join(f)),
            config.raw.arguments.validation,
            config.raw.arguments.limits(),
        )
        .map_err(crate::pins::PinningConfigError::from)?;
        let sources = config.raw.taint.sources();
        let state = crate::state::SharedState::from_config(
            &config.raw.state,
            &config.raw.rate_limits,
            config.raw.taint.max_entries,
            config.raw.taint.ttl,
            &config.base_dir,
        )?;
        let resource_metadata =
            crate::auth::resource_metadata::ResourceMetadata::from_config(&config.raw.oauth);
        let forwarding = super::forward::Forwarding::new(&config.raw.identity_headers);
        let warden = Warden {
            forwarding,
            resource_metadata,
            config,
            auth,
            policies,
            sessions,
            tasks: Default::default(),
            annotations,
            catalogue,
            sources,
            state,
            metrics,
            audit,
            lifecycle,
        };
        warden.refresh_gauges();
        Ok(warden)
    }

    /// The metadata URL 401 challenges name (RFC 9728 §5.1): `[http] resource_metadata`
    /// if set, else the document this proxy serves for `[oauth] resource`.
    pub fn metadata_url(&self) -> Option<String> {
        self.config
            .raw
            .http
            .resource_metadata
            .clone()
            .or_else(|| self.resource_metadata.as_ref().map(|m| m.url.clone()))
    }

    /// Reload everything reloadable (policies, key files, the pin file). Each part keeps its last
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
        match self.catalogue.reload() {
            Ok(true) => tracing::info!("pin file reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!("pin file reload rejected, keeping the previous pins: {e}")
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
