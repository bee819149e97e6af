//! Policy tests: `mcp-warden policy test <file>` runs a TOML file of cases against a
//! policy directory, so operators can check their rules before deploying them
//! (`mcp-warden policy test <dir>` runs the directory's `tests.toml`).
//!
//! ```toml
//! policy_dir = "."          # optional, relative to this file; default: its directory
//! engine = "cedar"          # optional: "cedar" or "biscuit"; default: "biscuit" when the
//!                           # directory has `*.datalog` files and no `*.cedar` files
//!
//! [[case]]
//! name = "staff may call read-only tools"
//! principal = { subject = "alice", roles = ["staff"], scopes = ["mcp:tools"],
//!               agent = "claude-desktop", claims = { department = "cardiology" } }
//! # principal.auth_method = "jwt" (default), "api_key" or "anonymous"
//! action = "call_tool"      # a Cedar action name, or `method = "tools/call"`
//! tool = "get_weather"      # or resource = "file:///x", resource_template = "file:///{p}",
//!                           #    prompt = "p"
//! arguments = { city = "Paris" }          # call_tool / get_prompt only
//! annotations = { readOnlyHint = true }   # the tool's annotations
//! session = { id = "s1", taints = [] }    # optional
//! source_ip = "10.0.0.1"                  # optional
//! time = 1700000000                       # optional, Unix seconds; default: now
//! protocol_version = "2025-06-18"         # optional
//! mtls = { spiffe_id = "spiffe://example.org/agent", dns = ["agent.svc"],
//!          subject = "agent", fingerprint = "<64 hex digits>" }
//!                                         # optional: the connection's client certificate
//! expect = "allow"                        # or "deny"
//! policies = ["staff-read-only-tools"]    # optional: the deciding policy ids, exactly
//! expect_listed = true                    # optional: the listing rule for the target
//! ```
//!
//! Instead of `principal`, a case may give a Biscuit as Datalog, one string per block
//! (authority block first, then attenuation blocks):
//!
//! ```toml
//! token = ['user("alice"); right("tool", "echo");', 'check if tool("echo");']
//! ```
//!
//! The runner mints it with a throw-away root key, appends the blocks, and reads the
//! identity from the authority block as the proxy does (`user`, `agent`, `role`,
//! `scope`), so its checks are enforced under either engine.
//!
//! `mtls` is what the proxy would read from a verified client certificate: Cedar's
//! `context.mtls`, Biscuit's `mtls_client(…)`, `mtls_spiffe_id(…)`, `mtls_dns(…)`,
//! `mtls_subject(…)` and `mtls_fingerprint(…)`. Every field is optional (`subject` and
//! `fingerprint` default to `""`); a caller named by its certificate alone is
//! `principal = { subject = "spiffe://…", auth_method = "mtls" }`.
//!
//! Each case needs `expect`, `expect_listed`, or both. `protocol` and `other` need
//! `method` (the JSON-RPC method); with only `method`, the action is derived from it the
//! way the proxy classifies messages. Problems in the file are reported as `file:line`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::biscuit::{load_datalog_dir, BiscuitEngine, TokenChecks};
use super::cedar::CedarEngine;
use super::load::{load_dir, LineCol, PolicyLoadError};
use super::store::EngineKind;
use super::{AuthzRequest, ListedItem, PolicyEngine, RequestEnv};
use crate::auth::{AuthMethod, Identity};
use crate::mcp::{methods, CompletionRef, ListKind, McpAction};

/// The test file of a policy directory, run when the directory itself is given.
pub const TESTS_FILE: &str = "tests.toml";

