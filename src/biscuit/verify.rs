//! Verifying a bearer Biscuit: root keys and their rotation, the revocation list,
//! expiry, and the verified-token cache. The result is a [`TokenIdentity`] or a
//! [`VerifyError`]; the authenticator maps both to its own types.
//!
//! Verification, each step failing closed:
//! 1. decode (URL-safe base64, protobuf): failure is [`VerifyError::Malformed`] (a
//!    truncated token lands here);
//! 2. pick the root key by the token's `root_key_id` (`[[auth.biscuit.keys]] id`); no
//!    such key is [`VerifyError::UnknownKey`], so two roots can be valid during a
//!    rotation and a retired one stops working when it is removed from the configuration;
//! 3. verify the signature chain of every block: [`VerifyError::BadSignature`] (a
//!    tampered or wrongly-signed token);
//! 4. refuse the token if any block's revocation id is on the revocation list
//!    ([`VerifyError::Revoked`]);
//! 5. refuse it if a check that only reads `time` fails at the current time (the usual
//!    TTL check, in any block): [`VerifyError::Expired`];
//! 6. read the identity from the authority block's facts (`user`, `agent`, `role`,
//!    `scope` and the configured claim facts; see [`BiscuitConfig`]).
//!
//! Steps 1–3 and 6 are cached: a bounded LRU keyed by the token text itself (found by a
//! fast hash of the text, then compared whole, so two tokens never share an entry) holds
//! verified tokens for `cache_ttl`, tagged with the root-key generation they were
//! verified under, so a long session does not re-verify signatures on every request and
//! a key reload invalidates them. Steps 4 and 5 run on every request (step 5 at most once
//! per second per cached token: its answer depends only on the whole second), and
//! authorization (the token's checks with the request's facts) always runs in the policy
//! engine. Failures are never cached.
//!
//! Every Datalog evaluation here runs under the run limits given to
//! [`BiscuitVerifier::set_limits`] (`[policy.biscuit.limits]`, the same value the policy
//! engine uses).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use biscuit_auth::builder::{AuthorizerBuilder, Check, Fact};
use biscuit_auth::error::{FailedCheck, Format, Logic, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};
use parking_lot::Mutex;

use super::config::{default_limits, BiscuitConfig, BiscuitKeyConfig};
use super::error::{ConfigError, VerifyError};
use super::identity::{read_identity, IdentityFacts, TokenIdentity};
use super::keys;
use super::token::BiscuitToken;

/// Largest key or revocation file accepted.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Where a root key comes from.
#[derive(Clone)]
enum KeySource {
    Inline(String),
    File(PathBuf),
}

/// A configured root key, checked for shape.
#[derive(Clone)]
struct RootKeySource {
    setting: String,
    id: Option<u32>,
    algorithm: Option<biscuit_auth::builder::Algorithm>,
    source: KeySource,
}

/// One loaded generation of root keys.
struct RootKeys {
    generation: u64,
    by_id: HashMap<Option<u32>, PublicKey>,
}

/// A cached verification.
struct Cached {
    token: Arc<BiscuitToken>,
    identity: TokenIdentity,
    key_generation: u64,
    verified_at: Instant,
    /// 1 + the Unix second at which the expiry check last passed (0: not yet). Biscuit's
    /// `time` fact has whole seconds, so within that second the check would give the
    /// same answer: it is not run again.
    fresh_in_second: AtomicU64,
}

/// Verified tokens by their text. The key is the whole text: the map finds an entry by a
/// fast (seeded) hash of it and then compares the text byte for byte, so a token whose
/// hash collides with another's cannot be served the other's entry. Only verified tokens
/// are put in, and the map is bounded.
type TokenCache<S = lru::DefaultHasher> = lru::LruCache<Box<str>, Arc<Cached>, S>;

/// The entry of `text` if it is still good: verified under key generation `generation`
/// and not older than `ttl`; a stale entry is dropped.
fn cached_entry<S: BuildHasher>(
    cache: &mut TokenCache<S>,
    text: &str,
    generation: u64,
    ttl: Duration,
) -> Option<Arc<Cached>> {
    let entry = cache.get(text)?;
    if entry.key_generation != generation || entry.verified_at.elapsed() > ttl {
        cache.pop(text);
        return None;
    }
    Some(Arc::clone(entry))
}

