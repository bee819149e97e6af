//! Pingora glue for `[tls]`: the listener's `TlsSettings` (rustls, through Pingora's own
//! backend) built from [`crate::tls::ServerTls`], and the per-connection peer identity.
//!
//! The client certificate is read once per handshake: Pingora calls
//! [`PeerCallback::handshake_complete_callback`] when the handshake is done, and the
//! [`ConnectionTls`] it returns is stored in the connection's `SslDigest.extension`,
//! which every request on the connection (and every HTTP/2 stream) reads back with
//! [`connection_tls`]. The parsing and the rules are plain code
//! ([`crate::auth::PeerCert::of_leaf`]).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::ALPN;
use pingora::proxy::Session;

use crate::auth::PeerCert;
use crate::tls::{ServerTls, TlsVersion};

/// What one TLS connection negotiated, as the HTTP layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionTls {
    /// The client certificate.
    pub peer: PeerCert,
    /// The negotiated version (`None` if rustls named none we know).
    pub version: Option<TlsVersion>,
}

/// Parses the client certificate when a handshake completes.
struct PeerCallback;

#[async_trait]
impl TlsAccept for PeerCallback {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        Some(Arc::new(ConnectionTls {
            peer: PeerCert::of_leaf(tls.peer_certificate_der()),
            version: tls.version().and_then(TlsVersion::from_rustls_name),
        }))
    }
}

/// The listener's TLS settings: the reloading certificate resolver, the reloading client
/// verifier (with `[tls.client_auth]`), ALPN, and the peer callback.
pub(crate) fn settings(tls: &ServerTls) -> anyhow::Result<TlsSettings> {
    crate::tls::install_default_provider();
    let mut settings = TlsSettings::with_callbacks(Box::new(PeerCallback))?;
    settings.set_cert_resolver(Arc::clone(&tls.resolver) as _);
    if let Some(verifier) = &tls.verifier {
        settings.set_client_cert_verifier(Arc::clone(verifier) as _);
    }
    let cfg = &tls.config;
    settings.set_alpn(match (cfg.offers_h2(), cfg.offers_h1()) {
        (true, true) => ALPN::H2H1,
        (true, false) => ALPN::H2,
        _ => ALPN::H1,
    });
    Ok(settings)
}

/// The TLS facts of the connection `session` arrived on; `None` on a plain connection.
pub(crate) fn connection_tls(session: &Session) -> Option<&ConnectionTls> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<ConnectionTls>()
}
