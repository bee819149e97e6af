//! One caller's recent targets: the entity store of a question (static entities,
//! principal and resource) and the policies it evaluates, built once per caller and
//! resource and kept.
//!
//! Why: after the principal was cached, each decision still built the resource entity
//! (a tool's annotations through [`with_hint_defaults`](super::with_hint_defaults) and a
//! record), cloned the caller's entity store and added the resource to it (a
//! transitive-closure pass). All of that depends only on the caller and on the target's
//! description (a tool's name, declared annotations and definition facts; a resource's
//! URI; a prompt's name; a method), which repeat from call to call.
//!
//! Entries are found by a hash of the description and compared whole (annotations
//! included), never trusted by the hash alone; at [`MAX_TARGETS`] a caller's entries are
//! emptied and refill, so memory stays bounded (with the callers' own bound).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::eval::Plan;
use super::index::{Candidates, Class, Selection};
use super::{BuildError, CedarEngine};
use crate::mcp::{CompletionRef, McpAction};
use crate::policy::DefinitionFacts;

/// Targets kept per caller.
pub(super) const MAX_TARGETS: usize = 64;

/// Plans kept per target (one per action and set of candidates, `cedar_eval.rs`).
const MAX_PLANS: usize = 8;

/// What a question's resource entity is built from, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TargetRef<'a> {
    Tool {
        name: &'a str,
        annotations: Option<&'a Map<String, Value>>,
        definition: DefinitionFacts,
    },
    Resource(&'a str),
    Prompt(&'a str),
    Method(&'a str),
}

impl<'a> TargetRef<'a> {
    /// The target of `action` (annotations and facts count for a tool only).
    pub(super) fn of(
        action: &'a McpAction,
        annotations: Option<&'a Map<String, Value>>,
        definition: DefinitionFacts,
    ) -> Self {
        match action {
            McpAction::CallTool { name, .. } => TargetRef::Tool {
                name,
                annotations,
                definition,
            },
            McpAction::ReadResource { uri } | McpAction::SubscribeResource { uri, .. } => {
                TargetRef::Resource(uri)
            }
            McpAction::GetPrompt { name, .. } => TargetRef::Prompt(name),
            McpAction::Complete { reference } => match reference {
                CompletionRef::Prompt(name) => TargetRef::Prompt(name),
                CompletionRef::Resource(uri) => TargetRef::Resource(uri),
            },
            McpAction::List(kind) => TargetRef::Method(kind.method()),
            McpAction::Protocol { method } | McpAction::Other { method } => {
                TargetRef::Method(method)
            }
            McpAction::Response => TargetRef::Method("response"),
        }
    }

    /// The resource entity.
    pub(super) fn entity(self, engine: &CedarEngine) -> Result<Entity, BuildError> {
        match self {
            TargetRef::Tool {
                name,
                annotations,
                definition,
            } => engine.tool(name, annotations, definition),
            TargetRef::Resource(uri) => engine.resource_entity(uri),
            TargetRef::Prompt(name) => engine.prompt_entity(name),
            TargetRef::Method(method) => Ok(engine.method_entity(method)),
        }
    }

    fn key(self, state: &foldhash::fast::RandomState) -> u64 {
        match self {
            TargetRef::Tool {
                name, definition, ..
            } => state.hash_one((
                0u8,
                name,
                definition.pinned,
                definition.invisible_characters,
            )),
            TargetRef::Resource(uri) => state.hash_one((1u8, uri)),
            TargetRef::Prompt(name) => state.hash_one((2u8, name)),
            TargetRef::Method(method) => state.hash_one((3u8, method)),
        }
    }

    fn to_owned(self) -> OwnedTarget {
        match self {
            TargetRef::Tool {
                name,
                annotations,
                definition,
            } => OwnedTarget::Tool {
                name: name.to_owned(),
                annotations: annotations.cloned(),
                definition,
            },
            TargetRef::Resource(uri) => OwnedTarget::Resource(uri.to_owned()),
            TargetRef::Prompt(name) => OwnedTarget::Prompt(name.to_owned()),
            TargetRef::Method(method) => OwnedTarget::Method(method.to_owned()),
        }
    }
}

/// A [`TargetRef`], kept.
#[derive(Debug)]
enum OwnedTarget {
    Tool {
        name: String,
        annotations: Option<Map<String, Value>>,
        definition: DefinitionFacts,
    },
    Resource(String),
    Prompt(String),
    Method(String),
}

impl OwnedTarget {
    fn is(&self, target: TargetRef<'_>) -> bool {
        match (self, target) {
            (
                OwnedTarget::Tool {
                    name,
                    annotations,
                    definition,
                },
                TargetRef::Tool {
                    name: n,
                    annotations: a,
                    definition: d,
                },
            ) => name == n && annotations.as_ref() == a && *definition == d,
            (OwnedTarget::Resource(uri), TargetRef::Resource(u)) => uri == u,
            (OwnedTarget::Prompt(name), TargetRef::Prompt(n)) => name == n,
            (OwnedTarget::Method(method), TargetRef::Method(m)) => method == m,
            _ => false,
        }
    }
}

/// One caller's question about one target, minus the action and the context.
pub(super) struct Target {
    target: OwnedTarget,
    pub(super) resource_uid: EntityUid,
    /// The caller's store plus the resource.
    pub(super) entities: Entities,
    /// The policies that can apply, per action asked about this target.
    selections: Mutex<Vec<(&'static str, Arc<Selection>)>>,
    /// Candidates partially evaluated for this caller and target. An entry keeps its
    /// candidates alive, so the pointer it is found by cannot be reused by others.
    plans: Mutex<Vec<(Candidates, Arc<Plan>)>>,
}

impl Target {
    /// The policies to evaluate for `action` on this target by a caller of `class` in
    /// a session with `taints`.
    pub(super) fn policies(
        &self,
        engine: &CedarEngine,
        action: &'static str,
        class: &Class,
        taints: &[String],
    ) -> Result<Candidates, BuildError> {
        let known = self
            .selections
            .lock()
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, s)| s.clone());
        let selection = match known {
            Some(selection) => selection,
            None => {
                let index = engine
                    .by_action
                    .get(action)
                    .ok_or(BuildError::UnknownAction { action })?;
                let selection = engine.selections.get(
                    &engine.policies,
                    action,
                    index,
                    &self.resource_uid,
                    class,
                );
                self.selections.lock().push((action, selection.clone()));
                selection
            }
        };
        Ok(selection.policies(&engine.policies, taints))
    }

    /// `candidates` (from [`Self::policies`]) partially evaluated for the caller
    /// `principal` doing `action` on this target, built on first use.
    pub(super) fn plan(
        &self,
        candidates: &Candidates,
        principal: &EntityUid,
        action: &EntityUid,
    ) -> Arc<Plan> {
        let known = self
            .plans
            .lock()
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, candidates))
            .map(|(_, plan)| plan.clone());
        if let Some(plan) = known {
            return plan;
        }
        let plan = Arc::new(Plan::new(
            candidates,
            principal,
            action,
            &self.resource_uid,
            &self.entities,
        ));
        let mut plans = self.plans.lock();
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.push((candidates.clone(), plan.clone()));
        plan
    }
}

