//! JSON-RPC error codes the proxy emits and the error objects it writes.
//!
//! -32700, -32600, -32602 and -32603 are JSON-RPC's predefined codes; the others lie in
//! -32000..=-32099, which JSON-RPC leaves to implementations for server errors.

use serde_json::Value;

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid JSON-RPC message (also: duplicate keys, too deep, too large, encoded).
pub const INVALID_REQUEST: i64 = -32600;
/// Invalid method parameters: `tools/call` arguments that do not match the tool's
/// `inputSchema`, or a tool the upstream never listed.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error in the proxy.
pub const INTERNAL_ERROR: i64 = -32603;
/// Authentication required or failed.
pub const UNAUTHENTICATED: i64 = -32001;
/// Denied by policy.
pub const FORBIDDEN: i64 = -32003;
/// Not forwarded because another message of the same batch was denied.
pub const BATCH_REFUSED: i64 = -32004;
/// The upstream answered something the proxy could not filter; withheld.
pub const UPSTREAM_UNFILTERABLE: i64 = -32005;
/// The proxy is at a limit (too many connections); try again later.
pub const OVERLOADED: i64 = -32006;
/// `Mcp-Method` / `Mcp-Name` headers disagree with the body (MCP 2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;
/// A `[[rate_limits]]` rule refused the request (HTTP 429 with `Retry-After`).
pub const RATE_LIMITED: i64 = -32029;
/// The shared state (Redis) a decision needs could not be read in time (HTTP 503).
pub const STATE_UNAVAILABLE: i64 = -32030;

/// A JSON-RPC 2.0 error response object.
pub fn error_response(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": error,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_response_shape() {
        assert_eq!(
            error_response(Some(&json!(4)), FORBIDDEN, "tool not permitted", None),
            json!({"jsonrpc": "2.0", "id": 4,
                "error": {"code": -32003, "message": "tool not permitted"}})
        );
        assert_eq!(
            error_response(None, PARSE_ERROR, "parse error", Some(json!({"at": 3}))),
            json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": "parse error", "data": {"at": 3}}})
        );
    }
}
