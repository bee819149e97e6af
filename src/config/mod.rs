//! Configuration: one TOML file, overridable by environment variables (12-factor).
//!
//! Two stages, so that errors are clear and I/O happens in one place:
//! 1. [`RawConfig`] is plain serde data (`deny_unknown_fields`, a doc on every field).
//!    [`load`] reads the file, applies `MCP_WARDEN__…` overrides and deserializes it;
//!    any problem is a [`ConfigError`] naming `file:line:col` and the reason.
//! 2. [`Config`] is the checked form: a parsed upstream address, the directory relative
//!    paths resolve against. Building the authenticator and compiling policies (the I/O
//!    heavy part) happens in [`crate::exchange::Warden::build`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::auth::AuthConfig;
use crate::policy::PolicyConfig;
use crate::state::{RateLimitConfig, StateConfig};
use crate::taint::TaintConfig;

/// Prefix of environment variables that override configuration keys:
/// `MCP_WARDEN__AUTH__ALLOW_ANONYMOUS=true` sets `auth.allow_anonymous`.
pub const ENV_PREFIX: &str = "MCP_WARDEN__";

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the proxy listens on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The MCP server behind the proxy, e.g. `http://127.0.0.1:9000/mcp`. Only the
    /// path of this URL is served; every other path is answered 404 without forwarding.
    pub upstream: String,
    /// Size and shape limits for what clients send.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Browser-facing protections.
    #[serde(default)]
    pub http: HttpConfig,
    /// Which headers carry the caller's identity to the upstream.
    #[serde(default)]
    pub identity_headers: IdentityHeadersConfig,
    /// Session table bounds.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// How callers authenticate.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where policies live.
    pub policy: PolicyConfig,
    /// How long to wait for the upstream.
    #[serde(default)]
    pub upstream_timeouts: UpstreamTimeoutsConfig,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The audit log: one JSON line per decision.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Downstream connections: how many at once, how long a client may take.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Diagnostic logs (stderr).
    #[serde(default)]
    pub log: LogConfig,
    /// Taint tracking: sensitive sources, extra sinks, the store's bounds.
    #[serde(default)]
    pub taint: TaintConfig,
    /// Tool definition pinning against rug pulls (see [`crate::pins`]).
    #[serde(default)]
    pub pinning: crate::pins::PinningConfig,
    /// `tools/call` arguments checked against the tool's `inputSchema` (see
    /// [`crate::schema`]).
    #[serde(default)]
    pub arguments: crate::schema::ArgumentsConfig,
    /// Per-tool settings, by tool name: `[tools."<name>"]`.
    #[serde(default)]
    pub tools: std::collections::BTreeMap<String, ToolConfig>,
    /// Where taint labels, revoked token ids and rate-limit buckets live: this process
    /// (default) or Redis, shared by replicas.
    #[serde(default)]
    pub state: StateConfig,
    /// Rate limits: `[[rate_limits]]` rules, each with a rate and burst per principal
    /// (and per tool with `per_tool`).
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
    /// `[tls]`: serve HTTPS (and mTLS) on `listen`. Absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// `[upstream_tls]`: CA bundle, server name and client certificate for an
    /// `https://` upstream.
    #[serde(default)]
    pub upstream_tls: crate::tls::UpstreamTlsConfig,
    /// The protected resource this proxy is (OAuth 2.0 Protected Resource Metadata, RFC
    /// 9728): served at `/.well-known/oauth-protected-resource…`, advertised on 401s,
    /// and the audience JWTs must name.
    #[serde(default)]
    pub oauth: crate::auth::resource_metadata::OAuthConfig,
}

/// `[tools."<name>"]`: what the operator says about one upstream tool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolConfig {
    /// Annotations that replace what the server declares for this tool, hint by hint,
    /// before any policy sees them (in calls and in the listing rule). The server's
    /// annotations are hints, not facts: `annotations = { openWorldHint = true }` makes a
    /// tool a sink for taint policies whatever the server says.
    pub annotations: AnnotationOverrides,
}

