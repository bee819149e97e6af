//! Scopes policies require: what turns a denial into an OAuth step-up challenge.
//!
//! The MCP authorization spec (2025-11-25) lets a server answer a request the token's
//! scopes do not cover with `403` and `WWW-Authenticate: Bearer error="insufficient_scope",
//! scope="…"`, so the client can ask its authorization server for a token with more
//! scopes and retry. Only the operator knows which denials are for a missing scope, so a
//! denying policy says so:
//!
//! ```cedar
//! @id("admin-tools-need-scope")
//! @insufficient_scope("mcp:admin")
//! forbid (principal, action == Action::"call_tool", resource in ToolGroup::"admin")
//! unless { principal.scopes.contains("mcp:admin") };
//! ```
//!
//! ```text
//! // @id("admin-tools-need-scope")
//! // @insufficient_scope("mcp:admin")
//! deny if action("call_tool"), tool($t), admin_tool($t), !caller_scope("mcp:admin");
//! ```
//!
//! The value is one scope or several, space separated (as in the challenge). A denial is
//! a step-up only when every policy that decided it carries the annotation; the proxy
//! then names the union of their scopes. Only `forbid` / `deny if` policies may carry it
//! (a permit does not deny), which the loader checks.

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{Effect, PolicySet};

use super::load::{LineCol, PolicyLoadError, SourceDiagnostic};

/// The annotation's name (Cedar) and comment tag (Datalog).
pub const ANNOTATION: &str = "insufficient_scope";

/// By policy id, the scopes whose absence that policy's denial means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRequirements(HashMap<String, Vec<String>>);

impl ScopeRequirements {
    /// From the annotated `forbid` policies of a Cedar set (ids are already the
    /// operator's `@id`s). An annotated `permit`, or an empty value, is refused.
    pub fn from_cedar(policies: &PolicySet, dir: &Path) -> Result<Self, PolicyLoadError> {
        let mut map = HashMap::new();
        let mut diagnostics = Vec::new();
        for policy in policies.policies() {
            let Some(value) = policy.annotation(ANNOTATION) else {
                continue;
            };
            let id = policy.id().to_string();
            match (policy.effect(), split(value)) {
                (Effect::Forbid, Some(scopes)) => {
                    map.insert(id, scopes);
                }
                (Effect::Permit, _) => diagnostics.push(SourceDiagnostic::new(
                    dir,
                    None,
                    format!("policy `{id}`: `@{ANNOTATION}` belongs on a `forbid` (a permit does not deny)"),
                )),
                (_, None) => diagnostics.push(SourceDiagnostic::new(
                    dir,
                    None,
                    format!("policy `{id}`: `@{ANNOTATION}` names no scope"),
                )),
            }
        }
        if diagnostics.is_empty() {
            Ok(ScopeRequirements(map))
        } else {
            Err(PolicyLoadError::Parse { diagnostics })
        }
    }

    /// From the `// @insufficient_scope("…")` comments of Datalog files: each must sit in
    /// the comment block of a `deny if` policy that has an `// @id("…")` (that id is how
    /// a denial names its policy).
    pub fn from_datalog(files: &[(std::path::PathBuf, String)]) -> Result<Self, PolicyLoadError> {
        let mut map = HashMap::new();
        let mut diagnostics = Vec::new();
        for (path, text) in files {
            let mut block: Vec<(usize, &str)> = Vec::new();
            let mut offset = 0;
            for line in text.split_inclusive('\n') {
                let here = offset;
                offset += line.len();
                let trimmed = line.trim();
                if let Some(comment) = trimmed.strip_prefix("//") {
                    block.push((here, comment.trim()));
                    continue;
                }
                if trimmed.is_empty() && block.is_empty() {
                    continue;
                }
                let scope = block
                    .iter()
                    .find_map(|(at, c)| tagged(c, ANNOTATION).map(|v| (*at, v)));
                if let Some((at, value)) = scope {
                    let id = block.iter().find_map(|(_, c)| tagged(c, "id"));
                    let fail = |message: String| SourceDiagnostic {
                        location: Some(LineCol::of_offset(text, at)),
                        ..SourceDiagnostic::new(path, None, message)
                    };
                    match (trimmed.starts_with("deny if"), id, split(value)) {
                        (true, Some(id), Some(scopes)) => {
                            map.insert(id.to_owned(), scopes);
                        }
                        (false, _, _) => diagnostics.push(fail(format!(
                            "`@{ANNOTATION}` belongs on a `deny if` policy"
                        ))),
                        (_, None, _) => diagnostics.push(fail(format!(
                            "`@{ANNOTATION}` needs an `// @id(\"…\")` on the same policy"
                        ))),
                        (_, _, None) => {
                            diagnostics.push(fail(format!("`@{ANNOTATION}` names no scope")))
                        }
                    }
                }
                block.clear();
            }
        }
        if diagnostics.is_empty() {
            Ok(ScopeRequirements(map))
        } else {
            Err(PolicyLoadError::Parse { diagnostics })
        }
    }

