//! The `ProxyHttp` implementation: each callback is a few calls into plain functions.
//!
//! Order per request: check path, method and `Origin` → authenticate → check the
//! session → (POST) read and parse the whole body, check mirrored headers, decide (with
//! the session's and credential's taint labels) → forward with identity headers →
//! filter list results in the answer, and watch the answers to taint sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::mcp::errors::{error_response, INTERNAL_ERROR};
use crate::mcp::headers::check_mirrored_headers;
use crate::mcp::{parse_request_body, ListKind};
use crate::policy::{Generation, ListedItem, RequestEnv};
use crate::taint::{call_outcome, CallOutcome, SourceCall, TaintReason};

use super::body::{has_body, read_whole_body};
use super::forward::{headers_to_strip, identity_headers};
use super::lifecycle::{InFlight, Kind};
use super::observe::{self, request_id, taint_credential, RequestFacts, REQUEST_ID_HEADER};
use super::respond::Refusal;
use super::response::{FilterStats, JsonBuffer, ListScope, SseFilter};
use super::sessions::id_key;
use super::verdict::{authorize_body, BodyVerdict};
use super::Warden;

const SESSION_HEADER: &str = "mcp-session-id";

/// The Pingora service.
pub struct WardenProxy {
    warden: Arc<Warden>,
}

impl WardenProxy {
    /// Wrap the shared state.
    pub fn new(warden: Arc<Warden>) -> Self {
        WardenProxy { warden }
    }
}

/// Per-request state, typed.
pub struct RequestCtx {
    started: Instant,
    identity: Option<Identity>,
    generation: Option<Arc<Generation>>,
    env: Option<RequestEnv>,
    /// The full request body to forward (POST).
    body: Option<Bytes>,
    /// The session the request belongs to, if any.
    session_id: Option<String>,
    /// List requests in this POST body, by id key.
    lists: HashMap<String, ListKind>,
    /// Calls of taint sources in this POST body awaiting their answer, by id key.
    sources: HashMap<String, SourceCall>,
    /// Calls of taint sources sent as notifications: no answer to watch.
    silent_sources: Vec<SourceCall>,
    /// The upstream's response status, once its header arrived.
    upstream_status: Option<u16>,
    /// A DELETE that should forget the session when it succeeds.
    deleting: bool,
    /// A GET (SSE stream, possibly resumed).
    stream_get: bool,
    /// The caller's taint labels read when the request was admitted (for filtering the
    /// lists a GET stream carries, which have no decided body).
    admitted_taints: Vec<String>,
    response: ResponseMode,
    stats: FilterStats,
    /// See [`observe::request_id`].
    request_id: String,
    /// Counted as in flight until the context is dropped.
    in_flight: InFlight,
    /// The `method` label of the upstream latency histogram.
    upstream_label: &'static str,
    /// When the upstream was picked.
    upstream_started: Option<Instant>,
}

enum ResponseMode {
    Pass,
    Json(JsonBuffer),
    Sse(SseFilter),
    /// The answer cannot be filtered (e.g. compressed despite asking for identity):
    /// replaced by an error.
    Withhold,
}

