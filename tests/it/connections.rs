//! Connections through the proxy: answers the proxy rewrites are framed (so the client's
//! keep-alive connection survives them), refusals after the body was read keep the
//! connection, and the unread body of a request refused before its body was read is
//! never taken for a next request (request smuggling).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, Upstream, UpstreamBuilder};
use crate::support::wait;
use crate::support::warden::{example_policies, Warden};

async fn setup() -> (Upstream, Warden) {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    (up, warden)
}

/// One keep-alive HTTP/1.1 connection to the proxy.
async fn connection(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// POSTs a JSON-RPC body as staff on `sender`; returns the answer's head and body.
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    body: &'static str,
) -> Result<(http::response::Parts, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::post("/mcp")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header(
            "authorization",
            format!("Bearer {}", token("alice", &["staff"], "mcp:tools")),
        )
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts, body))
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"again"}}}"#;
const DELETE: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_records","arguments":{"table":"patients"}}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_list_answer_is_framed_and_the_connection_serves_the_next_request() {
    let (up, warden) = setup().await;
    let mut sender = connection(warden.addr).await;
    let (head, body) = post(&mut sender, warden.addr, LIST).await.unwrap();
    assert_eq!(head.status, 200);
    // The proxy rewrote the body: the upstream's Content-Length is gone, so the answer
    // must be chunked, not delimited by closing the connection.
    assert_eq!(
        head.headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked"),
        "filtered list answer without framing: {head:?}"
    );
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo") && !names.contains(&"delete_records"));
    let (head, body) = post(&mut sender, warden.addr, ECHO)
        .await
        .expect("the same connection serves the next request");
    assert_eq!(head.status, 200);
    assert!(String::from_utf8_lossy(&body).contains("again"));
    assert_eq!(up.seen.tool_calls(), ["echo"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_denial_keeps_the_connection() {
    let (up, warden) = setup().await;
    let mut sender = connection(warden.addr).await;
    // The proxy learns `echo`'s annotations (read-only) from the list.
    post(&mut sender, warden.addr, LIST).await.unwrap();
    let (_, body) = post(&mut sender, warden.addr, DELETE).await.unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("-32003"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (head, body) = post(&mut sender, warden.addr, ECHO)
        .await
        .expect("a denial after the body was read leaves the connection usable");
    assert_eq!(head.status, 200);
    assert!(String::from_utf8_lossy(&body).contains("again"));
    assert_eq!(up.seen.tool_calls(), ["echo"], "the denied call never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unread_body_of_a_refused_request_is_never_taken_for_the_next_request() {
    let (up, warden) = setup().await;
    // A request the proxy refuses before reading its body (no credentials), whose body
    // is itself a complete, authorized request. Were the connection kept without draining
    // the body, the proxy would read that body as the next request and forward it.
    let smuggled = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {len}\r\n\r\n{DELETE}",
        addr = warden.addr,
        token = token("root", &["admin"], "mcp:tools"),
        len = DELETE.len(),
    );
    let outer = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {len}\r\n\r\n{smuggled}",
        addr = warden.addr,
        len = smuggled.len(),
    );
    let mut stream = TcpStream::connect(warden.addr).unwrap();
    // Read until the proxy closes the connection; the timeout only bounds a hang.
    stream.set_read_timeout(Some(wait::HANG)).unwrap();
    stream.write_all(outer.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one answer, and the body was not served as a request: {text}"
    );
    assert!(up.seen.tool_calls().is_empty(), "nothing was forwarded");
}
