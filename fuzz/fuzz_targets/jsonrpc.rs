//! The strict JSON-RPC parser: never panics; whatever it accepts, `serde_json` reads the
//! same; the classifier never panics.
// The library's `src/mcp/` by path: it depends on nothing else of the crate, so the
// targets build with a few small dependencies instead of instrumenting Pingora and Cedar.
#[allow(dead_code, unused_imports)]
#[path = "../../src/mcp/mod.rs"]
mod mcp;

use mcp::{parse_request_body, parse_strict};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(strict) = parse_strict(data, 64) {
            let reference: serde_json::Value =
                serde_json::from_slice(data).expect("strict accepted what serde_json refuses");
            assert_eq!(strict, reference, "strict and serde_json read different values");
        }
        let _ = parse_request_body(data, 64);
    });
}