/// Tool annotations set by the operator; each one given replaces the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnotationOverrides {
    /// A human-readable title.
    pub title: Option<String>,
    /// The tool does not modify its environment.
    #[serde(rename = "readOnlyHint")]
    pub read_only_hint: Option<bool>,
    /// The tool may perform destructive updates.
    #[serde(rename = "destructiveHint")]
    pub destructive_hint: Option<bool>,
    /// Calling it twice with the same arguments has no further effect.
    #[serde(rename = "idempotentHint")]
    pub idempotent_hint: Option<bool>,
    /// The tool may interact with an open world of external entities (the internet).
    #[serde(rename = "openWorldHint")]
    pub open_world_hint: Option<bool>,
}

impl AnnotationOverrides {
    /// The overrides as an MCP `annotations` object (only the hints given).
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        if let Some(title) = &self.title {
            map.insert("title".to_owned(), title.clone().into());
        }
        for (name, value) in [
            ("readOnlyHint", self.read_only_hint),
            ("destructiveHint", self.destructive_hint),
            ("idempotentHint", self.idempotent_hint),
            ("openWorldHint", self.open_world_hint),
        ] {
            if let Some(value) = value {
                map.insert(name.to_owned(), value.into());
            }
        }
        map
    }
}

impl RawConfig {
    /// Every tool's annotation overrides: `[tools."<name>"] annotations`, plus
    /// `openWorldHint = true` for each of `taint.sinks`. Tools without any are absent.
    pub fn annotation_overrides(
        &self,
    ) -> std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>> {
        let mut out: std::collections::HashMap<_, _> = self
            .tools
            .iter()
            .map(|(name, tool)| (name.clone(), tool.annotations.to_map()))
            .filter(|(_, map)| !map.is_empty())
            .collect();
        for sink in &self.taint.sinks {
            out.entry(sink.clone())
                .or_insert_with(serde_json::Map::new)
                .insert("openWorldHint".to_owned(), true.into());
        }
        out
    }
}

/// `[upstream_timeouts]`: how long the proxy waits for the upstream MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeoutsConfig {
    /// Time allowed to open a TCP connection to the upstream (default 5s). An upstream
    /// that does not answer in time gets the client a JSON-RPC error (HTTP 502).
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Longest silence from the upstream while it answers a POST: before its response
    /// header, and between two chunks of the body — SSE events, progress notifications and
    /// keep-alive comments each reset it (default 120s).
    #[serde(with = "humantime_serde")]
    pub read: Duration,
    /// Longest silence on a GET event stream (server-initiated messages) before the proxy
    /// closes it (default 5m); MCP clients reconnect and resume with `Last-Event-ID`.
    #[serde(with = "humantime_serde")]
    pub sse_idle: Duration,
    /// How long an unused upstream connection is kept open for reuse (default 60s).
    #[serde(with = "humantime_serde")]
    pub pool_idle: Duration,
}

impl Default for UpstreamTimeoutsConfig {
    fn default() -> Self {
        UpstreamTimeoutsConfig {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(120),
            sse_idle: Duration::from_secs(300),
            pool_idle: Duration::from_secs(60),
        }
    }
}

/// `[admin]`: the operations listener, separate from the proxy's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address serving `/metrics` (Prometheus text format), `/healthz` and `/readyz`
    /// (default `127.0.0.1:9090`). Keep it off the network clients reach; in Kubernetes
    /// use `0.0.0.0:9090` and a NetworkPolicy so only Prometheus and the kubelet connect.
    pub listen: SocketAddr,
    /// `[admin.tls]`: serve the admin listener over HTTPS, with its own certificate and
    /// optionally client certificates for scrapers. Absent: plain HTTP.
    pub tls: Option<crate::tls::AdminTlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            tls: None,
        }
    }
}

