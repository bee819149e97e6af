//! Every answer to a list request is filtered or withheld, however many times and on
//! whichever stream of the session it arrives: the real `mcp-warden` binary in front of
//! the hand-written hostile upstream (`support::fake`), which answers in shapes real
//! servers won't produce (the same list id answered twice, a list-shaped result under an
//! id that was never a list request, an operator's annotation overriding the server's).

use serde_json::{json, Value};

use crate::support::fake::{
    json_reply, json_reply_with, ok_reply, sse_reply, FakeUpstream, RawRequest, Reply,
};
use crate::support::tokens::{claims, sign_with, AUTH_TOML, SECRET};
use crate::support::warden::Warden;

const UPSTREAM_UNFILTERABLE: i64 = -32005;

/// Only `echo` may be called, so only `echo` is listed.
const ECHO_ONLY: &str = r#"
@id("echo-for-everyone")
permit (principal, action == Action::"call_tool", resource == Tool::"echo");
"#;

const HIDDEN: [&str; 2] = ["delete_records", "secret_tool"];

fn tools_result(id: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"result":{"tools":[
        {"name":"echo","annotations":{"openWorldHint":false,"readOnlyHint":true}},
        {"name":"delete_records"},{"name":"secret_tool"}]}})
    .to_string()
}

fn start(
    extra: &str,
    respond: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static,
) -> (FakeUpstream, Warden) {
    let up = FakeUpstream::start(respond);
    let warden = Warden::start_with_policy(
        &up.url,
        ECHO_ONLY,
        &format!("[auth]\nallow_anonymous = false\n{AUTH_TOML}\n{extra}"),
    );
    (up, warden)
}

async fn send(
    url: &str,
    method: reqwest::Method,
    session: Option<&str>,
    body: Option<String>,
) -> (u16, String) {
    let token = sign_with(&claims("alice", &["staff"], "mcp:tools"), SECRET);
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json, text/event-stream");
    if let Some(sid) = session {
        request = request.header("mcp-session-id", sid);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn post(url: &str, session: Option<&str>, body: Value) -> (u16, String) {
    send(url, reqwest::Method::POST, session, Some(body.to_string())).await
}

fn tools_list(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":{}})
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"filter-tests","version":"0"}}})
}

/// The `data` of each SSE event, parsed.
fn events(body: &str) -> Vec<Value> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

fn assert_no_hidden_tool(body: &str) {
    for name in HIDDEN {
        assert!(
            !body.contains(name),
            "`{name}` leaked to the client: {body}"
        );
    }
}

/// Each message is a filtered list (only `echo`) or a withheld one (the proxy's error).
fn assert_each_filtered_or_withheld(messages: &[Value]) {
    assert!(!messages.is_empty());
    for m in messages {
        if let Some(tools) = m["result"]["tools"].as_array() {
            let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["echo"], "{m}");
        } else {
            assert_eq!(m["error"]["code"], UPSTREAM_UNFILTERABLE, "{m}");
        }
    }
}

fn session_upstream(
    post_list: impl Fn() -> Reply + Send + Sync + 'static,
    get: impl Fn() -> Reply + Send + Sync + 'static,
) -> impl Fn(&RawRequest) -> Reply + Send + Sync + 'static {
    move |req: &RawRequest| match (req.method(), req.rpc_method().as_deref()) {
        ("GET", _) => get(),
        (_, Some("initialize")) => json_reply_with(
            &[("mcp-session-id", "s-1")],
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}"#,
        ),
        (_, Some("tools/list")) => post_list(),
        _ => ok_reply(req),
    }
}

