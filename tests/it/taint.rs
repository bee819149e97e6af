//! Taint tracking through the real binary: a session that read from a sensitive source
//! (`get_record`, label `phi`) loses open-world tools — in that session, in every other
//! session of the same credential — while a clean credential keeps them. Against the
//! real rmcp server in both of its response modes, plus a hand-written upstream for
//! answers the proxy cannot read.

use std::collections::BTreeMap;

use rmcp::service::ServiceError;
use serde_json::{json, Value};

use crate::support::audit::{audit_lines, wait_audit};
use crate::support::client::{
    args, call_tool, list_tool_names, result_text, ClientBuilder, McpClient, Revision,
};
use crate::support::fake::{json_reply, reply, sse_reply, FakeUpstream};
use crate::support::tokens::{claims, sign, AUTH_TOML};
use crate::support::upstream::{
    ResponseMode, Upstream, UpstreamBuilder, MISSING_RECORD, RECORDS_TOOL,
};
use crate::support::warden::{example_policies, Warden};

const FORBIDDEN: i32 = -32003;
const TAINT_POLICY: &str = "no-open-world-when-tainted";
const TAINT_TOML: &str = "[taint]\nsources = [{ tool = \"get_record\", label = \"phi\" }]\n";
const AUDIT_FILE_TOML: &str = "[audit]\nsink = \"file\"\npath = \"audit.log\"\n";

/// A staff token (the example policies let staff call read-only tools, `get_weather`
/// included) for `sub`, naming itself with `jti`.
fn staff(sub: &str, jti: &str) -> String {
    let mut c = claims(sub, &["staff"], "mcp:tools");
    c["jti"] = json!(jti);
    sign(&c)
}

async fn upstream(mode: ResponseMode) -> Upstream {
    UpstreamBuilder::new(mode)
        .any_host()
        .records_tool()
        .start()
        .await
}

fn warden_for(up: &Upstream, extra: &str) -> Warden {
    Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{AUDIT_FILE_TOML}\n{TAINT_TOML}\n{extra}"),
    )
}

/// Sessions + SSE answers on the `initialize` lifecycle, and stateless JSON answers on
/// the 2026-07-28 lifecycle (no session: taint lives on the credential alone).
fn setups() -> [(ResponseMode, Revision); 2] {
    [
        (ResponseMode::Sse, Revision::legacy()),
        (ResponseMode::Json, Revision::Modern),
    ]
}

async fn connect(warden: &Warden, revision: &Revision, token: &str) -> McpClient {
    ClientBuilder::new(&warden.url, revision.clone())
        .bearer(token)
        .connect()
        .await
}

async fn weather(client: &McpClient) -> Result<String, ServiceError> {
    call_tool(client, "get_weather", args([("city", json!("Paris"))]))
        .await
        .map(|r| result_text(&r))
}

async fn read_record(client: &McpClient, id: &str) -> String {
    let result = call_tool(client, RECORDS_TOOL, args([("id", json!(id))]))
        .await
        .expect("get_record allowed");
    result_text(&result)
}

