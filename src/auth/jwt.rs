//! Bearer JWT verification: header checks, key selection, signature and claim
//! validation (through `jsonwebtoken`), and the mapping of claims to an [`Identity`].
//!
//! Order of checks, each failing closed:
//! 1. the token is a compact JWS with three base64url parts and a JSON-object header
//!    without `crit` (we implement no extensions);
//! 2. the header `alg` is in the allow-list (`none` and unknown names never are);
//! 3. key selection: a token with a `kid` uses the keys with that `kid` (none: unknown
//!    key); a token without `kid` uses the keys without one. Either way only keys bound
//!    to the token's `alg` are tried, so there is no trial across algorithm families;
//! 4. signature, then `exp` (required), `nbf`, `iss` and `aud` (when configured), with
//!    the configured leeway;
//! 5. `sub` must be a non-empty string.
//!
//! A verified token is remembered by its digest ([`super::jwt_cache`]): later requests
//! with the same token skip steps 1–5 but not the `exp`/`nbf` check, and a key reload
//! forgets every token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::JwtConfig;
use super::error::{AuthConfigError, AuthError};
use super::identity::{AuthMethod, Identity};
use super::jwt_cache::VerifiedCache;
use super::keys::{alg_name, parse_alg, supported_alg_names, KeySet, KeySources};

/// Longest leeway accepted.
const MAX_LEEWAY_SECS: u64 = 300;

/// Claims tried, in order, for the agent when `agent_claim` is not configured.
const DEFAULT_AGENT_CLAIMS: [&str; 2] = ["azp", "client_id"];

/// Verifies bearer JWTs against a hot-swappable key set.
pub(crate) struct JwtVerifier {
    /// One `Validation` per allowed algorithm (each allowing only that algorithm).
    validations: Vec<(Algorithm, Validation)>,
    agent_claim: Option<String>,
    roles_claims: Vec<String>,
    sources: KeySources,
    keys: ArcSwap<KeySet>,
    /// Tokens verified before, by digest.
    cache: VerifiedCache,
}

/// The part of a JWS header read before choosing a key. Derived, so a duplicated
/// `alg`, `kid` or `crit` member is an error rather than a silent last-wins.
#[derive(Deserialize)]
struct PeekHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl JwtVerifier {
    /// Checks the `[auth.jwt]` section and loads the keys.
    pub(crate) fn from_config(cfg: &JwtConfig, base_dir: &Path) -> Result<Self, AuthConfigError> {
        let setting = |name: &str, reason: String| AuthConfigError::Setting {
            setting: format!("auth.jwt.{name}"),
            reason,
        };
        if cfg.algorithms.is_empty() {
            return Err(setting("algorithms", "is empty".to_owned()));
        }
        let mut allowed = Vec::with_capacity(cfg.algorithms.len());
        for name in &cfg.algorithms {
            let alg = parse_alg(name).ok_or_else(|| {
                setting(
                    "algorithms",
                    format!(
                        "unsupported alg `{name}`\nhelp: supported: {}",
                        supported_alg_names()
                    ),
                )
            })?;
            if !allowed.contains(&alg) {
                allowed.push(alg);
            }
        }
        let leeway = cfg.leeway.as_secs();
        if leeway > MAX_LEEWAY_SECS {
            return Err(setting(
                "leeway",
                format!("{leeway}s is more than the maximum of {MAX_LEEWAY_SECS}s"),
            ));
        }
        if cfg.issuer.as_deref() == Some("") {
            return Err(setting("issuer", "is empty".to_owned()));
        }
        if cfg.audience.iter().any(String::is_empty) {
            return Err(setting("audience", "contains an empty string".to_owned()));
        }
        if cfg.audience.is_empty() {
            tracing::warn!(
                "auth.jwt.audience is not set: tokens issued for any audience are accepted"
            );
        }
        if cfg.agent_claim.as_deref() == Some("") {
            return Err(setting("agent_claim", "is empty".to_owned()));
        }
        if cfg.roles_claims.iter().any(String::is_empty) {
            return Err(setting(
                "roles_claims",
                "contains an empty string".to_owned(),
            ));
        }

        let validations = allowed
            .iter()
            .map(|&alg| (alg, validation(alg, cfg, leeway)))
            .collect();
        let sources = KeySources::from_config(cfg, base_dir, &allowed)?;
        let keys = sources.load()?;
        Ok(JwtVerifier {
            validations,
            agent_claim: cfg.agent_claim.clone(),
            roles_claims: cfg.roles_claims.clone(),
            sources,
            keys: ArcSwap::from_pointee(keys),
            cache: VerifiedCache::new(cfg.cache_size, leeway),
        })
    }

