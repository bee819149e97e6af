//! The Cedar listing rule in one pass: a list result's items are judged without
//! evaluating every policy once per item.
//!
//! Why: a list of 1,000 tools under 1,000 policies would otherwise cost a million
//! policy evaluations. Most items look the same to most policies: a policy that never
//! reads the resource's identity (its uid, `name` or `uri`) sees only what the item
//! declares (a tool's annotations and pinning facts), so every item with the same
//! declaration gets the same answer from it.
//!
//! At load time the policies of each listed action (`call_tool` in its list-time form,
//! `get_prompt` likewise, `read_resource`) are split in three:
//! - **blind**: no `resource == …`/`in` scope and conditions that read the resource only
//!   through the attributes an item declares (`resource.annotations`, `.pinned`,
//!   `.invisible_characters` of a tool; nothing of a prompt or a resource);
//! - **generic sensitive**: no `resource == …` scope, but conditions that may read the
//!   resource's identity (`resource.name like …`, `resource == …`, `resource is …`);
//! - **specific**: `resource == <uid>` scopes, kept by that uid.
//!
//! Per list, the blind set is evaluated once per *class* of items (same kind, same
//! declared attributes) and the answer kept; for each item, only the specific policies
//! naming it and the generic sensitive ones are evaluated. Cedar's partial answer is a
//! handful of flags that combine by "or" across disjoint policy sets ([`Flags`]), so the
//! combined answer is exactly the answer of evaluating all of them together (the unit
//! tests check it against the single-pass rule on generated policy sets).

use std::collections::HashMap;

use cedar_policy::{Effect, Entity, EntityUid, Policy, PolicySet, ResourceConstraint};
use parking_lot::Mutex;
use serde_json::Value;

use super::{engine_error, BuildError, CedarEngine, ListingParts};
use crate::policy::load::PolicyLoadError;
use crate::policy::{ListedItem, Listing};

/// What Cedar's partial answer says, reduced to what the listing rule reads. Each flag
/// is an "or" over the evaluated policies, so the flags of disjoint sets combine with
/// [`Flags::or`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Flags {
    /// A `forbid` errored whatever the arguments (fail closed: hides).
    forbid_errored: bool,
    /// A `forbid` is satisfied whatever the arguments.
    forbid_satisfied: bool,
    /// A `permit` is satisfied whatever the arguments.
    permit_satisfied: bool,
    /// A `permit` depends on the arguments (some call might be allowed).
    permit_residual: bool,
}

impl Flags {
    pub(super) fn of(engine: &CedarEngine, response: &cedar_policy::PartialResponse) -> Self {
        let mut flags = Flags {
            forbid_errored: response
                .definitely_errored()
                .any(|id| engine.forbids.contains(id)),
            ..Flags::default()
        };
        for policy in response.definitely_satisfied() {
            match policy.effect() {
                Effect::Forbid => flags.forbid_satisfied = true,
                Effect::Permit => flags.permit_satisfied = true,
            }
        }
        flags.permit_residual = response
            .nontrivial_residuals()
            .any(|p| p.effect() == Effect::Permit);
        flags
    }

    fn or(self, other: Flags) -> Flags {
        Flags {
            forbid_errored: self.forbid_errored || other.forbid_errored,
            forbid_satisfied: self.forbid_satisfied || other.forbid_satisfied,
            permit_satisfied: self.permit_satisfied || other.permit_satisfied,
            permit_residual: self.permit_residual || other.permit_residual,
        }
    }

    /// Hidden whatever the other policies say.
    fn hides(self) -> bool {
        self.forbid_errored || self.forbid_satisfied
    }

    /// The listing rule on Cedar's partial decision: a concrete deny (a satisfied or
    /// erroring forbid, or no permit that can hold) hides; a concrete allow or a
    /// residual (the answer depends on the arguments) lists. A residual `forbid` cannot
    /// hide: some arguments may avoid it.
    pub(super) fn listed(self) -> bool {
        !self.hides() && (self.permit_satisfied || self.permit_residual)
    }
}

