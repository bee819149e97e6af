//! `mcp-warden keygen` and `mcp-warden token mint|attenuate|inspect|revoke`: arguments, and
//! reading keys and tokens from files or standard input. The tools themselves are
//! `mcp_warden::biscuit::tools`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use mcp_warden::biscuit::{keys, tools};

/// Arguments of `mcp-warden keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Path prefix of the two key files.
    #[arg(long, default_value = "biscuit-root")]
    out: PathBuf,
    /// `ed25519` or `secp256r1` (P-256).
    #[arg(long, default_value = "ed25519")]
    algorithm: String,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

/// What goes into a new block (shared by `mint` and `attenuate`).
#[derive(clap::Args)]
pub struct BlockArgs {
    /// A fact, e.g. `user("alice")` (repeatable).
    #[arg(long = "fact")]
    facts: Vec<String>,
    /// A check, e.g. `check if tool("echo")`; `check if` may be left out (repeatable).
    #[arg(long = "check")]
    checks: Vec<String>,
    /// A file of Datalog (facts, rules, checks) to add to the block.
    #[arg(long)]
    code: Option<PathBuf>,
    /// Expire the block after this long, e.g. `1h`, `5m`
    /// (adds `check if time($time), $time <= <now + ttl>`).
    #[arg(long)]
    ttl: Option<humantime::Duration>,
}

/// `mcp-warden token …`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token signed with a root private key; prints it (base64url).
    Mint {
        /// The root private key: a file written by `keygen`, or the key itself.
        #[arg(long)]
        private_key: String,
        /// The root key id to put in the token (`[[auth.biscuit.keys]] id`).
        #[arg(long)]
        root_key_id: Option<u32>,
        #[command(flatten)]
        block: BlockArgs,
    },
    /// Append a block that narrows a token (offline, no key needed); prints the new token.
    Attenuate {
        /// The token; read from standard input when absent or `-`.
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        block: BlockArgs,
    },
    /// Verify a token with a root public key and print its blocks, facts, checks,
    /// expiry and revocation ids.
    Inspect {
        /// The token; read from standard input when absent or `-`.
        #[arg(long)]
        token: Option<String>,
        /// The root public key: a `.public` file, or the key itself (`ed25519/<hex>`).
        #[arg(long)]
        public_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token id (Biscuit revocation id or JWT `jti`) in the shared state
    /// (Redis): every replica refuses it from its next request on.
    Revoke(super::revoke::RevokeArgs),
}

/// Writes the key pair; prints the public key on standard output, the files on
/// standard error.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let algorithm = keys::parse_algorithm(&args.algorithm)
        .map_err(anyhow::Error::msg)
        .context("--algorithm")?;
    let files = tools::keygen(&args.out, algorithm, args.force)?;
    eprintln!(
        "wrote {} (private, mode 0600) and {}",
        files.private.display(),
        files.public.display()
    );
    println!("{}", files.public_key);
    Ok(())
}

/// Runs a token command; returns what to print.
pub fn run(command: TokenCommand) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now();
    match command {
        TokenCommand::Mint {
            private_key,
            root_key_id,
            block,
        } => {
            let key = keys::parse_private_key(&key_text(&private_key)?, None)
                .map_err(anyhow::Error::msg)
                .context("--private-key")?;
            Ok(tools::mint(&key, root_key_id, &block_spec(block)?, now)?)
        }
        TokenCommand::Attenuate { token, block } => Ok(tools::attenuate(
            &token_text(token)?,
            &block_spec(block)?,
            now,
        )?),
        TokenCommand::Inspect {
            token,
            public_key,
            json,
        } => {
            let key = keys::parse_public_key(&key_text(&public_key)?, None)
                .map_err(anyhow::Error::msg)
                .context("--public-key")?;
            let report = tools::inspect(&token_text(token)?, &key)?;
            if json {
                Ok(serde_json::to_string_pretty(&report)?)
            } else {
                Ok(report.to_string().trim_end().to_owned())
            }
        }
        TokenCommand::Revoke(args) => super::revoke::revoke(&args).map_err(anyhow::Error::msg),
    }
}

/// A key given on the command line: a file if one exists at that path, else the text.
fn key_text(arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("`{arg}`"))
    } else {
        Ok(arg.to_owned())
    }
}

/// The token argument, or standard input.
fn token_text(arg: Option<String>) -> anyhow::Result<String> {
    match arg.as_deref() {
        Some(text) if text != "-" => Ok(text.trim().to_owned()),
        _ => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the token from standard input")?;
            Ok(text.trim().to_owned())
        }
    }
}

fn block_spec(args: BlockArgs) -> anyhow::Result<tools::BlockSpec> {
    let code = args
        .code
        .map(|file| std::fs::read_to_string(&file).with_context(|| format!("`{}`", file.display())))
        .transpose()?;
    Ok(tools::BlockSpec {
        facts: args.facts,
        checks: args.checks,
        code,
        ttl: args.ttl.map(Into::into),
    })
}
