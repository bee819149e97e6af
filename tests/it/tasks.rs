//! MCP tasks (the `io.modelcontextprotocol/tasks` extension, 2026-07-28): a task id in
//! the answer to a `tools/call` is bound to the caller who made the call; another
//! principal's `tasks/get` / `tasks/update` / `tasks/cancel` on it is refused and never
//! reaches the server, as is one on a task the proxy never saw created; and the policy
//! decides each task operation as the call that created the task.
//!
//! The scriptable upstream plays the server: rmcp 3.9 has the extension's types, but its
//! test server here creates no tasks. Multi-round-trip retries (`inputResponses`,
//! `requestState`) go to the rmcp server, with Biscuit tokens.

use serde_json::{json, Value};

use crate::support::audit::wait_audit;
use crate::support::fake::{json_reply, FakeUpstream};
use crate::support::http::{post, Resp};
use crate::support::tokens::{token, AUTH_TOML};
use crate::support::warden::{example_policies, Warden};

const TASKS_META: &str = "io.modelcontextprotocol/clientCapabilities";

fn upstream() -> FakeUpstream {
    FakeUpstream::start(|req| {
        let rpc = req.json().unwrap_or(Value::Null);
        let id = rpc["id"].clone();
        let result = match rpc["method"].as_str() {
            // Every call becomes a task: the one named by its `text` argument.
            Some("tools/call") => json!({"resultType":"task",
                "taskId": rpc["params"]["arguments"]["text"], "status":"working",
                "createdAt":"2026-07-28T10:00:00Z","lastUpdatedAt":"2026-07-28T10:00:00Z",
                "ttlMs":60000}),
            Some("tasks/get") => json!({"resultType":"complete",
                "taskId": rpc["params"]["taskId"], "status":"completed",
                "createdAt":"2026-07-28T10:00:00Z","lastUpdatedAt":"2026-07-28T10:00:01Z",
                "ttlMs":60000, "result":{"content":[{"type":"text","text":"the report"}]}}),
            _ => json!({}),
        };
        json_reply(&json!({"jsonrpc":"2.0","id":id,"result":result}).to_string())
    })
}

async fn send(warden: &Warden, who: &str, body: Value) -> Resp {
    let bearer = format!("Bearer {}", token(who, &["admin"], "mcp:tools"));
    post(
        &warden.url,
        Some(&bearer),
        &[("mcp-protocol-version", "2025-11-25")],
        body.to_string(),
    )
    .await
}

/// A `tools/call` declaring the tasks extension; the fake server answers with task `id`.
fn call_creating(task: &str) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"report","arguments":{"text":task},
        "_meta":{TASKS_META:{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}})
}

fn task_op(method: &str, task: &str) -> Value {
    let mut params = json!({"taskId": task});
    if method == "tasks/update" {
        params["inputResponses"] = json!({"ask-1":{"action":"accept","content":{}}});
    }
    json!({"jsonrpc":"2.0","id":2,"method":method,"params":params})
}

