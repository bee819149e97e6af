//! Plain HTTP requests to the proxy (reqwest), for what the rmcp client in [`super::client`]
//! would never send: malformed or duplicate-key bodies, spoofed headers, other methods, bad
//! credentials. For exact bytes on the wire (framing, smuggling) see
//! [`super::warden::raw_http`].

use serde_json::Value;

/// A reqwest client that ignores any proxy set in the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build a reqwest client")
}

/// An answer read whole: status, headers and body.
#[derive(Debug)]
pub struct Resp {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `error.code` of a single JSON-RPC error response.
    pub fn code(&self) -> i64 {
        let body = self.json();
        body["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not a JSON-RPC error: {body}"))
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a visible-ASCII header").to_owned())
    }
}

/// Send `request` and read the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Resp {
    let response = request.send().await.expect("request to mcp-warden");
    Resp {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("response body").to_vec(),
    }
}

/// A POST as an MCP client sends it (JSON body, both answer types accepted) with
/// `authorization` (the whole header value, if any) and extra headers. Extra headers are
/// added after the defaults, not instead of them: a second `content-type` is sent as a
/// second header line.
pub async fn post(
    url: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut request = client().post(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request = request
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}