/// Verifies bearer Biscuits (see the module docs).
pub struct BiscuitVerifier {
    sources: Vec<RootKeySource>,
    keys: ArcSwap<RootKeys>,
    revocation_file: Option<PathBuf>,
    revoked: ArcSwap<HashSet<String>>,
    cache: Option<Mutex<TokenCache>>,
    cache_ttl: Duration,
    facts: IdentityFacts,
    limits: AuthorizerLimits,
}

/// A Datalog predicate name as the configuration may give it.
fn is_predicate_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl BiscuitVerifier {
    /// Checks the `[auth.biscuit]` section and loads the keys and the revocation list.
    pub fn from_config(cfg: &BiscuitConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let setting = |name: &str, reason: String| ConfigError::Setting {
            setting: format!("auth.biscuit.{name}"),
            reason,
        };
        if cfg.keys.is_empty() {
            return Err(setting(
                "keys",
                "no root keys\nhelp: add `[[auth.biscuit.keys]]` with the public key printed by `mcp-warden keygen`"
                    .to_owned(),
            ));
        }
        let mut sources = Vec::with_capacity(cfg.keys.len());
        let mut ids = HashSet::new();
        for (index, key) in cfg.keys.iter().enumerate() {
            let source = root_key_source(index, key, base_dir)?;
            if !ids.insert(source.id) {
                let id = source.id.map_or("(none)".to_owned(), |i| i.to_string());
                return Err(setting(
                    &format!("keys[{index}].id"),
                    format!("id {id} is used by another key"),
                ));
            }
            sources.push(source);
        }
        for (name, value) in [
            ("subject_fact", &cfg.subject_fact),
            ("agent_fact", &cfg.agent_fact),
            ("roles_fact", &cfg.roles_fact),
            ("scopes_fact", &cfg.scopes_fact),
        ]
        .into_iter()
        .chain(cfg.claim_facts.iter().map(|c| ("claim_facts", c)))
        {
            if !is_predicate_name(value) {
                return Err(setting(name, format!("`{value}` is not a fact name")));
            }
        }
        let cache = NonZeroUsize::new(cfg.cache_size).map(|n| Mutex::new(lru::LruCache::new(n)));
        let verifier = BiscuitVerifier {
            keys: ArcSwap::from_pointee(load_keys(&sources, 1)?),
            sources,
            revocation_file: cfg.revocation_file.as_ref().map(|p| base_dir.join(p)),
            revoked: ArcSwap::from_pointee(HashSet::new()),
            cache,
            cache_ttl: cfg.cache_ttl,
            facts: IdentityFacts::from_config(cfg),
            limits: default_limits(),
        };
        verifier.reload_revocations()?;
        Ok(verifier)
    }

    /// Sets the run limits of every Datalog evaluation of a token.
    pub fn set_limits(&mut self, limits: AuthorizerLimits) {
        self.limits = limits;
    }

    /// Key files and the revocation file, for the watcher.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .sources
            .iter()
            .filter_map(|s| match &s.source {
                KeySource::File(p) => Some(p.clone()),
                KeySource::Inline(_) => None,
            })
            .collect();
        files.extend(self.revocation_file.iter().cloned());
        files.sort();
        files.dedup();
        files
    }

    /// Re-reads key files and the revocation list. Each part keeps its previous state on
    /// error. A new key generation invalidates the verified-token cache.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let revocations = self.reload_revocations();
        let next = self.keys.load().generation + 1;
        let keys = load_keys(&self.sources, next).map(|keys| self.keys.store(Arc::new(keys)));
        if let Some(cache) = &self.cache {
            if keys.is_ok() {
                cache.lock().clear();
            }
        }
        revocations.and(keys)
    }

    fn reload_revocations(&self) -> Result<(), ConfigError> {
        let Some(file) = &self.revocation_file else {
            return Ok(());
        };
        let text = read_bounded(file, MAX_FILE_BYTES).map_err(|e| {
            named_by(e, "auth.biscuit.revocation_file", || {
                "create it: one revoked revocation id (hex) per line, `#` comments; it may \
                 be empty"
                    .to_owned()
            })
        })?;
        let text = String::from_utf8(text).map_err(|_| ConfigError::File {
            file: file.clone(),
            reason: "not UTF-8 text".to_owned(),
        })?;
        let set = parse_revocation_list(&text).map_err(|(line, reason)| ConfigError::File {
            file: file.clone(),
            reason: format!("line {line}: {reason}"),
        })?;
        self.revoked.store(Arc::new(set));
        Ok(())
    }

    /// Verifies a bearer Biscuit (see the module docs). No I/O.
    pub fn verify(&self, text: &str) -> Result<TokenIdentity, VerifyError> {
        self.verify_at(text, SystemTime::now())
    }

    /// [`BiscuitVerifier::verify`] at a given time (for tests).
    pub fn verify_at(&self, text: &str, now: SystemTime) -> Result<TokenIdentity, VerifyError> {
        let keys = self.keys.load();
        let cached = self.cache.as_ref().and_then(|cache| {
            cached_entry(&mut cache.lock(), text, keys.generation, self.cache_ttl)
        });
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let entry = Arc::new(self.verify_uncached(text, &keys)?);
                if let Some(cache) = &self.cache {
                    cache.lock().put(text.into(), Arc::clone(&entry));
                }
                entry
            }
        };
        let revoked = self.revoked.load();
        if entry
            .token
            .revocation_ids()
            .iter()
            .any(|id| revoked.contains(id))
        {
            return Err(VerifyError::Revoked);
        }
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().saturating_add(1));
        if entry.fresh_in_second.load(Ordering::Relaxed) != second {
            check_not_expired(entry.token.biscuit(), now, &self.limits)?;
            entry.fresh_in_second.store(second, Ordering::Relaxed);
        }
        Ok(entry.identity.clone())
    }

    fn verify_uncached(&self, text: &str, keys: &RootKeys) -> Result<Cached, VerifyError> {
        let biscuit = Biscuit::from_base64(text, |id: Option<u32>| {
            keys.by_id.get(&id).copied().ok_or(Format::UnknownPublicKey)
        })
        .map_err(|e| {
            tracing::debug!(error = ?e, "biscuit refused");
            token_error(e)
        })?;
        let token = Arc::new(BiscuitToken::new(biscuit, text));
        let identity = read_identity(&token, &self.facts, &self.limits)?;
        Ok(Cached {
            token,
            identity,
            key_generation: keys.generation,
            verified_at: Instant::now(),
            fresh_in_second: AtomicU64::new(0),
        })
    }
}

