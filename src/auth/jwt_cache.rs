//! A bounded cache of verified JWTs, so a session pays the signature check once.
//!
//! Why: an RS256 or ES256 signature check costs 200–350 µs, and a client sends the same
//! bearer token on every request of a session. The cache maps a SHA-256 digest of the
//! whole token (header, claims and signature: a tampered token has another digest, so
//! it is never served from here) to the identity its verification produced.
//!
//! What keeps an entry honest:
//! - `exp` and `nbf` are checked again on every hit, with the same leeway as the
//!   verifier and the cache's own clock (injectable, [`VerifiedCache::with_clock`]);
//!   an expired entry is dropped and the request refused as expired;
//! - a key reload (key files, the JWKS file) starts a new key generation: entries
//!   verified under an older one are never served, including an entry a verification
//!   that started before the reload stores after it;
//! - the cache is bounded (least recently used out); `auth.jwt.cache_size = 0` turns it
//!   off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lru::LruCache;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::AuthError;
use super::identity::Identity;

/// Seconds since the Unix epoch, as the cache sees them.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The default cache bound, in tokens.
pub const DEFAULT_CACHE_SIZE: usize = 4096;

/// The digest a token is remembered by.
pub(crate) type TokenDigest = [u8; 32];

/// Verified tokens by digest.
pub(crate) struct VerifiedCache {
    entries: Option<Mutex<LruCache<TokenDigest, Entry>>>,
    generation: AtomicU64,
    leeway: u64,
    clock: Clock,
}

struct Entry {
    generation: u64,
    exp: u64,
    nbf: Option<u64>,
    /// Shared with every request it answers: a hit copies no claim.
    identity: Arc<Identity>,
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl VerifiedCache {
    /// A cache of at most `size` tokens (`0`: no cache), checking `exp`/`nbf` with
    /// `leeway` seconds against the system clock.
    pub(crate) fn new(size: usize, leeway: u64) -> Self {
        VerifiedCache {
            entries: std::num::NonZeroUsize::new(size).map(|n| Mutex::new(LruCache::new(n))),
            generation: AtomicU64::new(0),
            leeway,
            clock: Arc::new(system_clock),
        }
    }

    /// The same cache reading time from `clock`.
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The digest of `token`.
    pub(crate) fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The key generation in force; pass it to [`VerifiedCache::insert`] for a
    /// verification that starts now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keys were reloaded: nothing verified before is served again.
    pub(crate) fn keys_reloaded(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.lock().clear();
        }
    }

    /// The identity of a token verified before, if cached and still valid now; an
    /// expired (or not yet valid) one is the refusal the verifier would give.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Result<Arc<Identity>, AuthError>> {
        let entries = self.entries.as_ref()?;
        let generation = self.generation();
        let now = (self.clock)();
        let mut entries = entries.lock();
        let entry = entries.get(digest)?;
        if entry.generation != generation {
            entries.pop(digest);
            return None;
        }
        if entry.exp < now.saturating_sub(self.leeway) {
            entries.pop(digest);
            return Some(Err(AuthError::Expired));
        }
        if entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Some(Err(AuthError::NotYetValid));
        }
        Some(Ok(entry.identity.clone()))
    }

    /// Remember a token verified under key generation `generation`. Tokens whose `exp`
    /// (or `nbf`) is not an integer the cache can check are not remembered.
    pub(crate) fn insert(&self, digest: TokenDigest, generation: u64, identity: &Arc<Identity>) {
        let Some(entries) = &self.entries else {
            return;
        };
        let Some(exp) = identity.claims.get("exp").and_then(Value::as_u64) else {
            return;
        };
        let nbf = match identity.claims.get("nbf") {
            None => None,
            Some(nbf) => match nbf.as_u64() {
                Some(nbf) => Some(nbf),
                None => return,
            },
        };
        let mut entries = entries.lock();
        if generation != self.generation() {
            return;
        }
        entries.put(
            digest,
            Entry {
                generation,
                exp,
                nbf,
                identity: identity.clone(),
            },
        );
    }

    /// How many tokens are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.lock().len())
    }
}
