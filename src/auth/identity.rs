//! The authenticated caller, as every later stage sees it.
//!
//! An [`Identity`] is produced once per request by [`crate::auth::Authenticator`] and is
//! read-only afterwards: the policy engine turns it into a principal, the proxy turns it
//! into identity headers, and the session table binds `Mcp-Session-Id`s to its
//! [`Identity::principal_key`].

use std::sync::Arc;

use serde_json::{Map, Value};

use super::biscuit::BiscuitToken;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `Authorization: Bearer <JWT>`, signature and claims verified.
    Jwt,
    /// `X-API-Key: <key>`, matched against a hashed key in the configuration.
    ApiKey,
    /// No credential, admitted because the operator enabled anonymous access.
    Anonymous,
    /// `Authorization: Bearer <Biscuit>`, signature chain verified against a root key,
    /// not revoked, not expired.
    Biscuit,
}

impl AuthMethod {
    /// Stable lowercase name, used in audit lines, policies (`principal.auth_method`)
    /// and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Biscuit => "biscuit",
        }
    }
}

/// The caller: a user (subject), optionally an agent acting for them, and what the
/// credential says about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user: the JWT `sub`, or the principal an API key maps to.
    pub subject: String,
    /// The agent (OAuth client) acting for the user, from a configurable claim such as
    /// `azp` or `client_id`. `None` when the credential names no agent.
    pub agent: Option<String>,
    /// Roles and groups; become the Cedar principal's parents (`Role::"<name>"`).
    pub roles: Vec<String>,
    /// OAuth scopes, from a `scope` string (space separated) or an `scp` array.
    pub scopes: Vec<String>,
    /// Every other claim of the credential (JWT claims, or the attributes configured
    /// for an API key), available to policies as principal attributes.
    pub claims: Map<String, Value>,
    /// How the credential was proven.
    pub method: AuthMethod,
    /// The verified Biscuit, when the caller authenticated with one. The Biscuit engine
    /// authorizes with it, and every engine enforces its checks (see
    /// [`crate::policy::biscuit`]).
    pub biscuit: Option<Arc<BiscuitToken>>,
}

impl Identity {
    /// A key that names this principal for session binding: two requests with the same
    /// key are the same caller. Includes the auth method so an API-key principal named
    /// `alice` is not the JWT subject `alice`.
    pub fn principal_key(&self) -> String {
        match &self.agent {
            Some(agent) => format!("{}:{}:{}", self.method.as_str(), self.subject, agent),
            None => format!("{}:{}", self.method.as_str(), self.subject),
        }
    }

    /// The identity used when anonymous access is enabled and no credential was sent.
    pub fn anonymous() -> Self {
        Identity {
            subject: "anonymous".to_owned(),
            agent: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: Map::new(),
            method: AuthMethod::Anonymous,
            biscuit: None,
        }
    }
}
