//! OAuth 2.0 Protected Resource Metadata (RFC 9728), as the MCP authorization spec
//! requires of a protected MCP server: the document a client fetches, after a 401, to
//! learn which authorization servers issue tokens for this resource and which scopes
//! exist.
//!
//! `[oauth]` names the resource (the MCP endpoint's public URL) and its authorization
//! servers. From it the proxy serves the document at both well-known places a client
//! probes (RFC 9728 §3.1: `/.well-known/oauth-protected-resource` with the resource's path
//! appended, and at the root), points `WWW-Authenticate` at it on every 401 unless
//! `[http] resource_metadata` names another URL, and holds JWTs to the resource as their
//! audience (RFC 8707: a token issued for another resource is refused). The document is
//! built once, at start-up: serving it costs a path comparison.

use http::Uri;
use serde::Deserialize;

/// The well-known path prefix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// `[oauth]`: the protected resource this proxy is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// The resource identifier: the MCP endpoint's public `https://` URL (e.g.
    /// `https://mcp.example.com/mcp`). Unset: no metadata is served.
    pub resource: Option<String>,
    /// The authorization servers' issuer URLs (at least one when `resource` is set).
    pub authorization_servers: Vec<String>,
    /// The scopes a client may ask for (`scopes_supported`).
    pub scopes_supported: Vec<String>,
    /// How a token may be sent (`bearer_methods_supported`). Default `["header"]`, the
    /// only one the proxy reads.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name (`resource_name`).
    pub resource_name: Option<String>,
    /// A page for developers (`resource_documentation`).
    pub resource_documentation: Option<String>,
    /// Require a JWT's `aud` to name `resource` (RFC 8707). Default true.
    pub check_audience: bool,
}

