//! The session table: which principal owns each `Mcp-Session-Id`, and which list
//! requests of that session still await their response.
//!
//! Binding a session to its creator stops a caller who learns another caller's session
//! id from riding on it. Remembering outstanding list requests per session lets the
//! proxy filter a `tools/list` result wherever it arrives — on the POST's own stream or
//! on a resumed GET stream. The table is bounded (entries, outstanding lists per
//! session) and forgets idle sessions; a forgotten session's next request gets 404,
//! which MCP clients answer by initializing a new session. At `max_sessions` live
//! sessions a *new* one is refused ([`SessionError::Full`]); existing sessions are never
//! evicted to make room (that would end a caller's session because another arrived), and
//! only idle expiry or a DELETE frees a slot.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::mcp::ListKind;

/// Most list requests one session may have outstanding at once. A client that needs
/// more is refused rather than risking a result the proxy no longer knows to filter.
pub const MAX_PENDING_LISTS: usize = 256;

/// Answered list requests remembered per session. A client picks `Last-Event-ID` when it
/// resumes a GET stream, so it can ask the server to replay a list result the proxy has
/// already filtered; the proxy keeps filtering ids it has answered. (MCP forbids reusing
/// a request id within a session, so a remembered id never names another request.)
pub const MAX_ANSWERED_LISTS: usize = 1024;

/// Why a request's session id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The proxy has no record of this session (never created through it, expired or
    /// deleted). HTTP 404 per the MCP transport spec.
    #[error("unknown session")]
    Unknown,
    /// The session belongs to another principal. HTTP 403.
    #[error("session belongs to another principal")]
    NotOwner,
    /// Too many list requests outstanding in this session.
    #[error("too many outstanding list requests in this session")]
    TooManyPending,
    /// `sessions.max_sessions` live sessions already: a new one is refused. HTTP 503.
    #[error("too many sessions")]
    Full,
}

struct Entry {
    owner: String,
    last_seen: Instant,
    pending: HashMap<String, ListKind>,
    answered: HashMap<String, ListKind>,
    answered_order: std::collections::VecDeque<String>,
}

impl Entry {
    fn remember_answered(&mut self, id_key: &str, kind: ListKind) {
        if self.answered.insert(id_key.to_owned(), kind).is_none() {
            self.answered_order.push_back(id_key.to_owned());
            if self.answered_order.len() > MAX_ANSWERED_LISTS {
                if let Some(oldest) = self.answered_order.pop_front() {
                    self.answered.remove(&oldest);
                }
            }
        }
    }
}

/// Bounded map from session id to owner and outstanding list requests.
pub struct SessionTable {
    entries: Mutex<HashMap<String, Entry>>,
    max_sessions: usize,
    idle_timeout: Duration,
}

impl SessionTable {
    /// An empty table.
    pub fn new(max_sessions: usize, idle_timeout: Duration) -> Self {
        SessionTable {
            entries: Mutex::new(HashMap::new()),
            max_sessions: max_sessions.max(1),
            idle_timeout,
        }
    }

    /// Check that `session_id` exists and belongs to `principal`; refreshes its idle
    /// timer.
    pub fn check(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        let mut entries = self.entries.lock();
        let now = Instant::now();
        match entries.get_mut(session_id) {
            None => Err(SessionError::Unknown),
            Some(e) if now.duration_since(e.last_seen) > self.idle_timeout => {
                entries.remove(session_id);
                Err(SessionError::Unknown)
            }
            Some(e) if e.owner != principal => Err(SessionError::NotOwner),
            Some(e) => {
                e.last_seen = now;
                Ok(())
            }
        }
    }

