//! `tls/`: the listener's TLS handshake with a client certificate (mTLS, the listener's own
//! resolver and client verifier from `[tls]`), in memory: a full handshake against one
//! resumed from the client's session cache. The difference is what a client that keeps
//! (or resumes) connections saves per connection.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion};
use mcp_warden::tls::{ServerTls, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, ServerConnection};

#[path = "../../tests/support/certs.rs"]
mod certs;

/// Move every pending TLS record from `from` to `to`.
fn transfer(
    from: &mut rustls::ConnectionCommon<impl Sized>,
    to: &mut rustls::ConnectionCommon<impl Sized>,
) -> bool {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    if buf.is_empty() {
        return false;
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
        to.process_new_packets().unwrap();
    }
    true
}

fn handshake(
    client_config: &Arc<rustls::ClientConfig>,
    server_config: &Arc<rustls::ServerConfig>,
) -> Option<rustls::HandshakeKind> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(Arc::clone(client_config), name).unwrap();
    let mut server = ServerConnection::new(Arc::clone(server_config)).unwrap();
    loop {
        let a = transfer(&mut client, &mut server);
        let b = transfer(&mut server, &mut client);
        if !a && !b && !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    assert!(
        server.peer_certificates().is_some(),
        "the client certificate was verified"
    );
    client.handshake_kind()
}

/// Benchmarks of the group.
pub fn benches(c: &mut Criterion) {
    mcp_warden::tls::install_default_provider();
    let ca = certs::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    ca.server("localhost").write(dir.path(), "server");
    ca.write(dir.path(), "ca.pem");
    let cfg: TlsConfig = toml::from_str(
        "cert_file = \"server.crt\"\nkey_file = \"server.key\"\n[client_auth]\nmode = \"required\"\nca_files = [\"ca.pem\"]",
    )
    .unwrap();
    let tls = ServerTls::load(&cfg, dir.path()).unwrap();
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(mcp_warden::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(tls.verifier.clone().unwrap())
            .with_cert_resolver(tls.resolver.clone()),
    );
    let agent = ca.spiffe("spiffe://example.org/agent");
    let client_config = |resume: bool| {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(mcp_warden::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(agent.der.clone())],
                PrivateKeyDer::from_pem_slice(agent.key.as_bytes()).unwrap(),
            )
            .unwrap();
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Arc::new(config)
    };
    let full = client_config(false);
    let resumed = client_config(true);
    assert_eq!(
        handshake(&full, &server_config),
        Some(rustls::HandshakeKind::Full)
    );
    handshake(&resumed, &server_config); // fills the client's session cache
    assert_eq!(
        handshake(&resumed, &server_config),
        Some(rustls::HandshakeKind::Resumed)
    );
    let mut group = c.benchmark_group("tls");
    group.bench_function(BenchmarkId::new("mtls_handshake", "full"), |b| {
        b.iter(|| handshake(&full, &server_config))
    });
    group.bench_function(BenchmarkId::new("mtls_handshake", "resumed"), |b| {
        b.iter(|| handshake(&resumed, &server_config))
    });
    group.finish();
}
