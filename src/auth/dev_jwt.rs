//! Development JWTs: what `mcp-warden dev-jwt` and `mcp-warden demo` mint with the
//! configuration's HS256 key, for trying the proxy out. (Production tokens come from an
//! identity provider.)
//!
//! Every token gets a fresh random `jti`, as an identity provider's do. Taint is keyed
//! on the credential (issuer and `jti`, see [`super::Identity::credential_key`]), so a
//! fresh token starts untainted; without a `jti` every token of one user would share the
//! issuer-and-subject key and carry the user's taint for `[taint] ttl`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::config::JwtConfig;

/// Why a development token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum DevJwtError {
    /// No `[auth.jwt]` section.
    #[error("the configuration has no [auth.jwt] section")]
    NoJwtSection,
    /// No HS256 key.
    #[error("the configuration has no HS256 key in [[auth.jwt.keys]]")]
    NoHs256Key,
    /// The key names no secret.
    #[error("the HS256 key has no secret")]
    NoSecret,
    /// `secret_env` names an unset variable.
    #[error("environment variable `{var}` is not set")]
    EnvNotSet {
        /// The variable.
        var: String,
    },
    /// `secret_file` cannot be read.
    #[error("`{}`: {source}", file.display())]
    SecretFile {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--claim` is not `name=value`.
    #[error("claim `{pair}`: expected name=value")]
    BadClaim {
        /// What was given.
        pair: String,
    },
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// What goes into a development token besides the standard claims.
#[derive(Debug, Clone, Default)]
pub struct DevClaims {
    /// The user (`sub`).
    pub subject: String,
    /// Roles (`roles`).
    pub roles: Vec<String>,
    /// OAuth scopes, space separated (`scope`); empty: none.
    pub scope: String,
    /// The agent acting for the user (`azp`).
    pub agent: Option<String>,
    /// More claims; they override the others (a given `jti` replaces the fresh one).
    pub extra: Map<String, Value>,
}

impl DevClaims {
    /// Adds `name=value` claims as given on the command line: the value is JSON when it
    /// parses as JSON (`42`, `true`, `["a"]`), else a string.
    pub fn with_pairs(mut self, pairs: &[String]) -> Result<Self, DevJwtError> {
        for pair in pairs {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| DevJwtError::BadClaim { pair: pair.clone() })?;
            let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
            self.extra.insert(name.to_owned(), value);
        }
        Ok(self)
    }
}

/// A fresh `jti`: 128 random bits, hex.
pub fn fresh_jti() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Signs a token valid from `now` for `ttl` with the first HS256 key of `jwt`; the
/// `iss` and first `aud` are the configuration's, so the proxy accepts it.
pub fn mint_dev_jwt(
    jwt: Option<&JwtConfig>,
    base_dir: &Path,
    claims: &DevClaims,
    ttl: Duration,
    now: SystemTime,
) -> Result<String, DevJwtError> {
    let jwt = jwt.ok_or(DevJwtError::NoJwtSection)?;
    let key = jwt
        .keys
        .iter()
        .find(|k| k.alg == "HS256")
        .ok_or(DevJwtError::NoHs256Key)?;
    let secret = if let Some(s) = &key.secret {
        s.clone().into_bytes()
    } else if let Some(var) = &key.secret_env {
        std::env::var(var)
            .map_err(|_| DevJwtError::EnvNotSet { var: var.clone() })?
            .into_bytes()
    } else if let Some(file) = &key.secret_file {
        let file = base_dir.join(file);
        let mut bytes =
            std::fs::read(&file).map_err(|source| DevJwtError::SecretFile { file, source })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes
    } else {
        return Err(DevJwtError::NoSecret);
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut body = serde_json::json!({
        "sub": claims.subject,
        "iat": now,
        "exp": now.saturating_add(ttl.as_secs()),
        "roles": claims.roles,
        "jti": fresh_jti(),
    });
    if !claims.scope.is_empty() {
        body["scope"] = claims.scope.clone().into();
    }
    if let Some(agent) = &claims.agent {
        body["azp"] = agent.clone().into();
    }
    if let Some(iss) = &jwt.issuer {
        body["iss"] = iss.clone().into();
    }
    if let Some(aud) = jwt.audience.first() {
        body["aud"] = aud.clone().into();
    }
    for (name, value) in &claims.extra {
        body[name] = value.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = key.kid.clone();
    Ok(jsonwebtoken::encode(
        &header,
        &body,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, Authenticator};

    fn auth_config() -> AuthConfig {
        toml::from_str(
            r#"
            [jwt]
            issuer = "https://idp.example"
            audience = ["mcp-warden"]
            [[jwt.keys]]
            kid = "dev"
            alg = "HS256"
            secret = "dev-secret-at-least-32-bytes-long!!"
            "#,
        )
        .unwrap()
    }

    fn headers(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    /// Two tokens minted for one user are two credentials: taint keyed on one does not
    /// follow the user to the next.
    #[test]
    fn every_token_has_a_fresh_jti() {
        let cfg = auth_config();
        let auth = Authenticator::from_config(&cfg, Path::new(".")).unwrap();
        let claims = DevClaims {
            subject: "sam".into(),
            roles: vec!["staff".into()],
            ..DevClaims::default()
        };
        let mint = || {
            mint_dev_jwt(
                cfg.jwt.as_ref(),
                Path::new("."),
                &claims,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap()
        };
        let (a, b) = (mint(), mint());
        let a = auth.authenticate(&headers(&a)).unwrap();
        let b = auth.authenticate(&headers(&b)).unwrap();
        assert_eq!(a.subject, "sam");
        let jti = a.claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32, "{jti}");
        assert_ne!(a.claims["jti"], b.claims["jti"]);
        assert_ne!(a.credential_key(), b.credential_key());
        assert_eq!(a.principal_key(), b.principal_key(), "still the same user");
    }

    #[test]
    fn claims_from_pairs_and_a_given_jti_wins() {
        let cfg = auth_config();
        let claims = DevClaims {
            subject: "sam".into(),
            ..DevClaims::default()
        }
        .with_pairs(&["jti=fixed".into(), "n=5".into()])
        .unwrap();
        let token = mint_dev_jwt(
            cfg.jwt.as_ref(),
            Path::new("."),
            &claims,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
        let auth = Authenticator::from_config(&cfg, Path::new(".")).unwrap();
        let id = auth.authenticate(&headers(&token)).unwrap();
        assert_eq!(id.claims["jti"], "fixed");
        assert_eq!(id.claims["n"], 5);
        let err = DevClaims::default()
            .with_pairs(&["nonsense".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "claim `nonsense`: expected name=value");
    }

    #[test]
    fn missing_pieces_are_named() {
        let none = mint_dev_jwt(
            None,
            Path::new("."),
            &DevClaims::default(),
            Duration::from_secs(1),
            SystemTime::now(),
        );
        assert!(matches!(none, Err(DevJwtError::NoJwtSection)));
    }
}
