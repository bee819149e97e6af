//! Tool definitions pinned against rug pulls.
//!
//! An MCP server can change a tool's description or schema after it was reviewed —
//! adding hidden instructions for the model, widening a schema — and only client-side
//! scanners would notice. The proxy sees every list result, so it digests each tool,
//! prompt and resource template definition ([`definition`]), compares it with the
//! approved pins ([`file`](mod@file), written by `mcp-warden pin`, reviewed in Git, hot-reloaded),
//! and acts by mode ([`PinMode`]): `learn` trusts on first use, `enforce` lists and
//! lets through only pinned, unchanged tools, `warn` passes everything but audits and
//! counts. Invisible and control characters in definitions are flagged in every mode
//! ([`invisible`]). Policies see the outcome as `resource.pinned` and
//! `resource.invisible_characters` (Cedar) or `pinned($tool)` and
//! `invisible_characters($tool)` (Biscuit).
//!
//! [`Catalogue`] holds the runtime state and also owns each tool's compiled
//! `inputSchema`, with which [`crate::schema`] checks `tools/call` arguments.
//! [`cli`] is `mcp-warden pin` and `mcp-warden pin diff`.

pub mod catalogue;
pub mod cli;
pub mod definition;
pub mod diff;
pub mod fetch;
pub mod file;
pub mod invisible;
pub mod learned;

use std::path::PathBuf;

use serde::Deserialize;

pub use catalogue::{CallCheck, CallProblem, Catalogue, Change, Observed, PinEvent, PinStatus};
pub use definition::{Definition, DefinitionKind};
pub use file::{PinEntry, PinFile, PinFileError};
pub use learned::{Claim, LearnedStore, LocalOnly};

/// How definitions are held to their pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    /// No pinning (the default): definitions are not compared, nothing is flagged.
    #[default]
    Off,
    /// Trust on first use: a definition no pin holds is pinned (in memory) when first
    /// listed; a later change is treated as in `enforce` (hidden, calls refused) until
    /// approved in the pin file.
    Learn,
    /// Pass everything; audit and count new, changed and flagged definitions.
    Warn,
    /// Only pinned, unchanged definitions are listed and callable; a new or changed tool
    /// is hidden and its calls are refused until re-approved.
    Enforce,
}

/// `[pinning]`: tool definition pinning.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinningConfig {
    /// `off` (the default), `learn`, `warn` or `enforce`.
    pub mode: PinMode,
    /// The pin file (JSON, written by `mcp-warden pin`), relative to the configuration
    /// file. Required for `enforce`; optional for `learn` (its pins come first) and
    /// `warn`. Reloaded when it changes (with `policy.watch`) and on SIGHUP.
    pub file: Option<PathBuf>,
    /// Hide and refuse, in any mode but `off`, tools whose definition carries invisible
    /// or control characters. Off by default: they are always audited, and policies can
    /// refuse them (`resource.invisible_characters`).
    pub refuse_invisible: bool,
}

/// The pinning section is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum PinningConfigError {
    /// `enforce` without a pin file would list nothing.
    #[error("`pinning.mode = \"enforce\"` needs `pinning.file`\nhelp: write one with `mcp-warden pin --upstream <URL> --out pins.json`")]
    EnforceWithoutFile,
    /// The pin file.
    #[error(transparent)]
    File(#[from] PinFileError),
}

impl PinningConfig {
    /// Check the section on its own.
    pub fn check(&self) -> Result<(), PinningConfigError> {
        if self.mode == PinMode::Enforce && self.file.is_none() {
            return Err(PinningConfigError::EnforceWithoutFile);
        }
        Ok(())
    }
}
