//! Faults the soak run found, each held by a test that runs in every `cargo test`: an
//! endless SSE event ends the client's stream with a withheld-answer error, a full session
//! table refuses the new session and keeps the old ones, and an upstream that is down
//! gets every client a 502 JSON-RPC error that says the connection closes (so no client
//! sends its next request on a connection being closed and sees a reset instead).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::support::client::{list_tool_names, ClientBuilder, Revision};
use crate::support::fake::FakeUpstream;
use crate::support::http::client;
use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::wait;
use crate::support::warden::{example_policies, Warden};

fn staff() -> String {
    token("alice", &["staff"], "mcp:tools")
}

/// The JSON-RPC messages in the `data:` lines of an event stream.
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test]
async fn an_endless_sse_event_ends_the_stream_with_a_withheld_answer_error() {
    // One event that never ends: the upstream writes filler until the proxy hangs up.
    let hung_up = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&hung_up);
    let up = FakeUpstream::start_writing(std::time::Duration::ZERO, move |_, out| {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        if !out.write(head.as_bytes()) || !out.write(b"data: {\"jsonrpc\":\"2.0\",\"id\":7,") {
            return;
        }
        let filler = vec![b' '; 16 * 1024];
        while out.write(&filler) {}
        flag.store(true, Ordering::Release);
    });
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n[limits]\nmax_response_bytes = 65536\n"),
    );
    let bounded = reqwest::Client::builder()
        .no_proxy()
        .timeout(wait::HANG)
        .build()
        .unwrap();
    let mut response = bounded
        .post(&warden.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {}", staff()))
        .body(json!({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}).to_string())
        .send()
        .await
        .expect("an answer head");
    assert_eq!(response.status(), 200);
    // Read until the stream ends (the proxy closes it after the error event).
    let mut text = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let messages = sse_messages(&text);
    assert_eq!(messages.len(), 1, "one error, nothing else: {text:.400}");
    assert_eq!(messages[0]["id"], json!(7));
    assert_eq!(messages[0]["error"]["code"], json!(-32005));
    assert_eq!(
        messages[0]["error"]["message"],
        "upstream response too large to filter"
    );
    // The proxy stopped reading the upstream too.
    wait::until("the proxy to hang up on the upstream", || {
        hung_up.load(Ordering::Acquire).then_some(())
    });
}

#[tokio::test]
async fn a_full_session_table_refuses_the_new_session_and_keeps_the_old() {
    let up = UpstreamBuilder::new(ResponseMode::Sse)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n[sessions]\nmax_sessions = 2\n"),
    );
    let bearer = format!("Bearer {}", staff());
    let initialize = || async {
        crate::support::http::post(
            &warden.url,
            Some(&bearer),
            &[],
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"t","version":"1"}}})
            .to_string(),
        )
        .await
    };
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let opened = initialize().await;
        assert_eq!(opened.status, 200, "{}", opened.text());
        sessions.push(opened.header("mcp-session-id").expect("a session id"));
    }

    // Over the cap: HTTP 503 with the catalogue's error, and no session id…
    let refused = initialize().await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.code(), -32006);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(refused.header("mcp-session-id"), None);
    // …which the rmcp client reports as a failed connection.
    let connect = || {
        ClientBuilder::new(warden.url.clone(), Revision::legacy())
            .bearer(staff())
            .try_connect()
    };
    assert!(connect().await.is_err(), "a third session over the cap");

    // The existing sessions were not evicted for it.
    for sid in &sessions {
        let r = crate::support::http::post(
            &warden.url,
            Some(&bearer),
            &[
                ("mcp-session-id", sid),
                ("mcp-protocol-version", "2025-06-18"),
            ],
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string(),
        )
        .await;
        assert_eq!(r.status, 202, "session {sid}: {}", r.text());
    }

    // Ending one frees its slot.
    let deleted = crate::support::http::send(
        client()
            .delete(&warden.url)
            .header("authorization", &bearer)
            .header("mcp-session-id", &sessions[0])
            .header("mcp-protocol-version", "2025-06-18"),
    )
    .await;
    assert!(deleted.status < 300, "{}", deleted.text());
    let third = connect().await.expect("a session in the freed slot");
    assert!(!list_tool_names(&third).await.is_empty());
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_every_client_a_502_that_closes_its_connection() {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    drop(up);
    wait::until_async("the upstream to be gone", || async {
        let r = crate::support::http::post(
            &warden.url,
            Some(&format!("Bearer {}", staff())),
            &[],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}).to_string(),
        )
        .await;
        (r.status == 502).then_some(())
    })
    .await;

    // The 502 says the connection closes, so a keep-alive client never sends its next
    // request on it (it would see a reset, not the error)…
    let stream = tokio::net::TcpStream::connect(warden.addr).await.unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::post("/mcp")
        .header("host", warden.addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {}", staff()))
        .body(Full::new(Bytes::from(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}).to_string(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    assert_eq!(parts.status, 502);
    assert_eq!(
        parts.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["message"], "upstream MCP server unavailable");

    // …and a pooling client gets the 502 JSON-RPC error every time.
    let pooled = client();
    for id in 0..20 {
        let r = crate::support::http::send(
            pooled
                .post(&warden.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {}", staff()))
                .body(
                    json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":{}}).to_string(),
                ),
        )
        .await;
        assert_eq!((r.status, r.code()), (502, -32603), "{}", r.text());
    }
}
