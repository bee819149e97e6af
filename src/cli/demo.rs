//! `mcp-warden demo` and `mcp-warden demo-backend`: arguments; the work is in
//! `mcp_warden::demo::run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use mcp_warden::{config, demo};

use super::logging;

/// Arguments of `mcp-warden demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo configuration. The backend listens on its `upstream` address.
    #[arg(long, short, default_value = "config/demo.toml")]
    config: PathBuf,
    /// PostgreSQL, as a superuser; the database is created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = demo::db::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Lifetime of the printed tokens.
    #[arg(long, default_value = "8h")]
    ttl: humantime::Duration,
}

/// Arguments of `mcp-warden demo-backend`.
#[derive(clap::Args)]
pub struct DemoBackendArgs {
    /// Address to listen on. Keep it on loopback: the backend believes the identity
    /// headers it receives, so only the proxy may reach it.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// PostgreSQL, as a superuser; the database is created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = demo::db::DEFAULT_DATABASE_URL)]
    database_url: String,
}

/// Runs the demo until Ctrl-C.
pub fn run(args: DemoArgs, log_format: &str) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    logging::init(log_format, &demo::run::log_filter(&config.raw.log.level));
    Ok(demo::run::run(config, &args.database_url, *args.ttl)?)
}

/// Serves the demo backend until SIGINT or SIGTERM.
pub fn backend(args: DemoBackendArgs, log_format: &str) -> anyhow::Result<()> {
    logging::init(log_format, &demo::run::log_filter("info"));
    Ok(demo::run::serve_backend(args.listen, &args.database_url)?)
}