/// The cache (module docs).
#[derive(Default)]
pub(super) struct Targets {
    entries: Mutex<HashMap<u64, Arc<Target>>>,
    /// Hashes the key (foldhash: entries are compared whole, so a collision costs a
    /// rebuild, never a wrong answer).
    state: foldhash::fast::RandomState,
}

/// A target's entity, then its store: the store's error comes later in a decision's
/// order (after the context), so it is returned apart.
pub(super) type Built = Result<Result<Arc<Target>, BuildError>, BuildError>;

impl Targets {
    /// `target`'s entry for the caller whose store is `entities`, built if not cached.
    pub(super) fn get(
        &self,
        engine: &CedarEngine,
        entities: &Entities,
        target: TargetRef<'_>,
    ) -> Built {
        let key = target.key(&self.state);
        if let Some(known) = self.entries.lock().get(&key) {
            if known.target.is(target) {
                return Ok(Ok(known.clone()));
            }
        }
        let resource = target.entity(engine)?;
        let resource_uid = resource.uid();
        let entities = match entities.clone().add_entities([resource], None) {
            Ok(entities) => entities,
            Err(e) => {
                return Ok(Err(BuildError::Entity {
                    what: "request",
                    message: e.to_string(),
                }))
            }
        };
        let built = Arc::new(Target {
            target: target.to_owned(),
            resource_uid,
            entities,
            selections: Mutex::new(Vec::new()),
            plans: Mutex::new(Vec::new()),
        });
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_TARGETS {
            entries.clear();
        }
        entries.insert(key, built.clone());
        Ok(Ok(built))
    }

    /// How many targets are cached (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}
