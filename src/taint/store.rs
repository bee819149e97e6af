//! The taint store: which labels each session and each credential carries.
//!
//! Design and limits:
//! - **In memory, per process.** A restart forgets every taint, and several replicas do
//!   not share them (a tainted credential is clean on another replica). Run one replica
//!   per sidecar, or accept that a restart washes taint.
//! - **Two keys per event.** A taint is recorded under the session id (when the request
//!   has one) and under the credential key, and a request sees the union of both, so
//!   neither a new session with the same token nor a new token in the same session
//!   starts clean.
//! - **Expiry.** An entry lasts `ttl` after its last taint event (reading it does not
//!   extend it). Expired entries are ignored at once and dropped when room is needed.
//! - **Bounded.** At most `max_entries` entries (sessions plus credentials). Labels per
//!   entry are bounded by the configured sources. When full, expired entries are dropped
//!   first; if none is, the entry tainted longest ago is evicted — which washes its taint,
//!   so size `max_entries` well above the sessions and tokens alive within `ttl` and alert
//!   on `mcp_warden_taint_evictions_total`. An eviction scans the table (O(n)), which is
//!   only paid by taint events on a full store; lookups are one hash probe per key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Session(String),
    Credential(String),
}

#[derive(Debug)]
struct Entry {
    /// Sorted, no duplicates.
    labels: Vec<String>,
    tainted_at: Instant,
}

/// Taint labels by session and by credential; bounded, expiring. See the module docs.
#[derive(Debug)]
pub struct TaintStore {
    entries: RwLock<HashMap<Key, Entry>>,
    max_entries: usize,
    ttl: Duration,
}

