//! The `[auth]` configuration section, as plain serde data.
//!
//! This is the first of the two configuration stages: it only describes what the
//! operator wrote. [`crate::auth::Authenticator::from_config`] is the second stage: it
//! checks the values, reads key files and secrets, and reports problems by setting name
//! or file.
//!
//! ```toml
//! [auth]
//! allow_anonymous = false
//!
//! [auth.jwt]
//! issuer = "https://idp.example"
//! audience = ["mcp-warden"]
//! algorithms = ["RS256", "ES256", "EdDSA", "HS256"]
//! leeway = "30s"
//! agent_claim = "azp"
//! roles_claims = ["roles", "groups", "/realm_access/roles"]
//! jwks_file = "keys/jwks.json"
//!
//! [[auth.jwt.keys]]
//! kid = "dev"
//! alg = "HS256"
//! secret_env = "WARDEN_JWT_SECRET"
//!
//! [[auth.api_keys]]
//! sha256 = "<hex sha-256 of the key, see `hash_api_key`>"
//! subject = "ci-bot"
//! agent = "nightly-eval"
//! roles = ["ci"]
//! claims = { team = "platform" }
//!
//! [auth.biscuit]
//! revocation_file = "revoked.txt"
//! claim_facts = ["patient_name"]
//!
//! [[auth.biscuit.keys]]
//! id = 1
//! public_key_file = "keys/biscuit-root-1.public"
//!
//! [auth.mtls]
//! subject = "spiffe_id"
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The `[auth]` section of the configuration.
///
/// With neither `jwt` nor `api_keys` nor `allow_anonymous`, every request is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Admit requests that carry no credential at all as the `anonymous` principal
    /// ([`crate::auth::Identity::anonymous`]). Default `false`. A request whose credential
    /// is present but invalid is refused either way, never downgraded to anonymous.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// `[auth.jwt]`: accept `Authorization: Bearer <JWT>`. Absent: bearer tokens are refused.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// `[[auth.api_keys]]`: accept `X-API-Key: <key>` for these keys. Default: none.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// `[auth.biscuit]`: accept `Authorization: Bearer <Biscuit>`. Absent: Biscuits are
    /// refused.
    #[serde(default)]
    pub biscuit: Option<crate::biscuit::BiscuitConfig>,
    /// `[auth.mtls]`: a verified client certificate (`[tls.client_auth]`) is a caller, or
    /// the agent half of a compound identity. Absent: certificates authenticate no one
    /// (they still reach policies as `context.mtls` and the identity headers).
    #[serde(default)]
    pub mtls: Option<MtlsConfig>,
}

/// `[auth.mtls]`: what a verified client certificate proves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtlsConfig {
    /// A request with a certificate and no other credential is the caller the certificate
    /// names (`auth_method = "mtls"`). Default `true`.
    pub caller: bool,
    /// With a bearer token or API key too, the certificate is the agent acting for the
    /// token's user (`context.agent`, `X-MCP-Agent`). Default `true`.
    pub agent: bool,
    /// Which field names the caller or agent: `spiffe_id` (default), `dns` (the first DNS
    /// SAN), `subject` (the CN) or `fingerprint`. A certificate without it is refused.
    pub subject: super::client_cert::CertField,
    /// Every bearer token must be bound to the connection's certificate (RFC 8705
    /// `cnf.x5t#S256`). A token that carries a binding is always checked against it.
    pub require_bound_tokens: bool,
}

impl Default for MtlsConfig {
    fn default() -> Self {
        MtlsConfig {
            caller: true,
            agent: true,
            subject: super::client_cert::CertField::SpiffeId,
            require_bound_tokens: false,
        }
    }
}