/// The policies of one listed action, split for one-pass listing (module docs).
pub(super) struct ListingIndex {
    blind: PolicySet,
    /// The annotations the blind policies read (`resource.annotations.<key>` or
    /// `has <key>`); `None` if one reads the record whole. Only these tell classes apart.
    annotation_keys: Option<Vec<String>>,
    generic_sensitive: PolicySet,
    /// For each uid named by a `resource == …` scope: those policies plus the generic
    /// sensitive ones.
    by_resource: HashMap<EntityUid, PolicySet>,
}

impl ListingIndex {
    /// Splits `policies`; `declared` are the resource attributes an item declares.
    pub(super) fn build<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
        declared: &[&str],
    ) -> Result<Self, PolicyLoadError> {
        let mut blind = Vec::new();
        let mut sensitive = Vec::new();
        let mut specific: HashMap<EntityUid, Vec<&Policy>> = HashMap::new();
        for policy in policies {
            match policy.resource_constraint() {
                ResourceConstraint::Eq(uid) => specific.entry(uid).or_default().push(policy),
                ResourceConstraint::Any | ResourceConstraint::Is(_)
                    if reads_only(policy, declared)? =>
                {
                    blind.push(policy)
                }
                _ => sensitive.push(policy),
            }
        }
        let set = |policies: &[&Policy]| -> Result<PolicySet, PolicyLoadError> {
            PolicySet::from_policies(policies.iter().map(|p| (*p).clone())).map_err(engine_error)
        };
        let mut by_resource = HashMap::with_capacity(specific.len());
        for (uid, mut policies) in specific {
            policies.extend(sensitive.iter().copied());
            by_resource.insert(uid, set(&policies)?);
        }
        let mut annotation_keys = Some(Vec::new());
        for policy in &blind {
            let est = policy.to_json().map_err(engine_error)?;
            if let (Some(conditions), Some(keys)) = (est.get("conditions"), &mut annotation_keys) {
                if !annotations_read(conditions, keys) {
                    annotation_keys = None;
                }
            }
        }
        if let Some(keys) = &mut annotation_keys {
            keys.sort();
            keys.dedup();
        }
        Ok(ListingIndex {
            blind: set(&blind)?,
            annotation_keys,
            generic_sensitive: set(&sensitive)?,
            by_resource,
        })
    }
}

/// Do the policy's conditions read `resource` only as `resource.<attr>` (or `resource has
/// <attr>`) with `attr` in `declared`?
fn reads_only(policy: &Policy, declared: &[&str]) -> Result<bool, PolicyLoadError> {
    let est = policy.to_json().map_err(engine_error)?;
    Ok(est
        .get("conditions")
        .is_none_or(|conditions| !reads_identity(conditions, declared)))
}

/// Does this part of a policy (Cedar's JSON form) mention `resource` other than through
/// a declared attribute?
fn reads_identity(node: &Value, declared: &[&str]) -> bool {
    match node {
        Value::Object(map) => {
            if map.get("Var").and_then(Value::as_str) == Some("resource") {
                return true;
            }
            for op in [".", "has"] {
                if let Some(Value::Object(access)) = map.get(op) {
                    let on_resource =
                        access.get("left") == Some(&serde_json::json!({"Var": "resource"}));
                    let attr = access.get("attr").and_then(Value::as_str);
                    if on_resource && attr.is_some_and(|a| declared.contains(&a)) && map.len() == 1
                    {
                        return access
                            .iter()
                            .filter(|(k, _)| k.as_str() != "left")
                            .any(|(_, v)| reads_identity(v, declared));
                    }
                }
            }
            map.values().any(|child| reads_identity(child, declared))
        }
        Value::Array(items) => items.iter().any(|child| reads_identity(child, declared)),
        _ => false,
    }
}