impl TaintStore {
    /// An empty store holding at most `max_entries` (at least 1) entries for `ttl` each.
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        TaintStore {
            entries: RwLock::new(HashMap::new()),
            max_entries: max_entries.max(1),
            ttl,
        }
    }

    /// The labels of the session (if any) and the credential, sorted, without
    /// duplicates; empty when neither is tainted.
    pub fn labels(&self, session_id: Option<&str>, credential: &str) -> Vec<String> {
        self.labels_at(session_id, credential, Instant::now())
    }

    fn labels_at(&self, session_id: Option<&str>, credential: &str, now: Instant) -> Vec<String> {
        let entries = self.entries.read();
        if entries.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        let keys = [
            session_id.map(|s| Key::Session(s.to_owned())),
            Some(Key::Credential(credential.to_owned())),
        ];
        for key in keys.iter().flatten() {
            if let Some(entry) = entries.get(key) {
                if !self.expired(entry, now) {
                    out.extend(entry.labels.iter().cloned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Record `labels` for the session (if any) and the credential. Returns how many
    /// other entries were evicted to make room (see the module docs).
    pub fn record(&self, session_id: Option<&str>, credential: &str, labels: &[String]) -> usize {
        self.record_at(session_id, credential, labels, Instant::now())
    }

    fn record_at(
        &self,
        session_id: Option<&str>,
        credential: &str,
        labels: &[String],
        now: Instant,
    ) -> usize {
        let mut entries = self.entries.write();
        let mut evicted = 0;
        let keys = [
            session_id.map(|s| Key::Session(s.to_owned())),
            Some(Key::Credential(credential.to_owned())),
        ];
        for key in keys.into_iter().flatten() {
            if !entries.contains_key(&key) && entries.len() >= self.max_entries {
                evicted += self.make_room(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert_with(|| Entry {
                labels: Vec::new(),
                tainted_at: now,
            });
            if self.expired(entry, now) {
                entry.labels.clear();
            }
            entry.labels.extend(labels.iter().cloned());
            entry.labels.sort();
            entry.labels.dedup();
            entry.tainted_at = now;
        }
        evicted
    }

    /// Drop expired entries; if none was, the one tainted longest ago. Returns how many
    /// live (unexpired) entries were evicted.
    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: Instant) -> usize {
        entries.retain(|_, e| !self.expired(e, now));
        if entries.len() < self.max_entries {
            return 0;
        }
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.tainted_at)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                entries.remove(&key);
                1
            }
            None => 0,
        }
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.tainted_at) >= self.ttl
    }

    /// Forget a session's own taint (the client deleted the session; its id is never
    /// accepted again). The credential keeps its taint.
    pub fn forget_session(&self, session_id: &str) {
        let key = Key::Session(session_id.to_owned());
        let mut entries = self.entries.write();
        entries.remove(&key);
    }

    /// Entries held (expired ones included until room is needed).
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Nothing held?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn session_and_credential_are_both_keys() {
        let s = TaintStore::new(100, Duration::from_secs(60));
        assert!(s.labels(Some("s1"), "cred-a").is_empty());
        s.record(Some("s1"), "cred-a", &l(&["phi"]));
        // same session, same credential
        assert_eq!(s.labels(Some("s1"), "cred-a"), l(&["phi"]));
        // a new session with the same credential
        assert_eq!(s.labels(Some("s2"), "cred-a"), l(&["phi"]));
        // no session at all (stateless revision), same credential
        assert_eq!(s.labels(None, "cred-a"), l(&["phi"]));
        // the same session under a new credential (a refreshed token)
        assert_eq!(s.labels(Some("s1"), "cred-b"), l(&["phi"]));
        // a clean caller
        assert!(s.labels(Some("s3"), "cred-c").is_empty());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn labels_are_a_sorted_union() {
        let s = TaintStore::new(100, Duration::from_secs(60));
        s.record(Some("s1"), "a", &l(&["pii"]));
        s.record(None, "a", &l(&["phi", "pii"]));
        s.record(Some("s1"), "b", &l(&["secrets"]));
        assert_eq!(s.labels(Some("s1"), "a"), l(&["phi", "pii", "secrets"]));
        assert_eq!(s.labels(None, "a"), l(&["phi", "pii"]));
    }

    #[test]
    fn entries_expire_ttl_after_their_last_taint() {
        let ttl = Duration::from_secs(60);
        let s = TaintStore::new(100, ttl);
        let t0 = Instant::now();
        s.record_at(Some("s1"), "a", &l(&["phi"]), t0);
        let just_before = t0 + ttl - Duration::from_millis(1);
        assert_eq!(s.labels_at(Some("s1"), "a", just_before), l(&["phi"]));
        // reading does not extend it
        assert!(s.labels_at(Some("s1"), "a", t0 + ttl).is_empty());
        // a new event restarts the clock, and an expired entry's old labels are gone
        s.record_at(None, "a", &l(&["pii"]), t0 + ttl);
        assert_eq!(s.labels_at(None, "a", t0 + ttl + ttl / 2), l(&["pii"]));
        assert!(s.labels_at(Some("s1"), "x", t0 + ttl + ttl / 2).is_empty());
    }

    #[test]
    fn full_store_drops_expired_entries_first() {
        let ttl = Duration::from_secs(60);
        let s = TaintStore::new(2, ttl);
        let t0 = Instant::now();
        s.record_at(None, "old", &l(&["phi"]), t0);
        s.record_at(None, "live", &l(&["phi"]), t0 + ttl / 2);
        let evicted = s.record_at(None, "new", &l(&["phi"]), t0 + ttl);
        assert_eq!(evicted, 0, "the expired entry made room");
        assert_eq!(s.len(), 2);
        assert_eq!(s.labels_at(None, "live", t0 + ttl), l(&["phi"]));
        assert_eq!(s.labels_at(None, "new", t0 + ttl), l(&["phi"]));
    }

    #[test]
    fn full_store_evicts_the_entry_tainted_longest_ago() {
        let s = TaintStore::new(3, Duration::from_secs(600));
        let t0 = Instant::now();
        s.record_at(None, "first", &l(&["phi"]), t0);
        s.record_at(None, "second", &l(&["phi"]), t0 + Duration::from_secs(1));
        s.record_at(None, "third", &l(&["phi"]), t0 + Duration::from_secs(2));
        // re-tainting `first` makes it the most recent
        s.record_at(None, "first", &l(&["phi"]), t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_secs(4);
        assert_eq!(s.record_at(None, "fourth", &l(&["phi"]), now), 1);
        assert_eq!(s.len(), 3);
        assert!(s.labels_at(None, "second", now).is_empty(), "evicted");
        for kept in ["first", "third", "fourth"] {
            assert_eq!(s.labels_at(None, kept, now), l(&["phi"]), "{kept}");
        }
        // recording an existing key never evicts
        assert_eq!(s.record_at(None, "third", &l(&["pii"]), now), 0);
    }

    #[test]
    fn forgetting_a_session_keeps_the_credential_taint() {
        let s = TaintStore::new(100, Duration::from_secs(60));
        s.record(Some("s1"), "a", &l(&["phi"]));
        s.forget_session("s1");
        assert!(s.labels(Some("s1"), "b").is_empty());
        assert_eq!(s.labels(Some("s1"), "a"), l(&["phi"]));
    }
}