/// The `[auth.jwt]` section: how bearer JWTs are verified and mapped to an identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Required value of the `iss` claim. When set, a token without `iss` or with another
    /// issuer is refused. Default: not checked.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted audiences: the token's `aud` (string or array) must name at least one.
    /// A single string is accepted for one audience. Default: empty, meaning `aud` is not
    /// checked, which the MCP authorization spec forbids for production (a token minted
    /// for another service would be accepted); a warning is logged at start-up.
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Allow-list of JWS algorithms. A token whose header `alg` is not listed is refused
    /// before any key is looked at; `none` can never be allowed. Supported: `HS256`,
    /// `HS384`, `HS512`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`,
    /// `ES384`, `EdDSA`. Default: `["RS256", "ES256", "EdDSA", "HS256"]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`, e.g. `"30s"`. At most 5 minutes.
    /// Default: 30 seconds.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Claim naming the agent (OAuth client) acting for the user; becomes
    /// [`crate::auth::Identity::agent`]. Default: `azp`, falling back to `client_id`.
    /// A name starting with `/` is a JSON Pointer (RFC 6901) into the claims.
    #[serde(default)]
    pub agent_claim: Option<String>,
    /// Claims whose values (a string, or an array of strings) become
    /// [`crate::auth::Identity::roles`]. A name starting with `/` is a JSON Pointer, e.g.
    /// `/realm_access/roles` for Keycloak. Default: `["roles", "groups"]`.
    #[serde(default = "default_roles_claims")]
    pub roles_claims: Vec<String>,
    /// A JWKS file (RFC 7517 `{"keys": [...]}`) of verification keys, relative to the
    /// configuration file's directory. Re-read by [`crate::auth::Authenticator::reload`].
    /// Keys marked `"use": "enc"` (or whose `key_ops` lack `verify`) are skipped, as are
    /// keys whose `alg` is not in `algorithms`; a key without `alg` gets the usual one for
    /// its type (`RS256`, `ES256`/`ES384` by curve, `EdDSA`, `HS256` for `oct`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Keys given inline (`[[auth.jwt.keys]]`). Default: none. At least one key or a
    /// `jwks_file` is required.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// How many verified tokens to remember (by a digest of the token), so a session
    /// pays the signature check once; `exp`/`nbf` are checked again on every use and a
    /// key reload forgets them all. `0` turns the cache off. Default: 4096.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

fn default_cache_size() -> usize {
    super::jwt_cache::DEFAULT_CACHE_SIZE
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuer: None,
            audience: Vec::new(),
            algorithms: default_algorithms(),
            leeway: default_leeway(),
            agent_claim: None,
            roles_claims: default_roles_claims(),
            jwks_file: None,
            keys: Vec::new(),
            cache_size: default_cache_size(),
        }
    }
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA", "HS256"]
        .map(str::to_owned)
        .to_vec()
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_roles_claims() -> Vec<String> {
    vec!["roles".to_owned(), "groups".to_owned()]
}

/// One `[[auth.jwt.keys]]` entry: a verification key bound to exactly one algorithm.
///
/// HMAC keys take their secret from exactly one of `secret_env`, `secret_file` or
/// `secret` (at least as many bytes as the hash output: 32 for `HS256`). Public-key
/// algorithms take `public_key_file`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id. When set, only tokens whose header `kid` equals it are verified with this
    /// key; when unset, only tokens without a `kid` are.
    #[serde(default)]
    pub kid: Option<String>,
    /// The one algorithm this key verifies, e.g. `"RS256"`. Must be listed in
    /// `auth.jwt.algorithms`.
    pub alg: String,
    /// HMAC: name of the environment variable holding the secret (its raw bytes).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// HMAC: file holding the secret (its raw bytes, one trailing newline removed),
    /// e.g. a mounted Kubernetes secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// HMAC: the secret itself. **For demos only**: it sits in clear in the configuration
    /// file; prefer `secret_env` or `secret_file`.
    #[serde(default)]
    pub secret: Option<String>,
    /// RSA, ECDSA, EdDSA: PEM file with the public key (`PUBLIC KEY`,
    /// `RSA PUBLIC KEY`) or a certificate (`CERTIFICATE`).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

impl fmt::Debug for JwtKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeyConfig")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_key_file", &self.public_key_file)
            .finish()
    }
}

