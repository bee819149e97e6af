//! `tools/list` result filtering: a result of 10, 100 or 1,000 tools, half of them hidden
//! by the Cedar listing rule (`PolicyEngine::listing`, built once per list), filtered as an `application/json`
//! body (`filter_document`) and as a `text/event-stream` (`SseFilter` fed 4 KiB chunks).
//!
//! Why: an agent lists tools at the start of every session, and the proxy parses the
//! whole result strictly, asks the listing rule once per tool, and writes the filtered
//! result back; with many tools the per-item listing question dominates. Target: 1,000
//! tools in ≤ 2 ms.
//!
//! The tools are realistic (`description`, an `inputSchema` with a few properties and
//! `required`, `annotations`); even ones are read-only (listed through
//! `staff-read-only-tools`), odd ones destructive (hidden by `destructive-admin-only`).
//! The engine is the 100-policy set of the `cedar` benchmarks. The scope stands in for
//! the proxy's session scope: one outstanding `tools/list`, answered by this response;
//! it skips the proxy's bookkeeping around the rule (recording annotations, metrics).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use mcp_warden::auth::Identity;
use mcp_warden::exchange::response::{
    filter_document, FilterStats, ListItem, ListScope, SseFilter,
};
use mcp_warden::mcp::ListKind;
use mcp_warden::policy::{
    CedarEngine, ItemAnnotations, ListQuery, ListedItem, Listing, PolicyEngine, RequestEnv,
};
use serde_json::{json, Value};

use crate::cedar::{engine, env, staff};

/// Tool counts benchmarked.
const SIZES: [usize; 3] = [10, 100, 1_000];

/// SSE chunk size (a typical read from the upstream connection).
const CHUNK: usize = 4 * 1024;

/// `[limits] max_response_bytes` default.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One outstanding `tools/list`, answered through the Cedar listing rule.
struct Scope<'a> {
    listing: Box<dyn Listing + 'a>,
    outstanding: Option<ListKind>,
}

impl<'a> Scope<'a> {
    fn new(engine: &'a CedarEngine, identity: &'a Identity, env: &'a RequestEnv) -> Self {
        Scope {
            listing: engine.listing(&ListQuery { identity, env }),
            outstanding: Some(ListKind::Tools),
        }
    }
}

impl ListScope for Scope<'_> {
    fn pending(&self) -> bool {
        self.outstanding.is_some()
    }

    fn take(&mut self, _id_key: &str) -> Option<ListKind> {
        self.outstanding.take()
    }

    fn keep(
        &mut self,
        kind: ListKind,
        name: &str,
        annotations: Option<ItemAnnotations<'_>>,
        _item: &ListItem<'_>,
    ) -> bool {
        let item = ListedItem {
            kind,
            name,
            annotations,
            definition: Default::default(),
        };
        self.listing.may_list(&item)
    }
}

/// The filter alone: a listing rule that costs nothing (it reads the item's
/// `readOnlyHint`, as the Cedar set's rule does), so what is timed is reading, checking
/// and writing the answer's bytes.
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

fn filter_bytes_only(body: &[u8]) -> usize {
    let mut scope = BytesOnly {
        outstanding: Some(ListKind::Tools),
    };
    let mut stats = FilterStats::default();
    let out = filter_document(body, &mut scope, &mut stats).expect("filtered");
    black_box(out);
    stats.hidden
}

/// A `tools/list` response of `n` tools.
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

/// The same response as one SSE event.
fn sse(json: &[u8]) -> Vec<u8> {
    let mut out = b"id: 7f3a\nevent: message\ndata: ".to_vec();
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out
}

fn filter_json(engine: &CedarEngine, identity: &Identity, env: &RequestEnv, body: &[u8]) -> usize {
    let mut scope = Scope::new(engine, identity, env);
    let mut stats = FilterStats::default();
    let out = filter_document(body, &mut scope, &mut stats).expect("filtered");
    black_box(out);
    stats.hidden
}

fn filter_sse(engine: &CedarEngine, identity: &Identity, env: &RequestEnv, body: &[u8]) -> usize {
    let mut scope = Scope::new(engine, identity, env);
    let mut stats = FilterStats::default();
    let mut filter = SseFilter::new(MAX_EVENT_BYTES);
    let mut sent = 0;
    for chunk in body.chunks(CHUNK) {
        sent += filter.push(chunk, &mut scope, &mut stats).len();
    }
    sent += filter.finish(&mut scope, &mut stats).len();
    black_box(sent);
    stats.hidden
}

/// Registers the `list/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let engine = engine(100);
    let identity = staff();
    let env = env();
    let mut group = c.benchmark_group("list");
    for n in SIZES {
        let json = tools_list(n);
        let stream = sse(&json);
        assert_eq!(filter_json(&engine, &identity, &env, &json), n / 2);
        assert_eq!(filter_sse(&engine, &identity, &env, &stream), n / 2);

        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("tools_json", n), &json, |b, body| {
            b.iter(|| filter_json(&engine, &identity, &env, black_box(body)))
        });
        assert_eq!(filter_bytes_only(&json), n / 2);
        // What the filter did before it read answers as raw slices, at the least: the
        // strict parse into a tree and writing the tree again (no listing rule at all).
        group.bench_with_input(
            BenchmarkId::new("tree_reference_json", n),
            &json,
            |b, body| {
                b.iter(|| {
                    let tree = mcp_warden::mcp::parse_strict(black_box(body), 128).expect("parses");
                    black_box(tree.to_string())
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("bytes_only_json", n), &json, |b, body| {
            b.iter(|| filter_bytes_only(black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("tools_sse_4k", n), &stream, |b, body| {
            b.iter(|| filter_sse(&engine, &identity, &env, black_box(body)))
        });
    }
    group.finish();
}
