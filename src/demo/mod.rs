//! The bundled demo backend: an ordinary MCP server (rmcp, Streamable HTTP) whose tools
//! read a clinic's patients and medical records from PostgreSQL, where row-level security
//! (RLS) — not the tool code, not the proxy — decides which rows each caller sees.
//! `mcp-warden demo-backend` serves it; `mcp-warden demo` starts it behind the proxy.
//!
//! It knows nothing of the proxy's policies. It learns who is calling only from the
//! identity headers the proxy sets ([`identity`]: `X-MCP-User`, `X-MCP-Roles`,
//! `X-MCP-Patient`, `X-MCP-Department`), so it must be reachable only through the proxy
//! (it listens on loopback). Without identity headers a caller sees no rows at all.
//!
//! # Tools
//!
//! | tool | annotations | does |
//! |---|---|---|
//! | `list_patients` | read-only, closed-world | the patients the caller may see |
//! | `get_medical_records(patient_name)` | read-only, closed-world | one patient's records (name in any case) |
//! | `run_sql(query)` | read-only, closed-world | one statement the agent wrote, under RLS |
//! | `hipaa_compliance_check(text)` | read-only, **open-world** | stands for a call to an outside service ([`compliance`]) |
//!
//! # How the caller reaches the database, and why `run_sql` cannot widen it
//!
//! The agent's SQL runs with the same privileges as the code that binds the identity, so
//! the identity must live somewhere that SQL cannot write. A setting
//! (`SET LOCAL app.user = …`) would not do: any role may call
//! `set_config('app.user', 'someone else', true)`. Instead, for every tool call
//! ([`Database::run_statements`] and friends):
//!
//! 1. **A fresh connection as `mcp_demo_reader`** — a login role that is not superuser,
//!    has no `BYPASSRLS`, owns nothing, belongs to no role, and may only `SELECT` the two
//!    tables (checked at start; the backend refuses to run otherwise). Logging in as it
//!    (rather than `SET ROLE` from a privileged login) means `RESET ROLE`,
//!    `SET SESSION AUTHORIZATION` and `SET ROLE <owner>` lead nowhere. A fresh connection
//!    means nothing a previous call did to its session survives.
//! 2. **`BEGIN … READ WRITE`, then `clinic_private.bind_caller(key, user, roles, patient,
//!    department)`** with bound parameters. This `SECURITY DEFINER` function checks `key`
//!    against a random per-database key that only the owner role can read (the backend
//!    reads it at start through `DATABASE_URL`), then creates a temporary table
//!    `pg_temp.clinic_caller` (`ON COMMIT DROP`) **owned by `mcp_demo_owner`** holding
//!    the caller. The reader has no privilege on it.
//! 3. **`SET TRANSACTION READ ONLY`**. From here nothing in the transaction can create a
//!    table (so neither a second binding nor a look-alike), and PostgreSQL refuses to
//!    switch back to read-write after the first query.
//! 4. **The statement**: the server parses it as one prepared statement (more than one
//!    command is refused by PostgreSQL itself), then it runs; the result rows are read as
//!    text, at most [`db::MAX_ROWS`], within a 5 s statement timeout.
//! 5. **`ROLLBACK`**, and the connection is closed.
//!
//! The RLS policies (`src/demo/migrations/V3__row_level_security.sql`), enabled and
//! **forced** on both tables, read the caller through `clinic_private.caller()`, which
//! returns the binding only if `pg_temp.clinic_caller` exists *and is owned by
//! `mcp_demo_owner`*; otherwise no row, so every policy is false and nothing is visible.
//! A patient sees their own row (names compared case-insensitively; a unique index on
//! `lower(name)` makes that one patient), a nurse the patients of their department, an
//! analyst the patients who consented to research; a record is visible when its patient is.
//!
//! So, inside `run_sql`: `set_config`/`SET` change settings nobody reads; `SET ROLE` and
//! `SET SESSION AUTHORIZATION` are refused; `RESET ROLE` stays the reader; calling
//! `bind_caller` fails (no key, and no `CREATE` in a read-only transaction); reading or
//! writing the binding table or the key is refused; `INSERT`/`UPDATE`/`DELETE`/`COPY
//! FROM` are refused twice (read-only, and no privilege); `COMMIT`/`ROLLBACK` end the
//! transaction — and with it the binding — and nothing runs after them; comments and
//! CTEs change nothing because nothing is decided by reading the SQL text. The tests in
//! `tests/demo_rls.rs` try each of these, directly against the backend and through the proxy.
//!
//! Known limits: statements can read the system catalogs (table names, the policies'
//! text) and `pg_stat_activity`, which shows the text of other concurrent reader
//! sessions' statements (never their rows, and the binding's values are bound parameters,
//! so they never appear there); a statement can use CPU until the 5 s timeout.
//!
//! # Database set-up
//!
//! [`Database::setup`] connects with `DATABASE_URL` (default [`db::DEFAULT_DATABASE_URL`];
//! a superuser such as `postgres`), creates the database if missing, and applies the
//! embedded, versioned migrations in `src/demo/migrations/` (refinery; idempotent): the
//! two roles (cluster-wide, created once), the schema, synthetic seed data, the policies.

pub mod compliance;
pub mod db;
pub mod identity;
pub mod run;
mod server;
pub mod walkthrough;

pub use db::{Database, DbError, QueryOutput, SqlError};
pub use identity::Caller;
pub use server::{serve, MCP_PATH};
