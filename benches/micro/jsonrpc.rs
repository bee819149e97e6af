//! JSON-RPC request parsing: `parse_request_body`, the strict parser (duplicate keys and
//! nesting depth checked while parsing) followed by classification into an `McpAction`,
//! for a small `tools/call` (~200 B) and a 1 MiB one.
//!
//! Why: every request body is parsed whole before it is decided, so this is a fixed cost
//! per request that grows with the body. The 1 MiB case (a `tools/call` whose arguments
//! hold rows of strings, numbers and arrays) shows the parser's throughput; reported as
//! bytes per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use mcp_warden::mcp::{parse_request_body, McpAction};
use serde_json::json;

/// `[limits] max_json_depth` default.
const MAX_DEPTH: usize = 64;

fn small() -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "get_weather",
            "arguments": {"city": "Paris", "units": "metric", "days": 3},
            "_meta": {"progressToken": "p-42"}
        }
    });
    serde_json::to_vec(&body).expect("serializes")
}

/// A `tools/call` whose arguments are ~1 MiB of rows (strings, numbers, arrays, nested
/// objects), as a bulk-insert tool would receive.
fn large() -> Vec<u8> {
    let mut rows = Vec::new();
    let mut size = 0;
    let mut i = 0u64;
    while size < 1 << 20 {
        let row = json!({
            "id": i,
            "name": format!("patient-{i:06}"),
            "note": "Follow-up in two weeks; review the lab results and adjust the dose if needed.",
            "tags": ["cardiology", "follow-up", format!("ward-{}", i % 12)],
            "vitals": {"bp": [120 + i % 20, 80 + i % 10], "hr": 60 + i % 40, "temp": "36.8"},
            "active": !i.is_multiple_of(3)
        });
        size += row.to_string().len() + 1;
        rows.push(row);
        i += 1;
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": "bulk-7",
        "method": "tools/call",
        "params": {"name": "insert_rows", "arguments": {"table": "visits", "rows": rows}}
    });
    serde_json::to_vec(&body).expect("serializes")
}

/// Registers the `jsonrpc/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("jsonrpc");
    for (name, body) in [("small", small()), ("1MiB", large())] {
        let parsed = parse_request_body(&body, MAX_DEPTH).expect("parses");
        assert!(matches!(
            parsed.messages[0].action,
            McpAction::CallTool { .. }
        ));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("parse_tools_call", name),
            &body,
            |b, body| b.iter(|| parse_request_body(black_box(body), MAX_DEPTH).expect("parses")),
        );
    }
    group.finish();
}
