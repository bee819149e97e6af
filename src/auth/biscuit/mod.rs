//! Biscuit authentication: `Authorization: Bearer <base64url Biscuit>` → [`Identity`].
//!
//! A bearer token without a `.` is a Biscuit (a JWT always has two), so the two are told
//! apart by shape, never by trying secrets. Verification, each step failing closed:
//! 1. decode (URL-safe base64, protobuf): failure is [`AuthError::Malformed`] (a
//!    truncated token lands here);
//! 2. pick the root key by the token's `root_key_id` (`[[auth.biscuit.keys]] id`); no
//!    such key is [`AuthError::UnknownKey`], so two roots can be valid during a rotation
//!    and a retired one stops working when it is removed from the configuration;
//! 3. verify the signature chain of every block: [`AuthError::BadSignature`] (a tampered
//!    or wrongly-signed token);
//! 4. refuse the token if any block's revocation id is on the revocation list
//!    ([`AuthError::Revoked`]);
//! 5. refuse it if a check that only reads `time` fails at the current time (the usual
//!    TTL check, in any block): [`AuthError::Expired`];
//! 6. read the identity from the authority block's facts (`user`, `agent`, `role`,
//!    `scope` and the configured claim facts; see [`BiscuitConfig`]).
//!
//! Steps 1–3 and 6 are cached: a bounded LRU keyed by the SHA-256 of the token text
//! holds verified tokens for `cache_ttl`, tagged with the root-key generation they were
//! verified under, so a long session does not re-verify signatures on every request and
//! a key reload invalidates them. Steps 4 and 5 run on every request (step 5 at most once
//! per second per cached token: its answer depends only on the whole second), and authorization
//! (the token's checks with the request's facts) always runs in the policy engine.
//! Failures are never cached.
//!
//! Every Datalog evaluation here runs under the configured run limits
//! ([`Authenticator::set_datalog_limits`](crate::auth::Authenticator::set_datalog_limits)).

pub mod keys;
pub mod tools;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use biscuit_auth::builder::{AuthorizerBuilder, Check, Fact, Term};
use biscuit_auth::error::{FailedCheck, Format, Logic, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::config::{BiscuitConfig, BiscuitKeyConfig};
use super::error::{AuthConfigError, AuthError};
use super::identity::{AuthMethod, Identity};
use super::keys::read_bounded;

/// Largest key or revocation file accepted.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The default run limits for every Datalog evaluation of a token: generous on time
/// (Biscuit's own default of 1 ms fails on a loaded machine), tight on facts and
/// iterations, which bound the work a hostile attenuation block can ask for.
pub fn default_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_millis(20),
    }
}

/// A verified Biscuit, as carried in [`Identity::biscuit`].
///
/// Compared by the SHA-256 of its text; `Debug` prints the revocation ids, never the
/// token.
pub struct BiscuitToken {
    biscuit: Biscuit,
    sha256: [u8; 32],
    revocation_ids: Vec<String>,
}

impl BiscuitToken {
    /// Wraps a token verified by the caller. `text` is the token as sent.
    pub fn new(biscuit: Biscuit, text: &str) -> Self {
        let revocation_ids = biscuit
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect();
        BiscuitToken {
            biscuit,
            sha256: Sha256::digest(text.as_bytes()).into(),
            revocation_ids,
        }
    }

    /// The verified token.
    pub fn biscuit(&self) -> &Biscuit {
        &self.biscuit
    }

    /// The revocation id of each block (lowercase hex), authority block first.
    pub fn revocation_ids(&self) -> &[String] {
        &self.revocation_ids
    }

    /// The token's `root_key_id`, if it has one.
    pub fn root_key_id(&self) -> Option<u32> {
        self.biscuit.root_key_id()
    }
}

impl fmt::Debug for BiscuitToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BiscuitToken")
            .field("root_key_id", &self.root_key_id())
            .field("revocation_ids", &self.revocation_ids)
            .finish_non_exhaustive()
    }
}

impl PartialEq for BiscuitToken {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256
    }
}

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
    identity: Identity,
    key_generation: u64,
    verified_at: Instant,
    /// 1 + the Unix second at which the expiry check last passed (0: not yet). Biscuit's
    /// `time` fact has whole seconds, so within that second the check would give the
    /// same answer: it is not run again.
    fresh_in_second: AtomicU64,
}

/// Which authority-block facts make up the identity.
#[derive(Clone)]
struct IdentityFacts {
    subject: String,
    agent: String,
    roles: String,
    scopes: String,
    claims: Vec<String>,
}

