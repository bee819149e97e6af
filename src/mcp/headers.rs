//! The `Mcp-Method` / `Mcp-Name` mirror check (MCP 2026-07-28, SEP-2243).
//!
//! Clients of that revision repeat the body's `method` in `Mcp-Method` and the target's
//! name in `Mcp-Name`, so that intermediaries can route without parsing the body. The
//! proxy authorizes the body, while an upstream (or a load balancer behind us) may act
//! on the headers: if the two disagree, a request authorized for one tool could be
//! routed as another. So a header that is present must agree with the body exactly.
//!
//! Absent headers are accepted: older revisions never send them, and whether the
//! upstream requires them is the upstream's business. Anything ambiguous is a mismatch:
//! a repeated header, a value that is not visible ASCII, invalid Base64, an `Mcp-Name`
//! for a method that has no name or a body that lacks it, and either header on a batch
//! (one header cannot mirror several messages).
//!
//! `Mcp-Param-*` headers (tool arguments promoted to headers per the tool's input
//! schema) are not checked here: that needs the tool's schema.

use base64::Engine as _;

use super::action::mcp_name_key;
use super::ParsedBody;

/// Header mirroring the body's `method`.
pub const MCP_METHOD_HEADER: &str = "mcp-method";
/// Header mirroring the body's target name (see [`Classified::mcp_name`]).
///
/// [`Classified::mcp_name`]: super::Classified::mcp_name
pub const MCP_NAME_HEADER: &str = "mcp-name";
/// Start of a Base64-wrapped header value: `=?base64?<standard base64>?=`.
pub const BASE64_HEADER_PREFIX: &str = "=?base64?";
/// End of a Base64-wrapped header value.
pub const BASE64_HEADER_SUFFIX: &str = "?=";

/// The headers disagree with the body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct HeaderMismatch {
    /// What disagrees.
    pub reason: String,
}

fn mismatch(reason: impl Into<String>) -> HeaderMismatch {
    HeaderMismatch {
        reason: reason.into(),
    }
}

/// Check that mirrored headers, when present, agree with the body.
pub fn check_mirrored_headers(
    headers: &http::HeaderMap,
    body: &ParsedBody,
) -> Result<(), HeaderMismatch> {
    let method_header = single_value(headers, MCP_METHOD_HEADER)?;
    let name_header = single_value(headers, MCP_NAME_HEADER)?;
    if method_header.is_none() && name_header.is_none() {
        return Ok(());
    }
    let message = match body.messages.as_slice() {
        [message] if !body.batch => message,
        _ => return Err(mismatch("`Mcp-Method`/`Mcp-Name` headers on a batch body")),
    };
    let Some(method) = message.method.as_deref() else {
        return Err(mismatch(
            "`Mcp-Method`/`Mcp-Name` headers on a response message",
        ));
    };
    if let Some(header) = method_header {
        if header != method {
            return Err(mismatch(format!(
                "`Mcp-Method` header `{header}` does not match body method `{method}`"
            )));
        }
    }
    if let Some(raw) = name_header {
        let Some(key) = mcp_name_key(method) else {
            return Err(mismatch(format!(
                "`Mcp-Name` header on `{method}`, which names nothing"
            )));
        };
        let Some(expected) = message.mcp_name.as_deref() else {
            return Err(mismatch(format!(
                "`Mcp-Name` header but the body has no string `params.{key}`"
            )));
        };
        let decoded = decode_header_value(raw)?;
        if decoded != expected {
            return Err(mismatch(format!(
                "`Mcp-Name` header `{decoded}` does not match body `params.{key}` `{expected}`"
            )));
        }
    }
    Ok(())
}

/// The only value of header `name`, if any. Repeated or non-visible-ASCII values are
/// mismatches: another hop may resolve them differently than we would.
fn single_value<'h>(
    headers: &'h http::HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, HeaderMismatch> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(mismatch(format!("repeated `{name}` header")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| mismatch(format!("`{name}` header is not visible ASCII")))
}

