//! Who a verified client certificate names: the typed peer identity the rest of the proxy
//! sees (policies, identity headers, the audit line), parsed once per handshake.
//!
//! The TLS verifier has already checked the chain against the configured CA bundle when
//! [`ClientCert::from_der`] runs; this module only reads the leaf, and refuses the shapes
//! a workload identity must not have (the X.509-SVID rules of the SPIFFE spec): a leaf
//! that is a CA, or one with more than one URI SAN (the SPIFFE ID must be unambiguous).
//! A leaf whose single URI SAN is not `spiffe://…` has no SPIFFE ID and is still usable by
//! its DNS names, subject or fingerprint.

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity of a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The SPIFFE ID: the leaf's single URI SAN, when it is `spiffe://…`.
    pub spiffe_id: Option<String>,
    /// The DNS SANs, in certificate order.
    pub dns: Vec<String>,
    /// The subject's common name, `""` when it has none.
    pub subject: String,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint: String,
    /// The same digest, base64url without padding: RFC 8705's `x5t#S256` confirmation.
    pub x5t_s256: String,
}

/// Why a verified certificate cannot name a caller (the client gets a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    /// `tls.client_auth.mode = "required"` and the client sent no certificate.
    #[error("a client certificate is required")]
    Required,
    /// The leaf is a CA certificate (X.509-SVID: a leaf must not be).
    #[error("client certificate is a CA certificate")]
    IsCa,
    /// The leaf has more than one URI SAN (X.509-SVID: exactly one SPIFFE ID).
    #[error("client certificate has more than one URI SAN")]
    SeveralUris,
    /// The leaf does not parse as X.509.
    #[error("client certificate does not parse")]
    Unparsable,
}

impl CertRefusal {
    /// The fixed label of audit lines and metrics.
    pub fn label(self) -> &'static str {
        match self {
            CertRefusal::Required => "client_cert_required",
            CertRefusal::IsCa | CertRefusal::SeveralUris | CertRefusal::Unparsable => {
                "client_cert_refused"
            }
        }
    }
}

/// What one TLS connection says of its client: stored once per handshake in Pingora's
/// `SslDigest.extension`, read for every request (and every HTTP/2 stream) on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCert {
    /// No client certificate was presented.
    Absent,
    /// A certificate chained to the configured CA and passed the SVID rules.
    Verified(std::sync::Arc<ClientCert>),
    /// A certificate chained to the CA but cannot name a caller.
    Refused(CertRefusal),
}

impl PeerCert {
    /// The peer of a connection whose verified chain starts with `leaf` (DER), if any.
    pub fn of_leaf(leaf: Option<&[u8]>) -> PeerCert {
        match leaf {
            None => PeerCert::Absent,
            Some(der) => match ClientCert::from_der(der) {
                Ok(cert) => PeerCert::Verified(std::sync::Arc::new(cert)),
                Err(refusal) => PeerCert::Refused(refusal),
            },
        }
    }
}

/// Which certificate field names the caller (`auth.mtls.subject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertField {
    /// The SPIFFE ID (the default).
    #[default]
    SpiffeId,
    /// The first DNS SAN.
    Dns,
    /// The subject's common name.
    Subject,
    /// The SHA-256 fingerprint (hex).
    Fingerprint,
}

impl ClientCert {
    /// Read a verified leaf certificate.
    pub fn from_der(der: &[u8]) -> Result<ClientCert, CertRefusal> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertRefusal::Unparsable)?;
        if let Ok(Some(bc)) = cert.basic_constraints() {
            if bc.value.ca {
                return Err(CertRefusal::IsCa);
            }
        }
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        match cert.subject_alternative_name() {
            Ok(Some(san)) => {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::URI(uri) => uris.push(*uri),
                        GeneralName::DNSName(name) => dns.push((*name).to_owned()),
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(_) => return Err(CertRefusal::Unparsable),
        }
        if uris.len() > 1 {
            return Err(CertRefusal::SeveralUris);
        }
        let spiffe_id = uris
            .first()
            .filter(|u| u.starts_with("spiffe://"))
            .map(|u| (*u).to_owned());
        let subject = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_owned();
        let digest = Sha256::digest(der);
        Ok(ClientCert {
            spiffe_id,
            dns,
            subject,
            fingerprint: hex::encode(digest),
            x5t_s256: base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                digest,
            ),
        })
    }

    /// The value of `field`, if the certificate has it.
    pub fn field(&self, field: CertField) -> Option<&str> {
        match field {
            CertField::SpiffeId => self.spiffe_id.as_deref(),
            CertField::Dns => self.dns.first().map(String::as_str),
            CertField::Subject => Some(self.subject.as_str()).filter(|s| !s.is_empty()),
            CertField::Fingerprint => Some(self.fingerprint.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(sans: Vec<rcgen::SanType>, ca: bool) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "billing-agent");
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(u: &str) -> rcgen::SanType {
        rcgen::SanType::URI(u.try_into().unwrap())
    }

    fn dns(d: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(d.try_into().unwrap())
    }

    #[test]
    fn a_spiffe_leaf_names_its_workload() {
        let der = leaf(
            vec![
                uri("spiffe://example.org/ns/prod/sa/billing"),
                dns("billing.prod"),
            ],
            false,
        );
        let cert = ClientCert::from_der(&der).unwrap();
        assert_eq!(
            cert.spiffe_id.as_deref(),
            Some("spiffe://example.org/ns/prod/sa/billing")
        );
        assert_eq!(cert.dns, ["billing.prod"]);
        assert_eq!(cert.subject, "billing-agent");
        assert_eq!(cert.fingerprint, hex::encode(Sha256::digest(&der)));
        assert_eq!(cert.fingerprint.len(), 64);
        assert_eq!(cert.x5t_s256.len(), 43);
        assert_eq!(cert.field(CertField::Dns), Some("billing.prod"));
        assert_eq!(cert.field(CertField::Subject), Some("billing-agent"));
    }

    #[test]
    fn several_uri_sans_or_a_ca_leaf_are_refused() {
        let two = leaf(
            vec![uri("spiffe://example.org/a"), uri("spiffe://example.org/b")],
            false,
        );
        assert_eq!(ClientCert::from_der(&two), Err(CertRefusal::SeveralUris));
        let ca = leaf(vec![uri("spiffe://example.org/a")], true);
        assert_eq!(ClientCert::from_der(&ca), Err(CertRefusal::IsCa));
        assert_eq!(
            PeerCert::of_leaf(Some(b"not a certificate")),
            PeerCert::Refused(CertRefusal::Unparsable)
        );
        assert_eq!(PeerCert::of_leaf(None), PeerCert::Absent);
    }

    #[test]
    fn a_non_spiffe_uri_is_no_spiffe_id() {
        let der = leaf(vec![uri("https://example.org/x")], false);
        let cert = ClientCert::from_der(&der).unwrap();
        assert_eq!(cert.spiffe_id, None);
        assert_eq!(cert.field(CertField::SpiffeId), None);
    }
}