    /// The scopes to ask for when a denial was decided by `policy_ids`: `Some` only when
    /// there is at least one and every one of them is annotated (sorted, unique).
    pub fn step_up(&self, policy_ids: &[String]) -> Option<Vec<String>> {
        if policy_ids.is_empty() {
            return None;
        }
        let mut scopes: Vec<String> = Vec::new();
        for id in policy_ids {
            scopes.extend(self.0.get(id)?.iter().cloned());
        }
        scopes.sort();
        scopes.dedup();
        Some(scopes)
    }

    /// Whether any policy is annotated.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The value of `@tag("value")` at the start of a comment.
fn tagged<'a>(comment: &'a str, tag: &str) -> Option<&'a str> {
    let rest = comment
        .strip_prefix('@')?
        .strip_prefix(tag)?
        .strip_prefix("(\"")?;
    rest.split_once("\")").map(|(v, _)| v)
}

/// Space-separated scopes; `None` when there are none.
fn split(value: &str) -> Option<Vec<String>> {
    let scopes: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    (!scopes.is_empty()).then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cedar(text: &str) -> Result<ScopeRequirements, PolicyLoadError> {
        let mut set = PolicySet::new();
        for (i, p) in text.parse::<PolicySet>().unwrap().policies().enumerate() {
            let id = p.annotation("id").map_or(format!("p{i}"), str::to_owned);
            set.add(p.new_id(cedar_policy::PolicyId::new(id))).unwrap();
        }
        ScopeRequirements::from_cedar(&set, Path::new("policies"))
    }

    #[test]
    fn a_denial_is_a_step_up_only_when_every_deciding_policy_names_a_scope() {
        let r = cedar(
            r#"
            @id("needs-admin") @insufficient_scope("mcp:admin")
            forbid (principal, action, resource) unless { principal.scopes.contains("mcp:admin") };
            @id("needs-two") @insufficient_scope("mcp:write  mcp:admin")
            forbid (principal, action, resource);
            @id("plain")
            forbid (principal, action, resource);
            "#,
        )
        .unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            r.step_up(&ids(&["needs-admin"])),
            Some(vec!["mcp:admin".into()])
        );
        assert_eq!(
            r.step_up(&ids(&["needs-admin", "needs-two"])),
            Some(vec!["mcp:admin".into(), "mcp:write".into()])
        );
        assert_eq!(r.step_up(&ids(&["needs-admin", "plain"])), None);
        assert_eq!(r.step_up(&[]), None, "a default deny names no policy");
    }

    #[test]
    fn the_annotation_on_a_permit_or_without_a_scope_is_refused_at_load() {
        let on_permit =
            cedar(r#"@id("p") @insufficient_scope("x") permit (principal, action, resource);"#);
        assert!(on_permit
            .unwrap_err()
            .to_string()
            .contains("belongs on a `forbid`"));
        let empty =
            cedar(r#"@id("f") @insufficient_scope(" ") forbid (principal, action, resource);"#);
        assert!(empty.unwrap_err().to_string().contains("names no scope"));
    }

    #[test]
    fn datalog_comments_name_the_scope_of_a_deny_policy_with_an_id() {
        let file = |text: &str| vec![(std::path::PathBuf::from("p.datalog"), text.to_owned())];
        let r = ScopeRequirements::from_datalog(&file(
            "// Admin tools need the admin scope.\n// @id(\"needs-admin\")\n// @insufficient_scope(\"mcp:admin\")\ndeny if action(\"call_tool\"), !caller_scope(\"mcp:admin\");\n\n// @id(\"other\")\ndeny if true;\n",
        ))
        .unwrap();
        assert_eq!(
            r.step_up(&["needs-admin".to_owned()]),
            Some(vec!["mcp:admin".into()])
        );
        assert_eq!(r.step_up(&["other".to_owned()]), None);
        let on_allow = ScopeRequirements::from_datalog(&file(
            "// @id(\"a\")\n// @insufficient_scope(\"x\")\nallow if true;\n",
        ));
        let message = on_allow.unwrap_err().to_string();
        assert!(message.contains("p.datalog:2"), "{message}");
        assert!(message.contains("`deny if`"), "{message}");
        let no_id = ScopeRequirements::from_datalog(&file(
            "// @insufficient_scope(\"x\")\ndeny if true;\n",
        ));
        assert!(no_id.unwrap_err().to_string().contains("needs an `// @id"));
    }
}
