//! What the upstream is told about the caller: client identity headers are stripped and
//! the proxy's own are set; the client's credential is not forwarded.
//!
//! Pure functions over `http` types so the rules are unit-tested without a network.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::{ClientCert, Identity};
use crate::config::IdentityHeadersConfig;

/// Header names to remove from the client's request before forwarding: every header
/// in the identity namespace (by prefix or configured name), and the client's
/// credentials (`Authorization` unless passthrough is enabled, and `X-API-Key`).
pub fn headers_to_strip(cfg: &IdentityHeadersConfig, headers: &HeaderMap) -> Vec<HeaderName> {
    let prefix = cfg.strip_prefix.to_ascii_lowercase();
    let cert_prefix = cfg.client_cert_prefix.to_ascii_lowercase();
    let configured: Vec<String> = configured_names(cfg)
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let mut out: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str(); // always lowercase in `http`
            (!prefix.is_empty() && n.starts_with(&prefix))
                || (!cert_prefix.is_empty() && n.starts_with(&cert_prefix))
                || configured.iter().any(|c| c == n)
                || n == "x-api-key"
                || (n == "authorization" && !cfg.pass_authorization)
        })
        .cloned()
        .collect();
    out.dedup();
    out
}

fn configured_names(cfg: &IdentityHeadersConfig) -> impl Iterator<Item = &str> {
    [
        cfg.user.as_str(),
        cfg.agent.as_str(),
        cfg.roles.as_str(),
        cfg.auth_method.as_str(),
    ]
    .into_iter()
    .chain(cfg.claims.keys().map(String::as_str))
}

/// The identity headers to add for `identity`. Values that are not visible ASCII are
/// percent-encoded (UTF-8), so a claim can neither break the header nor smuggle a line.
pub fn identity_headers(
    cfg: &IdentityHeadersConfig,
    identity: &Identity,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let mut push = |name: &str, value: &str| {
        if name.is_empty() {
            return;
        }
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            out.push((name, header_value(value)));
        }
    };
    push(&cfg.user, &identity.subject);
    if let Some(agent) = &identity.agent {
        push(&cfg.agent, agent);
    }
    if !identity.roles.is_empty() {
        push(&cfg.roles, &identity.roles.join(","));
    }
    push(&cfg.auth_method, identity.method.as_str());
    for (header, claim) in &cfg.claims {
        if let Some(value) = identity.claims.get(claim).and_then(claim_text) {
            push(header, &value);
        }
    }
    out
}

/// The headers describing the connection's verified client certificate (see
/// `identity_headers.client_cert_prefix`); none when the prefix is empty.
pub fn client_cert_headers(
    cfg: &IdentityHeadersConfig,
    cert: &ClientCert,
) -> Vec<(HeaderName, HeaderValue)> {
    let prefix = &cfg.client_cert_prefix;
    if prefix.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(4);
    let mut push = |suffix: &str, value: &str| {
        if let Ok(name) = HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()) {
            out.push((name, header_value(value)));
        }
    };
    if let Some(id) = &cert.spiffe_id {
        push("Spiffe-Id", id);
    }
    if !cert.dns.is_empty() {
        push("Dns", &cert.dns.join(","));
    }
    if !cert.subject.is_empty() {
        push("Subject", &cert.subject);
    }
    push("Fingerprint", &cert.fingerprint);
    out
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
    let mut encoded = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
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
        let strip: Vec<String> = headers_to_strip(&cfg, &h)
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
            headers_to_strip(&cfg, &h),
            [HeaderName::from_static("x-mcp-client-cert-spiffe-id")]
        );
        let cert = ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".into()),
            dns: vec!["a.example".into(), "b.example".into()],
            subject: "agent".into(),
            fingerprint: "ab12".into(),
            x5t_s256: "q".into(),
        };
        let got: Vec<(String, String)> = client_cert_headers(&cfg, &cert)
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
        assert!(client_cert_headers(&off, &cert).is_empty());
    }

    #[test]
    fn authorization_passthrough_is_explicit() {
        let cfg = IdentityHeadersConfig {
            pass_authorization: true,
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer t".parse().unwrap());
        assert!(headers_to_strip(&cfg, &h).is_empty());
    }

    #[test]
    fn identity_headers_carry_user_agent_roles_and_claims() {
        let mut cfg = IdentityHeadersConfig::default();
        cfg.claims
            .insert("X-MCP-Department".into(), "department".into());
        cfg.claims.insert("X-MCP-Groups".into(), "groups".into());
        let h: Vec<(String, String)> = identity_headers(&cfg, &identity())
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
    }
}
