//! The exchange's questions to the shared state ([`crate::state`]): before a request is
//! decided, is its credential revoked and what taint does its caller carry
//! ([`check_caller`]); once a POST body is allowed, may it spend its rate-limit budget
//! ([`spend`]). Each is one round trip to Redis with the `redis` backend; the answers
//! become [`Refusal`]s here, so the Pingora glue only awaits them.

use super::admission::Admitted;
use super::decide::Forward;
use super::refusal::Refusal;
use super::Warden;

/// Revocation and taint of the admitted caller, in one round trip: the taint labels its
/// session and credential carry, or the refusal (revoked, or the shared state down and
/// failing closed).
pub async fn check_caller(warden: &Warden, admitted: &Admitted) -> Result<Vec<String>, Refusal> {
    let identity = &admitted.identity;
    let credential = warden.config.raw.taint.credential_key.key(identity);
    // Without a taint source nothing can have been recorded: no taint to read.
    let taint_keys = (!warden.sources.is_empty())
        .then_some((admitted.session_id.as_deref(), credential.as_str()));
    warden
        .state
        .check_caller(identity, taint_keys)
        .await
        .map(|caller| caller.taints)
        .map_err(|refusal| Refusal::from_state(refusal, warden.metadata_url()))
}

/// Spend the rate-limit budget of an allowed body (all its buckets or none). On a
/// refusal, the list requests the body registered with its session are no longer
/// outstanding (they will never be answered; an answer with their id is still filtered).
pub async fn spend(warden: &Warden, admitted: &Admitted, forward: &Forward) -> Result<(), Refusal> {
    let Err(refusal) = warden.state.take(&forward.spends).await else {
        return Ok(());
    };
    if let Some(sid) = admitted.session_id.as_deref() {
        for key in forward.awaited.lists.keys() {
            let _ = warden.sessions.take_pending(sid, key);
        }
    }
    Err(Refusal::from_state(refusal, warden.metadata_url()))
}