/// The test file could not be used (as opposed to a case failing).
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// A directory was given that holds no `tests.toml`.
    #[error("{}: a directory without a `{TESTS_FILE}`\nhelp: give a test file, or write the directory's cases in `{}`", dir.display(), dir.join(TESTS_FILE).display())]
    NoTestsFile {
        /// The directory.
        dir: PathBuf,
    },
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The test file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{}{}: {message}", path.display(), location.map(|l| format!(":{}:{}", l.line, l.column)).unwrap_or_default())]
    Syntax {
        /// The test file.
        path: PathBuf,
        /// Where, when known.
        location: Option<LineCol>,
        /// What is wrong.
        message: String,
    },
    /// A case is incomplete or inconsistent.
    #[error("{}:{line}: case `{name}`: {message}", path.display())]
    Case {
        /// The test file.
        path: PathBuf,
        /// The case's line.
        line: usize,
        /// The case's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The policies under test did not load.
    #[error("{source}")]
    Policy {
        /// The load error (it names its files).
        #[from]
        source: PolicyLoadError,
    },
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Its line in the test file.
    pub line: usize,
    /// Whether every expectation held.
    pub passed: bool,
    /// What happened, e.g. `allowed by [staff-read-only-tools]` or
    /// `expected deny, got allow by [admin-any-tool]`.
    pub detail: String,
}