/// Maps a decoding or verification failure.
fn token_error(e: TokenError) -> VerifyError {
    match e {
        TokenError::Format(Format::UnknownPublicKey) => VerifyError::UnknownKey,
        // A signature made with another algorithm than the root key's does not even
        // parse as that algorithm's signature: still a bad signature.
        TokenError::Format(
            Format::Signature(_)
            | Format::SealedSignature
            | Format::InvalidSignatureSize(_)
            | Format::SignatureDeserializationError(_)
            | Format::BlockSignatureDeserializationError(_),
        ) => VerifyError::BadSignature,
        _ => VerifyError::Malformed,
    }
}

/// Whether a check (as Datalog text) only reads `time` facts: the shape of a TTL, like
/// `check if time($time), $time <= 2030-01-01T00:00:00Z`.
pub fn is_time_only_check(rule: &str) -> bool {
    Check::try_from(rule).is_ok_and(|check| {
        !check.queries.is_empty()
            && check.queries.iter().all(|q| {
                !q.body.is_empty() && q.body.iter().all(|p| p.name == "time") && q.scopes.is_empty()
            })
    })
}

/// [`VerifyError::Expired`] if a TTL check of the token fails at `now`. Other checks are
/// left to authorization, which runs them with the request's facts.
fn check_not_expired(
    biscuit: &Biscuit,
    now: SystemTime,
    limits: &AuthorizerLimits,
) -> Result<(), VerifyError> {
    let result = AuthorizerBuilder::new()
        .fact(Fact::new(
            "time".to_owned(),
            vec![biscuit_auth::builder::date(&now)],
        ))
        .and_then(|b| b.policy("allow if true"))
        .map(|b| b.set_limits(limits.clone()))
        .and_then(|b| b.build(biscuit))
        .and_then(|mut a| a.authorize());
    match result {
        Err(TokenError::FailedLogic(
            Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks },
        )) if checks.iter().any(|c| match c {
            FailedCheck::Block(b) => is_time_only_check(&b.rule),
            FailedCheck::Authorizer(_) => false,
        }) =>
        {
            Err(VerifyError::Expired)
        }
        // Anything else (other checks, limits) is for authorization to judge.
        _ => Ok(()),
    }
}

