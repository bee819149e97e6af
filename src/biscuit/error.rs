//! Errors of the Biscuit module: [`VerifyError`] for a refused token, [`ConfigError`]
//! for a bad `[auth.biscuit]` section, key file or revocation list.
//!
//! [`VerifyError`] is deliberately terse: every variant carries only static text, so
//! nothing a client sent (least of all its token) reaches a log line or a header through
//! it. The authenticator maps each variant to the `AuthError` of the same name.

use std::path::PathBuf;

/// Why a bearer Biscuit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token does not decode (bad base64, truncated, not a Biscuit), or its Datalog
    /// cannot be evaluated.
    #[error("malformed credential")]
    Malformed,
    /// No configured root key has the token's `root_key_id`.
    #[error("no key for this token")]
    UnknownKey,
    /// The signature chain does not verify with the chosen root key.
    #[error("invalid token signature")]
    BadSignature,
    /// A block's revocation id is on the revocation list.
    #[error("token revoked")]
    Revoked,
    /// A check that only reads `time` fails now (the token or a block expired).
    #[error("token expired")]
    Expired,
    /// The authority block names more than one user (subject fact).
    #[error("token names more than one user")]
    AmbiguousSubject,
    /// Evaluating the token's own Datalog (its identity facts or its expiry) exceeded
    /// the run limits.
    #[error("token evaluation exceeded the run limits")]
    RunLimit,
}

/// A problem in the `[auth.biscuit]` section or in a file it names. The message names
/// the setting or file (and key) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is invalid.
    #[error("`{setting}`: {reason}")]
    Setting {
        /// Dotted path of the setting, e.g. `auth.biscuit.keys[1].id`.
        setting: String,
        /// What is wrong, lowercase, possibly followed by a `help:` line.
        reason: String,
    },
    /// A file named by the configuration cannot be read.
    #[error("`{}`: cannot read: {source}", file.display())]
    Read {
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file a setting names does not exist. Keys are made, never committed, so this
    /// is what a fresh clone meets: the message names the setting and how to make the
    /// file.
    #[error("`{}`: cannot read: {source}\n  named by `{setting}`\nhelp: {help}", file.display())]
    MissingFile {
        /// Dotted path of the setting, e.g. `auth.biscuit.keys[0].public_key_file`.
        setting: String,
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// The I/O error (not found).
        #[source]
        source: std::io::Error,
        /// How to make the file.
        help: String,
    },
    /// A file was read but its content is unusable as a whole.
    #[error("`{}`: {reason}", file.display())]
    File {
        /// The file, resolved against the configuration's directory.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One root key is unusable.
    #[error("`{origin}`: key `{key}`: {reason}")]
    Key {
        /// Where the key is defined: its file, or `auth.biscuit.keys[<n>]`.
        origin: String,
        /// `id <n>`, or `(no id)`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}
