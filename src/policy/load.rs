//! Loading a policy directory into a validated [`PolicyBundle`], with diagnostics that
//! name `file:line:col`.
//!
//! A policy directory holds:
//! - every `*.cedar` file: the policies, read in file-name order. Each policy's id is its
//!   `@id("…")` annotation if it has one, otherwise `<file stem>/policy<N>` (N counting
//!   from 0 within the file), so an audit line points at a file;
//! - exactly one `*.cedarschema`: the schema, in Cedar's human-readable syntax;
//! - optionally `entities.json`: static entities in Cedar's JSON entity format, such as
//!   a role hierarchy (`Role::"admin"` in `Role::"staff"`). They may not be of the
//!   types the proxy builds per request (`User`, `Tool`, `Resource`, `Prompt`,
//!   `Method`).
//!
//! Names starting with `.` and anything that is not a regular file (after following
//! symlinks, as Kubernetes ConfigMap mounts need) are ignored.
//!
//! Policies are validated against the schema in strict mode, and every validation error
//! is reported, each with its position and Cedar's own message and help.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use cedar_policy::{Entities, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

/// Entity types the engine builds for every request; `entities.json` may not hold them.
pub const PER_REQUEST_TYPES: [&str; 5] = ["User", "Tool", "Resource", "Prompt", "Method"];

/// The name of the optional static entities file.
pub const ENTITIES_FILE: &str = "entities.json";

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl LineCol {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub fn of_offset(text: &str, offset: usize) -> LineCol {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        LineCol { line, column }
    }
}

/// One problem in one file: `path:line:col: message`, then an optional help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDiagnostic {
    /// The file.
    pub path: PathBuf,
    /// Where in it, when known.
    pub location: Option<LineCol>,
    /// What is wrong (Cedar's message where Cedar found it).
    pub message: String,
    /// How to fix it, when there is advice.
    pub help: Option<String>,
}

impl SourceDiagnostic {
    pub(crate) fn new(path: &Path, location: Option<LineCol>, message: impl Into<String>) -> Self {
        SourceDiagnostic {
            path: path.to_owned(),
            location,
            message: message.into(),
            help: None,
        }
    }

    /// Builds a diagnostic from a Cedar (miette) diagnostic whose spans point into
    /// `text`, the contents of `path`.
    fn from_miette(path: &Path, text: Option<&str>, d: &dyn Diagnostic) -> Self {
        let location = match (text, d.labels()) {
            (Some(text), Some(mut labels)) => {
                labels.next().map(|l| LineCol::of_offset(text, l.offset()))
            }
            _ => None,
        };
        SourceDiagnostic {
            path: path.to_owned(),
            location,
            message: d.to_string(),
            help: d.help().map(|h| h.to_string()),
        }
    }
}

impl fmt::Display for SourceDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(LineCol { line, column }) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            )?,
            None => write!(f, "{}: {}", self.path.display(), self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Renders a list of diagnostics, one per line (help lines indented under each).
struct Listing<'a>(&'a [SourceDiagnostic]);

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

fn listing(d: &[SourceDiagnostic]) -> Listing<'_> {
    Listing(d)
}

