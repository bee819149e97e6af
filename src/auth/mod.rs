//! Authentication: turns request headers into an [`Identity`] or an [`AuthError`].
//!
//! Accepted credentials, exactly one per request:
//! - `Authorization: Bearer <JWT>`: signature, `exp`/`nbf`, `iss`/`aud` verified against
//!   keys from the configuration or a hot-reloadable JWKS file (see `jwt`);
//! - `Authorization: Bearer <Biscuit>`: signature chain verified against a root key
//!   chosen by the token's root key id, revocation and expiry checked (see
//!   [`crate::biscuit`]).
//!   A JWT has three dot-separated parts; a Biscuit is one base64url string without
//!   dots, so the two are told apart by shape, never by trying keys;
//! - `X-API-Key: <key>`: matched against SHA-256 hashes from the configuration;
//! - nothing at all, only when `allow_anonymous` is set.
//!
//! Everything that is not clearly one valid credential is refused: two credentials, a
//! repeated header, another scheme, an empty or non-ASCII value. A credential that is
//! present but invalid is never treated as absent, so it cannot fall back to anonymous.
//!
//! [`Authenticator::authenticate`] does no I/O and takes no lock: the JWT keys are one
//! immutable generation behind an `ArcSwap`, replaced whole by [`Authenticator::reload`].

mod api_key;
pub mod client_cert;
mod config;
pub mod dev_jwt;
mod error;
mod from_biscuit;
mod identity;
mod jwt;
mod jwt_cache;
mod keys;
mod mtls;
pub mod resource_metadata;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};

pub use crate::biscuit::{BiscuitConfig, BiscuitKeyConfig};
pub use api_key::hash_api_key;
pub use client_cert::{CertField, CertRefusal, ClientCert, PeerCert};
pub use config::{ApiKeyConfig, AuthConfig, JwtConfig, JwtKeyConfig, MtlsConfig};
pub use error::{insufficient_scope_challenge, AuthConfigError, AuthError};
pub use identity::{AuthMethod, Identity};

use crate::biscuit::BiscuitVerifier;
use api_key::ApiKeys;
use jwt::JwtVerifier;

/// The bearer token header.
const AUTHORIZATION: &str = "authorization";
/// The API key header.
const X_API_KEY: &str = "x-api-key";
/// Longest bearer token accepted (large ID-provider tokens with many groups fit).
const MAX_TOKEN_LEN: usize = 32 * 1024;
/// Longest API key accepted.
const MAX_API_KEY_LEN: usize = 4096;

/// Verifies credentials. Built once from the `[auth]` section; shared by all requests.
pub struct Authenticator {
    allow_anonymous: bool,
    jwt: Option<JwtVerifier>,
    biscuit: Option<BiscuitVerifier>,
    api_keys: ApiKeys,
    mtls: Option<MtlsConfig>,
}

/// The one credential a request carries.
enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
    None,
}

impl Authenticator {
    /// Build from the `[auth]` section; relative paths resolve against `base_dir` (the
    /// configuration file's directory). Reads key files and secrets now, so a bad key is
    /// reported at start-up, naming the setting or file.
    pub fn from_config(cfg: &AuthConfig, base_dir: &Path) -> Result<Self, AuthConfigError> {
        let jwt = cfg
            .jwt
            .as_ref()
            .map(|jwt| JwtVerifier::from_config(jwt, base_dir))
            .transpose()?;
        let biscuit = cfg
            .biscuit
            .as_ref()
            .map(|b| BiscuitVerifier::from_config(b, base_dir))
            .transpose()
            .map_err(AuthConfigError::from)?;
        let api_keys = ApiKeys::from_config(&cfg.api_keys)?;
        if jwt.is_none() && biscuit.is_none() && cfg.api_keys.is_empty() && !cfg.allow_anonymous {
            tracing::warn!("no authentication method configured: every request will be refused");
        }
        Ok(Authenticator {
            allow_anonymous: cfg.allow_anonymous,
            jwt,
            biscuit,
            api_keys,
            mtls: cfg.mtls.clone(),
        })
    }

    /// Sets the run limits (facts, iterations, time) of every Datalog evaluation done
    /// while authenticating a Biscuit (reading its identity facts, its expiry). The
    /// proxy passes `[policy.biscuit.limits]`, the value the policy engine also runs
    /// under; default [`crate::biscuit::default_limits`].
    pub fn set_datalog_limits(&mut self, limits: biscuit_auth::AuthorizerLimits) {
        if let Some(biscuit) = &mut self.biscuit {
            biscuit.set_limits(limits);
        }
    }

