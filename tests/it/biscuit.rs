//! Biscuit tokens through the real proxy binary in front of a real MCP server (rmcp):
//! rights from token facts, attenuation, expiry, refused tokens (wrong root, tampered,
//! truncated, revoked), key rotation, hot-reloaded Datalog, run limits, listing, identity
//! headers, and Biscuit callers under the Cedar engine.

use rmcp::service::ServiceError;
use serde_json::{json, Value};

use crate::support::biscuit::{attenuate, example_policies, inspect, Keys, ENGINE_TOML};
use crate::support::client::{
    args, call_tool, list_tool_names, result_text, ClientBuilder, Revision,
};
use crate::support::upstream::{ResponseMode, Upstream, UpstreamBuilder};
use crate::support::warden::{replace_file, run_cli, Warden};

const FORBIDDEN: i32 = -32003;

/// alice's rights in the walkthrough's shape.
const ALICE: &[&str] = &[
    r#"user("alice")"#,
    r#"patient_name("Zoë Martin")"#,
    r#"right("tool", "echo")"#,
    r#"right("tool", "whoami")"#,
    r#"right("weather")"#,
];

async fn upstream(mode: ResponseMode) -> Upstream {
    UpstreamBuilder::new(mode).any_host().start().await
}

fn biscuit_warden(up: &Upstream, keys: &Keys) -> Warden {
    Warden::start(
        &up.url,
        &example_policies(),
        &format!("{ENGINE_TOML}{}", keys.auth_toml()),
    )
}

async fn connect(
    warden: &Warden,
    revision: Revision,
    token: &str,
) -> crate::support::client::McpClient {
    ClientBuilder::new(&warden.url, revision)
        .bearer(token)
        .connect()
        .await
}