/// The outcome of a test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// The test file.
    pub file: PathBuf,
    /// The policy directory tested.
    pub policy_dir: PathBuf,
    /// One result per case, in file order.
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    /// `true` if every case passed.
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }

    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.passed).count()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            if case.passed {
                writeln!(f, "ok   {} ({})", case.name, case.detail)?;
            } else {
                writeln!(
                    f,
                    "FAIL {} ({}:{}): {}",
                    case.name,
                    self.file.display(),
                    case.line,
                    case.detail
                )?;
            }
        }
        let failed = self.failed();
        write!(
            f,
            "{} passed, {failed} failed ({})",
            self.cases.len() - failed,
            self.policy_dir.display()
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policy_dir: Option<PathBuf>,
    engine: Option<EngineKind>,
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<RawCase>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    agent: Option<String>,
    #[serde(default)]
    claims: toml::Table,
    auth_method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMtls {
    spiffe_id: Option<String>,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    fingerprint: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    id: Option<String>,
    #[serde(default)]
    taints: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    principal: Option<RawPrincipal>,
    token: Option<Vec<String>>,
    action: Option<String>,
    method: Option<String>,
    tool: Option<String>,
    resource: Option<String>,
    resource_template: Option<String>,
    prompt: Option<String>,
    arguments: Option<toml::Table>,
    annotations: Option<toml::Table>,
    #[serde(default)]
    session: RawSession,
    source_ip: Option<IpAddr>,
    time: Option<u64>,
    protocol_version: Option<String>,
    mtls: Option<RawMtls>,
    expect: Option<Expect>,
    policies: Option<Vec<String>>,
    expect_listed: Option<bool>,
}

/// A case, checked and turned into the proxy's types.
struct Case {
    identity: Identity,
    /// `None` for a listing-only case.
    action: Option<McpAction>,
    annotations: Option<Map<String, Value>>,
    env: RequestEnv,
    listed: Option<(ListKind, String)>,
    expect: Option<Expect>,
    policies: Option<Vec<String>>,
    expect_listed: Option<bool>,
}

/// Runs the cases of the test file at `path` against its policy directory.
///
/// `path` may also be a policy directory: its `tests.toml` ([`TESTS_FILE`]) is run.
pub fn run_test_file(path: &Path) -> Result<TestReport, TestFileError> {
    let in_dir;
    let path = if path.is_dir() {
        in_dir = path.join(TESTS_FILE);
        if !in_dir.is_file() {
            return Err(TestFileError::NoTestsFile {
                dir: path.to_owned(),
            });
        }
        &in_dir
    } else {
        path
    };
    let text = std::fs::read_to_string(path).map_err(|source| TestFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw: RawFile = toml::from_str(&text).map_err(|e| TestFileError::Syntax {
        path: path.to_owned(),
        location: e.span().map(|s| LineCol::of_offset(&text, s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let policy_dir = match &raw.policy_dir {
        Some(dir) => base.join(dir),
        None => base.to_owned(),
    };
    // Check every case before loading policies, so file mistakes come first.
    let mut cases = Vec::with_capacity(raw.cases.len());
    for spanned in raw.cases {
        let line = LineCol::of_offset(&text, spanned.span().start).line;
        let raw_case = spanned.into_inner();
        let name = raw_case.name.clone();
        let case = build_case(raw_case).map_err(|message| TestFileError::Case {
            path: path.to_owned(),
            line,
            name: name.clone(),
            message,
        })?;
        cases.push((name, line, case));
    }
    let limits = policy_test_limits();
    let engine: Box<dyn PolicyEngine> = match raw.engine.unwrap_or_else(|| detect(&policy_dir)) {
        EngineKind::Cedar => Box::new(TokenChecks::new(
            CedarEngine::new(load_dir(&policy_dir)?, 1)?,
            1,
            limits,
        )),
        EngineKind::Biscuit => Box::new(BiscuitEngine::new(
            load_datalog_dir(&policy_dir, &Default::default())?,
            1,
            limits,
        )),
    };
    let results = cases
        .into_iter()
        .map(|(name, line, case)| {
            let (passed, detail) = run_case(engine.as_ref(), &case);
            CaseResult {
                name,
                line,
                passed,
                detail,
            }
        })
        .collect();
    Ok(TestReport {
        file: path.to_owned(),
        policy_dir,
        cases: results,
    })
}

/// Biscuit when the directory has `*.datalog` files and no `*.cedar` files.
fn detect(dir: &Path) -> EngineKind {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let has = |ext: &str| {
        names
            .iter()
            .any(|n| n.ends_with(ext) && !n.starts_with('.'))
    };
    if has(".datalog") && !has(".cedar") {
        EngineKind::Biscuit
    } else {
        EngineKind::Cedar
    }
}

/// The identity a case's `token` (Datalog blocks) stands for.
fn token_identity(blocks: &[String]) -> Result<Identity, String> {
    use biscuit_auth::builder::BlockBuilder;
    let (authority, rest) = blocks
        .split_first()
        .ok_or("`token` needs at least the authority block")?;
    let root = biscuit_auth::KeyPair::new();
    let mut token = biscuit_auth::Biscuit::builder()
        .code(authority)
        .and_then(|b| b.build(&root))
        .map_err(|e| format!("`token` block 0: {e}"))?;
    for (i, block) in rest.iter().enumerate() {
        token = BlockBuilder::new()
            .code(block)
            .and_then(|b| token.append(b))
            .map_err(|e| format!("`token` block {}: {e}", i + 1))?;
    }
    let text = token.to_base64().map_err(|e| e.to_string())?;
    crate::biscuit::identity_from_token(
        std::sync::Arc::new(crate::biscuit::BiscuitToken::new(token, &text)),
        &crate::biscuit::BiscuitConfig::default(),
        &policy_test_limits(),
    )
    .map(Identity::from)
    .map_err(|e| format!("`token`: {e}"))
}

fn to_json(table: toml::Table) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a table".to_owned()),
        Err(e) => Err(format!("cannot convert to JSON: {e}")),
    }
}

/// The action name the proxy gives a JSON-RPC method (see `mcp::McpAction`).
fn action_for_method(method: &str) -> &'static str {
    match method {
        methods::TOOLS_CALL => "call_tool",
        methods::RESOURCES_READ => "read_resource",
        methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE => "subscribe_resource",
        methods::PROMPTS_GET => "get_prompt",
        methods::COMPLETION_COMPLETE => "complete",
        methods::TOOLS_LIST => "list_tools",
        methods::RESOURCES_LIST => "list_resources",
        methods::RESOURCES_TEMPLATES_LIST => "list_resource_templates",
        methods::PROMPTS_LIST => "list_prompts",
        methods::INITIALIZE
        | methods::PING
        | methods::SERVER_DISCOVER
        | methods::LOGGING_SET_LEVEL => "protocol",
        m if m.starts_with("notifications/") || m.starts_with("tasks/") => "protocol",
        _ => "other",
    }
}

fn principal_identity(principal: RawPrincipal) -> Result<Identity, String> {
    let method = match principal.auth_method.as_deref() {
        None | Some("jwt") => AuthMethod::Jwt,
        Some("api_key") => AuthMethod::ApiKey,
        Some("anonymous") => AuthMethod::Anonymous,
        Some("mtls") => AuthMethod::Mtls,
        Some(other) => {
            return Err(format!(
                "unknown `auth_method` `{other}` (expected `jwt`, `api_key`, `anonymous` or `mtls`; for a Biscuit caller give `token`)"
            ))
        }
    };
    Ok(Identity {
        subject: principal.subject,
        agent: principal.agent,
        roles: principal.roles,
        scopes: principal.scopes,
        claims: to_json(principal.claims)?,
        method,
        biscuit: None,
    })
}

/// The client certificate a case's `mtls` table stands for.
fn client_cert(raw: RawMtls) -> Result<crate::auth::ClientCert, String> {
    use base64::Engine as _;
    let fingerprint = raw.fingerprint.to_ascii_lowercase();
    let digest = match fingerprint.as_str() {
        "" => Vec::new(),
        hex_digits => match hex::decode(hex_digits) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            _ => {
                return Err(format!(
                "`mtls.fingerprint` `{}`: expected the SHA-256 of the certificate, 64 hex digits",
                raw.fingerprint
            ))
            }
        },
    };
    if let Some(id) = &raw.spiffe_id {
        if !id.starts_with("spiffe://") {
            return Err(format!(
                "`mtls.spiffe_id` `{id}`: a SPIFFE ID starts with `spiffe://`"
            ));
        }
    }
    Ok(crate::auth::ClientCert {
        spiffe_id: raw.spiffe_id,
        dns: raw.dns,
        subject: raw.subject,
        x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest),
        fingerprint,
    })
}

fn build_case(raw: RawCase) -> Result<Case, String> {
    let by_certificate = raw
        .principal
        .as_ref()
        .is_some_and(|p| p.auth_method.as_deref() == Some("mtls"));
    if by_certificate && raw.mtls.is_none() {
        return Err("`auth_method = \"mtls\"` needs the certificate: give `mtls`".to_owned());
    }
    let mtls = raw
        .mtls
        .map(client_cert)
        .transpose()?
        .map(std::sync::Arc::new);
    let identity = match (raw.principal, &raw.token) {
        (Some(principal), None) => principal_identity(principal)?,
        (None, Some(blocks)) => token_identity(blocks)?,
        (Some(_), Some(_)) => return Err("give `principal` or `token`, not both".to_owned()),
        (None, None) => return Err("needs `principal` or `token`".to_owned()),
    };

    let targets = [
        raw.tool.is_some(),
        raw.resource.is_some(),
        raw.resource_template.is_some(),
        raw.prompt.is_some(),
    ];
    if targets.iter().filter(|t| **t).count() > 1 {
        return Err(
            "give at most one of `tool`, `resource`, `resource_template`, `prompt`".to_owned(),
        );
    }
    let listed = match (
        &raw.tool,
        &raw.resource,
        &raw.resource_template,
        &raw.prompt,
    ) {
        (Some(t), ..) => Some((ListKind::Tools, t.clone())),
        (_, Some(r), ..) => Some((ListKind::Resources, r.clone())),
        (_, _, Some(t), _) => Some((ListKind::ResourceTemplates, t.clone())),
        (.., Some(p)) => Some((ListKind::Prompts, p.clone())),
        _ => None,
    };

    let action_name: String = match (&raw.action, &raw.method) {
        (Some(a), Some(m)) => {
            let derived = action_for_method(m);
            if derived != a {
                return Err(format!(
                    "`method = \"{m}\"` is action `{derived}`, not `{a}`"
                ));
            }
            a.clone()
        }
        (Some(a), None) => a.clone(),
        (None, Some(m)) => action_for_method(m).to_owned(),
        (None, None) if raw.expect.is_none() => String::new(),
        (None, None) => return Err("needs `action` or `method`".to_owned()),
    };
    let arguments = match raw.arguments {
        Some(t) => Some(Value::Object(to_json(t)?)),
        None => None,
    };
    // A listing-only case has no call to decide.
    let listing_only = action_name.is_empty();
    let need = |what: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| format!("action `{action_name}` needs `{what}`"))
    };
    let takes_arguments = matches!(action_name.as_str(), "call_tool" | "get_prompt");
    if arguments.is_some() && !takes_arguments && !listing_only {
        return Err(format!(
            "`arguments` apply to `call_tool` and `get_prompt`, not `{action_name}`"
        ));
    }
    let arguments = arguments.unwrap_or_else(|| Value::Object(Map::new()));
    let action = match action_name.as_str() {
        _ if listing_only => None,
        "call_tool" => Some(McpAction::CallTool {
            name: need("tool", &raw.tool)?,
            arguments,
        }),
        "read_resource" => Some(McpAction::ReadResource {
            uri: need("resource", &raw.resource)?,
        }),
        "subscribe_resource" => Some(McpAction::SubscribeResource {
            uri: need("resource", &raw.resource)?,
            unsubscribe: raw.method.as_deref() == Some(methods::RESOURCES_UNSUBSCRIBE),
        }),
        "get_prompt" => Some(McpAction::GetPrompt {
            name: need("prompt", &raw.prompt)?,
            arguments,
        }),
        "complete" => Some(match (&raw.prompt, &raw.resource) {
            (Some(p), _) => McpAction::Complete {
                reference: CompletionRef::Prompt(p.clone()),
            },
            (_, Some(r)) => McpAction::Complete {
                reference: CompletionRef::Resource(r.clone()),
            },
            _ => return Err("action `complete` needs `prompt` or `resource`".to_owned()),
        }),
        "list_tools" => Some(McpAction::List(ListKind::Tools)),
        "list_resources" => Some(McpAction::List(ListKind::Resources)),
        "list_resource_templates" => Some(McpAction::List(ListKind::ResourceTemplates)),
        "list_prompts" => Some(McpAction::List(ListKind::Prompts)),
        "protocol" => Some(McpAction::Protocol {
            method: need("method", &raw.method)?,
        }),
        "respond" => Some(McpAction::Response),
        "other" => Some(McpAction::Other {
            method: need("method", &raw.method)?,
        }),
        unknown => {
            return Err(format!(
                "unknown action `{unknown}` (expected one of {})",
                super::cedar::ACTIONS.join(", ")
            ))
        }
    };

    if raw.expect.is_none() && raw.expect_listed.is_none() {
        return Err("needs `expect` and/or `expect_listed`".to_owned());
    }
    if raw.policies.is_some() && raw.expect.is_none() {
        return Err("`policies` needs `expect`".to_owned());
    }
    if raw.expect_listed.is_some() && listed.is_none() {
        return Err(
            "`expect_listed` needs a `tool`, `resource`, `resource_template` or `prompt`"
                .to_owned(),
        );
    }
    let annotations = raw.annotations.map(to_json).transpose()?;
    let time = raw
        .time
        .map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    Ok(Case {
        identity,
        action,
        annotations,
        env: RequestEnv {
            time,
            source_ip: raw.source_ip,
            session_id: raw.session.id,
            taints: raw.session.taints,
            protocol_version: raw.protocol_version,
            mtls,
        },
        listed,
        expect: raw.expect,
        policies: raw.policies,
        expect_listed: raw.expect_listed,
    })
}

