//! Server TLS with rustls: a PEM certificate chain and key that reload on file change.
//!
//! Kubernetes hands a workload its certificate as a Secret volume, and cert-manager renews
//! it by swapping the volume's `..data` symlink; a server that read the files once would
//! serve the old certificate until it expires. [`ReloadingCertResolver`] holds the current
//! [`CertifiedKey`] in an `arc-swap` and is the server's [`ResolvesServerCert`]: each new
//! handshake loads the current key pair, connections already established keep theirs and
//! are not dropped. [`CertReloader`] watches the files' directories with the project's
//! debounced watcher ([`crate::policy::watch`]) and reloads on any change; a file that
//! does not parse, or a key that does not match the certificate, is rejected with a log
//! line naming the file, and the last good pair keeps serving.
//!
//! Crypto provider: pingora's rustls uses `ring`, while some dependencies (reqwest, through
//! rmcp) compile `aws-lc-rs` in too. With both present rustls cannot pick a process default
//! by itself, so every configuration built here names its provider explicitly
//! ([`provider`], ring), and [`install_default_provider`] installs the same one for code
//! that asks for the process default.
//!
//! This module knows nothing of Pingora or of Kubernetes: the admission webhook serves with
//! it (`src/k8s/server.rs`), and the proxy's listener with [`server::ServerTls`] (the
//! `[tls]` section, [`config`]), which adds a reloading client-certificate verifier.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::policy::watch::{spawn_watcher, WatchError, WatchHandle};

pub mod config;
pub mod server;

pub use config::{
    AdminTlsConfig, ClientAuthConfig, ClientAuthMode, TlsConfig, TlsVersion, UpstreamTlsConfig,
};
pub use server::{ReloadingClientVerifier, ServerTls};

/// A certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PEM file did not parse.
    #[error("{}: not a PEM {what}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// What the parser said.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error("{}: no `CERTIFICATE` block\n  help: the file must hold the server certificate first, then its intermediates", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key cannot be used, or does not belong to the certificate.
    #[error("{}: the private key does not fit the certificate in `{}`: {message}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {message}")]
    Config {
        /// What rustls said.
        message: String,
    },
    /// The file watcher could not be started.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

impl TlsError {
    /// The file the error is about, if it is about one (the key file of a mismatch).
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::Read { path, .. }
            | TlsError::Pem { path, .. }
            | TlsError::NoCertificate { path } => Some(path),
            TlsError::KeyMismatch { key, .. } => Some(key),
            TlsError::Config { .. } | TlsError::Watch(_) => None,
        }
    }
}

/// The crypto provider every configuration here uses: ring, as pingora's rustls does.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install [`provider`] as the process default, if no default is installed yet.
/// Idempotent; needed before building rustls objects that ask for the default.
pub fn install_default_provider() {
    // An error means a provider is already installed: keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the certificate chain and key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Read and check a PEM certificate chain and key.
pub fn load_certified_key(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            what: "certificate chain",
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        what: "private key",
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::KeyMismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message: e.to_string(),
    })
}

/// A [`ResolvesServerCert`] that serves the current certificate, replaceable at any time.
pub struct ReloadingCertResolver {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertResolver {
    /// Load the files once; an error here is fatal (there is no last good pair yet).
    pub fn load(files: CertFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let key = load_certified_key(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Read the files again. On success new handshakes use the new pair; on error the
    /// current pair stays and the error is returned (and logged by [`CertReloader`]).
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files, &self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The files this resolver reads.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Watches the certificate files and reloads the resolver on change; dropping it stops.
#[derive(Debug)]
pub struct CertReloader {
    _watch: WatchHandle,
}

/// How long a burst of file events must be quiet before a reload (a Secret update
/// writes several files).
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);

impl CertReloader {
    /// Start watching `resolver`'s files.
    pub fn spawn(resolver: Arc<ReloadingCertResolver>) -> Result<Self, TlsError> {
        let files = resolver.files().clone();
        let watch = spawn_watcher(
            vec![files.cert.clone(), files.key.clone()],
            RELOAD_DEBOUNCE,
            Box::new(move || match resolver.reload() {
                Ok(()) => tracing::info!(
                    cert = %resolver.files().cert.display(),
                    "tls: loaded a new certificate; new connections use it"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "tls: rejected the changed certificate files; the last good certificate keeps serving"
                ),
            }),
        )?;
        Ok(Self { _watch: watch })
    }
}

/// A rustls server configuration serving `resolver`'s certificate over HTTP/1.1
/// (TLS 1.2 and 1.3, no client certificates).
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::clone(&resolver.provider);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
