//! Biscuit, in one place: verifying bearer tokens (root keys and their rotation,
//! revocation, expiry, a verified-token cache), the run limits of every Datalog
//! evaluation, the identity a token's authority block stands for, and the token tools
//! behind `mcp-warden keygen` and `mcp-warden token mint|attenuate|inspect`.
//!
//! This module is a leaf: it depends on `biscuit-auth` and plain data, never on the
//! rest of the proxy. `auth` turns a [`TokenIdentity`] into its `Identity` (and a
//! [`VerifyError`] into its `AuthError`); `policy` runs a token's checks with the
//! request's facts under the same [`DatalogLimits`]; the command line calls [`tools`].
//!
//! - [`BiscuitVerifier`] (see [`verify`]): `[auth.biscuit]` → verified tokens.
//! - [`DatalogLimits`]: `[policy.biscuit.limits]`, read by both the authenticator and
//!   the policy engine, so one setting bounds every evaluation.
//! - [`keys`]: public and private key text in the forms operators meet.
//! - [`tools`]: key generation, minting, attenuation and inspection.

mod config;
mod error;
mod identity;
pub mod keys;
mod token;
pub mod tools;
pub mod verify;

pub use config::{default_limits, BiscuitConfig, BiscuitKeyConfig, DatalogLimits};
pub use error::{ConfigError, VerifyError};
pub use identity::{identity_from_token, TokenIdentity};
pub use token::BiscuitToken;
pub use verify::{is_time_only_check, parse_revocation_list, BiscuitVerifier};