/// Collects into `keys` the annotations this part of a policy reads; `false` if it reads
/// `resource.annotations` other than one key at a time.
fn annotations_read(node: &Value, keys: &mut Vec<String>) -> bool {
    let annotations =
        serde_json::json!({".": {"left": {"Var": "resource"}, "attr": "annotations"}});
    match node {
        Value::Object(map) => {
            if *node == annotations {
                return false;
            }
            for op in [".", "has"] {
                if let Some(Value::Object(access)) = map.get(op) {
                    if access.get("left") == Some(&annotations) && map.len() == 1 {
                        if let Some(attr) = access.get("attr").and_then(Value::as_str) {
                            keys.push(attr.to_owned());
                            return true;
                        }
                    }
                }
            }
            map.values().all(|child| annotations_read(child, keys))
        }
        Value::Array(items) => items.iter().all(|child| annotations_read(child, keys)),
        _ => true,
    }
}

/// What of an item's annotations the blind policies can see, as JSON text.
fn class_annotations(
    keys: Option<&[String]>,
    declared: Option<&serde_json::Map<String, Value>>,
) -> String {
    let full = super::with_hint_defaults(declared);
    match keys {
        None => Value::Object(full).to_string(),
        Some(keys) => {
            let seen: Vec<Option<&Value>> = keys.iter().map(|k| full.get(k)).collect();
            serde_json::to_string(&seen).unwrap_or_default()
        }
    }
}

/// A [`Listing`] under one Cedar generation: the caller's parts, and the blind answer
/// per class of items seen so far in this list.
pub(super) struct CedarListing<'a> {
    pub(super) engine: &'a CedarEngine,
    /// `None` if the caller's parts could not be built: every item is hidden.
    pub(super) parts: Option<ListingParts>,
    pub(super) classes: Mutex<HashMap<ClassKey, Flags>>,
}

/// What the blind policies can see of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ClassKey {
    action: &'static str,
    pinned: bool,
    invisible_characters: bool,
    /// The declared annotations after the spec's defaults, as JSON text.
    annotations: String,
}

impl Listing for CedarListing<'_> {
    fn may_list(&self, item: &ListedItem<'_>) -> bool {
        let Some(parts) = &self.parts else {
            return false;
        };
        self.try_may_list(parts, item).unwrap_or(false)
    }
}

impl CedarListing<'_> {
    fn try_may_list(
        &self,
        parts: &ListingParts,
        item: &ListedItem<'_>,
    ) -> Result<bool, BuildError> {
        let engine = self.engine;
        let (action, resource) = engine.listed_call(item)?;
        let index = engine
            .one_pass
            .get(action)
            .ok_or(BuildError::UnknownAction { action })?;
        let key = ClassKey {
            action,
            pinned: item.definition.pinned,
            invisible_characters: item.definition.invisible_characters,
            annotations: if action == "call_tool" {
                class_annotations(index.annotation_keys.as_deref(), item.annotations)
            } else {
                String::new()
            },
        };
        let cached = self.classes.lock().get(&key).copied();
        let blind = match cached {
            Some(flags) => flags,
            None => {
                let flags = self.evaluate(parts, action, &index.blind, resource.clone())?;
                self.classes.lock().insert(key, flags);
                flags
            }
        };
        if blind.hides() {
            return Ok(false);
        }
        let uid = resource.uid();
        let sensitive = index
            .by_resource
            .get(&uid)
            .unwrap_or(&index.generic_sensitive);
        if sensitive.is_empty() {
            return Ok(blind.listed());
        }
        let item_flags = self.evaluate(parts, action, sensitive, resource)?;
        Ok(blind.or(item_flags).listed())
    }

    fn evaluate(
        &self,
        parts: &ListingParts,
        action: &'static str,
        policies: &PolicySet,
        resource: Entity,
    ) -> Result<Flags, BuildError> {
        if policies.is_empty() {
            return Ok(Flags::default());
        }
        let response = self
            .engine
            .partial_listing(parts, action, policies, resource)?;
        Ok(Flags::of(self.engine, &response))
    }
}
