//! `mcp-warden token revoke ID`: add a token id to the shared revocation set, so every
//! replica refuses the token from its next request on.

use std::path::PathBuf;
use std::time::Duration;

use mcp_warden::state::{SharedState, StateError};

/// Arguments of `mcp-warden token revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The id: a Biscuit revocation id (hex, any block's, as `token inspect` prints it;
    /// revoking a block revokes every token attenuated from it) or a JWT's `jti`.
    pub id: String,
    /// How long the revocation lasts, e.g. `24h` (default: until removed from Redis).
    /// Set it to the token's remaining lifetime: an expired token is refused anyway.
    #[arg(long)]
    pub ttl: Option<humantime::Duration>,
    /// The proxy's configuration file; its `[state]` section names the Redis server.
    #[arg(long, short, env = "MCP_WARDEN_CONFIG")]
    pub config: PathBuf,
}

/// Run `token revoke`: the line to print, or the error.
pub fn revoke(args: &RevokeArgs) -> Result<String, String> {
    let config = mcp_warden::config::load(&args.config).map_err(|e| e.to_string())?;
    let raw = &config.raw;
    if args.id.trim().is_empty() || args.id.len() > 1024 {
        return Err("the id must be 1–1024 characters".to_owned());
    }
    let state = SharedState::from_config(
        &raw.state,
        &[],
        raw.taint.max_entries,
        raw.taint.ttl,
        &config.base_dir,
    )
    .map_err(|e| e.to_string())?;
    let ttl: Option<Duration> = args.ttl.map(Into::into);
    let done = state
        .block_on(state.revoke(&args.id, ttl))
        .unwrap_or(Err(StateError::NotShared));
    done.map_err(|e| match e {
        StateError::NotShared => format!(
            "{e}\nhelp: with one replica, add Biscuit revocation ids to `[auth.biscuit] revocation_file`"
        ),
        other => other.to_string(),
    })?;
    Ok(match ttl {
        Some(ttl) => format!(
            "revoked `{}` for {} (every replica sharing {} refuses it from its next request)",
            args.id,
            humantime::format_duration(ttl),
            raw.state.key_prefix
        ),
        None => format!(
            "revoked `{}` until removed (every replica sharing {} refuses it from its next request)",
            args.id, raw.state.key_prefix
        ),
    })
}
