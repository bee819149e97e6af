//! The answer to an admitted request: how it is handled ([`plan`], chosen from its head),
//! the session it binds or ends, and its body filtered chunk by chunk
//! ([`Exchange::answer_chunk`]) with the taint its watched calls record.
//!
//! [`Exchange`] is the per-request state from admission to the last byte of the answer;
//! the proxy keeps one per request and calls it from its callbacks.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::mcp::ListKind;
use crate::pins::DefinitionKind;
use crate::policy::{
    DefinitionFacts, Generation, ItemAnnotations, ListQuery, ListedItem, Listing, RequestEnv,
};
use crate::taint::{call_outcome, CallOutcome, SourceCall, TaintReason};

use super::admission::{Admitted, RequestKind};
use super::decide::{Awaited, Forward};
use super::observe::{self, RequestFacts};
use super::refusal::Withheld;
use super::response::{FilterStats, JsonBuffer, ListItem, ListScope, SseFilter};
use super::sessions::SessionError;
use super::tasks::{created_task_id, TaskCall};
use super::Warden;

/// How an answer's body is handled, chosen by [`plan`] from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerPlan {
    /// Passed on untouched: nothing in it to filter or watch.
    Pass,
    /// Read whole as JSON; list results filtered, a body too large to read withheld.
    FilterJson,
    /// Read whole as JSON only to watch calls of taint sources; a body too large to read
    /// is passed on (tainting).
    WatchJson,
    /// Filtered event by event (list results; watched calls).
    FilterSse,
    /// It must be filtered but cannot be read (compressed, or a list answer in another
    /// content type): replaced by a JSON-RPC error.
    Withhold,
    /// The answer to a watched call in a form the proxy cannot read: passed on, and a
    /// successful status taints before a byte of it does. (An HTTP error with a body of
    /// another type is no tool result.)
    PassUnread,
}

/// What the proxy does to the answer's head for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRewrite {
    /// Leave it as the upstream sent it.
    Keep,
    /// The body is rewritten: drop `Content-Length`, send it chunked.
    Reframe,
    /// Replace the answer by [`Withheld::Unfilterable`]'s error: status
    /// [`Withheld::STATUS`], `application/json`, no `Content-Encoding`, chunked (the error
    /// is the body, sent at the end of the stream).
    Withhold,
}

impl AnswerPlan {
    /// What this plan does to the answer's head.
    pub fn rewrite(self) -> HeadRewrite {
        match self {
            AnswerPlan::Pass | AnswerPlan::PassUnread => HeadRewrite::Keep,
            AnswerPlan::FilterJson | AnswerPlan::WatchJson | AnswerPlan::FilterSse => {
                HeadRewrite::Reframe
            }
            AnswerPlan::Withhold => HeadRewrite::Withhold,
        }
    }
}

