//! The `[tls]` section: the listener's certificate, protocol versions, ALPN, and who may
//! connect (`[tls.client_auth]`). Plain serde data; the files are read by
//! [`super::ServerTls::load`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[tls]`: serve HTTPS on `listen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (reloaded on change).
    pub cert_file: PathBuf,
    /// PEM private key of the leaf (reloaded on change).
    pub key_file: PathBuf,
    /// Oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Protocols offered by ALPN, in order of preference: `"h2"`, `"http/1.1"`.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
    /// Client certificates (mTLS).
    #[serde(default)]
    pub client_auth: ClientAuthConfig,
}

fn default_alpn() -> Vec<String> {
    vec!["h2".to_owned(), "http/1.1".to_owned()]
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// The version of rustls' name for it (`"TLSv1_2"`, `"TLSv1_3"`), if it is one.
    pub fn from_rustls_name(name: &str) -> Option<TlsVersion> {
        match name {
            "TLSv1_2" | "TLSv1.2" => Some(TlsVersion::Tls12),
            "TLSv1_3" | "TLSv1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// `[tls.client_auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthConfig {
    /// `off` (default: no certificate asked for), `optional` (asked for; a connection
    /// without one is authenticated by the other methods) or `required` (a request on a
    /// connection without a verified certificate is answered 401).
    pub mode: ClientAuthMode,
    /// PEM CA bundles client certificates must chain to (reloaded on change).
    pub ca_files: Vec<PathBuf>,
    /// PEM or DER certificate revocation lists (reloaded on change).
    pub crl_files: Vec<PathBuf>,
}

/// `tls.client_auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// No client certificates.
    #[default]
    Off,
    /// Asked for, not required.
    Optional,
    /// Required for every request.
    Required,
}

impl TlsConfig {
    /// Checks serde cannot express: (key, reason).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.alpn.is_empty() {
            return Err(("tls.alpn", "name at least one of `h2`, `http/1.1`".into()));
        }
        for p in &self.alpn {
            if p != "h2" && p != "http/1.1" {
                return Err((
                    "tls.alpn",
                    format!("`{p}`: the proxy speaks `h2` and `http/1.1`"),
                ));
            }
        }
        let ca = &self.client_auth;
        if ca.mode != ClientAuthMode::Off && ca.ca_files.is_empty() {
            return Err((
                "tls.client_auth.ca_files",
                "client certificates need at least one CA bundle to chain to".into(),
            ));
        }
        Ok(())
    }

    /// Does ALPN offer HTTP/2?
    pub fn offers_h2(&self) -> bool {
        self.alpn.iter().any(|p| p == "h2")
    }

    /// Does ALPN offer HTTP/1.1?
    pub fn offers_h1(&self) -> bool {
        self.alpn.iter().any(|p| p == "http/1.1")
    }

    /// The key (under the section, e.g. `cert_file`, `client_auth.ca_files`) that names
    /// `path`, if one does; paths compare as written, so resolve both sides alike.
    pub fn key_of(&self, path: &Path) -> Option<&'static str> {
        let ca = &self.client_auth;
        if self.cert_file == path {
            Some("cert_file")
        } else if self.key_file == path {
            Some("key_file")
        } else if ca.ca_files.iter().any(|p| p == path) {
            Some("client_auth.ca_files")
        } else if ca.crl_files.iter().any(|p| p == path) {
            Some("client_auth.crl_files")
        } else {
            None
        }
    }

    /// The files, resolved against `base`.
    pub fn resolved(&self, base: &Path) -> TlsConfig {
        let r = |p: &PathBuf| base.join(p);
        TlsConfig {
            cert_file: r(&self.cert_file),
            key_file: r(&self.key_file),
            client_auth: ClientAuthConfig {
                mode: self.client_auth.mode,
                ca_files: self.client_auth.ca_files.iter().map(r).collect(),
                crl_files: self.client_auth.crl_files.iter().map(r).collect(),
            },
            ..self.clone()
        }
    }
}

/// `[upstream_tls]`: how the proxy checks an `https://` upstream, and the client
/// certificate it presents to one that requires mTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTlsConfig {
    /// PEM CA bundles the upstream's certificate must chain to. Empty: the system's trust
    /// store. Reloaded on change.
    pub ca_files: Vec<PathBuf>,
    /// The name sent as SNI and checked against the upstream's certificate. Default: the
    /// host of `upstream`.
    pub server_name: Option<String>,
    /// Check that the certificate names `server_name`. Default `true`; turning it off
    /// still checks the chain.
    pub verify_hostname: bool,
    /// PEM certificate chain presented to the upstream (upstream mTLS). Reloaded on change.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        UpstreamTlsConfig {
            ca_files: Vec::new(),
            server_name: None,
            verify_hostname: true,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl UpstreamTlsConfig {
    /// Checks serde cannot express: (key, reason).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => Err((
                "upstream_tls.client_key_file",
                "`client_cert_file` needs its key".into(),
            )),
            (None, Some(_)) => Err((
                "upstream_tls.client_cert_file",
                "`client_key_file` needs its certificate".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Every file, resolved against `base`.
    pub fn files(&self, base: &Path) -> Vec<PathBuf> {
        self.ca_files
            .iter()
            .chain(&self.client_cert_file)
            .chain(&self.client_key_file)
            .map(|p| base.join(p))
            .collect()
    }
}

/// `[admin.tls]`: serve the admin listener (`/metrics`, `/healthz`, `/readyz`) over HTTPS,
/// with a certificate of its own and, optionally, client certificates for scrapers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTlsConfig {
    /// PEM certificate chain, leaf first (reloaded on change).
    pub cert_file: PathBuf,
    /// PEM private key of the leaf (reloaded on change).
    pub key_file: PathBuf,
    /// Oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Client certificates: in `required` mode `/metrics` is answered only to a client
    /// presenting one that chains to `ca_files` (the probes `/healthz` and `/readyz` stay
    /// open to any client that completes the handshake: the kubelet's HTTPS probes
    /// present no certificate).
    #[serde(default)]
    pub client_auth: ClientAuthConfig,
}

impl AdminTlsConfig {
    /// Checks serde cannot express: (key, reason).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.client_auth.mode != ClientAuthMode::Off && self.client_auth.ca_files.is_empty() {
            return Err((
                "admin.tls.client_auth.ca_files",
                "client certificates need at least one CA bundle to chain to".into(),
            ));
        }
        Ok(())
    }

    /// The same material as a listener's `[tls]`: HTTP/1.1 only (the admin listener
    /// speaks nothing else).
    pub fn as_listener(&self) -> TlsConfig {
        TlsConfig {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            min_version: self.min_version,
            alpn: vec!["http/1.1".to_owned()],
            client_auth: self.client_auth.clone(),
        }
    }
}