/// The bug of issue 14: the second answer to the same `tools/list` id on one SSE stream
/// passed through unfiltered (the id was no longer outstanding once answered).
#[tokio::test(flavor = "multi_thread")]
async fn the_same_list_id_answered_twice_on_one_stream_is_filtered_both_times() {
    let (_up, w) = start("", |_| {
        let event = format!("data: {}\n\n", tools_result(json!(1)));
        sse_reply(&[&event, &event])
    });
    let (status, body) = post(&w.url, None, tools_list(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    let messages = events(&body);
    assert_eq!(messages.len(), 2, "{body}");
    assert_each_filtered_or_withheld(&messages);
}

/// The same, in one event holding a batch of two answers with the same id.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_list_id_answered_twice_in_one_batch_is_filtered_both_times() {
    let (_up, w) = start("", |_| {
        let batch = format!("[{},{}]", tools_result(json!(1)), tools_result(json!(1)));
        json_reply(&batch)
    });
    let (status, body) = post(&w.url, None, tools_list(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    let messages: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_each_filtered_or_withheld(&messages);
}

/// In a session: a repeat on the POST's stream, then again on a GET stream (no
/// `Last-Event-ID`: not a resumption), then on a later POST's stream (after the list's
/// own stream ended).
#[tokio::test(flavor = "multi_thread")]
async fn a_list_answer_repeated_on_any_stream_of_the_session_is_filtered() {
    let (_up, w) = start(
        "",
        session_upstream(
            || {
                let event = format!("id: e1\ndata: {}\n\n", tools_result(json!(1)));
                sse_reply(&[&event, &event])
            },
            || sse_reply(&[&format!("data: {}\n\n", tools_result(json!(1)))]),
        ),
    );
    let (status, body) = post(&w.url, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&w.url, Some("s-1"), tools_list(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    assert_each_filtered_or_withheld(&events(&body));

    let (status, body) = send(&w.url, reqwest::Method::GET, Some("s-1"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    assert_each_filtered_or_withheld(&events(&body));
}

/// A result shaped like a list under an id that was never a list request (a call's id,
/// or one nobody sent) is filtered all the same, on a POST's and on a GET stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_shaped_result_under_any_id_is_filtered() {
    let (_up, w) = start(
        "",
        session_upstream(
            || sse_reply(&[&format!("data: {}\n\n", tools_result(json!(1)))]),
            || sse_reply(&[&format!("data: {}\n\n", tools_result(json!("never-sent")))]),
        ),
    );
    let (status, _) = post(&w.url, None, initialize()).await;
    assert_eq!(status, 200);
    let (status, body) = send(&w.url, reqwest::Method::GET, Some("s-1"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    assert_each_filtered_or_withheld(&events(&body));
}

/// A list-shaped result the proxy cannot filter (the array is not an array) is withheld,
/// though no list request is outstanding.
#[tokio::test(flavor = "multi_thread")]
async fn an_unfilterable_list_shaped_result_under_any_id_is_withheld() {
    let (_up, w) = start("", |req: &RawRequest| match req.rpc_method().as_deref() {
        Some("tools/call") => sse_reply(&[&format!(
            "data: {}\n\n",
            json!({"jsonrpc":"2.0","id":5,"result":{"tools":{"name":"secret_tool"}}})
        )]),
        _ => ok_reply(req),
    });
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{}}});
    let (status, body) = post(&w.url, None, call).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    assert_each_filtered_or_withheld(&events(&body));
}

/// Clients see the operator's hints: `[tools."echo"] annotations = {…}` is written into
/// the listed tool, over the server's own `openWorldHint: false`.
#[tokio::test(flavor = "multi_thread")]
async fn listed_tools_show_the_annotations_the_proxy_enforces() {
    let (_up, w) = start(
        "[tools.\"echo\"]\nannotations = { openWorldHint = true }\n",
        |_| json_reply(&tools_result(json!(1))),
    );
    let (status, body) = post(&w.url, None, tools_list(1)).await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["result"]["tools"],
        json!([{"name":"echo","annotations":{"openWorldHint":true,"readOnlyHint":true}}])
    );
}

/// A `subscriptions/listen` stream (MCP 2026-07-28) is read like a GET stream:
/// list-changed notifications pass unchanged, and any list answer on it is filtered — an
/// answer to a list request the session already had answered included, even in a JSON
/// answer (which a POST with no list request of its own would otherwise pass unread).
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriptions_listen_stream_passes_notifications_and_filters_lists() {
    const CHANGED: &str = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    let listens = std::sync::atomic::AtomicUsize::new(0);
    let (_up, w) = start("", move |req: &RawRequest| {
        match req.rpc_method().as_deref() {
            Some("initialize") => json_reply_with(
                &[("mcp-session-id", "s-1")],
                r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}"#,
            ),
            Some("tools/list") => json_reply(&tools_result(json!(1))),
            Some("subscriptions/listen") => {
                if listens.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 0 {
                    // the first as an event stream: a notification, a list under a new id
                    sse_reply(&[
                        &format!("data: {CHANGED}\n\n"),
                        &format!("data: {}\n\n", tools_result(json!(77))),
                    ])
                } else {
                    // the second as JSON: the answered list id 1 again
                    json_reply(&format!("[{CHANGED},{}]", tools_result(json!(1))))
                }
            }
            _ => ok_reply(req),
        }
    });
    let (status, body) = post(&w.url, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&w.url, Some("s-1"), tools_list(1)).await;
    assert_eq!(status, 200, "{body}");
    let listen = json!({"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{}});

    let (status, body) = post(&w.url, Some("s-1"), listen.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("data: {CHANGED}\n\n")), "{body}");
    assert_no_hidden_tool(&body);
    let lists: Vec<Value> = events(&body)
        .into_iter()
        .filter(|m| m.get("id").is_some())
        .collect();
    assert_each_filtered_or_withheld(&lists);

    let (status, body) = post(&w.url, Some("s-1"), listen).await;
    assert_eq!(status, 200, "{body}");
    assert_no_hidden_tool(&body);
    let messages: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(messages[0]["method"], "notifications/tools/list_changed");
    assert_each_filtered_or_withheld(&messages[1..]);
}
