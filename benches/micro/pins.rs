//! What pinning and argument validation add: `Catalogue::check_call` for one `tools/call`
//! (pin status, then the arguments against the compiled `inputSchema`), and
//! `Catalogue::observe` for every tool of a `tools/list` result (digest lookup, pin
//! comparison), both with `[pinning] mode = "enforce"` and `[arguments] validation =
//! "enforce"`.
//!
//! Why: `check_call` is paid by every `tools/call` before the policy; `observe` by every
//! item of every list result on top of the listing rule (`list/` measures that without
//! pinning). A list that changes pays the digest and the schema compilation once per new
//! definition (`observe_new`); a list seen before (the usual case) finds each definition
//! by name and compares digests (`observe_seen`).

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use mcp_warden::pins::{
    Catalogue, Definition, DefinitionKind, LocalOnly, PinEntry, PinFile, PinMode, PinningConfig,
};
use mcp_warden::schema::{SchemaLimits, ValidationMode};
use serde_json::{json, Map, Value};

/// Tool counts of the list benchmarks.
const SIZES: [usize; 2] = [100, 1_000];

/// A weather tool: one string property, `additionalProperties: false`.
fn weather() -> Map<String, Value> {
    object(json!({
        "name": "get_weather",
        "description": "Report the weather of a city.",
        "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false},
        "annotations": {"readOnlyHint": true}
    }))
}

/// A records tool with a larger schema: 30 properties of several kinds, a nested
/// object, patterns, enums, ranges and an array of objects.
fn records() -> Map<String, Value> {
    let mut properties = Map::new();
    for i in 0..10 {
        properties.insert(
            format!("text_{i}"),
            json!({"type": "string", "maxLength": 200}),
        );
        properties.insert(
            format!("code_{i}"),
            json!({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}),
        );
        properties.insert(
            format!("count_{i}"),
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
        );
    }
    properties.insert(
        "filter".into(),
        json!({"type": "object", "properties": {
            "status": {"enum": ["open", "closed", "cancelled"]},
            "from": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "object",
                "properties": {"k": {"type": "string"}, "v": {"type": "string"}},
                "required": ["k"], "additionalProperties": false}, "maxItems": 20}
        }, "additionalProperties": false}),
    );
    object(json!({
        "name": "query_records",
        "description": "Query the clinic's records.",
        "inputSchema": {"type": "object", "properties": properties,
            "required": ["text_0", "code_0", "count_0"], "additionalProperties": false},
        "annotations": {"readOnlyHint": true}
    }))
}

fn records_arguments() -> Value {
    let mut args = Map::new();
    for i in 0..10 {
        args.insert(format!("text_{i}"), json!("some text"));
        args.insert(format!("code_{i}"), json!("ABC-1234"));
        args.insert(format!("count_{i}"), json!(i * 10));
    }
    args.insert(
        "filter".into(),
        json!({"status": "open", "from": "2026-01-01",
            "tags": [{"k": "ward", "v": "3"}, {"k": "urgent"}]}),
    );
    Value::Object(args)
}

/// `n` tools shaped like the `list/` benchmark's.
fn tools(n: usize) -> Vec<Map<String, Value>> {
    (0..n)
        .map(|i| {
            object(json!({
                "name": format!("svc_tool_{i}"),
                "title": format!("Service tool {i}"),
                "description": "Looks up records of the clinic database by patient, date range and status; returns at most `limit` rows.",
                "inputSchema": {"type": "object", "properties": {
                    "patient_id": {"type": "string"},
                    "from": {"type": "string", "format": "date"},
                    "status": {"type": "string", "enum": ["open", "closed", "cancelled"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 500}
                }, "required": ["patient_id"]},
                "annotations": {"readOnlyHint": i % 2 == 0, "openWorldHint": false}
            }))
        })
        .collect()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}

/// An `enforce` catalogue whose pin file approves `items`, in `dir`.
fn catalogue(dir: &std::path::Path, items: &[Map<String, Value>]) -> Catalogue {
    let path = dir.join("pins.json");
    let mut file = PinFile::new();
    for item in items {
        let d = Definition::from_item(DefinitionKind::Tool, item).expect("named");
        file.tools.insert(
            d.name.clone(),
            PinEntry::approve(&d, SystemTime::UNIX_EPOCH),
        );
    }
    file.save(&path).expect("pin file written");
    let pinning = PinningConfig {
        mode: PinMode::Enforce,
        file: Some(path.clone()),
        refuse_invisible: true,
    };
    Catalogue::new(
        &pinning,
        Some(path),
        ValidationMode::Enforce,
        SchemaLimits::default(),
    )
    .expect("catalogue")
}

fn observe_all(catalogue: &Catalogue, items: &[Map<String, Value>]) -> usize {
    items
        .iter()
        .filter(|item| {
            catalogue
                .observe(DefinitionKind::Tool, item, &LocalOnly)
                .visible
        })
        .count()
}

/// Registers the `pins/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("pins");

    let defs = [weather(), records()];
    let cat = catalogue(dir.path(), &defs);
    assert_eq!(observe_all(&cat, &defs), 2, "both pinned and listed");
    let calls = [
        ("weather", "get_weather", json!({"city": "Paris"})),
        (
            "records_31_properties",
            "query_records",
            records_arguments(),
        ),
    ];
    for (label, tool, args) in &calls {
        assert!(
            cat.check_call(tool, args).refusal.is_none(),
            "{label} valid"
        );
        group.bench_with_input(BenchmarkId::new("check_call", label), args, |b, args| {
            b.iter(|| black_box(cat.check_call(tool, black_box(args))))
        });
    }
    let confused = json!({"city": ["Paris", "Lyon"]});
    assert!(cat.check_call("get_weather", &confused).refusal.is_some());
    group.bench_function("check_call_invalid/weather", |b| {
        b.iter(|| black_box(cat.check_call("get_weather", black_box(&confused))))
    });

    for n in SIZES {
        let items = tools(n);
        let seen = catalogue(dir.path(), &items);
        assert_eq!(observe_all(&seen, &items), n, "all pinned");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("observe_seen", n), &items, |b, items| {
            b.iter(|| observe_all(&seen, black_box(items)))
        });
        group.bench_with_input(BenchmarkId::new("observe_new", n), &items, |b, items| {
            b.iter_batched(
                || catalogue(dir.path(), items),
                |fresh| observe_all(&fresh, items),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}
