//! What the proxy has learned of the upstream's tools: the `annotations` each tool
//! declared in the server's own `tools/list` result.
//!
//! Policies read annotations (`resource.annotations.readOnlyHint`), but a `tools/call`
//! does not carry them, so the proxy remembers them from every `tools/list` it filters.
//! A tool the proxy has not seen listed yet has no annotations: policies that need them
//! then do not match, which for a permit means deny. Annotations are the server's hints,
//! not facts; the policy is still the gate.
//!
//! The operator can overrule them: `[tools."<name>"] annotations = {…}` in the
//! configuration, and `taint.sinks` (which sets `openWorldHint = true`), replace the
//! server's hints one by one. Policies only ever see the result
//! ([`AnnotationCache::effective`] for calls, [`AnnotationCache::overridden`] for the
//! listing rule), so a server cannot talk its way out of being a sink.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::policy::ItemAnnotations;

/// Declared annotations by tool name, names hashed with foldhash (seeded per process).
type Learned = HashMap<String, Arc<Map<String, Value>>, foldhash::fast::RandomState>;

/// Tool name → declared annotations, and the operator's overrides.
#[derive(Default)]
pub struct AnnotationCache {
    /// By tool name (foldhash, seeded per process: a name is looked up once per item of
    /// every list, and SipHash was a tenth of filtering one).
    tools: RwLock<Learned>,
    overrides: HashMap<String, Map<String, Value>>,
}

/// Most tools remembered; beyond this, new names are not added (a hostile upstream
/// cannot grow the proxy's memory without bound).
const MAX_TOOLS: usize = 65_536;

impl AnnotationCache {
    /// An empty cache applying `overrides` (tool name → hints that replace the server's).
    pub fn with_overrides(overrides: HashMap<String, Map<String, Value>>) -> Self {
        AnnotationCache {
            tools: RwLock::default(),
            overrides,
        }
    }

    /// Remember a tool's annotations (replacing what was known).
    pub fn record(&self, name: &str, annotations: Option<ItemAnnotations<'_>>) {
        // Every list after the first repeats what is known: a shared lock, no copy, and
        // raw annotations compared without building a map.
        let same = |known: &Map<String, Value>| match annotations {
            Some(declared) => declared.same_as(known),
            None => known.is_empty(),
        };
        if self.tools.read().get(name).is_some_and(|known| same(known)) {
            return;
        }
        let value = Arc::new(
            annotations
                .map(|a| a.to_map().into_owned())
                .unwrap_or_default(),
        );
        let mut tools = self.tools.write();
        if tools.get(name).is_some_and(|known| *known == value) {
            return;
        }
        if tools.len() >= MAX_TOOLS && !tools.contains_key(name) {
            return;
        }
        tools.insert(name.to_owned(), value);
    }

    /// The annotations a tool declared, if it has been listed (no overrides applied).
    pub fn get(&self, name: &str) -> Option<Arc<Map<String, Value>>> {
        self.tools.read().get(name).cloned()
    }

    /// What policies see for a call of `name`: the declared annotations with the
    /// operator's overrides on top; `None` if neither exists.
    pub fn effective(&self, name: &str) -> Option<Arc<Map<String, Value>>> {
        let declared = self.get(name);
        match self.overrides.get(name) {
            None => declared,
            Some(overrides) => {
                let mut merged = declared.map(|d| (*d).clone()).unwrap_or_default();
                merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(Arc::new(merged))
            }
        }
    }

    /// The operator's overrides for `name`, if any (rewritten into the listed tool, so
    /// clients see the hints the proxy enforces).
    pub fn overrides_of(&self, name: &str) -> Option<&Map<String, Value>> {
        self.overrides.get(name)
    }

    /// `declared` (from a `tools/list` item of `name`) with the operator's overrides on
    /// top, for the listing rule; `None` if `name` has no overrides (`declared` stands).
    pub fn overridden(
        &self,
        name: &str,
        declared: Option<ItemAnnotations<'_>>,
    ) -> Option<Map<String, Value>> {
        let overrides = self.overrides.get(name)?;
        let mut merged = declared
            .map(|d| d.to_map().into_owned())
            .unwrap_or_default();
        merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(merged)
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
        c.record("t", a.as_object().map(Into::into));
        assert_eq!(
            c.get("t").unwrap().get("readOnlyHint"),
            Some(&Value::Bool(true))
        );
        c.record("t", None);
        assert!(c.get("t").unwrap().is_empty());
    }

    #[test]
    fn overrides_replace_declared_hints_one_by_one() {
        let overrides = serde_json::json!({"openWorldHint": true});
        let c = AnnotationCache::with_overrides(HashMap::from([(
            "echo".to_owned(),
            overrides.as_object().unwrap().clone(),
        )]));
        // not listed yet: the overrides alone
        assert_eq!(
            Value::Object((*c.effective("echo").unwrap()).clone()),
            serde_json::json!({"openWorldHint": true})
        );
        assert!(c.effective("other").is_none());
        let declared = serde_json::json!({"readOnlyHint": true, "openWorldHint": false});
        c.record("echo", declared.as_object().map(Into::into));
        c.record("other", declared.as_object().map(Into::into));
        let want = serde_json::json!({"readOnlyHint": true, "openWorldHint": true});
        assert_eq!(Value::Object((*c.effective("echo").unwrap()).clone()), want);
        assert_eq!(
            Value::Object(
                c.overridden("echo", declared.as_object().map(Into::into))
                    .unwrap()
            ),
            want
        );
        // the declared form is still what the server said; other tools are untouched
        assert_eq!(Value::Object((*c.get("echo").unwrap()).clone()), declared);
        assert_eq!(
            Value::Object((*c.effective("other").unwrap()).clone()),
            declared
        );
        assert!(c
            .overridden("other", declared.as_object().map(Into::into))
            .is_none());
    }
}
