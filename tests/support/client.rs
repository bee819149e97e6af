//! The official Rust MCP client (`rmcp`, Streamable HTTP over reqwest) for driving the proxy.
//!
//! [`Revision`] picks the lifecycle:
//! - [`Revision::Modern`]: MCP 2026-07-28. No `initialize`; the client sends `server/discover`,
//!   then every request carries `_meta` protocol metadata, the `MCP-Protocol-Version` header
//!   and the SEP-2243 `Mcp-Method` / `Mcp-Name` headers. No sessions.
//! - [`Revision::Legacy`]: the `initialize` handshake at the given version (e.g.
//!   `ProtocolVersion::V_2025_06_18`); against a session-mode server this yields an
//!   `Mcp-Session-Id` that the client sends on every later request.
//!
//! The client's response cache is disabled so a repeated `tools/list` always reaches the wire,
//! and session auto-recovery is off by default so a 404 from the proxy surfaces as an error.

use std::collections::HashMap;

use http::{HeaderName, HeaderValue};
use rmcp::{
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
        JsonObject, ProtocolVersion,
    },
    service::{ClientCacheConfig, ClientInitializeError, ClientLifecycleMode, RunningService},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ClientServiceExt, ServiceError, ServiceExt,
};

/// A connected rmcp client. Derefs to `Peer<RoleClient>` (`list_tools`, `call_tool`, …).
pub type McpClient = RunningService<rmcp::RoleClient, ClientConfig>;

/// Which MCP revision (and so which lifecycle) the client speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// 2026-07-28: `server/discover`, stateless, per-request metadata.
    Modern,
    /// The `initialize` handshake proposing this version (sessions where the server has them).
    Legacy(ProtocolVersion),
}

impl Revision {
    /// The older revision with sessions the tests use by default: 2025-06-18.
    pub fn legacy() -> Self {
        Revision::Legacy(ProtocolVersion::V_2025_06_18)
    }
}

/// Options for [`McpClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    revision: Revision,
    bearer: Option<String>,
    headers: HashMap<HeaderName, HeaderValue>,
    reinit_on_expired_session: bool,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// A client for `url` (e.g. `http://127.0.0.1:PORT/mcp`) speaking `revision`, no credentials.
    pub fn new(url: impl Into<String>, revision: Revision) -> Self {
        ClientBuilder {
            url: url.into(),
            revision,
            bearer: None,
            headers: HashMap::new(),
            reinit_on_expired_session: false,
            http: None,
        }
    }

    /// Use this reqwest client (e.g. one trusting a test CA, with a client certificate).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Send `Authorization: Bearer <token>` on every request.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Send `X-API-Key: <key>` on every request.
    pub fn api_key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }

    /// Send an extra header on every request. rmcp refuses `Accept`, `Mcp-Session-Id` and
    /// `Last-Event-Id` here (connect fails); `Authorization` is better set with [`Self::bearer`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(value).expect("valid header value");
        self.headers.insert(name, value);
        self
    }

    /// Let the transport silently re-`initialize` when the server answers 404 for its session
    /// (rmcp's default; off here so tests see the 404).
    pub fn reinit_on_expired_session(mut self, enable: bool) -> Self {
        self.reinit_on_expired_session = enable;
        self
    }

    /// Connect and complete the lifecycle (`initialize` or `server/discover`).
    pub async fn try_connect(self) -> Result<McpClient, ClientInitializeError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url)
            .custom_headers(self.headers)
            .reinit_on_expired_session(self.reinit_on_expired_session);
        if let Some(token) = self.bearer {
            config = config.auth_header(token);
        }
        let http = self.http.unwrap_or_default();
        let transport = StreamableHttpClientTransport::with_client(http, config);
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-warden-tests", "0.1.0"),
        );
        let client = match self.revision {
            Revision::Modern => {
                info.with_protocol_version(ProtocolVersion::V_2026_07_28)
                    .serve_with_lifecycle(
                        transport,
                        ClientLifecycleMode::Discover {
                            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                        },
                    )
                    .await?
            }
            Revision::Legacy(version) => {
                info.with_protocol_version(version).serve(transport).await?
            }
        };
        client
            .set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        Ok(client)
    }

    /// [`Self::try_connect`], panicking on failure.
    pub async fn connect(self) -> McpClient {
        let url = self.url.clone();
        self.try_connect()
            .await
            .unwrap_or_else(|error| panic!("connect rmcp client to `{url}`: {error}"))
    }
}

/// Connect without credentials, panicking on failure.
pub async fn connect(url: &str, revision: Revision) -> McpClient {
    ClientBuilder::new(url, revision).connect().await
}

/// Names from `tools/list` (all pages), in server order. Panics on error.
pub async fn list_tool_names(client: &McpClient) -> Vec<String> {
    try_list_tool_names(client)
        .await
        .unwrap_or_else(|error| panic!("tools/list: {error}"))
}

/// Names from `tools/list` (all pages), in server order.
pub async fn try_list_tool_names(client: &McpClient) -> Result<Vec<String>, ServiceError> {
    Ok(client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect())
}

/// `tools/call` with JSON arguments (an object, or `null` for none). A JSON-RPC error — such as a
/// proxy's denial — is `Err(ServiceError::McpError(_))`; a tool-level failure is
/// `Ok(result)` with `result.is_error == Some(true)`.
pub async fn call_tool(
    client: &McpClient,
    name: &str,
    args: serde_json::Value,
) -> Result<CallToolResult, ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_owned());
    match args {
        serde_json::Value::Null => {}
        serde_json::Value::Object(arguments) => params = params.with_arguments(arguments),
        other => panic!("tool arguments must be a JSON object or null, got {other}"),
    }
    client.call_tool(params).await
}

/// The concatenated text content of a tool result.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

/// A JSON object for [`call_tool`] from `(key, value)` pairs.
pub fn args<const N: usize>(pairs: [(&str, serde_json::Value); N]) -> serde_json::Value {
    let object: JsonObject = pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    serde_json::Value::Object(object)
}
