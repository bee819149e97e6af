//! Learned pins in shared state: with `[state] backend = "redis"`, the first definition
//! any replica saw of a name is the one every replica holds the server to
//! ([`crate::pins::learned`]). The memory backend keeps the catalogue's own
//! process-local rule.

use crate::pins::learned::{decode, encode};
use crate::pins::{Claim, Definition, DefinitionKind, LearnedStore};

use super::{Feature, SharedState, Store};

impl LearnedStore for SharedState {
    fn claim(&self, kind: DefinitionKind, definition: &Definition) -> Claim {
        let Store::Redis(r) = &self.store else {
            return Claim::Local;
        };
        let key = r.learned_pin_key(&format!("{}:{}", kind.label(), definition.name));
        let started = std::time::Instant::now();
        let claimed = r.claim_blocking(&key, &encode(definition));
        self.metrics.observe(started.elapsed(), claimed.is_ok());
        match claimed {
            Ok(None) => Claim::Held(definition.clone()),
            Ok(Some(held)) => match decode(kind, &definition.name, &held) {
                Some(earlier) => Claim::Held(earlier),
                None => {
                    self.metrics.unavailable(Feature::LearnedPins);
                    Claim::Unavailable(format!("`{key}` does not hold a definition"))
                }
            },
            Err(e) => {
                self.metrics.unavailable(Feature::LearnedPins);
                Claim::Unavailable(e.to_string())
            }
        }
    }
}