fn ids(v: &[String]) -> String {
    format!("[{}]", v.join(", "))
}

/// The run limits for policy tests: the proxy's limits on facts and iterations, which bound
/// the work deterministically, and a time limit long enough that a loaded machine cannot
/// turn an expected decision into a run-limit denial (the proxy's 20 ms is a safety net
/// for live requests, not part of what a policy decides).
fn policy_test_limits() -> biscuit_auth::AuthorizerLimits {
    biscuit_auth::AuthorizerLimits {
        max_time: std::time::Duration::from_secs(60),
        ..crate::biscuit::default_limits()
    }
}

/// Runs one case: `(passed, detail)`.
fn run_case(engine: &dyn PolicyEngine, case: &Case) -> (bool, String) {
    let mut passed = true;
    let mut details = Vec::new();
    if let (Some(expect), Some(action)) = (case.expect, &case.action) {
        let d = engine.decide(&AuthzRequest {
            identity: &case.identity,
            action,
            annotations: case.annotations.as_ref(),
            definition: Default::default(),
            env: &case.env,
        });
        let got = if d.allow { Expect::Allow } else { Expect::Deny };
        let verb = if d.allow { "allow" } else { "deny" };
        let mut detail = if d.policy_ids.is_empty() {
            format!("{verb} (no policy)")
        } else {
            format!("{verb} by {}", ids(&d.policy_ids))
        };
        if !d.errors.is_empty() {
            detail.push_str(&format!("; errors: {}", d.errors.join("; ")));
        }
        if got != expect {
            passed = false;
            let want = if expect == Expect::Allow {
                "allow"
            } else {
                "deny"
            };
            detail = format!("expected {want}, got {detail}");
        } else if let Some(want_ids) = &case.policies {
            let mut want = want_ids.clone();
            want.sort();
            let mut have = d.policy_ids.clone();
            have.sort();
            if want != have {
                passed = false;
                detail = format!("expected deciding policies {}, got {detail}", ids(&want));
            }
        }
        details.push(detail);
    }
    if let (Some(expect_listed), Some((kind, name))) = (case.expect_listed, &case.listed) {
        let listed = engine.may_list(
            &case.identity,
            &ListedItem {
                kind: *kind,
                name,
                annotations: case.annotations.as_ref().map(Into::into),
                definition: Default::default(),
            },
            &case.env,
        );
        let word = |b: bool| if b { "listed" } else { "hidden" };
        if listed == expect_listed {
            details.push(word(listed).to_owned());
        } else {
            passed = false;
            details.push(format!(
                "expected {}, got {}",
                word(expect_listed),
                word(listed)
            ));
        }
    }
    (passed, details.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = include_str!("../../policies/example/mcp.cedarschema");

    fn write_dir(policies: &str, tests: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mcp.cedarschema"), SCHEMA).unwrap();
        std::fs::write(dir.path().join("p.cedar"), policies).unwrap();
        let file = dir.path().join("tests.toml");
        std::fs::write(&file, tests).unwrap();
        (dir, file)
    }

    const ECHO: &str = r#"@id("echo") permit (principal, action == Action::"call_tool", resource == Tool::"echo");"#;

    #[test]
    fn the_example_policy_tests_pass() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/example/tests.toml");
        let report = run_test_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.cases.len() >= 20, "{report}");
        assert!(report.all_passed(), "{report}");
    }

    /// `mcp-warden policy test policies/example` runs the directory's `tests.toml`.
    #[test]
    fn a_directory_runs_its_tests_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/example");
        let report = run_test_file(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.file, dir.join("tests.toml"));
        assert!(report.all_passed(), "{report}");
        let empty = tempfile::tempdir().unwrap();
        let err = run_test_file(empty.path()).unwrap_err().to_string();
        assert!(err.contains("a directory without a `tests.toml`"), "{err}");
        assert!(err.contains("help: "), "{err}");
    }

    #[test]
    fn the_biscuit_example_policy_tests_pass() {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/biscuit-example/tests.toml");
        let report = run_test_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.cases.len() >= 20, "{report}");
        assert!(report.all_passed(), "{report}");
    }

    const AGENT_ECHO: &str = r#"@id("agent-echo") permit (principal, action == Action::"call_tool", resource == Tool::"echo") when { context has mtls && context.mtls.spiffe_id == "spiffe://e.org/agent" && context.mtls.dns.contains("agent.svc") && context.mtls.subject == "agent" && context.mtls.fingerprint == "00ff000000000000000000000000000000000000000000000000000000000000" };"#;

    #[test]
    fn a_case_gives_the_client_certificate_to_cedar_and_biscuit() {
        let cert = r#"mtls = { spiffe_id = "spiffe://e.org/agent", dns = ["agent.svc"], subject = "agent", fingerprint = "00FF000000000000000000000000000000000000000000000000000000000000" }"#;
        let cases = format!(
            r#"
[[case]]
name = "with"
principal = {{ subject = "spiffe://e.org/agent", auth_method = "mtls" }}
{cert}
action = "call_tool"
tool = "echo"
expect = "allow"
policies = ["agent-echo"]
expect_listed = true

[[case]]
name = "without"
principal = {{ subject = "spiffe://e.org/agent" }}
action = "call_tool"
tool = "echo"
expect = "deny"
expect_listed = false
"#
        );
        let (_dir, file) = write_dir(AGENT_ECHO, &cases);
        let report = run_test_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.cases.len(), 2);
        assert!(report.all_passed(), "{report}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.datalog"),
            r#"allow if mtls_client("spiffe://e.org/agent"), mtls_spiffe_id("spiffe://e.org/agent"), mtls_dns("agent.svc"), mtls_subject("agent"), mtls_fingerprint("00ff000000000000000000000000000000000000000000000000000000000000");"#,
        )
        .unwrap();
        let file = dir.path().join("t.toml");
        let cases = format!(
            r#"
[[case]]
name = "x"
token = ['user("a");']
{cert}
action = "call_tool"
tool = "t"
expect = "allow"

[[case]]
name = "y"
token = ['user("a");']
action = "call_tool"
tool = "t"
expect = "deny"
"#
        );
        std::fs::write(&file, cases).unwrap();
        let report = run_test_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.all_passed(), "{report}");
    }

    #[test]
    fn a_bad_client_certificate_in_a_case_is_named() {
        let case = |principal: &str, mtls: &str| {
            let cases = format!(
                "[[case]]\nname = \"c\"\nprincipal = {principal}\n{mtls}\naction = \"call_tool\"\ntool = \"echo\"\nexpect = \"allow\"\n"
            );
            let (_dir, file) = write_dir(ECHO, &cases);
            run_test_file(&file).unwrap_err().to_string()
        };
        let alice = r#"{ subject = "alice" }"#;
        let err = case(alice, r#"mtls = { fingerprint = "abc" }"#);
        assert!(
            err.contains("case `c`: `mtls.fingerprint` `abc`: expected"),
            "{err}"
        );
        let err = case(alice, r#"mtls = { spiffe_id = "https://x" }"#);
        assert!(err.contains("`mtls.spiffe_id` `https://x`"), "{err}");
        let err = case(r#"{ subject = "a", auth_method = "mtls" }"#, "");
        assert!(err.contains("needs the certificate: give `mtls`"), "{err}");
        let err = case(alice, r#"mtls = { serial = "1" }"#);
        assert!(err.contains("serial"), "{err}");
    }

    #[test]
    fn token_cases_under_either_engine() {
        let (_dir, file) = write_dir(
            ECHO,
            r#"
[[case]]
name = "cedar permits echo; the token's own check still applies"
token = ['user("a");', 'check if tool("other");']
action = "call_tool"
tool = "echo"
expect = "deny"
policies = ["token/block1/check0"]

[[case]]
name = "bad token datalog"
token = ['user("a"']
action = "call_tool"
tool = "echo"
expect = "deny"
"#,
        );
        let err = run_test_file(&file).unwrap_err().to_string();
        assert!(
            err.contains("tests.toml:10: case `bad token datalog`: `token` block 0"),
            "{err}"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            &text[..text.find("\n[[case]]\nname = \"bad").unwrap()],
        )
        .unwrap();
        let report = run_test_file(&file).unwrap();
        assert!(report.all_passed(), "{report}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.datalog"), "allow if user(\"a\");").unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[[case]]\nname = \"x\"\ntoken = ['user(\"a\");']\naction = \"call_tool\"\ntool = \"t\"\nexpect = \"allow\"\n\n[[case]]\nname = \"y\"\nprincipal = { subject = \"a\" }\naction = \"call_tool\"\ntool = \"t\"\nexpect = \"deny\"\n",
        )
        .unwrap();
        let report = run_test_file(&file).unwrap();
        assert!(report.all_passed(), "{report}");
    }

    #[test]
    fn pass_and_fail_are_reported() {
        let (_dir, file) = write_dir(
            ECHO,
            r#"
[[case]]
name = "echo ok"
principal = { subject = "a" }
method = "tools/call"
tool = "echo"
expect = "allow"
policies = ["echo"]
expect_listed = true

[[case]]
name = "wrong expectation"
principal = { subject = "a" }
action = "call_tool"
tool = "other"
expect = "allow"

[[case]]
name = "wrong ids"
principal = { subject = "a" }
action = "call_tool"
tool = "echo"
expect = "allow"
policies = ["nope"]

[[case]]
name = "listing only"
principal = { subject = "a" }
tool = "other"
expect_listed = true
"#,
        );
        let report = run_test_file(&file).unwrap();
        let passed: Vec<bool> = report.cases.iter().map(|c| c.passed).collect();
        assert_eq!(passed, [true, false, false, false], "{report}");
        assert!(!report.all_passed());
        assert_eq!(report.failed(), 3);
        assert!(
            report.cases[1].detail.contains("expected allow, got deny"),
            "{report}"
        );
        assert!(report.cases[2].detail.contains("[nope]"), "{report}");
        assert!(report.cases[3]
            .detail
            .contains("expected listed, got hidden"));
        assert_eq!(report.cases[1].line, 11);
        let shown = report.to_string();
        assert!(shown.contains("tests.toml:11"), "{shown}");
        assert!(shown.ends_with(&format!(
            "1 passed, 3 failed ({})",
            report.policy_dir.display()
        )));
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let (_dir, file) = write_dir(
            ECHO,
            "[[case]]\nname = \"x\"\nprincipal = { subject = \"a\" }\nactoin = \"call_tool\"\n",
        );
        let err = run_test_file(&file).unwrap_err().to_string();
        assert!(err.contains("tests.toml:4:"), "{err}");

        let (_dir, file) = write_dir(
            ECHO,
            "\n[[case]]\nname = \"no tool\"\nprincipal = { subject = \"a\" }\naction = \"call_tool\"\nexpect = \"deny\"\n",
        );
        let err = run_test_file(&file).unwrap_err().to_string();
        assert!(err.contains("tests.toml:2: case `no tool`"), "{err}");
        assert!(err.contains("needs `tool`"), "{err}");
    }

    #[test]
    fn policy_errors_are_passed_through() {
        let (_dir, file) = write_dir("permit (", "");
        let err = run_test_file(&file).unwrap_err();
        assert!(matches!(err, TestFileError::Policy { .. }), "{err}");
        assert!(err.to_string().contains("p.cedar:1:"), "{err}");
    }

    #[test]
    fn methods_map_to_actions() {
        assert_eq!(action_for_method("tools/call"), "call_tool");
        assert_eq!(action_for_method("notifications/initialized"), "protocol");
        assert_eq!(
            action_for_method("resources/unsubscribe"),
            "subscribe_resource"
        );
        assert_eq!(action_for_method("sampling/createMessage"), "other");
    }
}
