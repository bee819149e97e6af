//! Security bypass tests: the real `mcp-warden` binary between a client that tries to
//! slip something past it and a hand-written upstream that records everything it gets
//! (and answers in shapes real servers would not).
//!
//! Each test guards one rule and fails if the rule is removed: it asserts the status,
//! the JSON-RPC error code, and — for refusals — that the upstream received nothing.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use support::fake::{
    gzip_stored, json_reply, json_reply_with, ok_reply, reply, sse_reply, sse_reply_with,
    FakeUpstream, RawRequest, Reply,
};
use support::tokens::{claims as token_claims, now, sign_with, AUTH_TOML, SECRET};
use support::warden::{raw_http, RawResponse, Warden};

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
// Client side

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `error.code` of a single JSON-RPC error response.
    fn code(&self) -> i64 {
        let body = self.json();
        body["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not a JSON-RPC error: {body}"))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Resp {
    let response = request.send().await.expect("request to mcp-warden");
    Resp {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("response body").to_vec(),
    }
}

/// A POST as an MCP client sends it, as `sub`, with extra headers.
async fn post_as(
    url: &str,
    sub: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut request = client()
        .post(url)
        .header("authorization", bearer(sub))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
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

/// A raw POST to `/mcp` with a chunked body cut into `chunk`-byte chunks.
fn chunked_post(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = raw_request("POST", "/mcp", "transfer-encoding: chunked\r\n", b"");
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn raw_code(r: &RawResponse) -> i64 {
    let body = r.json();
    body["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {body}"))
}

/// An `echo` call whose `text` argument makes the body exactly `len` bytes long, with
/// content that differs at every offset (so a reordered or truncated copy is caught).
fn big_call(len: usize) -> Vec<u8> {
    let prefix = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#;
    let suffix = br#""}}}"#;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let fill = len - prefix.len() - suffix.len();
    let mut out = prefix.to_vec();
    out.extend((0..fill).map(|i| alphabet[(i * 7 + i / 61) % alphabet.len()]));
    out.extend_from_slice(suffix);
    assert_eq!(out.len(), len);
    out
}

/// The tool names of the `tools/list` result with id 1 in an SSE or JSON body.
fn listed_names(body: &str) -> Vec<String> {
    let documents: Vec<Value> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(body).unwrap()]
    } else {
        sse_data(body)
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    };
    let result = documents
        .iter()
        .find(|d| d["id"] == 1 && d.get("result").is_some())
        .unwrap_or_else(|| panic!("no result for id 1 in {body}"));
    result["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `data` of each event of an SSE body (lines joined with `\n`).
fn sse_data(body: &str) -> Vec<String> {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split("\n\n")
        .filter_map(|event| {
            let lines: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

fn assert_no_hidden_tool(body: &str) {
    for name in HIDDEN {
        assert!(
            !body.contains(name),
            "`{name}` leaked to the client: {body}"
        );
    }
}

// =======================================================================================
// Request bodies: one parse, the same one the upstream will make

/// Duplicate keys are read last-wins by serde_json and first-wins by others: the proxy
/// would authorize `echo` while a first-wins upstream runs `delete_records`.
async fn assert_duplicate_key_refused(body: &str) {
    let s = setup("");
    let r = post(s.url(), body.to_owned()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert!(r.text().contains("duplicate"), "{}", r.text());
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_top_level_key_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_records","arguments":{}},"params":{"name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_nested_in_params_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_records","name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_spelled_with_unicode_escape_is_refused() {
    assert_duplicate_key_refused(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"delete_records","name":"echo","arguments":{}}}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_name_with_unicode_escapes_is_decided_on_its_decoded_name() {
    let s = setup_with(ALL_BUT_DELETE, "", ok_reply);
    let r = post(
        s.url(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete\u005frecords","arguments":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    assert_eq!(r.json()["id"], 3);
    assert_eq!(
        r.json()["error"]["data"]["policy_ids"],
        json!(["never-delete-records"])
    );
    s.assert_nothing_forwarded();

    // The same policy lets other tools through, so the refusal above is the decoded name's.
    let r = post(s.url(), call(4, "read_records")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], json!({}));
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn method_name_is_matched_exactly() {
    // `Tools/Call` is not `tools/call`: an unknown method, which needs its own permit.
    let s = setup_with(ALL_BUT_DELETE, "", ok_reply);
    let r = post(
        s.url(),
        r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"delete_records","arguments":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_a_parse_error() {
    let s = setup("");
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} {}"#,
        "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\ud800"}}"#,
    ] {
        let r = post(s.url(), body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), PARSE_ERROR, "{body}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn json_that_is_not_json_rpc_is_invalid_request() {
    let s = setup("");
    for body in [
        r#"{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}},"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}},"x":1}"#,
        r#"[]"#,
        r#""tools/call""#,
    ] {
        let r = post(s.url(), body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), INVALID_REQUEST, "{body}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn nesting_deeper_than_the_limit_is_refused() {
    let s = setup("");
    // 3 levels of message + 80 of argument: over the default limit of 64, under
    // serde_json's own 128, so only the proxy's limit stops it.
    let deep = format!("{}1{}", r#"{"a":"#.repeat(80), "}".repeat(80));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"deep":{deep}}}}}}}"#
    );
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert!(r.text().contains("nesting"), "{}", r.text());
    s.assert_nothing_forwarded();
}

// =======================================================================================
// Decisions

#[tokio::test(flavor = "multi_thread")]
async fn batch_with_one_denied_element_is_refused_whole() {
    let s = setup("");
    let body = format!(
        "[{},{},{}]",
        call(1, "echo"),
        call(2, "delete_records"),
        tools_list(3)
    );
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answers = r.json();
    let answers = answers.as_array().expect("an array of errors");
    assert_eq!(answers.len(), 3, "{answers:?}");
    let code_of = |id: i64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer for id {id}: {answers:?}"))["error"]["code"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(code_of(1), BATCH_REFUSED);
    assert_eq!(code_of(2), FORBIDDEN);
    assert_eq!(code_of(3), BATCH_REFUSED);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_all_allowed_is_forwarded_and_its_list_answer_filtered() {
    let s = setup_with(ECHO_ONLY, "", |req| {
        let list: Value = serde_json::from_str(TOOLS_RESULT).unwrap();
        let answers = json!([{"jsonrpc":"2.0","id":2,"result":{"content":[]}}, list]);
        match req.json() {
            Some(Value::Array(_)) => json_reply(&answers.to_string()),
            _ => ok_reply(req),
        }
    });
    let body = format!("[{},{}]", call(2, "echo"), tools_list(1));
    let r = post(s.url(), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body.as_bytes(), "batch not forwarded as sent");
    let answers = r.json();
    let list = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == 1)
        .unwrap();
    assert_eq!(list["result"]["tools"][0]["name"], "echo");
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 1);
    assert_no_hidden_tool(&r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_call_names_the_policy_but_not_its_text() {
    let s = setup("");
    let r = post(s.url(), call(7, "delete_records")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], FORBIDDEN);
    assert_eq!(
        body["error"]["data"]["policy_ids"],
        json!(["never-delete-records"])
    );
    for policy_text in ["Action::", "principal", "resource ==", "permit", "when {"] {
        assert!(
            !r.text().contains(policy_text),
            "policy text leaked: {body}"
        );
    }
    // A default deny (no permit) names no policy.
    let r = post(s.url(), call(8, "secret_tool")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    assert_eq!(r.json()["error"]["data"]["policy_ids"], json!([]));
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_notification_is_403() {
    let s = setup("");
    let body = json!({"jsonrpc": "2.0", "method": "tools/call",
        "params": {"name": "delete_records", "arguments": {}}})
    .to_string();
    let r = post(s.url(), body).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn non_json_content_type_is_still_decided() {
    let s = setup("");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = post_as(
            s.url(),
            "alice",
            &[("content-type", content_type)],
            call(1, "delete_records"),
        )
        .await;
        assert_eq!(r.status, 200, "{content_type}: {}", r.text());
        assert_eq!(r.code(), FORBIDDEN, "{content_type}");
    }
    s.assert_nothing_forwarded();
}

// =======================================================================================
// Body framing: the proxy must decide on exactly the bytes it forwards

#[tokio::test(flavor = "multi_thread")]
async fn compressed_request_body_is_415() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[("content-encoding", "gzip")],
        gzip_stored(call(1, "echo").as_bytes()),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_with_content_length_is_413() {
    let s = setup("[limits]\nmax_body_bytes = 2048\n");
    let r = post(s.url(), big_call(4096)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    s.assert_nothing_forwarded();
    // The limit is the configured one, not a refusal of everything.
    let r = post(s.url(), big_call(2048)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_over_the_limit_is_413() {
    let s = setup("[limits]\nmax_body_bytes = 2048\n");
    let r = raw_http(s.warden.addr, &chunked_post(&big_call(4096), 500));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(raw_code(&r), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

async fn assert_big_body_forwarded_intact(len: usize) {
    let s = setup("");
    let body = big_call(len);
    let r = post(s.url(), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1, "{:?}", s.up.methods());
    assert_eq!(got[0].body.len(), body.len(), "forwarded body length");
    assert!(
        got[0].body == body,
        "forwarded body differs from the one sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_1_mib_body_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_3_mib_body_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(3 * 1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_just_over_the_retry_buffer_reaches_the_upstream_intact() {
    assert_big_body_forwarded_intact(64 * 1024 + 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_under_64_kib_is_forwarded_intact() {
    let s = setup("");
    let body = big_call(60 * 1024);
    let r = raw_http(s.warden.addr, &chunked_post(&body, 7000));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].body == body, "forwarded chunked body differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_over_64_kib_is_411() {
    let s = setup("");
    let r = raw_http(s.warden.addr, &chunked_post(&big_call(100 * 1024), 8000));
    assert_eq!(r.status, 411, "{}", r.text());
    assert_eq!(raw_code(&r), INVALID_REQUEST);
    s.assert_nothing_forwarded();
}

/// `Content-Length` and `Transfer-Encoding` together (request smuggling's raw material):
/// the body is read as chunked, decided, and forwarded with chunked framing only, so the
/// proxy and the upstream cannot disagree on where it ends.
fn conflicting_framing(body: &str) -> Vec<u8> {
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    // The Content-Length covers only a prefix of the chunked body.
    raw_request(
        "POST",
        "/mcp",
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        chunked.as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_beside_transfer_encoding_is_decided_on_the_chunked_body() {
    let s = setup("");
    let r = raw_http(
        s.warden.addr,
        &conflicting_framing(&call(1, "delete_records")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(raw_code(&r), FORBIDDEN);
    s.assert_nothing_forwarded();

    let body = call(2, "echo");
    let r = raw_http(s.warden.addr, &conflicting_framing(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].header("content-length").is_none(), "{}", got[0].head);
    assert_eq!(
        got[0].headers("transfer-encoding").len(),
        1,
        "{}",
        got[0].head
    );
    assert_eq!(got[0].body, body.as_bytes());
}

// =======================================================================================
// HTTP surface

#[tokio::test(flavor = "multi_thread")]
async fn other_paths_are_404_and_not_forwarded() {
    let s = setup("");
    let body = call(1, "echo");
    for path in [
        "/",
        "/mcp/",
        "/MCP",
        "/mcp/x",
        "/mcp%2F",
        "//mcp",
        "/mcp/../mcp",
        "/%6dcp",
    ] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                "POST",
                path,
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_are_405_and_not_forwarded() {
    let s = setup("");
    let body = call(1, "echo");
    for method in ["PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "post"] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                method,
                "/mcp",
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 405, "{method}: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn get_or_delete_with_a_body_is_400() {
    let s = setup("");
    let body = call(1, "delete_records");
    for method in ["GET", "DELETE"] {
        let r = raw_http(
            s.warden.addr,
            &raw_request(
                method,
                "/mcp",
                &format!("content-length: {}\r\n", body.len()),
                body.as_bytes(),
            ),
        );
        assert_eq!(r.status, 400, "{method}: {}", r.text());
        assert_eq!(raw_code(&r), INVALID_REQUEST);
        let r = raw_http(s.warden.addr, &{
            let mut req = raw_request(method, "/mcp", "transfer-encoding: chunked\r\n", b"");
            req.extend_from_slice(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
            req
        });
        assert_eq!(r.status, 400, "{method} chunked: {}", r.text());
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_method_header_disagreeing_with_the_body_is_refused() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-method", "tools/list")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), HEADER_MISMATCH);
    s.assert_nothing_forwarded();
    // Agreeing headers pass.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_name_header_disagreeing_with_the_body_is_refused() {
    let s = setup("");
    for name in ["delete_records", "=?base64?ZGVsZXRlX3JlY29yZHM=?=", "Echo"] {
        let r = post_as(
            s.url(),
            "alice",
            &[("mcp-method", "tools/call"), ("mcp-name", name)],
            call(1, "echo"),
        )
        .await;
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.code(), HEADER_MISMATCH, "{name}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn disallowed_origin_is_403() {
    let s = setup("[http]\nallowed_origins = [\"https://app.example\"]\n");
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
    ] {
        let r = post_as(s.url(), "alice", &[("origin", origin)], call(1, "echo")).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        assert_eq!(r.code(), FORBIDDEN, "{origin}");
    }
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_or_absent_origin_is_forwarded() {
    let s = setup("[http]\nallowed_origins = [\"https://app.example\"]\n");
    let r = post_as(
        s.url(),
        "alice",
        &[("origin", "https://app.example")],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(s.url(), call(2, "echo")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.up.methods(), ["tools/call", "tools/call"]);
}

// =======================================================================================
// Identity

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_headers_are_replaced_by_the_real_identity() {
    let s = setup("");
    let r = post_as(
        s.url(),
        "alice",
        &[
            ("x-mcp-user", "admin"),
            ("X-MCP-Roles", "admin"),
            ("x-mcp-auth-method", "api_key"),
            ("x-mcp-agent", "trusted-agent"),
            ("X-Mcp-Tenant", "other-tenant"),
        ],
        call(1, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &s.up.received()[0];
    assert_eq!(got.headers("x-mcp-user"), ["alice"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-roles"), ["staff"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-auth-method"), ["jwt"], "{}", got.head);
    assert_eq!(got.headers("x-mcp-agent"), ["test-agent"], "{}", got.head);
    assert!(got.headers("x-mcp-tenant").is_empty(), "{}", got.head);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_not_forwarded() {
    let s = setup("");
    let r = post(s.url(), call(1, "echo")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        client()
            .post(s.url())
            .header("x-api-key", API_KEY)
            .header("content-type", "application/json")
            .header("x-mcp-user", "alice")
            .body(call(2, "echo")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(got.len(), 2);
    for req in &got {
        assert!(req.header("authorization").is_none(), "{}", req.head);
        assert!(req.header("x-api-key").is_none(), "{}", req.head);
    }
    assert_eq!(got[0].headers("x-mcp-user"), ["alice"]);
    assert_eq!(got[1].headers("x-mcp-user"), ["ci-bot"]);
    assert_eq!(got[1].headers("x-mcp-auth-method"), ["api_key"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credential_is_401_with_a_bearer_challenge() {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("content-type", "application/json")
            .header("x-mcp-user", "alice")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    s.assert_nothing_forwarded();
}

/// A refused bearer token: 401, `error="invalid_token"`, nothing forwarded.
async fn assert_invalid_token(token: &str) {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        !challenge.contains(token),
        "the token was echoed: {challenge}"
    );
    s.assert_nothing_forwarded();
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_401() {
    let mut c = claims("alice");
    c["exp"] = json!(now() - 600);
    c["iat"] = json!(now() - 4200);
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_token_is_401() {
    // Flip one payload character to another base64url character: still decodable, no
    // longer the signed bytes.
    let good = token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload = parts[1].as_bytes().to_vec();
    let at = payload.len() / 2;
    payload[at] = if payload[at] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(payload).unwrap(),
        parts[2]
    );
    assert_ne!(tampered, good);
    assert_invalid_token(&tampered).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_signed_with_another_key_is_401() {
    assert_invalid_token(&sign_with(
        &claims("alice"),
        "another-secret-that-is-32-bytes-long!!",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_alg_none_token_is_401() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    assert_invalid_token(&format!("{header}.{payload}.")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_from_another_issuer_is_401() {
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_another_audience_is_401() {
    let mut c = claims("alice");
    c["aud"] = json!("another-service");
    assert_invalid_token(&sign_with(&c, SECRET)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_api_key_is_401() {
    let s = setup("");
    let r = send(
        client()
            .post(s.url())
            .header("x-api-key", "bypass-test-api-key-0123456788")
            .header("content-type", "application/json")
            .body(call(1, "echo")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), UNAUTHENTICATED);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    s.assert_nothing_forwarded();
}

// =======================================================================================
// Sessions

/// Answers `initialize` with session `s-1`, everything else with an empty result.
fn session_upstream(req: &RawRequest) -> Reply {
    match req.rpc_method().as_deref() {
        Some("initialize") => json_reply_with(
            &[("mcp-session-id", "s-1")],
            r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}"#,
        ),
        _ => ok_reply(req),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_is_bound_to_the_principal_that_created_it() {
    let s = setup_with(ECHO_ONLY, "", session_upstream);
    let r = post(s.url(), initialize(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("mcp-session-id").as_deref(), Some("s-1"));

    // Another principal presenting alice's session id: refused, whatever the method.
    let r = post_as(
        s.url(),
        "mallory",
        &[("mcp-session-id", "s-1")],
        call(2, "echo"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), FORBIDDEN);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = send(
            client()
                .request(method.clone(), s.url())
                .header("authorization", bearer("mallory"))
                .header("accept", "text/event-stream")
                .header("mcp-session-id", "s-1"),
        )
        .await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
    }
    assert_eq!(
        s.up.methods(),
        ["initialize"],
        "mallory's requests reached it"
    );

    // alice herself carries on.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        call(3, "echo"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.up.received();
    assert_eq!(s.up.methods(), ["initialize", "tools/call"]);
    assert_eq!(got[1].header("mcp-session-id").as_deref(), Some("s-1"));
    assert_eq!(got[1].headers("x-mcp-user"), ["alice"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_session_is_404() {
    let s = setup_with(ECHO_ONLY, "", session_upstream);
    let r = post(s.url(), initialize(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-2")],
        call(2, "echo"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.code(), INVALID_REQUEST);
    assert_eq!(s.up.methods(), ["initialize"]);
}

// =======================================================================================
// Responses: list results are filtered however they arrive, or withheld

#[tokio::test(flavor = "multi_thread")]
async fn sse_list_result_split_into_many_pieces_is_filtered() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#;
        let result_event = format!("id: ev-2\r\nevent: message\r\ndata: {TOOLS_RESULT}\r\n\r\n");
        // Several events in the first piece; then the result cut every 9 bytes, which
        // splits tool names, and a split between the `\r` and `\n` of a line end.
        let mut pieces = vec![format!(
            ": keep-alive\r\n\r\nid: ev-1\r\ndata: {progress}\r\n\r\nretry: 1000\r\n\r\n"
        )];
        let bytes = result_event.as_bytes();
        let cr = bytes.len() - 3; // "...}\r" | "\n\r\n"
        pieces.extend(
            bytes[..cr]
                .chunks(9)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
        pieces.push(String::from_utf8(bytes[cr..].to_vec()).unwrap());
        pieces.push(": bye\r\n\r\n".to_owned());
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        sse_reply(&pieces)
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_no_hidden_tool(&text);
    assert_eq!(listed_names(&text), ["echo"]);
    let data = sse_data(&text);
    let result: Value =
        serde_json::from_str(data.iter().find(|d| d.contains("tools")).unwrap()).unwrap();
    assert_eq!(result["result"]["nextCursor"], "cursor-2");
    assert!(text.contains("notifications/progress"), "{text}");
    assert!(
        text.contains(": keep-alive") && text.contains("id: ev-2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_list_result_is_filtered_and_keeps_its_cursor() {
    let s = setup_with(ECHO_ONLY, "", |_| json_reply(TOOLS_RESULT));
    let r = post(s.url(), tools_list(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    assert_eq!(r.json()["result"]["nextCursor"], "cursor-2");
}

/// A list answer the proxy cannot read: a JSON-RPC error, no tool name.
fn assert_withheld(r: &Resp) {
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.code(), UPSTREAM_UNFILTERABLE, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert!(!r.text().contains("echo"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_list_answer_is_withheld() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        reply(
            "200 OK",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &gzip_stored(TOOLS_RESULT.as_bytes()),
        )
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_withheld(&r);
    assert!(r.header("content-encoding").is_none());
    // It asked for an uncompressed answer in the first place.
    assert_eq!(
        s.up.received()[0].header("accept-encoding").as_deref(),
        Some("identity")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_answer_with_duplicate_keys_is_withheld() {
    for answer in [
        // serde_json would filter the second `result`; a first-wins client reads the first.
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_records"},{"name":"secret_tool"}]},"result":{"tools":[]}}"#,
        // last-wins sees the permitted `echo`; first-wins sees `delete_records`.
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_records","name":"echo"}]}}"#,
    ] {
        let s = setup_with(ECHO_ONLY, "", move |_| json_reply(answer));
        let r = post(s.url(), tools_list(1)).await;
        assert_eq!(r.code(), UPSTREAM_UNFILTERABLE, "{answer}: {}", r.text());
        assert_no_hidden_tool(&r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_answer_as_text_plain_is_withheld() {
    let s = setup_with(ECHO_ONLY, "", |_| {
        reply(
            "200 OK",
            &[("content-type", "text/plain")],
            TOOLS_RESULT.as_bytes(),
        )
    });
    let r = post(s.url(), tools_list(1)).await;
    assert_withheld(&r);
}

/// Session `s-1` from `initialize`; a `tools/list` POST answered by `post_stream`; a GET
/// answered by `get_stream`.
fn resumable_upstream(
    post_stream: &'static [&'static str],
    get_reply: fn() -> Reply,
) -> impl Fn(&RawRequest) -> Reply + Send + Sync + 'static {
    move |req: &RawRequest| match (req.method(), req.rpc_method().as_deref()) {
        ("GET", _) => get_reply(),
        (_, Some("tools/list")) => sse_reply_with(&[("mcp-session-id", "s-1")], post_stream),
        _ => session_upstream(req),
    }
}

async fn get_stream(s: &Setup, last_event_id: &str) -> Resp {
    send(
        client()
            .get(s.url())
            .header("authorization", bearer("alice"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", "s-1")
            .header("last-event-id", last_event_id),
    )
    .await
}

const PROGRESS_EVENT: &str = "id: ev-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\n\n";

fn result_event() -> String {
    format!("id: ev-2\ndata: {TOOLS_RESULT}\n\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn list_result_on_a_resumed_get_stream_is_filtered() {
    let s = setup_with(
        ECHO_ONLY,
        "",
        resumable_upstream(&[PROGRESS_EVENT], || {
            let event = result_event();
            sse_reply(&[&event[..40], &event[40..]])
        }),
    );
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    // The POST's stream ends before the result.
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("tools"), "{}", r.text());
    // The result arrives on the resumed stream.
    let r = get_stream(&s, "ev-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    let get = &s.up.received()[2];
    assert_eq!(get.method(), "GET");
    assert_eq!(get.header("last-event-id").as_deref(), Some("ev-1"));
}

/// Fails against the current proxy: `SessionTable::take_pending` forgets a list id once
/// its answer is filtered, so the replayed answer passes through unfiltered.
#[tokio::test(flavor = "multi_thread")]
async fn list_result_replayed_on_a_resumed_get_stream_is_filtered_again() {
    // The client chooses `Last-Event-ID`: resuming from before the result event makes a
    // resumable server replay a list result the proxy already filtered once.
    let post_stream = format!("{PROGRESS_EVENT}{}", result_event());
    let s = setup_with(ECHO_ONLY, "", move |req: &RawRequest| {
        match (req.method(), req.rpc_method().as_deref()) {
            ("GET", _) => sse_reply(&[&result_event()]),
            (_, Some("tools/list")) => sse_reply(&[&post_stream]),
            _ => session_upstream(req),
        }
    });
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(listed_names(&r.text()), ["echo"]);
    let r = get_stream(&s, "ev-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_hidden_tool(&r.text());
}

/// While list requests of the session are outstanding, a GET answer the proxy cannot
/// read must be withheld, as it is on a POST. Fails against the current proxy:
/// `response_filter` only filters a GET answer whose type is `text/event-stream`.
#[tokio::test(flavor = "multi_thread")]
async fn list_result_on_a_get_stream_that_is_not_sse_is_withheld() {
    let s = setup_with(
        ECHO_ONLY,
        "",
        resumable_upstream(&[PROGRESS_EVENT], || {
            reply(
                "200 OK",
                &[("content-type", "text/plain")],
                result_event().as_bytes(),
            )
        }),
    );
    assert_eq!(post(s.url(), initialize(1)).await.status, 200);
    let r = post_as(
        s.url(),
        "alice",
        &[("mcp-session-id", "s-1")],
        tools_list(1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_stream(&s, "ev-1").await;
    assert_no_hidden_tool(&r.text());
}
