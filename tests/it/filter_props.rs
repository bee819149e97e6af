//! Property tests for answer filtering: whatever the upstream sends back for a list
//! request — one JSON body or a batch, SSE events split across chunks and data lines,
//! odd shapes, duplicate keys, ids a client would take for the request's — no item the
//! listing rule hides reaches a client that reads the answer as MCP clients do.
//!
//! The client's reading: SSE framed per the HTML standard, data lines joined, JSON
//! parsed leniently (`serde_json`, the last duplicate key wins, as in JavaScript and
//! Python), and a response taken as the answer to a request when the ids are equal as
//! JSON values, or as numbers the way the TypeScript SDK compares them (`Number(id)`).

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};

use mcp_warden::exchange::response::{FilterStats, JsonBuffer, ListItem, ListScope, SseFilter};
use mcp_warden::mcp::jsonrpc::id_key;
use mcp_warden::mcp::{ListKind, SseFramer};
use mcp_warden::policy::ItemAnnotations;

/// What a hidden item is called: the listing rule hides every name starting with it.
const HIDDEN: &str = "secret";

/// One outstanding `tools/list`; the listing rule hides `secret*`.
struct Scope {
    outstanding: Vec<String>,
}

impl ListScope for Scope {
    fn pending(&self) -> bool {
        !self.outstanding.is_empty()
    }
    fn take(&mut self, id_key: &str) -> Option<ListKind> {
        let at = self.outstanding.iter().position(|k| k == id_key)?;
        self.outstanding.remove(at);
        Some(ListKind::Tools)
    }
    fn keep(
        &mut self,
        _: ListKind,
        name: &str,
        _: Option<ItemAnnotations<'_>>,
        _: &ListItem<'_>,
    ) -> bool {
        !name.starts_with(HIDDEN)
    }
}

/// JavaScript's `Number(x)` for the ids a client might compare, `None` for NaN.
fn js_number(id: &Value) -> Option<f64> {
    match id {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Some(0.0);
            }
            if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                return u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
            }
            t.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

fn client_takes_as_answer(response_id: &Value, request_id: &Value) -> bool {
    response_id == request_id
        || matches!((js_number(response_id), js_number(request_id)), (Some(a), Some(b)) if a == b)
}

