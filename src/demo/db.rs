//! Postgres for the demo backend: set-up (database, migrations, safety checks) and the
//! caller-bound, read-only transaction every tool runs in.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::identity::Caller;

/// Where the demo's data lives when `DATABASE_URL` is not set. The database is created
/// when missing.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/mcp_warden_demo";
/// The role that owns the clinic's tables and functions (no login).
pub const OWNER_ROLE: &str = "mcp_demo_owner";
/// The role every tool's query runs as: may log in, may SELECT, nothing more.
pub const READER_ROLE: &str = "mcp_demo_reader";
/// The reader's password, set by the first migration. Not a secret: see the module docs.
const READER_PASSWORD: &str = "mcp_demo_reader";
/// Most rows one `run_sql` statement returns; the rest are cut off.
pub const MAX_ROWS: usize = 500;
/// Server-side limit on one statement.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The history table of the embedded migrations.
const MIGRATION_TABLE: &str = "mcp_warden_demo_migrations";

mod embedded {
    refinery::embed_migrations!("src/demo/migrations");
}

/// A database problem the backend reports as a JSON-RPC error (as opposed to a failing
/// `run_sql` statement, which is the agent's to fix: [`SqlError`]).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` does not parse.
    #[error("invalid database URL: {message}\nhelp: expected postgres://user[:password]@host:port/database")]
    BadUrl {
        /// Why.
        message: String,
    },
    /// No connection could be made.
    #[error(
        "database unavailable: cannot reach PostgreSQL at `{url}`: {}",
        chain(source)
    )]
    Unreachable {
        /// The URL tried, without its password.
        url: String,
        /// The driver's reason.
        source: tokio_postgres::Error,
    },
    /// A connection that was working failed.
    #[error(
        "database unavailable: lost the connection to PostgreSQL at `{url}`: {}",
        chain(source)
    )]
    Lost {
        /// The URL, without its password.
        url: String,
        /// The driver's reason.
        source: tokio_postgres::Error,
    },
    /// A set-up step failed.
    #[error("PostgreSQL at `{url}`: {step}: {}", chain(source))]
    Setup {
        /// The URL, without its password.
        url: String,
        /// What was being done.
        step: &'static str,
        /// The driver's reason.
        source: tokio_postgres::Error,
    },
    /// The embedded migrations did not apply.
    #[error("PostgreSQL at `{url}`: migrations failed: {}", chain(source))]
    Migrate {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: refinery::Error,
    },
    /// The database would not enforce what the demo promises; the backend refuses to run.
    #[error("PostgreSQL at `{url}`: unsafe set-up: {reason}")]
    Unsafe {
        /// The URL, without its password.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A tool's work took longer than allowed.
    #[error("database did not answer within {seconds}s")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
}

/// A statement the agent wrote failed in the database (syntax, permissions, read-only
/// transaction, timeout…). Shown to the agent as a tool error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlError {
    /// SQLSTATE, when the server gave one.
    pub code: Option<String>,
    /// The server's message (with its detail and hint, when present).
    pub message: String,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl SqlError {
    fn from_db(e: &tokio_postgres::error::DbError) -> Self {
        let mut message = e.message().to_owned();
        if let Some(detail) = e.detail() {
            message.push_str("\ndetail: ");
            message.push_str(detail);
        }
        if let Some(hint) = e.hint() {
            message.push_str("\nhint: ");
            message.push_str(hint);
        }
        SqlError {
            code: Some(e.code().code().to_owned()),
            message,
        }
    }

    fn not_run(reason: &str) -> Self {
        SqlError {
            code: None,
            message: format!("not run: {reason}"),
        }
    }
}

/// What one statement returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryOutput {
    /// Column names, in order (empty for statements that return no rows).
    pub columns: Vec<String>,
    /// Rows, each a list of values in column order. Integers, booleans and JSON become
    /// JSON; other values are their PostgreSQL text form; NULL is `null`.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows beyond [`MAX_ROWS`] were cut off.
    pub truncated: bool,
}

