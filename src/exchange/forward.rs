//! What the upstream is told about the caller: client identity headers are stripped and
//! the proxy's own are set; the client's credential is not forwarded.
//!
//! Pure functions over `http` types so the rules are unit-tested without a network.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::{ClientCert, Identity};
use crate::config::IdentityHeadersConfig;

/// The identity-header rules of `[identity_headers]`, compiled once at start-up: the
/// names in the forms the request path compares and inserts, so no request lowercases a
/// prefix or parses a header name again.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// `strip_prefix`, lowercase (`http` keeps names lowercase); empty: none.
    prefix: String,
    /// `client_cert_prefix`, lowercase; empty: none.
    cert_prefix: String,
    /// The configured identity header names (user, agent, roles, auth method, claims).
    configured: Vec<HeaderName>,
    user: Option<HeaderName>,
    agent: Option<HeaderName>,
    roles: Option<HeaderName>,
    auth_method: Option<HeaderName>,
    /// Header → claim.
    claims: Vec<(HeaderName, String)>,
    /// `<prefix>Spiffe-Id`, `<prefix>Dns`, `<prefix>Subject`, `<prefix>Fingerprint`;
    /// `None` when the prefix is empty.
    cert: Option<[HeaderName; 4]>,
    pass_authorization: bool,
}

/// A configured header name; `None` if empty or not a header name (nothing is sent).
fn name(name: &str) -> Option<HeaderName> {
    (!name.is_empty())
        .then(|| HeaderName::from_bytes(name.as_bytes()).ok())
        .flatten()
}

impl Forwarding {
    /// Compile `cfg`.
    pub fn new(cfg: &IdentityHeadersConfig) -> Self {
        let claims: Vec<(HeaderName, String)> = cfg
            .claims
            .iter()
            .filter_map(|(header, claim)| Some((name(header)?, claim.clone())))
            .collect();
        let (user, agent, roles, auth_method) = (
            name(&cfg.user),
            name(&cfg.agent),
            name(&cfg.roles),
            name(&cfg.auth_method),
        );
        let configured = [&user, &agent, &roles, &auth_method]
            .into_iter()
            .flatten()
            .cloned()
            .chain(claims.iter().map(|(header, _)| header.clone()))
            .collect();
        let prefix = &cfg.client_cert_prefix;
        let cert = ["Spiffe-Id", "Dns", "Subject", "Fingerprint"]
            .map(|suffix| name(&format!("{prefix}{suffix}")));
        let cert = match cert {
            [Some(a), Some(b), Some(c), Some(d)] if !prefix.is_empty() => Some([a, b, c, d]),
            _ => None,
        };
        Forwarding {
            prefix: cfg.strip_prefix.to_ascii_lowercase(),
            cert_prefix: cfg.client_cert_prefix.to_ascii_lowercase(),
            configured,
            user,
            agent,
            roles,
            auth_method,
            claims,
            cert,
            pass_authorization: cfg.pass_authorization,
        }
    }

    /// Header names to remove from the client's request before forwarding: every header
    /// in the identity namespace (by prefix or configured name), and the client's
    /// credentials (`Authorization` unless passthrough is enabled, and `X-API-Key`).
    pub fn strip(&self, headers: &HeaderMap) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let n = name.as_str(); // always lowercase in `http`
                (!self.prefix.is_empty() && n.starts_with(&self.prefix))
                    || (!self.cert_prefix.is_empty() && n.starts_with(&self.cert_prefix))
                    || self.configured.contains(name)
                    || n == "x-api-key"
                    || (n == "authorization" && !self.pass_authorization)
            })
            .cloned()
            .collect();
        out.dedup();
        out
    }

    /// The identity headers to add for `identity`. Values that are not visible ASCII are
    /// percent-encoded (UTF-8), so a claim can neither break the header nor smuggle a
    /// line.
    pub fn identity(&self, identity: &Identity) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(4 + self.claims.len());
        let mut push = |name: &Option<HeaderName>, value: &str| {
            if let Some(name) = name {
                out.push((name.clone(), header_value(value)));
            }
        };
        push(&self.user, &identity.subject);
        if let Some(agent) = &identity.agent {
            push(&self.agent, agent);
        }
        if !identity.roles.is_empty() {
            push(&self.roles, &identity.roles.join(","));
        }
        push(&self.auth_method, identity.method.as_str());
        for (header, claim) in &self.claims {
            if let Some(value) = identity.claims.get(claim).and_then(claim_text) {
                out.push((header.clone(), header_value(&value)));
            }
        }
        out
    }

    /// The headers describing the connection's verified client certificate (see
    /// `identity_headers.client_cert_prefix`); none when the prefix is empty.
    pub fn client_cert(&self, cert: &ClientCert) -> Vec<(HeaderName, HeaderValue)> {
        let Some([spiffe, dns, subject, fingerprint]) = &self.cert else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(4);
        if let Some(id) = &cert.spiffe_id {
            out.push((spiffe.clone(), header_value(id)));
        }
        if !cert.dns.is_empty() {
            out.push((dns.clone(), header_value(&cert.dns.join(","))));
        }
        if !cert.subject.is_empty() {
            out.push((subject.clone(), header_value(&cert.subject)));
        }
        out.push((fingerprint.clone(), header_value(&cert.fingerprint)));
        out
    }
}

