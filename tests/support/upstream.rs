//! A real MCP server (the official Rust SDK, `rmcp`) to put behind the proxy.
//!
//! [`start_upstream`] (or [`UpstreamBuilder`]) serves it on `127.0.0.1:0` at `/mcp`, wrapped in
//! an axum middleware that records every HTTP request into [`Seen`] before rmcp sees it.
//! It shuts down when the [`Upstream`] is dropped.
//!
//! Response modes ([`ResponseMode`]):
//! - `Sse`: rmcp's stateful mode. Clients that `initialize` (revisions up to 2025-11-25) get an
//!   `Mcp-Session-Id` and `text/event-stream` responses, plus GET streams and DELETE.
//!   Clients on 2026-07-28 (no `initialize`, per-request `_meta`) are always served statelessly,
//!   still with SSE responses.
//! - `Json`: stateless, `Content-Type: application/json` responses, no sessions (GET/DELETE → 405)
//!   for every revision.
//!
//! Tools (annotations are what the proxy's policies read):
//! `echo`, `get_weather`, `delete_records`, `whoami`, `no_annotations`, and optionally
//! `tool_0001`… ([`UpstreamBuilder::extra_tools`]), and optionally `get_record`
//! ([`UpstreamBuilder::records_tool`]). Prompt `greeting`; resources
//! `file:///public/readme.txt` and `file:///secret/keys.txt`.
//!
//! The listed definitions can be changed while the server runs ([`Upstream::tools`],
//! [`ToolPatches`]): a rug pull on demand. Calls still go to the real handlers.

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use bytes::Bytes;
use rmcp::{
    handler::server::{
        router::{
            prompt::PromptRouter,
            tool::{ToolRoute, ToolRouter},
        },
        tool::{Extension, ToolCallContext},
        wrapper::Parameters,
    },
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams, PromptMessage,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, Role, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    prompt, prompt_handler, prompt_router,
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};
use serde::Deserialize;

/// URI of the resource meant to be visible to everyone.
pub const PUBLIC_RESOURCE: &str = "file:///public/readme.txt";
/// URI of the resource policies are expected to hide.
pub const SECRET_RESOURCE: &str = "file:///secret/keys.txt";
/// The tools every upstream serves, in `tools/list` order (sorted by name).
pub const BASE_TOOLS: [&str; 5] = [
    "delete_records",
    "echo",
    "get_weather",
    "no_annotations",
    "whoami",
];
/// Request headers `whoami` reports.
pub const WHOAMI_HEADERS: [&str; 5] = [
    "x-mcp-user",
    "x-mcp-agent",
    "x-mcp-roles",
    "authorization",
    "x-api-key",
];
/// The optional sensitive-data tool ([`UpstreamBuilder::records_tool`]): read-only,
/// closed-world, argument `id`.
pub const RECORDS_TOOL: &str = "get_record";
/// The `id` for which [`RECORDS_TOOL`] answers a tool error (`isError: true`); without
/// an `id` it answers a JSON-RPC error (invalid params).
pub const MISSING_RECORD: &str = "missing";
/// Largest request body the recorder buffers (rmcp's own default limit).
const MAX_RECORDED_BODY: usize = 4 * 1024 * 1024;

/// How the upstream answers; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Sessions for `initialize`-era clients, `text/event-stream` responses.
    Sse,
    /// Stateless, `application/json` responses.
    Json,
}

/// One HTTP request as it reached the upstream.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Path, without the query.
    pub path: String,
    /// Headers, names lowercased, every value in arrival order (non-UTF-8 bytes replaced).
    pub headers: BTreeMap<String, Vec<String>>,
    /// The request body, exactly as received.
    pub body: Bytes,
}

impl SeenRequest {
    /// First value of a header (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    /// Whether the header is present at all.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(&name.to_ascii_lowercase())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON-RPC `method` of the body (`None` for responses, GETs, non-JSON).
    pub fn jsonrpc_method(&self) -> Option<String> {
        self.json()?.get("method")?.as_str().map(str::to_owned)
    }
}