/// The demo's database: how to reach it as the reader, and the key that proves a
/// binding comes from this backend.
pub struct Database {
    url: String,
    reader: Config,
    binding_key: String,
    timeout: Duration,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connect with `database_url` (a superuser, e.g. `postgres`), create the database if
    /// it is missing, apply the embedded migrations, check that row-level security will
    /// hold, and check that the reader role can log in.
    pub async fn setup(database_url: &str) -> Result<Database, DbError> {
        let admin: Config =
            database_url
                .parse()
                .map_err(|e: tokio_postgres::Error| DbError::BadUrl {
                    message: e.to_string(),
                })?;
        let url = redacted(&admin);
        let client = connect_or_create(&admin, &url).await?;
        let setup = |step| {
            let url = url.clone();
            move |source| DbError::Setup { url, step, source }
        };

        // One migrator at a time per database (two demos started together).
        client
            .batch_execute("SELECT pg_advisory_lock(hashtext('mcp-warden-demo-migrations'))")
            .await
            .map_err(setup("taking the migration lock"))?;
        let mut client = client;
        embedded::migrations::runner()
            .set_migration_table_name(MIGRATION_TABLE)
            .run_async(&mut client)
            .await
            .map_err(|source| DbError::Migrate {
                url: url.clone(),
                source,
            })?;
        client
            .batch_execute("SELECT pg_advisory_unlock(hashtext('mcp-warden-demo-migrations'))")
            .await
            .map_err(setup("releasing the migration lock"))?;

        let binding_key: String = client
            .query_one("SELECT key FROM clinic_private.binding_key", &[])
            .await
            .map_err(setup(
                "reading the binding key (the DATABASE_URL role must be a superuser)",
            ))?
            .get(0);
        check_safety(&client, &url).await?;

        let mut reader = admin.clone();
        reader
            .user(READER_ROLE)
            .password(READER_PASSWORD)
            .application_name("mcp-warden-demo")
            .options(format!(
                "-c search_path=clinic -c default_transaction_read_only=on \
                 -c statement_timeout={} -c lock_timeout=2000 \
                 -c idle_in_transaction_session_timeout=30000",
                STATEMENT_TIMEOUT.as_millis()
            ));
        let db = Database {
            url,
            reader,
            binding_key,
            timeout: STATEMENT_TIMEOUT * 3,
        };
        // Fail now, not on the first tool call, if pg_hba.conf keeps the reader out.
        db.reader_connection().await.map_err(|e| match e {
            DbError::Unreachable { url, source } => DbError::Setup {
                url,
                step: "logging in as mcp_demo_reader (pg_hba.conf must allow it a password login)",
                source,
            },
            other => other,
        })?;
        Ok(db)
    }

