//! Authorization: one chokepoint, [`PolicyEngine::decide`], for every message, and one
//! listing rule, [`PolicyEngine::listing`], for filtering list results: a [`Listing`]
//! built once per list from the caller, the environment and one generation, then asked
//! per item.
//!
//! The engine sees plain data ([`AuthzRequest`]): the caller's [`Identity`], the
//! classified [`McpAction`], what the proxy knows of the target (the annotations the
//! server declared in its own `tools/list`) and the request environment. It answers with
//! a [`Decision`] that carries its reasons, so the audit log and the client error can say
//! which policies decided. Any engine error is a deny.
//!
//! Pieces:
//! - [`cedar`]: the Cedar engine (the request model and decision rules);
//! - [`biscuit`]: the Biscuit engine (Datalog authorizer, request facts, listing), and
//!   [`TokenChecks`], which enforces a Biscuit caller's token checks under any engine;
//! - [`load`]: reading a policy directory, validating it, `file:line:col` diagnostics;
//! - [`store`]: the current [`Generation`], swapped atomically on reload;
//! - [`watch`]: a debounced file watcher (policies, and other reloadable files);
//! - [`testcases`]: the `mcp-warden policy test` runner;
//! - `convert`: JSON → Cedar values without Cedar's JSON escapes;
//! - [`item_annotations`]: a list item's annotations, raw from the upstream's text or a
//!   map, as the listing rules read them;
//! - `extension_cache`: the context's `datetime` and `ipaddr` expressions, built once per
//!   second and per address rather than per request.

use std::net::IpAddr;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::mcp::{ListKind, McpAction};

/// What the proxy knows about the request besides who and what.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEnv {
    /// When the request arrived.
    pub time: SystemTime,
    /// The client's address, if known.
    pub source_ip: Option<IpAddr>,
    /// `Mcp-Session-Id`, if the request carries one.
    pub session_id: Option<String>,
    /// Taint labels of the session and credential, sorted (see [`crate::taint`]).
    pub taints: Vec<String>,
    /// The MCP protocol revision, from `MCP-Protocol-Version` or the body.
    pub protocol_version: Option<String>,
    /// The connection's verified client certificate (Cedar `context.mtls`, Biscuit
    /// `mtls_client(…)` and friends).
    pub mtls: Option<std::sync::Arc<crate::auth::ClientCert>>,
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// Who asks.
    pub identity: &'a Identity,
    /// What they ask for.
    pub action: &'a McpAction,
    /// The target's declared metadata, e.g. a tool's `annotations` object from the
    /// server's `tools/list`, after operator overrides. `None` when unknown.
    pub annotations: Option<&'a Map<String, Value>>,
    /// What pinning says of the target's definition (tools only; all `false` otherwise).
    pub definition: DefinitionFacts,
    /// Where, when, which session.
    pub env: &'a RequestEnv,
}

/// What the proxy knows of a tool's definition from pinning ([`crate::pins`]): Cedar's
/// `resource.pinned` and `resource.invisible_characters`, Biscuit's `pinned($tool)` and
/// `invisible_characters($tool)`. Both `false` when pinning is off or nothing is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefinitionFacts {
    /// The definition matches an approved pin.
    pub pinned: bool,
    /// The definition carries invisible or control characters.
    pub invisible_characters: bool,
}

/// One item of a list result, as the listing rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct ListedItem<'a> {
    /// Which list it came from.
    pub kind: ListKind,
    /// The item's name (tool/prompt name, resource URI, or URI template).
    pub name: &'a str,
    /// The item's `annotations` object, if it declares one (raw members of the
    /// upstream's text, or a map).
    pub annotations: Option<ItemAnnotations<'a>>,
    /// What pinning says of the item's definition (tools only).
    pub definition: DefinitionFacts,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Allowed?
    pub allow: bool,
    /// The policies that determined the answer (permits for an allow, forbids for a
    /// deny; empty for a default deny).
    pub policy_ids: Vec<String>,
    /// Why a deny was not a plain one: failed checks (`failed_check: …`, see
    /// [`FAILED_CHECK`]) and evaluation errors. Non-empty errors never turn a deny into
    /// an allow.
    pub errors: Vec<String>,
    /// The policy generation that answered (see [`crate::policy::PolicyStore`]).
    pub generation: u64,
}

