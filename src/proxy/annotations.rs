//! What the proxy has learned of the upstream's tools: the `annotations` each tool
//! declared in the server's own `tools/list` result.
//!
//! Policies read annotations (`resource.annotations.readOnlyHint`), but a `tools/call`
//! does not carry them, so the proxy remembers them from every `tools/list` it filters.
//! A tool the proxy has not seen listed yet has no annotations: policies that need them
//! then do not match, which for a permit means deny. Annotations are the server's hints,
//! not facts; the policy is still the gate.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value};

/// Tool name → declared annotations.
#[derive(Default)]
pub struct AnnotationCache {
    tools: RwLock<HashMap<String, Arc<Map<String, Value>>>>,
}

/// Most tools remembered; beyond this, new names are not added (a hostile upstream
/// cannot grow the proxy's memory without bound).
const MAX_TOOLS: usize = 65_536;

impl AnnotationCache {
    /// Remember a tool's annotations (replacing what was known).
    pub fn record(&self, name: &str, annotations: Option<&Map<String, Value>>) {
        let value = Arc::new(annotations.cloned().unwrap_or_default());
        let mut tools = self.tools.write();
        if tools.get(name).is_some_and(|known| *known == value) {
            return;
        }
        if tools.len() >= MAX_TOOLS && !tools.contains_key(name) {
            return;
        }
        tools.insert(name.to_owned(), value);
    }

    /// The annotations a tool declared, if it has been listed.
    pub fn get(&self, name: &str) -> Option<Arc<Map<String, Value>>> {
        self.tools.read().get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_replaces() {
        let c = AnnotationCache::default();
        assert!(c.get("t").is_none());
        let a = serde_json::json!({"readOnlyHint": true});
        c.record("t", a.as_object());
        assert_eq!(
            c.get("t").unwrap().get("readOnlyHint"),
            Some(&Value::Bool(true))
        );
        c.record("t", None);
        assert!(c.get("t").unwrap().is_empty());
    }
}
