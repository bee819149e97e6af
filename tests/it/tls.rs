//! The proxy as a TLS edge, through the real binary with `rcgen` certificates: HTTPS with
//! the rmcp client, mTLS `required` (no certificate → 401, another CA → handshake failure,
//! two URI SANs → 401), a SPIFFE certificate as the principal Cedar and Biscuit see, a
//! certificate as the agent of a token's user, spoofed `X-MCP-Client-Cert-*` headers,
//! HTTP/2 by ALPN, and certificate rotation while a client keeps calling.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::support::audit::wait_audit;
use crate::support::biscuit::{example_policies as biscuit_policies, Keys, ENGINE_TOML};
use crate::support::certs::{Leaf, TestCa};
use crate::support::client::{args, call_tool, list_tool_names, ClientBuilder, Revision};
use crate::support::http::send;
use crate::support::tls_front::TlsFront;
use crate::support::tokens::{claims, sign, token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, Upstream, UpstreamBuilder};
use crate::support::wait;
use crate::support::warden::{example_policies, replace_file, Warden};

const UNAUTHENTICATED: i64 = -32001;
const FORBIDDEN: i64 = -32003;
const AGENT: &str = "spiffe://example.org/ns/prod/sa/agent";
const STRANGER: &str = "spiffe://example.org/ns/prod/sa/stranger";
const AUDIT_TOML: &str = "[audit]\nsink = \"file\"\npath = \"audit.log\"\n";

