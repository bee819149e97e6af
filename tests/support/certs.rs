//! Test certificates made with `rcgen`: a CA, the server and client leaves it signs
//! (DNS names, SPIFFE IDs, several URI SANs), as PEM text and files.
//!
//! Shared by the integration tests (`tests/it/`) and the `src/tls` unit tests, which
//! include this file by path; so it uses nothing but `rcgen`, `rustls` and `std`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A test CA and the leaves it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// The certificate, PEM.
    pub cert: String,
    /// The private key, PEM (PKCS#8).
    pub key: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl Leaf {
    /// Certificate then key, PEM (what `curl --cert` and `reqwest::Identity` read).
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.cert, self.key)
    }

    /// Write `<name>.crt` and `<name>.key` into `dir`; returns (cert path, key path).
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

impl TestCa {
    /// A fresh self-signed CA named `mcp-warden test CA`.
    pub fn new() -> Self {
        Self::named("mcp-warden test CA")
    }

    /// A fresh self-signed CA with this common name.
    pub fn named(cn: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// (certificate PEM, key PEM) of a server leaf for `dns`.
    pub fn leaf(&self, dns: &str) -> (String, String) {
        let leaf = self.server(dns);
        (leaf.cert, leaf.key)
    }

    /// A server leaf for `dns` (also valid for `127.0.0.1`).
    pub fn server(&self, dns: &str) -> Leaf {
        let mut params = rcgen::CertificateParams::new(vec![dns.to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        self.sign(params)
    }

    /// A client leaf with common name `cn`, these URI SANs and DNS SANs.
    pub fn client(&self, cn: &str, uris: &[&str], dns: &[&str]) -> Leaf {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        for name in dns {
            params
                .subject_alt_names
                .push(rcgen::SanType::DnsName((*name).try_into().unwrap()));
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A SPIFFE X.509-SVID for `id` (`spiffe://…`).
    pub fn spiffe(&self, id: &str) -> Leaf {
        self.client("workload", &[id], &[])
    }

    fn sign(&self, params: rcgen::CertificateParams) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Write the CA certificate as `<name>` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A rustls client configuration trusting this CA (ring provider), presenting `leaf`.
    pub fn client_config_with(&self, leaf: &Leaf) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = vec![CertificateDer::from(leaf.der.clone())];
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots())
        .with_client_auth_cert(chain, key)
        .unwrap()
    }

    fn roots(&self) -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    }

    /// A rustls client configuration trusting this CA (ring provider), no client cert.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }
}
