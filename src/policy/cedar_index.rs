//! Which policies a decision evaluates: chosen by action and resource at load time, and
//! narrowed by the caller's principal and the session's taints when first needed.
//!
//! Why: a call used to evaluate every policy whose scope could match its action and
//! resource, so at 1,000 policies a `tools/call` evaluated a hundred of them, most of
//! which could not hold for that caller or that session. Each skip below is exact: the
//! skipped policy would have evaluated to false without an error, so Cedar's answer
//! (decision, reasons, errors) is the same without it.
//!
//! - **Action and resource** (load time): a policy is a candidate for an action if its
//!   action scope can match it, and for a resource unless its resource scope is
//!   `resource == <another entity>`.
//! - **Principal scope** (per caller): a policy scoped `principal == E` holds only for
//!   the caller `E`, and one scoped `principal in E` (or `is T in E`) only for `E` and
//!   its descendants. Every entity a principal scope names is a [`Scope`]; a caller's
//!   [`Class`] is the set of scopes it matches, computed once per cached caller in its
//!   own entity store (roles and their parents). Scope conditions are evaluated first
//!   and cannot error, so a policy whose scope the caller does not match is false.
//! - **Taint guard** (per session): Cedar evaluates `scope && when₁ && …` left to right
//!   and stops at the first false conjunct. A policy whose first condition is a `when`
//!   whose leftmost conjunct is `context.session.taints.contains("<label>")` cannot
//!   error before that test (the proxy always builds `context.session.taints`, a set of
//!   strings), so it is false for every session without `<label>`. Such a policy is
//!   evaluated only when the session carries the label. Only the leftmost conjunct of
//!   the first condition qualifies: anything evaluated before it could error, and an
//!   erroring `forbid` denies.
//!
//! The narrowed sets are lists of compiled policies ([`Candidates`], `cedar_eval.rs`)
//! built on first use and shared by every caller of the same class ([`Selections`],
//! bounded), in the bundle's order so that errors are reported in the order of the
//! unoptimised evaluation.

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{Entities, EntityUid, Policy, PrincipalConstraint, ResourceConstraint};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::engine_error;
use super::eval::Compiled;
use crate::policy::load::PolicyLoadError;

/// Selections kept per engine (one per action, resource bucket and caller class).
pub(super) const MAX_SELECTIONS: usize = 1024;

/// Taint-label combinations kept per selection.
const MAX_LABEL_SETS: usize = 64;

/// An entity named by a principal scope, and how it is named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    /// `principal == E`.
    Eq(EntityUid),
    /// `principal in E` or `principal is T in E`.
    In(EntityUid),
}

/// One policy and what tells whether a decision must evaluate it.
struct Slot {
    policy: Policy,
    /// Its condition, built once (`cedar_eval.rs`).
    compiled: Arc<Compiled>,
    /// The scope the caller must match (index into [`Policies::scopes`]), if any.
    scope: Option<u32>,
    /// The label of a leading `context.session.taints.contains("…")` guard, if any.
    guard: Option<String>,
}

/// Every policy of a generation, classified once (module docs).
pub(super) struct Policies {
    /// In the bundle's order.
    slots: Vec<Slot>,
    /// The distinct entities named by principal scopes.
    scopes: Vec<Scope>,
}

/// The scopes a caller matches (indices into [`Policies::scopes`], ascending).
pub(super) type Class = Arc<[u32]>;

/// The policies a decision evaluates, in the bundle's order.
pub(super) type Candidates = Arc<[Arc<Compiled>]>;

impl Policies {
    pub(super) fn new<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
    ) -> Result<Self, PolicyLoadError> {
        let mut scopes: Vec<Scope> = Vec::new();
        let mut positions: HashMap<Scope, u32> = HashMap::new();
        let mut slots = Vec::new();
        for policy in policies {
            let scope = match policy.principal_constraint() {
                PrincipalConstraint::Eq(uid) => Some(Scope::Eq(uid)),
                PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => {
                    Some(Scope::In(uid))
                }
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
            };
            let scope = scope.map(|scope| {
                *positions.entry(scope.clone()).or_insert_with(|| {
                    scopes.push(scope);
                    u32::try_from(scopes.len() - 1).unwrap_or(u32::MAX)
                })
            });
            slots.push(Slot {
                policy: policy.clone(),
                compiled: Compiled::new(policy),
                scope,
                guard: taint_guard(policy)?,
            });
        }
        Ok(Policies { slots, scopes })
    }

    /// The scopes the principal `principal` matches in `entities` (its own store).
    pub(super) fn class(&self, principal: &EntityUid, entities: &Entities) -> Class {
        self.scopes
            .iter()
            .zip(0u32..)
            .filter(|(scope, _)| match scope {
                Scope::Eq(e) => e == principal,
                // `is_ancestor_of` does not count an entity as its own ancestor; `in` does.
                Scope::In(e) => e == principal || entities.is_ancestor_of(e, principal),
            })
            .map(|(_, i)| i)
            .collect()
    }

    /// The indices of the policies `keep` accepts, in the bundle's order.
    pub(super) fn positions(&self, keep: impl Fn(&Policy) -> bool) -> Vec<u32> {
        self.slots
            .iter()
            .zip(0u32..)
            .filter(|(slot, _)| keep(&slot.policy))
            .map(|(_, i)| i)
            .collect()
    }

    fn set<'a>(&self, positions: impl IntoIterator<Item = &'a u32>) -> Candidates {
        positions
            .into_iter()
            .map(|&i| Arc::clone(&self.slots[i as usize].compiled))
            .collect()
    }
}

