//! The `mcp-warden` command line: run the proxy, check a configuration, test policies,
//! make Biscuit keys and tokens.

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
    /// Generate a Biscuit root key pair: `<OUT>.private` (mode 0600) and `<OUT>.public`.
    /// Prints the public key, for `[[auth.biscuit.keys]]`.
    Keygen {
        /// Path prefix of the two key files.
        #[arg(long, default_value = "biscuit-root")]
        out: PathBuf,
        /// `ed25519` or `secp256r1` (P-256).
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Biscuit tokens: mint, attenuate, inspect.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// What goes into a new block (shared by `mint` and `attenuate`).
#[derive(clap::Args)]
struct BlockArgs {
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

#[derive(Subcommand)]
enum TokenCommand {
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
        Command::Keygen {
            out,
            algorithm,
            force,
        } => match keygen(&out, &algorithm, force) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Token { command } => match token(command) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
    }
}

fn keygen(out: &std::path::Path, algorithm: &str, force: bool) -> Result<(), String> {
    use mcp_warden::auth::biscuit::{keys, tools};
    let algorithm = keys::parse_algorithm(algorithm)?;
    let files = tools::keygen(out, algorithm, force).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} (private, mode 0600) and {}",
        files.private.display(),
        files.public.display()
    );
    println!("{}", files.public_key);
    Ok(())
}

/// A key given on the command line: a file if one exists at that path, else the text.
fn key_text(arg: &str) -> Result<String, String> {
    let path = std::path::Path::new(arg);
    if path.is_file() {
        std::fs::read_to_string(path).map_err(|e| format!("`{arg}`: {e}"))
    } else {
        Ok(arg.to_owned())
    }
}

/// The token argument, or standard input.
fn token_text(arg: Option<String>) -> Result<String, String> {
    match arg.as_deref() {
        Some(text) if text != "-" => Ok(text.trim().to_owned()),
        _ => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("cannot read the token from standard input: {e}"))?;
            Ok(text.trim().to_owned())
        }
    }
}

fn block_spec(args: BlockArgs) -> Result<mcp_warden::auth::biscuit::tools::BlockSpec, String> {
    let code = args
        .code
        .map(|file| {
            std::fs::read_to_string(&file).map_err(|e| format!("`{}`: {e}", file.display()))
        })
        .transpose()?;
    Ok(mcp_warden::auth::biscuit::tools::BlockSpec {
        facts: args.facts,
        checks: args.checks,
        code,
        ttl: args.ttl.map(Into::into),
    })
}

fn token(command: TokenCommand) -> Result<String, String> {
    use mcp_warden::auth::biscuit::{keys, tools};
    let now = std::time::SystemTime::now();
    match command {
        TokenCommand::Mint {
            private_key,
            root_key_id,
            block,
        } => {
            let key = keys::parse_private_key(&key_text(&private_key)?, None)
                .map_err(|e| format!("--private-key: {e}"))?;
            tools::mint(&key, root_key_id, &block_spec(block)?, now).map_err(|e| e.to_string())
        }
        TokenCommand::Attenuate { token, block } => {
            tools::attenuate(&token_text(token)?, &block_spec(block)?, now)
                .map_err(|e| e.to_string())
        }
        TokenCommand::Inspect {
            token,
            public_key,
            json,
        } => {
            let key = keys::parse_public_key(&key_text(&public_key)?, None)
                .map_err(|e| format!("--public-key: {e}"))?;
            let report = tools::inspect(&token_text(token)?, &key).map_err(|e| e.to_string())?;
            if json {
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
            } else {
                Ok(report.to_string().trim_end().to_owned())
            }
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
                println!("{report}");
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