/// `[lifecycle]`: what happens on SIGTERM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// After SIGTERM the proxy stops accepting connections, answers `/readyz` with 503 and
    /// lets requests in flight finish; it exits as soon as none is left, or when this time
    /// is up (default 20s; rounded up to whole seconds). Keep it below the pod's
    /// `terminationGracePeriodSeconds` (Kubernetes default 30s) minus `shutdown_timeout`.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// After the drain, time allowed for the remaining connections (e.g. GET event
    /// streams) to be torn down before the process exits (default 5s; whole seconds).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            drain_timeout: Duration::from_secs(20),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// `[connections]`: bounds on what downstream clients may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Most downstream connections open at once (default 10 000). Beyond it a new
    /// connection is answered `503` with a JSON-RPC error and closed, and counted in
    /// `mcp_warden_connections_refused_total{reason="connection_limit"}`.
    pub max_connections: usize,
    /// Time a client has to send a whole request head (request line and headers),
    /// counted from its first byte (default 10s). A client sending its head a byte at a
    /// time (slowloris) is answered `408` and cut off when it is up. The body has its own
    /// deadline, `limits.body_read_timeout`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time an open connection may sit idle waiting for its next request (default 60s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Serve HTTP/2 with prior knowledge (h2c, RFC 9113 section 3.3) on a plain listener,
    /// beside HTTP/1.1 (default `false`: an HTTP/2 preface is refused). With `[tls]`,
    /// HTTP/2 is negotiated by ALPN instead (`tls.alpn`).
    pub h2c: bool,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            h2c: false,
        }
    }
}

/// `[log]`: diagnostic logs on stderr (the audit log is separate, see `[audit]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Level or `tracing` filter directives, e.g. `info` or `info,mcp_warden=debug`
    /// (default `info`). The `RUST_LOG` environment variable, when set, takes precedence.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes (default 4 MiB). Larger: HTTP 413.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a request body (default 64).
    pub max_json_depth: usize,
    /// Largest upstream list response (JSON body or single SSE event) the proxy will
    /// buffer to filter, in bytes (default 16 MiB). Larger: withheld, JSON-RPC error.
    pub max_response_bytes: usize,
    /// How long to wait for a client to send its whole request body (default 30s).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 4 * 1024 * 1024,
            max_json_depth: 64,
            max_response_bytes: 16 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Origins browsers may call from (exact match, e.g. `http://localhost:6274`).
    /// A request with an `Origin` header not in this list gets 403 (DNS-rebinding
    /// protection, as the MCP transport spec requires). Requests without `Origin`
    /// (non-browser clients) are not affected.
    pub allowed_origins: Vec<String>,
    /// URL of this server's OAuth protected-resource metadata (RFC 9728), advertised in
    /// `WWW-Authenticate` on 401 responses when set.
    pub resource_metadata: Option<String>,
}

/// `[identity_headers]`: the caller's identity as the upstream sees it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeadersConfig {
    /// Every client-sent header whose name starts with this prefix (case-insensitive)
    /// is removed before forwarding, so identity cannot be spoofed. Default `x-mcp-`.
    pub strip_prefix: String,
    /// Header carrying the user (subject). Default `X-MCP-User`.
    pub user: String,
    /// Header carrying the agent, when there is one. Default `X-MCP-Agent`.
    pub agent: String,
    /// Header carrying the roles, comma separated. Default `X-MCP-Roles`.
    pub roles: String,
    /// Header carrying how the caller authenticated (`jwt`, `api_key`, `anonymous`).
    /// Default `X-MCP-Auth-Method`.
    pub auth_method: String,
    /// Prefix of the headers carrying the connection's verified client certificate:
    /// `<prefix>Spiffe-Id`, `<prefix>Dns` (comma separated), `<prefix>Subject`,
    /// `<prefix>Fingerprint`. Client-sent headers with this prefix are always removed.
    /// Default `X-MCP-Client-Cert-`; empty: not sent.
    pub client_cert_prefix: String,
    /// Extra headers from claims: header name → claim name, e.g.
    /// `{ "X-MCP-Department" = "department" }`. Arrays are joined with commas.
    pub claims: std::collections::BTreeMap<String, String>,
    /// Forward the client's `Authorization` header to the upstream. Off by default:
    /// the MCP authorization spec forbids token passthrough.
    pub pass_authorization: bool,
}

