//! Errors of the auth module: [`AuthError`] for a refused request, [`AuthConfigError`] for
//! a bad `[auth]` section or key file.
//!
//! Request errors are deliberately terse and bounded: every variant carries only static
//! text, so nothing a client sent (least of all its token) can reach a log line, a metric
//! label or the `WWW-Authenticate` header through them.

use std::path::PathBuf;

/// Why a request was not authenticated.
///
/// The `Display` text is short, lowercase and contains nothing the client sent; it is
/// used as the `error_description` of the `WWW-Authenticate` challenge and in audit lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, and anonymous access is disabled.
    #[error("no credential")]
    Missing,
    /// A credential header that cannot be parsed: not `Bearer`, empty, not ASCII, not a
    /// three-part compact JWS, oversized, undecodable header or claims, unknown `crit`;
    /// or a Biscuit that does not decode (bad base64, truncated, not a Biscuit).
    #[error("malformed credential")]
    Malformed,
    /// More than one credential: repeated `Authorization` or `X-API-Key` headers, or both.
    #[error("more than one credential")]
    Ambiguous,
    /// The token's `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The token's `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// No candidate key verifies the signature.
    #[error("invalid token signature")]
    BadSignature,
    /// No configured key can verify this token: unknown `kid`, no key for the token's
    /// algorithm, or JWT authentication is not configured at all.
    #[error("no key for this token")]
    UnknownKey,
    /// `iss` is not the configured issuer.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("wrong token audience")]
    WrongAudience,
    /// A required claim is absent or has the wrong type.
    #[error("token claim `{claim}` missing or invalid")]
    MissingClaim {
        /// The claim's name (`exp`, `sub`, `iss`, `aud`, `nbf`).
        claim: &'static str,
    },
    /// The token's `alg` is not in the configured allow-list (or is `none`, or unknown).
    #[error("token algorithm `{alg}` not allowed")]
    AlgorithmNotAllowed {
        /// The algorithm's registered name, `none`, or `unsupported` for any other
        /// value (the client's own text is never echoed).
        alg: &'static str,
    },
    /// The `X-API-Key` matches no configured key.
    #[error("invalid api key")]
    InvalidApiKey,
    /// A block of the Biscuit has a revocation id on the revocation list.
    #[error("token revoked")]
    Revoked,
    /// The Biscuit's authority block names more than one user (subject fact).
    #[error("token names more than one user")]
    AmbiguousSubject,
    /// Evaluating the Biscuit's own Datalog (to read its identity facts or its expiry)
    /// exceeded the configured run limits.
    #[error("token evaluation exceeded the run limits")]
    RunLimit,
    /// The client certificate lacks the field `auth.mtls.subject` names.
    #[error("client certificate lacks the field that names the caller")]
    CertNoSubject,
    /// The token is bound to a certificate (RFC 8705 `cnf.x5t#S256`) other than the
    /// connection's, or the connection presented none.
    #[error("token is bound to another client certificate")]
    CertBindingMismatch,
    /// `auth.mtls.require_bound_tokens` is set and the token carries no `cnf.x5t#S256`.
    #[error("token is not bound to the client certificate")]
    CertBindingMissing,
}

impl AuthError {
    /// Bounded label for metrics and audit: one fixed word per variant.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Ambiguous => "ambiguous",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::BadSignature => "bad_signature",
            AuthError::UnknownKey => "unknown_key",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::Revoked => "revoked",
            AuthError::AmbiguousSubject => "ambiguous_subject",
            AuthError::RunLimit => "run_limit",
            AuthError::CertNoSubject => "cert_no_subject",
            AuthError::CertBindingMismatch => "cert_binding_mismatch",
            AuthError::CertBindingMissing => "cert_binding_missing",
        }
    }

    /// The RFC 6750 §3.1 error code: `None` when no credential was sent,
    /// `invalid_request` for a malformed or ambiguous one (RFC 6750 suggests HTTP 400),
    /// `invalid_token` for a credential that was read but refused (HTTP 401).
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::Malformed | AuthError::Ambiguous => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }

    /// The `WWW-Authenticate` header value for the 401 (RFC 6750 §3), with the
    /// `resource_metadata` parameter of RFC 9728 §5.1 when a metadata URL is given, so
    /// MCP clients can discover the authorization server.
    ///
    /// `Bearer` alone when no credential was sent; otherwise with `error` and a short
    /// `error_description` that never echoes the credential.
    pub fn www_authenticate(&self, resource_metadata: Option<&str>) -> String {
        let mut params = Vec::with_capacity(3);
        if let Some(code) = self.oauth_error() {
            params.push(format!("error=\"{code}\""));
            params.push(format!("error_description={}", quoted(&self.to_string())));
        }
        if let Some(url) = resource_metadata {
            params.push(format!("resource_metadata={}", quoted(url)));
        }
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }
}