/// One `[[auth.api_keys]]` entry: a key (stored only as its SHA-256) and the identity it
/// stands for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Lowercase or uppercase hex SHA-256 of the key (64 digits), as printed by
    /// [`crate::auth::hash_api_key`]. The key itself is never stored.
    pub sha256: String,
    /// The user this key authenticates ([`crate::auth::Identity::subject`]).
    pub subject: String,
    /// The agent acting for the user, if any ([`crate::auth::Identity::agent`]).
    #[serde(default)]
    pub agent: Option<String>,
    /// Roles of this principal ([`crate::auth::Identity::roles`]). Default: none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes granted to this key ([`crate::auth::Identity::scopes`]). Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Free attributes ([`crate::auth::Identity::claims`]), e.g. `{ team = "platform" }`.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// Accepts `"x"` as well as `["x", "y"]`.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or an array of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        auth: AuthConfig,
    }

    fn parse(text: &str) -> Result<AuthConfig, toml::de::Error> {
        toml::from_str::<Wrapper>(text).map(|w| w.auth)
    }

    #[test]
    fn empty_section_is_closed() {
        let cfg = parse("[auth]\n").expect("parses");
        assert!(!cfg.allow_anonymous);
        assert!(cfg.jwt.is_none());
        assert!(cfg.api_keys.is_empty());
        assert!(cfg.biscuit.is_none());
    }

    #[test]
    fn biscuit_section_parses_with_defaults() {
        let cfg = parse(
            r#"
            [auth.biscuit]
            revocation_file = "revoked.txt"
            claim_facts = ["patient_name"]
            [[auth.biscuit.keys]]
            id = 1
            public_key = "ed25519/00"
            [[auth.biscuit.keys]]
            algorithm = "secp256r1"
            public_key_file = "k.pem"
            "#,
        )
        .expect("parses");
        let b = cfg.biscuit.expect("biscuit section");
        assert_eq!(b.keys.len(), 2);
        assert_eq!(b.keys[0].id, Some(1));
        assert_eq!(b.subject_fact, "user");
        assert_eq!(b.cache_size, 10_000);
        assert_eq!(b.cache_ttl, Duration::from_secs(300));
        assert!(parse("[auth.biscuit]\nkeys = []\nsubject = \"x\"\n").is_err());
    }

    #[test]
    fn full_example_parses_with_defaults() {
        let cfg = parse(
            r#"
            [auth]
            allow_anonymous = true
            [auth.jwt]
            issuer = "https://idp.example"
            audience = "mcp-warden"
            jwks_file = "keys/jwks.json"
            [[auth.jwt.keys]]
            kid = "dev"
            alg = "HS256"
            secret = "s3cr3t"
            [[auth.api_keys]]
            sha256 = "00"
            subject = "ci-bot"
            claims = { team = "platform", level = 3 }
            "#,
        )
        .expect("parses");
        let jwt = cfg.jwt.expect("jwt section");
        assert_eq!(jwt.audience, vec!["mcp-warden"]);
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.algorithms, default_algorithms());
        assert_eq!(jwt.roles_claims, vec!["roles", "groups"]);
        assert_eq!(jwt.agent_claim, None);
        assert_eq!(jwt.keys.len(), 1);
        assert_eq!(cfg.api_keys[0].claims["level"], 3);
    }

    #[test]
    fn leeway_and_audience_list() {
        let cfg =
            parse("[auth.jwt]\nleeway = \"2m\"\naudience = [\"a\", \"b\"]\n").expect("parses");
        let jwt = cfg.jwt.expect("jwt section");
        assert_eq!(jwt.leeway, Duration::from_secs(120));
        assert_eq!(jwt.audience, vec!["a", "b"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse("[auth]\nallow_anonymus = true\n").is_err());
        assert!(parse("[auth.jwt]\nissuers = \"x\"\n").is_err());
        assert!(parse("[[auth.jwt.keys]]\nalg = \"HS256\"\nsecrets = \"x\"\n").is_err());
        assert!(
            parse("[[auth.api_keys]]\nsha256 = \"x\"\nsubject = \"s\"\nrole = [\"r\"]\n").is_err()
        );
    }

    #[test]
    fn debug_redacts_inline_secret() {
        let key = JwtKeyConfig {
            alg: "HS256".to_owned(),
            secret: Some("hunter2-hunter2".to_owned()),
            ..JwtKeyConfig::default()
        };
        let text = format!("{key:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
}