    /// The database URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The patients the caller may see, as a JSON array.
    pub async fn list_patients(&self, caller: &Caller) -> Result<Value, DbError> {
        self.json_query(
            caller,
            "SELECT coalesce(json_agg(json_build_object(
                 'name', name, 'department', department,
                 'date_of_birth', date_of_birth, 'research_consent', research_consent)
               ORDER BY lower(name)), '[]')::text
             FROM clinic.patients",
            &[],
        )
        .await
    }

    /// The medical records of the patient named `patient_name` (any case) that the caller
    /// may see, as a JSON array: empty when there is no such patient or the caller may not
    /// see them (the two are indistinguishable on purpose).
    pub async fn medical_records(
        &self,
        caller: &Caller,
        patient_name: &str,
    ) -> Result<Value, DbError> {
        self.json_query(
            caller,
            "SELECT coalesce(json_agg(json_build_object(
                 'patient', p.name, 'visit_date', r.visit_date, 'diagnosis', r.diagnosis,
                 'treatment', r.treatment, 'notes', r.notes)
               ORDER BY r.visit_date, r.id), '[]')::text
             FROM clinic.medical_records r
             JOIN clinic.patients p ON p.id = r.patient_id
             WHERE lower(p.name) = lower($1)",
            &[&patient_name],
        )
        .await
    }

    /// Run `statements` one after another in one transaction bound to `caller`, read-only,
    /// as the reader role: what `run_sql` does with its single statement, and what tests
    /// use to try sequences of statements inside one transaction.
    ///
    /// Each statement is checked to be exactly one statement (the server's own parser, via
    /// the extended protocol) and runs under a savepoint, so a failing statement does not
    /// stop the next one. A statement that ends the transaction (or whose output was cut
    /// off) stops the sequence: the later statements are reported as not run.
    pub async fn run_statements(
        &self,
        caller: &Caller,
        statements: &[&str],
    ) -> Result<Vec<Result<QueryOutput, SqlError>>, DbError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.run_statements_inner(caller, statements))
            .await
            .map_err(|_| DbError::Timeout { seconds })?
    }

    async fn run_statements_inner(
        &self,
        caller: &Caller,
        statements: &[&str],
    ) -> Result<Vec<Result<QueryOutput, SqlError>>, DbError> {
        let session = self.bound_transaction(caller).await?;
        let client = &session.client;
        let lost = |source| DbError::Lost {
            url: self.url.clone(),
            source,
        };
        let mut outcomes = Vec::with_capacity(statements.len());
        let mut stopped: Option<&str> = None;
        for sql in statements {
            if let Some(reason) = stopped {
                outcomes.push(Err(SqlError::not_run(reason)));
                continue;
            }
            client
                .batch_execute("SAVEPOINT agent_statement")
                .await
                .map_err(lost)?;
            match run_one(client, sql).await {
                Ok(output) => {
                    if output.truncated {
                        stopped = Some("the previous statement's output was cut off");
                    }
                    outcomes.push(Ok(output));
                }
                Err(e) => match e.as_db_error() {
                    Some(db) => {
                        outcomes.push(Err(SqlError::from_db(db)));
                        if client
                            .batch_execute("ROLLBACK TO SAVEPOINT agent_statement")
                            .await
                            .is_err()
                        {
                            stopped = Some("an earlier statement ended the transaction");
                        }
                    }
                    None if e.is_closed() => return Err(lost(e)),
                    // The driver could not follow the statement (e.g. COPY … TO STDOUT);
                    // the connection is not usable after that.
                    None => {
                        outcomes.push(Err(SqlError {
                            code: None,
                            message: format!(
                                "run_sql returns the rows of queries only: {}",
                                chain(&e)
                            ),
                        }));
                        stopped = Some("the previous statement could not be run here");
                    }
                },
            }
            if stopped.is_none() && !session.still_open(client).await {
                stopped = Some("an earlier statement ended the transaction");
            }
        }
        if stopped.is_none() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        Ok(outcomes)
    }

    /// A fixed query returning one JSON text value, in a bound transaction.
    async fn json_query(
        &self,
        caller: &Caller,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Value, DbError> {
        let seconds = self.timeout.as_secs();
        let work = async {
            let session = self.bound_transaction(caller).await?;
            let lost = |source| DbError::Lost {
                url: self.url.clone(),
                source,
            };
            let text: String = session
                .client
                .query_one(sql, params)
                .await
                .map_err(lost)?
                .get(0);
            let _ = session.client.batch_execute("ROLLBACK").await;
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| DbError::Timeout { seconds })?
    }

    async fn reader_connection(&self) -> Result<Client, DbError> {
        let (client, connection) =
            self.reader
                .connect(NoTls)
                .await
                .map_err(|source| DbError::Unreachable {
                    url: self.url.clone(),
                    source,
                })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A fresh connection as the reader, in a transaction bound to `caller` and then made
    /// read-only. Nothing of a previous call survives: no pooled session state to inherit.
    async fn bound_transaction(&self, caller: &Caller) -> Result<BoundTransaction, DbError> {
        let client = self.reader_connection().await?;
        let setup = |step| {
            let url = self.url.clone();
            move |source| DbError::Setup { url, step, source }
        };
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ WRITE")
            .await
            .map_err(setup("starting the caller's transaction"))?;
        client
            .execute(
                "SELECT clinic_private.bind_caller($1, $2, $3, $4, $5)",
                &[
                    &self.binding_key,
                    &caller.user,
                    &caller.roles,
                    &caller.patient,
                    &caller.department,
                ],
            )
            .await
            .map_err(setup("binding the caller"))?;
        // From here on nothing can write, so nothing can create or change a binding;
        // and PostgreSQL refuses to go back to read-write after the first query.
        client
            .batch_execute("SET TRANSACTION READ ONLY")
            .await
            .map_err(setup("making the transaction read-only"))?;
        let started = client
            .query_one("SELECT transaction_timestamp()::text", &[])
            .await
            .map_err(setup("reading the transaction's start"))?
            .get(0);
        Ok(BoundTransaction { client, started })
    }
}

struct BoundTransaction {
    client: Client,
    /// `transaction_timestamp()` of the bound transaction: a different value later means
    /// a statement ended it.
    started: String,
}

impl BoundTransaction {
    async fn still_open(&self, client: &Client) -> bool {
        match client
            .query_one("SELECT transaction_timestamp()::text", &[])
            .await
        {
            Ok(row) => row.get::<_, String>(0) == self.started,
            Err(_) => false,
        }
    }
}

/// One statement: parsed by the server as a prepared statement (which refuses more than
/// one command and tells the column types), then run with the simple protocol, whose
/// text results cover every type.
async fn run_one(client: &Client, sql: &str) -> Result<QueryOutput, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    drop(statement);
    let mut output = QueryOutput {
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
    };
    let stream = client.simple_query_raw(sql).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(message) = stream.next().await {
        match message? {
            SimpleQueryMessage::RowDescription(columns) => {
                output.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if output.rows.len() == MAX_ROWS {
                    output.truncated = true;
                    break;
                }
                let values = (0..row.len())
                    .map(|i| to_json(row.get(i), types.get(i)))
                    .collect();
                output.rows.push(values);
            }
            _ => {}
        }
    }
    Ok(output)
}

