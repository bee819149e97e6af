//! `mcp-warden demo` and `mcp-warden demo-backend`: the orchestration around the demo
//! backend. Make the demo's missing keys, set up the database, start the backend on the
//! configuration's `upstream` address, mint a token per persona, print how to try it,
//! then run the proxy in the foreground.
//!
//! The command line only parses arguments and starts logging; everything here returns a
//! [`DemoError`], and the banner is a plain string ([`banner`]) so tests can read it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::dev_jwt::{mint_dev_jwt, DevClaims, DevJwtError};
use crate::config::Config;
use crate::proxy;

use super::walkthrough::{ensure_keys, mint_biscuit, DemoTokenError, DEMO_AGENT, PERSONAS};
use super::{Database, DbError, MCP_PATH};

/// Why the demo (or the demo backend) could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo's key files could not be created.
    #[error("cannot create the demo keys: {0}")]
    Keys(#[source] crate::biscuit::tools::ToolError),
    /// The proxy could not be built from the configuration.
    #[error(transparent)]
    Build(#[from] crate::exchange::BuildError),
    /// The configuration's `upstream` is not where the demo backend can listen.
    #[error("{}: `upstream` must be http://HOST:PORT{MCP_PATH} for the demo backend", config.display())]
    Upstream {
        /// The configuration file.
        config: PathBuf,
    },
    /// The upstream's host does not resolve.
    #[error("cannot resolve the upstream `{authority}`")]
    Resolve {
        /// `host:port`.
        authority: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The database could not be set up.
    #[error("demo backend: {0}\nhelp: start PostgreSQL, or set DATABASE_URL")]
    Database(#[source] DbError),
    /// The backend's address could not be bound.
    #[error("demo backend: cannot listen on {listen}: {source}")]
    Listen {
        /// The address.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The backend stopped with an error.
    #[error("demo backend: {0}")]
    Serve(#[source] std::io::Error),
    /// A demo JWT could not be minted.
    #[error("cannot mint the demo JWTs: {0}")]
    Jwt(#[from] DevJwtError),
    /// A demo Biscuit could not be minted.
    #[error("cannot mint the demo Biscuits: {0}")]
    Biscuit(#[from] DemoTokenError),
    /// The proxy stopped with an error.
    #[error("{0:#}")]
    Proxy(anyhow::Error),
}

/// The log filter of the demo's terminal: the proxy's decisions, not every MCP message.
pub fn log_filter(level: &str) -> String {
    format!("{level},rmcp=warn,refinery_core=warn,tokio_postgres=warn,pingora_core=warn")
}

/// `mcp-warden demo-backend`: set up the database, then serve until SIGINT or SIGTERM.
pub fn serve_backend(listen: SocketAddr, database_url: &str) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Runtime::new().map_err(DemoError::Runtime)?;
    runtime.block_on(async {
        let (db, listener) = start_backend(listen, database_url).await?;
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        super::serve(listener, db, shutdown)
            .await
            .map_err(DemoError::Serve)
    })
}

/// Set up the database and bind the listener; log where both are.
async fn start_backend(
    listen: SocketAddr,
    database_url: &str,
) -> Result<(Arc<Database>, tokio::net::TcpListener), DemoError> {
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "the demo backend believes the identity headers it receives: anyone who can \
             reach this address can claim to be anyone"
        );
    }
    let db = Database::setup(database_url)
        .await
        .map_err(DemoError::Database)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DemoError::Listen { listen, source })?;
    tracing::info!(
        url = %format!("http://{listen}{MCP_PATH}"),
        database = db.url(),
        "demo backend listening"
    );
    Ok((Arc::new(db), listener))
}

/// `mcp-warden demo`: demo keys, the backend, tokens, then the proxy in the foreground.
/// `config` is loaded (and logging started) by the caller.
pub fn run(config: Config, database_url: &str, ttl: Duration) -> Result<(), DemoError> {
    for created in ensure_keys(&config).map_err(DemoError::Keys)? {
        tracing::info!(file = %created.display(), "created a demo key");
    }
    let config_path = config.path.clone();
    let warden = proxy::Warden::build(config)?;
    let upstream = &warden.config.upstream;
    if upstream.tls || upstream.path != MCP_PATH {
        return Err(DemoError::Upstream {
            config: config_path,
        });
    }
    let backend_addr = std::net::ToSocketAddrs::to_socket_addrs(&upstream.authority)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| DemoError::Resolve {
            authority: upstream.authority.clone(),
        })?;

    let runtime = tokio::runtime::Runtime::new().map_err(DemoError::Runtime)?;
    let (db, listener) = runtime.block_on(start_backend(backend_addr, database_url))?;
    let database = db.url().to_owned();
    runtime.spawn(async move {
        if let Err(e) = super::serve(listener, db, std::future::pending()).await {
            tracing::error!("demo backend stopped: {e}");
        }
    });

    let tokens = tokens(&warden.config, ttl)?;
    let engine = warden.policies.current().engine.name();
    print!(
        "{}",
        banner(&warden.config, engine, &database, &tokens, ttl)
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let result = proxy::run(warden).map_err(DemoError::Proxy);
    runtime.shutdown_background();
    result
}

/// A printed demo token: the shell variable, who it is, the token.
#[derive(Debug, Clone)]
pub struct DemoToken {
    /// The shell variable, e.g. `NURSE` or `NURSE_BISCUIT`.
    pub var: String,
    /// Who it is, e.g. `a nurse of cardiology (JWT)`.
    pub about: String,
    /// The token.
    pub token: String,
}

/// A JWT per persona when the configuration takes JWTs, a Biscuit per persona when it
/// takes Biscuits (suffixed `_BISCUIT` when it takes both). Each JWT has a fresh `jti`,
/// so taint (keyed by the token) starts afresh with every run.
pub fn tokens(config: &Config, ttl: Duration) -> Result<Vec<DemoToken>, DemoError> {
    let jwt = config.raw.auth.jwt.is_some();
    let biscuit = config.raw.auth.biscuit.is_some();
    let mut tokens = Vec::new();
    if jwt {
        for persona in PERSONAS {
            let claims = DevClaims {
                subject: persona.subject.to_owned(),
                roles: persona.roles.iter().map(|r| r.to_string()).collect(),
                scope: String::new(),
                agent: Some(DEMO_AGENT.to_owned()),
                extra: persona
                    .claims
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                    .collect(),
            };
            tokens.push(DemoToken {
                var: persona.var.to_owned(),
                about: format!("{} (JWT)", persona.about),
                token: mint_dev_jwt(
                    config.raw.auth.jwt.as_ref(),
                    &config.base_dir,
                    &claims,
                    ttl,
                    SystemTime::now(),
                )?,
            });
        }
    }
    if biscuit {
        for persona in PERSONAS {
            tokens.push(DemoToken {
                var: if jwt {
                    format!("{}_BISCUIT", persona.var)
                } else {
                    persona.var.to_owned()
                },
                about: format!("{} (Biscuit)", persona.about),
                token: mint_biscuit(config, &persona, ttl)?,
            });
        }
    }
    Ok(tokens)
}

/// What `mcp-warden demo` prints before the proxy starts: the addresses, the tokens as
/// `export` lines, and commands to try.
pub fn banner(
    config: &Config,
    engine: &str,
    database: &str,
    tokens: &[DemoToken],
    ttl: Duration,
) -> String {
    use std::fmt::Write;
    let proxy_url = format!("http://{}{}", config.raw.listen, config.upstream.path);
    let cwd = std::env::current_dir().ok();
    let relative = |path: PathBuf| {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        cwd.as_ref()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or(path)
    };
    let policies = relative(config.base_dir.join(&config.raw.policy.dir));
    let exe = std::env::current_exe()
        .map(relative)
        .unwrap_or_else(|_| PathBuf::from("mcp-warden"));
    let mut out = String::new();
    let _ = writeln!(out, "\nmcp-warden demo\n");
    let _ = writeln!(
        out,
        "  clinic MCP server (demo backend)  http://{}{}   PostgreSQL {database}",
        config.upstream.authority, config.upstream.path
    );
    let _ = writeln!(
        out,
        "  mcp-warden                        {proxy_url}   policies {} ({engine})",
        policies.display(),
    );
    let _ = writeln!(
        out,
        "  metrics, probes                   http://{}/metrics, /healthz, /readyz",
        config.raw.admin.listen
    );
    let _ = writeln!(
        out,
        "\nTokens (valid {}); paste into another shell:\n",
        humantime::format_duration(ttl)
    );
    for t in tokens {
        let _ = writeln!(out, "  # {}", t.about);
        let _ = writeln!(out, "  export {}={}", t.var, t.token);
    }
    let _ = writeln!(
        out,
        "\nThen, in that shell (see \"The demo walkthrough\" in the README):\n\n  \
         export MCP_URL={proxy_url}\n  \
         scripts/mcp-call.sh \"$PATIENT\" tools/list\n  \
         scripts/mcp-call.sh \"$PATIENT\" tools/call '{{\"name\":\"get_medical_records\",\"arguments\":{{\"patient_name\":\"Erin oRTEga\"}}}}'\n  \
         scripts/mcp-call.sh \"$PATIENT\" tools/call '{{\"name\":\"run_sql\",\"arguments\":{{\"query\":\"SELECT * FROM medical_records\"}}}}'\n  \
         scripts/mcp-call.sh \"$NURSE\" tools/call '{{\"name\":\"list_patients\"}}'"
    );
    if let Some(nurse) = tokens
        .iter()
        .find(|t| t.var.starts_with("NURSE") && t.about.ends_with("(Biscuit)"))
    {
        let _ = writeln!(
            out,
            "\n  # Narrow the nurse's Biscuit to one patient's records for five minutes (offline):\n  \
             ONE=$({} token attenuate --token \"${}\" --check 'tool(\"get_medical_records\")' \\\n      \
             --check 'arg(\"patient_name\", \"bob nguyen\")' --ttl 5m)\n  \
             scripts/mcp-call.sh \"$ONE\" tools/call '{{\"name\":\"get_medical_records\",\"arguments\":{{\"patient_name\":\"bob nguyen\"}}}}'",
            exe.display(),
            nurse.var
        );
    }
    let _ = writeln!(
        out,
        "\nAudit lines (one JSON line per decision) follow on standard output, diagnostics on\n\
         standard error. Ctrl-C stops the demo.\n"
    );
    out
}
