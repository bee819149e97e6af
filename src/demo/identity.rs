//! The caller, as the proxy's identity headers describe it.
//!
//! The backend trusts these headers because only the proxy can reach it (it listens on
//! loopback, and the proxy strips every client-sent `x-mcp-*` header before adding its
//! own). Values arrive percent-encoded where they are not visible ASCII
//! ([`crate::exchange::forward::header_value`]); they are decoded here.

use http::HeaderMap;

/// The user (the token's `sub`).
pub const USER_HEADER: &str = "x-mcp-user";
/// The caller's roles, comma separated.
pub const ROLES_HEADER: &str = "x-mcp-roles";
/// The patient the caller is (the `patient_name` claim, in the demo configuration).
pub const PATIENT_HEADER: &str = "x-mcp-patient";
/// The caller's department (the `department` claim, in the demo configuration).
pub const DEPARTMENT_HEADER: &str = "x-mcp-department";

/// Who is calling, as bound into every database transaction. Every field may be absent;
/// a caller with nothing set sees no rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user (`X-MCP-User`).
    pub user: Option<String>,
    /// Roles (`X-MCP-Roles`), e.g. `nurse`.
    pub roles: Vec<String>,
    /// The patient the caller is (`X-MCP-Patient`).
    pub patient: Option<String>,
    /// The department the caller works in (`X-MCP-Department`).
    pub department: Option<String>,
}

/// Identity headers that cannot be read unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The same identity header was sent more than once.
    #[error("identity header `{header}` appears more than once")]
    Repeated {
        /// The header.
        header: &'static str,
    },
    /// A value that is not valid percent-encoded UTF-8.
    #[error("identity header `{header}` is not valid percent-encoded UTF-8")]
    Undecodable {
        /// The header.
        header: &'static str,
    },
}

impl Caller {
    /// Read the caller from request headers. A missing or empty header leaves its field
    /// unset; a repeated or undecodable one is an error (never a guess).
    pub fn from_headers(headers: &HeaderMap) -> Result<Caller, IdentityError> {
        let roles = single(headers, ROLES_HEADER)?
            .map(|value| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|role| !role.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Caller {
            user: single(headers, USER_HEADER)?,
            roles,
            patient: single(headers, PATIENT_HEADER)?,
            department: single(headers, DEPARTMENT_HEADER)?,
        })
    }

    /// Whether any identity was given at all.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
            && self.roles.is_empty()
            && self.patient.is_none()
            && self.department.is_none()
    }
}

fn single(headers: &HeaderMap, header: &'static str) -> Result<Option<String>, IdentityError> {
    let mut values = headers.get_all(header).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(IdentityError::Repeated { header });
    }
    let decoded = percent_decode(value.as_bytes()).ok_or(IdentityError::Undecodable { header })?;
    let decoded = decoded.trim();
    Ok((!decoded.is_empty()).then(|| decoded.to_owned()))
}

/// Undo the proxy's header encoding: `%XX` → the byte, then UTF-8.
fn percent_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hi = (*bytes.next()? as char).to_digit(16)?;
            let lo = (*bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_every_field() {
        let caller = Caller::from_headers(&headers(&[
            ("x-mcp-user", "nina"),
            ("x-mcp-roles", "nurse, staff,,"),
            ("x-mcp-patient", "Erin oRTEga"),
            ("x-mcp-department", "cardiology"),
        ]))
        .unwrap();
        assert_eq!(
            caller,
            Caller {
                user: Some("nina".into()),
                roles: vec!["nurse".into(), "staff".into()],
                patient: Some("Erin oRTEga".into()),
                department: Some("cardiology".into()),
            }
        );
        assert!(!caller.is_anonymous());
    }

    #[test]
    fn no_headers_is_anonymous() {
        let caller = Caller::from_headers(&HeaderMap::new()).unwrap();
        assert!(caller.is_anonymous());
        let caller = Caller::from_headers(&headers(&[("x-mcp-patient", "  ")])).unwrap();
        assert!(caller.is_anonymous());
    }

    #[test]
    fn decodes_what_the_proxy_encodes() {
        let encoded = crate::exchange::forward::header_value("José 100% O'Neil");
        let caller =
            Caller::from_headers(&headers(&[("x-mcp-patient", encoded.to_str().unwrap())]))
                .unwrap();
        assert_eq!(caller.patient.as_deref(), Some("José 100% O'Neil"));
    }

    #[test]
    fn repeated_headers_are_refused() {
        let err = Caller::from_headers(&headers(&[
            ("x-mcp-patient", "Erin oRTEga"),
            ("x-mcp-patient", "Hiro Tanaka"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            IdentityError::Repeated {
                header: PATIENT_HEADER
            }
        );
    }

    #[test]
    fn bad_encoding_is_refused() {
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert!(
                Caller::from_headers(&headers(&[("x-mcp-user", bad)])).is_err(),
                "{bad}"
            );
        }
    }
}
