//! Body framing: the proxy must decide on exactly the bytes it forwards (compression,
//! size limits, chunked bodies, `Content-Length` beside `Transfer-Encoding`).

use super::{call, post, post_as, raw_code, raw_request, setup, FORBIDDEN, INVALID_REQUEST};
use crate::support::fake::gzip_stored;
use crate::support::warden::raw_http;

/// A raw POST to `/mcp` with a chunked body cut into `chunk`-byte chunks.
fn chunked_post(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = raw_request("POST", "/mcp", "transfer-encoding: chunked\r\n", b"");
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// An `echo` call whose `text` argument makes the body exactly `len` bytes long, with
/// content that differs at every offset (so a reordered or truncated copy is caught).
fn big_call(len: usize) -> Vec<u8> {
    let prefix = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#;
    let suffix = br#""}}}"#;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let fill = len - prefix.len() - suffix.len();
    let mut out = prefix.to_vec();
    out.extend((0..fill).map(|i| alphabet[(i * 7 + i / 61) % alphabet.len()]));
    out.extend_from_slice(suffix);
    assert_eq!(out.len(), len);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_request_body_is_415() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[("content-encoding", "gzip")],
        gzip_stored(call(1, "echo").as_bytes()),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_with_content_length_is_413() {
    let s = setup("[limits]\nmax_body_bytes = 2048\n");
    let r = post(s.url(), big_call(4096)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    s.assert_nothing_forwarded();
    // The limit is the configured one, not a refusal of everything.
    let r = post(s.url(), big_call(2048)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_over_the_limit_is_413() {
    let s = setup("[limits]\nmax_body_bytes = 2048\n");
    let r = raw_http(s.warden.addr, &chunked_post(&big_call(4096), 500));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(raw_code(&r), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

async fn assert_big_body_forwarded_intact(len: usize) {
    let s = setup("");
    let body = big_call(len);
    let r = post(s.url(), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1, "{:?}", s.up.methods());
    assert_eq!(got[0].body.len(), body.len(), "forwarded body length");
    assert!(
        got[0].body == body,
        "forwarded body differs from the one sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_1_mib_body_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_3_mib_body_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(3 * 1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_just_over_the_retry_buffer_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(64 * 1024 + 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_under_64_kib_is_forwarded_intact() {
    let s = setup("");
    let body = big_call(60 * 1024);
    let r = raw_http(s.warden.addr, &chunked_post(&body, 7000));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].body == body, "forwarded chunked body differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_over_64_kib_is_411() {
    let s = setup("");
    let r = raw_http(s.warden.addr, &chunked_post(&big_call(100 * 1024), 8000));
    assert_eq!(r.status, 411, "{}", r.text());
    assert_eq!(raw_code(&r), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

/// `Content-Length` and `Transfer-Encoding` together (request smuggling's raw material):
/// the body is read as chunked, decided, and forwarded with chunked framing only, so the
/// proxy and the upstream cannot disagree on where it ends.
fn conflicting_framing(body: &str) -> Vec<u8> {
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    // The Content-Length covers only a prefix of the chunked body.
    raw_request(
        "POST",
        "/mcp",
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        chunked.as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_beside_transfer_encoding_is_decided_on_the_chunked_body() {
    let s = setup("");
    let r = raw_http(
        s.warden.addr,
        &conflicting_framing(&call(1, "delete_records")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(raw_code(&r), FORBIDDEN);
    s.assert_nothing_forwarded();

    let body = call(2, "echo");
    let r = raw_http(s.warden.addr, &conflicting_framing(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].header("content-length").is_none(), "{}", got[0].head);
    assert_eq!(
        got[0].headers("transfer-encoding").len(),
        1,
        "{}",
        got[0].head
    );
    assert_eq!(got[0].body, body.as_bytes());
}
