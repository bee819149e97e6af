//! Loading the operator's authorizer: every `*.datalog` file of the policy directory, in
//! file-name order, parsed with `file:line:col` diagnostics.
//!
//! A file holds facts, rules, checks and `allow if` / `deny if` policies (Biscuit's
//! authorizer language). Policies are tried in order, the first that matches decides;
//! files are concatenated in name order. Each check and policy gets an id for audit
//! lines and denials: the `@id("…")` of a `// @id("…")` comment on the lines just above
//! it, else `<file stem>:<line>`. `{name}` in a `trusting {name}` clause stands for the
//! external key `name` of `[policy.biscuit.external_keys]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use biscuit_auth::builder::{AuthorizerBuilder, Rule};
use biscuit_auth::PublicKey;

use crate::policy::load::{LineCol, PolicyLoadError, SourceDiagnostic};

/// The compiled authorizer and the ids of its checks and policies, by position.
#[derive(Clone)]
pub struct AuthorizerProgram {
    /// Facts, rules, checks and policies of every file, in order.
    pub(crate) builder: AuthorizerBuilder,
    /// The id of each policy, in evaluation order.
    pub(crate) policy_ids: Vec<String>,
    /// The id of each check, in order.
    pub(crate) check_ids: Vec<String>,
    /// The files it was built from.
    pub files: Vec<PathBuf>,
    /// The scopes its `// @insufficient_scope("…")` deny policies require.
    pub scopes: crate::policy::scopes::ScopeRequirements,
}

impl std::fmt::Debug for AuthorizerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizerProgram")
            .field("policies", &self.policy_ids)
            .field("checks", &self.check_ids)
            .field("files", &self.files)
            .finish()
    }
}

/// Byte offset of `part` inside `whole` (a sub-slice of it).
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(whole.as_ptr() as usize)
        .min(whole.len())
}

/// The `@id("…")` of the comment lines directly above byte `offset`, if any.
fn annotated_id(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset];
    let mut lines = before.lines().rev();
    // The statement's own line, up to the statement (normally empty).
    let first = lines.next().unwrap_or("");
    if !first.trim().is_empty() && !before.ends_with('\n') {
        return None;
    }
    for line in std::iter::once(first).chain(lines) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let comment = line.strip_prefix("//")?;
        if let Some(rest) = comment.trim().strip_prefix("@id(\"") {
            return rest.split_once("\")").map(|(id, _)| id.to_owned());
        }
    }
    None
}

