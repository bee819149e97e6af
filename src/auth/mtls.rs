//! How a verified client certificate combines with the request's credential
//! (`[auth.mtls]`), as one pure function, [`combine`]:
//!
//! | credential | certificate | result |
//! |---|---|---|
//! | token or API key | none | the credential's identity |
//! | token or API key | verified | the credential's identity; with `agent = true` the certificate's field is the agent acting for the user (compound identity) |
//! | none | verified | with `caller = true`, the caller the certificate names (`auth_method = "mtls"`) |
//! | none | none | no identity (anonymous, if allowed, or 401) |
//!
//! Certificate-bound tokens (RFC 8705 §3): a token whose claims carry
//! `cnf.x5t#S256` is accepted only on a connection whose client certificate has that
//! SHA-256 thumbprint — with no certificate, or another one, it is refused, whatever
//! `[auth.mtls]` says. `require_bound_tokens` refuses tokens without a binding too.

use std::sync::Arc;

use serde_json::{json, Value};

use super::client_cert::ClientCert;
use super::config::MtlsConfig;
use super::{AuthError, AuthMethod, Identity};

/// The identity of a request from its credential's identity and its certificate.
pub(super) fn combine(
    credential: Option<Arc<Identity>>,
    cert: Option<&ClientCert>,
    cfg: Option<&MtlsConfig>,
) -> Result<Option<Arc<Identity>>, AuthError> {
    match (credential, cert, cfg) {
        (Some(mut identity), cert, cfg) => {
            check_binding(&identity, cert, cfg.is_some_and(|c| c.require_bound_tokens))?;
            if let (Some(cert), Some(cfg)) = (cert, cfg) {
                if cfg.agent {
                    let agent = cert.field(cfg.subject).ok_or(AuthError::CertNoSubject)?;
                    Arc::make_mut(&mut identity).agent = Some(agent.to_owned());
                }
            }
            Ok(Some(identity))
        }
        (None, Some(cert), Some(cfg)) if cfg.caller => {
            let subject = cert.field(cfg.subject).ok_or(AuthError::CertNoSubject)?;
            Ok(Some(Arc::new(Identity {
                subject: subject.to_owned(),
                claims: cert_claims(cert),
                method: AuthMethod::Mtls,
                ..Identity::anonymous()
            })))
        }
        (None, _, _) => Ok(None),
    }
}

/// The certificate's fields as the claims of an `mtls` caller.
fn cert_claims(cert: &ClientCert) -> serde_json::Map<String, Value> {
    let mut claims = serde_json::Map::new();
    if let Some(id) = &cert.spiffe_id {
        claims.insert("spiffe_id".into(), json!(id));
    }
    claims.insert("dns".into(), json!(cert.dns));
    claims.insert("cn".into(), json!(cert.subject));
    claims.insert("fingerprint".into(), json!(cert.fingerprint));
    claims
}

/// RFC 8705 §3: a bound token must come with its certificate.
fn check_binding(
    identity: &Identity,
    cert: Option<&ClientCert>,
    required: bool,
) -> Result<(), AuthError> {
    let bound = identity
        .claims
        .get("cnf")
        .and_then(|cnf| cnf.get("x5t#S256"));
    match bound {
        Some(Value::String(thumb)) => match cert {
            Some(cert) if cert.x5t_s256 == *thumb => Ok(()),
            _ => Err(AuthError::CertBindingMismatch),
        },
        // A binding of the wrong type binds to nothing a certificate can match.
        Some(_) => Err(AuthError::CertBindingMismatch),
        None if required => Err(AuthError::CertBindingMissing),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CertField;

    fn cert() -> ClientCert {
        ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".into()),
            dns: vec!["agent.example".into()],
            subject: "agent".into(),
            fingerprint: "ab".repeat(32),
            x5t_s256: "thumb".into(),
        }
    }

    fn user(claims: Value) -> Identity {
        Identity {
            subject: "alice".into(),
            agent: Some("claude".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
            method: AuthMethod::Jwt,
            ..Identity::anonymous()
        }
    }

    fn on() -> MtlsConfig {
        MtlsConfig::default()
    }

    #[test]
    fn a_certificate_alone_is_the_caller_it_names() {
        let id = combine(None, Some(&cert()), Some(&on())).unwrap().unwrap();
        assert_eq!(id.subject, "spiffe://example.org/agent");
        assert_eq!(id.method, AuthMethod::Mtls);
        assert_eq!(id.claims["dns"], json!(["agent.example"]));
        let dns = MtlsConfig {
            subject: CertField::Dns,
            ..on()
        };
        let id = combine(None, Some(&cert()), Some(&dns)).unwrap().unwrap();
        assert_eq!(id.subject, "agent.example");
        // without `[auth.mtls]`, or with `caller = false`, a certificate is no caller
        assert_eq!(combine(None, Some(&cert()), None).unwrap(), None);
        let no_caller = MtlsConfig {
            caller: false,
            ..on()
        };
        assert_eq!(
            combine(None, Some(&cert()), Some(&no_caller)).unwrap(),
            None
        );
        // a certificate without the configured field is refused, not skipped
        let bare = ClientCert {
            spiffe_id: None,
            ..cert()
        };
        assert_eq!(
            combine(None, Some(&bare), Some(&on())),
            Err(AuthError::CertNoSubject)
        );
    }

    #[test]
    fn with_a_token_the_certificate_is_the_agent() {
        let id = combine(Some(Arc::new(user(json!({})))), Some(&cert()), Some(&on()))
            .unwrap()
            .unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.method, AuthMethod::Jwt);
        assert_eq!(id.agent.as_deref(), Some("spiffe://example.org/agent"));
        let no_agent = MtlsConfig {
            agent: false,
            ..on()
        };
        let id = combine(
            Some(Arc::new(user(json!({})))),
            Some(&cert()),
            Some(&no_agent),
        )
        .unwrap()
        .unwrap();
        assert_eq!(id.agent.as_deref(), Some("claude"));
    }

    #[test]
    fn a_bound_token_needs_its_certificate() {
        let bound = || user(json!({"cnf": {"x5t#S256": "thumb"}}));
        assert!(combine(Some(Arc::new(bound())), Some(&cert()), None).is_ok());
        let other = ClientCert {
            x5t_s256: "other".into(),
            ..cert()
        };
        for (cert, cfg) in [(Some(&other), None), (None, None), (None, Some(&on()))] {
            assert_eq!(
                combine(Some(Arc::new(bound())), cert, cfg),
                Err(AuthError::CertBindingMismatch)
            );
        }
        let wrong_type = user(json!({"cnf": {"x5t#S256": 5}}));
        assert_eq!(
            combine(Some(Arc::new(wrong_type)), Some(&cert()), None),
            Err(AuthError::CertBindingMismatch)
        );
        let strict = MtlsConfig {
            require_bound_tokens: true,
            ..on()
        };
        assert_eq!(
            combine(
                Some(Arc::new(user(json!({})))),
                Some(&cert()),
                Some(&strict)
            ),
            Err(AuthError::CertBindingMissing)
        );
    }
}