fn claim_text(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(claim_text).collect();
            Some(parts.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

/// Encode a value for a header: visible ASCII and spaces pass (except `%`, which is
/// escaped so the encoding is unambiguous); everything else is percent-encoded.
pub fn header_value(value: &str) -> HeaderValue {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'%';
    if value.bytes().all(plain) {
        // Nothing to encode (the common case): no intermediate string.
        return HeaderValue::from_str(value.trim())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if plain(b) {
            encoded.push(b as char);
        } else {
            encoded.push('%');
            encoded.push(HEX[usize::from(b >> 4)] as char);
            encoded.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    HeaderValue::from_str(encoded.trim()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn identity() -> Identity {
        let mut claims = serde_json::Map::new();
        claims.insert("department".into(), "cardiology".into());
        claims.insert("groups".into(), serde_json::json!(["a", "b"]));
        Identity {
            subject: "alice".into(),
            agent: Some("claude".into()),
            roles: vec!["staff".into(), "nurse".into()],
            scopes: vec![],
            claims,
            method: AuthMethod::Jwt,
            biscuit: None,
        }
    }

    #[test]
    fn strips_namespace_credentials_and_configured_names() {
        let mut cfg = IdentityHeadersConfig::default();
        cfg.claims.insert("X-Dept".into(), "department".into());
        let mut h = HeaderMap::new();
        h.insert("x-mcp-user", "mallory".parse().unwrap());
        h.insert("X-MCP-Roles", "admin".parse().unwrap());
        h.insert("x-dept", "spoofed".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        let strip: Vec<String> = Forwarding::new(&cfg)
            .strip(&h)
            .iter()
            .map(|n| n.to_string())
            .collect();
        for name in [
            "x-mcp-user",
            "x-mcp-roles",
            "x-dept",
            "authorization",
            "x-api-key",
        ] {
            assert!(strip.contains(&name.to_string()), "{name} not stripped");
        }
        assert!(!strip.contains(&"accept".to_string()));
    }

    #[test]
    fn client_cert_headers_are_stripped_whatever_the_prefix_and_set_from_the_cert() {
        let cfg = IdentityHeadersConfig {
            strip_prefix: "x-ident-".into(),
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-mcp-client-cert-spiffe-id",
            "spiffe://evil/x".parse().unwrap(),
        );
        assert_eq!(
            Forwarding::new(&cfg).strip(&h),
            [HeaderName::from_static("x-mcp-client-cert-spiffe-id")]
        );
        let cert = ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".into()),
            dns: vec!["a.example".into(), "b.example".into()],
            subject: "agent".into(),
            fingerprint: "ab12".into(),
            x5t_s256: "q".into(),
        };
        let got: Vec<(String, String)> = Forwarding::new(&cfg)
            .client_cert(&cert)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "x-mcp-client-cert-spiffe-id".into(),
                    "spiffe://example.org/agent".into()
                ),
                ("x-mcp-client-cert-dns".into(), "a.example,b.example".into()),
                ("x-mcp-client-cert-subject".into(), "agent".into()),
                ("x-mcp-client-cert-fingerprint".into(), "ab12".into()),
            ]
            .map(|(a, b): (String, String)| (a, b))
        );
        let off = IdentityHeadersConfig {
            client_cert_prefix: String::new(),
            ..Default::default()
        };
        assert!(Forwarding::new(&off).client_cert(&cert).is_empty());
    }

    #[test]
    fn authorization_passthrough_is_explicit() {
        let cfg = IdentityHeadersConfig {
            pass_authorization: true,
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer t".parse().unwrap());
        assert!(Forwarding::new(&cfg).strip(&h).is_empty());
    }

    #[test]
    fn identity_headers_carry_user_agent_roles_and_claims() {
        let mut cfg = IdentityHeadersConfig::default();
        cfg.claims
            .insert("X-MCP-Department".into(), "department".into());
        cfg.claims.insert("X-MCP-Groups".into(), "groups".into());
        let h: Vec<(String, String)> = Forwarding::new(&cfg)
            .identity(&identity())
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert!(h.contains(&("x-mcp-user".into(), "alice".into())));
        assert!(h.contains(&("x-mcp-agent".into(), "claude".into())));
        assert!(h.contains(&("x-mcp-roles".into(), "staff,nurse".into())));
        assert!(h.contains(&("x-mcp-auth-method".into(), "jwt".into())));
        assert!(h.contains(&("x-mcp-department".into(), "cardiology".into())));
        assert!(h.contains(&("x-mcp-groups".into(), "a,b".into())));
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        assert_eq!(
            header_value("a\r\nX-Evil: 1").to_str().unwrap(),
            "a%0D%0AX-Evil: 1"
        );
        assert_eq!(header_value("Zoë").to_str().unwrap(), "Zo%C3%AB");
        assert_eq!(header_value("100%").to_str().unwrap(), "100%25");
        // Only spaces are trimmed; other whitespace is encoded, at either end.
        assert_eq!(header_value("  alice ").to_str().unwrap(), "alice");
        assert_eq!(header_value("\talice").to_str().unwrap(), "%09alice");
    }
}
