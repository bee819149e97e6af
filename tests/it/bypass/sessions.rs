//! Sessions: a session is bound to the principal that created it; unknown ones are 404.

use super::{
    bearer, call, initialize, post, post_as, setup_with, ECHO_ONLY, FORBIDDEN, INVALID_REQUEST,
};
use crate::support::fake::{json_reply_with, ok_reply, RawRequest, Reply};
use crate::support::http::{client, send};

/// Answers `initialize` with session `s-1`, everything else with an empty result.
pub(super) fn session_upstream(req: &RawRequest) -> Reply {
    match req.rpc_method().as_deref() {
        Some("initialize") => json_reply_with(
            &[("mcp-session-id", "s-1")],
            r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}"#,
        ),
        _ => ok_reply(req),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_is_bound_to_the_principal_that_created_it() {
    let s = setup_with(ECHO_ONLY, "", session_upstream);
    let r = post(s.url(), initialize(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("mcp-session-id").as_deref(), Some("s-1"));

    // Another principal presenting alice's session id: refused, whatever the method.
    let r = post_as(
        s.url(),
        "mallory",
        &[("mcp-session-id", "s-1")],
        call(2, "echo"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = send(
            client()
                .request(method.clone(), s.url())
                .header("authorization", bearer("mallory"))
                .header("accept", "text/event-stream")
                .header("mcp-session-id", "s-1"),
        )
        .await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
    }
    assert_eq!(
        s.up.methods(),
        ["initialize"],
        "mallory's requests reached it"
    );

    // alice herself carries on.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        call(3, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(s.up.methods(), ["initialize", "tools/call"]);
    assert_eq!(got[1].header("mcp-session-id").as_deref(), Some("s-1"));
    assert_eq!(got[1].headers("x-mcp-user"), ["alice"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_session_is_404() {
    let s = setup_with(ECHO_ONLY, "", session_upstream);
    let r = post(s.url(), initialize(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-2")],
        call(2, "echo"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert_eq!(s.up.methods(), ["initialize"]);
}
