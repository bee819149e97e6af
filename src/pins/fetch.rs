//! Reading a server's definitions for `mcp-warden pin`: from a running server over
//! Streamable HTTP (plain `http://`; behind TLS, save a list result and use a file), or
//! from a file holding list results.
//!
//! The client is the smallest that works against any conformant server: `initialize`,
//! `notifications/initialized`, then `tools/list` (every page), and `prompts/list` and
//! `resources/templates/list` when the server declares those capabilities; answers as
//! `application/json` or `text/event-stream`; the session is deleted at the end.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Map, Value};

use super::definition::{Definition, DefinitionKind};
use super::diff::Listing;
use crate::mcp::sse::SseFramer;

/// Most pages read per list.
const MAX_PAGES: usize = 1000;
/// Largest answer read, in bytes.
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// The protocol revision the client asks for.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// The definitions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A list file cannot be read.
    #[error("`{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The upstream URL is not one this client can reach.
    #[error("upstream `{url}`: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Talking to the upstream failed.
    #[error("upstream: {0}")]
    Http(String),
    /// An answer or file is not what MCP says it should be.
    #[error("{what}: {reason}")]
    Shape {
        /// Which answer or file.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

fn shape(what: impl Into<String>, reason: impl Into<String>) -> FetchError {
    FetchError::Shape {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Add the items of one list result (`{"tools": [...]}` and the like) to `listing`.
fn add_result(
    result: &Map<String, Value>,
    listing: &mut Listing,
    what: &str,
) -> Result<(), FetchError> {
    for (key, kind) in [
        ("tools", DefinitionKind::Tool),
        ("prompts", DefinitionKind::Prompt),
        ("resourceTemplates", DefinitionKind::ResourceTemplate),
    ] {
        let Some(items) = result.get(key) else {
            continue;
        };
        let items = items
            .as_array()
            .ok_or_else(|| shape(what, format!("`{key}` is not an array")))?;
        for (i, item) in items.iter().enumerate() {
            let definition = item
                .as_object()
                .and_then(|o| Definition::from_item(kind, o))
                .ok_or_else(|| {
                    shape(
                        what,
                        format!("`{key}[{i}]` has no string `{}`", kind.name_field()),
                    )
                })?;
            if listing
                .insert((kind, definition.name.clone()), definition)
                .is_some()
            {
                return Err(shape(
                    what,
                    format!("`{key}[{i}]`: the name is listed twice"),
                ));
            }
        }
    }
    Ok(())
}

/// Definitions from a file: a list result (`{"tools": [...]}`), a JSON-RPC response
/// holding one, or an array of either (one per list or page).
pub fn from_list_file(path: &std::path::Path) -> Result<Listing, FetchError> {
    let text = std::fs::read(path).map_err(|source| FetchError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let what = path.display().to_string();
    let value = crate::mcp::parse_strict(&text, 256).map_err(|e| shape(&what, e.to_string()))?;
    let mut listing = Listing::new();
    let documents = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    for document in documents {
        let result = match document.get("result") {
            Some(result) => result.clone(),
            None => document,
        };
        let result = result.as_object().ok_or_else(|| {
            shape(
                &what,
                "not a list result (an object with `tools`, `prompts` or `resourceTemplates`)",
            )
        })?;
        if !["tools", "prompts", "resourceTemplates"]
            .iter()
            .any(|k| result.contains_key(*k))
        {
            return Err(shape(
                &what,
                "not a list result (an object with `tools`, `prompts` or `resourceTemplates`)",
            ));
        }
        add_result(result, &mut listing, &what)?;
    }
    Ok(listing)
}

/// A minimal Streamable HTTP client (see the module docs).
struct Client {
    url: http::Uri,
    authority: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    session: Option<String>,
    next_id: u64,
    timeout: Duration,
}

impl Client {
    async fn post(
        &mut self,
        body: &Value,
    ) -> Result<(http::StatusCode, Option<Value>), FetchError> {
        let mut req = http::Request::post(self.url.clone())
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(sid) = &self.session {
            req = req.header("mcp-session-id", sid);
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = self.send(req).await?;
        let status = response.status();
        if let Some(sid) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(sid.to_owned());
        }
        let sse = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let id = body.get("id").cloned();
        let mut framer = SseFramer::with_limit(MAX_ANSWER);
        let mut events = Vec::new();
        let mut buf = Vec::new();
        let mut incoming = response.into_body();
        while let Some(frame) = tokio::time::timeout(self.timeout, incoming.frame())
            .await
            .map_err(|_| FetchError::Http("timed out reading the answer".into()))?
        {
            let frame = frame.map_err(|e| FetchError::Http(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if !sse {
                buf.extend_from_slice(&data);
                if buf.len() > MAX_ANSWER {
                    return Err(FetchError::Http("answer too large".into()));
                }
                continue;
            }
            framer
                .push(&data, &mut events)
                .map_err(|e| FetchError::Http(e.to_string()))?;
            // The answer to our request ends what we need of the stream.
            for event in events.drain(..) {
                let Some(text) = event.data() else { continue };
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if id.is_some()
                    && message.get("id") == id.as_ref()
                    && message.get("method").is_none()
                {
                    return Ok((status, Some(message)));
                }
            }
        }
        if sse || buf.is_empty() {
            return Ok((status, None));
        }
        let message =
            crate::mcp::parse_strict(&buf, 256).map_err(|e| shape("answer", e.to_string()))?;
        Ok((status, Some(message)))
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, FetchError> {
        let http = |e: &dyn std::fmt::Display| FetchError::Http(e.to_string());
        let stream = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| FetchError::Http(format!("timed out connecting to `{}`", self.authority)))?
        .map_err(|e| http(&e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| http(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        tokio::time::timeout(self.timeout, sender.send_request(req))
            .await
            .map_err(|_| FetchError::Http("timed out waiting for the answer".into()))?
            .map_err(|e| http(&e))
    }

    /// A request; its `result` object.
    async fn request(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Map<String, Value>, FetchError> {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let (status, answer) = self.post(&body).await?;
        let answer = answer
            .ok_or_else(|| shape(method, format!("HTTP {status} with no JSON-RPC answer")))?;
        if let Some(error) = answer.get("error") {
            return Err(shape(
                method,
                format!("the server answered an error: {error}"),
            ));
        }
        match answer.get("result") {
            Some(Value::Object(result)) => Ok(result.clone()),
            _ => Err(shape(method, "the answer has no `result` object")),
        }
    }

    async fn list_all(&mut self, method: &str, listing: &mut Listing) -> Result<(), FetchError> {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request(method, params).await?;
            add_result(&result, listing, method)?;
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(()),
            }
        }
        Err(shape(method, format!("more than {MAX_PAGES} pages")))
    }
}

/// Definitions from a running server. `headers` are sent with every request (e.g. an
/// `Authorization` the server wants).
pub async fn from_upstream(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Listing, FetchError> {
    let bad = |reason: &str| FetchError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported by `pin --upstream`\nhelp: save a `tools/list` result and use `--from-list FILE`",
            ))
        }
        _ => return Err(bad("not an http:// URL")),
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let headers = headers
        .iter()
        .map(|(n, v)| {
            Ok((
                http::HeaderName::try_from(n.as_str()).map_err(|_| bad("bad header name"))?,
                http::HeaderValue::try_from(v.as_str()).map_err(|_| bad("bad header value"))?,
            ))
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    let mut client = Client {
        url: uri,
        authority,
        headers,
        session: None,
        next_id: 0,
        timeout,
    };
    let init = client
        .request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-warden-pin", "version": env!("CARGO_PKG_VERSION")}
            }),
        )
        .await?;
    let capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
    client
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    let mut listing = Listing::new();
    let result = async {
        if capabilities.get("tools").is_some() {
            client.list_all("tools/list", &mut listing).await?;
        }
        if capabilities.get("prompts").is_some() {
            client.list_all("prompts/list", &mut listing).await?;
        }
        if capabilities.get("resources").is_some() {
            client
                .list_all("resources/templates/list", &mut listing)
                .await?;
        }
        Ok::<(), FetchError>(())
    }
    .await;
    if let Some(sid) = client.session.clone() {
        // Best effort: a server without DELETE support lets the session expire.
        let mut req = http::Request::delete(client.url.clone())
            .header(http::header::HOST, &client.authority)
            .header("mcp-session-id", sid);
        for (name, value) in &client.headers {
            req = req.header(name, value);
        }
        if let Ok(req) = req.body(Full::new(Bytes::new())) {
            let _ = client.send(req).await;
        }
    }
    result.map(|()| listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_files_in_each_shape() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            r#"{"tools": [{"name": "a"}]}"#,
            r#"{"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}]}}"#,
            r#"[{"tools": [{"name": "a"}]}, {"prompts": [{"name": "p"}]}, {"resourceTemplates": [{"uriTemplate": "x://{y}", "name": "t"}]}]"#,
        ];
        for (i, text) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{i}.json"));
            std::fs::write(&path, text).unwrap();
            let listing = from_list_file(&path).unwrap();
            assert!(
                listing.contains_key(&(DefinitionKind::Tool, "a".into())),
                "{text}"
            );
        }
        for bad in [
            r#"{"tools": [{"name": "a"}, {"name": "a"}]}"#,
            r#"{"tools": [{"title": "no name"}]}"#,
            r#"{"nothing": []}"#,
            r#"{"tools": [], "tools": [{"name": "x"}]}"#,
        ] {
            let path = dir.path().join("bad.json");
            std::fs::write(&path, bad).unwrap();
            assert!(from_list_file(&path).is_err(), "{bad}");
        }
    }
}
