//! One MCP exchange, without the network: a request admitted and decided, its answer
//! filtered. Everything between the bytes Pingora hands over and the bytes it sends on
//! is plain code here, unit-tested without a socket; [`crate::proxy`] only calls it.
//!
//! Named for the unit it handles, the *exchange* (one HTTP request and its answer, in
//! MCP's Streamable HTTP transport), not for a layer: it is neither the proxy (Pingora,
//! listeners, lifecycle) nor the policy (engines and their files), but what joins them.
//!
//! One request, in order:
//!
//! 1. [`admission::admit`] reads the head (path, method, `Origin`, credential, session)
//!    and returns who asks, in which session, and the [`admission::RequestKind`];
//! 2. [`shared::check_caller`] asks the shared state whether the credential is revoked
//!    and what taint the caller carries;
//! 3. for a POST, [`decide::decide`] parses the whole body and decides every message with
//!    [`verdict::authorize_body`], which asks [`crate::policy::PolicyEngine::decide`] —
//!    **this is where a `tools/call` is decided**; an allowed body then spends its
//!    rate-limit budget ([`shared::spend`]);
//! 4. [`forward`] says which identity headers the upstream gets;
//! 5. [`answer::Exchange`] handles the answer: [`answer::plan`] chooses from its head how
//!    (pass, filter JSON, filter SSE, watch, withhold), [`response`] filters list results
//!    and watches the answers to taint sources.
//!
//! Beside them: [`refusal`] is every error a client can get from the proxy, with its HTTP
//! status and JSON-RPC code; [`sessions`] binds sessions to principals and remembers
//! outstanding list requests; [`tasks`] binds task ids to the principal whose call
//! created them; [`annotations`] remembers the tools' declared hints;
//! [`observe`] logs, counts and audits; [`in_flight`] counts requests in flight; and
//! [`Warden`] is the state every exchange shares.

pub mod admission;
pub mod annotations;
pub mod answer;
pub mod decide;
pub mod forward;
pub mod in_flight;
pub mod observe;
pub mod refusal;
pub mod response;
pub mod sessions;
pub mod shared;
pub mod step_up;
pub mod tasks;
pub mod verdict;
mod warden;

pub use warden::{BuildError, Warden};

/// A shared state built from `config/example.toml`, for unit tests (no listener, no
/// network; the audit writer is not started).
#[cfg(test)]
pub(crate) fn test_warden() -> Warden {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config =
        crate::config::load_with_env(&path, std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
    Warden::build(config).unwrap_or_else(|e| panic!("{e}"))
}
