//! The `mcp-warden` command line: run the proxy, check a configuration, test policies.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mcp_warden::{config, policy, proxy};

/// A policy-enforcing reverse proxy for the Model Context Protocol.
#[derive(Parser)]
#[command(name = "mcp-warden", version, about)]
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
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print the SHA-256 of an API key, for `[[auth.api_keys]] sha256 = …`.
    /// Reads the key from standard input (so it stays out of shell history).
    HashKey,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run policy test cases (TOML files of principal/action/resource → decision).
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Run { config } => match load(&config) {
            Ok(warden) => match proxy::run(warden) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            },
            Err(code) => code,
        },
        Command::Check { config } => match load(&config) {
            Ok(warden) => {
                let generation = warden.policies.current();
                println!(
                    "ok: {} (policy generation {}, engine {})",
                    config.display(),
                    generation.number,
                    generation.engine.name()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Policy {
            command: PolicyCommand::Test { files },
        } => policy_test(&files),
        Command::HashKey => {
            let mut key = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut key) {
                return fail(&format!("cannot read the key from standard input: {e}"));
            }
            let key = key.trim_end_matches(['\r', '\n']);
            if key.is_empty() {
                return fail("empty key");
            }
            println!("{}", mcp_warden::auth::hash_api_key(key));
            ExitCode::SUCCESS
        }
    }
}

fn load(path: &std::path::Path) -> Result<proxy::Warden, ExitCode> {
    let config = config::load(path).map_err(|e| fail(&e.to_string()))?;
    proxy::Warden::build(config).map_err(|e| fail(&e.to_string()))
}

fn policy_test(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0usize;
    let mut passed = 0usize;
    for file in files {
        match policy::testcases::run_test_file(file) {
            Ok(report) => {
                print!("{report}");
                passed += report.passed();
                failed += report.failed();
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
