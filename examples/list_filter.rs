//! The list filter's own work on the `list/` micro-benchmark's answer, a fixed number of
//! times, for instruction counts (the criterion binary cannot run under valgrind: the
//! Biscuit benchmarks' time limits expire):
//!
//! ```sh
//! cargo build --release --example list_filter
//! valgrind --tool=callgrind target/release/examples/list_filter json 1000 0
//! valgrind --tool=callgrind target/release/examples/list_filter json 1000 20
//! ```
//!
//! Arguments: `json` (`filter_document`) or `sse` (`SseFilter` fed 4 KiB chunks), the
//! tool count, the number of filterings. (I(k) − I(0)) / k is one filtering. The listing
//! rule costs nothing (it reads the item's `readOnlyHint`, as `list/bytes_only_json`).

use std::hint::black_box;

use mcp_warden::exchange::response::{
    filter_document, FilterStats, ListItem, ListScope, SseFilter,
};
use mcp_warden::mcp::ListKind;
use mcp_warden::policy::ItemAnnotations;
use serde_json::{json, Value};

/// Lists whatever id answers, keeps read-only items.
struct BytesOnly {
    outstanding: Option<ListKind>,
}

impl ListScope for BytesOnly {
    fn pending(&self) -> bool {
        self.outstanding.is_some()
    }

    fn take(&mut self, _id_key: &str) -> Option<ListKind> {
        self.outstanding.take()
    }

    fn keep(
        &mut self,
        _kind: ListKind,
        _name: &str,
        annotations: Option<ItemAnnotations<'_>>,
        _item: &ListItem<'_>,
    ) -> bool {
        annotations
            .and_then(|a| a.bool("readOnlyHint"))
            .unwrap_or(false)
    }
}

/// The `list/` benchmark's answer of `n` tools (`benches/micro/list.rs`).
fn tools_list(n: usize) -> Vec<u8> {
    let tools: Vec<Value> = (0..n)
        .map(|i| {
            let read_only = i % 2 == 0;
            json!({
                "name": format!("svc_tool_{i}"),
                "title": format!("Service tool {i}"),
                "description": "Looks up records of the clinic database by patient, date range and status; returns at most `limit` rows.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "patient_id": {"type": "string", "description": "The patient's id"},
                        "from": {"type": "string", "format": "date"},
                        "to": {"type": "string", "format": "date"},
                        "status": {"type": "string", "enum": ["open", "closed", "cancelled"]},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 500}
                    },
                    "required": ["patient_id"]
                },
                "annotations": {
                    "title": format!("Service tool {i}"),
                    "readOnlyHint": read_only,
                    "destructiveHint": !read_only,
                    "idempotentHint": read_only,
                    "openWorldHint": false
                }
            })
        })
        .collect();
    let response =
        json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "c2"}});
    serde_json::to_vec(&response).expect("serializes")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("json", String::as_str);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let times: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let json = tools_list(n);
    let mut stream = b"id: 7f3a\nevent: message\ndata: ".to_vec();
    stream.extend_from_slice(&json);
    stream.extend_from_slice(b"\n\n");
    let mut hidden = 0;
    for _ in 0..times {
        let mut scope = BytesOnly {
            outstanding: Some(ListKind::Tools),
        };
        let mut stats = FilterStats::default();
        match mode {
            "sse" => {
                let mut filter = SseFilter::new(16 * 1024 * 1024);
                let mut sent = 0;
                for chunk in black_box(&stream).chunks(4 * 1024) {
                    sent += filter.push(chunk, &mut scope, &mut stats).len();
                }
                sent += filter.finish(&mut scope, &mut stats).len();
                black_box(sent);
            }
            _ => {
                black_box(filter_document(black_box(&json), &mut scope, &mut stats));
            }
        }
        hidden += stats.hidden;
    }
    assert_eq!(hidden, times * (n / 2), "half the tools hidden");
}