/// The label `policy`'s leading taint guard tests, if it has one (module docs).
fn taint_guard(policy: &Policy) -> Result<Option<String>, PolicyLoadError> {
    let est = policy.to_json().map_err(engine_error)?;
    let Some(first) = est
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| conditions.first())
    else {
        return Ok(None);
    };
    if first.get("kind").and_then(Value::as_str) != Some("when") {
        return Ok(None);
    }
    let mut leftmost = first.get("body");
    while let Some(and) = leftmost.and_then(|e| e.get("&&")) {
        leftmost = and.get("left");
    }
    Ok(leftmost.and_then(taints_contains))
}

/// `<label>` if `expr` is `context.session.taints.contains("<label>")`.
fn taints_contains(expr: &Value) -> Option<String> {
    let contains = expr.get("contains")?;
    let taints = json!({".": {"left": {".": {"left": {"Var": "context"}, "attr": "session"}}, "attr": "taints"}});
    if contains.get("left")? != &taints {
        return None;
    }
    contains
        .get("right")?
        .get("Value")?
        .as_str()
        .map(str::to_owned)
}

/// The candidates of one action, by resource (positions into [`Policies`]).
pub(super) struct Index {
    /// Policies whose resource scope is not `resource == …`.
    pub(super) generic: Vec<u32>,
    /// For each entity named by a `resource == …` scope: those policies and `generic`,
    /// in the bundle's order.
    pub(super) by_resource: HashMap<EntityUid, Vec<u32>>,
}

impl Index {
    pub(super) fn build(policies: &Policies, positions: &[u32]) -> Self {
        let mut generic = Vec::new();
        let mut by_resource: HashMap<EntityUid, Vec<u32>> = HashMap::new();
        for &i in positions {
            match policies.slots[i as usize].policy.resource_constraint() {
                ResourceConstraint::Eq(uid) => by_resource.entry(uid).or_default().push(i),
                _ => generic.push(i),
            }
        }
        for specific in by_resource.values_mut() {
            specific.extend(&generic);
            specific.sort_unstable();
        }
        Index {
            generic,
            by_resource,
        }
    }

    /// The bucket `resource` falls in: its own if a scope names it, else the generic one.
    pub(super) fn bucket(&self, resource: &EntityUid) -> (Option<&EntityUid>, &[u32]) {
        match self.by_resource.get_key_value(resource) {
            Some((uid, positions)) => (Some(uid), positions),
            None => (None, &self.generic),
        }
    }
}

/// The policies of one bucket that can match one class of callers.
pub(super) struct Selection {
    /// Those without a taint guard: evaluated for every session.
    unguarded: Candidates,
    /// All of them (guarded and not), in order.
    positions: Vec<u32>,
    /// The guard labels among them, sorted and distinct.
    labels: Vec<String>,
    /// Sets for sessions carrying some of `labels`, by the labels carried (sorted).
    with_labels: Mutex<HashMap<Vec<String>, Candidates>>,
}

impl Selection {
    fn new(policies: &Policies, bucket: &[u32], class: &[u32]) -> Self {
        let positions: Vec<u32> = bucket
            .iter()
            .copied()
            .filter(|&i| {
                policies.slots[i as usize]
                    .scope
                    .is_none_or(|s| class.binary_search(&s).is_ok())
            })
            .collect();
        let unguarded = positions
            .iter()
            .filter(|&&i| policies.slots[i as usize].guard.is_none());
        let mut labels: Vec<String> = positions
            .iter()
            .filter_map(|&i| policies.slots[i as usize].guard.clone())
            .collect();
        labels.sort_unstable();
        labels.dedup();
        Selection {
            unguarded: policies.set(unguarded),
            positions,
            labels,
            with_labels: Mutex::new(HashMap::new()),
        }
    }