fn denial(err: &ServiceError) -> (i32, Value) {
    match err {
        ServiceError::McpError(e) => (e.code.0, e.data.clone().unwrap_or(Value::Null)),
        other => panic!("not a JSON-RPC error: {other:?}"),
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// POSTs `initialize` with a bearer token; returns the status and `WWW-Authenticate`.
async fn initialize_status(warden: &Warden, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(&warden.url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_facts_decide_calls_and_attenuation_takes_rights_away() {
    let keys = Keys::new();
    for (mode, revision) in [
        (ResponseMode::Sse, Revision::legacy()),
        (ResponseMode::Json, Revision::Modern),
    ] {
        let up = upstream(mode).await;
        let warden = biscuit_warden(&up, &keys);
        let alice = keys.mint("root1", 1, ALICE, &["--ttl", "1h"]);
        let client = connect(&warden, revision.clone(), &alice).await;
        // What the token grants, and nothing destructive or undeclared.
        assert_eq!(
            sorted(list_tool_names(&client).await),
            ["echo", "get_weather", "whoami"],
            "{mode:?}"
        );
        let ok = call_tool(&client, "echo", args([("text", json!("hi"))]))
            .await
            .expect("echo granted");
        assert_eq!(result_text(&ok), "hi");
        let err = call_tool(&client, "delete_records", args([("table", json!("t"))]))
            .await
            .expect_err("destructive");
        assert_eq!(
            denial(&err),
            (FORBIDDEN, json!({"policy_ids": ["destructive-admin-only"]}))
        );
        call_tool(&client, "get_weather", args([("city", json!("Paris"))]))
            .await
            .expect("a served city");
        let err = call_tool(&client, "get_weather", args([("city", json!("London"))]))
            .await
            .expect_err("not a served city");
        assert_eq!(denial(&err).0, FORBIDDEN);

        // Identity headers come from the token's authority facts; the token stays here.
        let who = call_tool(&client, "whoami", json!({}))
            .await
            .expect("whoami");
        let seen: Value = serde_json::from_str(&result_text(&who)).unwrap();
        assert_eq!(seen["x-mcp-user"], "alice");
        assert_eq!(seen["authorization"], Value::Null);
        let call = up.seen.requests_for("tools/call").pop().unwrap();
        assert_eq!(call.header("x-mcp-patient"), Some("Zo%C3%AB Martin"));
        assert_eq!(call.header("x-mcp-auth-method"), Some("biscuit"));

        // Narrow the token to one tool, offline, and hand it on.
        let echo_only = attenuate(&alice, &["--check", r#"tool("echo")"#, "--ttl", "5m"]);
        let sub_agent = connect(&warden, revision.clone(), &echo_only).await;
        assert_eq!(list_tool_names(&sub_agent).await, ["echo"], "{mode:?}");
        call_tool(&sub_agent, "echo", args([("text", json!("still"))]))
            .await
            .expect("echo kept");
        let err = call_tool(&sub_agent, "whoami", json!({}))
            .await
            .expect_err("whoami lost");
        assert_eq!(
            denial(&err),
            (FORBIDDEN, json!({"policy_ids": ["token/block1/check0"]}))
        );
        // The original token is untouched by its offspring.
        call_tool(&client, "whoami", json!({}))
            .await
            .expect("whoami still granted to the original");
        assert_eq!(
            up.seen.tool_calls(),
            ["echo", "get_weather", "whoami", "echo", "whoami"],
            "denied calls must never reach the server ({mode:?})"
        );
        assert!(
            warden.logs().contains("token/block1/check0"),
            "{}",
            warden.logs()
        );
    }
}

async fn names(warden: &Warden, token: &str) -> Vec<String> {
    sorted(list_tool_names(&connect(warden, Revision::Modern, token).await).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_hides_what_cannot_be_called() {
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = biscuit_warden(&up, &keys);
    // Staff: every tool that declares itself read-only.
    let staff = keys.mint("root1", 1, &[r#"user("sam")"#, r#"role("staff")"#], &[]);
    assert_eq!(
        names(&warden, &staff).await,
        ["echo", "get_weather", "whoami"]
    );
    // The weather right depends on the city: listed, because some city is allowed.
    let weather = keys.mint("root1", 1, &[r#"user("w")"#, r#"right("weather")"#], &[]);
    assert_eq!(names(&warden, &weather).await, ["get_weather"]);
    // Narrowed to one city: still listed (that city is allowed), and enforced.
    let tokyo = attenuate(&weather, &["--check", r#"arg("city", "Tokyo")"#]);
    let client = connect(&warden, Revision::Modern, &tokyo).await;
    assert_eq!(list_tool_names(&client).await, ["get_weather"]);
    let err = call_tool(&client, "get_weather", args([("city", json!("Paris"))]))
        .await
        .unwrap_err();
    assert_eq!(denial(&err).0, FORBIDDEN);
    call_tool(&client, "get_weather", args([("city", json!("Tokyo"))]))
        .await
        .expect("Tokyo");
    // Admin: everything, destructive and undeclared tools included.
    let admin = keys.mint("root1", 1, &[r#"user("ada")"#, r#"role("admin")"#], &[]);
    assert_eq!(names(&warden, &admin).await.len(), 5);
    // A block that adds rights adds nothing.
    let nobody = keys.mint("root1", 1, &[r#"user("n")"#], &[]);
    let widened = attenuate(&nobody, &["--fact", r#"role("admin")"#]);
    assert!(names(&warden, &widened).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_tokens_get_401() {
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = biscuit_warden(&up, &keys);
    let good = keys.mint("root1", 1, ALICE, &[]);
    assert_eq!(initialize_status(&warden, &good).await.0, 200);

    // Key rotation: a token from the second root (P-256) is valid at the same time.
    let rotated = keys.mint("root2", 2, ALICE, &[]);
    assert_eq!(initialize_status(&warden, &rotated).await.0, 200);

    let refused = [
        (
            "wrong root",
            keys.mint("stranger", 1, ALICE, &[]),
            "invalid token signature",
        ),
        (
            "unknown root id",
            keys.mint("root1", 3, ALICE, &[]),
            "no key for this token",
        ),
        ("tampered", tamper(&good), "invalid token signature"),
        (
            "truncated",
            good[..good.len() / 2].to_owned(),
            "malformed credential",
        ),
        (
            "expired block",
            attenuate(&good, &["--check", "time($t), $t <= 2024-01-01T00:00:00Z"]),
            "token expired",
        ),
    ];
    for (what, token, description) in refused {
        let (status, challenge) = initialize_status(&warden, &token).await;
        assert_eq!(status, 401, "{what}");
        assert!(
            challenge.contains(&format!("error_description=\"{description}\"")),
            "{what}: {challenge}"
        );
    }

    // Revocation: list the attenuated token's own block; its parent keeps working.
    let narrowed = attenuate(&good, &["--check", r#"tool("echo")"#]);
    let client = connect(&warden, Revision::Modern, &narrowed).await;
    list_tool_names(&client).await;
    let ids = inspect(&narrowed, &keys.public("root1"))["revocation_ids"].clone();
    let leaked = ids[1].as_str().unwrap();
    replace_file(&keys.revoked(), &format!("# leaked\n{leaked}\n"));
    warden.wait_for_nth_log("revocation list reloaded", 1);
    let (status, challenge) = initialize_status(&warden, &narrowed).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("token revoked"), "{challenge}");
    // A session opened before the revocation is refused too: every request is checked.
    assert!(call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .is_err());
    assert_eq!(initialize_status(&warden, &good).await.0, 200);
    // Revoking the authority block kills every token derived from it.
    replace_file(&keys.revoked(), &format!("{}\n", ids[0].as_str().unwrap()));
    warden.wait_for_nth_log("revocation list reloaded", 2);
    assert_eq!(initialize_status(&warden, &good).await.0, 401);
    assert_eq!(initialize_status(&warden, &rotated).await.0, 200);
    assert!(
        warden.logs().contains("reason=\"revoked\""),
        "{}",
        warden.logs()
    );
    assert!(up.seen.tool_calls().is_empty());
}

/// Flips a byte inside the authority block's `alice`, keeping the encoding valid.
fn tamper(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE;
    let mut bytes = engine.decode(token).unwrap();
    let at = bytes.windows(5).position(|w| w == b"alice").unwrap();
    bytes[at] = b'm';
    engine.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn datalog_policy_edit_takes_effect_without_restart() {
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = biscuit_warden(&up, &keys);
    let bob = keys.mint("root1", 1, &[r#"user("bob")"#], &[]);
    let client = connect(&warden, Revision::Modern, &bob).await;
    assert!(list_tool_names(&client).await.is_empty());
    let err = call_tool(&client, "whoami", json!({})).await.unwrap_err();
    assert_eq!(denial(&err).0, FORBIDDEN);

    let file = warden.policy_dir().join("authorizer.datalog");
    let original = std::fs::read_to_string(&file).unwrap();
    replace_file(
        &file,
        &format!("{original}\n// @id(\"bob-whoami\")\nallow if tool(\"whoami\"), user(\"bob\");\n"),
    );
    warden.wait_for_log("policies reloaded", crate::support::wait::HANG);
    assert_eq!(list_tool_names(&client).await, ["whoami"]);
    call_tool(&client, "whoami", json!({}))
        .await
        .expect("allowed after the edit");

    // A broken edit is rejected with file and line; the last good generation serves.
    replace_file(&file, &format!("{original}\nallow if true,\n"));
    warden.wait_for_log("policy reload rejected", crate::support::wait::HANG);
    assert!(
        warden.logs().contains("authorizer.datalog:"),
        "{}",
        warden.logs()
    );
    call_tool(&client, "whoami", json!({}))
        .await
        .expect("last good generation");
    let err = call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .unwrap_err();
    assert_eq!(denial(&err).0, FORBIDDEN, "the broken edit opened nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_limit_overflow_is_a_deny() {
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = biscuit_warden(&up, &keys);
    let alice = keys.mint("root1", 1, ALICE, &[]);
    let client = connect(&warden, Revision::Modern, &alice).await;
    list_tool_names(&client).await;
    call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .expect("within the limits");

    // 40 facts and a rule pairing them: 1600 facts, over `max_facts` (1000).
    let file = warden.policy_dir().join("authorizer.datalog");
    let numbers: String = (0..40).map(|i| format!("n({i});")).collect();
    let original = std::fs::read_to_string(&file).unwrap();
    replace_file(
        &file,
        &format!("{numbers}\npair($x, $y) <- n($x), n($y);\n{original}"),
    );
    warden.wait_for_log("policies reloaded", crate::support::wait::HANG);
    let err = call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .unwrap_err();
    assert_eq!(denial(&err), (FORBIDDEN, json!({"policy_ids": []})));
    assert!(
        warden
            .logs()
            .contains("run_limit: too many facts generated"),
        "{}",
        warden.logs()
    );
    assert_eq!(up.seen.tool_calls(), ["echo"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn biscuit_callers_under_the_cedar_engine() {
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = Warden::start(
        &up.url,
        &crate::support::warden::example_policies(),
        &keys.auth_toml(),
    );
    // Token facts become the Cedar principal: role("admin") → principal in Role::"admin".
    let ada = keys.mint("root1", 1, &[r#"user("ada")"#, r#"role("admin")"#], &[]);
    let client = connect(&warden, Revision::Modern, &ada).await;
    assert_eq!(list_tool_names(&client).await.len(), 5);
    call_tool(&client, "delete_records", args([("table", json!("t"))]))
        .await
        .expect("admin-any-tool");
    // scope("mcp:tools") → principal.scopes: echo-with-tools-scope.
    let pat = keys.mint(
        "root1",
        1,
        &[r#"user("pat")"#, r#"scope("mcp:tools")"#],
        &[],
    );
    let client = connect(&warden, Revision::Modern, &pat).await;
    assert_eq!(
        sorted(list_tool_names(&client).await),
        ["echo", "get_weather"]
    );
    // The token's own checks are enforced under Cedar too.
    let narrowed = attenuate(&ada, &["--check", r#"tool("echo")"#]);
    let client = connect(&warden, Revision::Modern, &narrowed).await;
    assert_eq!(list_tool_names(&client).await, ["echo"]);
    let err = call_tool(&client, "delete_records", args([("table", json!("t"))]))
        .await
        .unwrap_err();
    assert_eq!(
        denial(&err),
        (FORBIDDEN, json!({"policy_ids": ["token/block1/check0"]}))
    );
    assert_eq!(up.seen.tool_calls(), ["delete_records"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_callers_under_the_biscuit_engine_have_no_token() {
    use crate::support::tokens::{token, AUTH_TOML};
    let keys = Keys::new();
    let up = upstream(ResponseMode::Json).await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{ENGINE_TOML}{AUTH_TOML}{}", keys.auth_toml()),
    );
    // `jwt-admins` admits JWT administrators to non-destructive tools.
    let admin = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("ada", &["admin"], ""))
        .connect()
        .await;
    assert_eq!(
        sorted(list_tool_names(&admin).await),
        ["echo", "get_weather", "whoami"]
    );
    let staff = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("sam", &["staff"], "mcp:tools"))
        .connect()
        .await;
    assert!(list_tool_names(&staff).await.is_empty());
    let err = call_tool(&staff, "echo", args([("text", json!("x"))]))
        .await
        .unwrap_err();
    assert_eq!(denial(&err).0, FORBIDDEN);
    // Both kinds of bearer token side by side, told apart by shape.
    let alice = keys.mint("root1", 1, ALICE, &[]);
    assert_eq!(initialize_status(&warden, &alice).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn taint_labels_are_facts_and_follow_attenuated_tokens() {
    let keys = Keys::new();
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .records_tool()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!(
            "{ENGINE_TOML}{}\n[taint]\nsources = [{{ tool = \"get_record\", label = \"phi\" }}]\n",
            keys.auth_toml()
        ),
    );
    let alice = keys.mint(
        "root1",
        1,
        &[
            r#"user("alice")"#,
            r#"right("tool", "get_record")"#,
            r#"right("weather")"#,
        ],
        &[],
    );
    let client = connect(&warden, Revision::Modern, &alice).await;
    list_tool_names(&client).await;
    let paris = || args([("city", json!("Paris"))]);
    call_tool(&client, "get_weather", paris())
        .await
        .expect("clean: the weather is open");
    call_tool(&client, "get_record", args([("id", json!("p1"))]))
        .await
        .expect("the source");
    let err = call_tool(&client, "get_weather", paris())
        .await
        .unwrap_err();
    assert_eq!(
        denial(&err),
        (
            FORBIDDEN,
            json!({"policy_ids": ["no-open-world-when-tainted"]})
        )
    );
    // The taint belongs to the token, and its attenuations share it: a sub-agent's
    // narrowed token in a new session cannot send the data out either.
    let weather_only = attenuate(&alice, &["--check", r#"tool("get_weather")"#]);
    let sub_agent = connect(&warden, Revision::Modern, &weather_only).await;
    list_tool_names(&sub_agent).await;
    let err = call_tool(&sub_agent, "get_weather", paris())
        .await
        .unwrap_err();
    assert_eq!(
        denial(&err),
        (
            FORBIDDEN,
            json!({"policy_ids": ["no-open-world-when-tainted"]})
        )
    );
    assert_eq!(up.seen.tool_calls(), ["get_weather", "get_record"]);
}

#[test]
fn example_configuration_and_policies_load() {
    // The repository layout: config/biscuit.toml points at ../policies/biscuit-example and
    // at keys/biscuit-root-1.public, which `keygen` makes (keys are not committed).
    let root = tempfile::tempdir().unwrap();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    for file in ["biscuit.toml", "revoked.txt"] {
        std::fs::copy(
            manifest.join("config").join(file),
            root.path().join("config").join(file),
        )
        .unwrap();
    }
    crate::support::warden::copy_dir(
        &example_policies(),
        &root.path().join("policies/biscuit-example"),
    );
    let config = root.path().join("config/biscuit.toml");
    let (ok, _, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "no key yet");
    assert!(stderr.contains("biscuit-root-1.public"), "{stderr}");
    let out = root.path().join("config/keys/biscuit-root-1");
    let (ok, _, stderr) = run_cli(&["keygen", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("engine biscuit"), "{stdout}");

    let tests = root.path().join("policies/biscuit-example/tests.toml");
    let (ok, stdout, stderr) = run_cli(&["policy", "test", tests.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn token_inspect_reports_blocks_expiry_and_revocation_ids() {
    let keys = Keys::new();
    let token = keys.mint("root1", 1, ALICE, &["--ttl", "1h"]);
    let narrowed = attenuate(&token, &["--check", r#"tool("echo")"#, "--ttl", "5m"]);
    let report = inspect(&narrowed, &keys.public("root1"));
    assert_eq!(report["root_key_id"], 1);
    assert_eq!(report["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(report["revocation_ids"].as_array().unwrap().len(), 2);
    assert!(report["blocks"][0]["facts"]
        .as_array()
        .unwrap()
        .contains(&json!("user(\"alice\")")));
    assert_eq!(report["expires"], report["blocks"][1]["expires"]);
    // Text form, and a wrong key is refused.
    let (ok, stdout, _) = run_cli(&[
        "token",
        "inspect",
        "--token",
        &narrowed,
        "--public-key",
        keys.public("root1").to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(stdout.contains("block 1 (attenuation)"), "{stdout}");
    let (ok, _, stderr) = run_cli(&[
        "token",
        "inspect",
        "--token",
        &narrowed,
        "--public-key",
        keys.public("stranger").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("token:"), "{stderr}");
}
