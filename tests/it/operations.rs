//! Operating the proxy: Prometheus metrics, the audit log, health and readiness, request
//! ids, upstream failures and graceful shutdown, all against the real binary.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::audit::{audit_lines, wait_audit};
use crate::support::client::{args, call_tool, list_tool_names, ClientBuilder, Revision};
use crate::support::fake::{sse_reply, FakeUpstream, Gate};
use crate::support::tokens::{claims, sign, token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::wait;
use crate::support::warden::{example_policies, free_port, replace_file, Warden};

/// A subject that must never show up in metrics.
const USER: &str = "user-7f3a9c";

const AUDIT_FILE_TOML: &str = "[audit]\nsink = \"file\"\npath = \"audit.log\"\n";

/// One scrape of `/metrics`: series (name and sorted labels, as rendered) → value.
struct Scrape {
    text: String,
    series: BTreeMap<String, f64>,
}

impl Scrape {
    /// The value of `name{labels}` (0 when the series does not exist yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels = labels.to_vec();
        labels.sort();
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        self.series.get(&key).copied().unwrap_or(0.0)
    }
}

async fn scrape(warden: &Warden) -> Scrape {
    let resp = reqwest::get(warden.admin_url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        series.insert(key.to_owned(), value);
    }
    Scrape { text, series }
}

/// Wait until `check` holds for a scrape (metrics of the end of a request are recorded
/// just after its answer is sent).
async fn scrape_until(warden: &Warden, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + wait::HANG;
    loop {
        let s = scrape(warden).await;
        if check(&s) || Instant::now() > deadline {
            return s;
        }
        wait::pause_async().await;
    }
}

