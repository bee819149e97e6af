//! The `[auth.biscuit]` section (root keys, revocation, the verified-token cache, the
//! identity facts) and `[policy.biscuit.limits]` (the run limits of every Datalog
//! evaluation), as plain serde data. The keys keep the names operators already use.
//!
//! Both the authenticator (reading a token's identity and expiry) and the policy engine
//! (authorization, listing) run Datalog; they read the one [`DatalogLimits`] value that
//! `[policy.biscuit.limits]` configures, so a limit set there bounds every evaluation.

use std::path::PathBuf;
use std::time::Duration;

use biscuit_auth::AuthorizerLimits;
use serde::Deserialize;

/// The `[auth.biscuit]` section: root keys, revocation, the verified-token cache, and
/// which authority-block facts make up the caller's identity ([`super::TokenIdentity`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiscuitConfig {
    /// Root public keys (`[[auth.biscuit.keys]]`). A token is verified with the key whose
    /// `id` equals the token's `root_key_id`; two keys with different ids are valid at
    /// once during a rotation. At least one is required.
    pub keys: Vec<BiscuitKeyConfig>,
    /// A file of revoked revocation ids (hex, one per line, `#` comments), relative to
    /// the configuration file's directory. A token any of whose blocks is listed is
    /// refused. Re-read on change and on `SIGHUP`. Default: none.
    #[serde(default)]
    pub revocation_file: Option<PathBuf>,
    /// Most verified tokens remembered (by the token's text), so a long session
    /// does not re-verify signatures on every request. Default 10 000; `0` disables the
    /// cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// How long a verified token is remembered. Default 5 minutes. Revocation, key
    /// reloads and expiry are checked on every request whatever the cache holds.
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Authority-block fact (arity 1) naming the user (the identity's subject).
    /// Default `user`. A token with two such facts is refused; a token with none gets the
    /// subject `biscuit:<first 16 hex digits of its authority block's revocation id>`.
    #[serde(default = "default_subject_fact")]
    pub subject_fact: String,
    /// Authority-block fact (arity 1) naming the agent. Default `agent`.
    #[serde(default = "default_agent_fact")]
    pub agent_fact: String,
    /// Authority-block fact (arity 1) whose values are the roles. Default `role`.
    #[serde(default = "default_roles_fact")]
    pub roles_fact: String,
    /// Authority-block fact (arity 1) whose values are the scopes. Default `scope`.
    #[serde(default = "default_scopes_fact")]
    pub scopes_fact: String,
    /// More authority-block facts (arity 1) copied into
    /// the identity's claims under their own name (one value: a string or
    /// number; several: an array), e.g. `["patient_name"]`. They become identity headers
    /// through `identity_headers.claims` and Cedar `principal.claims`. Default: none.
    #[serde(default)]
    pub claim_facts: Vec<String>,
}

fn default_cache_size() -> usize {
    10_000
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_subject_fact() -> String {
    "user".to_owned()
}

fn default_agent_fact() -> String {
    "agent".to_owned()
}

fn default_roles_fact() -> String {
    "role".to_owned()
}

fn default_scopes_fact() -> String {
    "scope".to_owned()
}

impl Default for BiscuitConfig {
    fn default() -> Self {
        BiscuitConfig {
            keys: Vec::new(),
            revocation_file: None,
            cache_size: default_cache_size(),
            cache_ttl: default_cache_ttl(),
            subject_fact: default_subject_fact(),
            agent_fact: default_agent_fact(),
            roles_fact: default_roles_fact(),
            scopes_fact: default_scopes_fact(),
            claim_facts: Vec::new(),
        }
    }
}

/// One `[[auth.biscuit.keys]]` entry: a root public key and its id.
///
/// The key is given by exactly one of `public_key` (text) or `public_key_file`. Accepted
/// forms: `ed25519/<hex>` or `secp256r1/<hex>` (what `mcp-warden keygen` and
/// `biscuit-python` print), bare hex with `algorithm`, or a PEM `PUBLIC KEY`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiscuitKeyConfig {
    /// The `root_key_id` of the tokens this key verifies. Unset: tokens without a root key
    /// id. Ids are unique.
    #[serde(default)]
    pub id: Option<u32>,
    /// `ed25519` or `secp256r1` (P-256). Required for bare hex; otherwise it must agree
    /// with the key.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The key as text.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A file holding the key, relative to the configuration file's directory. Re-read
    /// on change and on `SIGHUP`.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

/// The default run limits for every Datalog evaluation of a token: generous on time
/// (Biscuit's own default of 1 ms fails on a loaded machine), tight on facts and
/// iterations, which bound the work a hostile attenuation block can ask for.
pub fn default_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_millis(20),
    }
}

/// `[policy.biscuit.limits]`: bounds on one Datalog evaluation, under either engine and
/// at authentication. Exceeding one is a deny (`run_limit`) or a refused token, never an
/// allow.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatalogLimits {
    /// Most facts (given and derived). Default 1000.
    pub max_facts: u64,
    /// Most rule-application rounds. Default 100.
    pub max_iterations: u64,
    /// Longest evaluation, e.g. `"20ms"` (the default; Biscuit's own 1 ms fails on a
    /// loaded machine).
    #[serde(with = "humantime_serde")]
    pub max_time: Duration,
}

impl Default for DatalogLimits {
    fn default() -> Self {
        let d = default_limits();
        DatalogLimits {
            max_facts: d.max_facts,
            max_iterations: d.max_iterations,
            max_time: d.max_time,
        }
    }
}

impl DatalogLimits {
    /// As Biscuit's limits.
    pub fn to_limits(&self) -> AuthorizerLimits {
        AuthorizerLimits {
            max_facts: self.max_facts,
            max_iterations: self.max_iterations,
            max_time: self.max_time,
        }
    }
}
