//! Decisions: batches are decided whole, denials name their policy but not its text,
//! notifications and odd content types are decided like any request.

use serde_json::{json, Value};

use super::{
    assert_no_hidden_tool, call, post, post_as, setup, setup_with, tools_list, BATCH_REFUSED,
    ECHO_ONLY, FORBIDDEN, TOOLS_RESULT,
};
use crate::support::fake::{json_reply, ok_reply};

#[tokio::test(flavor = "multi_thread")]
async fn batch_with_one_denied_element_is_refused_whole() {
    let s = setup("");
    let body = format!(
        "[{},{},{}]",
        call(1, "echo"),
        call(2, "delete_records"),
        tools_list(3)
    );
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answers = r.json();
    let answers = answers.as_array().expect("an array of errors");
    assert_eq!(answers.len(), 3, "{answers:?}");
    let code_of = |id: i64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer for id {id}: {answers:?}"))["error"]["code"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(code_of(1), BATCH_REFUSED);
    assert_eq!(code_of(2), FORBIDDEN);
    assert_eq!(code_of(3), BATCH_REFUSED);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_all_allowed_is_forwarded_and_its_list_answer_filtered() {
    let s = setup_with(ECHO_ONLY, "", |req| {
        let list: Value = serde_json::from_str(TOOLS_RESULT).unwrap();
        let answers = json!([{"jsonrpc":"2.0","id":2,"result":{"content":[]}}, list]);
        match req.json() {
            Some(Value::Array(_)) => json_reply(&answers.to_string()),
            _ => ok_reply(req),
        }
    });
    let body = format!("[{},{}]", call(2, "echo"), tools_list(1));
    let r = post(s.url(), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body.as_bytes(), "batch not forwarded as sent");
    let answers = r.json();
    let list = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == 1)
        .unwrap();
    assert_eq!(list["result"]["tools"][0]["name"], "echo");
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 1);
    assert_no_hidden_tool(&r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_call_names_the_policy_but_not_its_text() {
    let s = setup("");
    let r = post(s.url(), call(7, "delete_records")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], FORBIDDEN);
    assert_eq!(
        body["error"]["data"]["policy_ids"],
        json!(["never-delete-records"])
    );
    for policy_text in ["Action::", "principal", "resource ==", "permit", "when {"] {
        assert!(
            !r.text().contains(policy_text),
            "policy text leaked: {body}"
        );
    }
    // A default deny (no permit) names no policy.
    let r = post(s.url(), call(8, "secret_tool")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    assert_eq!(r.json()["error"]["data"]["policy_ids"], json!([]));
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_notification_is_403() {
    let s = setup("");
    let body = json!({"jsonrpc": "2.0", "method": "tools/call",
        "params": {"name": "delete_records", "arguments": {}}})
    .to_string();
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn non_json_content_type_is_still_decided() {
    let s = setup("");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = post_as(
            s.url(),
            "alice",
            &[("content-type", content_type)],
            call(1, "delete_records"),
        )
        .await;
        assert_eq!(r.status, 200, "{content_type}: {}", r.text());
        assert_eq!(r.code(), FORBIDDEN, "{content_type}");
    }
    s.assert_nothing_forwarded();
}
