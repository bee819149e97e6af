//! The `ProxyHttp` implementation: each callback is a call or two into
//! [`crate::exchange`].
//!
//! Order per request: [`admission::admit`] (path, method, `Origin`, credential,
//! session) → (POST) read the whole body and [`decide`] it → forward with identity
//! headers → [`Exchange::answer_head`] and [`Exchange::answer_chunk`] filter list results
//! in the answer and watch the answers to taint sources.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::Value;

use crate::exchange::admission::{self, Refused, RequestHead, RequestKind, SESSION_HEADER};
use crate::exchange::answer::{AnswerHead, Exchange, HeadRewrite};
use crate::exchange::decide::decide;
use crate::exchange::in_flight::{InFlight, Kind};
use crate::exchange::observe::{self, request_id, RequestFacts, REQUEST_ID_HEADER};
use crate::exchange::refusal::{Refusal, UpstreamFailed, Withheld};
use crate::exchange::shared;
use crate::exchange::Warden;

use super::body::read_whole_body;
use super::upstream;

/// The Pingora service.
pub struct WardenProxy {
    warden: Arc<Warden>,
    upstream_tls: Option<Arc<upstream::UpstreamTls>>,
}

impl WardenProxy {
    /// Wrap the shared state.
    pub fn new(warden: Arc<Warden>) -> Self {
        WardenProxy {
            warden,
            upstream_tls: None,
        }
    }

    /// Connect to an `https://` upstream with this material (`[upstream_tls]`).
    pub(crate) fn with_upstream_tls(mut self, tls: Arc<upstream::UpstreamTls>) -> Self {
        self.upstream_tls = Some(tls);
        self
    }
}

/// Per-request state, typed.
pub struct RequestCtx {
    /// What every record of this request shares (before admission: no session).
    facts: RequestFacts,
    /// Counted as in flight until the context is dropped.
    in_flight: InFlight,
    /// From admission to the end of the answer.
    exchange: Option<Exchange>,
    /// When the upstream was picked.
    upstream_started: Option<Instant>,
    /// The last bytes of an answer the proxy ended early (the error that ends it),
    /// written by `fail_to_proxy`: Pingora ends a body early only through an error.
    ended_tail: Option<Bytes>,
}

#[async_trait]
impl ProxyHttp for WardenProxy {
    type CTX = RequestCtx;

