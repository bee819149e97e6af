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
    /// Mint a JWT signed with the configuration's HMAC key, for trying the proxy out.
    /// (Production tokens come from your identity provider.)
    DevJwt {
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
        /// Extra claims as `name=value` (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime, e.g. `1h`.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
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
    match cli.command {
        Command::Run { config } => match load(&config, &cli.log_format) {
            Ok(warden) => match proxy::run(warden) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            },
            Err(code) => code,
        },
        Command::Check { config } => match load(&config, &cli.log_format) {
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
        } => {
            init_logging(&cli.log_format, "info");
            policy_test(&files)
        }
        Command::DevJwt {
            config,
            sub,
            roles,
            scope,
            agent,
            claims,
            ttl,
        } => match dev_jwt(
            &config,
            &sub,
            &roles,
            &scope,
            agent.as_deref(),
            &claims,
            *ttl,
        ) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
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

/// Load the configuration, start logging at its level, then build the proxy.
fn load(path: &std::path::Path, log_format: &str) -> Result<proxy::Warden, ExitCode> {
    let config = config::load(path).map_err(|e| fail(&e.to_string()))?;
    init_logging(log_format, &config.raw.log.level);
    proxy::Warden::build(config).map_err(|e| fail(&e.to_string()))
}

fn policy_test(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0usize;
    let mut passed = 0usize;
    for file in files {
        match policy::testcases::run_test_file(file) {
            Ok(report) => {
                print!("{report}");
                passed += report.cases.len() - report.failed();
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

fn dev_jwt(
    config_path: &std::path::Path,
    sub: &str,
    roles: &[String],
    scope: &str,
    agent: Option<&str>,
    extra: &[String],
    ttl: std::time::Duration,
) -> Result<String, String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    let jwt = config
        .raw
        .auth
        .jwt
        .as_ref()
        .ok_or("the configuration has no [auth.jwt] section")?;
    let key = jwt
        .keys
        .iter()
        .find(|k| k.alg == "HS256")
        .ok_or("the configuration has no HS256 key in [[auth.jwt.keys]]")?;
    let secret = if let Some(s) = &key.secret {
        s.clone().into_bytes()
    } else if let Some(var) = &key.secret_env {
        std::env::var(var)
            .map_err(|_| format!("environment variable `{var}` is not set"))?
            .into_bytes()
    } else if let Some(file) = &key.secret_file {
        let mut bytes = std::fs::read(config.base_dir.join(file))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes
    } else {
        return Err("the HS256 key has no secret".into());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": sub,
        "iat": now,
        "exp": now + ttl.as_secs(),
        "roles": roles,
    });
    if !scope.is_empty() {
        claims["scope"] = scope.into();
    }
    if let Some(agent) = agent {
        claims["azp"] = agent.into();
    }
    if let Some(iss) = &jwt.issuer {
        claims["iss"] = iss.clone().into();
    }
    if let Some(aud) = jwt.audience.first() {
        claims["aud"] = aud.clone().into();
    }
    for pair in extra {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("claim `{pair}`: expected name=value"))?;
        claims[name] = serde_json::from_str(value).unwrap_or_else(|_| value.into());
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .map_err(|e| e.to_string())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Diagnostic logs on stderr: `RUST_LOG` if set, else `level` (the configuration's
/// `[log] level`, already checked by `config::load`).
fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