    /// Record that `principal` created `session_id`. An id already owned by someone
    /// else keeps its owner (an upstream reusing ids must not hand a session over).
    pub fn bind(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        let mut entries = self.entries.lock();
        let now = Instant::now();
        if let Some(e) = entries.get(session_id) {
            return if e.owner == principal {
                Ok(())
            } else {
                Err(SessionError::NotOwner)
            };
        }
        if !Self::room(&mut entries, self.max_sessions, self.idle_timeout, now) {
            return Err(SessionError::Full);
        }
        entries.insert(
            session_id.to_owned(),
            Entry {
                owner: principal.to_owned(),
                last_seen: now,
                pending: HashMap::new(),
                answered: HashMap::new(),
                answered_order: Default::default(),
            },
        );
        Ok(())
    }

    /// Is there room for one more session? Idle sessions are forgotten first; a full
    /// table refuses new sessions ([`SessionError::Full`]) and never evicts a live one.
    pub fn has_room(&self) -> bool {
        let mut entries = self.entries.lock();
        Self::room(
            &mut entries,
            self.max_sessions,
            self.idle_timeout,
            Instant::now(),
        )
    }

    fn room(entries: &mut HashMap<String, Entry>, max: usize, ttl: Duration, now: Instant) -> bool {
        if entries.len() >= max {
            entries.retain(|_, e| now.duration_since(e.last_seen) <= ttl);
        }
        entries.len() < max
    }

    /// Forget a session (the client deleted it).
    pub fn remove(&self, session_id: &str) {
        self.entries.lock().remove(session_id);
    }

    /// Remember an outstanding list request `id_key` (see [`crate::mcp::id_key`]) in a session.
    pub fn add_pending(
        &self,
        session_id: &str,
        id_key: String,
        kind: ListKind,
    ) -> Result<(), SessionError> {
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(session_id).ok_or(SessionError::Unknown)?;
        if entry.pending.len() >= MAX_PENDING_LISTS && !entry.pending.contains_key(&id_key) {
            return Err(SessionError::TooManyPending);
        }
        entry.pending.insert(id_key, kind);
        Ok(())
    }

    /// The list request answered by a response with `id_key`: an outstanding one (now
    /// remembered as answered), or one answered before — on whichever stream, however
    /// many times: a repeated answer is filtered like the first (an id once a list
    /// request stays one for the session).
    pub fn take_pending(&self, session_id: &str, id_key: &str) -> Option<ListKind> {
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(session_id)?;
        if let Some(kind) = entry.pending.remove(id_key) {
            entry.remember_answered(id_key, kind);
            return Some(kind);
        }
        entry.answered.get(id_key).copied()
    }

    /// Record that a list request was answered on its own POST stream.
    pub fn mark_answered(&self, session_id: &str, id_key: &str, kind: ListKind) {
        if let Some(entry) = self.entries.lock().get_mut(session_id) {
            entry.pending.remove(id_key);
            entry.remember_answered(id_key, kind);
        }
    }

    /// Could a message on this session's streams answer a list request? Outstanding ones,
    /// and with `replays` (resumed GET streams) answered ones too. Cheap pre-check before
    /// parsing events.
    pub fn has_pending(&self, session_id: &str, replays: bool) -> bool {
        self.entries
            .lock()
            .get(session_id)
            .is_some_and(|e| !e.pending.is_empty() || (replays && !e.answered.is_empty()))
    }

    /// Number of sessions not idle beyond the timeout (expired ones are forgotten
    /// lazily, so [`SessionTable::len`] may still count them).
    pub fn active(&self) -> usize {
        let now = Instant::now();
        self.entries
            .lock()
            .values()
            .filter(|e| now.duration_since(e.last_seen) <= self.idle_timeout)
            .count()
    }

    /// Number of sessions remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Is the table empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::id_key;

    #[test]
    fn answered_lists_are_bounded() {
        let t = SessionTable::new(2, Duration::from_secs(60));
        t.bind("s", "a").unwrap();
        for i in 0..=MAX_ANSWERED_LISTS {
            t.mark_answered("s", &i.to_string(), ListKind::Tools);
        }
        assert_eq!(t.take_pending("s", "0"), None, "oldest forgotten");
        let last = MAX_ANSWERED_LISTS.to_string();
        assert_eq!(t.take_pending("s", &last), Some(ListKind::Tools));
    }

