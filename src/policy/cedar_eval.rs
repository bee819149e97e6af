//! Evaluating a decision's selected policies: Cedar's own evaluator on conditions built
//! once, instead of `Authorizer::is_authorized` rebuilding them per request.
//!
//! Why: `Authorizer::is_authorized` asks each policy for its `condition()`, which builds
//! a fresh expression (`principal-scope && action-scope && resource-scope && when …`)
//! and drops it again, then collects a partial response (the id and annotations of every
//! policy evaluated) and concretizes it into a response, building a policy for every
//! reason. For the few policies a decision evaluates (`cedar_index.rs`), that was about
//! a third of the decision. Here every policy's condition is built once per generation
//! ([`Compiled::new`]) and interpreted by Cedar's evaluator (`cedar-policy-core`, the
//! crate `cedar-policy` itself runs on), and the outcome is read off in the authorizer's
//! terms: a permit or forbid satisfied, an evaluation error reported with the text the
//! authorizer gives it. Evaluation is Cedar's, step for step; only the bookkeeping
//! around it is ours, and a differential property test holds it to the authorizer's
//! answer (`cedar_decide_tests.rs`).
//!
//! **Plans.** Much of a condition does not depend on the request's context: the scope,
//! the principal's and the resource's attributes. Per caller and target (they are kept
//! together, `cedar_targets.rs`) each candidate is partially evaluated once with the
//! context unknown ([`Plan::new`]): a policy that is then true is satisfied for every
//! request on that target, and one that is false is dropped; the others are evaluated
//! whole per request. This is Cedar's own partial evaluation, sound for every context:
//! a value it reaches without the context is the value every context gives, and a
//! condition that fails or leaves a residual is evaluated as written, so its errors are
//! exactly the ones Cedar reports. (The residual itself is not kept: it holds the
//! context as an unknown, and substituting the context into it per request converts
//! the whole record into an expression and evaluates it again, which costs more than
//! the condition.)
//!
//! Fail closed: a condition that does not evaluate to a boolean, or leaves a residual
//! (neither can happen for a complete request), is a build error, so a deny.

use std::sync::Arc;

use cedar_policy::{AuthorizationError, Effect, Entities, EntityUid, Policy, PolicyId, Request};
use cedar_policy_core::ast::{self, EntityUIDEntry, Literal, PartialValue, ValueKind};
use cedar_policy_core::authorizer;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;

use super::BuildError;

/// One policy, ready to evaluate.
pub(super) struct Compiled {
    id: PolicyId,
    forbid: bool,
    /// `policy.condition()`, built once.
    condition: ast::Expr,
    /// The slots of a template-linked policy.
    env: ast::SlotEnv,
}

impl Compiled {
    pub(super) fn new(policy: &Policy) -> Arc<Self> {
        let core: &ast::Policy = policy.as_ref();
        Arc::new(Compiled {
            id: policy.id().clone(),
            forbid: policy.effect() == Effect::Forbid,
            condition: core.condition(),
            env: core.env().clone(),
        })
    }

    #[cfg(test)]
    pub(super) fn id(&self) -> &PolicyId {
        &self.id
    }
}

/// What is left of one candidate once the caller and the target are known.
enum Step {
    /// True for every context.
    Satisfied,
    /// Evaluated per request.
    Evaluate,
}

/// A target's candidates for one caller, partially evaluated (module docs).
pub(super) struct Plan {
    /// In the candidates' order; those false for every context are left out.
    steps: Vec<(Arc<Compiled>, Step)>,
}

impl Plan {
    /// Partially evaluates `candidates` for `principal` doing `action` on `resource`,
    /// with the context unknown.
    pub(super) fn new(
        candidates: &[Arc<Compiled>],
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        entities: &Entities,
    ) -> Self {
        let known = |uid: &EntityUid| EntityUIDEntry::known(uid.as_ref().clone(), None);
        let request =
            ast::Request::new_unchecked(known(principal), known(action), known(resource), None);
        let evaluator = Evaluator::new(request, entities.as_ref(), Extensions::all_available());
        let steps = candidates
            .iter()
            .filter_map(|policy| {
                let step = match evaluator.partial_interpret(&policy.condition, &policy.env) {
                    Ok(PartialValue::Value(value)) => match as_bool(&value) {
                        Some(true) => Step::Satisfied,
                        Some(false) => return None,
                        None => Step::Evaluate,
                    },
                    Ok(PartialValue::Residual(_)) | Err(_) => Step::Evaluate,
                };
                Some((Arc::clone(policy), step))
            })
            .collect();
        Plan { steps }
    }
}

/// What the authorizer's response says, for the evaluated policies.
pub(super) struct Outcome<'a> {
    /// Satisfied permits, in evaluation order.
    pub(super) permits: Vec<&'a PolicyId>,
    /// Satisfied forbids, in evaluation order.
    pub(super) forbids: Vec<&'a PolicyId>,
    /// Evaluation errors, in evaluation order: the authorizer's text and the policy.
    pub(super) errors: Vec<(String, &'a PolicyId)>,
}

impl<'a> Outcome<'a> {
    /// The authorizer's decision: a satisfied permit and no satisfied forbid.
    pub(super) fn allowed(&self) -> bool {
        !self.permits.is_empty() && self.forbids.is_empty()
    }

    /// The authorizer's reasons: the satisfied forbids if there are any, else the
    /// satisfied permits.
    pub(super) fn reasons(&self) -> &[&'a PolicyId] {
        if self.forbids.is_empty() {
            &self.permits
        } else {
            &self.forbids
        }
    }
}

/// Evaluates `plan` (in order) for `request` in `entities` (the store the plan was
/// made in), as the authorizer evaluates the policies the plan was made of.
pub(super) fn evaluate<'a>(
    plan: &'a Plan,
    request: &Request,
    entities: &Entities,
) -> Result<Outcome<'a>, BuildError> {
    let core_request: &ast::Request = request.as_ref();
    let evaluator = Evaluator::new(
        core_request.clone(),
        entities.as_ref(),
        Extensions::all_available(),
    );
    let mut outcome = Outcome {
        permits: Vec::new(),
        forbids: Vec::new(),
        errors: Vec::new(),
    };
    for (policy, step) in &plan.steps {
        let satisfied = match step {
            Step::Satisfied => true,
            Step::Evaluate => match evaluator.partial_interpret(&policy.condition, &policy.env) {
                Ok(PartialValue::Value(value)) => match as_bool(&value) {
                    Some(satisfied) => satisfied,
                    None => {
                        return Err(not_a_decision(&policy.id, "a value that is not a boolean"))
                    }
                },
                Ok(PartialValue::Residual(_)) => {
                    return Err(not_a_decision(&policy.id, "a residual"));
                }
                Err(error) => {
                    let error = AuthorizationError::from(
                        authorizer::AuthorizationError::PolicyEvaluationError {
                            id: AsRef::<ast::PolicyID>::as_ref(&policy.id).clone(),
                            error,
                        },
                    );
                    outcome.errors.push((error.to_string(), &policy.id));
                    continue;
                }
            },
        };
        if satisfied && policy.forbid {
            outcome.forbids.push(&policy.id);
        } else if satisfied {
            outcome.permits.push(&policy.id);
        }
    }
    Ok(outcome)
}

/// The boolean a condition evaluated to, if it is one.
fn as_bool(value: &ast::Value) -> Option<bool> {
    match value.value_kind() {
        ValueKind::Lit(Literal::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn not_a_decision(id: &PolicyId, what: &str) -> BuildError {
    BuildError::Request {
        message: format!("policy `{id}` evaluated to {what}"),
    }
}
