//! Proves the integration-test support works without the proxy: the rmcp client against the
//! rmcp upstream in both response modes and both lifecycles, and the Python SDK client against
//! server-everything and the upstream.

use crate::support::{
    client::{args, call_tool, connect, list_tool_names, result_text, ClientBuilder, Revision},
    interop::{run_python_client, start_server_everything},
    upstream::{
        extra_tool_name, start_upstream, ResponseMode, UpstreamBuilder, BASE_TOOLS,
        PUBLIC_RESOURCE, SECRET_RESOURCE,
    },
};
use rmcp::model::{ProtocolVersion, Tool};
use serde_json::{json, Value};

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools
        .iter()
        .find(|tool| tool.name == name)
        .unwrap_or_else(|| panic!("no tool `{name}` in {tools:?}"))
}

/// List (with annotations), echo, whoami with identity headers; then what the upstream saw.
async fn exercise(mode: ResponseMode, revision: Revision) {
    let upstream = start_upstream(mode).await;
    let client = ClientBuilder::new(&upstream.url, revision.clone())
        .bearer("secret-token")
        .header("x-mcp-user", "alice")
        .header("x-mcp-roles", "admin,dev")
        .connect()
        .await;

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, BASE_TOOLS);
    let echo = tool(&tools, "echo")
        .annotations
        .clone()
        .expect("echo annotations");
    assert_eq!(
        (echo.read_only_hint, echo.open_world_hint),
        (Some(true), Some(false))
    );
    let weather = tool(&tools, "get_weather")
        .annotations
        .clone()
        .expect("annotations");
    assert_eq!(
        (weather.read_only_hint, weather.open_world_hint),
        (Some(true), Some(true))
    );
    let delete = tool(&tools, "delete_records")
        .annotations
        .clone()
        .expect("annotations");
    assert_eq!(
        (delete.read_only_hint, delete.destructive_hint),
        (Some(false), Some(true))
    );
    assert_eq!(tool(&tools, "no_annotations").annotations, None);

    let echoed = call_tool(&client, "echo", args([("text", json!("hello"))]))
        .await
        .expect("echo");
    assert_eq!(result_text(&echoed), "hello");
    let weather = call_tool(&client, "get_weather", args([("city", json!("Oslo"))]))
        .await
        .expect("get_weather");
    assert_eq!(result_text(&weather), "sunny in Oslo");

    let whoami = call_tool(&client, "whoami", Value::Null)
        .await
        .expect("whoami");
    let whoami: Value = serde_json::from_str(&result_text(&whoami)).expect("whoami JSON");
    assert_eq!(
        whoami,
        json!({
            "x-mcp-user": "alice",
            "x-mcp-agent": null,
            "x-mcp-roles": "admin,dev",
            "authorization": "Bearer secret-token",
            "x-api-key": null,
        })
    );

    assert_eq!(
        upstream.seen.tool_calls(),
        ["echo", "get_weather", "whoami"]
    );
    let calls = upstream.seen.requests_for("tools/call");
    assert_eq!(calls.len(), 3);
    let expected_version = match &revision {
        Revision::Modern => "2026-07-28".to_owned(),
        Revision::Legacy(version) => version.to_string(),
    };
    for call in &calls {
        assert_eq!(call.path, "/mcp");
        assert_eq!(call.header("X-MCP-User"), Some("alice"));
        assert_eq!(call.header("authorization"), Some("Bearer secret-token"));
        assert_eq!(
            call.header("mcp-protocol-version"),
            Some(expected_version.as_str())
        );
        let sessions = matches!((mode, &revision), (ResponseMode::Sse, Revision::Legacy(_)));
        assert_eq!(call.has_header("mcp-session-id"), sessions, "{call:?}");
        if revision == Revision::Modern {
            assert_eq!(call.header("mcp-method"), Some("tools/call"));
            let name = call.json().expect("JSON body")["params"]["name"].clone();
            assert_eq!(call.header("mcp-name"), name.as_str());
        }
    }
    let methods = upstream.seen.jsonrpc_methods();
    let handshake = match revision {
        Revision::Modern => "server/discover",
        Revision::Legacy(_) => "initialize",
    };
    assert_eq!(methods.first().map(String::as_str), Some(handshake));

    upstream.seen.clear();
    assert!(upstream.seen.requests().is_empty() && upstream.seen.tool_calls().is_empty());
    client.cancel().await.expect("close client");
}

#[tokio::test]
async fn rmcp_modern_client_against_sse_upstream() {
    exercise(ResponseMode::Sse, Revision::Modern).await;
}

#[tokio::test]
async fn rmcp_modern_client_against_json_upstream() {
    exercise(ResponseMode::Json, Revision::Modern).await;
}

#[tokio::test]
async fn rmcp_legacy_client_gets_a_session_from_sse_upstream() {
    exercise(ResponseMode::Sse, Revision::legacy()).await;
}

#[tokio::test]
async fn rmcp_legacy_client_is_stateless_against_json_upstream() {
    exercise(ResponseMode::Json, Revision::legacy()).await;
}

#[tokio::test]
async fn rmcp_2025_11_25_client_works_too() {
    exercise(
        ResponseMode::Sse,
        Revision::Legacy(ProtocolVersion::V_2025_11_25),
    )
    .await;
}