    #[test]
    fn session_is_bound_to_its_creator() {
        let t = SessionTable::new(10, Duration::from_secs(60));
        t.bind("s1", "jwt:alice").unwrap();
        assert_eq!(t.check("s1", "jwt:alice"), Ok(()));
        assert_eq!(t.check("s1", "jwt:mallory"), Err(SessionError::NotOwner));
        assert_eq!(t.check("s2", "jwt:alice"), Err(SessionError::Unknown));
    }

    #[test]
    fn rebinding_to_another_principal_is_refused() {
        let t = SessionTable::new(10, Duration::from_secs(60));
        t.bind("s1", "jwt:alice").unwrap();
        assert_eq!(t.bind("s1", "jwt:mallory"), Err(SessionError::NotOwner));
        assert_eq!(t.check("s1", "jwt:alice"), Ok(()));
    }

    #[test]
    fn removed_session_is_unknown() {
        let t = SessionTable::new(10, Duration::from_secs(60));
        t.bind("s1", "a").unwrap();
        t.remove("s1");
        assert_eq!(t.check("s1", "a"), Err(SessionError::Unknown));
    }

    #[test]
    fn idle_session_expires() {
        let t = SessionTable::new(10, Duration::ZERO);
        t.bind("s1", "a").unwrap();
        crate::testing::let_the_clock_tick();
        assert_eq!((t.len(), t.active()), (1, 0));
        assert_eq!(t.check("s1", "a"), Err(SessionError::Unknown));
    }

    #[test]
    fn a_full_table_refuses_new_sessions_and_keeps_the_old() {
        let t = SessionTable::new(2, Duration::from_secs(60));
        t.bind("s1", "a").unwrap();
        t.bind("s2", "b").unwrap();
        assert!(!t.has_room());
        assert_eq!(t.bind("s3", "a"), Err(SessionError::Full));
        assert_eq!(t.len(), 2);
        assert_eq!(t.check("s1", "a"), Ok(()), "no eviction");
        assert_eq!(t.check("s2", "b"), Ok(()));
        assert_eq!(t.check("s3", "a"), Err(SessionError::Unknown));
        // a known session rebinds at the cap (the upstream repeats its id)
        assert_eq!(t.bind("s1", "a"), Ok(()));
        // a DELETE frees a slot
        t.remove("s2");
        assert!(t.has_room());
        assert_eq!(t.bind("s3", "a"), Ok(()));
    }

    #[test]
    fn idle_sessions_free_their_slots() {
        let t = SessionTable::new(1, Duration::ZERO);
        t.bind("s1", "a").unwrap();
        crate::testing::let_the_clock_tick();
        assert!(t.has_room());
        assert_eq!(t.bind("s2", "a"), Ok(()));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn pending_lists_are_matched_once_and_bounded() {
        let t = SessionTable::new(2, Duration::from_secs(60));
        t.bind("s1", "a").unwrap();
        let key = id_key(&serde_json::json!(7));
        t.add_pending("s1", key.clone(), ListKind::Tools).unwrap();
        assert!(t.has_pending("s1", false));
        assert_eq!(t.take_pending("s1", &id_key(&serde_json::json!("7"))), None);
        assert_eq!(t.take_pending("s1", &key), Some(ListKind::Tools));
        assert!(!t.has_pending("s1", false));
        // A repeat, or a replay on a resumed stream, is still recognised as the list
        // answer, as often as it comes.
        assert!(t.has_pending("s1", true));
        assert_eq!(t.take_pending("s1", &key), Some(ListKind::Tools));
        assert_eq!(t.take_pending("s1", &key), Some(ListKind::Tools));
        for i in 0..MAX_PENDING_LISTS {
            t.add_pending("s1", i.to_string(), ListKind::Prompts)
                .unwrap();
        }
        assert_eq!(
            t.add_pending("s1", "x".into(), ListKind::Tools),
            Err(SessionError::TooManyPending)
        );
    }
}
