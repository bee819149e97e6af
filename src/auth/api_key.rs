//! API keys: `X-API-Key: <key>` matched against SHA-256 hashes from the configuration.
//!
//! Only hashes are stored, so the configuration file is not a list of live credentials.
//! The presented key is hashed and compared with every configured hash in constant time,
//! without stopping at the first match, so timing says nothing about which key (or
//! whether any) matched.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::config::ApiKeyConfig;
use super::error::{AuthConfigError, AuthError};
use super::identity::{AuthMethod, Identity};

/// The lowercase hex SHA-256 of an API key: the value to put in `auth.api_keys[].sha256`.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

struct Entry {
    hash: [u8; 32],
    identity: Arc<Identity>,
}

/// The configured API keys.
pub(crate) struct ApiKeys {
    entries: Vec<Entry>,
}

impl ApiKeys {
    /// Checks every `[[auth.api_keys]]` entry.
    pub(crate) fn from_config(configs: &[ApiKeyConfig]) -> Result<Self, AuthConfigError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(configs.len());
        for (index, cfg) in configs.iter().enumerate() {
            let setting = |field: &str, reason: String| AuthConfigError::Setting {
                setting: format!("auth.api_keys[{index}].{field}"),
                reason,
            };
            let mut hash = [0u8; 32];
            if cfg.sha256.len() != 64 || hex::decode_to_slice(&cfg.sha256, &mut hash).is_err() {
                return Err(setting(
                    "sha256",
                    "not a hex SHA-256 (64 hex digits)\nhelp: store the hash of the key, not the key: `mcp-warden hash-key`".to_owned(),
                ));
            }
            if let Some(first) = entries.iter().position(|e| e.hash == hash) {
                return Err(setting(
                    "sha256",
                    format!("same key as `auth.api_keys[{first}]`"),
                ));
            }
            if cfg.subject.is_empty() {
                return Err(setting("subject", "is empty".to_owned()));
            }
            if cfg.agent.as_deref() == Some("") {
                return Err(setting("agent", "is empty".to_owned()));
            }
            entries.push(Entry {
                hash,
                identity: Arc::new(Identity {
                    subject: cfg.subject.clone(),
                    agent: cfg.agent.clone(),
                    roles: cfg.roles.clone(),
                    scopes: cfg.scopes.clone(),
                    claims: cfg.claims.clone(),
                    method: AuthMethod::ApiKey,
                    biscuit: None,
                }),
            });
        }
        Ok(ApiKeys { entries })
    }

    /// The identity of the presented key, or [`AuthError::InvalidApiKey`].
    pub(crate) fn verify(&self, presented: &str) -> Result<Arc<Identity>, AuthError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            let matches = entry.hash.ct_eq(&digest);
            index.conditional_assign(&(i as u64), matches);
            found |= matches;
        }
        if bool::from(found) {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.entries.get(i))
                .map(|e| e.identity.clone())
                .ok_or(AuthError::InvalidApiKey)
        } else {
            Err(AuthError::InvalidApiKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> ApiKeys {
        let mut claims = serde_json::Map::new();
        claims.insert("team".to_owned(), json!("platform"));
        ApiKeys::from_config(&[
            ApiKeyConfig {
                sha256: hash_api_key("first-key"),
                subject: "alice".to_owned(),
                ..ApiKeyConfig::default()
            },
            ApiKeyConfig {
                sha256: hash_api_key("ci-key").to_uppercase(),
                subject: "ci-bot".to_owned(),
                agent: Some("nightly-eval".to_owned()),
                roles: vec!["ci".to_owned()],
                scopes: vec!["tools:call".to_owned()],
                claims,
            },
        ])
        .expect("valid")
    }

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn matching_key_gives_its_identity() {
        let id = keys().verify("ci-key").expect("matches");
        assert_eq!(id.subject, "ci-bot");
        assert_eq!(id.agent.as_deref(), Some("nightly-eval"));
        assert_eq!(id.roles, vec!["ci"]);
        assert_eq!(id.scopes, vec!["tools:call"]);
        assert_eq!(id.claims["team"], "platform");
        assert_eq!(id.method, AuthMethod::ApiKey);
        assert_eq!(
            keys().verify("first-key").expect("matches").subject,
            "alice"
        );
    }

    #[test]
    fn other_key_is_refused() {
        assert_eq!(keys().verify("ci-key "), Err(AuthError::InvalidApiKey));
        assert_eq!(
            keys().verify(&hash_api_key("ci-key")),
            Err(AuthError::InvalidApiKey)
        );
        let none = ApiKeys::from_config(&[]).expect("valid");
        assert_eq!(none.verify("anything"), Err(AuthError::InvalidApiKey));
    }

    #[test]
    fn clear_key_in_config_is_refused() {
        let err = ApiKeys::from_config(&[ApiKeyConfig {
            sha256: "my-secret-key".to_owned(),
            subject: "s".to_owned(),
            ..ApiKeyConfig::default()
        }])
        .err()
        .expect("refused")
        .to_string();
        assert!(
            err.starts_with("`auth.api_keys[0].sha256`: not a hex SHA-256"),
            "{err}"
        );
        assert!(!err.contains("my-secret-key"), "{err}");
    }

    #[test]
    fn duplicate_and_empty_subject_are_refused() {
        let entry = |subject: &str| ApiKeyConfig {
            sha256: hash_api_key("k"),
            subject: subject.to_owned(),
            ..ApiKeyConfig::default()
        };
        let err = ApiKeys::from_config(&[entry("a"), entry("b")])
            .err()
            .expect("dup");
        assert_eq!(
            err.to_string(),
            "`auth.api_keys[1].sha256`: same key as `auth.api_keys[0]`"
        );
        assert!(ApiKeys::from_config(&[entry("")]).is_err());
    }
}