/// Changes to the tool definitions `tools/list` returns, by tool: top-level fields of the
/// tool object replaced (`description`, `inputSchema`, …). Applies to every list from the
/// moment it is set.
#[derive(Debug, Default)]
pub struct ToolPatches {
    patches: Mutex<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// The cache hints (MCP 2026-07-28) every `tools/list` result carries, if set.
    hints: Mutex<Option<(u64, rmcp::model::CacheScope)>>,
}

impl ToolPatches {
    /// From now on, list `tool` with `field` set to `value`.
    pub fn set(&self, tool: &str, field: &str, value: serde_json::Value) {
        lock(&self.patches)
            .entry(tool.to_owned())
            .or_default()
            .insert(field.to_owned(), value);
    }

    /// List every tool as the handlers define it again.
    pub fn clear(&self) {
        lock(&self.patches).clear();
    }

    /// From now on, `tools/list` results say they stay fresh `ttl_ms` and who may cache
    /// them (without this, rmcp fills in `ttlMs: 0`, `cacheScope: "private"` on 2026-07-28).
    pub fn set_cache_hints(&self, ttl_ms: u64, scope: rmcp::model::CacheScope) {
        *lock(&self.hints) = Some((ttl_ms, scope));
    }

    fn list_result(&self, tools: Vec<Tool>) -> ListToolsResult {
        let result = ListToolsResult::with_all_items(self.apply(tools));
        match *lock(&self.hints) {
            Some((ttl_ms, scope)) => result.with_ttl_ms(ttl_ms).with_cache_scope(scope),
            None => result,
        }
    }

    fn apply(&self, tools: Vec<Tool>) -> Vec<Tool> {
        let patches = lock(&self.patches);
        tools
            .into_iter()
            .map(|tool| match patches.get(tool.name.as_ref()) {
                None => tool,
                Some(patch) => {
                    let mut value = serde_json::to_value(&tool).expect("a tool is JSON");
                    let object = value.as_object_mut().expect("a tool is an object");
                    for (k, v) in patch {
                        object.insert(k.clone(), v.clone());
                    }
                    serde_json::from_value(value).expect("the patched tool is still a tool")
                }
            })
            .collect()
    }
}

/// What the upstream received: every HTTP request and every tool it executed.
#[derive(Debug, Default)]
pub struct Seen {
    requests: Mutex<Vec<SeenRequest>>,
    tool_calls: Mutex<Vec<String>>,
}

impl Seen {
    /// Every HTTP request so far, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.requests).clone()
    }

    /// Requests whose JSON-RPC method is `method` (e.g. `"tools/call"`).
    pub fn requests_for(&self, method: &str) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.jsonrpc_method().as_deref() == Some(method))
            .collect()
    }

    /// JSON-RPC methods of all requests so far, in arrival order (GETs and responses skipped).
    pub fn jsonrpc_methods(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(SeenRequest::jsonrpc_method)
            .collect()
    }

    /// Names of the tools that were dispatched to a handler, in call order. A `tools/call`
    /// for an unknown tool is not included.
    pub fn tool_calls(&self) -> Vec<String> {
        lock(&self.tool_calls).clone()
    }

    /// Forget everything seen so far.
    pub fn clear(&self) {
        lock(&self.requests).clear();
        lock(&self.tool_calls).clear();
    }

    fn record_request(&self, request: SeenRequest) {
        lock(&self.requests).push(request);
    }

    fn record_tool_call(&self, name: &str) {
        lock(&self.tool_calls).push(name.to_owned());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide what the server saw from the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// What it received.
    pub seen: Arc<Seen>,
    /// The mode it was started in.
    pub mode: ResponseMode,
    /// Changes to what `tools/list` returns (see [`ToolPatches`]).
    pub tools: Arc<ToolPatches>,
    config: StreamableHttpServerConfig,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Ends rmcp's sessions and open SSE streams, then axum's graceful shutdown.
        self.config.cancellation_token.cancel();
        self.task.abort();
    }
}

