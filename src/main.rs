//! The `mcp-warden` command line: run the proxy, check a configuration, test policies,
//! make Biscuit keys and tokens, and run the bundled demo. Each subcommand's arguments
//! and glue live in `cli/`; the work is in the library.

mod cli;

/// jemalloc instead of the system allocator: cheaper per request than glibc's malloc
/// under the proxy's allocation pattern (docs/src/performance.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mcp_warden::{config, k8s, proxy};

use cli::demo::{DemoArgs, DemoBackendArgs};
use cli::dev_jwt::DevJwtArgs;
use cli::logging;
use cli::policy::PolicyCommand;
use cli::token::{KeygenArgs, TokenCommand};

/// A policy-enforcing reverse proxy for the Model Context Protocol.
///
/// mcp-warden sits in front of an unmodified MCP server (as a sidecar or standalone),
/// authenticates every caller (JWT, Biscuit token, API key), and decides every JSON-RPC
/// message against hot-reloaded Cedar policies or a Biscuit Datalog authorizer before it
/// reaches the server; list results are filtered per caller, and every decision is
/// audited and counted. Biscuit tokens can be narrowed offline by whoever holds them
/// (`mcp-warden token attenuate`) and are enforced under either engine.
///
/// Start with `mcp-warden demo` (a clinic's MCP server behind the proxy, with tokens to
/// try), or `mcp-warden check --config <file>` for your own configuration.
#[derive(Parser)]
#[command(name = "mcp-warden", version, about, long_about)]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "MCP_WARDEN_LOG_FORMAT"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy.
    Run {
        /// Configuration file.
        #[arg(long, short, env = "MCP_WARDEN_CONFIG")]
        config: PathBuf,
    },
    /// Validate the configuration and its policies without starting.
    Check {
        /// Configuration file.
        #[arg(long, short, env = "MCP_WARDEN_CONFIG")]
        config: PathBuf,
    },
    /// Approve the upstream's tool definitions into a pin file; `pin diff` shows what
    /// changed since.
    Pin(mcp_warden::pins::cli::PinArgs),
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Mint a JWT signed with the configuration's HMAC key, for trying the proxy out.
    /// (Production tokens come from your identity provider.)
    DevJwt(DevJwtArgs),
    /// Print the SHA-256 of an API key, for `[[auth.api_keys]] sha256 = …`.
    /// Reads the key from standard input (so it stays out of shell history).
    HashKey,
    /// Generate a Biscuit root key pair: `<OUT>.private` (mode 0600) and `<OUT>.public`.
    /// Prints the public key, for `[[auth.biscuit.keys]]`.
    Keygen(KeygenArgs),
    /// Biscuit tokens: mint, attenuate (narrow, offline), inspect.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Serve the demo MCP backend: a clinic's records in PostgreSQL behind row-level
    /// security, reading the caller from the proxy's identity headers.
    DemoBackend(DemoBackendArgs),
    /// Run the demo: the demo backend and the proxy in front of it with the demo
    /// configuration; creates missing demo keys and prints tokens to try.
    Demo(DemoArgs),
    /// Add the mcp-warden sidecar to Kubernetes YAML (Pods, Deployments, StatefulSets,
    /// DaemonSets, Jobs, CronJobs); writes the injected YAML to standard output.
    Inject(k8s::InjectArgs),
    /// Serve the mutating admission webhook that injects the sidecar (HTTPS).
    Webhook(k8s::WebhookArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    let result = match cli.command {
        Command::Run { config } => load(&config, &format).and_then(proxy::run),
        Command::Check { config } => check(&config, &format),
        Command::Pin(args) => return mcp_warden::pins::cli::main(args),
        Command::Policy { command } => {
            logging::init(&format, "info");
            return cli::policy::run(command);
        }
        Command::DevJwt(args) => cli::dev_jwt::run(args).map(|token| println!("{token}")),
        Command::HashKey => hash_key(),
        Command::Keygen(args) => cli::token::keygen(args),
        Command::Token { command } => cli::token::run(command).map(|out| println!("{out}")),
        Command::DemoBackend(args) => cli::demo::backend(args, &format),
        Command::Demo(args) => cli::demo::run(args, &format),
        Command::Inject(args) => k8s::cli::run_inject(&args),
        Command::Webhook(args) => {
            logging::init(&format, "info");
            k8s::cli::run_webhook(&args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::render(&e));
            ExitCode::FAILURE
        }
    }
}

/// Load the configuration, start logging at its level, then build the proxy.
fn load(path: &std::path::Path, log_format: &str) -> anyhow::Result<proxy::Warden> {
    let config = config::load(path)?;
    logging::init(log_format, &config.raw.log.level);
    Ok(proxy::Warden::build(config)?)
}

/// `mcp-warden check`: everything `run` does before it listens.
fn check(path: &std::path::Path, log_format: &str) -> anyhow::Result<()> {
    let warden = load(path, log_format)?;
    proxy::TlsMaterial::load(&warden)?;
    let generation = warden.policies.current();
    println!(
        "ok: {} (policy generation {}, engine {})",
        path.display(),
        generation.number,
        generation.engine.name()
    );
    Ok(())
}

/// `mcp-warden hash-key`: the key from standard input, its SHA-256 on standard output.
fn hash_key() -> anyhow::Result<()> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|e| anyhow::anyhow!("cannot read the key from standard input: {e}"))?;
    let key = key.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!key.is_empty(), "empty key");
    println!("{}", mcp_warden::auth::hash_api_key(key));
    Ok(())
}