/// How a [`Decision`] ended: the `decision` label of the metrics and the `outcome` of
/// the audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// Denied by policy: no permit, a forbid or `deny` matched, or a check failed (the
    /// authorizer's, or a Biscuit block's such as an attenuation's `check if tool(…)`).
    Deny,
    /// Denied because evaluation failed (fail closed): an engine error, a run limit
    /// exceeded, arguments that cannot be turned into facts, …
    Error,
}

/// The first word of an [`Decision::errors`] entry that reports a failed check: a
/// denial by policy, not an evaluation failure (see [`Decision::outcome`]).
pub const FAILED_CHECK: &str = "failed_check: ";

impl Decision {
    /// Allow; deny when no error or only failed checks explain it; error otherwise.
    pub fn outcome(&self) -> Outcome {
        if self.allow {
            Outcome::Allow
        } else if self.errors.iter().all(|e| e.starts_with(FAILED_CHECK)) {
            Outcome::Deny
        } else {
            Outcome::Error
        }
    }

    /// A deny with a reason and no deciding policy, for failures before evaluation.
    pub fn deny_error(reason: impl Into<String>, generation: u64) -> Self {
        Decision {
            allow: false,
            policy_ids: Vec::new(),
            errors: vec![reason.into()],
            generation,
        }
    }
}

/// An authorization engine: [`CedarEngine`] or [`BiscuitEngine`].
///
/// Implementations are immutable once built: hot reload builds a new engine and swaps it
/// in, so a request holds the engine it started with until it finishes.
pub trait PolicyEngine: Send + Sync {
    /// Short name for audit lines and metrics (`"cedar"`, `"biscuit"`).
    fn name(&self) -> &'static str;

    /// Decide one message. Must not panic; any internal error is a deny.
    fn decide(&self, request: &AuthzRequest<'_>) -> Decision;

    /// The listing rule for one list result: what depends only on the caller and the
    /// environment is prepared here, once, and each item is then judged with
    /// [`Listing::may_list`]. The listing borrows this engine, so every item of the list
    /// is judged by the generation it was built from.
    fn listing<'a>(&'a self, query: &ListQuery<'a>) -> Box<dyn Listing + 'a>;

    /// The listing rule for a single item: a listing of one (tests, `policy test`).
    fn may_list(&self, identity: &Identity, item: &ListedItem<'_>, env: &RequestEnv) -> bool {
        self.listing(&ListQuery { identity, env }).may_list(item)
    }
}

/// Who asks for a list, and in what environment: the same for every item of it.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// The caller.
    pub identity: &'a Identity,
    /// The list request's environment (its time, address, session and taints).
    pub env: &'a RequestEnv,
}

/// One list result being filtered (see [`PolicyEngine::listing`]).
pub trait Listing {
    /// `true` if some call to `item` could be allowed for this caller (whatever its
    /// arguments), `false` if every call would be denied. Any failure is `false`.
    fn may_list(&self, item: &ListedItem<'_>) -> bool;
}

/// A [`Listing`] that lists every item (test engines).
#[cfg(test)]
pub(crate) struct ListEverything;

#[cfg(test)]
impl Listing for ListEverything {
    fn may_list(&self, _: &ListedItem<'_>) -> bool {
        true
    }
}

pub mod biscuit;
pub mod cedar;
mod convert;
mod extension_cache;
pub mod item_annotations;
pub mod load;
pub mod scopes;
pub mod store;
pub mod testcases;
pub mod watch;

pub use biscuit::{BiscuitEngine, BiscuitPolicyConfig, TokenChecks};
pub use cedar::CedarEngine;
pub use convert::{ConvertError, MAX_DEPTH};
pub use item_annotations::ItemAnnotations;
pub use load::{LineCol, PolicyBundle, PolicyLoadError, SourceDiagnostic};
pub use store::{EngineKind, Generation, PolicyConfig, PolicyStore};
pub use testcases::{run_test_file, CaseResult, TestFileError, TestReport};
pub use watch::{spawn_watcher, WatchError, WatchHandle};