/// Undo the `=?base64?…?=` wrapping, if present. Base64 must be standard and
/// canonically padded, and decode to UTF-8.
fn decode_header_value(raw: &str) -> Result<String, HeaderMismatch> {
    let Some(inner) = raw
        .strip_prefix(BASE64_HEADER_PREFIX)
        .and_then(|rest| rest.strip_suffix(BASE64_HEADER_SUFFIX))
    else {
        return Ok(raw.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|_| mismatch(format!("`Mcp-Name` header `{raw}` is not valid Base64")))?;
    String::from_utf8(bytes).map_err(|_| {
        mismatch(format!(
            "`Mcp-Name` header `{raw}` does not decode to UTF-8"
        ))
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::mcp::parse_request_body;

    fn body(json: &str) -> ParsedBody {
        parse_request_body(json.as_bytes(), 32).expect("test body parses")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    fn b64(value: &str) -> String {
        format!(
            "{BASE64_HEADER_PREFIX}{}{BASE64_HEADER_SUFFIX}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#;

    #[test]
    fn absent_headers_are_fine() {
        assert_eq!(
            check_mirrored_headers(&HeaderMap::new(), &body(CALL)),
            Ok(())
        );
        let batch = format!("[{CALL}]");
        assert_eq!(
            check_mirrored_headers(&HeaderMap::new(), &body(&batch)),
            Ok(())
        );
    }

    #[test]
    fn matching_headers_pass() {
        let h = headers(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "deploy")]);
        assert_eq!(check_mirrored_headers(&h, &body(CALL)), Ok(()));
        let h = headers(&[("MCP-METHOD", "tools/call")]);
        assert_eq!(check_mirrored_headers(&h, &body(CALL)), Ok(()));
        let h = headers(&[("mcp-name", "deploy")]);
        assert_eq!(check_mirrored_headers(&h, &body(CALL)), Ok(()));
    }

    #[test]
    fn method_mismatch() {
        let h = headers(&[("Mcp-Method", "tools/list")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
        let h = headers(&[("Mcp-Method", "Tools/Call")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
    }

    #[test]
    fn name_mismatch() {
        let h = headers(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "other")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
        let h = headers(&[("Mcp-Name", "Deploy")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
    }

    #[test]
    fn repeated_headers_mismatch() {
        let h = headers(&[("Mcp-Method", "tools/call"), ("Mcp-Method", "tools/call")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
        let h = headers(&[("Mcp-Name", "deploy"), ("Mcp-Name", "deploy")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
    }

    #[test]
    fn non_ascii_header_value_mismatches() {
        let mut h = HeaderMap::new();
        h.insert(
            MCP_NAME_HEADER,
            HeaderValue::from_bytes("d\u{e9}ploy".as_bytes()).expect("obs-text value"),
        );
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"déploy"}}"#;
        assert!(check_mirrored_headers(&h, &body(call)).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            MCP_METHOD_HEADER,
            HeaderValue::from_bytes(b"tools/call\xff").expect("obs-text value"),
        );
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
    }

    #[test]
    fn base64_name_is_decoded() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":" déploy "}}"#;
        let h = headers(&[("Mcp-Name", &b64(" déploy "))]);
        assert_eq!(check_mirrored_headers(&h, &body(call)), Ok(()));
        let h = headers(&[("Mcp-Name", &b64("deploy"))]);
        assert_eq!(check_mirrored_headers(&h, &body(CALL)), Ok(()));
        let h = headers(&[("Mcp-Name", &b64("other"))]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
    }

    #[test]
    fn invalid_base64_mismatches() {
        for bad in [
            "=?base64?not base64!?=",
            "=?base64?ZGVwbG95?=x",
            "=?base64?ZGVwbG9?=",
        ] {
            let h = headers(&[("Mcp-Name", bad)]);
            assert!(check_mirrored_headers(&h, &body(CALL)).is_err(), "{bad}");
        }
        // Valid Base64 of bytes that are not UTF-8.
        let h = headers(&[("Mcp-Name", "=?base64?/w==?=")]);
        assert!(check_mirrored_headers(&h, &body(CALL)).is_err());
        // Padding must be canonical: `deplo` is `ZGVwbG8=`.
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deplo"}}"#;
        let h = headers(&[("Mcp-Name", "=?base64?ZGVwbG8=?=")]);
        assert_eq!(check_mirrored_headers(&h, &body(call)), Ok(()));
        for bad in [
            "=?base64?ZGVwbG8?=",
            "=?base64?ZGVwbG8==?=",
            "=?base64?ZGVwbG9=?=",
        ] {
            let h = headers(&[("Mcp-Name", bad)]);
            assert!(check_mirrored_headers(&h, &body(call)).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_sources_per_method() {
        let cases = [
            (
                r#"{"method":"prompts/get","params":{"name":"p"}}"#,
                "prompts/get",
                "p",
            ),
            (
                r#"{"method":"resources/read","params":{"uri":"file:///a"}}"#,
                "resources/read",
                "file:///a",
            ),
            (
                r#"{"method":"resources/subscribe","params":{"uri":"u"}}"#,
                "resources/subscribe",
                "u",
            ),
            (
                r#"{"method":"resources/unsubscribe","params":{"uri":"u"}}"#,
                "resources/unsubscribe",
                "u",
            ),
            (
                r#"{"method":"tasks/get","params":{"taskId":"t1"}}"#,
                "tasks/get",
                "t1",
            ),
            (
                r#"{"method":"tasks/update","params":{"taskId":"t1"}}"#,
                "tasks/update",
                "t1",
            ),
            (
                r#"{"method":"tasks/cancel","params":{"taskId":"t1"}}"#,
                "tasks/cancel",
                "t1",
            ),
        ];
        for (message, method, name) in cases {
            let json = message.replacen('{', r#"{"jsonrpc":"2.0","id":7,"#, 1);
            let parsed = body(&json);
            let h = headers(&[("Mcp-Method", method), ("Mcp-Name", name)]);
            assert_eq!(check_mirrored_headers(&h, &parsed), Ok(()), "{json}");
            let h = headers(&[("Mcp-Method", method), ("Mcp-Name", "wrong")]);
            assert!(check_mirrored_headers(&h, &parsed).is_err(), "{json}");
        }
    }

    #[test]
    fn name_on_a_method_without_name_mismatches() {
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}}"#;
        let h = headers(&[("Mcp-Method", "tools/list")]);
        assert_eq!(check_mirrored_headers(&h, &body(list)), Ok(()));
        let h = headers(&[("Mcp-Name", "x")]);
        assert!(check_mirrored_headers(&h, &body(list)).is_err());
        // tasks/result and tasks/list carry no name either.
        let result = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/result","params":{"taskId":"t"}}"#;
        let h = headers(&[("Mcp-Name", "t")]);
        assert!(check_mirrored_headers(&h, &body(result)).is_err());
    }

    #[test]
    fn name_without_body_field_mismatches() {
        let get = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{}}"#;
        let h = headers(&[("Mcp-Name", "t1")]);
        assert!(check_mirrored_headers(&h, &body(get)).is_err());
        let get = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":5}}"#;
        let h = headers(&[("Mcp-Name", "5")]);
        assert!(check_mirrored_headers(&h, &body(get)).is_err());
        let get = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get"}"#;
        let h = headers(&[("Mcp-Name", "")]);
        assert!(check_mirrored_headers(&h, &body(get)).is_err());
    }

    #[test]
    fn batch_with_headers_mismatches() {
        let batch = format!("[{CALL}]");
        let h = headers(&[("Mcp-Method", "tools/call")]);
        assert!(check_mirrored_headers(&h, &body(&batch)).is_err());
        let h = headers(&[("Mcp-Name", "deploy")]);
        assert!(check_mirrored_headers(&h, &body(&batch)).is_err());
    }

    #[test]
    fn headers_on_a_response_mismatch() {
        let response = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let h = headers(&[("Mcp-Method", "tools/call")]);
        assert!(check_mirrored_headers(&h, &body(response)).is_err());
    }

    #[test]
    fn notifications_mirror_the_method() {
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let h = headers(&[("Mcp-Method", "notifications/initialized")]);
        assert_eq!(check_mirrored_headers(&h, &body(note)), Ok(()));
        let h = headers(&[
            ("Mcp-Method", "notifications/initialized"),
            ("Mcp-Name", "x"),
        ]);
        assert!(check_mirrored_headers(&h, &body(note)).is_err());
    }

    #[test]
    fn escaped_body_name_compares_unescaped() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/c\u0061ll","params":{"name":"d\u0065ploy"}}"#;
        let h = headers(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "deploy")]);
        assert_eq!(check_mirrored_headers(&h, &body(call)), Ok(()));
    }
}