#[tokio::test]
async fn a_task_belongs_to_the_caller_whose_call_created_it() {
    let up = upstream();
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n[audit]\nsink = \"file\"\npath = \"audit.log\"\n"),
    );
    let audit = warden.dir.path().join("audit.log");

    let created = send(&warden, "alice", call_creating("task-42")).await;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["result"]["taskId"], "task-42");

    // Its creator polls it…
    let polled = send(&warden, "alice", task_op("tasks/get", "task-42")).await;
    assert_eq!(polled.status, 200, "{}", polled.text());
    assert_eq!(polled.json()["result"]["status"], "completed");

    // …and the policy decided the poll as the call that created the task.
    let line = wait_audit(&audit, |l| {
        l["event"] == "decision" && l["mcp_method"] == "tasks/get"
    });
    assert_eq!(line["tool"], "report", "{line}");
    assert_eq!(line["decision"], "allow", "{line}");

    // Another principal, however privileged, gets none of its operations through.
    for method in ["tasks/get", "tasks/update", "tasks/cancel", "tasks/result"] {
        let r = send(&warden, "mallory", task_op(method, "task-42")).await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
        assert_eq!(
            r.json()["error"]["message"],
            "task belongs to another principal"
        );
    }
    // Nor does anyone reach a task the proxy never saw created.
    let unknown = send(&warden, "alice", task_op("tasks/get", "task-never")).await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.json()["error"]["message"], "task not found");
    let no_id = send(
        &warden,
        "alice",
        json!({"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{}}),
    )
    .await;
    assert_eq!(no_id.status, 400, "{}", no_id.text());

    let forwarded_polls = up
        .methods()
        .iter()
        .filter(|m| m.starts_with("tasks/"))
        .count();
    assert_eq!(
        forwarded_polls, 1,
        "only the owner's poll reached the server"
    );
}

#[tokio::test]
async fn a_task_handle_to_a_call_that_allowed_none_binds_nothing() {
    let up = upstream();
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    // A call without the tasks extension: the server must not answer with a task. One
    // that does anyway (hostile) binds nothing, so the id opens no task for anyone.
    let plain = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"report","arguments":{"text":"task-rogue"}}});
    assert_eq!(send(&warden, "alice", plain).await.status, 200);
    let r = send(&warden, "alice", task_op("tasks/get", "task-rogue")).await;
    assert_eq!((r.status, r.code()), (403, -32003), "{}", r.text());
}

mod biscuit {
    //! With Biscuit tokens: a retried call (multi-round-trip) and a task operation are
    //! decided again, so an attenuated token cannot finish what it could not start.

    use serde_json::{json, Value};

    use crate::support::biscuit::{attenuate, example_policies, Keys, ENGINE_TOML};
    use crate::support::http::{post, Resp};
    use crate::support::upstream::{ResponseMode, UpstreamBuilder};
    use crate::support::warden::Warden;

    async fn send(warden: &Warden, token: &str, body: Value) -> Resp {
        post(
            &warden.url,
            Some(&format!("Bearer {token}")),
            &[("mcp-protocol-version", "2025-11-25")],
            body.to_string(),
        )
        .await
    }

    /// A `tools/call` retried with the answers to the server's input requests and the
    /// state it handed back (SEP-2322 multi-round-trip requests).
    fn retry(id: u64, tool: &str) -> Value {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
            "name":tool,"arguments":{"text":"again"},
            "inputResponses":{"confirm-1":{"action":"accept","content":{"ok":true}}},
            "requestState":"opaque-state-from-the-server"}})
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_retried_call_is_decided_again_as_a_new_call() {
        let keys = Keys::new();
        let up = UpstreamBuilder::new(ResponseMode::Json)
            .any_host()
            .start()
            .await;
        let warden = Warden::start(
            &up.url,
            &example_policies(),
            &format!("{ENGINE_TOML}{}\n", keys.auth_toml()),
        );
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
        // The tools' annotations are learned from a listing, as a client does first.
        let listed = send(
            &warden,
            &alice,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}),
        )
        .await;
        assert_eq!(listed.status, 200, "{}", listed.text());
        // The round trip the full token started, finished by the attenuated one: denied
        // like a first call of that tool, never forwarded.
        let refused = send(&warden, &echo_only, retry(7, "whoami")).await;
        assert_eq!(refused.status, 200, "{}", refused.text());
        assert_eq!(refused.json()["id"], 7);
        assert_eq!(refused.code(), -32003, "{}", refused.text());
        // What the attenuation allows goes through, retried or not.
        let allowed = send(&warden, &echo_only, retry(8, "echo")).await;
        assert_eq!(allowed.status, 200);
        assert!(allowed.json().get("error").is_none(), "{}", allowed.text());
        assert_eq!(
            up.seen.tool_calls(),
            ["echo"],
            "whoami never reached the server"
        );
    }
}
