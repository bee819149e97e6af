//! The SSE framer: the same events whatever the chunking (the first input byte picks
//! the chunk size), byte by byte included; no byte lost or added.
// The library's `src/mcp/` by path: it depends on nothing else of the crate, so the
// targets build with a few small dependencies instead of instrumenting Pingora and Cedar.
#[allow(dead_code, unused_imports)]
#[path = "../../src/mcp/mod.rs"]
mod mcp;

use mcp::{SseEvent, SseFramer};

fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<SseEvent>, Vec<u8>) {
    let mut framer = SseFramer::new();
    let mut events = Vec::new();
    for chunk in chunks {
        framer.push(chunk, &mut events).expect("no limit");
    }
    (events, framer.take_pending().to_vec())
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&size, stream)) = data.split_first() else {
            return;
        };
        let size = usize::from(size).max(1);
        let whole = frame(std::iter::once(stream));
        assert_eq!(frame(stream.chunks(size)), whole, "chunks of {size}");
        assert_eq!(frame(stream.chunks(1)), whole, "byte by byte");
        let mut rebuilt: Vec<u8> = whole.0.iter().flat_map(|e| e.raw.to_vec()).collect();
        rebuilt.extend_from_slice(&whole.1);
        let body = stream.strip_prefix("\u{feff}".as_bytes()).unwrap_or(stream);
        assert_eq!(rebuilt, body, "bytes lost or added");
        // Reading data never panics.
        for e in &whole.0 {
            let _ = e.data();
        }
    });
}
