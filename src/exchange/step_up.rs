//! OAuth step-up: a denial that only a token with more scopes would turn into an allow
//! becomes HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
//! scope="…"` (MCP 2025-11-25 authorization, RFC 6750 §3.1), so the client can ask its
//! authorization server for those scopes and retry, instead of an opaque policy denial.
//!
//! Which denials those are is the operator's to say: every policy that decided the
//! denial carries `@insufficient_scope("…")` ([`crate::policy::scopes`]). Anything else
//! stays a plain denial: a batch (one status cannot speak for several requests), a
//! message without an id, an evaluation error (fail closed is not a scope problem), a
//! refusal by the tool catalogue, a default deny (no policy names a scope), and callers
//! without a bearer token (an API key cannot be stepped up).

use serde_json::Value;

use crate::auth::{AuthMethod, Identity};
use crate::mcp::ParsedBody;
use crate::policy::scopes::ScopeRequirements;
use crate::policy::Outcome;

use super::refusal::{Refusal, StepUp};
use super::verdict::MessageDecision;

/// The step-up refusal for a denied body, if it is one (see the module docs).
pub fn challenge(
    identity: &Identity,
    body: &ParsedBody,
    decisions: &[MessageDecision],
    scopes: &ScopeRequirements,
    resource_metadata: Option<String>,
) -> Option<Refusal> {
    if scopes.is_empty()
        || body.batch
        || !matches!(identity.method, AuthMethod::Jwt | AuthMethod::Biscuit)
    {
        return None;
    }
    let ([message], [decided]) = (body.messages.as_slice(), decisions) else {
        return None;
    };
    let id: Value = message.id.clone()?;
    message.method.as_ref()?;
    if decided.problem.is_some() || decided.decision.outcome() != Outcome::Deny {
        return None;
    }
    let required = scopes.step_up(&decided.decision.policy_ids)?;
    Some(Refusal::InsufficientScope(Box::new(StepUp {
        scopes: required,
        id,
        policy_ids: decided.decision.policy_ids.clone(),
        resource_metadata,
    })))
}
