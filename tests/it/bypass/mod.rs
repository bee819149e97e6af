//! Security bypass tests: the real `mcp-warden` binary between a client that tries to
//! slip something past it and a hand-written upstream that records everything it gets
//! (and answers in shapes real servers would not).
//!
//! Each test guards one rule and fails if the rule is removed: it asserts the status,
//! the JSON-RPC error code, and — for refusals — that the upstream received nothing.
//!
//! The rules are grouped by topic, one file each; this file holds what they share: the
//! policies, the set-up, credentials and the request builders.

mod body;
mod decisions;
mod framing;
mod http_surface;
mod identity;
mod responses;
mod sessions;
mod tokens;

use serde_json::{json, Value};

use crate::support::fake::{ok_reply, FakeUpstream, RawRequest, Reply};
use crate::support::http::{self, Resp};
use crate::support::tokens::{claims as token_claims, sign_with, AUTH_TOML, SECRET};
use crate::support::warden::{RawResponse, Warden};

// JSON-RPC codes (src/mcp/errors.rs).
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const UNAUTHENTICATED: i64 = -32001;
const FORBIDDEN: i64 = -32003;
const BATCH_REFUSED: i64 = -32004;
const UPSTREAM_UNFILTERABLE: i64 = -32005;
const HEADER_MISMATCH: i64 = -32020;

const API_KEY: &str = "bypass-test-api-key-0123456789";

/// Only `echo` may be called; `delete_records` is explicitly forbidden (so a denial of
/// it names a policy). Listing and protocol messages are allowed by the engine's rules.
const ECHO_ONLY: &str = r#"
@id("echo-for-everyone")
permit (principal, action == Action::"call_tool", resource == Tool::"echo");

@id("never-delete-records")
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_records");
"#;

/// Every tool but `delete_records`: a name the proxy failed to decode would be allowed.
const ALL_BUT_DELETE: &str = r#"
@id("any-tool")
permit (principal, action == Action::"call_tool", resource);

@id("never-delete-records")
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_records");
"#;

/// A `tools/list` result listing a permitted tool, a forbidden one and an unpermitted one.
const TOOLS_RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","description":"says it back"},{"name":"delete_records","description":"drops tables"},{"name":"secret_tool","description":"hidden"}],"nextCursor":"cursor-2"}}"#;
/// Tool names the ECHO_ONLY caller must never see.
const HIDDEN: [&str; 2] = ["delete_records", "secret_tool"];

fn auth_toml() -> String {
    format!(
        "[auth]\nallow_anonymous = false\n{AUTH_TOML}\n[[auth.api_keys]]\nsha256 = \"{}\"\nsubject = \"ci-bot\"\nroles = [\"staff\"]\n",
        mcp_warden::auth::hash_api_key(API_KEY)
    )
}

// ---------------------------------------------------------------------------------------
// Set-up

struct Setup {
    up: FakeUpstream,
    warden: Warden,
}

impl Setup {
    /// Nothing at all reached the upstream.
    fn assert_nothing_forwarded(&self) {
        let got = self.up.methods();
        assert!(got.is_empty(), "the upstream received {got:?}");
    }

    fn url(&self) -> &str {
        &self.warden.url
    }
}

/// The fake upstream answering with `respond`, behind a proxy with `policy` and `extra`
/// configuration (after the `[auth]` section).
fn setup_with(
    policy: &str,
    extra: &str,
    respond: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static,
) -> Setup {
    let up = FakeUpstream::start(respond);
    let warden = Warden::start_with_policy(&up.url, policy, &format!("{}\n{extra}", auth_toml()));
    Setup { up, warden }
}

/// ECHO_ONLY, an upstream answering every request with an empty result.
fn setup(extra: &str) -> Setup {
    setup_with(ECHO_ONLY, extra, ok_reply)
}

// ---------------------------------------------------------------------------------------
// Credentials

fn claims(sub: &str) -> Value {
    token_claims(sub, &["staff"], "mcp:tools")
}

fn token(sub: &str) -> String {
    sign_with(&claims(sub), SECRET)
}

fn bearer(sub: &str) -> String {
    format!("Bearer {}", token(sub))
}

// ---------------------------------------------------------------------------------------
// Client side (the shared plain-HTTP client, authenticated as one of the test's users)

/// A POST as an MCP client sends it, as `sub`, with extra headers.
async fn post_as(
    url: &str,
    sub: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Resp {
    http::post(url, Some(&bearer(sub)), headers, body).await
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> Resp {
    post_as(url, "alice", &[], body).await
}

fn call(id: i64, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": {}}})
    .to_string()
}

fn tools_list(id: i64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}).to_string()
}

fn initialize(id: i64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bypass-tests", "version": "0"}}})
    .to_string()
}

/// A raw HTTP/1.1 request to the proxy, authenticated as alice.
fn raw_request(method: &str, target: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         {extra_headers}connection: close\r\n\r\n",
        bearer("alice")
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn raw_code(r: &RawResponse) -> i64 {
    let body = r.json();
    body["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {body}"))
}

fn assert_no_hidden_tool(body: &str) {
    for name in HIDDEN {
        assert!(
            !body.contains(name),
            "`{name}` leaked to the client: {body}"
        );
    }
}
