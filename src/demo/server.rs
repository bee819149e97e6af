//! The MCP server: four tools over [`Database`], served over Streamable HTTP by rmcp.

use std::future::Future;
use std::sync::Arc;

use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, ServerHandler,
};
use serde::Deserialize;

use super::compliance;
use super::db::{Database, DbError};
use super::identity::Caller;

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";

const INSTRUCTIONS: &str = "A clinic's patients and medical records (synthetic data). \
Each caller sees only the rows the database lets them see.";

/// Serve the demo backend on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: Arc<Database>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = StreamableHttpServerConfig::default();
    let cancel = config.cancellation_token.clone();
    let server = ClinicServer::new(db);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .route_service(MCP_PATH, service)
        .fallback(|| async { http::StatusCode::NOT_FOUND });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
}

#[derive(Clone)]
struct ClinicServer {
    db: Arc<Database>,
    tool_router: Arc<ToolRouter<ClinicServer>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct RecordsArgs {
    /// The patient's full name, e.g. "Erin oRTEga" (any case).
    patient_name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SqlArgs {
    /// One PostgreSQL SELECT statement.
    query: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct TextArgs {
    /// The text to check.
    text: String,
}

#[tool_router]
impl ClinicServer {
    fn new(db: Arc<Database>) -> Self {
        ClinicServer {
            db,
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    /// List the patients you may see: name, department, date of birth, research consent.
    #[tool(annotations(
        title = "List patients",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn list_patients(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = caller(&parts)?;
        json_result(self.db.list_patients(&caller).await)
    }

    /// The medical records of one patient (visit date, diagnosis, treatment, notes), if
    /// you may see them; an empty list otherwise.
    #[tool(annotations(
        title = "Get medical records",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn get_medical_records(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(args): Parameters<RecordsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = caller(&parts)?;
        json_result(self.db.medical_records(&caller, &args.patient_name).await)
    }

    /// Run one read-only SQL statement (PostgreSQL) and return its rows as
    /// {"columns": [...], "rows": [[...]], "truncated": bool} (at most 500 rows). Tables:
    /// patients(id, name, department, date_of_birth, research_consent) and
    /// medical_records(id, patient_id → patients.id, visit_date, diagnosis, treatment,
    /// notes). Row-level security shows you only the rows you may see.
    #[tool(annotations(
        title = "Run SQL",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn run_sql(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(args): Parameters<SqlArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = caller(&parts)?;
        let mut outcomes = self
            .db
            .run_statements(&caller, &[&args.query])
            .await
            .map_err(unavailable)?;
        match outcomes.pop() {
            Some(Ok(output)) => Ok(CallToolResult::success(vec![ContentBlock::text(
                serde_json::to_string(&output).unwrap_or_default(),
            )])),
            Some(Err(e)) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "query failed: {e}"
            ))])),
            None => Err(ErrorData::internal_error("no statement was run", None)),
        }
    }

    /// Check a text for HIPAA identifiers with an external compliance service before it
    /// is shared.
    #[tool(annotations(
        title = "HIPAA compliance check",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = true
    ))]
    async fn hipaa_compliance_check(
        &self,
        Parameters(args): Parameters<TextArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let report = compliance::check(&args.text);
        Ok(CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string(&report).unwrap_or_default(),
        )]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ClinicServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-warden-demo-clinic",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }
}

fn caller(parts: &http::request::Parts) -> Result<Caller, ErrorData> {
    Caller::from_headers(&parts.headers)
        .map_err(|e| ErrorData::invalid_request(e.to_string(), None))
}

fn json_result(result: Result<serde_json::Value, DbError>) -> Result<CallToolResult, ErrorData> {
    let value = result.map_err(unavailable)?;
    Ok(CallToolResult::success(vec![ContentBlock::text(
        value.to_string(),
    )]))
}

fn unavailable(e: DbError) -> ErrorData {
    tracing::warn!("{e}");
    ErrorData::internal_error(e.to_string(), None)
}