#[async_trait]
impl ProxyHttp for WardenProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            identity: None,
            generation: None,
            env: None,
            body: None,
            session_id: None,
            lists: HashMap::new(),
            sources: HashMap::new(),
            silent_sources: Vec::new(),
            upstream_status: None,
            deleting: false,
            stream_get: false,
            admitted_taints: Vec::new(),
            response: ResponseMode::Pass,
            stats: FilterStats::default(),
            request_id: String::new(),
            in_flight: self.warden.lifecycle.enter(),
            upstream_label: crate::metrics::OTHER,
            upstream_started: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = request_id(&session.req_header().headers);
        if session.req_header().method == http::Method::GET {
            ctx.in_flight.set_kind(Kind::Stream);
        }
        let admitted = if self.warden.audit.refusing() {
            Err(Refusal::AuditUnavailable)
        } else {
            self.admit(session, ctx).await
        };
        match admitted {
            Ok(()) => Ok(false),
            Err(refusal) => {
                self.log_refusal(session, ctx, &refusal);
                write_refusal(session, &refusal, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let up = &self.warden.config.upstream;
        let timeouts = &self.warden.config.raw.upstream_timeouts;
        let mut peer = HttpPeer::new(up.authority.as_str(), up.tls, up.host.clone());
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(match ctx.in_flight.kind() {
            Kind::Stream => timeouts.sse_idle,
            Kind::Exchange => timeouts.read,
        });
        peer.options.idle_timeout = Some(timeouts.pool_idle);
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let cfg = &self.warden.config.raw.identity_headers;
        for name in headers_to_strip(cfg, &upstream_request.headers) {
            upstream_request.remove_header(&name);
        }
        if let Some(identity) = &ctx.identity {
            for (name, value) in identity_headers(cfg, identity) {
                upstream_request.insert_header(name, value)?;
            }
        }
        // The proxy must read what it filters: ask for an uncompressed answer.
        upstream_request.insert_header("accept-encoding", "identity")?;
        upstream_request.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
        upstream_request.insert_header("host", self.warden.config.upstream.authority.as_str())?;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Pingora replays (the tail of) the body it buffered; send the whole body read
        // in `request_filter` instead, exactly once per upstream attempt.
        if let Some(full) = &ctx.body {
            *body = end_of_stream.then(|| full.clone());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started.take() {
            self.warden
                .metrics
                .upstream_seconds
                .with_label_values(&[ctx.upstream_label])
                .observe(started.elapsed().as_secs_f64());
        }
        upstream_response.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
        let status = upstream_response.status.as_u16();
        ctx.upstream_status = Some(status);
        if let (Some(sid), Some(identity)) = (
            upstream_response
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok()),
            &ctx.identity,
        ) {
            if (200..300).contains(&status) {
                if let Err(e) = self.warden.sessions.bind(sid, &identity.principal_key()) {
                    tracing::warn!(error = %e, "upstream issued a session id owned by another principal");
                    ctx.response = ResponseMode::Withhold;
                    rewrite_as_error(upstream_response)?;
                    return Ok(());
                }
                if ctx.session_id.is_none() {
                    ctx.session_id = Some(sid.to_owned());
                }
            }
        }
        if ctx.deleting && (200..300).contains(&status) {
            if let Some(sid) = &ctx.session_id {
                self.warden.sessions.remove(sid);
                self.warden.state.forget_session(sid);
            }
        }

        let content_type = upstream_response
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_sse = content_type.starts_with("text/event-stream");
        let is_json = content_type.starts_with("application/json");
        // On a GET stream, the session's outstanding (and, for replays, answered) list
        // requests may be answered: in a form the proxy cannot read, that is withheld too.
        let session_lists = ctx
            .session_id
            .as_deref()
            .is_some_and(|sid| self.warden.sessions.has_pending(sid, ctx.stream_get));
        let must_filter = !ctx.lists.is_empty() || session_lists;
        let watching = !ctx.sources.is_empty();
        let may_carry_lists = must_filter || (is_sse && ctx.session_id.is_some());
        if !may_carry_lists && !watching {
            return Ok(());
        }
        let encoded = upstream_response
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let limit = self.warden.config.raw.limits.max_response_bytes;
        ctx.response = if encoded && (is_json || is_sse) {
            tracing::warn!("upstream compressed a response that must be filtered; withholding it");
            rewrite_as_error(upstream_response)?;
            ResponseMode::Withhold
        } else if is_sse {
            ResponseMode::Sse(SseFilter::new(limit))
        } else if is_json && must_filter {
            ResponseMode::Json(JsonBuffer::new(limit))
        } else if is_json {
            ResponseMode::Json(JsonBuffer::watching(limit))
        } else if must_filter {
            // An answer to a list request in a form the proxy cannot read.
            rewrite_as_error(upstream_response)?;
            ResponseMode::Withhold
        } else {
            // The answer to a taint source in a form the proxy cannot read: it passes,
            // and a successful status taints before a byte of it does. (An HTTP error
            // with a body of another type is no tool result.)
            let unread: Vec<SourceCall> = ctx.sources.drain().map(|(_, call)| call).collect();
            let mut written = true;
            if (200..300).contains(&status) {
                for call in unread {
                    written &= self.taint(session, ctx, &call, TaintReason::AnswerUnreadable);
                }
            }
            if written {
                ResponseMode::Pass
            } else {
                // The taint could not be shared: the data must not go out.
                rewrite_as_error(upstream_response)?;
                ResponseMode::Withhold
            }
        };
        if matches!(ctx.response, ResponseMode::Json(_) | ResponseMode::Sse(_)) {
            reframe(upstream_response)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let mut mode = std::mem::replace(&mut ctx.response, ResponseMode::Pass);
        let withheld_before = ctx.stats.withheld;
        let mut tainting = Vec::new();
        {
            let mut scope = Scope {
                warden: &self.warden,
                ctx_lists: &mut ctx.lists,
                sources: &mut ctx.sources,
                tainting: &mut tainting,
                session_id: ctx.session_id.as_deref(),
                replays: ctx.stream_get,
                identity: ctx.identity.as_ref(),
                generation: ctx.generation.as_ref(),
                env: ctx.env.as_ref(),
                admitted_taints: &ctx.admitted_taints,
            };
            match &mut mode {
                ResponseMode::Pass => {}
                ResponseMode::Json(buffer) => {
                    let mut out = match body.take() {
                        Some(chunk) => buffer.push(&chunk, &mut scope),
                        None => Bytes::new(),
                    };
                    if end_of_stream {
                        out = concat(out, buffer.finish(&mut scope, &mut ctx.stats));
                    }
                    *body = Some(out);
                }
                ResponseMode::Sse(filter) => {
                    let mut out = match body.take() {
                        Some(chunk) => filter.push(&chunk, &mut scope, &mut ctx.stats),
                        None => Bytes::new(),
                    };
                    if end_of_stream {
                        out = concat(out, filter.finish(&mut scope, &mut ctx.stats));
                    }
                    *body = Some(out);
                }
                ResponseMode::Withhold => {
                    *body = Some(if end_of_stream {
                        Bytes::from(
                            error_response(
                                None,
                                crate::mcp::errors::UPSTREAM_UNFILTERABLE,
                                super::response::UNFILTERABLE_MESSAGE,
                                None,
                            )
                            .to_string(),
                        )
                    } else {
                        Bytes::new()
                    });
                }
            }
        }
        ctx.response = mode;
        // Before the answer goes out: the client must not hold the data untainted.
        let mut written = true;
        for (call, reason) in tainting {
            written &= self.taint(session, ctx, &call, reason);
        }
        if !written {
            // The taint could not be shared with the other replicas (and fails closed):
            // this chunk and the rest of the answer are withheld.
            ctx.response = ResponseMode::Withhold;
            *body = Some(if end_of_stream {
                Bytes::from(
                    error_response(
                        None,
                        crate::mcp::errors::STATE_UNAVAILABLE,
                        "shared state unavailable; answer withheld",
                        None,
                    )
                    .to_string(),
                )
            } else {
                Bytes::new()
            });
        }
        if end_of_stream {
            self.taint_unseen(session, ctx);
        }
        let withheld = ctx.stats.withheld - withheld_before;
        if withheld > 0 {
            self.warden
                .metrics
                .list_results_withheld
                .inc_by(withheld as u64);
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.esource() {
            pingora::ErrorSource::Upstream => 502,
            pingora::ErrorSource::Downstream => 0,
            _ => 500,
        };
        if code == 502 {
            let kind = observe::upstream_error_kind(&e.etype, ctx.in_flight.kind() == Kind::Stream);
            self.warden
                .metrics
                .upstream_errors
                .with_label_values(&[kind])
                .inc();
            if kind == "stream_idle_timeout" {
                tracing::info!(request_id = %ctx.request_id, "idle event stream closed");
            } else {
                tracing::warn!(request_id = %ctx.request_id, kind, error = %e, "upstream failed");
            }
        }
        if code > 0 && session.response_written().is_none() {
            let body = error_response(
                None,
                INTERNAL_ERROR,
                "upstream MCP server unavailable",
                None,
            );
            let headers = [(REQUEST_ID_HEADER, ctx.request_id.clone())];
            let _ = write_json(session, code, &headers, &body).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(
        &self,
        session: &mut Session,
        e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if status > 0 {
            self.warden.metrics.http_response(status);
        }
        // An answer cut short (upstream or client gone) never reached end of stream.
        self.taint_unseen(session, ctx);
        tracing::debug!(
            request_id = %ctx.request_id,
            status,
            elapsed_us = ctx.started.elapsed().as_micros() as u64,
            hidden = ctx.stats.hidden,
            withheld = ctx.stats.withheld,
            error = e.map(|e| e.to_string()),
            "request done"
        );
    }
}

impl WardenProxy {
    /// Everything before forwarding. `Err` means answer with that refusal.
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Refusal> {
        let warden = &*self.warden;
        let cfg = &warden.config.raw;
        let req = session.req_header();

        if req.uri.path() != warden.config.upstream.path {
            return Err(Refusal::NotFound);
        }
        let method = req.method.clone();
        if !matches!(method.as_str(), "POST" | "GET" | "DELETE") {
            return Err(Refusal::MethodNotAllowed);
        }
        check_origin(&req.headers, &cfg.http.allowed_origins)?;

        let identity =
            warden
                .auth
                .authenticate(&req.headers)
                .map_err(|error| Refusal::Unauthenticated {
                    error,
                    resource_metadata: cfg.http.resource_metadata.clone(),
                })?;

        // Known from here on, so refusals name who was refused.
        ctx.identity = Some(identity.clone());
        let session_id = session_header(&req.headers)?;
        if let Some(sid) = &session_id {
            warden.sessions.check(sid, &identity.principal_key())?;
        }
        let protocol_version = req
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        ctx.session_id = session_id.clone();
        let credential = taint_credential(warden, &identity);

        if method != "POST" {
            if has_body(session) {
                return Err(Refusal::UnexpectedBody);
            }
            let caller =
                check_caller(warden, &identity, &credential, session_id.as_deref()).await?;
            ctx.admitted_taints = caller.taints;
            ctx.upstream_label = if method == "GET" {
                "http_get"
            } else {
                "http_delete"
            };
            ctx.deleting = method == "DELETE";
            ctx.stream_get = method == "GET";
            ctx.identity = Some(identity);
            return Ok(());
        }

        if let Some(encoding) = session
            .req_header()
            .headers
            .get(http::header::CONTENT_ENCODING)
        {
            let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
            if !encoding.trim().eq_ignore_ascii_case("identity") {
                return Err(Refusal::Encoded { encoding });
            }
        }
        let bytes = read_whole_body(
            session,
            cfg.limits.max_body_bytes,
            cfg.limits.body_read_timeout,
        )
        .await?;
        let parsed =
            parse_request_body(&bytes, cfg.limits.max_json_depth).map_err(Refusal::Body)?;
        check_mirrored_headers(&session.req_header().headers, &parsed)
            .map_err(Refusal::HeaderMismatch)?;

        let caller = check_caller(warden, &identity, &credential, session_id.as_deref()).await?;
        let env = RequestEnv {
            time: SystemTime::now(),
            source_ip: client_ip(session),
            session_id: session_id.clone(),
            taints: caller.taints,
            protocol_version: protocol_version.or_else(|| {
                parsed
                    .messages
                    .iter()
                    .find_map(|m| m.protocol_version.clone())
            }),
        };
        let generation = warden.policies.current();
        let deciding = Instant::now();
        let verdict = authorize_body(
            generation.engine.as_ref(),
            &identity,
            &parsed,
            &env,
            &warden.annotations,
        );
        let elapsed = deciding.elapsed();
        ctx.upstream_label = match parsed.messages.as_slice() {
            [one] => crate::metrics::method_label(one.method.as_deref()),
            _ => "batch",
        };
        let (BodyVerdict::Refuse { decisions, .. } | BodyVerdict::Forward { decisions, .. }) =
            &verdict;
        let decided = observe::Decided {
            identity: &identity,
            env: &env,
            engine: generation.engine.name(),
            messages: &parsed.messages,
            decisions,
            elapsed,
        };
        let audited = observe::record_decisions(warden, &facts(session, ctx), &decided);
        match verdict {
            BodyVerdict::Refuse { status, body, .. } => {
                ctx.identity = Some(identity);
                Err(Refusal::Denied { status, body })
            }
            BodyVerdict::Forward { lists, .. } => {
                if audited.is_err() && warden.audit.fails_closed() {
                    ctx.identity = Some(identity);
                    return Err(Refusal::AuditUnavailable);
                }
                // Only bodies the policy allows spend rate-limit budget.
                if warden.state.has_rate_limits() {
                    if let Err(refusal) = warden.state.spend(&identity, &parsed.messages).await {
                        ctx.identity = Some(identity);
                        return Err(state_refusal(refusal, cfg));
                    }
                }
                if let Some(sid) = &session_id {
                    for (key, kind) in &lists {
                        warden.sessions.add_pending(sid, key.clone(), *kind)?;
                    }
                }
                ctx.lists = lists.into_iter().collect();
                for call in warden.sources.calls_in(&parsed.messages) {
                    match &call.jsonrpc_id {
                        Some(id) => {
                            ctx.sources.insert(id_key(id), call);
                        }
                        None => ctx.silent_sources.push(call),
                    }
                }
                ctx.body = Some(bytes);
                ctx.identity = Some(identity);
                ctx.generation = Some(generation);
                ctx.env = Some(env);
                Ok(())
            }
        }
    }

    /// Record a taint event for this request's caller and session; `false` if the
    /// answer must be withheld (see [`observe::record_taint`]).
    fn taint(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        call: &SourceCall,
        reason: TaintReason,
    ) -> bool {
        let Some(identity) = &ctx.identity else {
            return true;
        };
        observe::record_taint(&self.warden, &facts(session, ctx), identity, call, reason)
    }

    /// At the end of an exchange: source calls whose answer the proxy never saw, though
    /// the upstream accepted the request (2xx), taint — the client may get the answer
    /// elsewhere (a resumed stream), so fail closed. An upstream that never answered, or
    /// refused the request, returned no data.
    fn taint_unseen(&self, session: &Session, ctx: &mut RequestCtx) {
        if !ctx.upstream_status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        let mut unseen: Vec<SourceCall> = ctx.sources.drain().map(|(_, call)| call).collect();
        unseen.append(&mut ctx.silent_sources);
        for call in unseen {
            // The exchange is over: nothing is left to withhold.
            let _ = self.taint(session, ctx, &call, TaintReason::AnswerUnseen);
        }
    }

    fn log_refusal(&self, session: &Session, ctx: &RequestCtx, refusal: &Refusal) {
        observe::record_refusal(
            &self.warden,
            &facts(session, ctx),
            session.req_header().uri.path(),
            ctx.identity.as_ref(),
            refusal,
        );
    }
}

/// The filter's view of one request: its own list ids first, then the session's; and
/// the request's calls of taint sources.
struct Scope<'a> {
    warden: &'a Warden,
    ctx_lists: &'a mut HashMap<String, ListKind>,
    /// Watched source calls, by id key.
    sources: &'a mut HashMap<String, SourceCall>,
    /// Source calls to taint for, once the filter is done with this chunk.
    tainting: &'a mut Vec<(SourceCall, TaintReason)>,
    session_id: Option<&'a str>,
    /// A GET stream, which a client may resume to replay answers: answered list ids
    /// are filtered again.
    replays: bool,
    identity: Option<&'a Identity>,
    generation: Option<&'a Arc<Generation>>,
    env: Option<&'a RequestEnv>,
    /// The taint labels read when a GET stream was admitted.
    admitted_taints: &'a [String],
}

impl ListScope for Scope<'_> {
    fn pending(&self) -> bool {
        !self.ctx_lists.is_empty()
            || self
                .session_id
                .is_some_and(|sid| self.warden.sessions.has_pending(sid, self.replays))
    }

    fn watching(&self) -> bool {
        !self.sources.is_empty()
    }

    fn answered(&mut self, id_key: &str, message: &Value) {
        let Some(call) = self.sources.remove(id_key) else {
            return;
        };
        match call_outcome(message) {
            CallOutcome::Succeeded => self.tainting.push((call, TaintReason::SourceSucceeded)),
            CallOutcome::Unreadable => self.tainting.push((call, TaintReason::AnswerUnreadable)),
            CallOutcome::Failed => {
                tracing::debug!(tool = %call.tool, "taint source call failed; nothing recorded")
            }
        }
    }

    fn unreadable(&mut self) {
        self.tainting.extend(
            self.sources
                .drain()
                .map(|(_, call)| (call, TaintReason::AnswerUnreadable)),
        );
    }

    fn take(&mut self, id_key: &str) -> Option<ListKind> {
        if let Some(kind) = self.ctx_lists.remove(id_key) {
            if let Some(sid) = self.session_id {
                self.warden.sessions.mark_answered(sid, id_key, kind);
            }
            return Some(kind);
        }
        self.session_id
            .and_then(|sid| self.warden.sessions.take_pending(sid, id_key, self.replays))
    }

    fn keep(
        &mut self,
        kind: ListKind,
        name: &str,
        annotations: Option<&Map<String, Value>>,
    ) -> bool {
        let overridden;
        let annotations = if kind == ListKind::Tools {
            self.warden.annotations.record(name, annotations);
            overridden = self.warden.annotations.overridden(name, annotations);
            overridden.as_deref()
        } else {
            annotations
        };
        let Some(identity) = self.identity else {
            return false;
        };
        // A POST answer is filtered by the generation its request was decided with; a
        // long-lived GET stream by the generation in force now.
        let current;
        let generation = match self.generation {
            Some(g) => g,
            None => {
                current = self.warden.policies.current();
                &current
            }
        };
        let fallback;
        let env = match self.env {
            Some(env) => env,
            None => {
                fallback = RequestEnv {
                    time: SystemTime::now(),
                    source_ip: None,
                    session_id: self.session_id.map(str::to_owned),
                    taints: self.admitted_taints.to_vec(),
                    protocol_version: None,
                };
                &fallback
            }
        };
        let item = ListedItem {
            kind,
            name,
            annotations,
        };
        let listed = generation.engine.may_list(identity, &item, env);
        if !listed {
            self.warden.metrics.hidden(kind, 1);
        }
        listed
    }
}

/// Revocation and taint of the caller from the shared state, in one round trip.
async fn check_caller(
    warden: &Warden,
    identity: &Identity,
    credential: &str,
    session_id: Option<&str>,
) -> Result<crate::state::CallerState, Refusal> {
    let taint = observe::taint_keys(warden, credential, session_id);
    warden
        .state
        .check_caller(identity, taint)
        .await
        .map_err(|r| state_refusal(r, &warden.config.raw))
}

/// The client's answer to a refusal of the shared state.
fn state_refusal(refusal: crate::state::StateRefusal, cfg: &crate::config::RawConfig) -> Refusal {
    use crate::state::StateRefusal;
    match refusal {
        StateRefusal::Revoked => Refusal::Unauthenticated {
            error: crate::auth::AuthError::Revoked,
            resource_metadata: cfg.http.resource_metadata.clone(),
        },
        StateRefusal::RateLimited { rule, retry_after } => {
            Refusal::RateLimited { rule, retry_after }
        }
        StateRefusal::Unavailable { feature, reason } => Refusal::StateUnavailable {
            feature: feature.as_str(),
            reason,
        },
    }
}

fn check_origin(headers: &http::HeaderMap, allowed: &[String]) -> Result<(), Refusal> {
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    if origins.next().is_some() || !allowed.iter().any(|a| a == &text) {
        return Err(Refusal::BadOrigin { origin: text });
    }
    Ok(())
}

fn session_header(headers: &http::HeaderMap) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(SESSION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::BadSessionHeader);
    }
    let text = value.to_str().map_err(|_| Refusal::BadSessionHeader)?;
    if text.is_empty() {
        return Err(Refusal::BadSessionHeader);
    }
    Ok(Some(text.to_owned()))
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    client_addr(session).map(|a| a.ip())
}

fn client_addr(session: &Session) -> Option<std::net::SocketAddr> {
    session.client_addr().and_then(|a| a.as_inet()).copied()
}

/// What every record of this request shares.
fn facts(session: &Session, ctx: &RequestCtx) -> RequestFacts {
    RequestFacts {
        request_id: ctx.request_id.clone(),
        http_method: session.req_header().method.to_string(),
        source: client_addr(session),
        session_id: ctx.session_id.clone(),
        started: ctx.started,
    }
}

/// `head` then `tail`, copying only when both hold bytes.
fn concat(head: Bytes, tail: Bytes) -> Bytes {
    match (head.is_empty(), tail.is_empty()) {
        (_, true) => head,
        (true, false) => tail,
        (false, false) => {
            let mut joined = bytes::BytesMut::from(&head[..]);
            joined.extend_from_slice(&tail);
            joined.freeze()
        }
    }
}

fn rewrite_as_error(resp: &mut ResponseHeader) -> Result<()> {
    resp.set_status(502)?;
    resp.remove_header(&http::header::CONTENT_ENCODING);
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    reframe(resp)
}

/// The proxy rewrites this answer's body, so the upstream's `Content-Length` no longer
/// holds: send it chunked. (Without any framing header an HTTP/1.1 body ends only when
/// the connection closes, which costs the client its keep-alive connection.)
fn reframe(resp: &mut ResponseHeader) -> Result<()> {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    Ok(())
}

async fn write_refusal(session: &mut Session, refusal: &Refusal, request_id: &str) -> Result<()> {
    // A request refused before its body was read (401, 413, …) may leave body bytes on
    // the connection: close it. One refused after the whole body was read (a policy
    // denial, a parse error) leaves the connection clean, and the client keeps it.
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
    let mut headers: Vec<(&str, String)> = refusal.headers();
    headers.push((REQUEST_ID_HEADER, request_id.to_owned()));
    write_json(session, refusal.status(), &headers, &refusal.body()).await
}

async fn write_json(
    session: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: &Value,
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    for (name, value) in headers {
        resp.insert_header(name.to_string(), value.as_str())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}
