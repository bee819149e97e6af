//! The session table: which principal owns each `Mcp-Session-Id`, and which list
//! requests of that session still await their response.
//!
//! Binding a session to its creator stops a caller who learns another caller's session
//! id from riding on it. Remembering outstanding list requests per session lets the
//! proxy filter a `tools/list` result wherever it arrives — on the POST's own stream or
//! on a resumed GET stream. The table is bounded (entries, outstanding lists per
//! session) and forgets idle sessions; a forgotten session's next request gets 404,
//! which MCP clients answer by initializing a new session.

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
        if entries.len() >= self.max_sessions {
            let ttl = self.idle_timeout;
            entries.retain(|_, e| now.duration_since(e.last_seen) <= ttl);
            if entries.len() >= self.max_sessions {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_seen)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
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
    fn table_is_bounded() {
        let t = SessionTable::new(2, Duration::from_secs(60));
        t.bind("s1", "a").unwrap();
        t.bind("s2", "a").unwrap();
        t.bind("s3", "a").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.active(), 2);
        assert_eq!(t.check("s3", "a"), Ok(()));
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
