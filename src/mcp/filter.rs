//! Filtering list results per caller (contract stub).

use serde_json::{Map, Value};

use super::ListKind;

/// The upstream's answer has a shape the proxy cannot filter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unfilterable list result: {reason}")]
pub struct FilterError {
    /// What is wrong.
    pub reason: String,
}

/// Filter one JSON-RPC response message to a list request in place. `keep` is called
/// with each item's name and annotations. Returns how many items were removed.
pub fn filter_list_response(
    _message: &mut Value,
    _kind: ListKind,
    _keep: &mut dyn FnMut(&str, Option<&Map<String, Value>>) -> bool,
) -> Result<usize, FilterError> {
    todo!()
}
