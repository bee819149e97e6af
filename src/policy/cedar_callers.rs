//! The Cedar principal of recent callers, built once per caller and generation.
//!
//! Why: building the principal (its claims record, roles, scopes) and an entity store
//! that holds it (a clone of the static entities and a transitive-closure pass) was most
//! of a decision's own work, and it is the same for every request of one credential. The
//! cache belongs to one engine, so a policy reload (a new engine) starts it empty.
//!
//! Entries are found by a hash of the caller and then compared whole (`Identity` equality,
//! claims included), never trusted by the hash alone; at [`MAX_CALLERS`] the cache is
//! emptied and refills, so memory stays bounded whatever the traffic.
//!
//! Each entry also holds what depends on the caller alone: its [`Class`] (the principal
//! scopes it matches, see `cedar_index.rs`), its recent targets (`cedar_targets.rs`) and
//! its blind listing answers (`cedar_listing.rs`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use cedar_policy::{Entities, EntityUid};
use parking_lot::Mutex;

use super::index::Class;
use super::listing::ClassAnswers;
use super::targets::Targets;
use super::{BuildError, CedarEngine};
use crate::auth::Identity;

/// Callers kept per engine.
pub(super) const MAX_CALLERS: usize = 512;

/// One caller's principal, inside both entity stores a question uses.
pub(super) struct Caller {
    identity: Identity,
    pub(super) principal_uid: EntityUid,
    /// The static entities plus the principal.
    pub(super) entities: Entities,
    /// The list-time entities (with the unknown arguments) plus the principal.
    pub(super) listing_entities: Entities,
    /// The principal scopes it matches.
    pub(super) class: Class,
    /// Its recent targets.
    pub(super) targets: Targets,
    /// Its blind listing answers (`cedar_listing.rs`).
    pub(super) listing_answers: ClassAnswers,
}

/// The cache (module docs).
#[derive(Default)]
pub(super) struct Callers {
    entries: Mutex<HashMap<u64, Arc<Caller>>>,
    /// Hashes the key (foldhash: entries are compared whole, so a collision costs a
    /// rebuild, never a wrong answer).
    state: foldhash::fast::RandomState,
}

fn key(state: &foldhash::fast::RandomState, identity: &Identity) -> u64 {
    state.hash_one((
        &identity.subject,
        &identity.agent,
        &identity.roles,
        &identity.scopes,
        &identity.method,
    ))
}

impl Callers {
    /// `identity`'s entry, built with `engine` if it is not cached.
    pub(super) fn get(
        &self,
        engine: &CedarEngine,
        identity: &Identity,
    ) -> Result<Arc<Caller>, BuildError> {
        let key = key(&self.state, identity);
        if let Some(caller) = self.entries.lock().get(&key) {
            if caller.identity == *identity {
                return Ok(caller.clone());
            }
        }
        let caller = Arc::new(build(engine, identity)?);
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_CALLERS {
            entries.clear();
        }
        entries.insert(key, caller.clone());
        Ok(caller)
    }

    /// How many callers are cached (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

fn build(engine: &CedarEngine, identity: &Identity) -> Result<Caller, BuildError> {
    let principal = engine.principal(identity)?;
    let principal_uid = principal.uid();
    let with_principal = |base: &Entities| {
        base.clone()
            .add_entities([principal.clone()], None)
            .map_err(|e| BuildError::Entity {
                what: "principal",
                message: e.to_string(),
            })
    };
    let entities = with_principal(&engine.entities)?;
    Ok(Caller {
        identity: identity.clone(),
        class: engine.policies.class(&principal_uid, &entities),
        principal_uid,
        entities,
        listing_entities: with_principal(&engine.listing_entities)?,
        targets: Targets::default(),
        listing_answers: ClassAnswers::default(),
    })
}