impl Default for IdentityHeadersConfig {
    fn default() -> Self {
        IdentityHeadersConfig {
            strip_prefix: "x-mcp-".to_owned(),
            user: "X-MCP-User".to_owned(),
            agent: "X-MCP-Agent".to_owned(),
            roles: "X-MCP-Roles".to_owned(),
            auth_method: "X-MCP-Auth-Method".to_owned(),
            client_cert_prefix: "X-MCP-Client-Cert-".to_owned(),
            claims: Default::default(),
            pass_authorization: false,
        }
    }
}

/// `[sessions]`: the table binding `Mcp-Session-Id`s to the principal that created them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Most sessions remembered at once (default 100 000). When full, the least recently
    /// used session is forgotten; its next request gets 404 and the client re-initializes.
    pub max_sessions: usize,
    /// A session unused this long is forgotten (default 1h).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_sessions: 100_000,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// The upstream MCP server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port` to connect to.
    pub authority: String,
    /// Host name, for the `Host` header and TLS SNI.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `https`?
    pub tls: bool,
    /// The MCP endpoint path, e.g. `/mcp`. The proxy serves the same path.
    pub path: String,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Directory that relative paths resolve against (the file's directory).
    pub base_dir: PathBuf,
    /// The raw settings.
    pub raw: RawConfig,
    /// The parsed upstream address.
    pub upstream: Upstream,
}

/// A configuration error; `Display` names the file, and the line and column if known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or a field that does not fit.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 if unknown.
        line: usize,
        /// 1-based column, 0 if unknown.
        column: usize,
        /// Why.
        message: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable `{var}`: {message}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        message: String,
    },
    /// A value that parsed but makes no sense.
    #[error("{path}: `{key}`: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

/// Read, override from the environment, and check a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, std::env::vars())
}

