//! The upstream side of Pingora: the peer each request is sent to (with its TLS material
//! for an `https://` upstream: `[upstream_tls]`), and names for the ways the exchange with
//! it can fail (the `kind` label of `mcp_warden_upstream_errors_total`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::prelude::HttpPeer;
use pingora::utils::tls::{CertKey, WrappedX509};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::exchange::in_flight::Kind;
use crate::exchange::Warden;
use crate::tls::{TlsError, UpstreamTlsConfig};

/// The peer for one request: the configured upstream, with the read timeout of its kind
/// (an event stream may be silent longer than an exchange) and, for `https://`, the
/// current TLS material.
pub(super) fn peer(warden: &Warden, kind: Kind, tls: Option<&UpstreamTls>) -> HttpPeer {
    let up = &warden.config.upstream;
    let timeouts = &warden.config.raw.upstream_timeouts;
    let cfg = &warden.config.raw.upstream_tls;
    let sni = cfg.server_name.clone().unwrap_or_else(|| up.host.clone());
    let mut peer = HttpPeer::new(up.authority.as_str(), up.tls, sni);
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(match kind {
        Kind::Stream => timeouts.sse_idle,
        Kind::Exchange => timeouts.read,
    });
    peer.options.idle_timeout = Some(timeouts.pool_idle);
    if let Some(tls) = tls.filter(|_| up.tls) {
        let material = tls.current.load();
        peer.options.verify_cert = true;
        peer.options.verify_hostname = cfg.verify_hostname;
        peer.options.ca = material.ca.clone();
        peer.client_cert_key = material.client.clone();
    }
    peer
}

/// The material of one generation of `[upstream_tls]`, in Pingora's types.
struct Material {
    ca: Option<Arc<[WrappedX509]>>,
    client: Option<Arc<CertKey>>,
}

/// `[upstream_tls]`'s CA bundle and client certificate, reloadable.
pub(crate) struct UpstreamTls {
    cfg: UpstreamTlsConfig,
    base: PathBuf,
    current: ArcSwap<Material>,
}

impl UpstreamTls {
    /// Load the files (relative to `base`); an error is fatal at start-up.
    pub(crate) fn load(cfg: &UpstreamTlsConfig, base: &Path) -> Result<Self, TlsError> {
        let material = load_material(cfg, base)?;
        Ok(UpstreamTls {
            cfg: cfg.clone(),
            base: base.to_owned(),
            current: ArcSwap::from_pointee(material),
        })
    }

    /// Read the files again; on error the current material stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let material = load_material(&self.cfg, &self.base)?;
        self.current.store(Arc::new(material));
        Ok(())
    }

    /// The files to watch.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        self.cfg.files(&self.base)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<Vec<u8>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what,
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    // Pingora parses them again (and panics on a bad one): check first.
    for der in &certs {
        if x509_parser::parse_x509_certificate(der).is_err() {
            return Err(TlsError::Pem {
                path: path.to_owned(),
                what,
                message: "not an X.509 certificate".into(),
            });
        }
    }
    Ok(certs)
}

fn load_material(cfg: &UpstreamTlsConfig, base: &Path) -> Result<Material, TlsError> {
    let mut ca = Vec::new();
    for file in &cfg.ca_files {
        for der in certs(&base.join(file), "CA bundle")? {
            ca.push(WrappedX509::new(der, pingora::utils::tls::parse_x509));
        }
    }
    let client = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (base.join(cert), base.join(key));
            let chain = certs(&cert, "certificate chain")?;
            let key_der =
                PrivateKeyDer::from_pem_slice(&read(&key)?).map_err(|e| TlsError::Pem {
                    path: key.clone(),
                    what: "private key",
                    message: e.to_string(),
                })?;
            // The same check the listener makes: the key must fit the certificate.
            let _ = rustls::sign::CertifiedKey::from_der(
                chain.iter().cloned().map(CertificateDer::from).collect(),
                key_der.clone_key(),
                &crate::tls::provider(),
            )
            .map_err(|e| TlsError::KeyMismatch {
                cert: cert.clone(),
                key: key.clone(),
                message: e.to_string(),
            })?;
            Some(Arc::new(CertKey::new(chain, key_der.secret_der().to_vec())))
        }
        _ => None,
    };
    Ok(Material {
        ca: (!ca.is_empty()).then(|| Arc::from(ca)),
        client,
    })
}

/// The `kind` of `mcp_warden_upstream_errors_total` for a failed upstream exchange.
/// `stream` says the request was a GET event stream, whose silence timeout is routine.
pub(super) fn upstream_error_kind(error: &pingora::ErrorType, stream: bool) -> &'static str {
    use pingora::ErrorType as E;
    match error {
        E::ConnectTimedout => "connect_timeout",
        E::ConnectRefused => "connect_refused",
        E::ConnectNoRoute
        | E::ConnectError
        | E::BindError
        | E::SocketError
        | E::ConnectProxyFailure
        | E::TLSWantX509Lookup
        | E::TLSHandshakeFailure
        | E::TLSHandshakeTimedout
        | E::InvalidCert
        | E::HandshakeError => "connect_error",
        E::ReadTimedout if stream => "stream_idle_timeout",
        E::ReadTimedout | E::WriteTimedout => "timeout",
        E::ConnectionClosed | E::ReadError | E::WriteError => "connection_lost",
        E::InvalidHTTPHeader | E::H1Error | E::H2Error | E::InvalidH2 | E::H2Downgrade => {
            "protocol_error"
        }
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_are_classified() {
        use pingora::ErrorType as E;
        assert_eq!(
            upstream_error_kind(&E::ConnectRefused, false),
            "connect_refused"
        );
        assert_eq!(upstream_error_kind(&E::ReadTimedout, false), "timeout");
        assert_eq!(
            upstream_error_kind(&E::ReadTimedout, true),
            "stream_idle_timeout"
        );
        assert_eq!(upstream_error_kind(&E::Custom("x"), false), "other");
    }
}
