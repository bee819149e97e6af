//! Shared state: what several replicas behind one address must agree on — taint labels
//! by credential and session, revoked token ids, rate-limit buckets — in this process
//! (`[state] backend = "memory"`, the default) or in Redis (`"redis"`).
//!
//! Why: under MCP 2026-07-28 nothing pins a client to one replica, so a taint recorded
//! on replica A must refuse the sink call that arrives on replica B, a revoked token
//! must be refused everywhere from the next request on, and a limit of N per minute
//! must hold across replicas. [`SharedState`] is the one surface the proxy uses:
//!
//! - [`SharedState::check_caller`]: one round trip per request — is the token revoked
//!   (Biscuit revocation ids, JWT `jti`), and which taint labels the caller carries;
//! - [`SharedState::record_taint`] / [`SharedState::record_taint_blocking`]: written
//!   before a source call's answer is released;
//! - [`SharedState::spend`]: the `[[rate_limits]]` buckets a body spends (GCRA,
//!   [`gcra`]), all or none;
//! - [`SharedState::revoke`]: `mcp-warden token revoke ID`.
//!
//! When Redis is down or slower than `command_timeout`, each feature fails as
//! `[state.on_unavailable]` says (closed by default: [`StateRefusal::Unavailable`]);
//! nothing waits longer than the timeout, the client reconnects by itself, `/readyz`
//! reports it and `mcp_warden_state_unavailable_total{feature}` counts it. Nothing here
//! knows HTTP; the proxy maps a [`StateRefusal`] to its answer.

mod config;
pub mod gcra;
mod memory;
mod metrics;
mod pins;
mod rate;
mod redis;

use std::path::Path;
use std::time::Duration;

use crate::auth::{AuthMethod, Identity};
use crate::mcp::Classified;

pub use config::{check_rules, Backend, FailModes, OnUnavailable, RateLimitConfig, StateConfig};
pub use memory::{monotonic, Clock, MemoryState};
pub use metrics::StateMetrics;
pub use rate::{glob, RateRules, Spend};
pub use redis::{key_hash, RedisState};

/// Why shared state could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// `[state]` names something that cannot be used (URL, files, password).
    #[error("state: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
    /// Redis refused or the connection is down.
    #[error("redis unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// No answer within `command_timeout`.
    #[error("redis did not answer within {}", humantime::format_duration(*after))]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The operation needs a backend that other processes share.
    #[error("the memory backend is private to one process: set `[state] backend = \"redis\"`")]
    NotShared,
}

/// A feature that reads shared state (the `feature` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Taint labels.
    Taint,
    /// Revoked token ids.
    Revocation,
    /// Rate-limit buckets.
    RateLimits,
    /// Definitions `learn` pinning mode trusted on first sight ([`crate::pins::learned`]);
    /// always fails closed (the definition stays hidden until the store answers).
    LearnedPins,
}

impl Feature {
    /// Stable name for metrics, logs and the client's error.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Taint => "taint",
            Feature::Revocation => "revocation",
            Feature::RateLimits => "rate_limits",
            Feature::LearnedPins => "learned_pins",
        }
    }
}

/// Why shared state refuses a request; the proxy turns it into the client's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRefusal {
    /// One of the token's ids is revoked.
    Revoked,
    /// A `[[rate_limits]]` rule's bucket is empty.
    RateLimited {
        /// The rule.
        rule: String,
        /// When the same body would pass.
        retry_after: Duration,
    },
    /// The feature needs shared state it cannot read, and fails closed.
    Unavailable {
        /// The feature.
        feature: Feature,
        /// Why (for the log, never the client).
        reason: String,
    },
}

/// What [`SharedState::check_caller`] learned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerState {
    /// The caller's taint labels, sorted, unique.
    pub taints: Vec<String>,
}

/// The ids under which a caller's token may be revoked: every block's revocation id of
/// a Biscuit (lowercase hex; revoking an attenuated token's parent revokes the child),
/// a JWT's `jti` (when it is a string). API keys and anonymous callers have none.
pub fn revocation_ids(identity: &Identity) -> Vec<String> {
    match identity.method {
        AuthMethod::Biscuit => identity
            .biscuit
            .as_ref()
            .map(|b| {
                b.revocation_ids()
                    .iter()
                    .map(|id| id.to_ascii_lowercase_if_hex())
                    .collect()
            })
            .unwrap_or_default(),
        AuthMethod::Jwt => identity
            .claims
            .get("jti")
            .and_then(|v| v.as_str())
            .map(|jti| vec![jti.to_ascii_lowercase_if_hex()])
            .unwrap_or_default(),
        AuthMethod::ApiKey | AuthMethod::Anonymous | AuthMethod::Mtls => Vec::new(),
    }
}

enum Store {
    Memory(MemoryState),
    Redis(RedisState),
}

/// The shared state the proxy reads and writes; see the module docs.
pub struct SharedState {
    store: Store,
    modes: FailModes,
    rules: RateRules,
    metrics: StateMetrics,
}