    /// No downstream modules. Pingora's default adds a response-compression module
    /// (disabled, yet built and called on every request); the proxy writes answers as the
    /// upstream sent them, uncompressed (it asks for `identity`), and adds nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            facts: RequestFacts {
                request_id: String::new(),
                http_method: String::new(),
                source: None,
                session_id: None,
                started: Instant::now(),
            },
            in_flight: self.warden.lifecycle.enter(),
            exchange: None,
            upstream_started: None,
            ended_tail: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.facts.request_id = request_id(&req.headers);
        ctx.facts.http_method = req.method.to_string();
        ctx.facts.source = client_addr(session);
        if let Some(metadata) = self
            .warden
            .resource_metadata
            .as_ref()
            .filter(|m| req.method == http::Method::GET && m.serves(req.uri.path()))
        {
            // RFC 9728: public, unauthenticated, and the same for every caller.
            let headers = [
                ("cache-control", "public, max-age=3600".to_owned()),
                ("access-control-allow-origin", "*".to_owned()),
                (REQUEST_ID_HEADER, ctx.facts.request_id.clone()),
            ];
            write_bytes(session, 200, &headers, metadata.document.clone()).await?;
            return Ok(true);
        }
        if RequestKind::of(&req.method) == Some(RequestKind::StreamGet) {
            ctx.in_flight.set_kind(Kind::Stream);
        }
        match self.admit(session, &ctx.facts).await {
            Ok(exchange) => {
                ctx.exchange = Some(exchange);
                Ok(false)
            }
            Err(refused) => {
                let facts = RequestFacts {
                    session_id: refused.session_id.clone(),
                    ..ctx.facts.clone()
                };
                observe::record_refusal(
                    &self.warden,
                    &facts,
                    session.req_header().uri.path(),
                    refused.identity.as_deref(),
                    &refused.refusal,
                );
                write_refusal(session, &refused.refusal, &ctx.facts.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(upstream::peer(
            &self.warden,
            ctx.in_flight.kind(),
            self.upstream_tls.as_deref(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let forwarding = &self.warden.forwarding;
        for name in forwarding.strip(&upstream_request.headers) {
            upstream_request.remove_header(&name);
        }
        if let Some(exchange) = &ctx.exchange {
            for (name, value) in forwarding.identity(exchange.identity()) {
                upstream_request.insert_header(name, value)?;
            }
            if let Some(cert) = exchange.client_cert() {
                for (name, value) in forwarding.client_cert(cert) {
                    upstream_request.insert_header(name, value)?;
                }
            }
        }
        // The proxy must read what it filters: ask for an uncompressed answer.
        upstream_request.insert_header("accept-encoding", "identity")?;
        upstream_request.insert_header(REQUEST_ID_HEADER, ctx.facts.request_id.as_str())?;
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
        if let Some(full) = ctx.exchange.as_ref().and_then(Exchange::forward_body) {
            *body = end_of_stream.then(|| full.clone());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(REQUEST_ID_HEADER, ctx.facts.request_id.as_str())?;
        let Some(exchange) = &mut ctx.exchange else {
            return Ok(()); // not admitted: never sent upstream
        };
        if let Some(started) = ctx.upstream_started.take() {
            self.warden
                .metrics
                .upstream_seconds
                .with_label_values(&[exchange.upstream_label()])
                .observe(started.elapsed().as_secs_f64());
        }
        let headers = &upstream_response.headers;
        let head = AnswerHead {
            status: upstream_response.status.as_u16(),
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            content_encoding: headers
                .get(http::header::CONTENT_ENCODING)
                .map(|v| v.as_bytes()),
            session_id: headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()),
        };
        match exchange.answer_head(&self.warden, &head) {
            HeadRewrite::Keep => Ok(()),
            HeadRewrite::Reframe => reframe(upstream_response),
            HeadRewrite::Withhold => withhold(upstream_response),
        }
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(exchange) = &mut ctx.exchange {
            exchange.answer_chunk(&self.warden, body, end_of_stream);
            if exchange.ended_early() && !end_of_stream {
                // An event stream the proxy can no longer filter ends here, with the error
                // this chunk carries: `fail_to_proxy` writes it and ends the body, and the
                // upstream connection is dropped.
                ctx.ended_tail = Some(body.take().unwrap_or_default());
                return Err(pingora::Error::explain(
                    pingora::ErrorType::Custom("answer_ended_early"),
                    "event stream ended by the proxy: an event too large to filter",
                ));
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if let Some(tail) = ctx.ended_tail.take() {
            session.set_keepalive(None);
            let _ = write_ended_stream(session, tail, &ctx.facts.request_id).await;
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let failed = match e.esource() {
            pingora::ErrorSource::Upstream => Some(UpstreamFailed::Unavailable),
            pingora::ErrorSource::Downstream => None,
            _ => Some(UpstreamFailed::Proxy),
        };
        if failed == Some(UpstreamFailed::Unavailable) {
            let kind =
                upstream::upstream_error_kind(&e.etype, ctx.in_flight.kind() == Kind::Stream);
            self.warden
                .metrics
                .upstream_errors
                .with_label_values(&[kind])
                .inc();
            let request_id = &ctx.facts.request_id;
            if kind == "stream_idle_timeout" {
                tracing::info!(%request_id, "idle event stream closed");
            } else {
                tracing::warn!(%request_id, kind, error = %e, "upstream failed");
            }
        }
        // Pingora closes the client's connection after a failed proxy attempt: say so
        // (`Connection: close`), or a keep-alive client sends its next request on a
        // connection being closed and sees a reset instead of this 502 (the soak's
        // "non-502 failures" while the upstream was down).
        session.set_keepalive(None);
        if let Some(failed) = failed.filter(|_| session.response_written().is_none()) {
            let headers = [(REQUEST_ID_HEADER, ctx.facts.request_id.clone())];
            let _ = write_json(session, failed.status(), &headers, &failed.body()).await;
        }
        FailToProxy {
            error_code: failed.map_or(0, UpstreamFailed::status),
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
        let stats = match &mut ctx.exchange {
            Some(exchange) => {
                // An answer cut short (upstream or client gone) never reached end of stream.
                exchange.taint_unseen(&self.warden);
                exchange.stats()
            }
            None => Default::default(),
        };
        tracing::debug!(
            request_id = %ctx.facts.request_id,
            status,
            elapsed_us = ctx.facts.started.elapsed().as_micros() as u64,
            hidden = stats.hidden,
            withheld = stats.withheld,
            error = e.map(|e| e.to_string()),
            "request done"
        );
    }
}

impl WardenProxy {
    /// Everything before forwarding: admit the request by its head, ask the shared state
    /// about its caller, and for a POST read the whole body, decide it and spend its
    /// rate-limit budget.
    async fn admit(
        &self,
        session: &mut Session,
        facts: &RequestFacts,
    ) -> Result<Exchange, Refused> {
        let warden = &*self.warden;
        let req = session.req_header();
        let tls = super::tls::connection_tls(session);
        let admitted = admission::admit(
            warden,
            &RequestHead {
                method: &req.method,
                path: req.uri.path(),
                headers: &req.headers,
                peer: facts.source,
                client_cert: tls.map(|t| &t.peer),
            },
        )?;
        let mut taints = shared::check_caller(warden, &admitted)
            .await
            .map_err(|refusal| admitted.refuse(refusal))?;
        let forward = match admitted.kind {
            RequestKind::Post => {
                let limits = &warden.config.raw.limits;
                let facts = RequestFacts {
                    session_id: admitted.session_id.clone(),
                    ..facts.clone()
                };
                let decided =
                    match read_whole_body(session, limits.max_body_bytes, limits.body_read_timeout)
                        .await
                    {
                        Ok(bytes) => decide(
                            warden,
                            &admitted,
                            // A decided body's answer is filtered with its own env.
                            std::mem::take(&mut taints),
                            &session.req_header().headers,
                            bytes,
                            facts.source.map(|a| a.ip()),
                            &facts,
                        ),
                        Err(refusal) => Err(refusal),
                    };
                let forward = decided.map_err(|refusal| admitted.refuse(refusal))?;
                shared::spend(warden, &admitted, &forward)
                    .await
                    .map_err(|refusal| admitted.refuse(refusal))?;
                Some(forward)
            }
            RequestKind::StreamGet | RequestKind::DeleteSession => None,
        };
        Ok(Exchange::new(admitted, taints, facts, forward))
    }
}

fn client_addr(session: &Session) -> Option<std::net::SocketAddr> {
    session.client_addr().and_then(|a| a.as_inet()).copied()
}

/// Replace the upstream's answer by an error (its body follows at the end of the stream,
/// from [`Exchange::answer_chunk`]).
fn withhold(resp: &mut ResponseHeader) -> Result<()> {
    resp.set_status(Withheld::STATUS)?;
    resp.remove_header(&http::header::CONTENT_ENCODING);
    // A withheld `initialize` answer opens no session: its id is not handed out.
    resp.remove_header(SESSION_HEADER);
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

/// The end of an event stream the proxy ended early: its head too if it has not gone out
/// (it was in the same batch of upstream data), then `tail`, then the end of the body.
async fn write_ended_stream(session: &mut Session, tail: Bytes, request_id: &str) -> Result<()> {
    if session.response_written().is_none() {
        let mut resp = ResponseHeader::build(200, Some(4))?;
        resp.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        resp.insert_header(REQUEST_ID_HEADER, request_id)?;
        session.write_response_header(Box::new(resp), false).await?;
    }
    session.write_response_body(Some(tail), true).await?;
    Ok(())
}

async fn write_json(
    session: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: &Value,
) -> Result<()> {
    write_bytes(session, status, headers, Bytes::from(body.to_string())).await
}

async fn write_bytes(
    session: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<()> {
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