/// A PostgreSQL text value as JSON, typed where the column type says how.
fn to_json(text: Option<&str>, ty: Option<&Type>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let typed = match ty {
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(t) => {
            text.parse::<i64>().ok().map(Value::from)
        }
        Some(t) if *t == Type::BOOL => match text {
            "t" => Some(Value::Bool(true)),
            "f" => Some(Value::Bool(false)),
            _ => None,
        },
        Some(t) if *t == Type::JSON || *t == Type::JSONB => serde_json::from_str(text).ok(),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::String(text.to_owned()))
}

/// Connect as the administrator; when the database does not exist, create it through the
/// `postgres` maintenance database first.
async fn connect_or_create(admin: &Config, url: &str) -> Result<Client, DbError> {
    match connect(admin).await {
        Ok(client) => Ok(client),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let name = admin.get_dbname().unwrap_or_default().to_owned();
            let mut maintenance = admin.clone();
            maintenance.dbname("postgres");
            let client = connect(&maintenance)
                .await
                .map_err(|source| DbError::Unreachable {
                    url: redacted(&maintenance),
                    source,
                })?;
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match client.batch_execute(&create).await {
                Ok(()) => tracing::info!(database = %name, "created the demo database"),
                // Someone else created it meanwhile.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(source) => {
                    return Err(DbError::Setup {
                        url: url.to_owned(),
                        step: "creating the database",
                        source,
                    })
                }
            }
            connect(admin).await.map_err(|source| DbError::Unreachable {
                url: url.to_owned(),
                source,
            })
        }
        Err(source) => Err(DbError::Unreachable {
            url: url.to_owned(),
            source,
        }),
    }
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Refuse to serve unless the database enforces what the demo promises: the reader is not
/// a superuser, cannot bypass RLS, belongs to no role, owns nothing, can only SELECT; every
/// relation of the `clinic` schema is a table with row-level security enabled and forced.
async fn check_safety(client: &Client, url: &str) -> Result<(), DbError> {
    let unsafe_ = |reason: String| DbError::Unsafe {
        url: url.to_owned(),
        reason,
    };
    let setup = |source| DbError::Setup {
        url: url.to_owned(),
        step: "checking the roles and tables",
        source,
    };
    let role = client
        .query_opt(
            "SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb
                    OR r.rolreplication,
                    EXISTS (SELECT FROM pg_roles m
                            WHERE m.oid <> r.oid AND pg_has_role(r.oid, m.oid, 'MEMBER')),
                    EXISTS (SELECT FROM pg_class c WHERE c.relowner = r.oid)
                    OR EXISTS (SELECT FROM pg_proc p WHERE p.proowner = r.oid)
                    OR EXISTS (SELECT FROM pg_namespace n WHERE n.nspowner = r.oid)
             FROM pg_roles r WHERE r.rolname = $1",
            &[&READER_ROLE],
        )
        .await
        .map_err(setup)?
        .ok_or_else(|| unsafe_(format!("role `{READER_ROLE}` does not exist")))?;
    let (privileged, member, owns): (bool, bool, bool) = (role.get(0), role.get(1), role.get(2));
    if privileged {
        return Err(unsafe_(format!(
            "role `{READER_ROLE}` has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION"
        )));
    }
    if member {
        return Err(unsafe_(format!(
            "role `{READER_ROLE}` is a member of another role"
        )));
    }
    if owns {
        return Err(unsafe_(format!(
            "role `{READER_ROLE}` owns objects in this database"
        )));
    }
    let relations = client
        .query(
            "SELECT c.relname, c.relkind = 'r', c.relrowsecurity, c.relforcerowsecurity,
                    pg_get_userbyid(c.relowner) = $2,
                    has_table_privilege($1, c.oid,
                        'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
                    has_schema_privilege($1, n.oid, 'CREATE')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'clinic' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             ORDER BY c.relname",
            &[&READER_ROLE, &OWNER_ROLE],
        )
        .await
        .map_err(setup)?;
    if relations.is_empty() {
        return Err(unsafe_("the `clinic` schema has no tables".to_owned()));
    }
    for row in relations {
        let name: String = row.get(0);
        let checks: [(bool, &str); 6] = [
            (row.get(1), "is not a plain table"),
            (row.get(2), "does not have row-level security enabled"),
            (row.get(3), "does not force row-level security"),
            (row.get(4), "is not owned by mcp_demo_owner"),
            (!row.get::<_, bool>(5), "grants the reader more than SELECT"),
            (
                !row.get::<_, bool>(6),
                "is in a schema the reader may create in",
            ),
        ];
        if let Some((_, problem)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(unsafe_(format!("`clinic.{name}` {problem}")));
        }
    }
    Ok(())
}

/// An error and its sources, each once: `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// `postgres://user@host:port/database`, never the password.
pub fn redacted(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => format!("[{host}]"),
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        let config: Config = "postgres://alice:s3cret@db.example:6543/clinic"
            .parse()
            .unwrap();
        assert_eq!(redacted(&config), "postgres://alice@db.example:6543/clinic");
        let config: Config = "postgres://postgres@127.0.0.1/x".parse().unwrap();
        assert_eq!(redacted(&config), "postgres://postgres@127.0.0.1:5432/x");
    }

    #[test]
    fn values_are_typed_by_column() {
        assert_eq!(to_json(Some("42"), Some(&Type::INT4)), Value::from(42));
        assert_eq!(to_json(Some("t"), Some(&Type::BOOL)), Value::Bool(true));
        assert_eq!(
            to_json(Some(r#"{"a":1}"#), Some(&Type::JSONB)),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            to_json(Some("2024-02-10"), Some(&Type::DATE)),
            Value::from("2024-02-10")
        );
        assert_eq!(
            to_json(Some("1.5"), Some(&Type::NUMERIC)),
            Value::from("1.5")
        );
        assert_eq!(to_json(None, Some(&Type::TEXT)), Value::Null);
        assert_eq!(to_json(Some("x"), None), Value::from("x"));
    }

    #[test]
    fn sql_errors_show_their_sqlstate() {
        let e = SqlError {
            code: Some("42501".into()),
            message: "permission denied for table patients".into(),
        };
        assert_eq!(
            e.to_string(),
            "permission denied for table patients (SQLSTATE 42501)"
        );
    }
}