/// [`load`] with an explicit environment (for tests).
pub fn load_with_env(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(path, &text, &e))?;
    let vars = override_vars(env);
    apply_env_overrides(&mut table, &vars)?;
    let raw: RawConfig = if table_is_unchanged(&text, &table) {
        // Deserialize from the text so that errors point at the right line.
        toml::from_str(&text).map_err(|e| invalid(path, &text, &e))?
    } else {
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Value {
            path: path.to_owned(),
            key: "(environment overrides)".to_owned(),
            message: e.to_string(),
        })?;
        toml::from_str(&merged).map_err(|e| env_error(path, &text, &vars, &e))?
    };
    let upstream = parse_upstream(&raw.upstream).map_err(|message| ConfigError::Value {
        path: path.to_owned(),
        key: "upstream".to_owned(),
        message,
    })?;
    check_values(&raw).map_err(|(key, message)| ConfigError::Value {
        path: path.to_owned(),
        key: key.to_owned(),
        message,
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .to_owned();
    Ok(Config {
        path: path.to_owned(),
        base_dir,
        raw,
        upstream,
    })
}

/// Checks serde cannot express: (key, reason) of the first bad value.
fn check_values(raw: &RawConfig) -> Result<(), (&'static str, String)> {
    tracing_subscriber::EnvFilter::builder()
        .parse(&raw.log.level)
        .map_err(|e| ("log.level", format!("`{}`: {e}", raw.log.level)))?;
    raw.audit.check()?;
    if let Some(tls) = &raw.tls {
        tls.check()?;
    }
    if let Some(tls) = &raw.admin.tls {
        tls.check()?;
    }
    if raw.connections.h2c && raw.tls.is_some() {
        return Err((
            "connections.h2c",
            "h2c is HTTP/2 on a plain listener; with `[tls]`, HTTP/2 is offered by \
             `tls.alpn`\nhelp: remove `connections.h2c`, or keep `\"h2\"` in `tls.alpn`"
                .into(),
        ));
    }
    raw.upstream_tls.check()?;
    raw.taint.check()?;
    raw.state.check()?;
    raw.oauth.check()?;
    check_audience(raw)?;
    crate::state::check_rules(&raw.rate_limits)?;
    for sink in &raw.taint.sinks {
        let declared = raw
            .tools
            .get(sink)
            .and_then(|t| t.annotations.open_world_hint);
        if declared == Some(false) {
            return Err((
                "taint.sinks",
                format!("`{sink}` is a sink but `[tools.\"{sink}\"]` sets `openWorldHint = false`"),
            ));
        }
    }
    let t = &raw.upstream_timeouts;
    for (key, value) in [
        ("upstream_timeouts.connect", t.connect),
        ("upstream_timeouts.read", t.read),
        ("upstream_timeouts.sse_idle", t.sse_idle),
        ("connections.header_timeout", raw.connections.header_timeout),
        ("connections.idle_timeout", raw.connections.idle_timeout),
        ("limits.body_read_timeout", raw.limits.body_read_timeout),
    ] {
        if value.is_zero() {
            return Err((key, "must be more than zero".to_owned()));
        }
    }
    if raw.connections.max_connections == 0 {
        return Err((
            "connections.max_connections",
            "must be more than zero".to_owned(),
        ));
    }
    Ok(())
}

/// With `[oauth] check_audience`, a JWT's `aud` must name the resource (RFC 8707), and
/// only it: the resource becomes the accepted audience. An `[auth.jwt] audience` list
/// naming others would accept tokens issued for other resources, so it is refused
/// rather than silently narrowed or widened.
fn check_audience(raw: &RawConfig) -> Result<(), (&'static str, String)> {
    let (Some(resource), Some(jwt)) = (&raw.oauth.resource, &raw.auth.jwt) else {
        return Ok(());
    };
    if raw.oauth.check_audience && jwt.audience.iter().any(|a| a != resource) {
        return Err((
            "auth.jwt.audience",
            format!(
                "`[oauth] check_audience` makes `{resource}` the only audience: leave `auth.jwt.audience` unset, or set `oauth.check_audience = false`"
            ),
        ));
    }
    Ok(())
}

impl RawConfig {
    /// The `[auth]` the authenticator is built from: as written, with the `[oauth]`
    /// resource as the JWT audience when `check_audience` holds.
    pub fn effective_auth(&self) -> AuthConfig {
        let mut auth = self.auth.clone();
        if let (Some(resource), Some(jwt), true) = (
            &self.oauth.resource,
            auth.jwt.as_mut(),
            self.oauth.check_audience,
        ) {
            jwt.audience = vec![resource.clone()];
        }
        auth
    }
}

fn table_is_unchanged(text: &str, table: &toml::Table) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|orig| &orig == table)
}

fn invalid(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e
        .span()
        .map(|span| line_col(text, span.start))
        .unwrap_or((0, 0));
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message: with_help(e.message().trim()),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The `MCP_WARDEN__*` variables of `env`, sorted.
fn override_vars(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    vars
}

/// The error of a configuration that is valid as written but not with the environment
/// overrides: it names the variable to blame, found by applying each alone (a line and
/// column in the file would point at text the operator did not write).
fn env_error(
    path: &Path,
    text: &str,
    vars: &[(String, String)],
    merged_error: &toml::de::Error,
) -> ConfigError {
    let fails_alone = |one: &(String, String)| -> Option<String> {
        let mut table: toml::Table = toml::from_str(text).ok()?;
        apply_env_overrides(&mut table, std::slice::from_ref(one)).ok()?;
        let merged = toml::to_string(&table).ok()?;
        toml::from_str::<RawConfig>(&merged)
            .err()
            .map(|e| e.message().trim().to_owned())
    };
    let note = |message: &str, whom: &str| {
        with_help(&format!(
            "{message}\n  note: {} is valid as written; {whom}",
            path.display()
        ))
    };
    if let Some((var, message)) = vars
        .iter()
        .find_map(|one| fails_alone(one).map(|m| (one.0.clone(), m)))
    {
        return ConfigError::Env {
            var,
            message: note(
                &message,
                "this comes from applying the environment overrides",
            ),
        };
    }
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    ConfigError::Env {
        var: names.join("`, `"),
        message: note(
            merged_error.message().trim(),
            "these environment overrides together make it invalid",
        ),
    }
}

/// A serde message with advice where a common mistake has an obvious fix.
fn with_help(message: &str) -> String {
    if message.contains("expected a duration") {
        format!(
            "{message}\nhelp: a duration is a string with a unit, e.g. \"30s\", \"5m\", \"1h\" \
             or \"250ms\""
        )
    } else {
        message.to_owned()
    }
}

/// Apply `MCP_WARDEN__A__B=value` overrides: the key path is lowercased and split on
/// `__`; the value is read as a TOML value when it parses as one (`true`, `42`,
/// `["a", "b"]`), otherwise as a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    for (var, value) in vars {
        let (var, value) = (var.clone(), value.clone());
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment".to_owned(),
            });
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = path.split_last().expect("non-empty: checked above");
        let mut node = &mut *table;
        for key in parents {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        message: format!("`{key}` is not a table"),
                    })
                }
            };
        }
        node.insert(last.clone(), parsed);
    }
    Ok(())
}

