//! The `[state]` section and the `[[rate_limits]]` rules, as written (serde only), with
//! the checks serde cannot express.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where shared state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process (the default): right for one replica or a sidecar.
    #[default]
    Memory,
    /// In Redis, shared by every replica that names the same URL and key prefix.
    Redis,
}

/// What a decision that needs shared state does when the backend cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Refuse the request (HTTP 503, JSON-RPC error `STATE_UNAVAILABLE`). The default.
    #[default]
    Deny,
    /// Decide without it: no revocation check, only the taint this replica saw itself,
    /// no rate limit. Counted and logged each time.
    Allow,
}

/// `[state.on_unavailable]`: the fail mode of each feature that reads shared state.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailModes {
    /// Taint labels (default `deny`).
    pub taint: OnUnavailable,
    /// Token revocation (default `deny`).
    pub revocation: OnUnavailable,
    /// Rate limits (default `deny`).
    pub rate_limits: OnUnavailable,
}

/// The `[state]` section: where taint labels, revoked token ids and rate-limit buckets
/// live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `memory` (default) or `redis`.
    pub backend: Backend,
    /// The Redis server: `redis://host:port/db` or `rediss://host:port/db` (TLS). A
    /// username and password may be in the URL, but prefer `password_env` or
    /// `password_file`. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// The Redis ACL user (overrides the URL's).
    pub username: Option<String>,
    /// The environment variable holding the Redis password (overrides the URL's).
    pub password_env: Option<String>,
    /// A file holding the Redis password (trailing newline ignored; relative to the
    /// configuration file).
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`);
    /// default: the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for Redis servers that require TLS client auth.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Prefix of every key the proxy writes (default `mcp-warden:`). Replicas that must
    /// share state use the same prefix; separate deployments on one Redis use different
    /// ones.
    pub key_prefix: String,
    /// Time allowed to open a connection to Redis (default 1s).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for one Redis round trip (default 200ms). No request waits longer on
    /// shared state: past it, the feature's `on_unavailable` applies.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Taint labels this replica remembers locally (default 10 000 keys). Taint only
    /// grows, so a remembered label is never wrong before its TTL; the cache answers when
    /// Redis does not and `on_unavailable.taint = "allow"`, and keeps a label whose write
    /// to Redis failed.
    pub local_cache_entries: usize,
    /// Most rate-limit buckets and revoked ids the memory backend holds (default
    /// 100 000). When full, expired ones are dropped first, then the bucket closest to
    /// refilled (see `docs/src/replicas.md`).
    pub memory_max_keys: usize,
    /// Fail mode per feature.
    pub on_unavailable: FailModes,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Memory,
            url: "redis://127.0.0.1:6379".to_owned(),
            username: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            key_prefix: "mcp-warden:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(200),
            local_cache_entries: 10_000,
            memory_max_keys: 100_000,
            on_unavailable: FailModes::default(),
        }
    }
}

impl StateConfig {
    /// Checks serde cannot express: `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.backend == Backend::Redis
            && !(self.url.starts_with("redis://") || self.url.starts_with("rediss://"))
        {
            return Err((
                "state.url",
                format!(
                    "`{}` is not a `redis://` or `rediss://` URL",
                    redact(&self.url)
                ),
            ));
        }
        if self.key_prefix.is_empty() {
            return Err(("state.key_prefix", "must not be empty".to_owned()));
        }
        for (key, value) in [
            ("state.connect_timeout", self.connect_timeout),
            ("state.command_timeout", self.command_timeout),
        ] {
            if value.is_zero() {
                return Err((key, "must be more than zero".to_owned()));
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err((
                "state.client_cert_file",
                "`client_cert_file` and `client_key_file` go together".to_owned(),
            ));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err((
                "state.password_env",
                "give `password_env` or `password_file`, not both".to_owned(),
            ));
        }
        if self.memory_max_keys == 0 {
            return Err(("state.memory_max_keys", "must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// One `[[rate_limits]]` rule. A message is counted by every rule it matches; each rule
/// keeps one bucket per principal (and per tool, with `per_tool`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The rule's name: in metrics (`rule` label), audit lines, the client's error and
    /// the Redis key. 1–64 characters from `A-Z a-z 0-9 _ - .`; unique.
    pub name: String,
    /// Glob (`*`, `?`) on the caller's subject (default: any).
    #[serde(default)]
    pub principal: Option<String>,
    /// The caller must have this role (default: any caller).
    #[serde(default)]
    pub role: Option<String>,
    /// Glob on the agent acting for the caller (default: any, with or without an agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// Glob on the tool name; only `tools/call` messages match a rule that names one.
    #[serde(default)]
    pub tool: Option<String>,
    /// Glob on the JSON-RPC method, e.g. `tools/call` (default: any request).
    #[serde(default)]
    pub method: Option<String>,
    /// Requests allowed per `per` (at least 1).
    pub rate: u64,
    /// The period of `rate` (default 1m).
    #[serde(default = "default_period", with = "humantime_serde")]
    pub per: Duration,
    /// Requests allowed at once (default `rate`).
    #[serde(default)]
    pub burst: Option<u64>,
    /// Count each tool apart (a bucket per principal and tool) instead of one bucket per
    /// principal for every message the rule matches.
    #[serde(default)]
    pub per_tool: bool,
}

fn default_period() -> Duration {
    Duration::from_secs(60)
}

/// Check every rule: `(key, reason)` of the first bad value.
pub fn check_rules(rules: &[RateLimitConfig]) -> Result<(), (&'static str, String)> {
    let mut names = std::collections::HashSet::new();
    for rule in rules {
        let ok = !rule.name.is_empty()
            && rule.name.len() <= 64
            && rule
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err((
                "rate_limits.name",
                format!(
                    "`{}` must be 1–64 characters from `A-Z a-z 0-9 _ - .`",
                    rule.name
                ),
            ));
        }
        if !names.insert(rule.name.as_str()) {
            return Err((
                "rate_limits.name",
                format!("`{}` names two rules", rule.name),
            ));
        }
        if rule.rate == 0 {
            return Err((
                "rate_limits.rate",
                format!("rule `{}`: must be at least 1", rule.name),
            ));
        }
        if rule.burst == Some(0) {
            return Err((
                "rate_limits.burst",
                format!("rule `{}`: must be at least 1", rule.name),
            ));
        }
        if rule.per.as_millis() < u128::from(rule.rate) {
            return Err((
                "rate_limits.per",
                format!(
                    "rule `{}`: {} per {} is finer than one per millisecond",
                    rule.name,
                    rule.rate,
                    humantime::format_duration(rule.per)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_memory_and_fail_closed() {
        let cfg: StateConfig = toml::from_str("").unwrap();
        assert_eq!(cfg.backend, Backend::Memory);
        assert_eq!(cfg.on_unavailable.taint, OnUnavailable::Deny);
        assert_eq!(cfg.on_unavailable.revocation, OnUnavailable::Deny);
        assert_eq!(cfg.on_unavailable.rate_limits, OnUnavailable::Deny);
        cfg.check().unwrap();
    }

    #[test]
    fn bad_state_values_are_refused() {
        for (text, key) in [
            (
                r#"backend = "redis"
url = "http://x""#,
                "state.url",
            ),
            (r#"key_prefix = """#, "state.key_prefix"),
            (r#"command_timeout = "0s""#, "state.command_timeout"),
            (r#"client_cert_file = "c.pem""#, "state.client_cert_file"),
            (
                "password_env = \"P\"\npassword_file = \"p\"",
                "state.password_env",
            ),
        ] {
            let cfg: StateConfig = toml::from_str(text).unwrap();
            assert_eq!(cfg.check().unwrap_err().0, key, "{text}");
        }
        assert!(toml::from_str::<StateConfig>(r#"backend = "etcd""#).is_err());
        assert!(toml::from_str::<StateConfig>("[on_unavailable]\ntaint = \"maybe\"").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn rules_are_checked() {
        #[derive(Deserialize)]
        struct Rules {
            rate_limits: Vec<RateLimitConfig>,
        }
        let parse = |t: &str| toml::from_str::<Rules>(t).unwrap().rate_limits;
        let good = parse("[[rate_limits]]\nname = \"a\"\nrate = 10\n");
        check_rules(&good).unwrap();
        assert_eq!(good[0].per, Duration::from_secs(60));
        for (text, key) in [
            (
                "[[rate_limits]]\nname = \"a b\"\nrate = 1",
                "rate_limits.name",
            ),
            (
                "[[rate_limits]]\nname = \"a\"\nrate = 1\n[[rate_limits]]\nname = \"a\"\nrate = 1",
                "rate_limits.name",
            ),
            (
                "[[rate_limits]]\nname = \"a\"\nrate = 0",
                "rate_limits.rate",
            ),
            (
                "[[rate_limits]]\nname = \"a\"\nrate = 1\nburst = 0",
                "rate_limits.burst",
            ),
            (
                "[[rate_limits]]\nname = \"a\"\nrate = 5000\nper = \"1s\"",
                "rate_limits.per",
            ),
        ] {
            assert_eq!(check_rules(&parse(text)).unwrap_err().0, key, "{text}");
        }
        assert!(
            toml::from_str::<Rules>("[[rate_limits]]\nname = \"a\"\nrate = 1\nuser = \"x\"")
                .is_err()
        );
    }
}
