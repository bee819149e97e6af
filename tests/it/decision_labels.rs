//! The `decision` label of metrics and audit through the real binary: a call refused by
//! a Biscuit attenuation check is a `deny` (a policy outcome), a call refused because
//! evaluation exceeded the run limits is an `error` (evaluation failed, fail closed).

#![allow(
    clippy::disallowed_methods,
    reason = "polls for a metric pause between tries (bounded by the hang limit)"
)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::audit::wait_audit;
use crate::support::biscuit::{attenuate, example_policies, Keys, ENGINE_TOML};
use crate::support::client::{args, call_tool, list_tool_names, ClientBuilder, Revision};
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::warden::Warden;

const AUDIT_FILE_TOML: &str = "[audit]\nsink = \"file\"\npath = \"audit.log\"\n";

/// `mcp_warden_requests_total{decision=…,method="tools/call"}`, 0 when absent.
async fn tool_calls(warden: &Warden, decision: &str) -> f64 {
    let text = warden.metrics().await;
    let series =
        format!("mcp_warden_requests_total{{decision=\"{decision}\",method=\"tools/call\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Waits until the counter reaches `at_least` (it is counted just after the answer).
async fn wait_tool_calls(warden: &Warden, decision: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tool_calls(warden, decision).await;
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_token_check_is_a_deny_and_a_run_limit_an_error() {
    let keys = Keys::new();
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{ENGINE_TOML}{}\n{AUDIT_FILE_TOML}", keys.auth_toml()),
    );
    let audit = warden.dir.path().join("audit.log");
    let alice = keys.mint(
        "root1",
        1,
        &[
            r#"user("alice")"#,
            r#"right("tool", "echo")"#,
            r#"right("tool", "whoami")"#,
        ],
        &[],
    );
    let echo_only = attenuate(&alice, &["--check", r#"tool("echo")"#]);
    let client = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(&echo_only)
        .connect()
        .await;
    list_tool_names(&client).await;
    call_tool(&client, "whoami", json!({}))
        .await
        .expect_err("the attenuation allows echo only");

    let line = wait_audit(&audit, |l| {
        l["event"] == "decision" && l["tool"] == "whoami"
    });
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["policy_ids"], json!(["token/block1/check0"]), "{line}");
    assert!(
        line["errors"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("failed_check: token/block1/check0")),
        "the audit line keeps the failed check: {line}"
    );
    assert_eq!(wait_tool_calls(&warden, "deny", 1.0).await, 1.0);
    assert_eq!(tool_calls(&warden, "error").await, 0.0);

    // Now make evaluation itself fail: 40 facts paired are 1600, over `max_facts`.
    let file = warden.policy_dir().join("authorizer.datalog");
    let numbers: String = (0..40).map(|i| format!("n({i});")).collect();
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{numbers}\npair($x, $y) <- n($x), n($y);\n{original}"),
    )
    .unwrap();
    warden.wait_for_log("policies reloaded", Duration::from_secs(10));
    call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .expect_err("run limit");
    let line = wait_audit(&audit, |l: &Value| {
        l["event"] == "decision" && l["tool"] == "echo"
    });
    assert_eq!(line["decision"], "error", "{line}");
    assert!(
        line["errors"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("run_limit: ")),
        "{line}"
    );
    assert_eq!(wait_tool_calls(&warden, "error", 1.0).await, 1.0);
    assert_eq!(tool_calls(&warden, "deny").await, 1.0);
    assert!(
        up.seen.tool_calls().is_empty(),
        "nothing denied reached the server"
    );
}
