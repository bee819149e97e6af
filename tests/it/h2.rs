//! HTTP/2 through the real binary, on one connection per client: h2c (prior knowledge) on a
//! plain listener with `connections.h2c`, and h2 by ALPN over mTLS. The same rules as on
//! HTTP/1.1 hold on every stream: `tools/list` filtered, a denied `tools/call` refused even
//! when its body arrives in several DATA frames, spoofed identity headers stripped, and the
//! identity of each of several concurrent streams (the token's user, and over mTLS the
//! connection's certificate as the agent) on exactly that stream's upstream request. With
//! h2c off an HTTP/2 prior-knowledge client is told to use HTTP/1.1.

use serde_json::{json, Value};

use crate::support::h2::H2;
use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::Upstream;
use crate::support::warden::{example_policies, raw_http, Warden};
use crate::tls::{https, upstream, Pki};

const FORBIDDEN: i64 = -32003;
const AGENT: &str = "spiffe://example.org/ns/prod/sa/agent";

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
}

fn sorted_tool_names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list result: {result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Every rule checked on streams of `conn` (`path` is the MCP endpoint); `agent` is the
/// connection's client certificate when there is one.
async fn the_rules_hold_on_every_stream(conn: &H2, path: &str, up: &Upstream, agent: Option<&str>) {
    let pat = token("pat", &[], "mcp:tools");
    let bearer = format!("Bearer {pat}");
    let version = ("mcp-protocol-version", "2025-06-18");

    // A filtered tools/list (whoami and the destructive tools hidden).
    let listed = conn
        .post(
            path,
            &[("authorization", &bearer), version],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await
        .expect("tools/list on h2");
    assert_eq!(listed.status, 200);
    assert_eq!(sorted_tool_names(&listed.json()), ["echo", "get_weather"]);

    // A denied call, its body in three DATA frames: refused, never forwarded.
    let body = serde_json::to_vec(&call(2, "whoami", json!({}))).unwrap();
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(rest.len() - 12);
    let denied = conn
        .post_chunks(
            path,
            &[("authorization", &bearer), version],
            vec![a.to_vec(), b.to_vec(), c.to_vec()],
        )
        .await
        .expect("tools/call on h2");
    let denied = denied.json();
    assert_eq!(denied["error"]["code"], FORBIDDEN, "{denied}");
    assert_eq!(denied["id"], 2, "{denied}");
    assert!(!up.seen.tool_calls().contains(&"whoami".to_owned()));

    // Spoofed identity headers are stripped; the proxy's own are set.
    let spoofed = conn
        .post(
            path,
            &[
                ("authorization", &bearer),
                version,
                ("x-mcp-user", "root"),
                ("x-mcp-agent", "spiffe://evil.example/admin"),
                ("x-mcp-client-cert-spiffe-id", "spiffe://evil.example/admin"),
            ],
            &call(3, "echo", json!({"text": "spoof"})),
        )
        .await
        .expect("tools/call on h2");
    assert_eq!(spoofed.status, 200, "{:?}", spoofed.body);
    let seen = up
        .seen
        .requests_for("tools/call")
        .into_iter()
        .find(|r| r.json().is_some_and(|b| b["id"] == 3))
        .expect("the call reached the server");
    assert_eq!(seen.headers["x-mcp-user"], ["pat"]);
    match agent {
        Some(agent) => {
            assert_eq!(seen.headers["x-mcp-agent"], [agent]);
            assert_eq!(seen.headers["x-mcp-client-cert-spiffe-id"], [agent]);
        }
        None => {
            // The token's own client (`azp`), not the spoofed agent.
            assert_eq!(seen.headers["x-mcp-agent"], ["test-agent"]);
            assert!(!seen.has_header("x-mcp-client-cert-spiffe-id"));
        }
    }

    // Concurrent streams of different users on the one connection: each upstream request
    // carries its own stream's user (and the connection's certificate as the agent).
    let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    let calls = users.iter().enumerate().map(|(i, user)| {
        let conn = conn.clone();
        let bearer = format!("Bearer {}", token(user, &[], "mcp:tools"));
        let body = call(100 + i as u64, "echo", json!({"text": user}));
        async move {
            conn.post(path, &[("authorization", &bearer), version], &body)
                .await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        let answer = answer.expect("a concurrent stream");
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let mut checked = 0;
    for request in up.seen.requests_for("tools/call") {
        let body = request.json().unwrap();
        if body["id"].as_u64().is_some_and(|id| id >= 100) {
            let user = body["params"]["arguments"]["text"].as_str().unwrap();
            assert_eq!(request.headers["x-mcp-user"], [user], "{body}");
            if let Some(agent) = agent {
                assert_eq!(request.headers["x-mcp-agent"], [agent]);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, users.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_streams_keep_every_rule_of_http1() {
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}[connections]\nh2c = true\n"),
    );
    let conn = H2::plain(warden.addr).await;
    the_rules_hold_on_every_stream(&conn, "/mcp", &up, None).await;

    // HTTP/1.1 on the same port still works.
    let plain = raw_http(
        warden.addr,
        b"GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(plain.status, 401, "{}", plain.head);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_h2c_a_prior_knowledge_client_is_told_to_use_http1() {
    let up = upstream().await;
    let warden = Warden::start(&up.url, &example_policies(), AUTH_TOML);
    let conn = H2::plain(warden.addr).await;
    let err = conn
        .post(
            "/mcp",
            &[],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await
        .expect_err("h2c is off");
    let text = format!("{err:?}");
    assert!(text.contains("HTTP_1_1_REQUIRED"), "{text}");
    assert!(up.seen.requests().is_empty(), "nothing reached the server");
    let metrics = warden.metrics().await;
    assert!(
        metrics.contains("mcp_warden_connections_refused_total{reason=\"h2c_disabled\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_over_mtls_keeps_every_rule_and_the_certificate_on_every_stream() {
    let pki = Pki::new();
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!(
            "{AUTH_TOML}{}[auth.mtls]\nsubject = \"spiffe_id\"\nagent = true\n",
            pki.toml("required")
        ),
    );
    let agent = pki.ca.spiffe(AGENT);
    let conn = H2::tls(warden.addr, &pki.ca.client_config_with(&agent)).await;
    assert!(https(&warden).starts_with("https://"));
    the_rules_hold_on_every_stream(&conn, "/mcp", &up, Some(AGENT)).await;
}