/// Start an upstream with the default tool set.
pub async fn start_upstream(mode: ResponseMode) -> Upstream {
    UpstreamBuilder::new(mode).start().await
}

/// Options for [`Upstream`].
#[derive(Debug, Clone)]
pub struct UpstreamBuilder {
    mode: ResponseMode,
    extra_tools: usize,
    records_tool: bool,
    any_host: bool,
    port: u16,
}

impl UpstreamBuilder {
    /// Defaults: no extra tools, rmcp's default `Host` allow-list (loopback names only).
    pub fn new(mode: ResponseMode) -> Self {
        UpstreamBuilder {
            mode,
            extra_tools: 0,
            records_tool: false,
            any_host: false,
            port: 0,
        }
    }

    /// Also serve `count` dummy tools named `tool_0001`, `tool_0002`, … (no annotations,
    /// no arguments, reply `"<name> ok"`).
    pub fn extra_tools(mut self, count: usize) -> Self {
        self.extra_tools = count;
        self
    }

    /// Also serve [`RECORDS_TOOL`], a read-only, closed-world tool returning a
    /// "confidential" record: `record <id>: …` for any `id`, a tool error (`isError`) for
    /// [`MISSING_RECORD`], a JSON-RPC error without `id`.
    pub fn records_tool(mut self) -> Self {
        self.records_tool = true;
        self
    }

    /// Accept any `Host` header. By default rmcp answers 403 unless `Host` is `localhost`,
    /// `127.0.0.1` or `::1` (DNS-rebinding protection), which matters if a proxy rewrites
    /// `Host`.
    pub fn any_host(mut self) -> Self {
        self.any_host = true;
        self
    }

    /// Listen on this loopback port instead of a free one (to restart an upstream where
    /// a proxy expects it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Bind `127.0.0.1:0` (or the [`UpstreamBuilder::port`]) and serve until the returned [`Upstream`] is dropped.
    pub async fn start(self) -> Upstream {
        let seen = Arc::new(Seen::default());
        let mut config = match self.mode {
            ResponseMode::Sse => StreamableHttpServerConfig::default()
                .with_legacy_session_mode(true)
                .with_json_response(false),
            ResponseMode::Json => StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        };
        if self.any_host {
            config = config.disable_allowed_hosts();
        }

        let tools = Arc::new(ToolPatches::default());
        let server = UpstreamServer::new(
            seen.clone(),
            tools.clone(),
            self.extra_tools,
            self.records_tool,
        );
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config.clone(),
        );
        let app = axum::Router::new()
            .route_service("/mcp", service)
            .fallback(|| async { http::StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn_with_state(seen.clone(), record));

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("upstream local address");
        let shutdown = config.cancellation_token.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
        });

        Upstream {
            url: format!("http://{addr}/mcp"),
            addr,
            seen,
            mode: self.mode,
            tools,
            config,
            task,
        }
    }
}