    /// Authenticate one request by its headers (on a connection without a client
    /// certificate). No I/O, no lock.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Identity>, AuthError> {
        self.authenticate_peer(headers, None)
    }

    /// Authenticate one request by its headers and the connection's verified client
    /// certificate, if any (see `mtls` for how the two combine). No I/O, no lock.
    pub fn authenticate_peer(
        &self,
        headers: &HeaderMap,
        cert: Option<&ClientCert>,
    ) -> Result<Arc<Identity>, AuthError> {
        let credential = self.credential_identity(headers)?;
        let combined = mtls::combine(credential, cert, self.mtls.as_ref())?;
        match combined {
            Some(identity) => Ok(identity),
            None if self.allow_anonymous => Ok(Arc::new(Identity::anonymous())),
            None => Err(AuthError::Missing),
        }
    }

    /// The identity the request's one credential header proves; `None` without one.
    fn credential_identity(&self, headers: &HeaderMap) -> Result<Option<Arc<Identity>>, AuthError> {
        match credential(headers)? {
            Credential::Bearer(token) => match (&self.jwt, &self.biscuit) {
                (_, Some(biscuit)) if is_biscuit_shape(token) => biscuit
                    .verify(token)
                    .map(|token| Some(Arc::new(Identity::from(token))))
                    .map_err(AuthError::from),
                (Some(jwt), _) => jwt.verify(token).map(Some),
                (None, _) => Err(AuthError::UnknownKey),
            },
            Credential::ApiKey(key) => self.api_keys.verify(key).map(Some),
            Credential::None => Ok(None),
        }
    }

    /// Files to watch for hot reload: the JWKS file, the PEM and secret files of inline
    /// keys, Biscuit root key files and the revocation file, resolved against the
    /// configuration's directory.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self
            .jwt
            .as_ref()
            .map(JwtVerifier::watched_files)
            .unwrap_or_default();
        if let Some(biscuit) = &self.biscuit {
            files.extend(biscuit.watched_files());
        }
        files
    }

    /// Re-read every key source (JWKS file, PEM files, secrets, Biscuit root key files)
    /// and the Biscuit revocation list, and swap each in atomically; requests already
    /// verifying finish on the old ones. On error the previous state of that part stays
    /// in force.
    pub fn reload(&self) -> Result<(), AuthConfigError> {
        let jwt = match &self.jwt {
            Some(jwt) => jwt.reload(),
            None => Ok(()),
        };
        let biscuit = match &self.biscuit {
            Some(biscuit) => biscuit.reload().map_err(AuthConfigError::from),
            None => Ok(()),
        };
        jwt.and(biscuit)
    }
}

/// Finds the request's single credential.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthError> {
    let authorization = single(headers, AUTHORIZATION)?;
    let api_key = single(headers, X_API_KEY)?;
    match (authorization, api_key) {
        (Some(_), Some(_)) => Err(AuthError::Ambiguous),
        (Some(value), None) => bearer_token(value).map(Credential::Bearer),
        (None, Some(value)) => api_key_value(value).map(Credential::ApiKey),
        (None, None) => Ok(Credential::None),
    }
}

/// The header's value, if present exactly once.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) | (None, Some(_)) => Err(AuthError::Ambiguous),
    }
}

/// `Bearer <token>` (RFC 6750 §2.1): scheme case-insensitive, one or more spaces, then a
/// `b64token`.
fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
    let text = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, rest) = text.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// A Biscuit is base64url (with `=` padding) and, unlike a JWT, has no `.`.