async fn post(warden: &Warden, token: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(&warden.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_allowed_denied_and_unauthenticated_requests() {
    let up = UpstreamBuilder::new(ResponseMode::Sse)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    let before = scrape(&warden).await;
    assert_eq!(before.get("mcp_warden_policy_generation", &[]), 1.0);
    assert!(before.get("mcp_warden_policy_loaded_timestamp_seconds", &[]) > 1.6e9);
    assert_eq!(
        before.get(
            "mcp_warden_requests_total",
            &[("method", "tools/call"), ("decision", "allow")]
        ),
        0.0
    );

    let client = ClientBuilder::new(&warden.url, Revision::legacy())
        .bearer(token(USER, &[], "mcp:tools"))
        .connect()
        .await;
    list_tool_names(&client).await;
    call_tool(&client, "echo", args([("text", json!("hi"))]))
        .await
        .expect("echo allowed");
    call_tool(&client, "delete_records", args([("table", json!("t"))]))
        .await
        .expect_err("delete_records denied");
    call_tool(&client, "made_up_tool_x9", json!({}))
        .await
        .expect_err("an undeclared tool is denied");

    // Unauthenticated: no credential, an expired token, a bad signature.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(post(&warden, None, ping).await.status(), 401);
    let mut expired = claims(USER, &[], "");
    expired["exp"] = json!(crate::support::tokens::now() - 3600);
    assert_eq!(
        post(&warden, Some(&sign(&expired)), ping).await.status(),
        401
    );
    let forged = crate::support::tokens::sign_with(
        &claims(USER, &[], ""),
        "another-secret-0123456789abcdef",
    );
    assert_eq!(post(&warden, Some(&forged), ping).await.status(), 401);
    // Bodies refused before any decision.
    let good = token(USER, &[], "");
    assert_eq!(post(&warden, Some(&good), "{nope").await.status(), 400);
    let dup = r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#;
    assert_eq!(post(&warden, Some(&good), dup).await.status(), 400);

    let after = scrape_until(&warden, |s| {
        s.get("mcp_warden_http_responses_total", &[("code", "400")]) >= 2.0
    })
    .await;
    let get =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    let calls = |decision| {
        get(
            "mcp_warden_requests_total",
            &[("method", "tools/call"), ("decision", decision)],
        )
    };
    assert_eq!(calls("allow"), 1.0, "{}", after.text);
    assert_eq!(calls("deny"), 2.0, "{}", after.text);
    assert!(
        get(
            "mcp_warden_requests_total",
            &[("method", "tools/list"), ("decision", "allow")]
        ) >= 1.0
    );
    assert!(
        get(
            "mcp_warden_requests_total",
            &[("method", "initialize"), ("decision", "allow")]
        ) >= 1.0
    );
    assert_eq!(
        get(
            "mcp_warden_tool_calls_total",
            &[("tool", "echo"), ("decision", "allow")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "mcp_warden_tool_calls_total",
            &[("tool", "delete_records"), ("decision", "deny")]
        ),
        1.0,
        "a declared tool is its own label"
    );
    assert_eq!(
        get(
            "mcp_warden_tool_calls_total",
            &[("tool", "other"), ("decision", "deny")]
        ),
        1.0,
        "an undeclared tool is bucketed"
    );
    for reason in ["missing", "expired", "bad_signature"] {
        assert_eq!(
            get("mcp_warden_auth_failures_total", &[("reason", reason)]),
            1.0,
            "{reason}"
        );
    }
    assert_eq!(
        get("mcp_warden_http_responses_total", &[("code", "401")]),
        3.0
    );
    assert_eq!(
        get(
            "mcp_warden_bodies_refused_total",
            &[("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "mcp_warden_bodies_refused_total",
            &[("reason", "duplicate_key")]
        ),
        1.0
    );
    // 5 tools, this caller may list echo and get_weather.
    assert_eq!(
        get("mcp_warden_list_items_hidden_total", &[("list", "tools")]),
        3.0
    );
    assert!(
        get(
            "mcp_warden_decision_duration_seconds_count",
            &[("engine", "cedar")]
        ) >= 5.0
    );
    assert!(
        get(
            "mcp_warden_upstream_duration_seconds_count",
            &[("method", "tools/call")]
        ) >= 1.0
    );
    assert_eq!(after.get("mcp_warden_sessions_active", &[]), 1.0);
    assert_eq!(after.get("mcp_warden_audit_sink_up", &[]), 1.0);

    // Bounded labels: no user, no undeclared tool name, no argument.
    for leak in [USER, "made_up_tool_x9", "\"hi\""] {
        assert!(!after.text.contains(leak), "{leak} leaked into metrics");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_reloads_are_counted_by_result_with_the_generation() {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    let loaded = scrape(&warden)
        .await
        .get("mcp_warden_policy_loaded_timestamp_seconds", &[]);
    warden.signal("HUP");
    let s = scrape_until(&warden, |s| {
        s.get("mcp_warden_policy_generation", &[]) == 2.0
    })
    .await;
    assert_eq!(
        s.get("mcp_warden_policy_reloads_total", &[("result", "success")]),
        1.0
    );
    assert!(s.get("mcp_warden_policy_loaded_timestamp_seconds", &[]) > loaded);

    replace_file(
        &warden.policy_dir().join("policies.cedar"),
        "permit (principal,",
    );
    let s = scrape_until(&warden, |s| {
        s.get("mcp_warden_policy_reloads_total", &[("result", "failure")]) >= 1.0
    })
    .await;
    assert!(s.get("mcp_warden_policy_reloads_total", &[("result", "failure")]) >= 1.0);
    assert_eq!(
        s.get("mcp_warden_policy_generation", &[]),
        2.0,
        "last good generation serves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_has_a_line_for_each_decision() {
    let up = UpstreamBuilder::new(ResponseMode::Sse)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{AUDIT_FILE_TOML}"),
    );
    let audit = warden.dir.path().join("audit.log");
    let client = ClientBuilder::new(&warden.url, Revision::legacy())
        .bearer(token(USER, &[], "mcp:tools"))
        .header("x-request-id", "client-req-42")
        .connect()
        .await;
    list_tool_names(&client).await;
    call_tool(&client, "echo", args([("text", json!("hello"))]))
        .await
        .unwrap();
    call_tool(
        &client,
        "delete_records",
        args([("table", json!("patients"))]),
    )
    .await
    .unwrap_err();
    let unauthenticated = post(&warden, None, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    let generated_id = unauthenticated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated_id.len(), 36, "a UUID: {generated_id}");
    post(&warden, Some(&token(USER, &[], "")), "[]").await;

    let is_call =
        |tool: &'static str| move |l: &Value| l["event"] == "decision" && l["tool"] == tool;
    let denied = wait_audit(&audit, is_call("delete_records"));
    let allowed = wait_audit(&audit, is_call("echo"));
    for line in [&denied, &allowed] {
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "RFC 3339 UTC: {ts}");
        assert_eq!(line["request_id"], "client-req-42");
        assert!(
            line["session_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{line}"
        );
        assert_eq!(
            line["principal"],
            json!({"user": USER, "agent": "test-agent", "auth_method": "jwt"})
        );
        assert_eq!(line["source_ip"], "127.0.0.1");
        assert!(line["source_port"].as_u64().is_some());
        assert_eq!(line["http_method"], "POST");
        assert_eq!(line["mcp_method"], "tools/call");
        assert!(line["jsonrpc_id"].is_number());
        assert_eq!(line["engine"], "cedar");
        assert_eq!(line["policy_generation"], 1);
        assert_eq!(line["taints"], json!([]));
        assert!(line["latency_us"].as_u64().is_some());
        assert_eq!(
            line["arguments"],
            Value::Null,
            "arguments stay out by default"
        );
        assert_eq!(line["resource"], Value::Null);
        assert_eq!(line["prompt"], Value::Null);
    }
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["policy_ids"], json!(["destructive-admin-only"]));
    assert_eq!(
        denied["arguments_digest"],
        mcp_warden::audit::arguments_digest(&json!({"table": "patients"}))
    );
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["policy_ids"], json!(["echo-with-tools-scope"]));
    wait_audit(&audit, |l| {
        l["mcp_method"] == "tools/list" && l["decision"] == "allow"
    });
    wait_audit(&audit, |l| l["mcp_method"] == "initialize");

    let failure = wait_audit(&audit, |l| l["event"] == "auth_failure");
    assert_eq!(failure["reason"], "missing");
    assert_eq!(failure["decision"], "deny");
    assert_eq!(failure["principal"], Value::Null);
    assert_eq!(failure["request_id"], generated_id.as_str());
    let refusal = wait_audit(&audit, |l| l["event"] == "refusal");
    assert_eq!(refusal["reason"], "not_jsonrpc");
    assert_eq!(refusal["principal"]["user"], USER);

    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains("patients") && !text.contains("hello"),
        "{text}"
    );
    // The request id went upstream too.
    assert!(up
        .seen
        .requests_for("tools/call")
        .iter()
        .all(|r| r.header("x-request-id") == Some("client-req-42")));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_options_arguments_sampling_and_sighup_reopen() {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!(
            "{AUTH_TOML}\n{AUDIT_FILE_TOML}log_arguments = true\nallowed_list_sample_rate = 0.0\n"
        ),
    );
    let audit = warden.dir.path().join("audit.log");
    let client = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token(USER, &[], "mcp:tools"))
        .connect()
        .await;
    list_tool_names(&client).await;
    call_tool(&client, "echo", args([("text", json!("hello"))]))
        .await
        .unwrap();
    let line = wait_audit(&audit, |l| l["tool"] == "echo");
    assert_eq!(line["arguments"], json!({"text": "hello"}));
    assert!(
        audit_lines(&audit)
            .iter()
            .all(|l| l["mcp_method"] != "tools/list"),
        "allowed lists sampled out"
    );

    std::fs::rename(&audit, warden.dir.path().join("audit.log.1")).unwrap();
    warden.signal("HUP");
    warden.wait_for_log("audit log reopened", wait::HANG);
    call_tool(&client, "echo", args([("text", json!("after rotation"))]))
        .await
        .unwrap();
    wait_audit(&audit, |l| l["arguments"]["text"] == "after rotation");
    let old = std::fs::read_to_string(warden.dir.path().join("audit.log.1")).unwrap();
    assert!(!old.contains("after rotation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_audit_sink_alarms_and_fail_closed_refuses() {
    for closed in [false, true] {
        let up = UpstreamBuilder::new(ResponseMode::Json)
            .any_host()
            .start()
            .await;
        let mode = if closed { "fail_closed" } else { "fail_open" };
        // Every write to /dev/full fails (ENOSPC).
        let warden = Warden::start(
            &up.url,
            &example_policies(),
            &format!(
                "{AUTH_TOML}\n[audit]\nsink = \"file\"\npath = \"/dev/full\"\nfailure_mode = \"{mode}\"\n"
            ),
        );
        let tok = token(USER, &[], "");
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        // The first request is admitted; its line fails to write.
        post(&warden, Some(&tok), ping).await;
        let s = scrape_until(&warden, |s| s.get("mcp_warden_audit_sink_up", &[]) == 0.0).await;
        assert_eq!(s.get("mcp_warden_audit_sink_up", &[]), 0.0, "{mode}");
        assert!(s.get("mcp_warden_audit_write_errors_total", &[]) >= 1.0);

        let resp = post(&warden, Some(&tok), ping).await;
        let ready = reqwest::get(warden.admin_url("/readyz")).await.unwrap();
        if closed {
            assert_eq!(resp.status(), 503);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], -32603);
            assert_eq!(ready.status(), 503);
            let s = scrape(&warden).await;
            assert!(
                s.get(
                    "mcp_warden_requests_refused_total",
                    &[("reason", "audit_unavailable")]
                ) >= 1.0
            );
        } else {
            assert_ne!(resp.status(), 503, "fail_open keeps serving");
            assert_eq!(ready.status(), 200);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_upstream_and_a_down_upstream_is_a_clear_error() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let warden = Warden::start(&upstream, &example_policies(), AUTH_TOML);

    let health = reqwest::get(warden.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(warden.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["upstream_reachable"], false);
    assert_eq!(body["checks"]["policies_loaded"], true);
    assert_eq!(body["checks"]["policy_generation"], 1);

    let resp = post(
        &warden,
        Some(&token(USER, &[], "")),
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32603);
    assert_eq!(body["error"]["message"], "upstream MCP server unavailable");
    let s = scrape_until(&warden, |s| {
        s.get(
            "mcp_warden_upstream_errors_total",
            &[("kind", "connect_refused")],
        ) >= 1.0
    })
    .await;
    assert_eq!(
        s.get(
            "mcp_warden_upstream_errors_total",
            &[("kind", "connect_refused")]
        ),
        1.0,
        "{}",
        s.text
    );
    assert_eq!(
        s.get("mcp_warden_http_responses_total", &[("code", "502")]),
        1.0
    );

    // The upstream comes back.
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let ready = reqwest::get(warden.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["checks"]["upstream_reachable"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_sse_answer_drains_it_then_exits() {
    // POSTs get an SSE answer held in flight: a progress notification, then (once the test
    // opens the gate, after SIGTERM) five more and the result. GETs get an event stream that
    // never ends on its own.
    let final_event = r#"data: {"jsonrpc":"2.0","id":7,"result":{"done":true}}"#;
    let gate = Gate::default();
    let held = gate.clone();
    let up = FakeUpstream::start_writing(Duration::ZERO, move |req, out| {
        let head = &sse_reply(&[])[0];
        if req.head.starts_with("GET") {
            if out.write(head) && out.write(b": keep-alive\n\n") {
                out.wait_closed();
            }
            return;
        }
        let progress = r#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
        let progress = format!("{progress}\n\n");
        if !(out.write(head) && out.write(progress.as_bytes())) {
            return;
        }
        held.wait();
        for _ in 0..5 {
            if !out.write(progress.as_bytes()) {
                return;
            }
        }
        out.write(format!("{final_event}\n\n").as_bytes());
    });
    // A drain timeout no run of this test can reach: an exit within the wait below is the
    // drain noticing that nothing is in flight, however slow the machine.
    let mut warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{AUDIT_FILE_TOML}\n[lifecycle]\ndrain_timeout = \"1h\"\n"),
    );
    let tok = token(USER, &[], "");
    let http = reqwest::Client::new();

    let mut stream = http
        .get(&warden.url)
        .bearer_auth(&tok)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut answer = http
        .post(&warden.url)
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers().contains_key("x-request-id"),
        "echoed on proxied answers"
    );
    let forwarded_id = up.received().last().and_then(|r| r.header("x-request-id"));
    assert_eq!(
        forwarded_id.as_deref(),
        answer.headers()["x-request-id"].to_str().ok()
    );
    let mut body = answer.chunk().await.unwrap().expect("first event").to_vec();
    assert!(!String::from_utf8_lossy(&body).contains("\"result\""));

    warden.signal("TERM");
    // The answer is held, so the proxy is draining, not gone: wait for it to say so.
    let ready: Value = wait::until_async("readiness to report draining", || async {
        let ready = reqwest::get(warden.admin_url("/readyz")).await.unwrap();
        let status = ready.status();
        let body: Value = ready.json().await.unwrap();
        (body["checks"]["draining"] == true).then(|| {
            assert_eq!(status, 503, "not ready while draining");
            body
        })
    })
    .await;
    assert_eq!(ready["ready"], false);
    gate.open();

    while let Some(chunk) = answer.chunk().await.expect("the answer completes cleanly") {
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains(final_event), "in-flight answer lost:\n{body}");
    assert_eq!(body.matches("notifications/progress").count(), 6);

    // The process exits once the answer is done — not after the (hour-long) drain
    // timeout, and without waiting for the GET stream, which is closed.
    let status = warden
        .wait_exit(wait::HANG)
        .expect("exited before the drain timeout");
    assert!(status.success(), "{status}");
    let rest = tokio::time::timeout(wait::HANG, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the GET stream was closed");
    assert!(warden.logs().contains("drained"), "{}", warden.logs());
    // Every decision was written before exit.
    let audit = audit_lines(&warden.dir.path().join("audit.log"));
    assert!(audit
        .iter()
        .any(|l| l["mcp_method"] == "ping" && l["decision"] == "allow"));
}
