//! The upstream side of Pingora: the peer each request is sent to, and names for the ways
//! the exchange with it can fail (the `kind` label of `mcp_warden_upstream_errors_total`).

use pingora::prelude::HttpPeer;

use crate::exchange::in_flight::Kind;
use crate::exchange::Warden;

/// The peer for one request: the configured upstream, with the read timeout of its kind
/// (an event stream may be silent longer than an exchange).
pub(super) fn peer(warden: &Warden, kind: Kind) -> HttpPeer {
    let up = &warden.config.upstream;
    let timeouts = &warden.config.raw.upstream_timeouts;
    let mut peer = HttpPeer::new(up.authority.as_str(), up.tls, up.host.clone());
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(match kind {
        Kind::Stream => timeouts.sse_idle,
        Kind::Exchange => timeouts.read,
    });
    peer.options.idle_timeout = Some(timeouts.pool_idle);
    peer
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
