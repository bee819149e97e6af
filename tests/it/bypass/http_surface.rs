//! The HTTP surface: paths, methods, bodies on GET/DELETE, `Mcp-Method`/`Mcp-Name` headers
//! that disagree with the body, `Origin`.

use super::{
    call, post, post_as, raw_code, raw_request, setup, FORBIDDEN, HEADER_MISMATCH, INVALID_REQUEST,
};
use crate::support::warden::raw_http;

#[tokio::test(flavor = "multi_thread")]
async fn other_paths_are_404_and_not_forwarded() {
    let s = setup("");
    let body = call(1, "echo");
    for path in [
        "/",
        "/mcp/",
        "/MCP",
        "/mcp/x",
        "/mcp%2F",
        "//mcp",
        "/mcp/../mcp",
        "/%6dcp",
    ] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                "POST",
                path,
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_are_405_and_not_forwarded() {
    let s = setup("");
    let body = call(1, "echo");
    for method in ["PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "post"] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                method,
                "/mcp",
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 405, "{method}: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn get_or_delete_with_a_body_is_400() {
    let s = setup("");
    let body = call(1, "delete_records");
    for method in ["GET", "DELETE"] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                method,
                "/mcp",
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 400, "{method}: {}", r.text());
        assert_eq!(raw_code(&r), INVALID_REQUEST);
        let r = raw_http(s.warden.addr, &{
            let mut req = raw_request(method, "/mcp", "transfer-encoding: chunked\r\n", b"");
            req.extend_from_slice(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
            req
        });
        assert_eq!(r.status, 400, "{method} chunked: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_method_header_disagreeing_with_the_body_is_refused() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-method", "tools/list")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), HEADER_MISMATCH);
    s.assert_nothing_forwarded();
    // Agreeing headers pass.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_name_header_disagreeing_with_the_body_is_refused() {
    let s = setup("");
    for name in ["delete_records", "=?base64?ZGVsZXRlX3JlY29yZHM=?=", "Echo"] {
        let r = post_as(
            s.url(),
            "alice",
            &[("mcp-method", "tools/call"), ("mcp-name", name)],
            call(1, "echo"),
        )
        .await;
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.code(), HEADER_MISMATCH, "{name}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn disallowed_origin_is_403() {
    let s = setup("[http]\nallowed_origins = [\"https://app.example\"]\n");
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
    ] {
        let r = post_as(s.url(), "alice", &[("origin", origin)], call(1, "echo")).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        assert_eq!(r.code(), FORBIDDEN, "{origin}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_or_absent_origin_is_forwarded() {
    let s = setup("[http]\nallowed_origins = [\"https://app.example\"]\n");
    let r = post_as(
        s.url(),
        "alice",
        &[("origin", "https://app.example")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(s.url(), call(2, "echo")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call", "tools/call"]);
}