    /// The policies to evaluate for a session with `taints`.
    pub(super) fn policies(&self, policies: &Policies, taints: &[String]) -> Candidates {
        if self.labels.is_empty() {
            return self.unguarded.clone();
        }
        let mut carried: Vec<String> = taints
            .iter()
            .filter(|t| self.labels.binary_search(t).is_ok())
            .cloned()
            .collect();
        if carried.is_empty() {
            return self.unguarded.clone();
        }
        carried.sort_unstable();
        carried.dedup();
        if let Some(set) = self.with_labels.lock().get(&carried) {
            return set.clone();
        }
        let set = policies.set(self.positions.iter().filter(|&&i| {
            policies.slots[i as usize]
                .guard
                .as_ref()
                .is_none_or(|g| carried.binary_search(g).is_ok())
        }));
        let mut cache = self.with_labels.lock();
        if cache.len() >= MAX_LABEL_SETS {
            cache.clear();
        }
        cache.insert(carried, set.clone());
        set
    }
}

/// Selections by action, resource bucket and caller class (module docs). Keys are
/// compared whole; at [`MAX_SELECTIONS`] the cache is emptied and refills.
#[derive(Default)]
pub(super) struct Selections {
    entries: Mutex<HashMap<SelectionKey, Arc<Selection>>>,
}

/// An action, the entity of its resource bucket (`None`: the generic one), a class.
type SelectionKey = (&'static str, Option<EntityUid>, Class);

impl Selections {
    /// The selection for `action` on `resource` (in `index`) for callers of `class`.
    pub(super) fn get(
        &self,
        policies: &Policies,
        action: &'static str,
        index: &Index,
        resource: &EntityUid,
        class: &Class,
    ) -> Arc<Selection> {
        let (bucket_uid, bucket) = index.bucket(resource);
        let key = (action, bucket_uid.cloned(), class.clone());
        if let Some(selection) = self.entries.lock().get(&key) {
            return selection.clone();
        }
        let selection = Arc::new(Selection::new(policies, bucket, class));
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_SELECTIONS {
            entries.clear();
        }
        entries.insert(key, selection.clone());
        selection
    }

    /// How many selections are cached (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(text: &str) -> Option<String> {
        taint_guard(&text.parse::<Policy>().unwrap()).unwrap()
    }

    #[test]
    fn only_the_leftmost_conjunct_of_the_first_when_is_a_guard() {
        let taints = r#"context.session.taints.contains("pii")"#;
        let cases = [
            (format!("when {{ {taints} }}"), Some("pii")),
            (
                format!("when {{ {taints} && resource.annotations.openWorldHint }}"),
                Some("pii"),
            ),
            (
                format!("when {{ ({taints} && principal.x) && context.y }}"),
                Some("pii"),
            ),
            (
                format!("when {{ {taints} }} when {{ context.z }}"),
                Some("pii"),
            ),
            // Something is evaluated before the test, and could error.
            (format!("when {{ principal.x && {taints} }}"), None),
            (format!("when {{ context.z }} when {{ {taints} }}"), None),
            (format!("unless {{ context.z }} when {{ {taints} }}"), None),
            // Not a conjunction: the other side may be evaluated even if the test fails.
            (format!("when {{ {taints} || context.z }}"), None),
            (format!("unless {{ {taints} }}"), None),
            (format!("when {{ !{taints} }}"), None),
            // Another set, or a non-literal label.
            (
                r#"when { context.taints.contains("pii") }"#.to_owned(),
                None,
            ),
            (
                r#"when { principal.session.taints.contains("pii") }"#.to_owned(),
                None,
            ),
            (
                r#"when { context.session.taints.contains(context.l) }"#.to_owned(),
                None,
            ),
            (
                r#"when { context.session.ids.contains("pii") }"#.to_owned(),
                None,
            ),
            (
                r#"when { context.session.taints.containsAny(["pii"]) }"#.to_owned(),
                None,
            ),
            (String::new(), None),
        ];
        for (conditions, expected) in cases {
            let text = format!("forbid (principal, action, resource) {conditions};");
            assert_eq!(guard(&text).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn a_label_with_escapes_is_the_string_it_denotes() {
        let text = r#"forbid (principal, action, resource) when { context.session.taints.contains("a\"b\u{e9}") };"#;
        assert_eq!(guard(text).as_deref(), Some("a\"b\u{e9}"));
    }
}