/// What [`plan`] reads of an answer's head.
#[derive(Debug, Clone, Copy)]
pub struct AnswerHead<'a> {
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type`, as sent (`""` if absent).
    pub content_type: &'a str,
    /// `Content-Encoding`, if sent.
    pub content_encoding: Option<&'a [u8]>,
    /// `Mcp-Session-Id`, if sent as text.
    pub session_id: Option<&'a str>,
}

/// What the request expects of its answer, for [`plan`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expecting {
    /// List requests of this body await their answer.
    pub own_lists: bool,
    /// List requests of the session may be answered here (outstanding ones; answered ones
    /// too on a GET stream, which may replay them).
    pub session_lists: bool,
    /// Calls of taint sources await their answer.
    pub watching: bool,
    /// The request belongs to a session (an event stream may carry its answers).
    pub in_session: bool,
}

/// How to handle an answer with this head.
pub fn plan(head: &AnswerHead<'_>, expecting: Expecting) -> AnswerPlan {
    let content_type = head.content_type.to_ascii_lowercase();
    let is_sse = content_type.starts_with("text/event-stream");
    let is_json = content_type.starts_with("application/json");
    let must_filter = expecting.own_lists || expecting.session_lists;
    // Any event stream may carry a list answer (a repeat, a replay, a list-shaped result
    // under another id): every one is read.
    let may_carry_lists = must_filter || is_sse;
    if !may_carry_lists && !expecting.watching {
        return AnswerPlan::Pass;
    }
    let encoded = head
        .content_encoding
        .is_some_and(|v| !v.eq_ignore_ascii_case(b"identity"));
    if encoded && (is_json || is_sse) {
        tracing::warn!("upstream compressed a response that must be filtered; withholding it");
        AnswerPlan::Withhold
    } else if is_sse {
        AnswerPlan::FilterSse
    } else if is_json && must_filter {
        AnswerPlan::FilterJson
    } else if is_json {
        AnswerPlan::WatchJson
    } else if must_filter {
        AnswerPlan::Withhold
    } else {
        AnswerPlan::PassUnread
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The answer's body, as its plan handles it.
#[derive(Debug)]
enum Body {
    Pass,
    Json(JsonBuffer),
    Sse(SseFilter),
    /// Replaced by this error.
    Withhold(Withheld),
}

/// One admitted request, from admission to the last byte of its answer.
#[derive(Debug)]
pub struct Exchange {
    admitted: Admitted,
    /// What every record of this request shares (its session kept up to date).
    facts: RequestFacts,
    /// For a POST whose body was allowed: the body, how it was decided, what its answer is
    /// awaited for.
    forward: Option<Forward>,
    /// The caller's taint labels read at admission (for filtering the lists a GET
    /// stream carries, which have no decided body).
    admitted_taints: Vec<String>,
    /// The upstream's status, once its answer's head arrived.
    upstream_status: Option<u16>,
    body: Body,
    stats: FilterStats,
}

impl Exchange {
    /// The exchange of an admitted request whose caller carries `taints`; `forward` is
    /// the decided body of a POST.
    pub fn new(
        admitted: Admitted,
        taints: Vec<String>,
        facts: &RequestFacts,
        forward: Option<Forward>,
    ) -> Self {
        let facts = RequestFacts {
            session_id: admitted.session_id.clone(),
            ..facts.clone()
        };
        Exchange {
            admitted,
            facts,
            forward,
            admitted_taints: taints,
            upstream_status: None,
            body: Body::Pass,
            stats: FilterStats::default(),
        }
    }

    /// The caller.
    pub fn identity(&self) -> &Identity {
        &self.admitted.identity
    }

    /// The connection's verified client certificate, if any.
    pub fn client_cert(&self) -> Option<&crate::auth::ClientCert> {
        self.admitted.client_cert.as_deref()
    }

    /// The body to forward, if this is a POST.
    pub fn forward_body(&self) -> Option<&Bytes> {
        self.forward.as_ref().map(|f| &f.body)
    }

    /// The `method` label of the upstream latency histogram.
    pub fn upstream_label(&self) -> &'static str {
        match (&self.forward, self.admitted.kind.upstream_label()) {
            (Some(forward), _) => forward.upstream_label,
            (None, Some(label)) => label,
            (None, None) => crate::metrics::OTHER,
        }
    }

    /// Has the answer been ended early? An event stream the proxy could no longer filter
    /// (an event over `limits.max_response_bytes`) went out with an error in its place;
    /// the proxy then closes it instead of passing what the upstream still sends.
    pub fn ended_early(&self) -> bool {
        matches!(&self.body, Body::Sse(filter) if filter.ended())
    }

    /// What filtering did so far.
    pub fn stats(&self) -> FilterStats {
        self.stats
    }

    /// Does this answer stream the session's messages, so that list answers already seen
    /// may come again (a GET stream, resumed or not, or a `subscriptions/listen` stream)?
    fn replays(&self) -> bool {
        self.admitted.kind == RequestKind::StreamGet
            || self.forward.as_ref().is_some_and(|f| f.awaited.listens)
    }

    fn session_id(&self) -> Option<&str> {
        self.admitted.session_id.as_deref()
    }

    fn awaited(&mut self) -> Option<&mut Awaited> {
        self.forward.as_mut().map(|f| &mut f.awaited)
    }

    /// The answer's head arrived: bind the session the upstream issued to the caller, end
    /// the one a DELETE ended, and choose how the body is handled. Returns what to do to
    /// the head.
    pub fn answer_head(&mut self, warden: &Warden, head: &AnswerHead<'_>) -> HeadRewrite {
        self.upstream_status = Some(head.status);
        if let Some(sid) = head.session_id.filter(|_| is_success(head.status)) {
            match warden
                .sessions
                .bind(sid, &self.admitted.identity.principal_key())
            {
                Ok(()) => {}
                Err(SessionError::Full) => {
                    // The table filled while the `initialize` was forwarded.
                    tracing::warn!("session table full; the new session is refused");
                    self.body = Body::Withhold(Withheld::TooManySessions);
                    return HeadRewrite::Withhold;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "upstream issued a session id owned by another principal");
                    self.body = Body::Withhold(Withheld::Unfilterable);
                    return HeadRewrite::Withhold;
                }
            }
            if self.admitted.session_id.is_none() {
                self.admitted.session_id = Some(sid.to_owned());
                self.facts.session_id = Some(sid.to_owned());
            }
        }
        if self.admitted.kind == RequestKind::DeleteSession && is_success(head.status) {
            if let Some(sid) = self.session_id() {
                warden.sessions.remove(sid);
                warden.state.forget_session(sid);
            }
        }
        let replays = self.replays();
        let (own_lists, watching) = match &self.forward {
            Some(f) => (
                !f.awaited.lists.is_empty(),
                !f.awaited.sources.is_empty() || !f.awaited.tasks.is_empty(),
            ),
            None => (false, false),
        };
        let expecting = Expecting {
            own_lists,
            session_lists: self
                .session_id()
                .is_some_and(|sid| warden.sessions.has_pending(sid, replays)),
            watching,
            in_session: self.session_id().is_some(),
        };
        let plan = plan(head, expecting);
        let limit = warden.config.raw.limits.max_response_bytes;
        self.body = match plan {
            AnswerPlan::Pass => Body::Pass,
            AnswerPlan::FilterJson => Body::Json(JsonBuffer::new(limit)),
            AnswerPlan::WatchJson => Body::Json(JsonBuffer::watching(limit)),
            AnswerPlan::FilterSse => Body::Sse(SseFilter::new(limit)),
            AnswerPlan::Withhold => Body::Withhold(Withheld::Unfilterable),
            AnswerPlan::PassUnread => {
                let unread: Vec<SourceCall> = self
                    .awaited()
                    .map(|a| a.sources.drain().map(|(_, call)| call).collect())
                    .unwrap_or_default();
                let mut shared = true;
                if is_success(head.status) {
                    for call in unread {
                        shared &= self.taint(warden, &call, TaintReason::AnswerUnreadable);
                    }
                }
                if !shared {
                    // The taint could not be shared with the other replicas: the data
                    // must not go out.
                    self.body = Body::Withhold(Withheld::StateUnavailable);
                    return HeadRewrite::Withhold;
                }
                Body::Pass
            }
        };
        plan.rewrite()
    }

    /// A chunk of the answer's body (`None`: no bytes, e.g. only the end), replaced in
    /// place by what the client gets. Taint is recorded before the chunk goes out: the
    /// client must not hold the data untainted.
    pub fn answer_chunk(
        &mut self,
        warden: &Warden,
        chunk: &mut Option<Bytes>,
        end_of_stream: bool,
    ) {
        let withheld_before = self.stats.withheld;
        let mut body = std::mem::replace(&mut self.body, Body::Pass);
        let mut tainting = Vec::new();
        {
            let replays = self.replays();
            let session_id = self.admitted.session_id.as_deref();
            let (lists, sources, failed, tasks, generation, env) = match &mut self.forward {
                Some(f) => (
                    Some(&mut f.awaited.lists),
                    Some(&mut f.awaited.sources),
                    Some(&mut f.awaited.failed_sources),
                    Some(&mut f.awaited.tasks),
                    Some(&f.generation),
                    Some(&f.env),
                ),
                None => (None, None, None, None, None, None),
            };
            let mut own_tasks = HashMap::new();
            let mut own_lists = HashMap::new();
            let mut own_sources = HashMap::new();
            let mut own_failed = HashMap::new();
            let pinned = OnceCell::new();
            let stream_env = OnceCell::new();
            let mut scope = Scope {
                warden,
                own_lists: lists.unwrap_or(&mut own_lists),
                sources: sources.unwrap_or(&mut own_sources),
                failed: failed.unwrap_or(&mut own_failed),
                tasks: tasks.unwrap_or(&mut own_tasks),
                tainting: &mut tainting,
                session_id,
                replays,
                identity: &self.admitted.identity,
                client_cert: self.admitted.client_cert.as_ref(),
                generation,
                env,
                request_id: &self.facts.request_id,
                admitted_taints: &self.admitted_taints,
                pinned: &pinned,
                stream_env: &stream_env,
                listing: None,
            };
            let stats = &mut self.stats;
            match &mut body {
                Body::Pass => {}
                Body::Json(buffer) => {
                    let mut out = match chunk.take() {
                        Some(chunk) => buffer.push(&chunk, &mut scope),
                        None => Bytes::new(),
                    };
                    if end_of_stream {
                        out = concat(out, buffer.finish(&mut scope, stats));
                    }
                    *chunk = Some(out);
                }
                Body::Sse(filter) => {
                    let mut out = match chunk.take() {
                        Some(chunk) => filter.push(&chunk, &mut scope, stats),
                        None => Bytes::new(),
                    };
                    if end_of_stream {
                        out = concat(out, filter.finish(&mut scope, stats));
                    }
                    *chunk = Some(out);
                }
                Body::Withhold(withheld) => {
                    *chunk = Some(if end_of_stream {
                        withheld.body()
                    } else {
                        Bytes::new()
                    });
                }
            }
        }
        self.body = body;
        let mut shared = true;
        for (call, reason) in tainting {
            shared &= self.taint(warden, &call, reason);
        }
        if !shared {
            // The taint could not be shared with the other replicas (and fails closed):
            // this chunk and the rest of the answer are withheld.
            self.body = Body::Withhold(Withheld::StateUnavailable);
            *chunk = Some(if end_of_stream {
                Withheld::StateUnavailable.body()
            } else {
                Bytes::new()
            });
        }
        if end_of_stream {
            self.taint_unseen(warden);
        }
        let withheld = self.stats.withheld - withheld_before;
        if withheld > 0 {
            warden.metrics.list_results_withheld.inc_by(withheld as u64);
        }
    }

    /// At the end of an exchange (also one cut short): source calls whose answer the
    /// proxy never saw, though the upstream accepted the request (2xx), taint — the client
    /// may get the answer elsewhere (a resumed stream), so fail closed. An upstream that
    /// never answered, or refused the request, returned no data.
    pub fn taint_unseen(&mut self, warden: &Warden) {
        if !self.upstream_status.is_some_and(is_success) {
            return;
        }
        let Some(awaited) = self.awaited() else {
            return;
        };
        let mut unseen: Vec<SourceCall> = awaited.sources.drain().map(|(_, call)| call).collect();
        unseen.append(&mut awaited.silent_sources);
        for call in unseen {
            // The exchange is over: nothing is left to withhold.
            let _ = self.taint(warden, &call, TaintReason::AnswerUnseen);
        }
    }

    /// Record a taint event for this request's caller and session; `false` if the
    /// answer must be withheld (see [`observe::record_taint`]).
    fn taint(&self, warden: &Warden, call: &SourceCall, reason: TaintReason) -> bool {
        observe::record_taint(warden, &self.facts, &self.admitted.identity, call, reason)
    }
}

/// `head` then `tail`, copying only when both hold bytes.
fn concat(head: Bytes, tail: Bytes) -> Bytes {
    match (head.is_empty(), tail.is_empty()) {
        (_, true) => head,
        (true, false) => tail,
        (false, false) => {
            let mut joined = BytesMut::from(&head[..]);
            joined.extend_from_slice(&tail);
            joined.freeze()
        }
    }
}

/// The filter's view of one request: its own list ids first, then the session's; and
/// the request's calls of taint sources.
struct Scope<'a> {
    warden: &'a Warden,
    own_lists: &'a mut HashMap<String, ListKind>,
    /// Watched source calls, by id key.
    sources: &'a mut HashMap<String, SourceCall>,
    /// Source calls answered as failed, still watched for a second answer.
    failed: &'a mut HashMap<String, SourceCall>,
    /// Calls that may be answered with a task handle, by id key.
    tasks: &'a mut HashMap<String, TaskCall>,
    /// Source calls to taint for, once the filter is done with this chunk.
    tainting: &'a mut Vec<(SourceCall, TaintReason)>,
    session_id: Option<&'a str>,
    /// A GET stream, which a client may resume to replay answers: answered list ids
    /// are filtered again.
    replays: bool,
    identity: &'a Identity,
    /// The connection's verified client certificate (a GET stream's `context.mtls`).
    client_cert: Option<&'a Arc<crate::auth::ClientCert>>,
    generation: Option<&'a Arc<Generation>>,
    env: Option<&'a RequestEnv>,
    /// For audit lines about definitions seen in this answer.
    request_id: &'a str,
    /// The taint labels read when a GET stream was admitted.
    admitted_taints: &'a [String],
    /// The generation a GET stream's lists are judged by, taken once for this chunk.
    pinned: &'a OnceCell<Arc<Generation>>,
    /// A GET stream's environment, built once for this chunk.
    stream_env: &'a OnceCell<RequestEnv>,
    /// The listing question of this chunk's lists: one caller, one environment, one
    /// generation for every item.
    listing: Option<Box<dyn Listing + 'a>>,
}

impl<'a> Scope<'a> {
    /// The listing, built at the first item. A POST answer is filtered by the
    /// generation and environment its request was decided with; a long-lived GET
    /// stream by the generation in force when the chunk arrived and the taints read at
    /// admission.
    fn listing(&mut self) -> &dyn Listing {
        if self.listing.is_none() {
            let pinned: &'a OnceCell<Arc<Generation>> = self.pinned;
            let stream_env: &'a OnceCell<RequestEnv> = self.stream_env;
            let warden = self.warden;
            let generation: &'a Arc<Generation> = match self.generation {
                Some(g) => g,
                None => pinned.get_or_init(|| warden.policies.current()),
            };
            let (session_id, taints) = (self.session_id, self.admitted_taints);
            let client_cert = self.client_cert;
            let env: &'a RequestEnv = match self.env {
                Some(env) => env,
                None => stream_env.get_or_init(|| RequestEnv {
                    time: SystemTime::now(),
                    source_ip: None,
                    session_id: session_id.map(str::to_owned),
                    taints: taints.to_vec(),
                    protocol_version: None,
                    mtls: client_cert.cloned(),
                }),
            };
            let query = ListQuery {
                identity: self.identity,
                env,
            };
            self.listing = Some(generation.engine.listing(&query));
        }
        self.listing.as_deref().expect("built above")
    }
}

impl ListScope for Scope<'_> {
    fn pending(&self) -> bool {
        !self.own_lists.is_empty()
            || self
                .session_id
                .is_some_and(|sid| self.warden.sessions.has_pending(sid, self.replays))
    }

    fn watching(&self) -> bool {
        !self.sources.is_empty() || !self.failed.is_empty() || !self.tasks.is_empty()
    }

    /// Judge an answer to a watched call. A call answered as failed stays watched: a
    /// second answer to its id is judged too (a success then taints), so the first
    /// answer cannot switch watching off.
    fn answered(&mut self, id_key: &str, message: &Value) {
        if let Some(task_id) = self
            .tasks
            .get(id_key)
            .and_then(|_| created_task_id(message))
        {
            // A task handle: bound to this caller (one answer binds; a repeat is harmless,
            // an id another principal holds keeps its owner).
            if let Some(call) = self.tasks.remove(id_key) {
                let owner = self.identity.principal_key();
                if let Err(e) = self.warden.tasks.bind(task_id, &owner, call) {
                    tracing::warn!(error = %e, "upstream issued a task id owned by another principal");
                }
            }
        }
        let Some(call) = self
            .sources
            .remove(id_key)
            .or_else(|| self.failed.remove(id_key))
        else {
            return;
        };
        match call_outcome(message) {
            CallOutcome::Succeeded => self.tainting.push((call, TaintReason::SourceSucceeded)),
            CallOutcome::Unreadable => self.tainting.push((call, TaintReason::AnswerUnreadable)),
            CallOutcome::Failed => {
                tracing::debug!(tool = %call.tool, "taint source call failed; nothing recorded");
                self.failed.insert(id_key.to_owned(), call);
            }
        }
    }

    fn unreadable(&mut self) {
        let unread: Vec<SourceCall> = self
            .sources
            .drain()
            .chain(self.failed.drain())
            .map(|(_, call)| call)
            .collect();
        self.tainting.extend(
            unread
                .into_iter()
                .map(|call| (call, TaintReason::AnswerUnreadable)),
        );
    }

    fn take(&mut self, id_key: &str) -> Option<ListKind> {
        // An own list request stays one after its first answer: a repeat on this stream
        // is filtered too.
        if let Some(kind) = self.own_lists.get(id_key).copied() {
            if let Some(sid) = self.session_id {
                self.warden.sessions.mark_answered(sid, id_key, kind);
            }
            return Some(kind);
        }
        self.session_id
            .and_then(|sid| self.warden.sessions.take_pending(sid, id_key))
    }

    fn own_list_ids(&self) -> Vec<Value> {
        let keys = self.own_lists.keys();
        keys.filter_map(|k| serde_json::from_str(k).ok()).collect()
    }

    fn overrides(&self, name: &str) -> Option<&Map<String, Value>> {
        self.warden.annotations.overrides_of(name)
    }

    fn keep(
        &mut self,
        kind: ListKind,
        name: &str,
        annotations: Option<ItemAnnotations<'_>>,
        item: &ListItem<'_>,
    ) -> bool {
        // Pinning first: a hidden definition is hidden from everyone, whatever the policy.
        let mut definition = DefinitionFacts::default();
        if let (true, Some(pinned_kind)) = (
            self.warden.catalogue.active(),
            DefinitionKind::of_list(kind),
        ) {
            let observed =
                self.warden
                    .catalogue
                    .observe(pinned_kind, item.object(), &self.warden.state);
            observe::record_definitions(self.warden, self.request_id, &observed.events);
            if !observed.visible {
                self.warden.metrics.hidden(kind, 1);
                return false;
            }
            definition = observed.facts;
        }
        let merged;
        let annotations = if kind == ListKind::Tools {
            self.warden.annotations.record(name, annotations);
            match self.warden.annotations.overridden(name, annotations) {
                Some(map) => {
                    merged = map;
                    Some(ItemAnnotations::Map(&merged))
                }
                None => annotations,
            }
        } else {
            annotations
        };
        let item = ListedItem {
            kind,
            name,
            annotations,
            definition,
        };
        let listed = self.listing().may_list(&item);
        if !listed {
            self.warden.metrics.hidden(kind, 1);
        }
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AuthzRequest, Decision, PolicyEngine};

    fn head<'a>(status: u16, content_type: &'a str, encoding: Option<&'a str>) -> AnswerHead<'a> {
        AnswerHead {
            status,
            content_type,
            content_encoding: encoding.map(str::as_bytes),
            session_id: None,
        }
    }

    const LISTS: Expecting = Expecting {
        own_lists: true,
        session_lists: false,
        watching: false,
        in_session: false,
    };
    const SESSION_LISTS: Expecting = Expecting {
        own_lists: false,
        session_lists: true,
        watching: false,
        in_session: true,
    };
    const WATCHING: Expecting = Expecting {
        own_lists: false,
        session_lists: false,
        watching: true,
        in_session: false,
    };
    const IN_SESSION: Expecting = Expecting {
        own_lists: false,
        session_lists: false,
        watching: false,
        in_session: true,
    };

    #[test]
    fn nothing_expected_passes_whatever_the_form() {
        for ct in ["application/json", "text/plain", ""] {
            for enc in [None, Some("gzip")] {
                assert_eq!(
                    plan(&head(200, ct, enc), Expecting::default()),
                    AnswerPlan::Pass
                );
            }
        }
        // JSON in a session carries no list unless one is outstanding
        assert_eq!(
            plan(&head(200, "application/json", None), IN_SESSION),
            AnswerPlan::Pass
        );
    }

    #[test]
    fn list_answers_are_filtered_or_withheld() {
        for expecting in [LISTS, SESSION_LISTS] {
            assert_eq!(
                plan(
                    &head(200, "application/json; charset=utf-8", None),
                    expecting
                ),
                AnswerPlan::FilterJson
            );
            assert_eq!(
                plan(&head(200, "Text/Event-Stream", None), expecting),
                AnswerPlan::FilterSse
            );
            assert_eq!(
                plan(&head(200, "text/html", None), expecting),
                AnswerPlan::Withhold,
                "a list answer in a form the proxy cannot read"
            );
            assert_eq!(plan(&head(500, "", None), expecting), AnswerPlan::Withhold);
            for ct in ["application/json", "text/event-stream"] {
                assert_eq!(
                    plan(&head(200, ct, Some("br")), expecting),
                    AnswerPlan::Withhold,
                    "compressed"
                );
                assert_eq!(
                    plan(&head(200, ct, Some("IDENTITY")), expecting),
                    plan(&head(200, ct, None), expecting)
                );
            }
        }
        assert_eq!(AnswerPlan::Withhold.rewrite(), HeadRewrite::Withhold);
        assert_eq!(AnswerPlan::FilterSse.rewrite(), HeadRewrite::Reframe);
        assert_eq!(AnswerPlan::Pass.rewrite(), HeadRewrite::Keep);
    }

    #[test]
    fn every_event_stream_is_read_for_lists_it_may_carry() {
        for expecting in [IN_SESSION, Expecting::default()] {
            assert_eq!(
                plan(&head(200, "text/event-stream", None), expecting),
                AnswerPlan::FilterSse
            );
            assert_eq!(
                plan(&head(200, "text/event-stream", Some("gzip")), expecting),
                AnswerPlan::Withhold
            );
        }
    }

    #[test]
    fn watched_answers_are_read_or_pass_unread() {
        assert_eq!(
            plan(&head(200, "application/json", None), WATCHING),
            AnswerPlan::WatchJson
        );
        assert_eq!(
            plan(&head(200, "text/event-stream", None), WATCHING),
            AnswerPlan::FilterSse
        );
        assert_eq!(
            plan(&head(200, "application/octet-stream", None), WATCHING),
            AnswerPlan::PassUnread
        );
        assert_eq!(AnswerPlan::PassUnread.rewrite(), HeadRewrite::Keep);
        let both = Expecting {
            watching: true,
            ..LISTS
        };
        assert_eq!(
            plan(&head(200, "application/json", None), both),
            AnswerPlan::FilterJson
        );
    }

    /// An engine whose listing says `lists`, and swaps `next` in as a new generation
    /// each time it is asked about an item: a reload in the middle of a list.
    struct ReloadingMidList {
        lists: bool,
        warden: &'static Warden,
        next: Option<Arc<dyn PolicyEngine>>,
    }

    impl PolicyEngine for ReloadingMidList {
        fn name(&self) -> &'static str {
            "reloading"
        }
        fn decide(&self, _: &AuthzRequest<'_>) -> Decision {
            Decision::deny_error("not asked", 0)
        }
        fn listing<'a>(&'a self, _: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
            Box::new(self)
        }
    }

    impl Listing for &ReloadingMidList {
        fn may_list(&self, _: &ListedItem<'_>) -> bool {
            if let Some(next) = &self.next {
                self.warden.policies.install(next.clone());
            }
            self.lists
        }
    }

    #[test]
    fn a_stream_list_is_judged_by_one_generation_across_a_reload() {
        let warden: &'static Warden = Box::leak(Box::new(crate::exchange::test_warden()));
        let hide_all: Arc<dyn PolicyEngine> = Arc::new(ReloadingMidList {
            lists: false,
            warden,
            next: None,
        });
        warden.policies.install(Arc::new(ReloadingMidList {
            lists: true,
            warden,
            next: Some(hide_all),
        }));
        let identity = Identity::anonymous();
        let sid = "s-reload";
        warden
            .sessions
            .bind(sid, &identity.principal_key())
            .expect("bound");
        warden
            .sessions
            .add_pending(
                sid,
                crate::mcp::id_key(&serde_json::json!(1)),
                ListKind::Tools,
            )
            .expect("pending");
        let admitted = Admitted {
            identity: Arc::new(identity),
            session_id: Some(sid.to_owned()),
            kind: RequestKind::StreamGet,
            protocol_version: None,
            client_cert: None,
        };
        let facts = RequestFacts {
            request_id: "r-1".to_owned(),
            http_method: "GET".to_owned(),
            source: None,
            session_id: Some(sid.to_owned()),
            started: std::time::Instant::now(),
        };
        let mut exchange = Exchange::new(admitted, Vec::new(), &facts, None);
        let rewrite = exchange.answer_head(
            warden,
            &AnswerHead {
                status: 200,
                content_type: "text/event-stream",
                content_encoding: None,
                session_id: None,
            },
        );
        assert_eq!(rewrite, HeadRewrite::Reframe);
        let tools: Vec<Value> = (0..3)
            .map(
                |i| serde_json::json!({"name": format!("t{i}"), "inputSchema": {"type": "object"}}),
            )
            .collect();
        let message = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}});
        let event = format!("event: message\ndata: {message}\n\n");
        let mut chunk = Some(Bytes::from(event));
        exchange.answer_chunk(warden, &mut chunk, false);
        let out = String::from_utf8(chunk.expect("a chunk").to_vec()).expect("utf-8");
        // The first item's question swapped a hide-everything generation in; the list
        // was still judged whole by the generation it started with.
        for name in ["t0", "t1", "t2"] {
            assert!(
                out.contains(&format!("\"{name}\"")),
                "{name} missing: {out}"
            );
        }
        assert_eq!((exchange.stats().lists, exchange.stats().hidden), (1, 0));
        // Generation 2 was asked about all three items (each swapped a new one in).
        assert_eq!(warden.policies.current().number, 5);
    }

    #[test]
    fn parts_are_joined_without_copying_an_empty_one() {
        let a = Bytes::from_static(b"ab");
        assert_eq!(concat(a.clone(), Bytes::new()), a);
        assert_eq!(concat(Bytes::new(), a.clone()), a);
        assert_eq!(&concat(a.clone(), Bytes::from_static(b"c"))[..], b"abc");
    }
}