/// Every hidden name a client would see in answers to `request_id` in `messages`.
fn leaked(messages: &[Value], request_id: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        let items = match m {
            Value::Array(batch) => batch.clone(),
            one => vec![one.clone()],
        };
        for item in items {
            let Some(id) = item.get("id") else { continue };
            if !client_takes_as_answer(id, request_id) {
                continue;
            }
            let Some(tools) = item.pointer("/result/tools").and_then(Value::as_array) else {
                continue;
            };
            for tool in tools {
                if let Some(name) = tool.get("name").and_then(Value::as_str) {
                    if name.starts_with(HIDDEN) {
                        out.push(name.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// How the client reads a JSON body.
fn read_json(body: &[u8]) -> Vec<Value> {
    serde_json::from_slice(body).into_iter().collect()
}

/// How the client reads an event stream (unfinished last event included: some clients
/// dispatch it).
fn read_sse(body: &[u8]) -> Vec<Value> {
    let mut framer = SseFramer::new();
    let mut events = Vec::new();
    framer.push(body, &mut events).expect("no limit");
    let rest = framer.take_pending();
    events.push(mcp_warden::mcp::SseEvent { raw: rest });
    events
        .iter()
        .filter_map(|e| e.data())
        .filter_map(|d| serde_json::from_str(&d).ok())
        .collect()
}

fn tool() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("echo".to_owned()),
        Just("secret".to_owned()),
        "secret_[a-z]{1,4}",
        "[a-r][a-z]{0,5}",
    ];
    let annotations = prop_oneof![
        4 => Just(None),
        1 => Just(Some(Value::Null)),
        2 => Just(Some(json!({"readOnlyHint": true}))),
        1 => Just(Some(json!("not an object"))),
    ];
    (name, annotations).prop_map(|(name, annotations)| {
        let mut t = json!({"name": name, "inputSchema": {"type": "object"}});
        if let Some(a) = annotations {
            t["annotations"] = a;
        }
        t
    })
}

/// An id the upstream answers with, given the request's id `1` or `"abc"`.
fn answer_id(request: &Value) -> BoxedStrategy<String> {
    match request {
        Value::String(_) => {
            prop_oneof![Just("\"abc\"".to_owned()), Just("\"ab\\u0063\"".to_owned())].boxed()
        }
        _ => prop_oneof![
            4 => Just("1".to_owned()),
            1 => Just("1.0".to_owned()),
            1 => Just("1e0".to_owned()),
            1 => Just("\"1\"".to_owned()),
            1 => Just("\" 1\"".to_owned()),
            1 => Just("\"0x1\"".to_owned()),
        ]
        .boxed(),
    }
}

/// The answer to the list request, as text (so that duplicate keys can be written).
fn list_answer(request: Value) -> impl Strategy<Value = String> {
    (
        answer_id(&request),
        prop::collection::vec(tool(), 0..5),
        prop_oneof![
            6 => Just("plain"),
            1 => Just("duplicate result"),
            1 => Just("duplicate name"),
            1 => Just("tools not an array"),
            1 => Just("result and error"),
            1 => Just("escaped names"),
        ],
        any::<bool>(),
    )
        .prop_map(|(id, tools, shape, cursor)| {
            let mut result = json!({ "tools": tools });
            if cursor {
                result["nextCursor"] = json!("c2");
            }
            let result_text = result.to_string();
            let hidden_tools = r#"{"tools":[{"name":"secret_dup","inputSchema":{}}]}"#;
            match shape {
                "duplicate result" => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{result_text},"result":{hidden_tools}}}"#
                ),
                "duplicate name" => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"echo","name":"secret_dup2"}}]}}}}"#
                ),
                "tools not an array" => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":{{"name":"secret_obj"}}}}}}"#
                ),
                "result and error" => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{result_text},"error":{{"code":1,"message":"x"}}}}"#
                ),
                "escaped names" => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
                    result_text.replace("\"secret", "\"\\u0073ecret")
                ),
                _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result_text}}}"#),
            }
        })
}

/// Messages that answer nothing outstanding.
fn other_message() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_owned()),
        Just(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"secret is a word"}]}}"#.to_owned()),
        Just(r#"{"jsonrpc":"2.0","id":8,"error":{"code":-32601,"message":"no"}}"#.to_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Shape {
    /// `application/json`: the answer alone, or in a batch with others.
    Json { batch: bool },
    /// `text/event-stream`: one event per message, data split over lines.
    Sse {
        line_end: &'static str,
        split_lines: bool,
        last_unfinished: bool,
    },
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        any::<bool>().prop_map(|batch| Shape::Json { batch }),
        (
            prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(line_end, split_lines, last_unfinished)| Shape::Sse {
                line_end,
                split_lines,
                last_unfinished
            }),
    ]
}

fn body(shape: &Shape, messages: &[String]) -> Vec<u8> {
    match shape {
        Shape::Json { batch: true } => format!("[{}]", messages.join(",")).into_bytes(),
        Shape::Json { batch: false } => messages.join("").into_bytes(),
        Shape::Sse {
            line_end,
            split_lines,
            last_unfinished,
        } => {
            let mut out = String::new();
            for (i, m) in messages.iter().enumerate() {
                out.push_str(": comment");
                out.push_str(line_end);
                out.push_str("event: message");
                out.push_str(line_end);
                if *split_lines {
                    // JSON allows a line break between tokens: one data line per member.
                    for part in m.split_inclusive(',') {
                        out.push_str("data: ");
                        out.push_str(part);
                        out.push_str(line_end);
                    }
                } else {
                    out.push_str("data: ");
                    out.push_str(m);
                    out.push_str(line_end);
                }
                if !(*last_unfinished && i + 1 == messages.len()) {
                    out.push_str(line_end);
                }
            }
            out.into_bytes()
        }
    }
}

fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(Bytes::copy_from_slice(&bytes[from..cut]));
        from = cut;
    }
    chunks
}

/// Run the proxy's filter over `chunks` for a client that asked with `request`.
fn filter(shape: &Shape, chunks: &[Bytes], request: &Value) -> Vec<u8> {
    let mut scope = Scope {
        outstanding: vec![id_key(request)],
    };
    let mut stats = FilterStats::default();
    let mut out = Vec::new();
    match shape {
        Shape::Json { .. } => {
            let mut buf = JsonBuffer::new(1 << 20);
            for c in chunks {
                out.extend_from_slice(&buf.push(c, &mut scope));
            }
            out.extend_from_slice(&buf.finish(&mut scope, &mut stats));
        }
        Shape::Sse { .. } => {
            let mut sse = SseFilter::new(1 << 20);
            for c in chunks {
                out.extend_from_slice(&sse.push(c, &mut scope, &mut stats));
            }
            out.extend_from_slice(&sse.finish(&mut scope, &mut stats));
        }
    }
    out
}

fn request_id() -> impl Strategy<Value = Value> {
    prop_oneof![3 => Just(json!(1)), 1 => Just(json!("abc"))]
}

fn case(repeats: bool) -> impl Strategy<Value = (Value, Shape, Vec<String>, Vec<usize>)> {
    request_id().prop_flat_map(move |request| {
        let answers = prop::collection::vec(
            list_answer(request.clone()),
            if repeats { 2..4 } else { 1..2 },
        );
        (
            Just(request),
            shape(),
            answers,
            prop::collection::vec(other_message(), 0..3),
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<usize>(), 0..8),
        )
            .prop_map(|(request, shape, answers, others, at, cuts)| {
                let mut messages = others;
                for a in answers {
                    let i = at.index(messages.len() + 1);
                    messages.insert(i, a);
                }
                (request, shape, messages, cuts)
            })
    })
}

fn check(
    request: &Value,
    shape: &Shape,
    messages: &[String],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let upstream = body(shape, messages);
    let chunks = split(&upstream, cuts);
    let out = filter(shape, &chunks, request);
    let seen = match shape {
        Shape::Json { .. } => read_json(&out),
        Shape::Sse { .. } => read_sse(&out),
    };
    let leaks = leaked(&seen, request);
    prop_assert!(
        leaks.is_empty(),
        "hidden {:?} reached the client\nupstream: {}\nclient got: {}",
        leaks,
        String::from_utf8_lossy(&upstream),
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// `cases` per property unless `PROPTEST_CASES` says otherwise, and a fixed seed unless
/// `PROPTEST_RNG_SEED` gives one, so `cargo test` stays quick and every run replays.
fn budget(cases: u32) -> ProptestConfig {
    let env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x6d63_7077_6172_6465)
        },
        failure_persistence: None,
        ..env
    }
}

proptest! {
    #![proptest_config(budget(512))]

    /// One answer to the list request, among other messages, any shape, any split.
    #[test]
    fn no_hidden_name_reaches_the_client((request, shape, messages, cuts) in case(false)) {
        check(&request, &shape, &messages, &cuts)?;
    }
}

proptest! {
    #![proptest_config(budget(256))]

    /// The upstream answers the same list request more than once: every answer is
    /// filtered (the repeated-answer leak of issue 14, fixed in `exchange::response`).
    #[test]
    fn no_hidden_name_reaches_the_client_when_answers_repeat((request, shape, messages, cuts) in case(true)) {
        check(&request, &shape, &messages, &cuts)?;
    }
}
