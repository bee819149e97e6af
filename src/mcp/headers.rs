//! `Mcp-Method` / `Mcp-Name` mirror check (contract stub).

use super::ParsedBody;

/// The headers disagree with the body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct HeaderMismatch {
    /// What disagrees.
    pub reason: String,
}

/// Check that mirrored headers, when present, agree with the body.
pub fn check_mirrored_headers(
    _headers: &http::HeaderMap,
    _body: &ParsedBody,
) -> Result<(), HeaderMismatch> {
    todo!()
}
