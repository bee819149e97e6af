//! The `mcp-warden` command line: run the proxy, check a configuration, test policies,
//! make Biscuit keys and tokens, and run the bundled demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mcp_warden::{config, demo, policy, proxy};

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
    /// Serve the demo MCP backend: a clinic's records in PostgreSQL behind row-level
    /// security, reading the caller from the proxy's identity headers.
    DemoBackend {
        /// Address to listen on. Keep it on loopback: the backend believes the identity
        /// headers it receives, so only the proxy may reach it.
        #[arg(long, default_value = "127.0.0.1:3001")]
        listen: std::net::SocketAddr,
        /// PostgreSQL, as a superuser; the database is created when missing.
        #[arg(long, env = "DATABASE_URL", default_value = demo::db::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Run the demo: the demo backend and the proxy in front of it with the demo
    /// configuration; creates missing demo keys and prints tokens to try.
    Demo {
        /// The demo configuration. The backend listens on its `upstream` address.
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
        /// PostgreSQL, as a superuser; the database is created when missing.
        #[arg(long, env = "DATABASE_URL", default_value = demo::db::DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Lifetime of the printed tokens.
        #[arg(long, default_value = "8h")]
        ttl: humantime::Duration,
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
    /// Revoke a token id (Biscuit revocation id or JWT `jti`) in the shared state
    /// (Redis): every replica refuses it from its next request on.
    Revoke(mcp_warden::state::cli::RevokeArgs),
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
        Command::DemoBackend {
            listen,
            database_url,
        } => {
            init_logging(&cli.log_format, &demo_log_filter("info"));
            match demo_backend(listen, &database_url) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Demo {
            config,
            database_url,
            ttl,
        } => match run_demo(&config, &database_url, *ttl, &cli.log_format) {
            Ok(()) => ExitCode::SUCCESS,
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
        TokenCommand::Revoke(args) => mcp_warden::state::cli::revoke(&args),
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
    let mut claims = serde_json::Map::new();
    for pair in extra {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("claim `{pair}`: expected name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
        claims.insert(name.to_owned(), value);
    }
    mint_jwt(&config, sub, roles, scope, agent, claims, ttl)
}

/// Sign a token with the configuration's HS256 key.
fn mint_jwt(
    config: &config::Config,
    sub: &str,
    roles: &[String],
    scope: &str,
    agent: Option<&str>,
    extra: serde_json::Map<String, serde_json::Value>,
    ttl: std::time::Duration,
) -> Result<String, String> {
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
    for (name, value) in extra {
        claims[name] = value;
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

/// `mcp-warden demo-backend`: set up the database, then serve until SIGINT or SIGTERM.
fn demo_backend(listen: std::net::SocketAddr, database_url: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (db, listener) = start_demo_backend(listen, database_url).await?;
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
        demo::serve(listener, db, shutdown)
            .await
            .map_err(|e| format!("demo backend: {e}"))
    })
}

/// Set up the database and bind the listener; log where both are.
async fn start_demo_backend(
    listen: std::net::SocketAddr,
    database_url: &str,
) -> Result<(std::sync::Arc<demo::Database>, tokio::net::TcpListener), String> {
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "the demo backend believes the identity headers it receives: anyone who can \
             reach this address can claim to be anyone"
        );
    }
    let db = demo::Database::setup(database_url)
        .await
        .map_err(|e| format!("demo backend: {e}\nhelp: start PostgreSQL, or set DATABASE_URL"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("demo backend: cannot listen on {listen}: {e}"))?;
    tracing::info!(
        url = %format!("http://{listen}{}", demo::MCP_PATH),
        database = db.url(),
        "demo backend listening"
    );
    Ok((std::sync::Arc::new(db), listener))
}

/// `mcp-warden demo`: demo keys, the backend, tokens, then the proxy in the foreground.
fn run_demo(
    config_path: &std::path::Path,
    database_url: &str,
    ttl: std::time::Duration,
    log_format: &str,
) -> Result<(), String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    init_logging(log_format, &demo_log_filter(&config.raw.log.level));
    for created in demo::walkthrough::ensure_keys(&config)
        .map_err(|e| format!("cannot create the demo keys: {e}"))?
    {
        tracing::info!(file = %created.display(), "created a demo key");
    }
    let warden = proxy::Warden::build(config).map_err(|e| e.to_string())?;
    let upstream = &warden.config.upstream;
    if upstream.tls || upstream.path != demo::MCP_PATH {
        return Err(format!(
            "{}: `upstream` must be http://HOST:PORT{} for the demo backend",
            config_path.display(),
            demo::MCP_PATH
        ));
    }
    let backend_addr = std::net::ToSocketAddrs::to_socket_addrs(&upstream.authority)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("cannot resolve the upstream `{}`", upstream.authority))?;

    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let (db, listener) = runtime.block_on(start_demo_backend(backend_addr, database_url))?;
    let database = db.url().to_owned();
    runtime.spawn(async move {
        if let Err(e) = demo::serve(listener, db, std::future::pending()).await {
            tracing::error!("demo backend stopped: {e}");
        }
    });

    let tokens = demo_tokens(&warden.config, ttl)?;
    print_demo_banner(&warden, &database, &tokens, ttl);
    let result = proxy::run(warden).map_err(|e| format!("{e:#}"));
    runtime.shutdown_background();
    result
}

/// A printed demo token: the shell variable, who it is, the token.
struct DemoToken {
    var: String,
    about: String,
    token: String,
}

/// A JWT per persona when the configuration takes JWTs, a Biscuit per persona when it
/// takes Biscuits (suffixed `_BISCUIT` when it takes both).
fn demo_tokens(
    config: &config::Config,
    ttl: std::time::Duration,
) -> Result<Vec<DemoToken>, String> {
    use demo::walkthrough::{mint_biscuit, DEMO_AGENT, PERSONAS};
    let jwt = config.raw.auth.jwt.is_some();
    let biscuit = config.raw.auth.biscuit.is_some();
    let mut tokens = Vec::new();
    if jwt {
        for persona in PERSONAS {
            let roles: Vec<String> = persona.roles.iter().map(|r| r.to_string()).collect();
            let mut claims: serde_json::Map<String, serde_json::Value> = persona
                .claims
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect();
            // A fresh credential each run: taint is keyed by the token (issuer and jti).
            claims.insert("jti".into(), hex::encode(rand::random::<[u8; 8]>()).into());
            tokens.push(DemoToken {
                var: persona.var.to_owned(),
                about: format!("{} (JWT)", persona.about),
                token: mint_jwt(
                    config,
                    persona.subject,
                    &roles,
                    "",
                    Some(DEMO_AGENT),
                    claims,
                    ttl,
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
                token: mint_biscuit(config, &persona, ttl).map_err(|e| e.to_string())?,
            });
        }
    }
    Ok(tokens)
}

fn print_demo_banner(
    warden: &proxy::Warden,
    database: &str,
    tokens: &[DemoToken],
    ttl: std::time::Duration,
) {
    use std::fmt::Write;
    let config = &warden.config;
    let proxy_url = format!("http://{}{}", config.raw.listen, config.upstream.path);
    let cwd = std::env::current_dir().ok();
    let relative = |path: PathBuf| {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        cwd.as_ref()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(PathBuf::from))
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
        "  mcp-warden                        {proxy_url}   policies {} ({})",
        policies.display(),
        warden.policies.current().engine.name()
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
    print!("{out}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The demo's terminal shows the proxy's decisions, not every MCP message.
fn demo_log_filter(level: &str) -> String {
    format!("{level},rmcp=warn,refinery_core=warn,tokio_postgres=warn,pingora_core=warn")
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