/// Parse `http://host:port/path`.
pub fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("`{url}`: scheme must be http or https")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("`{url}` has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if uri.query().is_some() {
        return Err(format!("`{url}`: a query string is not supported"));
    }
    let path = match uri.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Upstream {
        authority,
        host,
        port,
        tls,
        path,
    })
}

#[cfg(test)]
mod doc_keys;

#[cfg(test)]
mod tests {
    #[test]
    fn the_tls_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tls.toml");
        let cfg = load_with_env(&path, std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
        let tls = cfg.raw.tls.expect("config/tls.toml has [tls]");
        assert_eq!(tls.client_auth.mode, crate::tls::ClientAuthMode::Required);
        assert!(cfg.raw.auth.mtls.is_some());
        let admin = cfg.raw.admin.tls.expect("config/tls.toml has [admin.tls]");
        assert_eq!(admin.client_auth.mode, crate::tls::ClientAuthMode::Required);
    }

    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const MINIMAL: &str = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000/mcp"
[policy]
dir = "policies"
"#;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let (_d, path) = write(MINIMAL);
        let cfg = load_with_env(&path, vec![]).unwrap();
        assert_eq!(cfg.upstream.authority, "127.0.0.1:9000");
        assert_eq!(cfg.upstream.path, "/mcp");
        assert_eq!(cfg.raw.limits.max_body_bytes, 4 * 1024 * 1024);
        assert!(!cfg.raw.auth.allow_anonymous);
        assert!(!cfg.raw.identity_headers.pass_authorization);
    }

    #[test]
    fn operations_sections_have_sidecar_defaults() {
        let (_d, path) = write(MINIMAL);
        let raw = load_with_env(&path, vec![]).unwrap().raw;
        assert_eq!(raw.admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(raw.upstream_timeouts.connect, Duration::from_secs(5));
        assert_eq!(raw.upstream_timeouts.read, Duration::from_secs(120));
        assert_eq!(raw.upstream_timeouts.sse_idle, Duration::from_secs(300));
        assert_eq!(raw.upstream_timeouts.pool_idle, Duration::from_secs(60));
        assert_eq!(raw.lifecycle.drain_timeout, Duration::from_secs(20));
        assert_eq!(raw.lifecycle.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(raw.log.level, "info");
        assert_eq!(raw.audit.sink, crate::audit::SinkKind::Stdout);
        assert_eq!(raw.audit.failure_mode, crate::audit::FailureMode::FailOpen);
        assert!(!raw.audit.log_arguments);
    }

    #[test]
    fn operations_sections_parse_and_are_checked() {
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9100\"\n[upstream_timeouts]\nread = \"2s\"\n\
             [lifecycle]\ndrain_timeout = \"3s\"\n[log]\nlevel = \"debug,pingora=warn\"\n\
             [audit]\nsink = \"file\"\npath = \"audit.log\"\nfailure_mode = \"fail_closed\"\n"
        ));
        let raw = load_with_env(&path, vec![]).unwrap().raw;
        assert_eq!(raw.admin.listen.port(), 9100);
        assert_eq!(raw.upstream_timeouts.read, Duration::from_secs(2));
        assert_eq!(raw.lifecycle.drain_timeout, Duration::from_secs(3));

        for (extra, key) in [
            ("[log]\nlevel = \"info,=[\"\n", "log.level"),
            ("[audit]\nsink = \"file\"\n", "audit.path"),
            (
                "[upstream_timeouts]\nread = \"0s\"\n",
                "upstream_timeouts.read",
            ),
        ] {
            let (_d, path) = write(&format!("{MINIMAL}\n{extra}"));
            let err = load_with_env(&path, vec![]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{extra}: {err}");
        }
        let (_d, path) = write(&format!("{MINIMAL}\n[admin]\nlisten = \"x\"\n"));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("warden.toml:8:"), "{err}");
    }

    #[test]
    fn admin_tls_and_h2c_parse_and_are_checked() {
        let admin = "[admin.tls]\ncert_file = \"a.crt\"\nkey_file = \"a.key\"\n";
        let (_d, path) = write(&format!("{MINIMAL}\n{admin}\n[connections]\nh2c = true\n"));
        let raw = load_with_env(&path, vec![]).unwrap().raw;
        let tls = raw.admin.tls.expect("[admin.tls]");
        assert_eq!(
            tls.as_listener().alpn,
            ["http/1.1"],
            "the admin listener speaks HTTP/1.1"
        );
        assert!(raw.connections.h2c);

        let tls = "[tls]\ncert_file = \"s.crt\"\nkey_file = \"s.key\"\n";
        for (extra, key) in [
            (
                format!("{admin}[admin.tls.client_auth]\nmode = \"required\"\n"),
                "admin.tls.client_auth.ca_files",
            ),
            (
                format!("[connections]\nh2c = true\n{tls}"),
                "connections.h2c",
            ),
        ] {
            let (_d, path) = write(&format!("{MINIMAL}\n{extra}"));
            let err = load_with_env(&path, vec![]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{extra}: {err}");
        }
    }

    #[test]
    fn unknown_field_names_file_line_and_column() {
        let (_d, path) = write(&format!("{MINIMAL}\n[limits]\nmax_bdy = 3\n"));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("warden.toml:8:"), "{err}");
        assert!(err.contains("max_bdy"), "{err}");
    }

    #[test]
    fn syntax_error_names_line() {
        let (_d, path) = write("listen = \n");
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("warden.toml:1:"), "{err}");
    }

    #[test]
    fn env_overrides_nested_keys_with_typed_values() {
        let (_d, path) = write(MINIMAL);
        let env = vec![
            ("MCP_WARDEN__LISTEN".to_owned(), "0.0.0.0:9999".to_owned()),
            (
                "MCP_WARDEN__AUTH__ALLOW_ANONYMOUS".to_owned(),
                "true".to_owned(),
            ),
            (
                "MCP_WARDEN__LIMITS__MAX_BODY_BYTES".to_owned(),
                "1024".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let cfg = load_with_env(&path, env).unwrap();
        assert_eq!(cfg.raw.listen.port(), 9999);
        assert!(cfg.raw.auth.allow_anonymous);
        assert_eq!(cfg.raw.limits.max_body_bytes, 1024);
    }

    #[test]
    fn bad_env_override_is_an_error() {
        let (_d, path) = write(MINIMAL);
        let env = vec![(
            "MCP_WARDEN__LIMITS__MAX_BODY_BYTES".to_owned(),
            "lots".to_owned(),
        )];
        let err = load_with_env(&path, env).unwrap_err().to_string();
        assert!(err.contains("overrides"), "{err}");
    }

    /// The error names the variable, not a line and column of text the operator never
    /// wrote.
    #[test]
    fn bad_env_override_names_the_variable() {
        let (_d, path) = write(MINIMAL);
        let env = vec![
            ("MCP_WARDEN__LISTEN".to_owned(), "0.0.0.0:9999".to_owned()),
            (
                "MCP_WARDEN__LIMITS__MAX_BODY_BYTES".to_owned(),
                "lots".to_owned(),
            ),
        ];
        let err = load_with_env(&path, env).unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable `MCP_WARDEN__LIMITS__MAX_BODY_BYTES`: "),
            "{err}"
        );
        assert!(!err.contains(":0:0"), "{err}");
        assert!(err.contains("is valid as written"), "{err}");
    }

    #[test]
    fn a_bad_duration_shows_examples() {
        let (_d, path) = write(&format!("{MINIMAL}\n[sessions]\nidle_timeout = 30\n"));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("expected a duration"), "{err}");
        assert!(
            err.contains("help: ") && err.contains("\"30s\", \"5m\""),
            "{err}"
        );
        assert!(
            err.contains("warden.toml:"),
            "still names the file and line: {err}"
        );
        let (_d, path) = write(MINIMAL);
        let env = vec![(
            "MCP_WARDEN__SESSIONS__IDLE_TIMEOUT".to_owned(),
            "soon".to_owned(),
        )];
        let err = load_with_env(&path, env).unwrap_err().to_string();
        assert!(err.contains("MCP_WARDEN__SESSIONS__IDLE_TIMEOUT"), "{err}");
        assert!(err.contains("\"30s\", \"5m\""), "{err}");
    }

    #[test]
    fn upstream_must_be_http() {
        assert!(parse_upstream("ftp://x/mcp").is_err());
        assert!(parse_upstream("not a url").is_err());
        let u = parse_upstream("http://[::1]:7000/").unwrap();
        assert_eq!(u.authority, "[::1]:7000");
        assert_eq!(parse_upstream("https://example.com/mcp").unwrap().port, 443);
    }

    #[test]
    fn taint_and_tool_overrides_parse() {
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[taint]\nsources = [{{ tool = \"ehr\", label = \"phi\" }}]\n\
             sinks = [\"send_email\"]\nttl = \"2h\"\nmax_entries = 10\n\
             [tools.echo]\nannotations = {{ openWorldHint = true, title = \"Echo\" }}\n\
             [tools.send_email.annotations]\nreadOnlyHint = false\n"
        ));
        let raw = load_with_env(&path, vec![]).unwrap().raw;
        assert_eq!(raw.taint.ttl, Duration::from_secs(7200));
        assert_eq!(raw.taint.max_entries, 10);
        assert_eq!(
            raw.taint.sources().labels("ehr"),
            Some(&["phi".to_owned()][..])
        );
        let overrides = raw.annotation_overrides();
        assert_eq!(
            serde_json::Value::Object(overrides["echo"].clone()),
            serde_json::json!({"openWorldHint": true, "title": "Echo"})
        );
        assert_eq!(
            serde_json::Value::Object(overrides["send_email"].clone()),
            serde_json::json!({"openWorldHint": true, "readOnlyHint": false})
        );
        assert_eq!(overrides.len(), 2);
    }

    #[test]
    fn taint_defaults_and_mistakes() {
        let (_d, path) = write(MINIMAL);
        let raw = load_with_env(&path, vec![]).unwrap().raw;
        assert!(raw.taint.sources.is_empty());
        assert_eq!(raw.taint.ttl, Duration::from_secs(24 * 3600));
        assert!(raw.annotation_overrides().is_empty());

        // a misspelt hint names the line
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[tools.echo]\nannotations = {{ openWorldhint = true }}\n"
        ));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(
            err.contains("warden.toml:8:") && err.contains("openWorldhint"),
            "{err}"
        );
        // a hint of the wrong type
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[tools.echo]\nannotations = {{ openWorldHint = \"yes\" }}\n"
        ));
        assert!(load_with_env(&path, vec![]).is_err());
        // a sink that the operator also declared closed-world
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[taint]\nsinks = [\"echo\"]\n[tools.echo]\nannotations = {{ openWorldHint = false }}\n"
        ));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("`taint.sinks`"), "{err}");
        let (_d, path) = write(&format!(
            "{MINIMAL}\n[taint]\nsources = [{{ tool = \"x\", label = \"a b\" }}]\n"
        ));
        let err = load_with_env(&path, vec![]).unwrap_err().to_string();
        assert!(err.contains("`taint.sources`"), "{err}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
