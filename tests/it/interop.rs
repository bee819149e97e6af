//! Interop: the official Python MCP SDK (`mcp` from PyPI) through mcp-warden to the
//! official TypeScript test server `@modelcontextprotocol/server-everything`.

use crate::support::interop::{run_python_client, start_server_everything};
use crate::support::tokens::{token, AUTH_TOML};
use crate::support::warden::{example_policies, replace_file, Warden};

/// `get-env` is read-only in server-everything but dumps the server's environment: the
/// test policy forbids it for everyone, so it must vanish from the list and be refused.
const FORBID_GET_ENV: &str = r#"
@id("no-env-dump")
forbid (principal, action == Action::"call_tool", resource == Tool::"get-env");
"#;

fn warden_in_front_of(url: &str) -> Warden {
    let warden = Warden::start(url, &example_policies(), AUTH_TOML);
    let file = warden.policy_dir().join("interop.cedar");
    replace_file(&file, FORBID_GET_ENV);
    warden.signal("HUP");
    warden.wait_for_log("generation=2", crate::support::wait::HANG);
    warden
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_sees_a_filtered_list_and_policy_decisions() {
    let everything = start_server_everything();
    let warden = warden_in_front_of(&everything.url);
    let staff = token("sam", &["staff"], "mcp:tools");

    let report = run_python_client(
        &warden.url,
        &[
            "--bearer",
            &staff,
            "--call",
            "echo",
            "--args",
            r#"{"message": "through the proxy"}"#,
        ],
    )
    .await;
    let tools = report.tools().expect("tools listed");
    assert!(tools.iter().any(|t| t == "echo"), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t == "get-env"),
        "forbidden tool listed: {tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t == "toggle-simulated-logging"),
        "a tool that is not read-only is listed for staff: {tools:?}"
    );
    assert_eq!(report.call()["ok"], true, "{:?}", report.call());
    assert!(report.call().to_string().contains("through the proxy"));

    let denied = run_python_client(&warden.url, &["--bearer", &staff, "--call", "get-env"]).await;
    assert_eq!(
        denied.call_error_code(),
        Some(-32003),
        "{:?}",
        denied.call()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_without_a_token_is_refused() {
    let everything = start_server_everything();
    let warden = warden_in_front_of(&everything.url);
    let report = run_python_client(&warden.url, &["--call", "echo"]).await;
    assert!(
        report.tools().is_none(),
        "listed without a token: {:?}",
        report.json
    );
}

/// The Python SDK over TLS with a client certificate: the workload's SPIFFE ID is the
/// caller, and the example policy `spiffe-agent-echo` lets it call `echo`; without the
/// certificate the SDK gets the 401.
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_mtls_is_the_workload_its_certificate_names() {
    use crate::support::certs::TestCa;
    let everything = start_server_everything();
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server("localhost").write(dir.path(), "server");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (agent_cert, agent_key) = ca
        .spiffe("spiffe://example.org/agent")
        .write(dir.path(), "agent");
    let tls = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[tls.client_auth]\nmode = \"required\"\nca_files = [\"{}\"]\n[auth.mtls]\n",
        cert.display(),
        key.display(),
        ca_file.display()
    );
    let warden = Warden::start(
        &everything.url,
        &example_policies(),
        &format!("{AUTH_TOML}{tls}"),
    );
    let url = warden.url.replacen("http://", "https://", 1);
    let (ca_arg, cert_arg, key_arg) = (
        ca_file.display().to_string(),
        agent_cert.display().to_string(),
        agent_key.display().to_string(),
    );
    let report = run_python_client(
        &url,
        &[
            "--cacert",
            &ca_arg,
            "--cert",
            &cert_arg,
            "--key",
            &key_arg,
            "--call",
            "echo",
            "--args",
            r#"{"message": "over mTLS"}"#,
        ],
    )
    .await;
    let tools = report.tools().expect("tools listed");
    assert_eq!(tools, ["echo"], "only what the workload may call");
    assert_eq!(report.call()["ok"], true, "{:?}", report.call());
    assert!(report.call().to_string().contains("over mTLS"));

    let refused = run_python_client(&url, &["--cacert", &ca_arg, "--call", "echo"]).await;
    assert!(
        refused.tools().is_none(),
        "listed without a certificate: {:?}",
        refused.json
    );
}