/// A CA, the proxy's server certificate signed by it, in a directory of their own.
pub(crate) struct Pki {
    pub(crate) ca: TestCa,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) ca_file: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.server("localhost").write(dir.path(), "server");
        let ca_file = ca.write(dir.path(), "ca.pem");
        Pki {
            ca,
            dir,
            cert,
            key,
            ca_file,
        }
    }

    /// `[tls]` with `[tls.client_auth] mode = …` trusting this CA for clients.
    pub(crate) fn toml(&self, mode: &str) -> String {
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n[tls.client_auth]\nmode = \"{mode}\"\nca_files = [\"{}\"]\n",
            self.cert.display(),
            self.key.display(),
            self.ca_file.display()
        )
    }

    /// A reqwest client trusting the CA, presenting `leaf` if given.
    pub(crate) fn client(&self, leaf: Option<&Leaf>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca.pem.as_bytes()).unwrap()]);
        if let Some(leaf) = leaf {
            b = b.identity(reqwest::Identity::from_pem(leaf.identity_pem().as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

pub(crate) fn https(warden: &Warden) -> String {
    warden.url.replacen("http://", "https://", 1)
}

pub(crate) async fn upstream() -> Upstream {
    UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> crate::support::http::Resp {
    send(
        client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(body),
    )
    .await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_a_filtered_tools_list_to_the_rmcp_client_over_http2() {
    let pki = Pki::new();
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}{}", pki.toml("off")),
    );
    let client = ClientBuilder::new(https(&warden), Revision::legacy())
        .bearer(token("pat", &[], "mcp:tools"))
        .http_client(pki.client(None))
        .connect()
        .await;
    assert_eq!(
        sorted(list_tool_names(&client).await),
        ["echo", "get_weather"]
    );
    let err = call_tool(&client, "whoami", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");

    // ALPN picks HTTP/2; a denial still needs the whole body, and is decided.
    let http = pki.client(None);
    let response = http
        .post(https(&warden))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token("pat", &[], "mcp:tools"))
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], FORBIDDEN, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    // Plain HTTP on the TLS port is not served.
    assert!(reqwest::Client::new()
        .get(&warden.url)
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_required_refuses_no_certificate_with_401_and_other_cas_at_the_handshake() {
    let pki = Pki::new();
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}{}{AUDIT_TOML}", pki.toml("required")),
    );
    let url = https(&warden);
    // No certificate, even with a valid token: 401, a JSON-RPC error and an audit line.
    let resp = send(
        pki.client(None)
            .post(&url)
            .bearer_auth(token("pat", &[], "mcp:tools"))
            .header("content-type", "application/json")
            .json(&initialize_body()),
    )
    .await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.code(), UNAUTHENTICATED);
    assert_eq!(
        resp.json()["error"]["message"],
        "unauthenticated: a client certificate is required"
    );
    let line = wait_audit(&warden.dir.path().join("audit.log"), |l| {
        l["reason"] == "client_cert_required"
    });
    assert_eq!(line["decision"], "deny", "{line}");

    // A certificate of another CA: the handshake fails, nothing reaches HTTP.
    let other = TestCa::named("another CA");
    let stranger = other.spiffe(AGENT);
    let failed = pki
        .client(Some(&stranger))
        .post(&url)
        .json(&initialize_body())
        .send()
        .await;
    assert!(failed.is_err(), "another CA's certificate got {failed:?}");

    // Two URI SANs (not an X.509-SVID): 401 naming why.
    let two = pki
        .ca
        .client("two", &[AGENT, "spiffe://example.org/other"], &[]);
    let resp = post(&pki.client(Some(&two)), &url, &initialize_body()).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.json()["error"]["message"],
        "unauthenticated: client certificate has more than one URI SAN"
    );

    // A valid certificate with the token: through.
    let agent = pki.ca.spiffe(AGENT);
    let resp = send(
        pki.client(Some(&agent))
            .post(&url)
            .bearer_auth(token("pat", &[], "mcp:tools"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body()),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        up.seen.requests().len(),
        1,
        "only the admitted request reached the server"
    );
}

/// The Cedar policy of the SPIFFE tests: the agent workload may call `echo`.
const SPIFFE_CEDAR: &str = r#"
@id("agent-workload-echo")
permit (principal, action == Action::"call_tool", resource == Tool::"echo")
when {
  context has mtls &&
  context.mtls.spiffe_id == "spiffe://example.org/ns/prod/sa/agent"
};
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_spiffe_certificate_is_the_caller_cedar_sees_and_the_headers_name() {
    let pki = Pki::new();
    let up = upstream().await;
    let warden = Warden::start_with_policy(
        &up.url,
        SPIFFE_CEDAR,
        &format!(
            "{}[auth.mtls]\nsubject = \"spiffe_id\"\n{AUDIT_TOML}",
            pki.toml("required")
        ),
    );
    let agent = pki.ca.client("agent", &[AGENT], &["agent.prod.svc"]);
    let client = ClientBuilder::new(https(&warden), Revision::legacy())
        .header("x-mcp-client-cert-spiffe-id", "spiffe://evil.example/admin")
        .header("x-mcp-user", "root")
        .http_client(pki.client(Some(&agent)))
        .connect()
        .await;
    call_tool(&client, "echo", args([("text", json!("hi"))]))
        .await
        .unwrap();
    let call = up.seen.requests_for("tools/call").pop().unwrap();
    assert_eq!(call.header("x-mcp-user"), Some(AGENT));
    assert_eq!(call.header("x-mcp-auth-method"), Some("mtls"));
    assert_eq!(
        call.headers["x-mcp-client-cert-spiffe-id"],
        [AGENT],
        "the spoofed header is gone, the real one set"
    );
    assert_eq!(call.header("x-mcp-client-cert-dns"), Some("agent.prod.svc"));
    assert_eq!(call.header("x-mcp-client-cert-subject"), Some("agent"));
    let fingerprint = call.header("x-mcp-client-cert-fingerprint").unwrap();
    assert_eq!(fingerprint.len(), 64);
    let line = wait_audit(&warden.dir.path().join("audit.log"), |l| {
        l["event"] == "decision" && l["tool"] == "echo"
    });
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["principal"]["user"], AGENT, "{line}");
    assert_eq!(line["principal"]["auth_method"], "mtls", "{line}");
    assert_eq!(line["policy_ids"], json!(["agent-workload-echo"]), "{line}");

    // Another workload of the same CA is authenticated, and denied by the policy.
    let stranger = pki.ca.spiffe(STRANGER);
    let other = ClientBuilder::new(https(&warden), Revision::legacy())
        .http_client(pki.client(Some(&stranger)))
        .connect()
        .await;
    assert!(list_tool_names(&other).await.is_empty(), "nothing listed");
    call_tool(&other, "echo", args([("text", json!("hi"))]))
        .await
        .unwrap_err();
    assert_eq!(up.seen.tool_calls(), ["echo"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_is_the_agent_of_the_tokens_user() {
    let pki = Pki::new();
    let up = upstream().await;
    let cedar = r#"
@id("alice-through-the-agent")
permit (principal == User::"alice", action == Action::"call_tool", resource == Tool::"echo")
when { context has agent && context.agent == "spiffe://example.org/ns/prod/sa/agent" };
"#;
    let warden = Warden::start_with_policy(
        &up.url,
        cedar,
        &format!("{AUTH_TOML}{}[auth.mtls]\n", pki.toml("optional")),
    );
    let alice = || token("alice", &[], "");
    let agent = pki.ca.spiffe(AGENT);
    let through_agent = ClientBuilder::new(https(&warden), Revision::legacy())
        .bearer(alice())
        .http_client(pki.client(Some(&agent)))
        .connect()
        .await;
    call_tool(&through_agent, "echo", args([("text", json!("x"))]))
        .await
        .unwrap();
    let call = up.seen.requests_for("tools/call").pop().unwrap();
    assert_eq!(call.header("x-mcp-user"), Some("alice"));
    assert_eq!(call.header("x-mcp-agent"), Some(AGENT));
    assert_eq!(call.header("x-mcp-auth-method"), Some("jwt"));
    assert_eq!(call.header("x-mcp-client-cert-spiffe-id"), Some(AGENT));

    // The same token without the workload certificate (optional mode): denied.
    let direct = ClientBuilder::new(https(&warden), Revision::legacy())
        .bearer(alice())
        .header("x-mcp-client-cert-spiffe-id", AGENT)
        .http_client(pki.client(None))
        .connect()
        .await;
    call_tool(&direct, "echo", args([("text", json!("x"))]))
        .await
        .unwrap_err();
    assert!(
        up.seen
            .requests()
            .iter()
            .filter(|r| r.header("x-mcp-agent").is_none())
            .all(|r| !r.has_header("x-mcp-client-cert-spiffe-id")),
        "a client-sent certificate header never reaches the server"
    );

    // A token bound to the agent's certificate (RFC 8705) works only with it.
    let mut bound = claims("alice", &[], "");
    bound["cnf"] = json!({"x5t#S256": x5t_s256(&agent.der)});
    let bound = sign(&bound);
    let resp = post_with(&pki.client(Some(&agent)), &https(&warden), &bound).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let other = pki.ca.spiffe(STRANGER);
    for client in [pki.client(Some(&other)), pki.client(None)] {
        let resp = post_with(&client, &https(&warden), &bound).await;
        assert_eq!(resp.status, 401, "{}", resp.text());
        assert_eq!(
            resp.json()["error"]["message"],
            "unauthenticated: token is bound to another client certificate"
        );
    }
}

async fn post_with(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
) -> crate::support::http::Resp {
    send(
        client
            .post(url)
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body()),
    )
    .await
}

fn x5t_s256(der: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

#[tokio::test(flavor = "multi_thread")]
async fn biscuit_tokens_can_require_the_workload_certificate() {
    let pki = Pki::new();
    let keys = Keys::new();
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &biscuit_policies(),
        &format!("{ENGINE_TOML}{}{}", keys.auth_toml(), pki.toml("optional")),
    );
    let check = format!("check if mtls_client(\"{AGENT}\")");
    let token = keys.mint(
        "root1",
        1,
        &[r#"user("alice")"#, r#"right("tool", "echo")"#],
        &["--check", &check],
    );
    let agent = pki.ca.spiffe(AGENT);
    let client = ClientBuilder::new(https(&warden), Revision::Modern)
        .bearer(&token)
        .http_client(pki.client(Some(&agent)))
        .connect()
        .await;
    // (listing first: the proxy learns `echo`'s annotations from the server's list)
    assert_eq!(list_tool_names(&client).await, ["echo"]);
    call_tool(&client, "echo", args([("text", json!("x"))]))
        .await
        .unwrap();
    // The token's check holds for every message: another workload, or none, is refused
    // from the first one on.
    for leaf in [Some(pki.ca.spiffe(STRANGER)), None] {
        let connected = ClientBuilder::new(https(&warden), Revision::Modern)
            .bearer(&token)
            .http_client(pki.client(leaf.as_ref()))
            .try_connect()
            .await;
        if let Ok(client) = connected {
            call_tool(&client, "echo", args([("text", json!("x"))]))
                .await
                .unwrap_err();
        }
    }
    assert_eq!(up.seen.tool_calls(), ["echo"]);
}

/// The leaf certificate a fresh TLS handshake with `addr` gets; `None` if it fails.
async fn try_served_leaf(
    config: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> Option<Vec<u8>> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].to_vec())
}

/// The leaf certificate a fresh TLS handshake with the proxy gets.
pub(crate) async fn served_leaf(ca: &TestCa, addr: std::net::SocketAddr) -> Vec<u8> {
    try_served_leaf(ca.client_config(), addr)
        .await
        .expect("a TLS handshake with the proxy")
}

/// Waits until fresh handshakes with `addr` get the leaf `want` (a rotation landed).
pub(crate) async fn wait_for_served_leaf(
    ca: &TestCa,
    addr: std::net::SocketAddr,
    want: Vec<u8>,
    what: &'static str,
) {
    let config = ca.client_config();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        wait::until(what, || {
            let got = handle.block_on(try_served_leaf(Arc::clone(&config), addr));
            (got.as_deref() == Some(want.as_slice())).then_some(())
        })
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_rotates_while_a_client_keeps_calling() {
    let pki = Pki::new();
    let up = upstream().await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}{}", pki.toml("off")),
    );
    let first = served_leaf(&pki.ca, warden.addr).await;

    // A client calling in a loop, a new connection each time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca.pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let caller = {
        let (stop, done, url) = (Arc::clone(&stop), Arc::clone(&done), https(&warden));
        let bearer = token("pat", &[], "mcp:tools");
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let resp = post_with(&http, &url, &bearer).await;
                if resp.status != 200 {
                    failures.push(resp.status);
                }
                done.fetch_add(1, Ordering::AcqRel);
            }
            failures
        })
    };
    let d = Arc::clone(&done);
    tokio::task::spawn_blocking(move || {
        wait::until("calls before", || {
            (d.load(Ordering::Acquire) >= 3).then_some(())
        })
    })
    .await
    .unwrap();

    // A bad certificate file is refused; the last good one keeps serving.
    replace_file(&pki.cert, "not a certificate");
    warden.wait_for_log("tls: rejected a changed file", wait::HANG);
    assert_eq!(served_leaf(&pki.ca, warden.addr).await, first);

    let renewed = pki.ca.server("localhost");
    replace_file(&pki.key, &renewed.key);
    replace_file(&pki.cert, &renewed.cert);
    wait_for_served_leaf(
        &pki.ca,
        warden.addr,
        renewed.der.clone(),
        "the renewed certificate",
    )
    .await;
    let before = done.load(Ordering::Acquire);
    let d = Arc::clone(&done);
    tokio::task::spawn_blocking(move || {
        wait::until("calls after", || {
            (d.load(Ordering::Acquire) >= before + 3).then_some(())
        })
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Release);
    let failures = caller.await.unwrap();
    assert!(
        failures.is_empty(),
        "failed calls during rotation: {failures:?}"
    );

    let metrics = warden.metrics().await;
    assert!(
        metrics.contains("mcp_warden_tls_reloads_total{listener=\"proxy\",result=\"failure\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_warden_tls_reloads_total{listener=\"proxy\",result=\"success\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("mcp_warden_tls_cert_expiry_timestamp_seconds{listener=\"proxy\"}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_is_verified_and_can_require_the_proxys_certificate() {
    let pki = Pki::new();
    let up = upstream().await;
    let server = pki.ca.server("upstream.internal");
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = pki.ca.write(dir.path(), "upstream-ca.pem");
    let tls_upstream = |front: &TlsFront| format!("https://127.0.0.1:{}/mcp", front.addr.port());

    // Verified against the CA bundle, by the configured server name.
    let front = TlsFront::start(up.addr, &server, None).await;
    let warden = Warden::start(
        &tls_upstream(&front),
        &example_policies(),
        &format!(
            "{AUTH_TOML}[upstream_tls]\nca_files = [\"{}\"]\nserver_name = \"upstream.internal\"\n",
            upstream_ca.display()
        ),
    );
    let client = ClientBuilder::new(&warden.url, Revision::legacy())
        .bearer(token("pat", &[], "mcp:tools"))
        .connect()
        .await;
    assert_eq!(
        sorted(list_tool_names(&client).await),
        ["echo", "get_weather"]
    );
    drop(warden);

    // Another name than the certificate's: refused (502), never sent.
    let warden = Warden::start(
        &tls_upstream(&front),
        &example_policies(),
        &format!(
            "{AUTH_TOML}[upstream_tls]\nca_files = [\"{}\"]\nserver_name = \"evil.internal\"\n",
            upstream_ca.display()
        ),
    );
    let resp = post_with(
        &crate::support::http::client(),
        &warden.url,
        &token("pat", &[], ""),
    )
    .await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    drop(warden);

    // The upstream requires a client certificate: the proxy presents its own.
    let proxy_leaf = pki.ca.spiffe("spiffe://example.org/mcp-warden");
    let (cert, key) = proxy_leaf.write(dir.path(), "proxy-client");
    let mtls_front = TlsFront::start(up.addr, &server, Some(&pki.ca)).await;
    let warden = Warden::start(
        &tls_upstream(&mtls_front),
        &example_policies(),
        &format!(
            "{AUTH_TOML}[upstream_tls]\nca_files = [\"{}\"]\nserver_name = \"upstream.internal\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            upstream_ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let resp = post_with(
        &crate::support::http::client(),
        &warden.url,
        &token("pat", &[], ""),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let clients = mtls_front.clients.lock().unwrap().clone();
    assert_eq!(clients, [Some(proxy_leaf.der.clone())]);
    drop(warden);

    // Without the client certificate that upstream refuses the proxy: 502.
    let warden = Warden::start(
        &tls_upstream(&mtls_front),
        &example_policies(),
        &format!(
            "{AUTH_TOML}[upstream_tls]\nca_files = [\"{}\"]\nserver_name = \"upstream.internal\"\n",
            upstream_ca.display()
        ),
    );
    let resp = post_with(
        &crate::support::http::client(),
        &warden.url,
        &token("pat", &[], ""),
    )
    .await;
    assert_eq!(resp.status, 502, "{}", resp.text());
}

/// `mcp-warden check` loads the TLS material as `run` does: good files pass, a
/// certificate file that holds no certificate fails the check naming its key, for the
/// listener's `[tls]` and the admin listener's `[admin.tls]` alike.
#[test]
fn check_loads_the_tls_files_and_names_the_bad_one() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let config = |tls: &str| {
        let path = dir.path().join("warden.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2/mcp\"\n\n[policy]\ndir = \"{}\"\n\n{AUTH_TOML}\n{tls}",
                example_policies().display()
            ),
        )
        .unwrap();
        path
    };
    let check = |path: &std::path::Path| {
        crate::support::warden::run_cli(&["check", "--config", path.to_str().unwrap()])
    };

    let (ok, stdout, stderr) = check(&config(&pki.toml("optional")));
    assert!(ok, "{stdout}{stderr}");

    let listener = pki.toml("optional").replace(
        &format!("cert_file = \"{}\"", pki.cert.display()),
        &format!("cert_file = \"{}\"", bad.display()),
    );
    let (ok, _, stderr) = check(&config(&listener));
    assert!(!ok, "a bad [tls] certificate passed the check");
    assert!(stderr.contains("`tls.cert_file`"), "{stderr}");
    assert!(stderr.contains("bad.pem"), "{stderr}");

    let admin = format!(
        "{}\n[admin.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.toml("optional"),
        bad.display(),
        pki.key.display()
    );
    let (ok, _, stderr) = check(&config(&admin));
    assert!(!ok, "a bad [admin.tls] certificate passed the check");
    assert!(stderr.contains("`admin.tls.cert_file`"), "{stderr}");
}
