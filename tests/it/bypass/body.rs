//! Request bodies: one parse, the same one the upstream will make.
//!
//! Duplicate keys, escapes, malformed JSON, JSON that is not JSON-RPC, nesting: anything a
//! downstream parser could read differently is refused, and nothing reaches the upstream.

use serde_json::json;

use super::{
    call, post, setup, setup_with, ALL_BUT_DELETE, FORBIDDEN, INVALID_REQUEST, PARSE_ERROR,
};
use crate::support::fake::ok_reply;

/// Duplicate keys are read last-wins by serde_json and first-wins by others: the proxy
/// would authorize `echo` while a first-wins upstream runs `delete_records`.
async fn assert_duplicate_key_refused(body: &str) {
    let s = setup("");
    let r = post(s.url(), body.to_owned()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert!(r.text().contains("duplicate"), "{}", r.text());
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_top_level_key_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_records","arguments":{}},"params":{"name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_nested_in_params_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_records","name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_spelled_with_unicode_escape_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"delete_records","name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_name_with_unicode_escapes_is_decided_on_its_decoded_name() {
    let s = setup_with(ALL_BUT_DELETE, "", ok_reply);
    let r = post(
        s.url(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete\u005frecords","arguments":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    assert_eq!(r.json()["id"], 3);
    assert_eq!(
        r.json()["error"]["data"]["policy_ids"],
        json!(["never-delete-records"])
    );
    s.assert_nothing_forwarded();

    // The same policy lets other tools through, so the refusal above is the decoded name's.
    let r = post(s.url(), call(4, "read_records")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], json!({}));
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn method_name_is_matched_exactly() {
    // `Tools/Call` is not `tools/call`: an unknown method, which needs its own permit.
    let s = setup_with(ALL_BUT_DELETE, "", ok_reply);
    let r = post(
        s.url(),
        r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"delete_records","arguments":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_a_parse_error() {
    let s = setup("");
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} {}"#,
        "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\ud800"}}"#,
    ] {
        let r = post(s.url(), body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), PARSE_ERROR, "{body}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn json_that_is_not_json_rpc_is_invalid_request() {
    let s = setup("");
    for body in [
        r#"{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}},"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}},"x":1}"#,
        r#"[]"#,
        r#""tools/call""#,
    ] {
        let r = post(s.url(), body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), INVALID_REQUEST, "{body}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn nesting_deeper_than_the_limit_is_refused() {
    let s = setup("");
    // 3 levels of message + 80 of argument: over the default limit of 64, under
    // serde_json's own 128, so only the proxy's limit stops it.
    let deep = format!("{}1{}", r#"{"a":"#.repeat(80), "}".repeat(80));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"deep":{deep}}}}}}}"#
    );
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert!(r.text().contains("nesting"), "{}", r.text());
    s.assert_nothing_forwarded();
}