/// The `WWW-Authenticate` value of a 403 for scopes the token lacks (RFC 6750 §3.1,
/// MCP 2025-11-25 step-up): `Bearer error="insufficient_scope", scope="…"`, with the
/// metadata URL when there is one, so the client can ask for a token with those scopes.
pub fn insufficient_scope_challenge(scopes: &[String], resource_metadata: Option<&str>) -> String {
    let mut params = vec![
        "error=\"insufficient_scope\"".to_owned(),
        format!("scope={}", quoted(&scopes.join(" "))),
        format!(
            "error_description={}",
            quoted("the token lacks a scope this request needs")
        ),
    ];
    if let Some(url) = resource_metadata {
        params.push(format!("resource_metadata={}", quoted(url)));
    }
    format!("Bearer {}", params.join(", "))
}

/// An HTTP quoted-string (RFC 9110 §5.6.4): `"` and `\` escaped, control characters and
/// non-ASCII dropped so the header value stays valid whatever the configuration holds.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}

/// A problem in the `[auth]` section or in a key file it names. The message names the
/// setting or file (and key) and the reason, e.g.
/// ``"`keys/jwks.json`: key `k1`: unsupported alg `HS999`"``.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A setting of the `[auth]` section is invalid.
    #[error("`{setting}`: {reason}")]
    Setting {
        /// Dotted path of the setting, e.g. `auth.jwt.leeway` or `auth.api_keys[2].sha256`.
        setting: String,
        /// What is wrong, lowercase, possibly followed by a `help:` line.
        reason: String,
    },
    /// A file named by the configuration cannot be read.
    #[error(
        "`{}`: cannot read: {source}\nhelp: a file setting of the configuration names it \
         (relative to the configuration file's directory); `mcp-warden demo` creates the \
         demo's keys, `mcp-warden keygen --out PREFIX` makes a Biscuit root key pair",
        file.display()
    )]
    Read {
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file a setting names does not exist. Keys are made, never committed, so this
    /// is what a fresh clone meets: the message names the setting and how to make the
    /// file.
    #[error("`{}`: cannot read: {source}\n  named by `{setting}`\nhelp: {help}", file.display())]
    MissingFile {
        /// Dotted path of the setting, e.g. `auth.biscuit.keys[0].public_key_file`.
        setting: String,
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// The I/O error (not found).
        #[source]
        source: std::io::Error,
        /// How to make the file.
        help: String,
    },
    /// A file was read but its content is unusable as a whole (not JSON, no keys, …).
    #[error("`{}`: {reason}", file.display())]
    File {
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One key, inline or in a JWKS file, is unusable.
    #[error("`{origin}`: key `{key}`: {reason}")]
    Key {
        /// Where the key is defined: the JWKS file's path, or `auth.jwt.keys[<n>]`.
        origin: String,
        /// The key's `kid`, or `#<n>` (its position) when it has none.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AuthError; 18] = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::Ambiguous,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::BadSignature,
        AuthError::UnknownKey,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::MissingClaim { claim: "sub" },
        AuthError::AlgorithmNotAllowed { alg: "none" },
        AuthError::InvalidApiKey,
        AuthError::Revoked,
        AuthError::AmbiguousSubject,
        AuthError::RunLimit,
        AuthError::CertNoSubject,
        AuthError::CertBindingMismatch,
        AuthError::CertBindingMissing,
    ];

    #[test]
    fn reasons_are_distinct_snake_case_labels() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            let r = e.reason();
            assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r}");
            assert!(seen.insert(r), "duplicate reason {r}");
        }
    }

    #[test]
    fn missing_challenge_is_bare_bearer() {
        assert_eq!(AuthError::Missing.www_authenticate(None), "Bearer");
        assert_eq!(
            AuthError::Missing.www_authenticate(Some(
                "https://mcp.example/.well-known/oauth-protected-resource"
            )),
            "Bearer resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource\""
        );
    }

    #[test]
    fn token_problems_are_invalid_token() {
        assert_eq!(
            AuthError::Expired.www_authenticate(None),
            "Bearer error=\"invalid_token\", error_description=\"token expired\""
        );
        assert_eq!(
            AuthError::MissingClaim { claim: "sub" }.www_authenticate(Some("https://m/x")),
            "Bearer error=\"invalid_token\", error_description=\"token claim `sub` missing or invalid\", resource_metadata=\"https://m/x\""
        );
    }

    #[test]
    fn malformed_and_ambiguous_are_invalid_request() {
        for e in [AuthError::Malformed, AuthError::Ambiguous] {
            assert!(e
                .www_authenticate(None)
                .starts_with("Bearer error=\"invalid_request\", error_description=\""));
        }
    }

    #[test]
    fn every_challenge_is_a_valid_header_value() {
        for e in ALL {
            let v = e.www_authenticate(Some("https://x/\"quoted\"\\\n\u{e9}"));
            assert!(http::HeaderValue::from_str(&v).is_ok(), "{v}");
            assert!(
                v.contains("resource_metadata=\"https://x/\\\"quoted\\\"\\\\\""),
                "{v}"
            );
        }
    }

    #[test]
    fn config_error_names_file_key_and_reason() {
        let e = AuthConfigError::Key {
            origin: "keys/jwks.json".to_owned(),
            key: "k1".to_owned(),
            reason: "unsupported alg `HS999`".to_owned(),
        };
        assert_eq!(
            e.to_string(),
            "`keys/jwks.json`: key `k1`: unsupported alg `HS999`"
        );
    }
}
