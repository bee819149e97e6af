//! One HTTP/2 connection to the proxy (hyper's client), plain with prior knowledge (h2c)
//! or over TLS with ALPN `h2`: every request made through an [`H2`] is a stream on that
//! one TCP connection, so a test can tell what holds per stream and per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// An HTTP/2 connection; requests are streams on it.
#[derive(Clone)]
pub struct H2 {
    send: SendRequest<BoxBody<Bytes, Infallible>>,
    /// `http://host:port` or `https://…`, prefixed to request paths.
    pub origin: String,
}

/// An answer read whole.
#[derive(Debug)]
pub struct H2Resp {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl H2Resp {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl H2 {
    /// HTTP/2 with prior knowledge on a plain connection (h2c).
    pub async fn plain(addr: SocketAddr) -> H2 {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self::over(tcp, format!("http://{addr}")).await
    }

    /// HTTP/2 over TLS: `config` trusts the proxy (and may present a client certificate);
    /// ALPN offers `h2` only.
    pub async fn tls(addr: SocketAddr, config: &rustls::ClientConfig) -> H2 {
        let mut config = config.clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "ALPN picked HTTP/2"
        );
        Self::over(tls, format!("https://localhost:{}", addr.port())).await
    }

    async fn over<S>(io: S, origin: String) -> H2
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2 { send, origin }
    }

    /// POST `body` (in the given chunks, one DATA frame each) to `path` with `headers`
    /// and the MCP defaults; the error is the connection's or the stream's.
    pub async fn post_chunks(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        chunks: Vec<Vec<u8>>,
    ) -> Result<H2Resp, hyper::Error> {
        let mut request = http::Request::post(format!("{}{path}", self.origin))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from(c)))),
        );
        let request = request
            .body(StreamBody::new(frames).boxed())
            .expect("a request");
        let mut send = self.send.clone();
        send.ready().await?;
        let response = send.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(H2Resp {
            status,
            headers,
            body,
        })
    }

    /// POST a JSON body in one DATA frame.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<H2Resp, hyper::Error> {
        self.post_chunks(path, headers, vec![serde_json::to_vec(body).unwrap()])
            .await
    }
}
