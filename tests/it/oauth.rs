//! OAuth protected-resource metadata (RFC 9728), the token audience (RFC 8707) and the
//! `insufficient_scope` step-up challenge (MCP 2025-11-25), through the real binary in
//! front of the real rmcp upstream.

use serde_json::json;

use crate::support::client::{
    args, call_tool, list_tool_names, result_text, ClientBuilder, Revision,
};
use crate::support::http::{client, post, send};
use crate::support::tokens::{claims, sign};
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::warden::{run_cli, Warden};

const RESOURCE: &str = "https://mcp.example.test/mcp";
const METADATA_URL: &str = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp";

/// JWT auth without an `audience`: `[oauth]` makes the resource the audience.
const AUTH: &str = r#"
[auth.jwt]
issuer = "https://idp.test"
algorithms = ["HS256"]
[[auth.jwt.keys]]
alg = "HS256"
secret = "test-secret-0123456789-abcdefghijklmnop"
"#;

const OAUTH: &str = r#"
[oauth]
resource = "https://mcp.example.test/mcp"
authorization_servers = ["https://idp.test"]
scopes_supported = ["mcp:tools", "mcp:admin"]
resource_name = "test tools"
"#;

/// Everything is allowed, except destructive tools without the `mcp:admin` scope: a
/// denial the caller can fix by asking for that scope.
const POLICY: &str = r#"
@id("all")
permit (principal, action, resource);

@id("destructive-needs-admin-scope")
@insufficient_scope("mcp:admin")
forbid (principal, action == Action::"call_tool", resource)
when { resource.annotations.destructiveHint }
unless { principal.scopes.contains("mcp:admin") };

@id("no-tables-named-secrets")
forbid (principal, action == Action::"call_tool", resource)
when { context.arguments has table && context.arguments.table == "secrets" };
"#;

fn token(scope: &str, aud: &str) -> String {
    let mut c = claims("sam", &["staff"], scope);
    c["aud"] = json!(aud);
    sign(&c)
}

fn base(warden: &Warden) -> String {
    warden.url.trim_end_matches("/mcp").to_owned()
}

async fn start() -> (crate::support::upstream::Upstream, Warden) {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start_with_policy(&up.url, POLICY, &format!("{AUTH}\n{OAUTH}"));
    (up, warden)
}

fn call(name: &str, table: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": {"table": table}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metadata_document_is_served_unauthenticated_at_both_well_known_paths() {
    let (_up, warden) = start().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = send(client().get(format!("{}{path}", base(&warden)))).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            resp.json(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": ["https://idp.test"],
                "scopes_supported": ["mcp:tools", "mcp:admin"],
                "bearer_methods_supported": ["header"],
                "resource_name": "test tools"
            })
        );
    }
    // Only GET, only those paths: the rest is refused as before.
    let other = send(client().get(format!(
        "{}/.well-known/oauth-protected-resource/other",
        base(&warden)
    )))
    .await;
    assert_eq!(other.status, 404);
    let posted = send(
        client()
            .post(format!(
                "{}/.well-known/oauth-protected-resource",
                base(&warden)
            ))
            .body("{}"),
    )
    .await;
    assert_eq!(posted.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_points_at_the_metadata_and_a_token_for_another_audience_is_refused() {
    let (_up, warden) = start().await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let none = post(&warden.url, None, &[], list).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate").as_deref(),
        Some(format!("Bearer resource_metadata=\"{METADATA_URL}\"").as_str())
    );
    // RFC 8707: a token issued for another resource is not accepted here.
    let bearer = format!(
        "Bearer {}",
        token("mcp:tools", "https://other.example.test/mcp")
    );
    let other = post(&warden.url, Some(&bearer), &[], list).await;
    assert_eq!(other.status, 401, "{}", other.text());
    let challenge = other.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(METADATA_URL), "{challenge}");

    let client = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("mcp:tools", RESOURCE))
        .connect()
        .await;
    // Listed first, so the proxy knows `echo` is read-only (an unlisted tool counts as
    // destructive).
    assert!(list_tool_names(&client).await.contains(&"echo".into()));
    let echoed = call_tool(&client, "echo", args([("text", json!("hi"))]))
        .await
        .expect("a token for this resource is accepted");
    assert_eq!(result_text(&echoed), "hi");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_only_for_a_missing_scope_is_a_403_step_up_challenge() {
    let (up, warden) = start().await;
    let bearer = format!("Bearer {}", token("mcp:tools", RESOURCE));
    let resp = post(
        &warden.url,
        Some(&bearer),
        &[],
        call("delete_records", "notes"),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let challenge = resp.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:admin\""), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{METADATA_URL}\"")),
        "{challenge}"
    );
    let body = resp.json();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32003);
    assert_eq!(body["error"]["data"]["scope"], "mcp:admin");
    assert_eq!(
        body["error"]["data"]["policy_ids"],
        json!(["destructive-needs-admin-scope"])
    );

    // A denial the scope would not fix stays a plain one, even for the same tool.
    let secrets = post(
        &warden.url,
        Some(&bearer),
        &[],
        call("delete_records", "secrets"),
    )
    .await;
    assert_eq!(secrets.status, 200, "{}", secrets.text());
    assert!(secrets.header("www-authenticate").is_none());
    assert_eq!(secrets.code(), -32003);
    // A batch is answered per request, as before.
    let batch = format!("[{}]", call("delete_records", "notes"));
    let batched = post(&warden.url, Some(&bearer), &[], batch).await;
    assert_eq!(batched.status, 200, "{}", batched.text());
    assert!(batched.header("www-authenticate").is_none());

    // With the scope, the same call goes through.
    let admin = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(token("mcp:tools mcp:admin", RESOURCE))
        .connect()
        .await;
    let deleted = call_tool(&admin, "delete_records", args([("table", json!("notes"))]))
        .await
        .expect("allowed with mcp:admin");
    assert!(result_text(&deleted).contains("notes"));
    assert_eq!(
        up.seen.tool_calls(),
        ["delete_records"],
        "the refused calls never reached the server"
    );
}

#[test]
fn an_audience_list_that_leaves_the_resource_out_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    let auth = AUTH.replace(
        "algorithms = [\"HS256\"]\n",
        "algorithms = [\"HS256\"]\naudience = [\"mcp-warden\"]\n",
    );
    assert!(auth.contains("audience"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9/mcp\"\n[policy]\ndir = \"{}\"\n{auth}\n{OAUTH}",
            crate::support::warden::example_policies().display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "refused");
    assert!(stderr.contains("auth.jwt.audience"), "{stderr}");
    assert!(stderr.contains("warden.toml"), "names the file: {stderr}");
}

#[test]
fn the_example_oauth_configuration_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/oauth.toml");
    let (ok, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let config = mcp_warden::config::load_with_env(&path, []).unwrap();
    assert_eq!(
        config.raw.effective_auth().jwt.unwrap().audience,
        ["https://mcp.example.com/mcp"]
    );
}
