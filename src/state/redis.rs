//! The Redis backend: taint labels, revoked ids and rate-limit buckets shared by every
//! replica that names the same server and key prefix.
//!
//! The client is the `redis` crate's `ConnectionManager`: one multiplexed connection
//! per replica (commands from every request share it, pipelined), reconnected in the
//! background after an error. It runs on a small runtime of its own, so it keeps
//! working whatever Pingora's runtimes do, and every round trip is bounded by
//! `command_timeout`. Keys (see `docs/src/replicas.md` for sizes):
//!
//! - `<prefix>taint:s:<h>` / `<prefix>taint:c:<h>`: a set of labels for a session /
//!   credential, expiring `taint.ttl` after its last taint event;
//! - `<prefix>revoked:<h>`: a revoked token id (`1`), expiring when the revocation does;
//! - `<prefix>rl:<rule>:<h>`: a rate-limit bucket's TAT (ms), expiring when it refills;
//! - `<prefix>pin:<h>`: a definition `learn` pinning mode trusted on first sight (its
//!   digest and fields, JSON), by kind and name; it does not expire.
//!
//! `<h>` is the first 32 hex digits of the SHA-256 of the session id, credential key,
//! token id or bucket: bounded key sizes, and no token id readable in Redis.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, IntoConnectionInfo, RedisResult};
use sha2::{Digest, Sha256};

use super::config::{redact, StateConfig};
use super::gcra::{Outcome, LUA};
use super::rate::Spend;
use super::StateError;

/// `GET` the key, or `SET` it to the argument when absent (answering nil): the first
/// writer wins and every later one reads what it wrote.
const CLAIM_LUA: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1])
return false
";