/// Parses one file; returns its builder and the ids of its checks and policies.
fn compile_file(
    path: &Path,
    text: &str,
    external_keys: &HashMap<String, PublicKey>,
) -> Result<(AuthorizerBuilder, Vec<String>, Vec<String>), Vec<SourceDiagnostic>> {
    let at = |offset: usize| Some(LineCol::of_offset(text, offset));
    let diag = |location: Option<LineCol>, message: String| SourceDiagnostic {
        path: path.to_owned(),
        location,
        message,
        help: None,
    };
    let parsed = biscuit_auth::parser::parse_source(text).map_err(|errors| {
        errors
            .iter()
            .map(|e| {
                let message = e.message.clone().unwrap_or_else(|| {
                    format!("datalog syntax error near `{}`", first_line(e.input))
                });
                diag(at(offset_in(text, e.input)), message)
            })
            .collect::<Vec<_>>()
    })?;
    let stem = path.file_stem().map_or_else(
        || "authorizer".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let id = |slice: &str| {
        let offset = offset_in(text, slice) + (slice.len() - slice.trim_start().len());
        annotated_id(text, offset)
            .unwrap_or_else(|| format!("{stem}:{}", LineCol::of_offset(text, offset).line))
    };
    let mut diagnostics = Vec::new();
    for (slice, rule) in &parsed.rules {
        let rule: Rule = rule.clone().into();
        if let Err(message) = rule.validate_variables() {
            let offset = offset_in(text, slice) + (slice.len() - slice.trim_start().len());
            diagnostics.push(diag(at(offset), message));
        }
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let check_ids = parsed.checks.iter().map(|(s, _)| id(s)).collect();
    let policy_ids = parsed.policies.iter().map(|(s, _)| id(s)).collect();
    let builder = AuthorizerBuilder::new()
        .code_with_params(text, HashMap::new(), external_keys.clone())
        .map_err(|e| {
            let mut message = e.to_string();
            if let biscuit_auth::error::Token::Language(
                biscuit_parser::error::LanguageError::Parameters {
                    missing_parameters, ..
                },
            ) = &e
            {
                message = format!(
                    "unknown parameter{} {}",
                    if missing_parameters.len() == 1 { "" } else { "s" },
                    missing_parameters
                        .iter()
                        .map(|p| format!("`{{{p}}}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let location = missing_parameters
                    .first()
                    .and_then(|p| text.find(&format!("{{{p}}}")))
                    .and_then(at);
                return vec![SourceDiagnostic {
                    help: Some(
                        "a `{name}` in `trusting {name}` must be a key of `[policy.biscuit.external_keys]`"
                            .to_owned(),
                    ),
                    ..diag(location, message)
                }];
            }
            vec![diag(None, message)]
        })?;
    Ok((builder, check_ids, policy_ids))
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(40) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// Compiles in-memory files (`(path, text)`, already in order).
pub fn compile(
    files: &[(PathBuf, String)],
    external_keys: &HashMap<String, PublicKey>,
) -> Result<AuthorizerProgram, PolicyLoadError> {
    let mut builder = AuthorizerBuilder::new();
    let mut policy_ids: Vec<String> = Vec::new();
    let mut check_ids = Vec::new();
    let mut diagnostics = Vec::new();
    let mut first_use: HashMap<String, PathBuf> = HashMap::new();
    for (path, text) in files {
        match compile_file(path, text, external_keys) {
            Ok((file_builder, checks, policies)) => {
                for id in checks.iter().chain(&policies) {
                    if let Some(other) = first_use.insert(id.clone(), path.clone()) {
                        diagnostics.push(SourceDiagnostic {
                            path: path.clone(),
                            location: text
                                .find(&format!("@id(\"{id}\")"))
                                .map(|o| LineCol::of_offset(text, o)),
                            message: format!(
                                "duplicate id `{id}` (also used in `{}`)",
                                other.display()
                            ),
                            help: Some(
                                "give each check and policy a distinct `@id(\"…\")`".to_owned(),
                            ),
                        });
                    }
                }
                builder = builder.merge(file_builder);
                check_ids.extend(checks);
                policy_ids.extend(policies);
            }
            Err(found) => diagnostics.extend(found),
        }
    }
    if !diagnostics.is_empty() {
        return Err(PolicyLoadError::Parse { diagnostics });
    }
    Ok(AuthorizerProgram {
        builder,
        policy_ids,
        check_ids,
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        scopes: crate::policy::scopes::ScopeRequirements::from_datalog(files)?,
    })
}

/// Reads and compiles every `*.datalog` file of `dir`.
pub fn load_datalog_dir(
    dir: &Path,
    external_keys: &HashMap<String, PublicKey>,
) -> Result<AuthorizerProgram, PolicyLoadError> {
    if !dir.is_dir() {
        return Err(PolicyLoadError::MissingDir {
            path: dir.to_owned(),
        });
    }
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PolicyLoadError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `metadata` follows symlinks: ConfigMap files are symlinks into `..data/`.
        if name.starts_with('.')
            || !name.ends_with(".datalog")
            || !std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        {
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    if paths.is_empty() {
        return Err(PolicyLoadError::NoDatalog {
            dir: dir.to_owned(),
        });
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        files.push((path, text));
    }
    compile(&files, external_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<AuthorizerProgram, PolicyLoadError> {
        compile(
            &[(PathBuf::from("dir/authorizer.datalog"), text.to_owned())],
            &HashMap::new(),
        )
    }

    #[test]
    fn ids_from_annotations_or_lines() {
        let p = one(
            "// the admin rule\n// @id(\"admin\")\nallow if role(\"admin\");\n\ncheck if time($t);\ndeny if true;\n",
        )
        .unwrap();
        assert_eq!(p.policy_ids, ["admin", "authorizer:6"]);
        assert_eq!(p.check_ids, ["authorizer:5"]);
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = one("allow if true;\n\nallow if role(\"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/authorizer.datalog:3:"), "{err}");
    }

    #[test]
    fn unbound_head_variables_are_refused_with_position() {
        let err = one("allow if true;\nbad($x) <- role($y);\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/authorizer.datalog:2:1:"), "{err}");
    }

    #[test]
    fn unknown_external_key_parameter() {
        let err = one("allow if true;\ncheck if partner(true) trusting {partner};\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/authorizer.datalog:2:"), "{err}");
        assert!(err.contains("`{partner}`"), "{err}");
        let key = biscuit_auth::KeyPair::new().public();
        let ok = compile(
            &[(
                PathBuf::from("a.datalog"),
                "allow if partner(true) trusting {partner};".to_owned(),
            )],
            &HashMap::from([("partner".to_owned(), key)]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = compile(
            &[
                (
                    PathBuf::from("a.datalog"),
                    "// @id(\"x\")\nallow if true;".to_owned(),
                ),
                (
                    PathBuf::from("b.datalog"),
                    "\n// @id(\"x\")\ndeny if true;".to_owned(),
                ),
            ],
            &HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("b.datalog:2:"), "{err}");
    }

    #[test]
    fn directory_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_datalog_dir(&dir.path().join("nope"), &HashMap::new()),
            Err(PolicyLoadError::MissingDir { .. })
        ));
        assert!(matches!(
            load_datalog_dir(dir.path(), &HashMap::new()),
            Err(PolicyLoadError::NoDatalog { .. })
        ));
        std::fs::write(dir.path().join("b.datalog"), "deny if true;").unwrap();
        std::fs::write(dir.path().join("a.datalog"), "allow if role(\"x\");").unwrap();
        std::fs::write(dir.path().join(".hidden.datalog"), "garbage").unwrap();
        let p = load_datalog_dir(dir.path(), &HashMap::new()).unwrap();
        assert_eq!(p.policy_ids, ["a:1", "b:1"]);
    }
}
