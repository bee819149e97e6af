//! Incremental `text/event-stream` framing for the response path.
//!
//! List results must be filtered even when they arrive inside Server-Sent Events, and
//! an upstream's bytes arrive in chunks that split events (and even `\r\n` pairs)
//! anywhere. [`SseFramer`] is fed each chunk as it arrives and hands back every event
//! the chunk completed, as the exact bytes received (split out of one buffer, no copy),
//! so the proxy forwards untouched events as they were and rewrites only the ones it
//! filters ([`SseEvent::with_data`]).
//!
//! Why not an SSE crate: `sse-stream` and `eventsource-stream` are pull-based
//! `Stream`s that own the byte stream and yield parsed events; the proxy's response
//! filter is push-based (it is handed one chunk at a time and must return bytes), and
//! re-serializing parsed events would change bytes the proxy has no reason to touch.
//!
//! Framing follows the HTML standard's event-stream rules: lines end in `\r\n`, `\n` or
//! a lone `\r`; a blank line ends an event; a leading U+FEFF at stream start is dropped.
//! A `\r` at the very end of the buffered bytes is not resolved until the next byte
//! arrives (it may be the first half of `\r\n`), so with a lone-`\r` upstream an event
//! is released one chunk late. The buffer for one event is bounded
//! ([`SseFramer::with_limit`]); an event larger than that is an error, never a reason
//! to pass bytes through unexamined.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr2;

/// The UTF-8 byte order mark, dropped at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits a `text/event-stream` body into whole events across arbitrary chunk boundaries.
///
/// Concatenating every event's [`SseEvent::raw`] and, at the end, [`take_pending`]
/// gives back the stream exactly, less a leading byte order mark.
///
/// [`take_pending`]: SseFramer::take_pending
#[derive(Debug)]
pub struct SseFramer {
    /// Bytes of the unfinished event, from its first byte.
    buf: BytesMut,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// Where scanning for a line terminator resumes in `buf`.
    scan: usize,
    /// Whether the stream start has been checked for a byte order mark.
    bom_checked: bool,
    /// Largest event accepted, in bytes.
    limit: usize,
    /// An event exceeded `limit`; the stream cannot be framed any further.
    failed: bool,
}

/// One complete event, as raw bytes including its terminating blank line.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The event's bytes, exactly as received.
    pub raw: Bytes,
}

/// Why a stream cannot be framed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SseError {
    /// One event grew beyond the framer's limit.
    #[error("SSE event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl Default for SseFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SseFramer {
    /// A framer with no buffered bytes and no limit on event size.
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// A framer that refuses any event (complete or still buffered) longer than
    /// `max_event_bytes`, terminating blank line included.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        SseFramer {
            buf: BytesMut::new(),
            line_start: 0,
            scan: 0,
            bom_checked: false,
            limit: max_event_bytes,
            failed: false,
        }
    }

    /// Feed a chunk; append each event completed by it to `out`, in order.
    ///
    /// Returns [`SseError::EventTooLarge`] when an event exceeds the limit: events
    /// before it have been appended to `out`, and every later call fails the same way
    /// (the stream must be abandoned, not passed through).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(());
            }
            if self.buf.starts_with(BOM) {
                let _bom = self.buf.split_to(BOM.len());
            }
            self.bom_checked = true;
        }
        while let Some(offset) = memchr2(b'\r', b'\n', &self.buf[self.scan..]) {
            let at = self.scan + offset;
            let next = if self.buf[at] == b'\n' {
                at + 1
            } else {
                match self.buf.get(at + 1) {
                    // Maybe the first half of `\r\n`: decide when more bytes arrive.
                    None => {
                        self.scan = at;
                        return self.check_pending();
                    }
                    Some(b'\n') => at + 2,
                    Some(_) => at + 1,
                }
            };
            if at == self.line_start {
                // A blank line: the event ends after its terminator.
                if next > self.limit {
                    return Err(self.fail());
                }
                out.push(SseEvent {
                    raw: self.buf.split_to(next).freeze(),
                });
                self.line_start = 0;
                self.scan = 0;
            } else {
                self.line_start = next;
                self.scan = next;
            }
        }
        self.scan = self.buf.len();
        self.check_pending()
    }

    /// Bytes of an unfinished event still buffered.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Take the unfinished event (end of stream).
    ///
    /// Clients differ on whether they dispatch an event the stream ended in the middle
    /// of, and a final event ended by a lone `\r` is complete, so the proxy must examine
    /// these bytes like an event (`SseEvent { raw }`), never forward them unseen.
    pub fn take_pending(&mut self) -> Bytes {
        self.line_start = 0;
        self.scan = 0;
        self.buf.split().freeze()
    }

    fn check_pending(&mut self) -> Result<(), SseError> {
        if self.buf.len() > self.limit {
            Err(self.fail())
        } else {
            Ok(())
        }
    }

    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.buf = BytesMut::new();
        self.line_start = 0;
        self.scan = 0;
        self.too_large()
    }

    fn too_large(&self) -> SseError {
        SseError::EventTooLarge { limit: self.limit }
    }
}