/// The shared state in Redis.
pub struct RedisState {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    conn: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
    taint_ttl: Duration,
    script: Arc<redis::Script>,
    /// Set-if-absent-else-get, for learned pins.
    claim: Arc<redis::Script>,
    /// Taint labels seen or recorded here, by Redis key, until they expire.
    cache: Mutex<LruCache<String, (Vec<String>, Instant)>>,
    /// What `/readyz` and errors name.
    url: String,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisState {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The first 32 hex digits of the SHA-256 of `text`.
pub fn key_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

impl RedisState {
    /// Set up the client from `[state]` (relative files against `base_dir`). Connects
    /// lazily: a Redis that is down at start-up makes the proxy start unready, and it
    /// becomes ready when Redis answers.
    pub fn connect(
        cfg: &StateConfig,
        taint_ttl: Duration,
        base_dir: &Path,
    ) -> Result<RedisState, StateError> {
        let config_error = |reason: String| StateError::Config { reason };
        // Test builds compile a second rustls crypto provider in (through reqwest):
        // name pingora's (ring) so the client's TLS config never has to guess.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| config_error(format!("`{}`: {e}", redact(&cfg.url))))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &cfg.username {
            settings = settings.set_username(user);
        }
        if let Some(var) = &cfg.password_env {
            let password = std::env::var(var)
                .map_err(|_| config_error(format!("`password_env`: `{var}` is not set")))?;
            settings = settings.set_password(password);
        }
        if let Some(file) = &cfg.password_file {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| config_error(format!("`password_file` {}: {e}", path.display())))?;
            settings = settings.set_password(text.trim_end_matches(['\r', '\n']));
        }
        info = info.set_redis_settings(settings);

        let read = |file: &Path, what: &str| {
            let path = base_dir.join(file);
            std::fs::read(&path)
                .map_err(|e| config_error(format!("`{what}` {}: {e}", path.display())))
        };
        let client = if cfg.ca_file.is_some() || cfg.client_cert_file.is_some() {
            if !cfg.url.starts_with("rediss://") {
                return Err(config_error(
                    "`ca_file` and `client_cert_file` need a `rediss://` URL".to_owned(),
                ));
            }
            let root_cert = cfg
                .ca_file
                .as_deref()
                .map(|f| read(f, "ca_file"))
                .transpose()?;
            let client_tls = match (&cfg.client_cert_file, &cfg.client_key_file) {
                (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                    client_cert: read(cert, "client_cert_file")?,
                    client_key: read(key, "client_key_file")?,
                }),
                _ => None,
            };
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls,
                    root_cert,
                },
            )
        } else {
            Client::open(info)
        }
        .map_err(|e| config_error(format!("`{}`: {e}", redact(&cfg.url))))?;

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("state-redis")
            .enable_all()
            .build()
            .map_err(|e| config_error(format!("cannot start the Redis runtime: {e}")))?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.command_timeout))
            // Reconnect quickly and keep trying: every request that finds it down is
            // answered by `on_unavailable` at once, so retries cost no caller anything.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        let conn = {
            let _guard = rt.enter();
            ConnectionManager::new_lazy_with_config(client, manager_config)
                .map_err(|e| config_error(format!("`{}`: {e}", redact(&cfg.url))))?
        };
        let capacity =
            NonZeroUsize::new(cfg.local_cache_entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(RedisState {
            handle: rt.handle().clone(),
            rt: Some(rt),
            conn,
            prefix: cfg.key_prefix.clone(),
            command_timeout: cfg.command_timeout,
            taint_ttl,
            script: Arc::new(redis::Script::new(LUA)),
            claim: Arc::new(redis::Script::new(CLAIM_LUA)),
            cache: Mutex::new(LruCache::new(capacity)),
            url: redact(&cfg.url),
        })
    }

    /// The server, password removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The longest one round trip may take.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The runtime the client runs on.
    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    fn key(&self, kind: &str, text: &str) -> String {
        format!("{}{kind}:{}", self.prefix, key_hash(text))
    }

    /// The taint keys of a caller: session (if any) then credential.
    pub fn taint_keys(&self, session_id: Option<&str>, credential: &str) -> Vec<String> {
        let mut keys = Vec::with_capacity(2);
        if let Some(sid) = session_id {
            keys.push(self.key("taint:s", sid));
        }
        keys.push(self.key("taint:c", credential));
        keys
    }

    /// The key of a revoked id.
    pub fn revocation_key(&self, id: &str) -> String {
        self.key("revoked", id)
    }

    /// Run `f` on the client's runtime, within `command_timeout`.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let timeout = self.command_timeout;
        let fut = f(self.conn.clone());
        let task = self.handle.spawn(tokio::time::timeout(timeout, fut));
        match task.await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(StateError::Unavailable {
                reason: e.to_string(),
            }),
            Ok(Err(_)) => Err(StateError::Timeout { after: timeout }),
            Err(e) => Err(StateError::Unavailable {
                reason: format!("redis task failed: {e}"),
            }),
        }
    }

    /// One round trip: is any of `revocation_ids` revoked, and the taint labels under
    /// `taint_keys` (sorted, unique; with the local cache's).
    pub async fn read(
        &self,
        revocation_ids: &[String],
        taint_keys: &[String],
    ) -> Result<(bool, Vec<String>), StateError> {
        let revoked_keys: Vec<String> = revocation_ids
            .iter()
            .map(|id| self.revocation_key(id))
            .collect();
        let taint = taint_keys.to_vec();
        let (revoked, mut labels) = self
            .run(move |mut conn| async move {
                let mut pipe = redis::pipe();
                if !revoked_keys.is_empty() {
                    pipe.cmd("EXISTS").arg(&revoked_keys);
                }
                if !taint.is_empty() {
                    pipe.cmd("SUNION").arg(&taint);
                }
                let mut values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                let labels: Vec<String> = if taint.is_empty() {
                    Vec::new()
                } else {
                    redis::from_redis_value(values.pop().unwrap_or(redis::Value::Nil))?
                };
                let revoked: i64 = if revoked_keys.is_empty() {
                    0
                } else {
                    redis::from_redis_value(values.pop().unwrap_or(redis::Value::Nil))?
                };
                Ok((revoked > 0, labels))
            })
            .await?;
        labels.extend(self.cached(taint_keys));
        labels.sort();
        labels.dedup();
        Ok((revoked, labels))
    }

    /// The labels the local cache holds for `keys` (unexpired).
    pub fn cached(&self, keys: &[String]) -> Vec<String> {
        let mut cache = self.cache.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for key in keys {
            if let Some((labels, until)) = cache.get(key) {
                if *until > now {
                    out.extend(labels.iter().cloned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Remember `labels` for `keys` here (before writing them to Redis, so a failed
    /// write still leaves this replica refusing).
    pub fn remember(&self, keys: &[String], labels: &[String]) {
        let until = Instant::now() + self.taint_ttl;
        let mut cache = self.cache.lock();
        for key in keys {
            let merged = match cache.get(key) {
                Some((have, expires)) if *expires > Instant::now() => {
                    let mut all: Vec<String> = have.iter().chain(labels).cloned().collect();
                    all.sort();
                    all.dedup();
                    all
                }
                _ => labels.to_vec(),
            };
            cache.put(key.clone(), (merged, until));
        }
    }

    /// Add `labels` to each of `keys` and restart their TTL, in one transaction.
    pub async fn record_taint(&self, keys: &[String], labels: &[String]) -> Result<(), StateError> {
        self.remember(keys, labels);
        let write = self.taint_write(keys, labels);
        self.run(move |_| write).await
    }

    /// [`RedisState::record_taint`] for a caller that cannot await (Pingora's body
    /// filters): waits at most `command_timeout`, letting the runtime move other tasks
    /// off this thread meanwhile.
    pub fn record_taint_blocking(
        &self,
        keys: &[String],
        labels: &[String],
    ) -> Result<(), StateError> {
        self.remember(keys, labels);
        self.run_blocking(self.taint_write(keys, labels))
    }

    /// The key of a definition learned in `learn` pinning mode (`what` names its kind
    /// and name).
    pub fn learned_pin_key(&self, what: &str) -> String {
        self.key("pin", what)
    }

    /// Hold `value` under `key` unless a value is held there already; `None` when this
    /// call set it, else the value held. Atomic (one script run), so of several replicas
    /// that learn the same name at once exactly one wins. Never expires: a learned pin
    /// is trusted until the operator approves another in the pin file. Blocking, like
    /// [`RedisState::record_taint_blocking`] (it runs in the list filter).
    pub fn claim_blocking(&self, key: &str, value: &str) -> Result<Option<String>, StateError> {
        let mut conn = self.conn.clone();
        let script = Arc::clone(&self.claim);
        let key = key.to_owned();
        let value = value.to_owned();
        self.run_blocking(async move {
            script
                .key(&key)
                .arg(&value)
                .invoke_async::<Option<String>>(&mut conn)
                .await
        })
    }

    /// Run `fut` on the client's runtime and wait for it from synchronous code, at most
    /// `command_timeout`; on a multi-threaded runtime the wait lets other tasks move off
    /// this thread.
    fn run_blocking<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = RedisResult<T>> + Send + 'static,
    ) -> Result<T, StateError> {
        let timeout = self.command_timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, fut).await);
        });
        let wait = move || rx.recv_timeout(timeout + Duration::from_millis(50));
        let got = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        match got {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(StateError::Unavailable {
                reason: e.to_string(),
            }),
            Ok(Err(_)) | Err(_) => Err(StateError::Timeout { after: timeout }),
        }
    }

    fn taint_write(
        &self,
        keys: &[String],
        labels: &[String],
    ) -> impl std::future::Future<Output = RedisResult<()>> + Send + 'static {
        let mut conn = self.conn.clone();
        let keys = keys.to_vec();
        let labels = labels.to_vec();
        let ttl_ms = u64::try_from(self.taint_ttl.as_millis()).unwrap_or(u64::MAX);
        async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for key in &keys {
                pipe.cmd("SADD").arg(key).arg(&labels).ignore();
                pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        }
    }

    /// Forget a session's own taint (in the background; a failure leaves it to expire).
    pub fn forget_session(&self, session_id: &str) {
        let key = self.key("taint:s", session_id);
        self.cache.lock().pop(&key);
        let mut conn = self.conn.clone();
        let timeout = self.command_timeout;
        self.handle.spawn(async move {
            let _ = tokio::time::timeout(timeout, conn.del::<_, ()>(&key)).await;
        });
    }

    /// Revoke `id` for `ttl` (`None`: until deleted).
    pub async fn revoke(&self, id: &str, ttl: Option<Duration>) -> Result<(), StateError> {
        let key = self.revocation_key(id);
        self.run(move |mut conn| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(1);
            if let Some(ttl) = ttl {
                cmd.arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            }
            cmd.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Spend every bucket or none, atomically (one script run).
    pub async fn take(&self, spends: &[Spend]) -> Result<Vec<Outcome>, StateError> {
        let keys: Vec<String> = spends
            .iter()
            .map(|s| format!("{}rl:{}:{}", self.prefix, s.rule, key_hash(&s.bucket)))
            .collect();
        let args: Vec<u64> = spends
            .iter()
            .flat_map(|s| [s.limit.interval_ms, s.limit.burst, s.cost])
            .collect();
        let script = Arc::clone(&self.script);
        let flat: Vec<i64> = self
            .run(move |mut conn| async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                for arg in &args {
                    invocation.arg(*arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        if flat.len() != spends.len() * 3 {
            return Err(StateError::Unavailable {
                reason: format!("rate-limit script answered {} numbers", flat.len()),
            });
        }
        let number = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(flat
            .chunks(3)
            .map(|c| Outcome {
                allowed: c[0] == 1,
                retry_after_ms: number(c[1]),
                remaining: number(c[2]),
            })
            .collect())
    }

    /// A `PING` round trip.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.run(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        })
        .await
    }
}
