//! Where `learn` mode keeps what it trusted on first sight.
//!
//! One replica's memory is enough for one process. Several replicas behind one address
//! must agree, or a rug pull would pass by reaching a replica that has not seen the
//! tool yet: it would trust the changed definition on its own "first sight". So the
//! catalogue asks a [`LearnedStore`] before trusting a definition no pin holds: the
//! first definition any replica saw of a name wins, and every other replica reads it
//! back and judges what it lists against it. The shared state's Redis backend is one
//! (`crate::state`); [`LocalOnly`] keeps the process-local rule.

use super::definition::{Definition, DefinitionKind};

/// The answer of [`LearnedStore::claim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// No shared store: trust on this process's first sight.
    Local,
    /// The definition in force for that name: the one offered (it was first) or the
    /// one another replica saw first.
    Held(Definition),
    /// The store could not be asked; the definition is not trusted (fail closed).
    Unavailable(String),
}

/// A store of learned definitions shared by replicas; see the module docs.
pub trait LearnedStore: Send + Sync {
    /// Offer `definition` as the learned pin of its kind and name; the answer says which
    /// definition is in force.
    fn claim(&self, kind: DefinitionKind, definition: &Definition) -> Claim;
}

/// No shared store: each process learns on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

impl LearnedStore for LocalOnly {
    fn claim(&self, _: DefinitionKind, _: &Definition) -> Claim {
        Claim::Local
    }
}

/// How a learned definition is held in a shared store: its covered fields as JSON (the
/// digest is computed again when read, so what is read is what is judged).
pub fn encode(definition: &Definition) -> String {
    serde_json::Value::Object(definition.fields.clone()).to_string()
}

/// Read back what [`encode`] wrote for `name`; `None` when it is not a definition of
/// that name.
pub fn decode(kind: DefinitionKind, name: &str, held: &str) -> Option<Definition> {
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(held).ok()?;
    Definition::from_item(kind, &fields).filter(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_held_definition_reads_back_with_the_same_digest_and_only_under_its_name() {
        let item = json!({"name": "echo", "description": "Echo.", "_meta": {"x": 1}});
        let d = Definition::from_item(DefinitionKind::Tool, item.as_object().unwrap()).unwrap();
        let held = encode(&d);
        assert_eq!(decode(DefinitionKind::Tool, "echo", &held), Some(d));
        assert_eq!(decode(DefinitionKind::Tool, "other", &held), None);
        assert_eq!(decode(DefinitionKind::Tool, "echo", "not json"), None);
    }
}