impl SseEvent {
    /// The event's data: its `data:` lines joined with `\n`, `None` if it has none.
    ///
    /// Values are decoded as UTF-8 with replacement, as an event-stream client does.
    pub fn data(&self) -> Option<String> {
        let mut data: Option<String> = None;
        for line in Lines::new(&self.raw) {
            let Some(value) = data_value(line) else {
                continue;
            };
            // Valid UTF-8 (the usual case) is checked by the fast validator; only
            // invalid bytes go through the replacing decoder (same text either way).
            let value = match std::str::from_utf8(value) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(value),
            };
            match &mut data {
                None => data = Some(value.into_owned()),
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
            }
        }
        data
    }

    /// The same event with its data replaced (other fields and comments kept).
    ///
    /// Every non-data line is kept in order; the new data is written as `data: ` lines
    /// where the first data line was (at the end if there was none), one per line of
    /// `data`. A `\r` or `\r\n` in `data` also starts a new line (an event-stream client
    /// reads it as a line break, so it cannot be kept). Lines end in `\n`, and the event
    /// ends with a blank line.
    pub fn with_data(&self, data: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(self.raw.len() + data.len() + 16);
        let mut written = false;
        for line in Lines::new(&self.raw) {
            if data_value(line).is_some() {
                if !written {
                    write_data(&mut out, data.as_bytes());
                    written = true;
                }
            } else {
                out.put_slice(line);
                out.put_u8(b'\n');
            }
        }
        if !written {
            write_data(&mut out, data.as_bytes());
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

/// The value of a `data` field line, `None` for any other line (comments included).
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"data")?;
    match rest.first() {
        None => Some(rest),
        Some(b':') => {
            let value = &rest[1..];
            Some(value.strip_prefix(b" ").unwrap_or(value))
        }
        Some(_) => None,
    }
}

/// Write `data` as `data: ` lines, splitting at `\r\n`, `\r` and `\n`.
fn write_data(out: &mut BytesMut, mut data: &[u8]) {
    loop {
        out.put_slice(b"data: ");
        match memchr2(b'\r', b'\n', data) {
            None => {
                out.put_slice(data);
                out.put_u8(b'\n');
                return;
            }
            Some(at) => {
                out.put_slice(&data[..at]);
                out.put_u8(b'\n');
                let skip = if data[at..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                data = &data[at + skip..];
            }
        }
    }
}

/// The lines of one event, without terminators, up to (not including) the blank line
/// that ends it. An unterminated last line (pending bytes) is still a line.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Lines { rest: raw }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match memchr2(b'\r', b'\n', self.rest) {
            None => (self.rest, &self.rest[self.rest.len()..]),
            Some(at) => {
                let skip = if self.rest[at..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                (&self.rest[..at], &self.rest[at + skip..])
            }
        };
        if line.is_empty() {
            self.rest = &[];
            return None;
        }
        self.rest = rest;
        Some(line)
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