/// The policy denial's code and `policy_ids`, or a panic saying what came instead.
fn denial(result: Result<String, ServiceError>) -> (i32, Value) {
    match result {
        Err(ServiceError::McpError(e)) => (
            e.code.0,
            e.data.unwrap_or(Value::Null)["policy_ids"].clone(),
        ),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// `/metrics`: series (name and labels, as rendered) → value.
async fn scrape(warden: &Warden) -> BTreeMap<String, f64> {
    let text = warden.metrics().await;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

fn series(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sensitive_read_then_open_world_call_is_refused_for_the_session_and_the_credential() {
    for (mode, revision) in setups() {
        let up = upstream(mode).await;
        let warden = warden_for(&up, "");
        let tainted = staff("sam", "token-1");

        let client = connect(&warden, &revision, &tainted).await;
        let mut listed = list_tool_names(&client).await;
        listed.sort();
        assert_eq!(
            listed,
            ["echo", "get_record", "get_weather", "whoami"],
            "{mode:?}"
        );
        // Clean: the open-world tool works.
        assert_eq!(
            weather(&client).await.unwrap(),
            "sunny in Paris",
            "{mode:?}"
        );

        assert!(read_record(&client, "7").await.contains("confidential"));
        let (code, policies) = denial(weather(&client).await);
        assert_eq!(
            (code, policies),
            (FORBIDDEN, json!([TAINT_POLICY])),
            "{mode:?}"
        );
        // Closed-world tools, the source included, still work; the listing agrees.
        call_tool(&client, "echo", args([("text", json!("hi"))]))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: echo refused: {e}"));
        read_record(&client, "8").await;
        let mut listed = list_tool_names(&client).await;
        listed.sort();
        assert_eq!(listed, ["echo", "get_record", "whoami"], "{mode:?}");

        // A new session (a new connection) with the same token: still refused.
        let again = connect(&warden, &revision, &tainted).await;
        let (code, policies) = denial(weather(&again).await);
        assert_eq!(
            (code, policies),
            (FORBIDDEN, json!([TAINT_POLICY])),
            "{mode:?}"
        );

        // Clean credentials may: another user, and (keyed by token) a fresh token of the
        // same user.
        for token in [staff("sue", "token-2"), staff("sam", "token-3")] {
            let clean = connect(&warden, &revision, &token).await;
            assert_eq!(weather(&clean).await.unwrap(), "sunny in Paris", "{mode:?}");
        }
        assert_eq!(
            up.seen.tool_calls(),
            [
                "get_weather",
                "get_record",
                "echo",
                "get_record",
                "get_weather",
                "get_weather"
            ],
            "{mode:?}: refused calls never reached the server"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_source_calls_taint_nothing() {
    for (mode, revision) in setups() {
        let up = upstream(mode).await;
        let warden = warden_for(&up, "");
        let client = connect(&warden, &revision, &staff("sam", "token-1")).await;
        list_tool_names(&client).await;

        // A JSON-RPC error (no `id`: invalid params) …
        let err = call_tool(&client, RECORDS_TOOL, json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::McpError(_)), "{mode:?}: {err}");
        // … and a tool error (`isError: true`).
        let failed = call_tool(&client, RECORDS_TOOL, args([("id", json!(MISSING_RECORD))]))
            .await
            .unwrap();
        assert_eq!(failed.is_error, Some(true), "{mode:?}");
        assert_eq!(
            weather(&client).await.unwrap(),
            "sunny in Paris",
            "{mode:?}"
        );
        let metrics = scrape(&warden).await;
        assert_eq!(
            series(&metrics, r#"mcp_warden_taint_events_total{taint="phi"}"#),
            0.0
        );
        let audit = warden.dir.path().join("audit.log");
        assert!(audit_lines(&audit).iter().all(|l| l["event"] != "taint"));

        // The same tool succeeding does taint.
        read_record(&client, "7").await;
        let (code, _) = denial(weather(&client).await);
        assert_eq!(code, FORBIDDEN, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_sinks_and_annotation_overrides_are_refused_when_tainted() {
    let (mode, revision) = (ResponseMode::Sse, Revision::legacy());
    let up = upstream(mode).await;
    // `echo` and `whoami` declare themselves closed-world; the operator says otherwise.
    let warden = warden_for(
        &up,
        "[tools.echo]\nannotations = { openWorldHint = true }\n\n[tools.whoami.annotations]\ntitle = \"Who am I\"\n",
    );
    let sinks = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n[taint]\nsources = [{{ tool = \"get_record\", label = \"phi\" }}]\nsinks = [\"whoami\"]\n"),
    );
    for (warden, sink, not_sink) in [(&warden, "echo", "whoami"), (&sinks, "whoami", "echo")] {
        let client = connect(warden, &revision, &staff("sam", "token-1")).await;
        list_tool_names(&client).await;
        // Clean: the overridden tool is allowed like before.
        call_tool(&client, sink, args([("text", json!("hi"))]))
            .await
            .unwrap_or_else(|e| panic!("{sink} refused while clean: {e}"));

        read_record(&client, "7").await;
        let refused = call_tool(&client, sink, args([("text", json!("hi"))]))
            .await
            .map(|r| result_text(&r));
        assert_eq!(
            denial(refused),
            (FORBIDDEN, json!([TAINT_POLICY])),
            "{sink}"
        );
        call_tool(&client, not_sink, args([("text", json!("hi"))]))
            .await
            .unwrap_or_else(|e| panic!("{not_sink} refused: {e}"));
        let mut listed = list_tool_names(&client).await;
        listed.sort();
        let mut want = vec![not_sink, "get_record"];
        want.sort();
        assert_eq!(listed, want, "{sink} is hidden once tainted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn taint_events_and_taint_denials_are_audited_and_counted() {
    let up = upstream(ResponseMode::Sse).await;
    let warden = warden_for(&up, "");
    let audit = warden.dir.path().join("audit.log");
    let client = connect(&warden, &Revision::legacy(), &staff("sam", "token-1")).await;
    list_tool_names(&client).await;
    read_record(&client, "7").await;
    denial(weather(&client).await);

    let event = wait_audit(&audit, |l| l["event"] == "taint");
    assert_eq!(event["tool"], RECORDS_TOOL);
    assert_eq!(event["taints"], json!(["phi"]));
    assert_eq!(event["reason"], "source_succeeded");
    assert_eq!(event["principal"]["user"], "sam");
    assert_eq!(event["mcp_method"], "tools/call");
    assert!(event["session_id"].is_string(), "{event}");
    let source_call = wait_audit(&audit, |l| {
        l["event"] == "decision" && l["tool"] == RECORDS_TOOL
    });
    assert_eq!(source_call["taints"], json!([]), "clean when decided");
    assert_eq!(event["jsonrpc_id"], source_call["jsonrpc_id"]);
    assert_eq!(event["request_id"], source_call["request_id"]);

    let denied = wait_audit(&audit, |l| {
        l["decision"] == "deny" && l["tool"] == "get_weather"
    });
    assert_eq!(denied["taints"], json!(["phi"]));
    assert_eq!(denied["policy_ids"], json!([TAINT_POLICY]));
    assert_eq!(denied["session_id"], event["session_id"]);

    let metrics = scrape(&warden).await;
    assert_eq!(
        series(&metrics, r#"mcp_warden_taint_events_total{taint="phi"}"#),
        1.0
    );
    assert_eq!(
        series(&metrics, r#"mcp_warden_taint_denials_total{taint="phi"}"#),
        1.0
    );
    assert!(warden.logs().contains("taint recorded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_by_principal_a_fresh_token_does_not_wash_the_taint() {
    let up = upstream(ResponseMode::Json).await;
    let warden = warden_for(&up, "credential_key = \"principal\"\n");
    let first = connect(&warden, &Revision::Modern, &staff("sam", "token-1")).await;
    list_tool_names(&first).await;
    read_record(&first, "7").await;
    let refreshed = connect(&warden, &Revision::Modern, &staff("sam", "token-2")).await;
    assert_eq!(denial(weather(&refreshed).await).0, FORBIDDEN);
    let other = connect(&warden, &Revision::Modern, &staff("sue", "token-3")).await;
    weather(&other).await.unwrap();
}

/// One JSON-RPC exchange with raw HTTP: (HTTP status, `Mcp-Session-Id`, the JSON-RPC
/// answer from a JSON body or the last SSE event).
async fn rpc(
    warden: &Warden,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(&warden.url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string());
    if let Some(sid) = session {
        req = req.header("mcp-session-id", sid);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let answer = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).unwrap()
    } else {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .unwrap_or(Value::Null)
    };
    (status, sid, answer)
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":arguments}})
}

async fn open_session(warden: &Warden, token: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let (status, sid, _) = rpc(warden, token, None, init).await;
    assert_eq!(status, 200);
    let sid = sid.expect("a session id");
    let (status, _, _) = rpc(
        warden,
        token,
        Some(&sid),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    // Listing is how the proxy learns the tools' annotations (`get_record` is read-only).
    let list = json!({"jsonrpc":"2.0","id":100,"method":"tools/list"});
    let (_, _, answer) = rpc(warden, token, Some(&sid), list).await;
    assert!(answer["result"]["tools"].is_array(), "{answer}");
    sid
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tainted_session_stays_tainted_under_a_fresh_token() {
    let up = upstream(ResponseMode::Sse).await;
    let warden = warden_for(&up, "");
    // Sessions belong to the principal (user and agent), so the caller may carry on in
    // the same session with a refreshed token.
    let (first, refreshed) = (staff("sam", "token-1"), staff("sam", "token-2"));
    let sid = open_session(&warden, &first).await;
    let weather = || call(2, "get_weather", json!({"city": "Paris"}));
    let (_, _, answer) = rpc(
        &warden,
        &first,
        Some(&sid),
        call(1, RECORDS_TOOL, json!({"id": "7"})),
    )
    .await;
    let text = answer["result"]["content"][0]["text"].as_str();
    assert!(text.is_some_and(|t| t.contains("confidential")), "{answer}");

    let (_, _, answer) = rpc(&warden, &refreshed, Some(&sid), weather()).await;
    assert_eq!(answer["error"]["code"], FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["data"]["policy_ids"], json!([TAINT_POLICY]));
    // The refreshed token in a session of its own is clean.
    let other = open_session(&warden, &refreshed).await;
    let (_, _, answer) = rpc(&warden, &refreshed, Some(&other), weather()).await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "sunny in Paris",
        "{answer}"
    );
}

/// Permit everything; forbid open-world tools once tainted (the example's rule).
const PERMISSIVE_CEDAR: &str = r#"
@id("allow-all")
permit (principal, action, resource);

@id("no-open-world-when-tainted")
forbid (principal, action == Action::"call_tool", resource)
when { resource.annotations.openWorldHint && !context.session.taints.isEmpty() };
"#;

#[tokio::test(flavor = "multi_thread")]
async fn answers_the_proxy_cannot_read_or_never_sees_taint_anyway() {
    // The hand-written upstream answers `get_record` as its `how` argument says.
    let malformed_event = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"secret\"}]}\n\n";
    let up = FakeUpstream::start(move |req| {
        let body = req.json().unwrap_or(Value::Null);
        let how = body["params"]["arguments"]["how"].as_str().unwrap_or("");
        let id = body["id"].clone();
        match how {
            "sse_malformed" => sse_reply(&[malformed_event]),
            "json_duplicate_keys" => json_reply(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"isError":true}},"result":{{"content":[]}}}}"#
            )),
            "odd_content_type" => reply(
                "200 OK",
                &[("content-type", "text/plain")],
                b"record 7: confidential",
            ),
            "sse_no_answer" => sse_reply(&[
                "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n",
            ]),
            // A hostile upstream answers the watched call twice: first "failed", then the
            // data. The first answer must not switch watching off.
            "sse_failed_then_data" => sse_reply(&[
                &format!("data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[],\"isError\":true}}}}\n\n"),
                &format!("data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"secret\"}}]}}}}\n\n"),
            ]),
            "json_batch_failed_then_data" => json_reply(&format!(
                r#"[{{"jsonrpc":"2.0","id":{id},"result":{{"content":[],"isError":true}}}},{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"secret"}}]}}}}]"#
            )),
            "json_error" => json_reply(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"db down"}}}}"#
            )),
            "upstream_refused" => reply(
                "500 Internal Server Error",
                &[("content-type", "text/plain")],
                b"no",
            ),
            _ => json_reply(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"ok"}}]}}}}"#
            )),
        }
    });
    let warden = Warden::start_with_policy(
        &up.url,
        PERMISSIVE_CEDAR,
        &format!("{AUTH_TOML}\n{AUDIT_FILE_TOML}\n{TAINT_TOML}"),
    );
    let audit = warden.dir.path().join("audit.log");
    let cases = [
        ("sse_malformed", Some("answer_unreadable")),
        ("json_duplicate_keys", Some("answer_unreadable")),
        ("odd_content_type", Some("answer_unreadable")),
        ("sse_no_answer", Some("answer_unseen")),
        ("sse_failed_then_data", Some("source_succeeded")),
        ("json_batch_failed_then_data", Some("source_succeeded")),
        ("json_error", None),
        ("upstream_refused", None),
    ];
    for (how, reason) in cases {
        let token = staff(how, how);
        let (status, _, _) = rpc(
            &warden,
            &token,
            None,
            call(1, RECORDS_TOOL, json!({"how": how})),
        )
        .await;
        if how == "upstream_refused" {
            assert_eq!(status, 500);
        }
        // `fetch` was never listed: it takes the spec's defaults, open-world included.
        let (_, _, answer) = rpc(&warden, &token, None, call(2, "fetch", json!({}))).await;
        match reason {
            Some(reason) => {
                assert_eq!(answer["error"]["code"], FORBIDDEN, "{how}: {answer}");
                let line = wait_audit(&audit, |l| {
                    l["event"] == "taint" && l["principal"]["user"] == how
                });
                assert_eq!(line["reason"], reason, "{how}");
                assert_eq!(line["taints"], json!(["phi"]), "{how}");
            }
            None => assert_eq!(
                answer["result"]["content"][0]["text"], "ok",
                "{how}: {answer}"
            ),
        }
    }
    // The malformed event itself reached the client unchanged (it is not a list answer).
    let token = staff("sam", "raw");
    let resp = reqwest::Client::new()
        .post(&warden.url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call(1, RECORDS_TOOL, json!({"how": "sse_malformed"})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), malformed_event);
    wait_audit(&audit, |l| {
        l["event"] == "taint" && l["principal"]["user"] == "sam"
    });
    let taint_lines = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["event"] == "taint")
        .count();
    assert_eq!(
        taint_lines, 7,
        "one per tainting answer, none for the failures"
    );
}
