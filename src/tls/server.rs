//! The listener's TLS material as one reloadable unit: the certificate resolver
//! ([`ReloadingCertResolver`]) and, with `[tls.client_auth]`, a client-certificate
//! verifier over the CA bundle and CRLs ([`ReloadingClientVerifier`]), both behind an
//! `arc-swap` so a change of any file takes effect for the next handshake while
//! established connections keep what they negotiated.
//!
//! The verifier always *allows* a connection without a certificate
//! (`allow_unauthenticated`): in `required` mode the refusal happens at the HTTP layer, so
//! the client reads a 401 with a JSON-RPC error and the audit log gets a line, instead of
//! a bare TLS alert. A certificate that is presented but does not chain to the CA (or is
//! revoked by a CRL) fails the handshake.
//!
//! Root hints: the verifier sends no CA names in its CertificateRequest (they could not be
//! borrowed across a swap); clients configured with a certificate send it regardless.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::config::{ClientAuthMode, TlsConfig, TlsVersion};
use super::{provider, CertFiles, ReloadingCertResolver, TlsError};

/// Read a PEM CA bundle.
fn load_roots(files: &[PathBuf], roots: &mut RootCertStore) -> Result<(), TlsError> {
    for path in files {
        let pem = read(path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: path.clone(),
                what: "CA bundle",
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate { path: path.clone() });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: path.clone(),
                what: "CA certificate",
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Read CRLs: PEM (`X509 CRL` blocks), or one DER CRL per file.
fn load_crls(files: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for path in files {
        let bytes = read(path)?;
        let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem {
                path: path.clone(),
                what: "certificate revocation list",
                message: e.to_string(),
            })?;
        if pem.is_empty() {
            out.push(CertificateRevocationListDer::from(bytes));
        } else {
            out.extend(pem);
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Build a webpki client verifier over `ca_files` and `crl_files`.
pub fn build_client_verifier(
    ca_files: &[PathBuf],
    crl_files: &[PathBuf],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    load_roots(ca_files, &mut roots)?;
    let crls = load_crls(crl_files)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config {
            message: format!(
                "client CA bundle {}: {e}",
                ca_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// A [`ClientCertVerifier`] whose CA bundle and CRLs can be replaced at any time.
pub struct ReloadingClientVerifier {
    ca_files: Vec<PathBuf>,
    crl_files: Vec<PathBuf>,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Arc<dyn ClientCertVerifier>>,
    /// The subjects of the current CA bundle, sent in the certificate request so a
    /// client holding several certificates presents one of this CA's. rustls borrows
    /// them from the verifier for the handshake, so each distinct set is leaked once
    /// (`hints_for`): a few hundred bytes per CA bundle the operator ever installs.
    hints: ArcSwap<&'static [DistinguishedName]>,
}

/// `verifier`'s root hints, leaked unless they equal `current` (a reload of the same
/// bundle leaks nothing).
fn hints_for(
    verifier: &dyn ClientCertVerifier,
    current: Option<&'static [DistinguishedName]>,
) -> &'static [DistinguishedName] {
    let subjects = verifier.root_hint_subjects();
    match current {
        Some(current)
            if current
                .iter()
                .map(AsRef::as_ref)
                .eq(subjects.iter().map(AsRef::<[u8]>::as_ref)) =>
        {
            current
        }
        _ => Box::leak(subjects.to_vec().into_boxed_slice()),
    }
}

impl std::fmt::Debug for ReloadingClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingClientVerifier")
            .field("ca_files", &self.ca_files)
            .field("crl_files", &self.crl_files)
            .finish_non_exhaustive()
    }
}

impl ReloadingClientVerifier {
    /// Load the bundle once (an error here is fatal: there is no last good one).
    pub fn load(
        ca_files: Vec<PathBuf>,
        crl_files: Vec<PathBuf>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let v = build_client_verifier(&ca_files, &crl_files, Arc::clone(&provider))?;
        let hints = ArcSwap::from_pointee(hints_for(v.as_ref(), None));
        Ok(ReloadingClientVerifier {
            ca_files,
            crl_files,
            provider,
            current: ArcSwap::from_pointee(v),
            hints,
        })
    }

    /// Read the files again; on error the current verifier stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let v = build_client_verifier(&self.ca_files, &self.crl_files, Arc::clone(&self.provider))?;
        let hints = hints_for(v.as_ref(), Some(**self.hints.load()));
        self.current.store(Arc::new(v));
        self.hints.store(Arc::new(hints));
        Ok(())
    }

    fn now(&self) -> Arc<Arc<dyn ClientCertVerifier>> {
        self.current.load_full()
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        **self.hints.load()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.now()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.now().supported_verify_schemes()
    }
}

/// The listener's TLS material (see the module docs).
#[derive(Debug)]
pub struct ServerTls {
    /// The configuration, paths resolved.
    pub config: TlsConfig,
    /// The server certificate.
    pub resolver: Arc<ReloadingCertResolver>,
    /// The client-certificate verifier, unless `client_auth.mode = "off"`.
    pub verifier: Option<Arc<ReloadingClientVerifier>>,
}

impl ServerTls {
    /// Load every file of `config` (relative paths against `base`).
    pub fn load(config: &TlsConfig, base: &Path) -> Result<Self, TlsError> {
        super::install_default_provider();
        let config = config.resolved(base);
        let resolver = Arc::new(ReloadingCertResolver::load(
            CertFiles {
                cert: config.cert_file.clone(),
                key: config.key_file.clone(),
            },
            provider(),
        )?);
        let verifier = match config.client_auth.mode {
            ClientAuthMode::Off => None,
            ClientAuthMode::Optional | ClientAuthMode::Required => {
                Some(Arc::new(ReloadingClientVerifier::load(
                    config.client_auth.ca_files.clone(),
                    config.client_auth.crl_files.clone(),
                    provider(),
                )?))
            }
        };
        Ok(ServerTls {
            config,
            resolver,
            verifier,
        })
    }

    /// Re-read the certificate and key, and the CA bundle and CRLs. Each part that loads
    /// is swapped in; a part that fails keeps its last good material. Returns the errors.
    pub fn reload(&self) -> Vec<TlsError> {
        let mut errors = Vec::new();
        if let Err(e) = self.resolver.reload() {
            errors.push(e);
        }
        if let Some(v) = &self.verifier {
            if let Err(e) = v.reload() {
                errors.push(e);
            }
        }
        errors
    }

    /// Every file to watch.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.cert_file.clone(), self.config.key_file.clone()];
        if self.verifier.is_some() {
            files.extend(self.config.client_auth.ca_files.iter().cloned());
            files.extend(self.config.client_auth.crl_files.iter().cloned());
        }
        files
    }

    /// The served leaf's `notAfter`, Unix seconds.
    pub fn not_after(&self) -> Option<i64> {
        leaf_not_after(self.resolver.current().cert.first()?)
    }
}

/// A certificate's `notAfter`, Unix seconds.
pub fn leaf_not_after(der: &[u8]) -> Option<i64> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

impl ServerTls {
    /// A rustls server configuration over this material, for a listener served with
    /// `tokio-rustls` (the admin listener): the reloading certificate resolver, the
    /// reloading client verifier when client certificates are asked for, versions from
    /// `min_version`, ALPN from `alpn`.
    pub fn rustls_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.config.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Config {
                message: e.to_string(),
            })?;
        let builder = match &self.verifier {
            Some(v) => builder.with_client_cert_verifier(Arc::clone(v) as _),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&self.resolver) as _);
        config.alpn_protocols = self
            .config
            .alpn
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Ok(config)
    }
}
