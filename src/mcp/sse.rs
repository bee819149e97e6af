//! Incremental SSE framing (contract stub).

use bytes::Bytes;

/// Splits a `text/event-stream` body into whole events across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct SseFramer {}

/// An event exceeded the limit.
#[derive(Debug, thiserror::Error)]
#[error("event too large")]
pub struct SseError;

/// One complete event, as raw bytes including its terminating blank line.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The event's bytes, exactly as received.
    pub raw: Bytes,
}

impl SseFramer {
    /// A framer with no buffered bytes.
    pub fn new() -> Self {
        SseFramer {}
    }
    /// A framer refusing events over `max` bytes.
    pub fn with_limit(_max: usize) -> Self {
        SseFramer {}
    }
    /// Feed a chunk; append each event completed by it to `out`.
    pub fn push(&mut self, _chunk: &[u8], _out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        todo!()
    }
    /// Bytes of an unfinished event still buffered.
    pub fn pending_len(&self) -> usize {
        todo!()
    }
    /// Take the unfinished event (end of stream).
    pub fn take_pending(&mut self) -> Bytes {
        todo!()
    }
}

impl SseEvent {
    /// The event's data: its `data:` lines joined with `\n`, `None` if it has none.
    pub fn data(&self) -> Option<String> {
        todo!()
    }
    /// The same event with its data replaced (other fields and comments kept).
    pub fn with_data(&self, _data: &str) -> Bytes {
        todo!()
    }
}
