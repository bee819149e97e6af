//! Authentication: turns request headers into an [`Identity`] or an [`AuthError`].
//! (contract stub: implemented by the auth module owner)

mod identity;

use std::path::{Path, PathBuf};

pub use identity::{AuthMethod, Identity};

/// The `[auth]` section of the configuration.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Admit requests that carry no credential as the `anonymous` principal.
    #[serde(default)]
    pub allow_anonymous: bool,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// No credential.
    #[error("no credential")]
    Missing,
}

impl AuthError {
    /// Bounded label for metrics and audit.
    pub fn reason(&self) -> &'static str {
        "missing"
    }
    /// The `WWW-Authenticate` header value for the 401.
    pub fn www_authenticate(&self, _resource_metadata: Option<&str>) -> String {
        "Bearer".to_owned()
    }
}

/// A configuration problem in the `[auth]` section or a key file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(pub String);

/// Verifies credentials.
pub struct Authenticator {}

impl Authenticator {
    /// Build from the `[auth]` section; relative paths resolve against `base_dir`.
    pub fn from_config(_cfg: &AuthConfig, _base_dir: &Path) -> Result<Self, AuthConfigError> {
        Ok(Authenticator {})
    }
    /// Authenticate one request by its headers.
    pub fn authenticate(&self, _headers: &http::HeaderMap) -> Result<Identity, AuthError> {
        Err(AuthError::Missing)
    }
    /// Files to watch for hot reload (the JWKS file, if any).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Re-read watched key files; on error the previous keys stay in force.
    pub fn reload(&self) -> Result<(), AuthConfigError> {
        Ok(())
    }
}

/// Hex SHA-256 of an API key (stub).
pub fn hash_api_key(_key: &str) -> String {
    todo!()
}
