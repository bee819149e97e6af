//! The pin file: the approved definitions, as pretty JSON with sorted keys so that it
//! reviews well in Git.
//!
//! ```json
//! {
//!   "version": 1,
//!   "tools": {
//!     "echo": {
//!       "digest": "sha256:…",
//!       "approved_at": "2026-12-02T01:53:16Z",
//!       "definition": { "name": "echo", "description": "…", "inputSchema": { … } }
//!     }
//!   },
//!   "prompts": {},
//!   "resource_templates": {}
//! }
//! ```
//!
//! JSON rather than TOML because schemas may hold `null` (a `default`, an `enum`
//! member), which TOML cannot write. Each entry keeps the whole definition, so
//! `mcp-warden pin diff` can say what changed field by field, and the proxy can check
//! arguments against the approved schema. Loading checks every entry: its digest must be
//! the digest of its definition and its key the definition's name, so a hand edit that
//! forgets one of them is refused rather than half-applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::definition::{digest, Definition, DefinitionKind};

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

/// The pin file is unreadable or inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum PinFileError {
    /// It cannot be read or written.
    #[error("pin file `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not the expected JSON.
    #[error("pin file `{path}`:{line}:{column}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Why.
        reason: String,
    },
    /// An entry is inconsistent.
    #[error("pin file `{path}`: {kind} `{name}`: {reason}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// `tool`, `prompt`, `resource_template`.
        kind: &'static str,
        /// The entry's key.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A version this build does not know.
    #[error(
        "pin file `{path}`: version {found} is not supported (this build reads version {VERSION})"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

/// One approved definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    /// `sha256:<hex>` of `definition` as canonical JSON.
    pub digest: String,
    /// When it was approved (RFC 3339, UTC).
    pub approved_at: String,
    /// The covered fields, as the server declared them.
    pub definition: Map<String, Value>,
}