/// Parses a revocation list: one hex id per line, `#` comments, blank lines ignored.
/// Errors carry the 1-based line.
pub fn parse_revocation_list(text: &str) -> Result<HashSet<String>, (usize, String)> {
    let mut set = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.len() % 2 != 0 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err((index + 1, format!("`{line}` is not a hex revocation id")));
        }
        set.insert(line.to_ascii_lowercase());
    }
    Ok(set)
}

fn root_key_source(
    index: usize,
    key: &BiscuitKeyConfig,
    base_dir: &Path,
) -> Result<RootKeySource, ConfigError> {
    let setting = format!("auth.biscuit.keys[{index}]");
    let fail = |reason: String| ConfigError::Setting {
        setting: setting.clone(),
        reason,
    };
    let algorithm = key
        .algorithm
        .as_deref()
        .map(keys::parse_algorithm)
        .transpose()
        .map_err(fail)?;
    let source = match (&key.public_key, &key.public_key_file) {
        (Some(text), None) => KeySource::Inline(text.clone()),
        (None, Some(file)) => KeySource::File(base_dir.join(file)),
        _ => {
            return Err(fail(
                "give exactly one of `public_key` and `public_key_file`".to_owned(),
            ))
        }
    };
    Ok(RootKeySource {
        setting,
        id: key.id,
        algorithm,
        source,
    })
}

fn load_keys(sources: &[RootKeySource], generation: u64) -> Result<RootKeys, ConfigError> {
    let mut by_id = HashMap::with_capacity(sources.len());
    for source in sources {
        let (text, origin) = match &source.source {
            KeySource::Inline(text) => (text.clone(), source.setting.clone()),
            KeySource::File(file) => {
                let bytes = read_bounded(file, MAX_FILE_BYTES).map_err(|e| {
                    named_by(e, &format!("{}.public_key_file", source.setting), || {
                        keygen_help(file)
                    })
                })?;
                let text = String::from_utf8(bytes).map_err(|_| ConfigError::File {
                    file: file.clone(),
                    reason: "not a text key file".to_owned(),
                })?;
                (text, file.display().to_string())
            }
        };
        let key =
            keys::parse_public_key(&text, source.algorithm).map_err(|reason| ConfigError::Key {
                origin,
                key: source
                    .id
                    .map_or("(no id)".to_owned(), |i| format!("id {i}")),
                reason,
            })?;
        by_id.insert(source.id, key);
    }
    Ok(RootKeys { generation, by_id })
}

/// A file that does not exist, told as the setting that names it and how to make it;
/// any other error as it is.
fn named_by(e: ConfigError, setting: &str, help: impl FnOnce() -> String) -> ConfigError {
    match e {
        ConfigError::Read { file, source } if source.kind() == std::io::ErrorKind::NotFound => {
            ConfigError::MissingFile {
                setting: setting.to_owned(),
                file,
                source,
                help: help(),
            }
        }
        other => other,
    }
}

/// How to make a missing root public key file: `keygen` writes `<prefix>.public`.
fn keygen_help(file: &Path) -> String {
    let text = file.display().to_string();
    let prefix = text.strip_suffix(".public").unwrap_or(&text);
    format!(
        "make a root key pair with `mcp-warden keygen --out {prefix}` (it writes \
         `{prefix}.private` and `{prefix}.public`); the demo configurations' keys are made \
         by `mcp-warden demo`"
    )
}

/// Reads at most `max` bytes of `file`; a larger file is an error, so a mistaken path
/// (a log, a device) cannot exhaust memory.
fn read_bounded(file: &Path, max: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        file: file.to_owned(),
        source,
    };
    let handle = std::fs::File::open(file).map_err(read_err)?;
    let mut bytes = Vec::new();
    handle
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > max {
        return Err(ConfigError::File {
            file: file.to_owned(),
            reason: format!("larger than {max} bytes"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
