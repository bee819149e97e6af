//! What a pin covers: the fields of a tool, prompt or resource template that a model
//! reads or that shape its calls, and their canonical digest.
//!
//! The digest is `sha256:<hex>` over canonical JSON (keys sorted by their UTF-8 bytes,
//! no whitespace, `serde_json`'s spelling of strings and numbers; the same form as the
//! audit log's `arguments_digest`), so key order and spacing in the server's answer do
//! not matter, and any change to a covered field does. A field set to `null` counts as
//! absent. Fields outside the list (`_meta`, `icons`, fields of later revisions) are not
//! covered: they do not reach the model's instructions.

use serde_json::{Map, Value};

use crate::mcp::ListKind;

/// What kind of definition a pin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefinitionKind {
    /// An item of `tools/list`, named by `name`.
    Tool,
    /// An item of `prompts/list`, named by `name`.
    Prompt,
    /// An item of `resources/templates/list`, named by `uriTemplate`.
    ResourceTemplate,
}

/// The fields a tool definition pin covers.
pub const TOOL_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];
/// The fields a prompt definition pin covers.
pub const PROMPT_FIELDS: [&str; 4] = ["name", "title", "description", "arguments"];
/// The fields a resource template pin covers.
pub const TEMPLATE_FIELDS: [&str; 6] = [
    "uriTemplate",
    "name",
    "title",
    "description",
    "mimeType",
    "annotations",
];

impl DefinitionKind {
    /// The kind of items a list method returns, if pinned (plain resources are not:
    /// they are data, not instructions).
    pub fn of_list(kind: ListKind) -> Option<Self> {
        match kind {
            ListKind::Tools => Some(DefinitionKind::Tool),
            ListKind::Prompts => Some(DefinitionKind::Prompt),
            ListKind::ResourceTemplates => Some(DefinitionKind::ResourceTemplate),
            ListKind::Resources => None,
        }
    }

    /// The covered fields.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            DefinitionKind::Tool => &TOOL_FIELDS,
            DefinitionKind::Prompt => &PROMPT_FIELDS,
            DefinitionKind::ResourceTemplate => &TEMPLATE_FIELDS,
        }
    }

    /// The field holding the item's name.
    pub fn name_field(self) -> &'static str {
        match self {
            DefinitionKind::Tool | DefinitionKind::Prompt => "name",
            DefinitionKind::ResourceTemplate => "uriTemplate",
        }
    }

    /// `tool`, `prompt`, `resource_template` (audit lines, metrics labels).
    pub fn label(self) -> &'static str {
        match self {
            DefinitionKind::Tool => "tool",
            DefinitionKind::Prompt => "prompt",
            DefinitionKind::ResourceTemplate => "resource_template",
        }
    }
}

/// The covered fields of one list item, and their digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The item's name (`name`, or `uriTemplate` for a template).
    pub name: String,
    /// The covered fields present (and not `null`) in the item.
    pub fields: Map<String, Value>,
    /// `sha256:<hex>` of `fields` as canonical JSON.
    pub digest: String,
}

impl Definition {
    /// The definition of a list item; `None` if it has no string name.
    pub fn from_item(kind: DefinitionKind, item: &Map<String, Value>) -> Option<Self> {
        let name = item.get(kind.name_field())?.as_str()?.to_owned();
        let fields: Map<String, Value> = kind
            .fields()
            .iter()
            .filter_map(|f| match item.get(*f) {
                None | Some(Value::Null) => None,
                Some(v) => Some(((*f).to_owned(), v.clone())),
            })
            .collect();
        let digest = digest(&fields);
        Some(Definition {
            name,
            fields,
            digest,
        })
    }

    /// The tool's `inputSchema`, if it declares one.
    pub fn input_schema(&self) -> Option<&Value> {
        self.fields.get("inputSchema")
    }
}

/// `sha256:<hex>` of a definition's fields as canonical JSON.
pub fn digest(fields: &Map<String, Value>) -> String {
    crate::audit::arguments_digest(&Value::Object(fields.clone()))
}

/// The covered fields whose values differ between two definitions (added, removed or
/// changed), in the kind's field order.
pub fn changed_fields(
    kind: DefinitionKind,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Vec<&'static str> {
    kind.fields()
        .iter()
        .copied()
        .filter(|f| old.get(*f) != new.get(*f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(v: Value) -> Definition {
        Definition::from_item(DefinitionKind::Tool, v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn digest_ignores_key_order_and_uncovered_fields() {
        let a = tool(json!({"name": "echo", "description": "d",
            "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}}));
        let b = tool(
            json!({"inputSchema": {"properties": {"a": {"type": "string"}}, "type": "object"},
            "description": "d", "name": "echo", "_meta": {"x": 1}, "icons": [], "title": null}),
        );
        assert_eq!(a.digest, b.digest);
        assert!(a.digest.starts_with("sha256:"));
        assert_eq!(a.name, "echo");
    }

    #[test]
    fn every_covered_field_changes_the_digest() {
        let base = json!({"name": "t", "title": "T", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}});
        let d0 = tool(base.clone());
        for field in TOOL_FIELDS {
            let mut changed = base.clone();
            changed[field] = json!("other");
            let d1 = tool(changed);
            assert_ne!(d0.digest, d1.digest, "{field}");
            assert_eq!(
                changed_fields(DefinitionKind::Tool, &d0.fields, &d1.fields),
                vec![field]
            );
        }
    }

    #[test]
    fn templates_are_named_by_uri_template() {
        let d = Definition::from_item(
            DefinitionKind::ResourceTemplate,
            json!({"uriTemplate": "file:///{path}", "name": "files"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(d.name, "file:///{path}");
        assert!(Definition::from_item(
            DefinitionKind::Prompt,
            json!({"title": "no name"}).as_object().unwrap()
        )
        .is_none());
    }
}