/// A policy, schema or entity file failed to load; `Display` names `file:line:col`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The policy directory does not exist or is not a directory.
    #[error("{}: policy directory not found", path.display())]
    MissingDir {
        /// The directory as configured (resolved against the config file's directory).
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The directory holds no `*.cedar` file.
    #[error("{}: no `*.cedar` policy files\n  help: without policies every call is denied; add at least one `.cedar` file", dir.display())]
    NoPolicies {
        /// The policy directory.
        dir: PathBuf,
    },
    /// The directory holds no `*.cedarschema` file.
    #[error("{}: no `*.cedarschema` schema file\n  help: policies are validated against a schema; start from `policies/example/mcp.cedarschema`", dir.display())]
    NoSchema {
        /// The policy directory.
        dir: PathBuf,
    },
    /// The directory holds more than one `*.cedarschema` file.
    #[error("{}: more than one `*.cedarschema` file ({})\n  help: keep exactly one schema file per policy directory", dir.display(), files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))]
    MultipleSchemas {
        /// The policy directory.
        dir: PathBuf,
        /// The schema files found.
        files: Vec<PathBuf>,
    },
    /// The schema does not parse or is inconsistent.
    #[error("{}", listing(diagnostics))]
    Schema {
        /// Every problem found.
        diagnostics: Vec<SourceDiagnostic>,
    },
    /// A policy file does not parse, holds a template, or reuses an id.
    #[error("{}", listing(diagnostics))]
    Parse {
        /// Every problem found.
        diagnostics: Vec<SourceDiagnostic>,
    },
    /// Policies do not validate against the schema (strict mode).
    #[error("{}", listing(diagnostics))]
    Validation {
        /// Every validation error, in file and position order.
        diagnostics: Vec<SourceDiagnostic>,
    },
    /// `entities.json` is malformed or does not conform to the schema.
    #[error("{}", listing(diagnostics))]
    Entities {
        /// The problems found.
        diagnostics: Vec<SourceDiagnostic>,
    },
    /// The engine could not be built from a valid bundle (a bug; never expected).
    #[error("internal error building the policy engine: {message}")]
    Engine {
        /// What went wrong.
        message: String,
    },
    /// A Biscuit policy directory holds no `*.datalog` file.
    #[error("{}: no `*.datalog` authorizer files\n  help: with `engine = \"biscuit\"` the directory holds the authorizer's Datalog; start from `policies/biscuit-example/authorizer.datalog`", dir.display())]
    NoDatalog {
        /// The policy directory.
        dir: PathBuf,
    },
    /// A setting of the `[policy]` section is unusable.
    #[error("`{setting}`: {reason}")]
    Setting {
        /// Dotted path of the setting, e.g. `policy.biscuit.external_keys.partner`.
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The store was built from a fixed engine and has no directory to reload from.
    #[error("policy store has no policy directory to reload from")]
    NotReloadable,
}

/// A file's path and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it came from (used in diagnostics).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl SourceFile {
    fn read(path: PathBuf) -> Result<Self, PolicyLoadError> {
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(SourceFile { path, text }),
            Err(source) => Err(PolicyLoadError::Io { path, source }),
        }
    }
}

/// A compiled, validated policy set with its schema and static entities.
#[derive(Debug, Clone)]
pub struct PolicyBundle {
    /// All policies, with operator-meaningful ids.
    pub policies: PolicySet,
    /// The schema they were validated against.
    pub schema: Schema,
    /// Static entities (`entities.json`) plus the schema's action entities.
    pub entities: Entities,
    /// Non-fatal findings (validator and schema warnings).
    pub warnings: Vec<SourceDiagnostic>,
    /// The files it was built from.
    pub files: Vec<PathBuf>,
}

/// Reads, parses and validates the policy directory `dir`.
pub fn load_dir(dir: &Path) -> Result<PolicyBundle, PolicyLoadError> {
    if !dir.is_dir() {
        return Err(PolicyLoadError::MissingDir {
            path: dir.to_owned(),
        });
    }
    let read_err = |source| PolicyLoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `metadata` follows symlinks: ConfigMap files are symlinks into `..data/`.
        if name.starts_with('.') || !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        names.push((name, path));
    }
    names.sort();

    let mut policies = Vec::new();
    let mut schemas = Vec::new();
    let mut entities = None;
    for (name, path) in names {
        if name.ends_with(".cedarschema") {
            schemas.push(path);
        } else if name.ends_with(".cedar") {
            policies.push(SourceFile::read(path)?);
        } else if name == ENTITIES_FILE {
            entities = Some(SourceFile::read(path)?);
        }
    }
    if policies.is_empty() {
        return Err(PolicyLoadError::NoPolicies {
            dir: dir.to_owned(),
        });
    }
    let schema = match schemas.len() {
        0 => {
            return Err(PolicyLoadError::NoSchema {
                dir: dir.to_owned(),
            })
        }
        1 => SourceFile::read(schemas.remove(0))?,
        _ => {
            return Err(PolicyLoadError::MultipleSchemas {
                dir: dir.to_owned(),
                files: schemas,
            })
        }
    };
    compile(&policies, &schema, entities.as_ref())
}

/// Compiles in-memory sources (what [`load_dir`] reads) into a [`PolicyBundle`].
pub fn compile(
    policy_files: &[SourceFile],
    schema_file: &SourceFile,
    entities_file: Option<&SourceFile>,
) -> Result<PolicyBundle, PolicyLoadError> {
    let mut warnings = Vec::new();
    let schema = parse_schema(schema_file, &mut warnings)?;
    let (policies, origin) = parse_policies(policy_files)?;
    validate(&policies, &schema, policy_files, &origin, &mut warnings)?;
    let entities = parse_entities(entities_file, &schema)?;
    let mut files: Vec<PathBuf> = policy_files.iter().map(|f| f.path.clone()).collect();
    files.push(schema_file.path.clone());
    files.extend(entities_file.map(|f| f.path.clone()));
    Ok(PolicyBundle {
        policies,
        schema,
        entities,
        warnings,
        files,
    })
}