impl PinEntry {
    /// An entry approving `definition` now.
    pub fn approve(definition: &Definition, now: std::time::SystemTime) -> Self {
        PinEntry {
            digest: definition.digest.clone(),
            approved_at: humantime::format_rfc3339_seconds(now).to_string(),
            definition: definition.fields.clone(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFile {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Approved tools, by name.
    #[serde(default)]
    pub tools: BTreeMap<String, PinEntry>,
    /// Approved prompts, by name.
    #[serde(default)]
    pub prompts: BTreeMap<String, PinEntry>,
    /// Approved resource templates, by `uriTemplate`.
    #[serde(default)]
    pub resource_templates: BTreeMap<String, PinEntry>,
}

impl PinFile {
    /// An empty file of the current version.
    pub fn new() -> Self {
        PinFile {
            version: VERSION,
            ..PinFile::default()
        }
    }

    /// The entries of one kind.
    pub fn entries(&self, kind: DefinitionKind) -> &BTreeMap<String, PinEntry> {
        match kind {
            DefinitionKind::Tool => &self.tools,
            DefinitionKind::Prompt => &self.prompts,
            DefinitionKind::ResourceTemplate => &self.resource_templates,
        }
    }

    /// The entries of one kind, to change.
    pub fn entries_mut(&mut self, kind: DefinitionKind) -> &mut BTreeMap<String, PinEntry> {
        match kind {
            DefinitionKind::Tool => &mut self.tools,
            DefinitionKind::Prompt => &mut self.prompts,
            DefinitionKind::ResourceTemplate => &mut self.resource_templates,
        }
    }

    /// Read and check a pin file.
    pub fn load(path: &Path) -> Result<Self, PinFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PinFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check pin file text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PinFileError> {
        let file: PinFile = crate::mcp::parse_strict(text.as_bytes(), 256)
            .map_err(|e| PinFileError::Parse {
                path: path.to_owned(),
                line: 0,
                column: 0,
                reason: e.to_string(),
            })
            .and_then(|_| {
                serde_json::from_str(text).map_err(|e| PinFileError::Parse {
                    path: path.to_owned(),
                    line: e.line(),
                    column: e.column(),
                    reason: e.to_string(),
                })
            })?;
        if file.version != VERSION {
            return Err(PinFileError::Version {
                path: path.to_owned(),
                found: file.version,
            });
        }
        for kind in [
            DefinitionKind::Tool,
            DefinitionKind::Prompt,
            DefinitionKind::ResourceTemplate,
        ] {
            for (name, entry) in file.entries(kind) {
                let bad = |reason: String| PinFileError::Entry {
                    path: path.to_owned(),
                    kind: kind.label(),
                    name: name.clone(),
                    reason,
                };
                let declared = entry
                    .definition
                    .get(kind.name_field())
                    .and_then(Value::as_str);
                if declared != Some(name.as_str()) {
                    return Err(bad(format!(
                        "`definition.{}` must be `{name}`",
                        kind.name_field()
                    )));
                }
                if let Some(field) = entry
                    .definition
                    .keys()
                    .find(|k| !kind.fields().contains(&k.as_str()))
                {
                    return Err(bad(format!("`definition.{field}` is not a pinned field")));
                }
                let actual = digest(&entry.definition);
                if actual != entry.digest {
                    return Err(bad(format!(
                        "digest `{}` does not match the definition (its digest is `{actual}`)\nhelp: re-approve with `mcp-warden pin`, do not edit definitions by hand",
                        entry.digest
                    )));
                }
                if humantime::parse_rfc3339_weak(&entry.approved_at).is_err() {
                    return Err(bad(format!(
                        "`approved_at` `{}` is not an RFC 3339 time",
                        entry.approved_at
                    )));
                }
            }
        }
        Ok(file)
    }

    /// The file's text: pretty JSON, keys sorted, a final newline.
    pub fn to_text(&self) -> String {
        // serde_json's `Map` keeps keys sorted (no `preserve_order`), BTreeMaps too; the
        // canonical re-encoding makes sure of it either way.
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Write the file (to a temporary file next to it, then renamed, so a watcher never
    /// reads half a file).
    pub fn save(&self, path: &Path) -> Result<(), PinFileError> {
        let io = |source| PinFileError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_text()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// `value` with every object's keys in sorted order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo() -> Definition {
        Definition::from_item(
            DefinitionKind::Tool,
            json!({"name": "echo", "description": "Echo.", "inputSchema": {"type": "object", "default": null}})
                .as_object()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_and_checks() {
        let mut file = PinFile::new();
        file.tools.insert(
            "echo".into(),
            PinEntry::approve(&echo(), std::time::UNIX_EPOCH),
        );
        let text = file.to_text();
        assert!(text.contains("\"approved_at\": \"1970-01-01T00:00:00Z\""));
        let back = PinFile::parse(&text, Path::new("pins.json")).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn hand_edits_that_break_an_entry_are_refused() {
        let mut file = PinFile::new();
        file.tools.insert(
            "echo".into(),
            PinEntry::approve(&echo(), std::time::UNIX_EPOCH),
        );
        let text = file.to_text();
        let cases = [
            (text.replace("Echo.", "Echo!"), "does not match"),
            (
                text.replace("\"name\": \"echo\"", "\"name\": \"other\""),
                "must be `echo`",
            ),
            (
                text.replace("\"version\": 1", "\"version\": 2"),
                "version 2",
            ),
            (
                text.replace("1970-01-01T00:00:00Z", "yesterday"),
                "RFC 3339",
            ),
            (text.replace("\"tools\"", "\"tool\""), "unknown field"),
            (
                text.replace("\"digest\"", "\"digest\": \"x\", \"digest\""),
                "duplicate",
            ),
        ];
        for (bad, want) in cases {
            let e = PinFile::parse(&bad, Path::new("pins.json"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains("pins.json"), "{e}");
        }
    }
}
