//! The memory backend: shared state for one process. Taint labels in the bounded,
//! expiring [`TaintStore`]; revoked ids and rate-limit buckets in bounded tables; the
//! clock injected, so rate limits are tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::taint::TaintStore;

use super::gcra::{self, Outcome};
use super::rate::Spend;

/// Milliseconds on a monotonic clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock: milliseconds since the backend was made.
pub fn monotonic() -> Clock {
    let start = Instant::now();
    Arc::new(move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// One process's shared state.
pub struct MemoryState {
    /// Taint labels by session and credential.
    pub taints: TaintStore,
    /// Revoked ids → when the revocation ends (ms on `clock`; `None`: never).
    revoked: Mutex<HashMap<String, Option<u64>>>,
    /// Rate-limit buckets (`rule\0bucket`) → TAT (ms on `clock`).
    buckets: Mutex<HashMap<String, u64>>,
    max_keys: usize,
    clock: Clock,
}

impl MemoryState {
    /// Empty state: taint bounded like `[taint]`, the other tables by `max_keys`.
    pub fn new(taint_entries: usize, taint_ttl: Duration, max_keys: usize, clock: Clock) -> Self {
        MemoryState {
            taints: TaintStore::new(taint_entries, taint_ttl),
            revoked: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
            clock,
        }
    }

    /// Is any of `ids` revoked now?
    pub fn any_revoked(&self, ids: &[String]) -> bool {
        let revoked = self.revoked.lock();
        if revoked.is_empty() {
            return false;
        }
        let now = (self.clock)();
        ids.iter().any(|id| match revoked.get(id) {
            Some(None) => true,
            Some(Some(until)) => *until > now,
            None => false,
        })
    }

    /// Revoke `id` for `ttl` (`None`: for good). When the table is full, expired
    /// revocations are dropped; if none was, the one ending soonest.
    pub fn revoke(&self, id: &str, ttl: Option<Duration>) {
        let now = (self.clock)();
        let until =
            ttl.map(|t| now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let mut revoked = self.revoked.lock();
        if !revoked.contains_key(id) && revoked.len() >= self.max_keys {
            revoked.retain(|_, u| u.is_none_or(|u| u > now));
            if revoked.len() >= self.max_keys {
                let soonest = revoked
                    .iter()
                    .filter_map(|(k, u)| u.map(|u| (u, k.clone())))
                    .min();
                if let Some((_, key)) = soonest {
                    revoked.remove(&key);
                }
            }
        }
        revoked.insert(id.to_owned(), until);
    }

    /// Spend every bucket or none: if any is refused, nothing is stored and the
    /// outcomes say which (the refused ones with their retry time).
    pub fn take(&self, spends: &[Spend]) -> Vec<Outcome> {
        let now = (self.clock)();
        let mut buckets = self.buckets.lock();
        let keys: Vec<String> = spends
            .iter()
            .map(|s| format!("{}\u{0}{}", s.rule, s.bucket))
            .collect();
        let decided: Vec<(Outcome, Option<u64>)> = spends
            .iter()
            .zip(&keys)
            .map(|(s, key)| {
                let tat = buckets.get(key).copied().filter(|&tat| tat > now);
                gcra::take(tat, now, s.limit, s.cost)
            })
            .collect();
        if decided.iter().all(|(o, _)| o.allowed) {
            for (key, (_, tat)) in keys.into_iter().zip(&decided) {
                if let Some(tat) = tat {
                    if !buckets.contains_key(&key) && buckets.len() >= self.max_keys {
                        make_room(&mut buckets, now, self.max_keys);
                    }
                    buckets.insert(key, *tat);
                }
            }
        }
        decided.into_iter().map(|(o, _)| o).collect()
    }

    /// Rate-limit buckets held (expired ones included until room is needed).
    pub fn buckets(&self) -> usize {
        self.buckets.lock().len()
    }
}

/// Drop refilled buckets; if none was, the one closest to refilled (the least spent),
/// which forgives the least.
fn make_room(buckets: &mut HashMap<String, u64>, now: u64, max: usize) {
    buckets.retain(|_, tat| *tat > now);
    if buckets.len() < max {
        return;
    }
    let least = buckets
        .iter()
        .min_by_key(|(_, tat)| **tat)
        .map(|(k, _)| k.clone());
    if let Some(key) = least {
        buckets.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::gcra::Limit;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn clocked(max_keys: usize) -> (MemoryState, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000));
        let n = Arc::clone(&now);
        let clock: Clock = Arc::new(move || n.load(Ordering::SeqCst));
        let s = MemoryState::new(10, Duration::from_secs(60), max_keys, clock);
        (s, now)
    }

    fn spend(rule: &str, bucket: &str, rate: u64, per_s: u64, cost: u64) -> Spend {
        Spend {
            rule: rule.into(),
            bucket: bucket.into(),
            limit: Limit::new(rate, Duration::from_secs(per_s), rate),
            cost,
        }
    }

    #[test]
    fn revocations_expire_on_the_clock() {
        let (s, now) = clocked(10);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!s.any_revoked(&ids(&["a"])));
        s.revoke("a", Some(Duration::from_secs(10)));
        s.revoke("forever", None);
        assert!(s.any_revoked(&ids(&["x", "a"])));
        now.fetch_add(10_000, Ordering::SeqCst);
        assert!(!s.any_revoked(&ids(&["a"])), "expired");
        assert!(s.any_revoked(&ids(&["forever"])));
    }

    #[test]
    fn a_full_revocation_table_drops_the_one_ending_soonest_never_a_permanent_one() {
        let (s, _) = clocked(2);
        s.revoke("forever", None);
        s.revoke("short", Some(Duration::from_secs(5)));
        s.revoke("new", Some(Duration::from_secs(50)));
        let has = |id: &str| s.any_revoked(&[id.to_owned()]);
        assert!(has("forever") && has("new") && !has("short"));
    }

    #[test]
    fn buckets_refill_on_the_injected_clock() {
        let (s, now) = clocked(10);
        let one = [spend("r", "alice", 2, 10, 1)];
        assert!(s.take(&one)[0].allowed);
        assert!(s.take(&one)[0].allowed);
        let refused = s.take(&one)[0];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 5_000);
        now.fetch_add(5_000, Ordering::SeqCst);
        assert!(s.take(&one)[0].allowed);
        // another principal has its own bucket
        assert!(s.take(&[spend("r", "bob", 2, 10, 1)])[0].allowed);
    }

    #[test]
    fn a_body_spends_all_its_buckets_or_none() {
        let (s, _) = clocked(10);
        let wide = spend("wide", "alice", 100, 60, 1);
        let narrow = spend("narrow", "alice", 1, 60, 1);
        let both = [wide.clone(), narrow.clone()];
        let first = s.take(&both);
        assert!(first.iter().all(|o| o.allowed));
        let second = s.take(&both);
        assert!(second[0].allowed && !second[1].allowed);
        // the refused body spent nothing from `wide`: 98 left after one more
        assert_eq!(s.take(&[wide])[0].remaining, 98);
    }

    #[test]
    fn a_full_bucket_table_forgets_refilled_buckets_first() {
        let (s, now) = clocked(2);
        s.take(&[spend("r", "a", 1, 1, 1)]); // refills after 1 s
        s.take(&[spend("r", "b", 1, 100, 1)]);
        now.fetch_add(2_000, Ordering::SeqCst);
        s.take(&[spend("r", "c", 1, 100, 1)]);
        assert_eq!(s.buckets(), 2);
        assert!(!s.take(&[spend("r", "b", 1, 100, 1)])[0].allowed, "b kept");
    }
}
