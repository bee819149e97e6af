//! The loaded authorizers of one engine generation, per caller token and mode.
//!
//! A session sends many messages with one token; the program and the token do not
//! change between them, so their loaded state ([`Loaded`]) is made once and each decision
//! clones it and adds the request's facts. The cache belongs to the engine, and a policy
//! reload builds a new engine: nothing loaded under an old program is ever reused.
//! Revocation is checked at authentication, before any engine sees the token, and the
//! token's own checks (expiry included) run on every decision with the request's `time`.
//!
//! Entries are found by the SHA-256 of the token's text and then compared whole: the
//! same verified token (the authenticator's cache hands out one `Arc` per token), or else
//! the same serialized bytes. At most [`TOKENS`] tokens are kept, least recently used
//! first out; callers without a token share one state per mode.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::Mutex;

use super::loaded::Loaded;
use super::Mode;
use crate::biscuit::BiscuitToken;

/// Tokens kept per engine (each with up to one state per mode, a few KiB each).
pub(crate) const TOKENS: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");

/// What loading gave: the state, or `None` when the per-request authorizer must decide
/// (a third-party block, or an error the per-request authorizer reports itself).
pub(crate) type Slot = Option<Arc<Loaded>>;

struct Entry {
    token: Arc<BiscuitToken>,
    modes: [Option<Slot>; Mode::COUNT],
}

/// See the module docs.
pub(crate) struct LoadedCache {
    tokenless: [OnceLock<Slot>; Mode::COUNT],
    tokens: Mutex<LruCache<[u8; 32], Entry>>,
}

/// Is `cached` the token `token` (see the module docs)?
fn same(cached: &Arc<BiscuitToken>, token: &Arc<BiscuitToken>) -> bool {
    Arc::ptr_eq(cached, token)
        || matches!(
            (cached.biscuit().to_vec(), token.biscuit().to_vec()),
            (Ok(a), Ok(b)) if a == b
        )
}

impl LoadedCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        LoadedCache {
            tokenless: Default::default(),
            tokens: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The state for `token` in `mode`, made with `load` on a miss.
    pub(crate) fn get(
        &self,
        token: Option<&Arc<BiscuitToken>>,
        mode: Mode,
        load: impl FnOnce() -> Slot,
    ) -> Slot {
        let m = mode.index();
        let Some(token) = token else {
            return self.tokenless[m].get_or_init(load).clone();
        };
        if let Some(entry) = self.tokens.lock().get(token.sha256()) {
            if let (true, Some(slot)) = (same(&entry.token, token), &entry.modes[m]) {
                return slot.clone();
            }
        }
        // Loaded outside the lock: a new token does not stall other callers.
        let slot = load();
        let mut tokens = self.tokens.lock();
        match tokens.get_mut(token.sha256()) {
            Some(entry) if same(&entry.token, token) => entry.modes[m] = Some(slot.clone()),
            _ => {
                let mut modes: [Option<Slot>; Mode::COUNT] = Default::default();
                modes[m] = Some(slot.clone());
                tokens.put(
                    *token.sha256(),
                    Entry {
                        token: Arc::clone(token),
                        modes,
                    },
                );
            }
        }
        slot
    }

    /// Tokens held (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tokens.lock().len()
    }
}