/// Middleware: record the request (headers and buffered body), then hand it on unchanged.
async fn record(State(seen): State<Arc<Seen>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_RECORDED_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Response::builder()
                .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                .body(Body::empty())
                .expect("static response");
        }
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    seen.record_request(SeenRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers,
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// The MCP server behind the upstream. rmcp builds one per session (stateful) or per request
/// (stateless) through the service factory, so it is cheap to clone.
#[derive(Clone)]
struct UpstreamServer {
    seen: Arc<Seen>,
    patches: Arc<ToolPatches>,
    tool_router: Arc<ToolRouter<UpstreamServer>>,
    prompt_router: Arc<PromptRouter<UpstreamServer>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to send back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WeatherArgs {
    /// City of interest.
    city: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct DeleteArgs {
    /// Table to delete from.
    table: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct GreetingArgs {
    /// Who to greet.
    name: String,
}

#[tool_router]
impl UpstreamServer {
    fn new(
        seen: Arc<Seen>,
        patches: Arc<ToolPatches>,
        extra_tools: usize,
        records_tool: bool,
    ) -> Self {
        let mut tool_router = Self::tool_router();
        for index in 1..=extra_tools {
            tool_router.add_route(ToolRoute::new_dyn(dummy_tool(index), dummy_call));
        }
        if records_tool {
            tool_router.add_route(ToolRoute::new_dyn(records_tool_def(), records_call));
        }
        UpstreamServer {
            seen,
            patches,
            tool_router: Arc::new(tool_router),
            prompt_router: Arc::new(Self::prompt_router()),
        }
    }

    /// Return the text unchanged.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Report the weather of a city (always sunny).
    #[tool(annotations(read_only_hint = true, open_world_hint = true))]
    async fn get_weather(&self, Parameters(args): Parameters<WeatherArgs>) -> String {
        format!("sunny in {}", args.city)
    }

    /// Delete every record of a table (pretends to).
    #[tool(annotations(read_only_hint = false, destructive_hint = true))]
    async fn delete_records(&self, Parameters(args): Parameters<DeleteArgs>) -> String {
        format!("deleted all records from {}", args.table)
    }

    /// Report, as a JSON object, the identity headers this call arrived with (`null` when absent;
    /// repeated headers joined with ", ").
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        let mut report = serde_json::Map::new();
        for name in WHOAMI_HEADERS {
            let values: Vec<String> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            let value = if values.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(values.join(", "))
            };
            report.insert(name.to_owned(), value);
        }
        serde_json::Value::Object(report).to_string()
    }

    /// A tool that declares no annotations at all.
    #[tool]
    async fn no_annotations(&self) -> String {
        "no annotations".to_owned()
    }
}

#[prompt_router]
impl UpstreamServer {
    /// Greet someone by name.
    #[prompt]
    async fn greeting(&self, Parameters(args): Parameters<GreetingArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Hello, {}!", args.name),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for UpstreamServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-warden-test-upstream", "0.1.0"))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.tool_router.has_route(&request.name) {
            self.seen.record_tool_call(&request.name);
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(self.patches.list_result(self.tool_router.list_all()))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(PUBLIC_RESOURCE, "readme.txt").with_mime_type("text/plain"),
            Resource::new(SECRET_RESOURCE, "keys.txt").with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let text = match request.uri.as_str() {
            PUBLIC_RESOURCE => "public readme",
            SECRET_RESOURCE => "secret keys",
            other => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource `{other}`"),
                    None,
                ));
            }
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
    }
}

/// `tool_0001`-style name of the `index`th extra tool.
pub fn extra_tool_name(index: usize) -> String {
    format!("tool_{index:04}")
}

fn dummy_tool(index: usize) -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), JsonObject::new().into());
    Tool::new(
        extra_tool_name(index),
        "A dummy tool for list-size tests.",
        schema,
    )
}

type ToolFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send + 'a>>;

fn dummy_call(context: ToolCallContext<'_, UpstreamServer>) -> ToolFuture<'_> {
    let reply = format!("{} ok", context.name());
    Box::pin(async move { Ok(CallToolResult::success(vec![ContentBlock::text(reply)]).into()) })
}

fn records_tool_def() -> Tool {
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "id": { "type": "string", "description": "Record id." } },
    });
    let serde_json::Value::Object(schema) = schema else {
        unreachable!("a JSON object literal")
    };
    Tool::new(RECORDS_TOOL, "Read a confidential record.", schema).with_annotations(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .open_world(false),
    )
}

fn records_call(context: ToolCallContext<'_, UpstreamServer>) -> ToolFuture<'_> {
    let id = context
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.get("id"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Box::pin(async move {
        match id.as_deref() {
            None => Err(ErrorData::invalid_params("`id` is required", None)),
            Some(MISSING_RECORD) => {
                Ok(CallToolResult::error(vec![ContentBlock::text("no such record")]).into())
            }
            Some(id) => Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                "record {id}: diagnosis confidential"
            ))])
            .into()),
        }
    })
}
