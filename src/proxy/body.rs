//! Reading a request body whole before anything is forwarded.
//!
//! Pingora forwards a request body as it streams in, after it has already connected
//! upstream and sent the headers. A security proxy must decide on the whole body
//! first, so `request_filter` reads it all here. Once read, Pingora considers the
//! downstream body finished and would forward *nothing* — unless its retry buffer
//! holds bytes, in which case it replays that buffer through `request_body_filter`,
//! where the proxy substitutes the full body it kept.
//!
//! The retry buffer holds only 64 KiB and gives up (keeps nothing) beyond that. So for a
//! body of known length, buffering is switched on only for its last ≤ 64 KiB: whatever
//! the body's size, the buffer ends up non-empty and intact, which is all that is needed
//! for Pingora to call the filter. A chunked body has no known length; it is accepted up
//! to 64 KiB and refused with 411 beyond (MCP clients send `Content-Length`).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use crate::exchange::refusal::Refusal;

/// Pingora's retry-buffer capacity (`pingora_core::protocols::http::body_buffer`,
/// `BODY_BUF_LIMIT`).
const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

/// Read the whole request body, at most `limit` bytes, within `timeout`.
pub(super) async fn read_whole_body(
    session: &mut Session,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Refusal> {
    let declared = declared_length(session)?;
    if declared.is_some_and(|len| len > limit) {
        return Err(Refusal::TooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    let mut buffering = false;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !buffering {
            let remaining = declared.map(|len| len.saturating_sub(buf.len()));
            if remaining.is_none_or(|r| r <= RETRY_BUFFER_LIMIT) {
                session.as_downstream_mut().enable_retry_buffering();
                buffering = true;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, session.read_request_body())
            .await
            .map_err(|_| Refusal::BodyRead {
                reason: "timed out reading the request body".into(),
            })?
            .map_err(|e| Refusal::BodyRead {
                reason: e.to_string(),
            })?;
        match chunk {
            None => break,
            Some(chunk) => {
                if buf.len() + chunk.len() > limit {
                    return Err(Refusal::TooLarge { limit });
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    if !buf.is_empty() && session.as_downstream().get_retry_buffer().is_none() {
        return Err(match declared {
            None => Refusal::LengthRequired,
            Some(_) => Refusal::Internal {
                reason: "request body could not be staged for forwarding".into(),
            },
        });
    }
    Ok(buf.freeze())
}

/// The `Content-Length`, if the request has one. With `Transfer-Encoding` present the
/// body is read (and forwarded) as chunked, whatever `Content-Length` says; a test checks
/// that what was decided is exactly what the upstream receives.
fn declared_length(session: &Session) -> Result<Option<usize>, Refusal> {
    let headers = &session.req_header().headers;
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Ok(None);
    }
    match headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(Some(0)),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(Some)
            .ok_or(Refusal::BodyRead {
                reason: "invalid Content-Length".into(),
            }),
    }
}
