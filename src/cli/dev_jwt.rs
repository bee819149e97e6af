//! `mcp-warden dev-jwt`: a JWT signed with the configuration's HS256 key.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use mcp_warden::auth::dev_jwt::{mint_dev_jwt, DevClaims};
use mcp_warden::config;

/// Arguments of `mcp-warden dev-jwt`.
#[derive(clap::Args)]
pub struct DevJwtArgs {
    /// Configuration file whose `[[auth.jwt.keys]]` holds an HS256 key.
    #[arg(long, short, env = "MCP_WARDEN_CONFIG")]
    config: PathBuf,
    /// The user (`sub`).
    #[arg(long)]
    sub: String,
    /// A role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// OAuth scopes, space separated.
    #[arg(long, default_value = "")]
    scope: String,
    /// The agent acting for the user (`azp`).
    #[arg(long)]
    agent: Option<String>,
    /// Extra claims as `name=value` (repeatable). Every token gets a fresh random `jti`
    /// (taint is keyed by it); `--claim jti=…` sets one instead.
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Lifetime, e.g. `1h`.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
}

/// Mints the token.
pub fn run(args: DevJwtArgs) -> anyhow::Result<String> {
    let config = config::load(&args.config)?;
    let claims = DevClaims {
        subject: args.sub,
        roles: args.roles,
        scope: args.scope,
        agent: args.agent,
        extra: Default::default(),
    }
    .with_pairs(&args.claims)?;
    mint_dev_jwt(
        config.raw.auth.jwt.as_ref(),
        &config.base_dir,
        &claims,
        *args.ttl,
        SystemTime::now(),
    )
    .with_context(|| format!("{}", config.path.display()))
}
