//! The demo backend for tests: started in-process on its own database, alone (as if the
//! proxy were bypassed) or behind the real proxy with the shipped demo policies.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::ServiceError;
use serde_json::{json, Value};

use mcp_warden::demo::walkthrough::Persona;
use mcp_warden::demo::Database;

use super::biscuit::Keys;
use super::client::{call_tool, list_tool_names, result_text, ClientBuilder, McpClient, Revision};
use super::postgres::TestDb;
use super::tokens::{claims, sign, AUTH_TOML};
use super::warden::Warden;

/// The identity headers and taint sources of `config/demo.toml`
/// (`the_tests_use_the_demo_configuration` checks they match).
pub const DEMO_TOML: &str = r#"
[identity_headers]
claims = { "X-MCP-Patient" = "patient_name", "X-MCP-Department" = "department" }

[taint]
sources = [
  { tool = "get_medical_records", label = "phi" },
  { tool = "run_sql", label = "phi" },
  { tool = "list_patients", label = "phi" },
]
"#;

/// Proxy configuration for the Cedar demo policies with the test JWT settings.
pub fn demo_proxy_toml() -> String {
    format!("{AUTH_TOML}\n{DEMO_TOML}")
}

/// `[auth.biscuit]` trusting `keys`' root 1, with the demo's claim facts.
pub fn demo_biscuit_auth_toml(keys: &Keys) -> String {
    format!(
        "\n[auth.biscuit]\nclaim_facts = [\"patient_name\", \"department\"]\n\
         [[auth.biscuit.keys]]\nid = 1\npublic_key_file = \"{}\"\n",
        keys.public("root1").display()
    )
}

/// The shipped Cedar demo policies.
pub fn demo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/demo/cedar")
}

/// The shipped Biscuit demo authorizer.
pub fn demo_biscuit_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/demo/biscuit")
}

/// A Biscuit for a persona, signed by `keys`' root 1.
pub fn persona_biscuit(keys: &Keys, persona: &Persona) -> String {
    let facts = persona.biscuit_facts();
    let facts: Vec<&str> = facts.iter().map(String::as_str).collect();
    keys.mint("root1", 1, &facts, &[])
}

/// A demo backend serving until dropped.
pub struct Backend {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The database it uses.
    pub db: Arc<Database>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Backend {
    /// Set up `database_url` and serve on `127.0.0.1:0`.
    pub async fn start(database_url: &str) -> Backend {
        let db = Database::setup(database_url)
            .await
            .unwrap_or_else(|e| panic!("demo database set-up: {e}"));
        let db = Arc::new(db);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}{}",
            listener.local_addr().unwrap(),
            mcp_warden::demo::MCP_PATH
        );
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(mcp_warden::demo::serve(listener, db.clone(), async {
            let _ = stopped.await;
        }));
        Backend {
            url,
            db,
            stop: Some(stop),
            task,
        }
    }

    /// A client talking to the backend directly, sending these identity headers itself.
    pub async fn client(&self, headers: &[(&str, &str)]) -> McpClient {
        let mut builder = ClientBuilder::new(&self.url, Revision::legacy());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.connect().await
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A database, the backend on it, and the proxy in front with the demo policies.
pub struct Clinic {
    /// The proxy.
    pub warden: Warden,
    /// The backend.
    pub backend: Backend,
    /// The database (dropped last).
    pub db: TestDb,
}

impl Clinic {
    /// The Cedar demo policies, JWTs. `None` when PostgreSQL is unreachable outside CI
    /// (see [`TestDb::create`]).
    pub async fn start() -> Option<Clinic> {
        Self::start_with(&demo_policies(), &demo_proxy_toml()).await
    }

    /// The proxy with `policies` and `extra` configuration.
    pub async fn start_with(policies: &Path, extra: &str) -> Option<Clinic> {
        let db = TestDb::create().await?;
        let backend = Backend::start(&db.url).await;
        let warden = Warden::start(&backend.url, policies, extra);
        Some(Clinic {
            warden,
            backend,
            db,
        })
    }

    /// A client through the proxy with `token`, after a `tools/list` (so the proxy has
    /// learned the tools' annotations, as with any real client).
    pub async fn client(&self, token: &str) -> McpClient {
        let client = ClientBuilder::new(&self.warden.url, Revision::legacy())
            .bearer(token)
            .connect()
            .await;
        list_tool_names(&client).await;
        client
    }
}

/// A JWT (test secret) for a persona.
pub fn persona_token(persona: &Persona) -> String {
    let mut c = claims(persona.subject, persona.roles, "");
    for (name, value) in persona.claims {
        c[*name] = json!(value);
    }
    sign(&c)
}

/// A JWT (test secret) for `sub` with `roles` and string claims.
pub fn token_with(sub: &str, roles: &[&str], extra: &[(&str, &str)]) -> String {
    let mut c = claims(sub, roles, "");
    for (name, value) in extra {
        c[*name] = json!(value);
    }
    sign(&c)
}

/// The identity headers the proxy would send for a patient.
pub fn patient_headers(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-mcp-user", "p".to_owned()),
        ("x-mcp-roles", "patient".to_owned()),
        ("x-mcp-patient", name.to_owned()),
    ]
}

