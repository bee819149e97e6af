//! Responses: list results are filtered however they arrive (JSON, SSE split anywhere,
//! batches, resumed GET streams), or withheld when the proxy cannot read them.

use serde_json::Value;

use super::sessions::session_upstream;
use super::{
    assert_no_hidden_tool, bearer, initialize, post, post_as, setup_with, tools_list, Setup,
    ECHO_ONLY, TOOLS_RESULT, UPSTREAM_UNFILTERABLE,
};
use crate::support::fake::{
    gzip_stored, json_reply, reply, sse_reply, sse_reply_with, RawRequest, Reply,
};
use crate::support::http::{client, send, Resp};

/// The tool names of the `tools/list` result with id 1 in an SSE or JSON body.
fn listed_names(body: &str) -> Vec<String> {
    let documents: Vec<Value> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(body).unwrap()]
    } else {
        sse_data(body)
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    };
    let result = documents
        .iter()
        .find(|d| d["id"] == 1 && d.get("result").is_some())
        .unwrap_or_else(|| panic!("no result for id 1 in {body}"));
    result["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `data` of each event of an SSE body (lines joined with `\n`).
fn sse_data(body: &str) -> Vec<String> {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_list_result_split_into_many_pieces_is_filtered() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#;
        let result_event = format!("id: ev-2\r\nevent: message\r\ndata: {TOOLS_RESULT}\r\n\r\n");
        // Several events in the first piece; then the result cut every 9 bytes, which
        // splits tool names, and a split between the `\r` and `\n` of a line end.
        let mut pieces = vec![format!(
            ": keep-alive\r\n\r\nid: ev-1\r\ndata: {progress}\r\n\r\nretry: 1000\r\n\r\n"
        )];
        let bytes = result_event.as_bytes();
        let cr = bytes.len() - 3; // "...}\r" | "\n\r\n"
        pieces.extend(
            bytes[..cr]
                .chunks(9)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
        pieces.push(String::from_utf8(bytes[cr..].to_vec()).unwrap());
        pieces.push(": bye\r\n\r\n".to_owned());
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        sse_reply(&pieces)
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_no_hidden_tool(&text);
    assert_eq!(listed_names(&text), ["echo"]);
    let data = sse_data(&text);
    let result: Value =
        serde_json::from_str(data.iter().find(|d| d.contains("tools")).unwrap()).unwrap();
    assert_eq!(result["result"]["nextCursor"], "cursor-2");
    assert!(text.contains("notifications/progress"), "{text}");
    assert!(
        text.contains(": keep-alive") && text.contains("id: ev-2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_list_result_is_filtered_and_keeps_its_cursor() {
    let s = setup_with(ECHO_ONLY, "", |_| json_reply(TOOLS_RESULT));
    let r = post(s.url(), tools_list(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    assert_eq!(r.json()["result"]["nextCursor"], "cursor-2");
}

/// A list answer the proxy cannot read: a JSON-RPC error, no tool name.
fn assert_withheld(r: &Resp) {
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.code(), UPSTREAM_UNFILTERABLE, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert!(!r.text().contains("echo"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_list_answer_is_withheld() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        reply(
            "200 OK",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &gzip_stored(TOOLS_RESULT.as_bytes()),
        )
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_withheld(&r);
    assert!(r.header("content-encoding").is_none());
    // It asked for an uncompressed answer in the first place.
    assert_eq!(
        s.up.received()[0].header("accept-encoding").as_deref(),
        Some("identity")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_answer_with_duplicate_keys_is_withheld() {
    for answer in [
        // serde_json would filter the second `result`; a first-wins client reads the first.
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_records"},{"name":"secret_tool"}]},"result":{"tools":[]}}"#,
        // last-wins sees the permitted `echo`; first-wins sees `delete_records`.
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_records","name":"echo"}]}}"#,
    ] {
        let s = setup_with(ECHO_ONLY, "", move |_| json_reply(answer));
        let r = post(s.url(), tools_list(1)).await;
        assert_eq!(r.code(), UPSTREAM_UNFILTERABLE, "{answer}: {}", r.text());
        assert_no_hidden_tool(&r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_answer_as_text_plain_is_withheld() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        reply(
            "200 OK",
            &[("content-type", "text/plain")],
            TOOLS_RESULT.as_bytes(),
        )
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_withheld(&r);
}

/// Session `s-1` from `initialize`; a `tools/list` POST answered by `post_stream`; a GET
/// answered by `get_stream`.
fn resumable_upstream(
    post_stream: &'static [&'static str],
    get_reply: fn() -> Reply,
) -> impl Fn(&RawRequest) -> Reply + Send + Sync + 'static {
    move |req: &RawRequest| match (req.method(), req.rpc_method().as_deref()) {
        ("GET", _) => get_reply(),
        (_, Some("tools/list")) => sse_reply_with(&[("mcp-session-id", "s-1")], post_stream),
        _ => session_upstream(req),
    }
}

async fn get_stream(s: &Setup, last_event_id: &str) -> Resp {
    send(
        client()
            .get(s.url())
            .header("authorization", bearer("alice"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", "s-1")
            .header("last-event-id", last_event_id),
    )
    .await
}

const PROGRESS_EVENT: &str = "id: ev-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\n\n";

fn result_event() -> String {
    format!("id: ev-2\ndata: {TOOLS_RESULT}\n\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn list_result_on_a_resumed_get_stream_is_filtered() {
    let s = setup_with(
        ECHO_ONLY,
        "",
        resumable_upstream(&[PROGRESS_EVENT], || {
            let event = result_event();
            sse_reply(&[&event[..40], &event[40..]])
        }),
    );
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    // The POST's stream ends before the result.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("tools"), "{}", r.text());
    // The result arrives on the resumed stream.
    let r = get_stream(&s, "ev-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    let get = &s.up.received()[2];
    assert_eq!(get.method(), "GET");
    assert_eq!(get.header("last-event-id").as_deref(), Some("ev-1"));
}

/// Fails against the current proxy: `SessionTable::take_pending` forgets a list id once
/// its answer is filtered, so the replayed answer passes through unfiltered.
#[tokio::test(flavor = "multi_thread")]
async fn list_result_replayed_on_a_resumed_get_stream_is_filtered_again() {
    // The client chooses `Last-Event-ID`: resuming from before the result event makes a
    // resumable server replay a list result the proxy already filtered once.
    let post_stream = format!("{PROGRESS_EVENT}{}", result_event());
    let s = setup_with(ECHO_ONLY, "", move |req: &RawRequest| {
        match (req.method(), req.rpc_method().as_deref()) {
            ("GET", _) => sse_reply(&[&result_event()]),
            (_, Some("tools/list")) => sse_reply(&[&post_stream]),
            _ => session_upstream(req),
        }
    });
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    let r = get_stream(&s, "ev-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
}

/// While list requests of the session are outstanding, a GET answer the proxy cannot
/// read must be withheld, as it is on a POST. Fails against the current proxy:
/// `response_filter` only filters a GET answer whose type is `text/event-stream`.
#[tokio::test(flavor = "multi_thread")]
async fn list_result_on_a_get_stream_that_is_not_sse_is_withheld() {
    let s = setup_with(
        ECHO_ONLY,
        "",
        resumable_upstream(&[PROGRESS_EVENT], || {
            reply(
                "200 OK",
                &[("content-type", "text/plain")],
                result_event().as_bytes(),
            )
        }),
    );
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_stream(&s, "ev-1").await;
    assert_no_hidden_tool(&r.text());
}

/// `TOOLS_RESULT` with `members` added to its `result`.
fn tools_result_with(members: Value) -> String {
    let mut answer: Value = serde_json::from_str(TOOLS_RESULT).unwrap();
    answer["result"]
        .as_object_mut()
        .unwrap()
        .extend(members.as_object().unwrap().clone());
    answer.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_list_goes_out_private_whatever_the_server_said() {
    // MCP 2026-07-28 cache hints: the server calls its list public; the proxy's list is
    // this caller's view, which a shared cache must not serve to anyone else.
    let answer = tools_result_with(serde_json::json!({"ttlMs": 60000, "cacheScope": "public"}));
    let s = setup_with(ECHO_ONLY, "", move |_| json_reply(&answer));
    let r = post(s.url(), tools_list(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    assert_eq!(r.json()["result"]["cacheScope"], "private");
    assert_eq!(r.json()["result"]["ttlMs"], 60000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_with_a_cache_hint_the_proxy_cannot_read_is_withheld() {
    for hints in [
        serde_json::json!({"ttlMs": "60000"}),
        serde_json::json!({"ttlMs": -5}),
        serde_json::json!({"cacheScope": "shared"}),
        serde_json::json!({"cacheScope": 1}),
    ] {
        let answer = tools_result_with(hints.clone());
        let s = setup_with(ECHO_ONLY, "", move |_| json_reply(&answer));
        let r = post(s.url(), tools_list(1)).await;
        assert_eq!(r.code(), UPSTREAM_UNFILTERABLE, "{hints}: {}", r.text());
        assert_no_hidden_tool(&r.text());
    }
}
