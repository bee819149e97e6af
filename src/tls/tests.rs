use super::*;
use crate::testing::wait_until;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../tests/support/certs.rs"]
mod certs;
use certs::TestCa;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn files_in(dir: &Path, cert: &str, key: &str) -> CertFiles {
    CertFiles {
        cert: write(dir, "tls.crt", cert),
        key: write(dir, "tls.key", key),
    }
}

fn leaf_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

#[test]
fn loads_a_chain_and_its_key() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("svc.example");
    let files = files_in(dir.path(), &format!("{cert}{}", ca.pem), &key);
    let loaded = load_certified_key(&files, &provider()).unwrap();
    assert_eq!(loaded.cert.len(), 2, "leaf and CA");
    assert_eq!(loaded.cert[0], leaf_der(&cert));
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_the_files() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = ca.leaf("a.example");
    let (_, other_key) = ca.leaf("b.example");
    let files = files_in(dir.path(), &cert, &other_key);
    let err = load_certified_key(&files, &provider()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("tls.key") && text.contains("tls.crt"),
        "{text}"
    );
}

#[test]
fn garbage_and_empty_files_are_refused() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("a.example");
    let files = files_in(dir.path(), "not pem at all", &key);
    assert!(matches!(
        load_certified_key(&files, &provider()),
        Err(TlsError::NoCertificate { .. })
    ));
    let files = files_in(dir.path(), &cert, "");
    let err = load_certified_key(&files, &provider()).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    assert!(err.to_string().contains("tls.key"), "{err}");
    let missing = CertFiles {
        cert: dir.path().join("nope.crt"),
        key: dir.path().join("nope.key"),
    };
    let err = load_certified_key(&missing, &provider()).unwrap_err();
    assert!(err.to_string().contains("nope.crt"), "{err}");
}

#[test]
fn a_bad_reload_keeps_the_last_good_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("a.example");
    let files = files_in(dir.path(), &cert, &key);
    let resolver = ReloadingCertResolver::load(files, provider()).unwrap();
    let before = resolver.current();

    std::fs::write(
        dir.path().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA",
    )
    .unwrap();
    assert!(resolver.reload().is_err());
    assert!(Arc::ptr_eq(&before, &resolver.current()), "last good kept");

    let (cert2, key2) = ca.leaf("a.example");
    files_in(dir.path(), &cert2, &key2);
    resolver.reload().unwrap();
    assert_eq!(resolver.current().cert[0], leaf_der(&cert2));
}

/// Lay out `dir` as the kubelet does for a Secret volume: the files are symlinks into
/// `..data`, itself a symlink to a timestamped directory that an update replaces whole.
fn kubelet_publish(dir: &Path, version: u32, cert: &str, key: &str) {
    let data = dir.join(format!("..v{version}"));
    std::fs::create_dir(&data).unwrap();
    write(&data, "tls.crt", cert);
    write(&data, "tls.key", key);
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    connector: &tokio_rustls::TlsConnector,
) -> (
    tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
    tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("svc.example").unwrap();
    let (server, client) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
    (server.unwrap(), client.unwrap())
}

fn peer_leaf(client: &tokio_rustls::client::TlsStream<tokio::io::DuplexStream>) -> Vec<u8> {
    client.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A Secret rotation by symlink swap: new handshakes get the new certificate, an
/// established connection keeps working.
#[tokio::test]
async fn kubelet_symlink_swap_rotates_new_handshakes_only() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = ca.leaf("svc.example");
    kubelet_publish(dir.path(), 1, &cert1, &key1);
    let files = CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let resolver = Arc::new(ReloadingCertResolver::load(files, provider()).unwrap());
    let _reloader = CertReloader::spawn(Arc::clone(&resolver)).unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config(Arc::clone(&resolver)).unwrap()));
    let connector = tokio_rustls::TlsConnector::from(ca.client_config());

    let (mut old_server, mut old_client) = handshake(&acceptor, &connector).await;
    assert_eq!(peer_leaf(&old_client), leaf_der(&cert1).to_vec());

    let (cert2, key2) = ca.leaf("svc.example");
    kubelet_publish(dir.path(), 2, &cert2, &key2);
    let want = leaf_der(&cert2);
    let r = Arc::clone(&resolver);
    tokio::task::spawn_blocking(move || wait_until("the reload", || r.current().cert[0] == want))
        .await
        .unwrap();

    let (_, new_client) = handshake(&acceptor, &connector).await;
    assert_eq!(peer_leaf(&new_client), leaf_der(&cert2).to_vec());

    // The connection made before the rotation still carries data both ways.
    old_client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    old_server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    old_server.write_all(b"pong").await.unwrap();
    old_client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

/// The listener's client verifier: a certificate of another CA fails the handshake, no
/// certificate is let through (refused at the HTTP layer in `required` mode), and a
/// changed CA bundle applies to the next handshake.
#[tokio::test]
async fn client_certificates_chain_to_the_current_ca_bundle() {
    let ca = TestCa::new();
    let other = TestCa::named("another CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("svc.example");
    let cfg: TlsConfig = toml::from_str(
        "cert_file = \"tls.crt\"\nkey_file = \"tls.key\"\n[client_auth]\nmode = \"required\"\nca_files = [\"ca.pem\"]",
    )
    .unwrap();
    files_in(dir.path(), &cert, &key);
    write(dir.path(), "ca.pem", &ca.pem);
    let st = ServerTls::load(&cfg, dir.path()).unwrap();
    let verifier = st.verifier.clone().unwrap();
    // The certificate request names the bundle's CA (so a client picks a certificate of it).
    let subject_of = |ca: &TestCa| {
        let der = leaf_der(&ca.pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.subject().as_raw().to_vec()
    };
    let hints = |v: &dyn rustls::server::danger::ClientCertVerifier| {
        v.root_hint_subjects()
            .iter()
            .map(|d| d.as_ref().to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(hints(verifier.as_ref()), [subject_of(&ca)]);
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(st.resolver.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connect = |client: Option<&certs::Leaf>| {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![leaf_der(&leaf.cert)],
                    PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let acceptor = acceptor.clone();
        async move {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let name = ServerName::try_from("svc.example").unwrap();
            // The server's side decides (in TLS 1.3 the client finishes first).
            let (server, _client) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
            server.map(|s| s.get_ref().1.peer_certificates().map(|c| c[0].to_vec()))
        }
    };
    let good = ca.spiffe("spiffe://example.org/agent");
    assert_eq!(connect(Some(&good)).await.unwrap(), Some(good.der.clone()));
    assert_eq!(
        connect(None).await.unwrap(),
        None,
        "no certificate: let through"
    );
    let stranger = other.spiffe("spiffe://example.org/agent");
    assert!(
        connect(Some(&stranger)).await.is_err(),
        "another CA: handshake fails"
    );

    // The bundle now names the other CA: its certificates pass, the first CA's fail.
    write(dir.path(), "ca.pem", &other.pem);
    assert!(st.reload().is_empty());
    assert_eq!(hints(verifier.as_ref()), [subject_of(&other)]);
    assert!(connect(Some(&stranger)).await.is_ok());
    assert!(connect(Some(&good)).await.is_err());
    // A broken bundle is refused, naming the file; the last good one stays.
    write(dir.path(), "ca.pem", "garbage");
    let errors = st.reload();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("ca.pem"), "{}", errors[0]);
    assert!(connect(Some(&stranger)).await.is_ok());
}