/// A raw legacy `initialize`: the modes differ on the wire the way the docs say.
#[tokio::test]
async fn response_modes_differ_on_the_wire() {
    for (mode, content_type, session) in [
        (ResponseMode::Sse, "text/event-stream", true),
        (ResponseMode::Json, "application/json", false),
    ] {
        let upstream = start_upstream(mode).await;
        let response = reqwest::Client::new()
            .post(&upstream.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(
                json!({
                    "jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"}
                    }
                })
                .to_string(),
            )
            .send()
            .await
            .expect("POST initialize");
        assert_eq!(response.status(), 200, "{mode:?}");
        let got_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(got_type.starts_with(content_type), "{mode:?}: {got_type}");
        assert_eq!(
            response.headers().contains_key("mcp-session-id"),
            session,
            "{mode:?}"
        );
        let body = response.text().await.expect("body");
        assert!(
            body.contains("\"protocolVersion\":\"2025-06-18\""),
            "{body}"
        );
    }
}

#[tokio::test]
async fn api_key_header_reaches_the_tool() {
    let upstream = start_upstream(ResponseMode::Json).await;
    let client = ClientBuilder::new(&upstream.url, Revision::Modern)
        .api_key("k-123")
        .connect()
        .await;
    let whoami = call_tool(&client, "whoami", Value::Null)
        .await
        .expect("whoami");
    let whoami: Value = serde_json::from_str(&result_text(&whoami)).expect("JSON");
    assert_eq!(whoami["x-api-key"], "k-123");
    assert_eq!(whoami["authorization"], Value::Null);
    client.cancel().await.expect("close client");
}

#[tokio::test]
async fn unknown_tool_is_an_error_and_not_recorded_as_executed() {
    let upstream = start_upstream(ResponseMode::Sse).await;
    let client = connect(&upstream.url, Revision::legacy()).await;
    let outcome = call_tool(&client, "does_not_exist", Value::Null).await;
    assert!(
        outcome.is_err()
            || outcome
                .as_ref()
                .is_ok_and(|result| result.is_error == Some(true)),
        "{outcome:?}"
    );
    assert!(upstream.seen.tool_calls().is_empty());
    assert_eq!(upstream.seen.requests_for("tools/call").len(), 1);
    client.cancel().await.expect("close client");
}

#[tokio::test]
async fn extra_tools_are_listed_and_callable() {
    let upstream = UpstreamBuilder::new(ResponseMode::Json)
        .extra_tools(1000)
        .start()
        .await;
    let client = connect(&upstream.url, Revision::Modern).await;
    let names = list_tool_names(&client).await;
    assert_eq!(names.len(), BASE_TOOLS.len() + 1000);
    assert!(names.contains(&extra_tool_name(1)) && names.contains(&"tool_1000".to_owned()));
    let result = call_tool(&client, "tool_0042", Value::Null)
        .await
        .expect("tool_0042");
    assert_eq!(result_text(&result), "tool_0042 ok");
    assert_eq!(upstream.seen.tool_calls(), ["tool_0042"]);
    client.cancel().await.expect("close client");
}

#[tokio::test]
async fn prompts_and_resources_are_served() {
    for revision in [Revision::Modern, Revision::legacy()] {
        let upstream = start_upstream(ResponseMode::Sse).await;
        let client = connect(&upstream.url, revision).await;
        let prompts = client.list_all_prompts().await.expect("prompts/list");
        let prompt_names: Vec<&str> = prompts.iter().map(|prompt| prompt.name.as_str()).collect();
        assert_eq!(prompt_names, ["greeting"]);
        let resources = client.list_all_resources().await.expect("resources/list");
        let uris: Vec<&str> = resources
            .iter()
            .map(|resource| resource.uri.as_str())
            .collect();
        assert_eq!(uris, [PUBLIC_RESOURCE, SECRET_RESOURCE]);
        client.cancel().await.expect("close client");
    }
}

#[tokio::test]
async fn python_sdk_client_against_server_everything() {
    let server = start_server_everything();
    let report = run_python_client(
        &server.url,
        &["--call", "echo", "--args", r#"{"message": "hi"}"#],
    )
    .await;
    let tools = report.tools().expect("tools listed");
    assert!(tools.iter().any(|name| name == "echo"), "{tools:?}");
    assert_eq!(report.json["error"], Value::Null);
    assert_eq!(report.call()["ok"], true, "{:?}", report.json);
    assert_eq!(report.call()["content"][0]["text"], "Echo: hi");
}

#[tokio::test]
async fn python_sdk_client_reports_a_json_rpc_error_without_crashing() {
    let server = start_server_everything();
    // server-everything reports an unknown tool in-band (`isError`), so provoke a JSON-RPC
    // error instead: a wrong path gets an HTTP 404, which the SDK surfaces as METHOD_NOT_FOUND.
    let wrong_path = server.url.replace("/mcp", "/nope");
    let report = run_python_client(&wrong_path, &["--call", "echo"]).await;
    assert_eq!(report.json["error"]["code"], -32601, "{:?}", report.json);
    assert_eq!(report.tools(), None);
}

#[tokio::test]
async fn python_sdk_client_against_rmcp_upstream() {
    for (mode, cli_mode) in [
        (ResponseMode::Sse, "legacy"),
        (ResponseMode::Json, "2026-07-28"),
    ] {
        let upstream = start_upstream(mode).await;
        let report = run_python_client(
            &upstream.url,
            &[
                "--mode", cli_mode, "--bearer", "py-token", "--call", "whoami",
            ],
        )
        .await;
        assert_eq!(
            report.tools().expect("tools listed"),
            BASE_TOOLS,
            "{mode:?}"
        );
        assert_eq!(report.call()["ok"], true, "{mode:?}: {:?}", report.json);
        let text = report.call()["content"][0]["text"].as_str().expect("text");
        let whoami: Value = serde_json::from_str(text).expect("whoami JSON");
        assert_eq!(whoami["authorization"], "Bearer py-token");
        assert_eq!(upstream.seen.tool_calls(), ["whoami"]);
    }
}