/// How a `run_sql` call ended.
#[derive(Debug)]
pub enum SqlOutcome {
    /// Rows: `{"columns": [...], "rows": [[...]], "truncated": bool}`.
    Rows(Value),
    /// The statement failed in the database (a tool error); the text says why.
    Failed(String),
    /// A JSON-RPC error: the proxy's refusal or the backend's (database unavailable).
    Refused(i32, String),
}

impl SqlOutcome {
    /// The values of `column`, panicking unless this is `Rows`.
    pub fn column(&self, column: &str) -> Vec<Value> {
        let SqlOutcome::Rows(out) = self else {
            panic!("expected rows, got {self:?}");
        };
        let index = out["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("no column `{column}` in {out}"));
        out["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[index].clone())
            .collect()
    }

    /// The number of rows, panicking unless this is `Rows`.
    pub fn row_count(&self) -> usize {
        match self {
            SqlOutcome::Rows(out) => out["rows"].as_array().unwrap().len(),
            other => panic!("expected rows, got {other:?}"),
        }
    }
}

/// Call `run_sql` with `query`.
pub async fn run_sql(client: &McpClient, query: &str) -> SqlOutcome {
    match call_tool(client, "run_sql", json!({ "query": query })).await {
        Ok(result) if result.is_error == Some(true) => SqlOutcome::Failed(result_text(&result)),
        Ok(result) => SqlOutcome::Rows(
            serde_json::from_str(&result_text(&result)).expect("run_sql answers JSON"),
        ),
        Err(ServiceError::McpError(e)) => SqlOutcome::Refused(e.code.0, e.message.into_owned()),
        Err(e) => panic!("run_sql `{query}`: {e}"),
    }
}

/// Call a tool that answers a JSON array (`list_patients`, `get_medical_records`).
pub async fn call_json(
    client: &McpClient,
    tool: &str,
    args: Value,
) -> Result<Value, (i32, String)> {
    match call_tool(client, tool, args).await {
        Ok(result) => {
            assert_ne!(
                result.is_error,
                Some(true),
                "{tool}: {}",
                result_text(&result)
            );
            Ok(serde_json::from_str(&result_text(&result)).expect("JSON tool answer"))
        }
        Err(ServiceError::McpError(e)) => Err((e.code.0, e.message.into_owned())),
        Err(e) => panic!("{tool}: {e}"),
    }
}

/// The `name` (or `patient`) field of each object in a JSON array.
pub fn names(value: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Sorted strings of a column.
pub fn sorted_strings(values: Vec<Value>) -> Vec<String> {
    let mut out: Vec<String> = values
        .into_iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    out.sort();
    out
}