fn parse_schema(
    file: &SourceFile,
    warnings: &mut Vec<SourceDiagnostic>,
) -> Result<Schema, PolicyLoadError> {
    match Schema::from_cedarschema_str(&file.text) {
        Ok((schema, schema_warnings)) => {
            warnings.extend(
                schema_warnings
                    .map(|w| SourceDiagnostic::from_miette(&file.path, Some(&file.text), &w)),
            );
            Ok(schema)
        }
        Err(e) => {
            let mut diagnostics = vec![SourceDiagnostic::from_miette(
                &file.path,
                Some(&file.text),
                &e,
            )];
            if let Some(related) = e.related() {
                diagnostics.extend(
                    related.map(|r| SourceDiagnostic::from_miette(&file.path, Some(&file.text), r)),
                );
            }
            Err(PolicyLoadError::Schema { diagnostics })
        }
    }
}

/// Parses every policy file and gives each policy its operator-facing id. Returns the
/// set and, for each id, the index of the file it came from.
fn parse_policies(
    files: &[SourceFile],
) -> Result<(PolicySet, HashMap<PolicyId, usize>), PolicyLoadError> {
    let mut diagnostics = Vec::new();
    let mut set = PolicySet::new();
    let mut origin: HashMap<PolicyId, usize> = HashMap::new();
    for (index, file) in files.iter().enumerate() {
        let parsed: PolicySet = match file.text.parse() {
            Ok(p) => p,
            Err(e) => {
                let errs: cedar_policy::ParseErrors = e;
                diagnostics.extend(
                    errs.iter()
                        .map(|pe| SourceDiagnostic::from_miette(&file.path, Some(&file.text), pe)),
                );
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            diagnostics.push(SourceDiagnostic {
                help: Some("write static policies; template links are not configurable".into()),
                ..SourceDiagnostic::new(
                    &file.path,
                    None,
                    "policy templates (`?principal`, `?resource`) are not supported",
                )
            });
            continue;
        }
        // Cedar names the policies of one parse `policy0`, `policy1`, … in file order.
        let mut in_order: Vec<_> = parsed.policies().collect();
        in_order.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let stem = file.path.file_stem().map_or_else(
            || "policies".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut seen_here: HashMap<String, usize> = HashMap::new();
        for policy in in_order {
            let (new_id, annotated) = match policy.annotation("id") {
                Some(id) => (id.to_owned(), true),
                None => (format!("{stem}/{}", policy.id()), false),
            };
            let nth = {
                let n = seen_here.entry(new_id.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let pid = PolicyId::new(&new_id);
            if let Some(&first) = origin.get(&pid) {
                let location = if annotated {
                    find_id_annotation(&file.text, &new_id, nth)
                        .map(|o| LineCol::of_offset(&file.text, o))
                } else {
                    None
                };
                diagnostics.push(SourceDiagnostic {
                    help: Some("give each policy a distinct `@id(\"…\")`".into()),
                    ..SourceDiagnostic::new(
                        &file.path,
                        location,
                        format!(
                            "duplicate policy id `{new_id}` (also used in `{}`)",
                            files[first].path.display()
                        ),
                    )
                });
                continue;
            }
            if let Err(e) = set.add(policy.new_id(pid.clone())) {
                diagnostics.push(SourceDiagnostic::from_miette(&file.path, None, &e));
                continue;
            }
            origin.insert(pid, index);
        }
    }
    if diagnostics.is_empty() {
        Ok((set, origin))
    } else {
        Err(PolicyLoadError::Parse { diagnostics })
    }
}

/// Byte offset of the `nth` (1-based) `@id("<id>")` annotation in `text`, if found.
fn find_id_annotation(text: &str, id: &str, nth: usize) -> Option<usize> {
    let quoted = format!("\"{id}\"");
    let mut found = 0;
    for (at, _) in text.match_indices("@id") {
        let rest = text[at + 3..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        if rest.trim_start().starts_with(&quoted) {
            found += 1;
            if found == nth {
                return Some(at);
            }
        }
    }
    None
}

fn validate(
    policies: &PolicySet,
    schema: &Schema,
    files: &[SourceFile],
    origin: &HashMap<PolicyId, usize>,
    warnings: &mut Vec<SourceDiagnostic>,
) -> Result<(), PolicyLoadError> {
    let validator = Validator::new(schema.clone());
    let result = validator.validate(policies, ValidationMode::Strict);
    let locate = |id: &PolicyId, d: &dyn Diagnostic| match origin.get(id).map(|&i| &files[i]) {
        Some(file) => SourceDiagnostic::from_miette(&file.path, Some(&file.text), d),
        None => SourceDiagnostic::from_miette(Path::new("<policies>"), None, d),
    };
    warnings.extend(
        result
            .validation_warnings()
            .map(|w| locate(w.policy_id(), w)),
    );
    let mut diagnostics: Vec<SourceDiagnostic> = result
        .validation_errors()
        .map(|e| locate(e.policy_id(), e))
        .collect();
    if diagnostics.is_empty() {
        return Ok(());
    }
    diagnostics.sort_by(|a, b| {
        (&a.path, a.location.map(|l| (l.line, l.column)))
            .cmp(&(&b.path, b.location.map(|l| (l.line, l.column))))
    });
    Err(PolicyLoadError::Validation { diagnostics })
}

fn parse_entities(file: Option<&SourceFile>, schema: &Schema) -> Result<Entities, PolicyLoadError> {
    let Some(file) = file else {
        return schema
            .action_entities()
            .map_err(|e| PolicyLoadError::Entities {
                diagnostics: vec![SourceDiagnostic::from_miette(
                    Path::new("<schema actions>"),
                    None,
                    &e,
                )],
            });
    };
    let fail = |d: SourceDiagnostic| PolicyLoadError::Entities {
        diagnostics: vec![d],
    };
    // Parse the JSON first so syntax errors get a position.
    let json: serde_json::Value = serde_json::from_str(&file.text).map_err(|e| {
        let location = (e.line() > 0).then_some(LineCol {
            line: e.line(),
            column: e.column(),
        });
        fail(SourceDiagnostic::new(&file.path, location, e.to_string()))
    })?;
    // With the schema, Cedar checks conformance and adds the schema's action entities.
    let entities = Entities::from_json_value(json, Some(schema))
        .map_err(|e| fail(SourceDiagnostic::from_miette(&file.path, None, &e)))?;
    for entity in entities.iter() {
        let uid = entity.uid();
        let type_name = uid.type_name().to_string();
        if PER_REQUEST_TYPES.contains(&type_name.as_str()) {
            return Err(fail(SourceDiagnostic {
                help: Some(format!(
                    "the proxy builds `{}` entities for each request; put static data on other entity types (e.g. `Role`)",
                    PER_REQUEST_TYPES.join("`, `")
                )),
                ..SourceDiagnostic::new(
                    &file.path,
                    None,
                    format!("`{uid}` cannot be defined in `{ENTITIES_FILE}`"),
                )
            }));
        }
    }
    Ok(entities)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SCHEMA: &str = include_str!("../../policies/example/mcp.cedarschema");

    fn src(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(path),
            text: text.to_owned(),
        }
    }

    fn compile_one(policies: &str) -> Result<PolicyBundle, PolicyLoadError> {
        compile(
            &[src("dir/main.cedar", policies)],
            &src("dir/mcp.cedarschema", SCHEMA),
            None,
        )
    }

    #[test]
    fn line_col_counts_lines_and_chars() {
        let text = "ab\ncdé\nf";
        assert_eq!(LineCol::of_offset(text, 0), LineCol { line: 1, column: 1 });
        assert_eq!(LineCol::of_offset(text, 4), LineCol { line: 2, column: 2 });
        assert_eq!(LineCol::of_offset(text, 7), LineCol { line: 2, column: 4 });
        assert_eq!(LineCol::of_offset(text, 8), LineCol { line: 3, column: 1 });
        assert_eq!(LineCol::of_offset(text, 99), LineCol { line: 3, column: 2 });
    }

    #[test]
    fn ids_come_from_annotation_or_file_stem() {
        let b = compile_one(
            "permit(principal, action == Action::\"call_tool\", resource);\n\
             @id(\"named\")\npermit(principal, action == Action::\"get_prompt\", resource);\n",
        )
        .unwrap();
        let mut ids: Vec<String> = b.policies.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["main/policy0", "named"]);
    }

    #[test]
    fn parse_error_names_file_line_col() {
        let err = compile_one(
            "permit(principal, action, resource);\n\npermit(principal, action resource);\n",
        )
        .unwrap_err();
        assert!(matches!(err, PolicyLoadError::Parse { .. }), "{err:?}");
        let s = err.to_string();
        assert!(s.starts_with("dir/main.cedar:3:"), "{s}");
    }

    #[test]
    fn validation_errors_are_all_reported_with_positions() {
        let err = compile_one(
            "permit(principal, action == Action::\"call_tool\", resource);\n\
             permit(principal, action == Action::\"call_tool\", resource)\n  when { principal.nope == 1 };\n\
             permit(principal, action == Action::\"call_tool\", resource)\n  when { resource.missing };\n",
        )
        .unwrap_err();
        let PolicyLoadError::Validation { diagnostics } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(diagnostics.len(), 2, "{err}");
        let s = err.to_string();
        assert!(s.contains("dir/main.cedar:3:"), "{s}");
        assert!(s.contains("dir/main.cedar:5:"), "{s}");
        assert!(s.contains("main/policy1"), "{s}");
    }

    #[test]
    fn schema_error_names_file_line_col() {
        let err = compile(
            &[src("p.cedar", "permit(principal, action, resource);")],
            &src(
                "s.cedarschema",
                "entity User;\n\nentity Tool { x: Nope };\n",
            ),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, PolicyLoadError::Schema { .. }), "{err:?}");
        let s = err.to_string();
        assert!(s.starts_with("s.cedarschema:3:"), "{s}");
    }

    #[test]
    fn duplicate_ids_are_refused_with_position() {
        let err = compile(
            &[
                src(
                    "a.cedar",
                    "@id(\"x\")\npermit(principal, action, resource);",
                ),
                src(
                    "b.cedar",
                    "\n\n@id(\"x\")\npermit(principal, action, resource);",
                ),
            ],
            &src("s.cedarschema", SCHEMA),
            None,
        )
        .unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("b.cedar:3:1: duplicate policy id `x`"), "{s}");
    }

    #[test]
    fn templates_are_refused() {
        let err = compile_one("permit(principal == ?principal, action, resource);").unwrap_err();
        assert!(err.to_string().contains("templates"), "{err}");
    }

    #[test]
    fn entities_json_errors() {
        let policies = [src("p.cedar", "permit(principal, action, resource);")];
        let schema = src("s.cedarschema", SCHEMA);
        let bad_json = src("entities.json", "[\n  {\"uid\": }\n]");
        let err = compile(&policies, &schema, Some(&bad_json)).unwrap_err();
        assert!(err.to_string().starts_with("entities.json:2:"), "{err}");

        let user = src(
            "entities.json",
            r#"[{"uid": {"type": "User", "id": "a"}, "attrs": {"auth_method": "jwt", "roles": [], "scopes": [], "claims": {}}, "parents": []}]"#,
        );
        let err = compile(&policies, &schema, Some(&user)).unwrap_err();
        assert!(err.to_string().contains("cannot be defined"), "{err}");

        let unknown_type = src(
            "entities.json",
            r#"[{"uid": {"type": "Team", "id": "a"}, "attrs": {}, "parents": []}]"#,
        );
        assert!(matches!(
            compile(&policies, &schema, Some(&unknown_type)),
            Err(PolicyLoadError::Entities { .. })
        ));
    }

    #[test]
    fn load_dir_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            load_dir(&missing),
            Err(PolicyLoadError::MissingDir { .. })
        ));
        assert!(matches!(
            load_dir(dir.path()),
            Err(PolicyLoadError::NoPolicies { .. })
        ));
        std::fs::write(
            dir.path().join("p.cedar"),
            "permit(principal, action, resource);",
        )
        .unwrap();
        assert!(matches!(
            load_dir(dir.path()),
            Err(PolicyLoadError::NoSchema { .. })
        ));
        std::fs::write(dir.path().join("a.cedarschema"), SCHEMA).unwrap();
        std::fs::write(dir.path().join(".hidden.cedar"), "garbage").unwrap();
        assert!(load_dir(dir.path()).is_ok());
        std::fs::write(dir.path().join("b.cedarschema"), SCHEMA).unwrap();
        assert!(matches!(
            load_dir(dir.path()),
            Err(PolicyLoadError::MultipleSchemas { .. })
        ));
    }
}