impl IdentityFacts {
    fn from_config(cfg: &BiscuitConfig) -> Self {
        IdentityFacts {
            subject: cfg.subject_fact.clone(),
            agent: cfg.agent_fact.clone(),
            roles: cfg.roles_fact.clone(),
            scopes: cfg.scopes_fact.clone(),
            claims: cfg.claim_facts.clone(),
        }
    }
}

/// The identity a verified token stands for, read as the proxy reads it (the fact names
/// of `cfg`), e.g. for policy tests.
pub fn identity_from_token(
    token: Arc<BiscuitToken>,
    cfg: &BiscuitConfig,
    limits: &AuthorizerLimits,
) -> Result<Identity, AuthError> {
    read_identity(&token, &IdentityFacts::from_config(cfg), limits)
}

/// Verifies bearer Biscuits (see the module docs).
pub(crate) struct BiscuitVerifier {
    sources: Vec<RootKeySource>,
    keys: ArcSwap<RootKeys>,
    revocation_file: Option<PathBuf>,
    revoked: ArcSwap<HashSet<String>>,
    cache: Option<Mutex<lru::LruCache<[u8; 32], Arc<Cached>>>>,
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
    pub(crate) fn from_config(
        cfg: &BiscuitConfig,
        base_dir: &Path,
    ) -> Result<Self, AuthConfigError> {
        let setting = |name: &str, reason: String| AuthConfigError::Setting {
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
    pub(crate) fn set_limits(&mut self, limits: AuthorizerLimits) {
        self.limits = limits;
    }

    /// Key files and the revocation file, for the watcher.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
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
    pub(crate) fn reload(&self) -> Result<(), AuthConfigError> {
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

    fn reload_revocations(&self) -> Result<(), AuthConfigError> {
        let Some(file) = &self.revocation_file else {
            return Ok(());
        };
        let text = read_bounded(file, MAX_FILE_BYTES)?;
        let text = String::from_utf8(text).map_err(|_| AuthConfigError::File {
            file: file.clone(),
            reason: "not UTF-8 text".to_owned(),
        })?;
        let set = parse_revocation_list(&text).map_err(|(line, reason)| AuthConfigError::File {
            file: file.clone(),
            reason: format!("line {line}: {reason}"),
        })?;
        self.revoked.store(Arc::new(set));
        Ok(())
    }

    /// Verifies a bearer Biscuit (see the module docs). No I/O.
    pub(crate) fn verify(&self, text: &str) -> Result<Identity, AuthError> {
        self.verify_at(text, SystemTime::now())
    }

    /// [`BiscuitVerifier::verify`] at a given time (for tests).
    pub(crate) fn verify_at(&self, text: &str, now: SystemTime) -> Result<Identity, AuthError> {
        let keys = self.keys.load();
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let cached = self.cache.as_ref().and_then(|cache| {
            let mut cache = cache.lock();
            let entry = cache.get(&digest)?.clone();
            if entry.key_generation != keys.generation
                || entry.verified_at.elapsed() > self.cache_ttl
            {
                cache.pop(&digest);
                return None;
            }
            Some(entry)
        });
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let entry = Arc::new(self.verify_uncached(text, &keys)?);
                if let Some(cache) = &self.cache {
                    cache.lock().put(digest, Arc::clone(&entry));
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
            return Err(AuthError::Revoked);
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

    fn verify_uncached(&self, text: &str, keys: &RootKeys) -> Result<Cached, AuthError> {
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

/// Reads the identity from the authority block: each query says `trusting authority`,
/// so facts added by attenuation (or third-party) blocks never count.
fn read_identity(
    token: &Arc<BiscuitToken>,
    names: &IdentityFacts,
    limits: &AuthorizerLimits,
) -> Result<Identity, AuthError> {
    let mut authorizer = AuthorizerBuilder::new()
        .set_limits(limits.clone())
        .build(token.biscuit())
        .map_err(evaluation_error)?;
    let mut values = |name: &str| -> Result<Vec<Term>, AuthError> {
        let facts: Vec<Fact> = authorizer
            .query_all(format!("value($v) <- {name}($v) trusting authority").as_str())
            .map_err(evaluation_error)?;
        let mut terms: Vec<Term> = facts
            .into_iter()
            .filter_map(|f| f.predicate.terms.into_iter().next())
            .collect();
        terms.sort();
        terms.dedup();
        Ok(terms)
    };
    let subjects = values(&names.subject)?;
    let subject = match subjects.as_slice() {
        [] => format!(
            "biscuit:{}",
            token
                .revocation_ids()
                .first()
                .map_or("", |id| &id[..id.len().min(16)])
        ),
        [one] => term_text(one),
        _ => return Err(AuthError::AmbiguousSubject),
    };
    let agent = values(&names.agent)?.first().map(term_text);
    let roles = values(&names.roles)?.iter().map(term_text).collect();
    let scopes = values(&names.scopes)?.iter().map(term_text).collect();
    let mut claims = Map::new();
    for name in &names.claims {
        let terms = values(name)?;
        let value = match terms.as_slice() {
            [] => continue,
            [one] => term_json(one),
            many => Value::Array(many.iter().map(term_json).collect()),
        };
        claims.insert(name.clone(), value);
    }
    Ok(Identity {
        subject,
        agent,
        roles,
        scopes,
        claims,
        method: AuthMethod::Biscuit,
        biscuit: Some(Arc::clone(token)),
    })
}

/// Maps a decoding or verification failure.
fn token_error(e: TokenError) -> AuthError {
    match e {
        TokenError::Format(Format::UnknownPublicKey) => AuthError::UnknownKey,
        // A signature made with another algorithm than the root key's does not even
        // parse as that algorithm's signature: still a bad signature.
        TokenError::Format(
            Format::Signature(_)
            | Format::SealedSignature
            | Format::InvalidSignatureSize(_)
            | Format::SignatureDeserializationError(_)
            | Format::BlockSignatureDeserializationError(_),
        ) => AuthError::BadSignature,
        _ => AuthError::Malformed,
    }
}

/// Maps a failure to evaluate a verified token's Datalog.
fn evaluation_error(e: TokenError) -> AuthError {
    match e {
        TokenError::RunLimit(_) => AuthError::RunLimit,
        _ => AuthError::Malformed,
    }
}

/// A term as identity text: strings as themselves, anything else as Datalog prints it.
fn term_text(term: &Term) -> String {
    match term {
        Term::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A term as a claim value.
fn term_json(term: &Term) -> Value {
    match term {
        Term::Str(s) => Value::String(s.clone()),
        Term::Integer(i) => Value::from(*i),
        Term::Bool(b) => Value::Bool(*b),
        other => Value::String(other.to_string()),
    }
}

/// Whether a check (as Datalog text) only reads `time` facts: the shape of a TTL, like
/// `check if time($time), $time <= 2030-01-01T00:00:00Z`.
pub(crate) fn is_time_only_check(rule: &str) -> bool {
    Check::try_from(rule).is_ok_and(|check| {
        !check.queries.is_empty()
            && check.queries.iter().all(|q| {
                !q.body.is_empty() && q.body.iter().all(|p| p.name == "time") && q.scopes.is_empty()
            })
    })
}

/// [`AuthError::Expired`] if a TTL check of the token fails at `now`. Other checks are
/// left to authorization, which runs them with the request's facts.
fn check_not_expired(
    biscuit: &Biscuit,
    now: SystemTime,
    limits: &AuthorizerLimits,
) -> Result<(), AuthError> {
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
            Err(AuthError::Expired)
        }
        // Anything else (other checks, limits) is for authorization to judge.
        _ => Ok(()),
    }
}

/// Parses a revocation list: one hex id per line, `#` comments, blank lines ignored.
/// Errors carry the 1-based line.
pub(crate) fn parse_revocation_list(text: &str) -> Result<HashSet<String>, (usize, String)> {
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
) -> Result<RootKeySource, AuthConfigError> {
    let setting = format!("auth.biscuit.keys[{index}]");
    let fail = |reason: String| AuthConfigError::Setting {
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

fn load_keys(sources: &[RootKeySource], generation: u64) -> Result<RootKeys, AuthConfigError> {
    let mut by_id = HashMap::with_capacity(sources.len());
    for source in sources {
        let (text, origin) = match &source.source {
            KeySource::Inline(text) => (text.clone(), source.setting.clone()),
            KeySource::File(file) => {
                let bytes = read_bounded(file, MAX_FILE_BYTES)?;
                let text = String::from_utf8(bytes).map_err(|_| AuthConfigError::File {
                    file: file.clone(),
                    reason: "not a text key file".to_owned(),
                })?;
                (text, file.display().to_string())
            }
        };
        let key = keys::parse_public_key(&text, source.algorithm).map_err(|reason| {
            AuthConfigError::Key {
                origin,
                key: source
                    .id
                    .map_or("(no id)".to_owned(), |i| format!("id {i}")),
                reason,
            }
        })?;
        by_id.insert(source.id, key);
    }
    Ok(RootKeys { generation, by_id })
}

#[cfg(test)]
mod tests;