fn is_biscuit_shape(token: &str) -> bool {
    !token.contains('.')
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// A non-empty, visible-ASCII API key of bounded length.
fn api_key_value(value: &HeaderValue) -> Result<&str, AuthError> {
    let key = value.to_str().map_err(|_| AuthError::Malformed)?;
    if key.is_empty() || key.len() > MAX_API_KEY_LEN {
        return Err(AuthError::Malformed);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-mod-tests";
    const API_KEY: &str = "wk_live_test_key";

    fn config(allow_anonymous: bool) -> AuthConfig {
        AuthConfig {
            allow_anonymous,
            jwt: Some(JwtConfig {
                audience: vec!["mcp-warden".to_owned()],
                keys: vec![JwtKeyConfig {
                    alg: "HS256".to_owned(),
                    secret: Some(SECRET.to_owned()),
                    ..JwtKeyConfig::default()
                }],
                ..JwtConfig::default()
            }),
            api_keys: vec![ApiKeyConfig {
                sha256: hash_api_key(API_KEY),
                subject: "ci-bot".to_owned(),
                ..ApiKeyConfig::default()
            }],
            biscuit: None,
            mtls: None,
        }
    }

    fn auth(allow_anonymous: bool) -> Authenticator {
        Authenticator::from_config(&config(allow_anonymous), Path::new(".")).expect("valid")
    }

    fn token() -> String {
        let claims = json!({
            "sub": "alice",
            "aud": "mcp-warden",
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        map
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn authenticator_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Authenticator>();
    }

    #[test]
    fn bearer_jwt_is_accepted_any_scheme_case() {
        let a = auth(false);
        let t = token();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme}  {t}");
            let id = a
                .authenticate(&headers(&[("authorization", value.as_bytes())]))
                .expect("valid");
            assert_eq!(id.subject, "alice");
            assert_eq!(id.method, AuthMethod::Jwt);
        }
    }

    #[test]
    fn api_key_match_and_mismatch() {
        let a = auth(false);
        let id = a
            .authenticate(&headers(&[("x-api-key", API_KEY.as_bytes())]))
            .expect("valid");
        assert_eq!(id.subject, "ci-bot");
        assert_eq!(id.method, AuthMethod::ApiKey);
        assert_eq!(
            a.authenticate(&headers(&[("x-api-key", b"wrong")])),
            Err(AuthError::InvalidApiKey)
        );
    }

    #[test]
    fn ambiguous_credentials_are_refused() {
        let a = auth(true);
        let t = bearer(&token());
        for pairs in [
            vec![
                ("authorization", t.as_slice()),
                ("x-api-key", API_KEY.as_bytes()),
            ],
            vec![
                ("authorization", t.as_slice()),
                ("authorization", t.as_slice()),
            ],
            vec![
                ("x-api-key", API_KEY.as_bytes()),
                ("x-api-key", API_KEY.as_bytes()),
            ],
        ] {
            assert_eq!(a.authenticate(&headers(&pairs)), Err(AuthError::Ambiguous));
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let a = auth(true);
        let t = token();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"Bearer".to_vec(),
            b"Bearer ".to_vec(),
            b"Bearer    ".to_vec(),
            format!("Basic {t}").into_bytes(),
            format!("Bearer{t}").into_bytes(),
            format!("Bearer\t{t}").into_bytes(),
            format!("Bearer {t} extra").into_bytes(),
            format!("Bearer {t},").into_bytes(),
            b"Bearer =".to_vec(),
            b"Bearer \xe9t\xe9".to_vec(),
            format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1)).into_bytes(),
        ];
        for value in cases {
            assert_eq!(
                a.authenticate(&headers(&[("authorization", &value)])),
                Err(AuthError::Malformed),
                "{}",
                String::from_utf8_lossy(&value)
            );
        }
        for value in [&b""[..], b"k\xffey"] {
            assert_eq!(
                a.authenticate(&headers(&[("x-api-key", value)])),
                Err(AuthError::Malformed)
            );
        }
    }

    #[test]
    fn anonymous_only_when_enabled() {
        assert_eq!(
            auth(false).authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        let id = auth(true)
            .authenticate(&HeaderMap::new())
            .expect("anonymous");
        assert_eq!(*id, Identity::anonymous());
    }

    #[test]
    fn invalid_credential_is_not_downgraded_to_anonymous() {
        let a = auth(true);
        let t = token();
        let tampered = format!("{}x", &t[..t.len() - 1]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("authorization", bearer(&tampered)),
            ("authorization", bearer("not.a.jwt")),
            ("authorization", b"Basic dXNlcjpwYXNz".to_vec()),
            ("authorization", b"".to_vec()),
            ("x-api-key", b"wrong".to_vec()),
            ("x-api-key", b"".to_vec()),
        ];
        for (name, value) in cases {
            let result = a.authenticate(&headers(&[(name, &value)]));
            assert!(result.is_err(), "{name}: {result:?}");
        }
    }

    #[test]
    fn bearer_without_jwt_config_is_refused() {
        let mut cfg = config(true);
        cfg.jwt = None;
        let a = Authenticator::from_config(&cfg, Path::new(".")).expect("valid");
        assert_eq!(
            a.authenticate(&headers(&[("authorization", &bearer(&token()))])),
            Err(AuthError::UnknownKey)
        );
        assert!(a.watched_files().is_empty());
        assert!(a.reload().is_ok());
    }

    #[test]
    fn error_description_never_echoes_the_token() {
        let a = auth(false);
        let t = token();
        let tampered = format!("{}x", &t[..t.len() - 1]);
        let err = a
            .authenticate(&headers(&[("authorization", &bearer(&tampered))]))
            .expect_err("refused");
        let challenge = err.www_authenticate(None);
        assert!(!challenge.contains(&tampered[..20]), "{challenge}");
        assert!(!err.to_string().contains(&tampered[..20]));
    }

    #[test]
    fn bearer_tokens_are_told_apart_by_shape() {
        let root = biscuit_auth::KeyPair::new();
        let mut cfg = config(false);
        cfg.biscuit = Some(BiscuitConfig {
            keys: vec![BiscuitKeyConfig {
                public_key: Some(crate::biscuit::keys::public_key_text(&root.public())),
                ..BiscuitKeyConfig::default()
            }],
            ..BiscuitConfig::default()
        });
        let a = Authenticator::from_config(&cfg, Path::new(".")).expect("valid");
        let biscuit = biscuit_auth::Biscuit::builder()
            .fact("user(\"bea\")")
            .and_then(|b| b.build(&root))
            .and_then(|t| t.to_base64())
            .expect("token");
        let id = a
            .authenticate(&headers(&[("authorization", &bearer(&biscuit))]))
            .expect("biscuit");
        assert_eq!(
            (id.subject.as_str(), id.method),
            ("bea", AuthMethod::Biscuit)
        );
        assert!(id.biscuit.is_some());
        let id = a
            .authenticate(&headers(&[("authorization", &bearer(&token()))]))
            .expect("jwt");
        assert_eq!(id.method, AuthMethod::Jwt);
        // A dotless token goes to Biscuit verification, never to the JWT keys.
        assert_eq!(
            a.authenticate(&headers(&[("authorization", &bearer("abcdef"))])),
            Err(AuthError::Malformed)
        );
        cfg.jwt = None;
        let a = Authenticator::from_config(&cfg, Path::new(".")).expect("valid");
        assert_eq!(
            a.authenticate(&headers(&[("authorization", &bearer(&token()))])),
            Err(AuthError::UnknownKey)
        );
    }

    /// The identity of a verified Biscuit, as the proxy sees it (the Biscuit module's
    /// own tests check which facts are read).
    #[test]
    fn biscuit_identity_keeps_the_token_and_names_the_principal() {
        let root = biscuit_auth::KeyPair::new();
        let mut cfg = config(false);
        cfg.biscuit = Some(BiscuitConfig {
            keys: vec![BiscuitKeyConfig {
                id: Some(1),
                public_key: Some(crate::biscuit::keys::public_key_text(&root.public())),
                ..BiscuitKeyConfig::default()
            }],
            ..BiscuitConfig::default()
        });
        let a = Authenticator::from_config(&cfg, Path::new(".")).expect("valid");
        let token = biscuit_auth::Biscuit::builder()
            .fact("user(\"alice\")")
            .and_then(|b| b.fact("agent(\"claude\")"))
            .and_then(|b| b.root_key_id(1).build(&root))
            .and_then(|t| t.to_base64())
            .expect("token");
        let id = a
            .authenticate(&headers(&[("authorization", &bearer(&token))]))
            .expect("biscuit");
        assert_eq!(id.method, AuthMethod::Biscuit);
        assert_eq!(id.principal_key(), "biscuit:alice:claude");
        let b = id.biscuit.as_ref().expect("token kept");
        assert_eq!(b.root_key_id(), Some(1));
        assert_eq!(b.revocation_ids().len(), 1);
    }

    /// The demo's HS256 secret file does not exist in a fresh clone: the error names the
    /// setting and says `mcp-warden demo` makes it.
    #[test]
    fn a_missing_secret_file_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: AuthConfig = toml::from_str(
            "[jwt]\nalgorithms = [\"HS256\"]\n[[jwt.keys]]\nkid = \"demo\"\nalg = \"HS256\"\nsecret_file = \"demo-keys/jwt-hs256.key\"\n",
        )
        .unwrap();
        let e = Authenticator::from_config(&cfg, dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("jwt-hs256.key`: cannot read"), "{e}");
        assert!(e.contains("named by `auth.jwt.keys[0].secret_file`"), "{e}");
        assert!(
            e.contains("help: ") && e.contains("`mcp-warden demo`"),
            "{e}"
        );
    }

    #[test]
    fn default_config_refuses_everything() {
        let a = Authenticator::from_config(&AuthConfig::default(), Path::new(".")).expect("valid");
        assert_eq!(a.authenticate(&HeaderMap::new()), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(&headers(&[("x-api-key", b"k")])),
            Err(AuthError::InvalidApiKey)
        );
    }
}
