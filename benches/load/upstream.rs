//! The MCP server the load benchmark measures against: the official Rust SDK (`rmcp`),
//! run as its own process (`load upstream …`) so that the load driver, the proxy and the
//! server each have their own runtime, as they would in production.
//!
//! Tools: `echo` (read-only, closed world: allowed by the bench policies), `delete_records`
//! (destructive: denied by them) and `tool_0001`… (`--tools N`), alternately read-only and
//! destructive, so that the proxy hides half of a `tools/list` for the bench caller.
//! `--mode json` is rmcp's stateless mode with `application/json` answers (the request
//! benchmarks); `--mode sse` is its stateful mode with sessions and event streams (the
//! session-memory benchmark).

use std::{future::Future, pin::Pin, sync::Arc};

use rmcp::{
    handler::server::{
        router::tool::{ToolRoute, ToolRouter},
        tool::ToolCallContext,
    },
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stateless, `application/json` answers.
    Json,
    /// Stateful sessions, `text/event-stream` answers and GET streams.
    Sse,
}

#[derive(Clone)]
struct Server {
    tools: Arc<ToolRouter<Server>>,
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-warden-bench-upstream", "0.1.0"))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, ErrorData> {
        Ok(rmcp::model::ListToolsResult::with_all_items(
            self.tools.list_all(),
        ))
    }
}

type ToolFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send + 'a>>;

/// A tool with a realistic input schema and the given hints.
fn tool(name: String, description: &str, read_only: bool) -> Tool {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "text": { "type": "string", "description": "Text to process." },
            "limit": { "type": "integer", "minimum": 1, "maximum": 100 }
        },
        "required": ["text"]
    });
    let serde_json::Value::Object(schema) = schema else {
        unreachable!("a JSON object literal")
    };
    Tool::new(name, description.to_owned(), JsonObject::from(schema)).with_annotations(
        ToolAnnotations::new()
            .read_only(read_only)
            .destructive(!read_only)
            .open_world(false),
    )
}

/// Every tool answers with its own name and the `text` argument.
fn reply(context: ToolCallContext<'_, Server>) -> ToolFuture<'_> {
    let text = context
        .arguments
        .as_ref()
        .and_then(|a| a.get("text"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let reply = format!("{}: {text}", context.name());
    Box::pin(async move { Ok(CallToolResult::success(vec![ContentBlock::text(reply)]).into()) })
}

fn router(tools: usize) -> ToolRouter<Server> {
    let mut router = ToolRouter::new();
    router.add_route(ToolRoute::new_dyn(
        tool("echo".into(), "Return the text unchanged.", true),
        reply,
    ));
    router.add_route(ToolRoute::new_dyn(
        tool("delete_records".into(), "Delete every record.", false),
        reply,
    ));
    for index in 1..=tools {
        let read_only = index % 2 == 1;
        router.add_route(ToolRoute::new_dyn(
            tool(
                format!("tool_{index:04}"),
                "A tool of a large catalogue, for list filtering.",
                read_only,
            ),
            reply,
        ));
    }
    router
}

/// Serves on `127.0.0.1:<port>` at `/mcp` until killed; prints `READY <addr>` once bound.
pub fn serve(port: u16, tools: usize, mode: Mode) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let config = match mode {
            Mode::Json => StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
            Mode::Sse => StreamableHttpServerConfig::default()
                .with_legacy_session_mode(true)
                .with_json_response(false),
        }
        .disable_allowed_hosts();
        let server = Server {
            tools: Arc::new(router(tools)),
        };
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let app = axum::Router::new().route_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the bench upstream");
        println!("READY {}", listener.local_addr().expect("local address"));
        axum::serve(listener, app).await.expect("serve");
    });
    std::process::exit(0)
}