impl OAuthConfig {
    /// `(key, reason)` of the first value that cannot be used.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let Some(resource) = &self.resource else {
            if !self.authorization_servers.is_empty() {
                return Err((
                    "oauth.authorization_servers",
                    "set `oauth.resource` too: the metadata describes that resource".into(),
                ));
            }
            return Ok(());
        };
        let uri = absolute(resource).map_err(|e| ("oauth.resource", e))?;
        if uri.query().is_some() {
            return Err((
                "oauth.resource",
                format!("`{resource}`: a resource identifier has no query (RFC 8707 §2)"),
            ));
        }
        if resource.contains('#') {
            return Err((
                "oauth.resource",
                format!("`{resource}`: a resource identifier has no fragment (RFC 8707 §2)"),
            ));
        }
        if self.authorization_servers.is_empty() {
            return Err((
                "oauth.authorization_servers",
                "name at least one authorization server (the MCP spec requires it)".into(),
            ));
        }
        for server in &self.authorization_servers {
            absolute(server).map_err(|e| ("oauth.authorization_servers", e))?;
        }
        for method in &self.bearer_methods_supported {
            if !["header", "body", "query"].contains(&method.as_str()) {
                return Err((
                    "oauth.bearer_methods_supported",
                    format!("`{method}`: one of `header`, `body`, `query` (RFC 9728 §2)"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for OAuthConfig {
    /// Nothing served; the audience checked once a resource is named.
    fn default() -> Self {
        OAuthConfig {
            resource: None,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            check_audience: true,
        }
    }
}

fn absolute(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("https" | "http"), Some(_)) => Ok(uri),
        _ => Err(format!("`{text}`: an absolute http(s) URL is required")),
    }
}

/// The metadata document, built once, and where it is served.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// The resource identifier.
    pub resource: String,
    /// The document's bytes (`application/json`).
    pub document: bytes::Bytes,
    /// The paths it is served at on the proxy's listener.
    paths: Vec<String>,
    /// The document's public URL (for `WWW-Authenticate`).
    pub url: String,
}

impl ResourceMetadata {
    /// From a checked `[oauth]`; `None` when no resource is named.
    pub fn from_config(cfg: &OAuthConfig) -> Option<ResourceMetadata> {
        let resource = cfg.resource.clone()?;
        let uri: Uri = resource.parse().ok()?;
        let path = uri.path().trim_end_matches('/');
        let suffixed = format!("{WELL_KNOWN}{path}");
        let mut paths = vec![suffixed.clone()];
        if !path.is_empty() {
            paths.push(WELL_KNOWN.to_owned());
        }
        let url = format!(
            "{}://{}{suffixed}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let methods = if cfg.bearer_methods_supported.is_empty() {
            vec!["header".to_owned()]
        } else {
            cfg.bearer_methods_supported.clone()
        };
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), resource.clone().into());
        doc.insert(
            "authorization_servers".into(),
            cfg.authorization_servers.clone().into(),
        );
        if !cfg.scopes_supported.is_empty() {
            doc.insert(
                "scopes_supported".into(),
                cfg.scopes_supported.clone().into(),
            );
        }
        doc.insert("bearer_methods_supported".into(), methods.into());
        if let Some(name) = &cfg.resource_name {
            doc.insert("resource_name".into(), name.clone().into());
        }
        if let Some(page) = &cfg.resource_documentation {
            doc.insert("resource_documentation".into(), page.clone().into());
        }
        let document = serde_json::to_vec_pretty(&serde_json::Value::Object(doc))
            .expect("a map of strings serializes")
            .into();
        Some(ResourceMetadata {
            resource,
            document,
            paths,
            url,
        })
    }

    /// Whether a GET of `path` asks for the document.
    pub fn serves(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
}

/// Does a JWT's `aud` claim (a string or an array of strings) name `resource`?
pub fn audience_names(aud: Option<&serde_json::Value>, resource: &str) -> bool {
    match aud {
        Some(serde_json::Value::String(a)) => a == resource,
        Some(serde_json::Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(resource)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(resource: &str) -> OAuthConfig {
        OAuthConfig {
            resource: Some(resource.into()),
            authorization_servers: vec!["https://auth.example.com".into()],
            scopes_supported: vec!["mcp:tools".into()],
            ..OAuthConfig::default()
        }
    }

    #[test]
    fn the_document_is_served_at_the_path_suffixed_and_the_root_well_known_places() {
        let m = ResourceMetadata::from_config(&config("https://mcp.example.com/mcp")).unwrap();
        assert!(m.serves("/.well-known/oauth-protected-resource/mcp"));
        assert!(m.serves("/.well-known/oauth-protected-resource"));
        assert!(!m.serves("/.well-known/oauth-protected-resource/other"));
        assert!(!m.serves("/mcp"));
        assert_eq!(
            m.url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let doc: serde_json::Value = serde_json::from_slice(&m.document).unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"]
            })
        );
        let root = ResourceMetadata::from_config(&config("https://mcp.example.com")).unwrap();
        assert_eq!(
            root.url,
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn unusable_settings_name_their_key() {
        let key = |c: OAuthConfig| c.check().unwrap_err().0;
        assert_eq!(key(config("mcp.example.com/mcp")), "oauth.resource");
        assert_eq!(
            key(config("https://mcp.example.com/mcp?x=1")),
            "oauth.resource"
        );
        assert_eq!(
            key(config("https://mcp.example.com/mcp#f")),
            "oauth.resource"
        );
        let mut no_servers = config("https://mcp.example.com/mcp");
        no_servers.authorization_servers.clear();
        assert_eq!(key(no_servers), "oauth.authorization_servers");
        let mut bad_method = config("https://mcp.example.com/mcp");
        bad_method.bearer_methods_supported = vec!["cookie".into()];
        assert_eq!(key(bad_method), "oauth.bearer_methods_supported");
        assert!(config("https://mcp.example.com/mcp").check().is_ok());
        assert!(OAuthConfig::default().check().is_ok());
    }

    #[test]
    fn the_audience_must_name_the_resource() {
        let r = "https://mcp.example.com/mcp";
        assert!(audience_names(Some(&json!(r)), r));
        assert!(audience_names(Some(&json!(["other", r])), r));
        assert!(!audience_names(
            Some(&json!("https://other.example.com/mcp")),
            r
        ));
        assert!(!audience_names(Some(&json!([])), r));
        assert!(!audience_names(None, r));
    }
}
