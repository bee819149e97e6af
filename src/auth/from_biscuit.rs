//! The seam between the Biscuit module and authentication: a verified token's
//! [`TokenIdentity`] becomes an [`Identity`], and the Biscuit module's errors become
//! this module's, variant for variant (so the `WWW-Authenticate` text, metric label and
//! audit reason of a refused Biscuit are the auth module's).

use std::sync::Arc;

use crate::biscuit::{ConfigError, TokenIdentity, VerifyError};

use super::error::{AuthConfigError, AuthError};
use super::identity::{AuthMethod, Identity};

impl From<TokenIdentity> for Identity {
    fn from(id: TokenIdentity) -> Self {
        Identity {
            subject: id.subject,
            agent: id.agent,
            roles: id.roles,
            scopes: id.scopes,
            claims: id.claims,
            method: AuthMethod::Biscuit,
            biscuit: Some(Arc::clone(&id.token)),
        }
    }
}

impl From<VerifyError> for AuthError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Malformed => AuthError::Malformed,
            VerifyError::UnknownKey => AuthError::UnknownKey,
            VerifyError::BadSignature => AuthError::BadSignature,
            VerifyError::Revoked => AuthError::Revoked,
            VerifyError::Expired => AuthError::Expired,
            VerifyError::AmbiguousSubject => AuthError::AmbiguousSubject,
            VerifyError::RunLimit => AuthError::RunLimit,
        }
    }
}

impl From<ConfigError> for AuthConfigError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Setting { setting, reason } => {
                AuthConfigError::Setting { setting, reason }
            }
            ConfigError::Read { file, source } => AuthConfigError::Read { file, source },
            ConfigError::File { file, reason } => AuthConfigError::File { file, reason },
            ConfigError::MissingFile {
                setting,
                file,
                source,
                help,
            } => AuthConfigError::MissingFile {
                setting,
                file,
                source,
                help,
            },
            ConfigError::Key {
                origin,
                key,
                reason,
            } => AuthConfigError::Key {
                origin,
                key,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_errors_keep_their_meaning() {
        let all = [
            (VerifyError::Malformed, AuthError::Malformed),
            (VerifyError::UnknownKey, AuthError::UnknownKey),
            (VerifyError::BadSignature, AuthError::BadSignature),
            (VerifyError::Revoked, AuthError::Revoked),
            (VerifyError::Expired, AuthError::Expired),
            (VerifyError::AmbiguousSubject, AuthError::AmbiguousSubject),
            (VerifyError::RunLimit, AuthError::RunLimit),
        ];
        for (from, to) in all {
            assert_eq!(AuthError::from(from), to);
            assert_eq!(from.to_string(), to.to_string(), "same client-facing text");
        }
    }

    #[test]
    fn config_errors_keep_their_message() {
        let e = ConfigError::Setting {
            setting: "auth.biscuit.keys".to_owned(),
            reason: "no root keys".to_owned(),
        };
        let text = e.to_string();
        assert_eq!(AuthConfigError::from(e).to_string(), text);
    }
}
