//! The proxy in front of a real MCP server (rmcp), driven by the real rmcp client, in
//! both of the server's response modes and both protocol lifecycles.

use rmcp::service::ServiceError;
use serde_json::{json, Value};

use crate::support::client::{
    args, call_tool, list_tool_names, result_text, ClientBuilder, Revision,
};
use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, Upstream, UpstreamBuilder};
use crate::support::warden::{example_policies, replace_file, run_cli, Warden};

const FORBIDDEN: i32 = -32003;

async fn upstream(mode: ResponseMode) -> Upstream {
    UpstreamBuilder::new(mode).any_host().start().await
}

fn warden_for(up: &Upstream) -> Warden {
    Warden::start(&up.url, &example_policies(), AUTH_TOML)
}

/// Sessions + SSE answers on the `initialize` lifecycle (2025-06-18), and stateless JSON
/// answers on the 2026-07-28 lifecycle.
fn setups() -> [(ResponseMode, Revision); 2] {
    [
        (ResponseMode::Sse, Revision::legacy()),
        (ResponseMode::Json, Revision::Modern),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_protocol_revision_in_use_is_filtered_and_decided() {
    use rmcp::model::ProtocolVersion;
    let revisions = [
        (
            ResponseMode::Sse,
            Revision::Legacy(ProtocolVersion::V_2025_03_26),
        ),
        (
            ResponseMode::Sse,
            Revision::Legacy(ProtocolVersion::V_2025_06_18),
        ),
        (
            ResponseMode::Sse,
            Revision::Legacy(ProtocolVersion::V_2025_11_25),
        ),
        (
            ResponseMode::Json,
            Revision::Legacy(ProtocolVersion::V_2025_11_25),
        ),
        (ResponseMode::Sse, Revision::Modern),
        (ResponseMode::Json, Revision::Modern),
    ];
    for (mode, revision) in revisions {
        let up = upstream(mode).await;
        let warden = warden_for(&up);
        let client = ClientBuilder::new(&warden.url, revision.clone())
            .bearer(token("pat", &[], "mcp:tools"))
            .connect()
            .await;
        let mut names = list_tool_names(&client).await;
        names.sort();
        assert_eq!(names, ["echo", "get_weather"], "{mode:?} {revision:?}");
        call_tool(&client, "echo", args([("text", json!("x"))]))
            .await
            .unwrap_or_else(|e| panic!("{mode:?} {revision:?}: {e}"));
        let err = call_tool(&client, "whoami", json!({})).await.unwrap_err();
        assert_eq!(
            denial_code(&err).unwrap().0,
            FORBIDDEN,
            "{mode:?} {revision:?}"
        );
        assert_eq!(up.seen.tool_calls(), ["echo"], "{mode:?} {revision:?}");
    }
}

fn denial_code(err: &ServiceError) -> Option<(i32, Value)> {
    match err {
        ServiceError::McpError(e) => Some((e.code.0, e.data.clone().unwrap_or(Value::Null))),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_shows_each_caller_only_what_it_may_call() {
    for (mode, revision) in setups() {
        let up = upstream(mode).await;
        let warden = warden_for(&up);

        let staff = ClientBuilder::new(&warden.url, revision.clone())
            .bearer(token("sam", &["staff"], "mcp:tools"))
            .connect()
            .await;
        let mut names = list_tool_names(&staff).await;
        names.sort();
        // read-only tools for staff; never the destructive one or the undeclared one
        assert_eq!(names, ["echo", "get_weather", "whoami"], "{mode:?}");

        let plain = ClientBuilder::new(&warden.url, revision.clone())
            .bearer(token("pat", &[], "mcp:tools"))
            .connect()
            .await;
        let mut names = list_tool_names(&plain).await;
        names.sort();
        // `get_weather` depends on the arguments: listed, and each call is checked
        assert_eq!(names, ["echo", "get_weather"], "{mode:?}");

        let admin = ClientBuilder::new(&warden.url, revision.clone())
            .bearer(token("ada", &["admin"], ""))
            .connect()
            .await;
        assert_eq!(list_tool_names(&admin).await.len(), 5, "{mode:?}");
        // the upstream itself was asked and answered in full each time
        assert_eq!(up.seen.requests_for("tools/list").len(), 3, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_call_reaches_the_server_and_denied_call_never_does() {
    for (mode, revision) in setups() {
        let up = upstream(mode).await;
        let warden = warden_for(&up);
        let client = ClientBuilder::new(&warden.url, revision)
            .bearer(token("pat", &[], "mcp:tools"))
            .connect()
            .await;
        // Clients list before calling; that is also how the proxy learns annotations.
        list_tool_names(&client).await;

        let ok = call_tool(&client, "echo", args([("text", json!("hi"))]))
            .await
            .expect("echo allowed");
        assert_eq!(result_text(&ok), "hi");

        let err = call_tool(
            &client,
            "delete_records",
            args([("table", json!("patients"))]),
        )
        .await
        .expect_err("delete_records denied");
        let (code, data) = denial_code(&err).expect("a JSON-RPC error");
        assert_eq!(code, FORBIDDEN, "{mode:?}");
        assert_eq!(data["policy_ids"], json!(["destructive-admin-only"]));

        // argument-dependent rule
        call_tool(&client, "get_weather", args([("city", json!("Paris"))]))
            .await
            .expect("Paris is served");
        let err = call_tool(&client, "get_weather", args([("city", json!("London"))]))
            .await
            .expect_err("London is not");
        assert_eq!(denial_code(&err).unwrap().0, FORBIDDEN);

        // the session survived the denials
        call_tool(&client, "echo", args([("text", json!("still here"))]))
            .await
            .expect("session still usable");

        assert_eq!(
            up.seen.tool_calls(),
            ["echo", "get_weather", "echo"],
            "denied calls must never reach the server ({mode:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_arrive_spoofed_ones_and_the_token_do_not() {
    for (mode, revision) in setups() {
        let up = upstream(mode).await;
        let warden = warden_for(&up);
        let client = ClientBuilder::new(&warden.url, revision)
            .bearer(token("sam", &["staff", "nurse"], ""))
            .header("X-MCP-User", "admin")
            .header("X-MCP-Roles", "admin")
            .connect()
            .await;
        list_tool_names(&client).await;
        let result = call_tool(&client, "whoami", json!({}))
            .await
            .expect("whoami");
        let seen: Value = serde_json::from_str(&result_text(&result)).unwrap();
        assert_eq!(seen["x-mcp-user"], "sam", "{mode:?}");
        assert_eq!(seen["x-mcp-roles"], "staff,nurse");
        assert_eq!(seen["x-mcp-agent"], "test-agent");
        assert_eq!(
            seen["authorization"],
            Value::Null,
            "token must not be forwarded"
        );
        // and on every request, not just the tool call
        for req in up.seen.requests() {
            assert!(!req.has_header("authorization"), "{req:?}");
            assert_eq!(req.header("x-mcp-user"), Some("sam"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_cannot_be_used_by_another_principal() {
    let up = upstream(ResponseMode::Sse).await;
    let warden = warden_for(&up);
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"t","version":"1"}}});
    let resp = http
        .post(&warden.url)
        .bearer_auth(token("ada", &["admin"], ""))
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.bytes().await;

    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let send = |tok: String| {
        http.post(&warden.url)
            .bearer_auth(tok)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&list)
            .send()
    };
    let other = send(token("mallory", &["admin"], "")).await.unwrap();
    assert_eq!(other.status(), 403);
    let owner = send(token("ada", &["admin"], "")).await.unwrap();
    assert_eq!(owner.status(), 200);
    assert_eq!(up.seen.requests_for("tools/list").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_edit_takes_effect_without_restart_and_a_broken_edit_opens_nothing() {
    let up = upstream(ResponseMode::Json).await;
    let warden = warden_for(&up);
    let connect = || {
        ClientBuilder::new(&warden.url, Revision::Modern)
            .bearer(token("pat", &[], "mcp:tools"))
            .connect()
    };
    let client = connect().await;
    list_tool_names(&client).await;
    let err = call_tool(&client, "whoami", json!({})).await.unwrap_err();
    assert_eq!(denial_code(&err).unwrap().0, FORBIDDEN);

    // Grant it: the watcher picks the change up.
    let policy_file = warden.policy_dir().join("policies.cedar");
    let original = std::fs::read_to_string(&policy_file).unwrap();
    let granted = format!(
        "{original}\n@id(\"pat-whoami\")\npermit (principal == User::\"pat\", action == Action::\"call_tool\", resource == Tool::\"whoami\");\n"
    );
    replace_file(&policy_file, &granted);
    warden.wait_for_log("policies reloaded", crate::support::wait::HANG);
    call_tool(&client, "whoami", json!({}))
        .await
        .expect("allowed after the edit");

    // A broken edit (here: a syntax error that would also permit everything if it
    // parsed) is rejected; the last good generation keeps serving.
    let broken = format!("{original}\npermit (principal, action, resource)\n");
    replace_file(&policy_file, &broken);
    warden.wait_for_log("policy reload rejected", crate::support::wait::HANG);
    assert!(
        warden.logs().contains("policies.cedar:"),
        "{}",
        warden.logs()
    );
    call_tool(&client, "whoami", json!({}))
        .await
        .expect("last good generation still allows it");
    let err = call_tool(&client, "delete_records", args([("table", json!("t"))]))
        .await
        .unwrap_err();
    assert_eq!(
        denial_code(&err).unwrap().0,
        FORBIDDEN,
        "broken policy opened nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_policies() {
    let up = upstream(ResponseMode::Json).await;
    let warden = warden_for(&up);
    warden.signal("HUP");
    warden.wait_for_log("policies reloaded", crate::support::wait::HANG);
    assert!(warden.logs().contains("generation=2"), "{}", warden.logs());
}

#[test]
fn check_accepts_the_example_configuration() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let (ok, stdout, stderr) = run_cli(&["check", "--config", config]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.starts_with("ok:"), "{stdout}");
}

#[test]
fn check_accepts_the_replicas_configuration() {
    // Redis is connected lazily: `check` needs no server.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/replicas.toml");
    let (ok, stdout, stderr) = run_cli(&["check", "--config", config]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.starts_with("ok:"), "{stdout}");
}

#[test]
fn check_and_run_refuse_a_bad_config_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2/mcp\"\nlimits = { max_body = 1 }\n[policy]\ndir = \"p\"\n",
    )
    .unwrap();
    for cmd in ["check", "run"] {
        let (ok, _, stderr) = run_cli(&[cmd, "--config", path.to_str().unwrap()]);
        assert!(!ok, "{cmd} must refuse");
        assert!(stderr.contains("bad.toml:3:"), "{cmd}: {stderr}");
    }
}

#[test]
fn check_refuses_a_bad_policy_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::warden::copy_dir(&example_policies(), &dir.path().join("policies"));
    std::fs::write(
        dir.path().join("policies/extra.cedar"),
        "// a typo in the action\npermit (principal, action == Action::\"cal_tool\", resource);\n",
    )
    .unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2/mcp\"\n[policy]\ndir = \"policies\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("extra.cedar:2:"), "{stderr}");
}

#[test]
fn policy_test_command_runs_the_shipped_policy_tests() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/example/tests.toml");
    let (ok, stdout, stderr) = run_cli(&["policy", "test", file]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn policy_test_command_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::warden::copy_dir(&example_policies(), dir.path());
    std::fs::write(
        dir.path().join("tests.toml"),
        "[[case]]\nname = \"wrong on purpose\"\nprincipal = { subject = \"x\" }\naction = \"call_tool\"\ntool = \"delete_records\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let (ok, stdout, _) = run_cli(&[
        "policy",
        "test",
        dir.path().join("tests.toml").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn skipping_tools_list_cannot_dodge_an_annotation_forbid() {
    // A fresh proxy has learned no annotations: an unlisted tool counts as destructive.
    let up = upstream(ResponseMode::Json).await;
    let warden = warden_for(&up);
    let staff = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("sam", &["staff"], "mcp:tools"))
        .connect()
        .await;
    let err = call_tool(&staff, "delete_records", args([("table", json!("t"))]))
        .await
        .unwrap_err();
    let (code, data) = denial_code(&err).unwrap();
    assert_eq!(code, FORBIDDEN);
    assert_eq!(data["policy_ids"], json!(["destructive-admin-only"]));
    // After listing, the read-only tools the server declared are callable.
    list_tool_names(&staff).await;
    call_tool(&staff, "whoami", json!({}))
        .await
        .expect("whoami after listing");
    assert_eq!(up.seen.tool_calls(), ["whoami"]);
}

/// `secret_env`: the HMAC secret comes from the proxy's environment. The variable is given
/// to the child process only, so no test changes the environment of the test process
/// (clippy.toml forbids `std::env::set_var`).
#[tokio::test(flavor = "multi_thread")]
async fn jwt_secret_from_the_environment_verifies_tokens() {
    use crate::support::tokens::{sign_with, SECRET};
    const VAR: &str = "MCP_WARDEN_TEST_JWT_SECRET";
    let up = upstream(ResponseMode::Json).await;
    let auth = AUTH_TOML.replace(
        &format!("secret = \"{SECRET}\""),
        &format!("secret_env = \"{VAR}\""),
    );
    assert_ne!(auth, AUTH_TOML, "the test's [auth] section changed shape");
    let warden = Warden::start_with_env(&up.url, &example_policies(), &auth, &[(VAR, SECRET)]);
    let client = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("sam", &["staff"], "mcp:tools"))
        .connect()
        .await;
    let mut names = list_tool_names(&client).await;
    names.sort();
    assert_eq!(names, ["echo", "get_weather", "whoami"]);
    // A token signed with anything else is still refused.
    let forged = sign_with(
        &crate::support::tokens::claims("sam", &["staff"], "mcp:tools"),
        "another-secret-0123456789-abcdefghijkl",
    );
    let refused = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(forged)
        .try_connect()
        .await;
    assert!(refused.is_err(), "a forged token was accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_list_is_private_to_its_caller_whatever_the_server_said() {
    // MCP 2026-07-28 cache hints, with rmcp on both sides: the server calls its list
    // public; through the proxy it is this caller's view, which no shared cache may serve
    // to anyone else.
    use rmcp::model::CacheScope;
    let up = upstream(ResponseMode::Json).await;
    up.tools.set_cache_hints(60_000, CacheScope::Public);
    let direct = ClientBuilder::new(&up.url, Revision::Modern)
        .connect()
        .await;
    let listed = direct.list_tools(None).await.expect("tools/list direct");
    assert_eq!(listed.cache_scope, Some(CacheScope::Public));

    let warden = warden_for(&up);
    let staff = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("sam", &["staff"], "mcp:tools"))
        .connect()
        .await;
    let listed = staff.list_tools(None).await.expect("tools/list");
    assert_eq!(listed.cache_scope, Some(CacheScope::Private));
    assert_eq!(listed.ttl_ms, Some(60_000));
    let mut names: Vec<String> = listed.tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["echo", "get_weather", "whoami"]);
}
