//! Identity: client-sent identity headers are replaced by the proven identity, and the
//! client's credentials are never forwarded.

use super::{call, post, post_as, setup, API_KEY};
use crate::support::http::{client, send};

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_headers_are_replaced_by_the_real_identity() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[
            ("x-mcp-user", "admin"),
            ("X-MCP-Roles", "admin"),
            ("x-mcp-auth-method", "api_key"),
            ("x-mcp-agent", "trusted-agent"),
            ("X-Mcp-Tenant", "other-tenant"),
        ],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &s.up.received()[0];
    assert_eq!(got.headers("x-mcp-user"), ["alice"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-roles"), ["staff"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-auth-method"), ["jwt"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-agent"), ["test-agent"], "{}", got.head);
    assert!(got.headers("x-mcp-tenant").is_empty(), "{}", got.head);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_not_forwarded() {
    let s = setup("");
    let r = post(s.url(), call(1, "echo")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        client()
            .post(s.url())
            .header("x-api-key", API_KEY)
            .header("content-type", "application/json")
            .header("x-mcp-user", "alice")
            .body(call(2, "echo")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 2);
    for req in &got {
        assert!(req.header("authorization").is_none(), "{}", req.head);
        assert!(req.header("x-api-key").is_none(), "{}", req.head);
    }
    assert_eq!(got[0].headers("x-mcp-user"), ["alice"]);
    assert_eq!(got[1].headers("x-mcp-user"), ["ci-bot"]);
    assert_eq!(got[1].headers("x-mcp-auth-method"), ["api_key"]);
}