    /// Re-reads every key source and swaps the new generation in; on error the current
    /// keys stay.
    pub(crate) fn reload(&self) -> Result<(), AuthConfigError> {
        let keys = self.sources.load()?;
        tracing::debug!(keys = keys.len(), "JWT keys reloaded");
        self.keys.store(Arc::new(keys));
        // After the store: a verification that read the old generation number cannot
        // remember what it verified with the old keys.
        self.cache.keys_reloaded();
        Ok(())
    }

    /// Key files to watch.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        self.sources.watched_files()
    }

    /// Verifies a bearer token (already checked to be a non-empty `b64token`), from the
    /// cache of verified tokens when it holds it.
    pub(crate) fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let digest = VerifiedCache::digest(token);
        if let Some(known) = self.cache.get(&digest) {
            return known;
        }
        let generation = self.cache.generation();
        let identity = Arc::new(self.verify_signed(token)?);
        self.cache.insert(digest, generation, &identity);
        Ok(identity)
    }

    /// The cache in front of [`JwtVerifier::verify`], for tests.
    #[cfg(test)]
    pub(crate) fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    /// Replace the cache (tests inject a clock).
    #[cfg(test)]
    pub(crate) fn set_cache(&mut self, cache: VerifiedCache) {
        self.cache = cache;
    }

    /// Verifies a bearer token against the keys: steps 1–5 above.
    fn verify_signed(&self, token: &str) -> Result<Identity, AuthError> {
        let header = peek_header(token)?;
        let alg = parse_alg(&header.alg).ok_or(AuthError::AlgorithmNotAllowed {
            alg: if header.alg == "none" {
                "none"
            } else {
                "unsupported"
            },
        })?;
        let validation = self
            .validations
            .iter()
            .find(|(allowed, _)| *allowed == alg)
            .map(|(_, v)| v)
            .ok_or(AuthError::AlgorithmNotAllowed { alg: alg_name(alg) })?;

        let keys = self.keys.load();
        let kid = header.kid.as_deref();
        if let Some(kid) = kid {
            if !keys.has_kid(kid) {
                return Err(AuthError::UnknownKey);
            }
        }
        let mut tried = false;
        for key in keys.candidates(kid, alg) {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.identity(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(map_error(e.kind())),
            }
        }
        Err(if tried {
            AuthError::BadSignature
        } else {
            AuthError::UnknownKey
        })
    }

    /// Maps verified claims to an identity.
    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(AuthError::MissingClaim { claim: "sub" }),
        };
        let agent = match &self.agent_claim {
            Some(name) => string_claim(&claims, name),
            None => DEFAULT_AGENT_CLAIMS
                .iter()
                .find_map(|name| string_claim(&claims, name)),
        };
        let mut roles = Vec::new();
        for name in &self.roles_claims {
            match lookup(&claims, name) {
                Some(Value::String(role)) => push_unique(&mut roles, role),
                Some(Value::Array(items)) => {
                    for role in items.iter().filter_map(Value::as_str) {
                        push_unique(&mut roles, role);
                    }
                }
                _ => {}
            }
        }
        let mut scopes = Vec::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(Value::String(list)) => {
                    for scope in list.split(' ') {
                        push_unique(&mut scopes, scope);
                    }
                }
                Some(Value::Array(items)) => {
                    for scope in items.iter().filter_map(Value::as_str) {
                        push_unique(&mut scopes, scope);
                    }
                }
                _ => {}
            }
        }
        Ok(Identity {
            subject,
            agent,
            roles,
            scopes,
            claims,
            method: AuthMethod::Jwt,
            biscuit: None,
        })
    }
}

/// The `Validation` for tokens signed with `alg`.
fn validation(alg: Algorithm, cfg: &JwtConfig, leeway: u64) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &cfg.issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    if cfg.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&cfg.audience);
        v.validate_aud = true;
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

/// Reads the JWS header without trusting it yet.
fn peek_header(token: &str) -> Result<PeekHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed);
    }
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::Malformed);
    }
    let peeked: PeekHeader = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    if peeked.crit.is_some() {
        return Err(AuthError::Malformed);
    }
    Ok(peeked)
}

/// Maps a `jsonwebtoken` failure (other than a bad signature, handled by the caller).
fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::MissingClaim {
                claim: static_claim(claim),
            }
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed,
        // Key/algorithm mismatches cannot happen after the load-time checks; anything
        // else, present or future, is refused as a bad signature.
        _ => AuthError::BadSignature,
    }
}

/// The registered claim names `jsonwebtoken` validates, as static labels.
fn static_claim(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "unknown",
    }
}

/// A claim by name, or by JSON Pointer (RFC 6901) when the name starts with `/`.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let Some(pointer) = name.strip_prefix('/') else {
        return claims.get(name);
    };
    let mut tokens = pointer
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"));
    let first = tokens.next()?;
    let mut value = claims.get(&first)?;
    for token in tokens {
        value = match value {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A non-empty string claim.
fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match lookup(claims, name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !item.is_empty() && !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

#[cfg(test)]
mod tests;