impl SharedState {
    /// Build from `[state]`, `[[rate_limits]]` and the taint store's bounds.
    pub fn from_config(
        cfg: &StateConfig,
        rules: &[RateLimitConfig],
        taint_entries: usize,
        taint_ttl: Duration,
        base_dir: &Path,
    ) -> Result<SharedState, StateError> {
        let store = match cfg.backend {
            Backend::Memory => Store::Memory(MemoryState::new(
                taint_entries,
                taint_ttl,
                cfg.memory_max_keys,
                monotonic(),
            )),
            Backend::Redis => Store::Redis(RedisState::connect(cfg, taint_ttl, base_dir)?),
        };
        Ok(SharedState {
            store,
            modes: cfg.on_unavailable,
            rules: RateRules::new(rules),
            metrics: StateMetrics::global(),
        })
    }

    /// A memory backend with an injected clock (tests).
    pub fn memory(state: MemoryState, rules: &[RateLimitConfig]) -> SharedState {
        SharedState {
            store: Store::Memory(state),
            modes: FailModes::default(),
            rules: RateRules::new(rules),
            metrics: StateMetrics::global(),
        }
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self.store {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Any rate-limit rule configured?
    pub fn has_rate_limits(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Must the proxy refuse requests while the backend is unreachable (some feature
    /// fails closed)? Never for the memory backend.
    pub fn required(&self) -> bool {
        matches!(self.store, Store::Redis(_))
            && [
                self.modes.taint,
                self.modes.revocation,
                self.modes.rate_limits,
            ]
            .contains(&OnUnavailable::Deny)
    }

    /// Revocation and taint for one request, in one round trip. `taint` is the
    /// caller's session (if any) and credential key, `None` when no taint source is
    /// configured (nothing to read).
    pub async fn check_caller(
        &self,
        identity: &Identity,
        taint: Option<(Option<&str>, &str)>,
    ) -> Result<CallerState, StateRefusal> {
        let ids = revocation_ids(identity);
        match &self.store {
            Store::Memory(m) => {
                if m.any_revoked(&ids) {
                    return Err(StateRefusal::Revoked);
                }
                let taints = taint
                    .map(|(sid, cred)| m.taints.labels(sid, cred))
                    .unwrap_or_default();
                Ok(CallerState { taints })
            }
            Store::Redis(r) => {
                let keys = taint
                    .map(|(sid, cred)| r.taint_keys(sid, cred))
                    .unwrap_or_default();
                if ids.is_empty() && keys.is_empty() {
                    return Ok(CallerState::default());
                }
                let started = std::time::Instant::now();
                let read = r.read(&ids, &keys).await;
                self.metrics.observe(started.elapsed(), read.is_ok());
                match read {
                    Ok((true, _)) => Err(StateRefusal::Revoked),
                    Ok((false, taints)) => Ok(CallerState { taints }),
                    Err(e) => {
                        let reason = e.to_string();
                        if !ids.is_empty() {
                            self.unavailable(Feature::Revocation, &reason)?;
                        }
                        let taints = if keys.is_empty() {
                            Vec::new()
                        } else {
                            self.unavailable(Feature::Taint, &reason)?;
                            r.cached(&keys)
                        };
                        Ok(CallerState { taints })
                    }
                }
            }
        }
    }

    /// Count the unavailability of `feature`; `Err` when it fails closed.
    fn unavailable(&self, feature: Feature, reason: &str) -> Result<(), StateRefusal> {
        self.metrics.unavailable(feature);
        let mode = match feature {
            Feature::Taint => self.modes.taint,
            Feature::Revocation => self.modes.revocation,
            Feature::RateLimits => self.modes.rate_limits,
            Feature::LearnedPins => OnUnavailable::Deny,
        };
        match mode {
            OnUnavailable::Deny => {
                tracing::warn!(
                    feature = feature.as_str(),
                    reason,
                    "shared state unavailable: refusing"
                );
                Err(StateRefusal::Unavailable {
                    feature,
                    reason: reason.to_owned(),
                })
            }
            OnUnavailable::Allow => {
                tracing::warn!(
                    feature = feature.as_str(),
                    reason,
                    "shared state unavailable: deciding without it (on_unavailable = allow)"
                );
                Ok(())
            }
        }
    }

    /// Spend the rate-limit buckets `messages` of `identity` match, all or none.
    pub async fn spend(
        &self,
        identity: &Identity,
        messages: &[Classified],
    ) -> Result<(), StateRefusal> {
        self.take(&self.spends(identity, messages)).await
    }

    /// The buckets `messages` of `identity` would spend (no I/O): computed while the
    /// body is decided, spent with [`SharedState::take`] once it is allowed.
    pub fn spends(&self, identity: &Identity, messages: &[Classified]) -> Vec<Spend> {
        self.rules.spends(identity, messages)
    }

    /// Spend `spends`, all or none (see [`SharedState::spend`]).
    pub async fn take(&self, spends: &[Spend]) -> Result<(), StateRefusal> {
        if spends.is_empty() {
            return Ok(());
        }
        let outcomes = match &self.store {
            Store::Memory(m) => m.take(spends),
            Store::Redis(r) => {
                let started = std::time::Instant::now();
                let taken = r.take(spends).await;
                self.metrics.observe(started.elapsed(), taken.is_ok());
                match taken {
                    Ok(outcomes) => outcomes,
                    Err(e) => return self.unavailable(Feature::RateLimits, &e.to_string()),
                }
            }
        };
        let refused = spends
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| !o.allowed)
            .max_by_key(|(_, o)| o.retry_after_ms);
        match refused {
            None => Ok(()),
            Some((spend, outcome)) => {
                self.metrics.rate_limited(&spend.rule);
                Err(StateRefusal::RateLimited {
                    rule: spend.rule.clone(),
                    retry_after: Duration::from_millis(outcome.retry_after_ms),
                })
            }
        }
    }

    /// Record taint `labels` for the session (if any) and credential. Returns how many
    /// entries the memory store evicted to make room. With Redis, the labels are kept
    /// locally first, so this replica refuses even if the write fails.
    pub async fn record_taint(
        &self,
        session_id: Option<&str>,
        credential: &str,
        labels: &[String],
    ) -> Result<usize, StateError> {
        match &self.store {
            Store::Memory(m) => Ok(m.taints.record(session_id, credential, labels)),
            Store::Redis(r) => {
                let keys = r.taint_keys(session_id, credential);
                r.record_taint(&keys, labels).await.map(|()| 0)
            }
        }
    }

    /// [`SharedState::record_taint`] from code that cannot await (Pingora's body
    /// filters); waits at most `command_timeout` for Redis.
    pub fn record_taint_blocking(
        &self,
        session_id: Option<&str>,
        credential: &str,
        labels: &[String],
    ) -> Result<usize, StateError> {
        match &self.store {
            Store::Memory(m) => Ok(m.taints.record(session_id, credential, labels)),
            Store::Redis(r) => {
                let keys = r.taint_keys(session_id, credential);
                let started = std::time::Instant::now();
                let written = r.record_taint_blocking(&keys, labels);
                self.metrics.observe(started.elapsed(), written.is_ok());
                written.map(|()| 0)
            }
        }
    }

    /// Does a failed taint write refuse the answer (`[state.on_unavailable] taint`)?
    pub fn taint_fails_closed(&self) -> bool {
        self.modes.taint == OnUnavailable::Deny
    }

    /// Count (and log) a failed taint write.
    pub fn taint_write_failed(&self, error: &StateError) {
        self.metrics.unavailable(Feature::Taint);
        tracing::warn!(error = %error, "taint not written to shared state");
    }

    /// Forget a session's own taint.
    pub fn forget_session(&self, session_id: &str) {
        match &self.store {
            Store::Memory(m) => m.taints.forget_session(session_id),
            Store::Redis(r) => r.forget_session(session_id),
        }
    }

    /// Revoke a token id for `ttl` (`None`: until removed). Only a shared backend can
    /// tell other processes.
    pub async fn revoke(&self, id: &str, ttl: Option<Duration>) -> Result<(), StateError> {
        match &self.store {
            Store::Memory(_) => Err(StateError::NotShared),
            Store::Redis(r) => r.revoke(&id.to_ascii_lowercase_if_hex(), ttl).await,
        }
    }

    /// Revoke in this process's memory backend (tests, embedded use).
    pub fn revoke_local(&self, id: &str, ttl: Option<Duration>) {
        if let Store::Memory(m) = &self.store {
            m.revoke(&id.to_ascii_lowercase_if_hex(), ttl);
        }
    }

    /// Can the backend be used now? (A `PING` within `command_timeout` for Redis.)
    pub async fn reachable(&self) -> bool {
        let ok = match &self.store {
            Store::Memory(_) => true,
            Store::Redis(r) => r.ping().await.is_ok(),
        };
        self.metrics.set_up(ok);
        ok
    }

    /// Run `future` to completion from synchronous code (the CLI), on the backend's
    /// own runtime when it has one.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> Option<F::Output> {
        match &self.store {
            Store::Memory(_) => None,
            Store::Redis(r) => Some(r.handle().block_on(future)),
        }
    }
}

/// Ids that look like hex (Biscuit revocation ids) are compared in lowercase, whoever
/// wrote them; others (most JWT `jti`s) as given. Both sides of the comparison use this,
/// so a `jti` that happens to be hex is revoked whatever its case.
trait LowercaseHex {
    fn to_ascii_lowercase_if_hex(&self) -> String;
}

impl LowercaseHex for str {
    fn to_ascii_lowercase_if_hex(&self) -> String {
        if !self.is_empty()
            && self.len().is_multiple_of(2)
            && self.bytes().all(|b| b.is_ascii_hexdigit())
        {
            self.to_ascii_lowercase()
        } else {
            self.to_owned()
        }
    }
}

#[cfg(test)]
mod tests;
