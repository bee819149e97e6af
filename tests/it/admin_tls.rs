//! The admin listener over HTTPS (`[admin.tls]`) through the real binary: Prometheus
//! scrapes `/metrics` with its client certificate, a scrape without one is refused (401),
//! the probes stay open without one, another CA's certificate fails the handshake, the
//! certificate rotates by replacing its files, and a file that does not load stops the
//! start naming the key and the file.

use std::process::{Command, Stdio};

use crate::support::certs::{Leaf, TestCa};
use crate::support::http::send;
use crate::support::tokens::AUTH_TOML;
use crate::support::wait;
use crate::support::warden::{copy_dir, example_policies, free_port, replace_file, Warden};
use crate::tls::{served_leaf, upstream, wait_for_served_leaf, Pki};

/// `[admin.tls]` serving `leaf` (written into the PKI's directory as `admin.crt`), client
/// certificates `mode`.
fn admin_tls(pki: &Pki, leaf: &Leaf, mode: &str) -> (String, std::path::PathBuf) {
    let (cert, key) = leaf.write(pki.dir.path(), "admin");
    let toml = format!(
        "[admin.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n[admin.tls.client_auth]\nmode = \"{mode}\"\nca_files = [\"{}\"]\n",
        cert.display(),
        key.display(),
        pki.ca_file.display()
    );
    (toml, cert)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_metrics_over_https_with_its_client_certificate() {
    let pki = Pki::new();
    let up = upstream().await;
    let first = pki.ca.server("localhost");
    let (toml, cert_file) = admin_tls(&pki, &first, "required");
    let warden = Warden::start(&up.url, &example_policies(), &format!("{AUTH_TOML}{toml}"));
    let url = |path: &str| format!("https://localhost:{}{path}", warden.admin.port());

    let prometheus = pki
        .ca
        .spiffe("spiffe://example.org/ns/monitoring/sa/prometheus");
    let scrape = send(pki.client(Some(&prometheus)).get(url("/metrics"))).await;
    assert_eq!(scrape.status, 200, "{}", scrape.text());
    assert!(
        scrape
            .text()
            .contains("mcp_warden_tls_cert_expiry_timestamp_seconds{listener=\"admin\"}"),
        "{}",
        scrape.text()
    );

    // Without a client certificate: refused; the probes stay open (the kubelet has none).
    let refused = send(pki.client(None).get(url("/metrics"))).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(
        !refused.text().contains("mcp_warden_"),
        "{}",
        refused.text()
    );
    let health = send(pki.client(None).get(url("/healthz"))).await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    // `/readyz` turns 200 once the proxy listener is up, which the start does not wait
    // for here (the admin listener is HTTPS): wait for it, with no certificate.
    let client = pki.client(None);
    let handle = tokio::runtime::Handle::current();
    let readyz = url("/readyz");
    tokio::task::spawn_blocking(move || {
        wait::until("/readyz 200 without a client certificate", || {
            let answer = handle.block_on(send(client.get(readyz.as_str())));
            (answer.status == 200).then_some(())
        })
    })
    .await
    .unwrap();

    // Another CA's certificate fails the handshake; plain HTTP is not served.
    let stranger = TestCa::named("another CA").spiffe("spiffe://example.org/prometheus");
    let failed = pki
        .client(Some(&stranger))
        .get(url("/metrics"))
        .send()
        .await;
    assert!(failed.is_err(), "another CA's certificate got {failed:?}");
    let plain = crate::support::http::client()
        .get(warden.admin_url("/metrics"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP got {plain:?}");

    // Rotation: a bad file is rejected, then a renewed certificate is served, no restart.
    assert_eq!(served_leaf(&pki.ca, warden.admin).await, first.der);
    replace_file(&cert_file, "not a certificate");
    warden.wait_for_log("tls: rejected a changed file", wait::HANG);
    assert_eq!(served_leaf(&pki.ca, warden.admin).await, first.der);
    let renewed = pki.ca.server("localhost");
    replace_file(&pki.dir.path().join("admin.key"), &renewed.key);
    replace_file(&cert_file, &renewed.cert);
    wait_for_served_leaf(
        &pki.ca,
        warden.admin,
        renewed.der.clone(),
        "the renewed admin certificate",
    )
    .await;
    let scrape = send(pki.client(Some(&prometheus)).get(url("/metrics"))).await;
    let text = scrape.text();
    assert!(
        text.contains("mcp_warden_tls_reloads_total{listener=\"admin\",result=\"failure\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mcp_warden_tls_reloads_total{listener=\"admin\",result=\"success\"}"),
        "{text}"
    );
}

#[test]
fn an_admin_certificate_that_does_not_load_stops_the_start_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example_policies(), &dir.path().join("policies"));
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\nupstream = \"http://127.0.0.1:1/mcp\"\n[policy]\ndir = \"policies\"\n{AUTH_TOML}\n\
             [admin]\nlisten = \"127.0.0.1:{}\"\n[admin.tls]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("MCP_WARDEN__ADMIN__LISTEN")
        .env_remove("MCP_WARDEN__LISTEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(stderr.contains("`admin.tls.cert_file`"), "{stderr}");
    assert!(stderr.contains("missing.crt: cannot read"), "{stderr}");
}
