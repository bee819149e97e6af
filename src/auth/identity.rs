//! The authenticated caller, as every later stage sees it.
//!
//! An [`Identity`] is produced once per request by [`crate::auth::Authenticator`] and is
//! read-only afterwards: the policy engine turns it into a principal, the proxy turns it
//! into identity headers, and the session table binds `Mcp-Session-Id`s to its
//! [`Identity::principal_key`].

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::biscuit::BiscuitToken;

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
    /// A verified TLS client certificate alone (`[auth.mtls]`).
    Mtls,
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
            AuthMethod::Mtls => "mtls",
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

    /// A key that names the credential itself, for taint tracking: two requests with the
    /// same key presented the same token. A JWT is named by its issuer and `jti`, or by
    /// its issuer and subject when it has no `jti`; an API key by its subject (several
    /// keys configured for one subject share it); a Biscuit by its authority block's
    /// revocation id (so attenuations share it); every anonymous caller shares one key.
    /// Parts are JSON-encoded, so no two credentials' keys collide.
    pub fn credential_key(&self) -> String {
        // Tuples serialize as JSON arrays: the parts are written straight into the key,
        // with no tree built or claim copied.
        let claim = |name: &str| self.claims.get(name).unwrap_or(&Value::Null);
        let key = match self.method {
            AuthMethod::Jwt => match self.claims.get("jti") {
                Some(jti) if !jti.is_null() => {
                    serde_json::to_string(&("jwt", claim("iss"), "jti", jti))
                }
                _ => serde_json::to_string(&("jwt", claim("iss"), "sub", &self.subject)),
            },
            AuthMethod::ApiKey => serde_json::to_string(&("api_key", &self.subject)),
            AuthMethod::Anonymous => serde_json::to_string(&["anonymous"]),
            // The workload, not the certificate: a rotated certificate keeps the taint.
            AuthMethod::Mtls => serde_json::to_string(&("mtls", &self.subject)),
            // The authority block's revocation id, which every attenuation of the token
            // shares: a sub-agent's narrowed token carries its parent's taint.
            AuthMethod::Biscuit => match self
                .biscuit
                .as_ref()
                .and_then(|b| b.revocation_ids().first())
            {
                Some(id) => serde_json::to_string(&("biscuit", id)),
                None => serde_json::to_string(&("biscuit", "sub", &self.subject)),
            },
        };
        // Strings and JSON values always serialize.
        key.unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(claims: Value) -> Identity {
        Identity {
            subject: claims["sub"].as_str().unwrap_or("u").to_owned(),
            agent: None,
            roles: vec![],
            scopes: vec![],
            claims: claims.as_object().cloned().unwrap_or_default(),
            method: AuthMethod::Jwt,
            biscuit: None,
        }
    }

    #[test]
    fn biscuit_credential_key_is_the_authority_revocation_id() {
        let root = biscuit_auth::KeyPair::new();
        let token = biscuit_auth::Biscuit::builder()
            .fact("user(\"a\")")
            .and_then(|b| b.build(&root))
            .unwrap();
        let narrowed = token
            .append(
                biscuit_auth::builder::BlockBuilder::new()
                    .check("check if true")
                    .unwrap(),
            )
            .unwrap();
        let key = |t: biscuit_auth::Biscuit| {
            let text = t.to_base64().unwrap();
            Identity {
                method: AuthMethod::Biscuit,
                biscuit: Some(Arc::new(BiscuitToken::new(t, &text))),
                ..Identity::anonymous()
            }
            .credential_key()
        };
        let parent = key(token);
        assert!(parent.starts_with("[\"biscuit\","), "{parent}");
        assert_eq!(parent, key(narrowed));
    }

    #[test]
    fn credential_key_names_the_token() {
        let a = jwt(json!({"iss": "https://idp", "sub": "sam", "jti": "t-1"}));
        let a_again = jwt(json!({"iss": "https://idp", "sub": "sam", "jti": "t-1", "x": 1}));
        let refreshed = jwt(json!({"iss": "https://idp", "sub": "sam", "jti": "t-2"}));
        let other_idp = jwt(json!({"iss": "https://other", "sub": "sam", "jti": "t-1"}));
        // The form the shared state stores (and a Redis written by an earlier build holds).
        assert_eq!(a.credential_key(), r#"["jwt","https://idp","jti","t-1"]"#);
        assert_eq!(a.credential_key(), a_again.credential_key());
        assert_ne!(a.credential_key(), refreshed.credential_key());
        assert_ne!(a.credential_key(), other_idp.credential_key());
        // without `jti`: issuer and subject
        let no_jti = jwt(json!({"iss": "https://idp", "sub": "sam"}));
        let no_jti_later = jwt(json!({"iss": "https://idp", "sub": "sam", "iat": 5}));
        assert_eq!(no_jti.credential_key(), no_jti_later.credential_key());
        assert_ne!(no_jti.credential_key(), a.credential_key());
        // a `jti` that looks like a subject key cannot collide with one
        let tricky = jwt(json!({"iss": "https://idp", "sub": "x", "jti": "sub"}));
        assert_ne!(tricky.credential_key(), no_jti.credential_key());
        let mut key = a.clone();
        key.method = AuthMethod::ApiKey;
        assert_ne!(key.credential_key(), a.credential_key());
        assert_eq!(
            Identity::anonymous().credential_key(),
            Identity::anonymous().credential_key()
        );
    }
}
