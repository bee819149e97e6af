//! Token tooling behind `mcp-warden keygen` and `mcp-warden token mint|attenuate|inspect`:
//! plain functions, so the command line stays thin and tests can call them directly.
//!
//! - [`keygen`] writes a key pair: `<prefix>.private` (`ed25519-private/<hex>`, created
//!   with mode 0600 and never overwritten unless asked) and `<prefix>.public`
//!   (`ed25519/<hex>`), the textual forms `biscuit-python` and the `biscuit` CLI read.
//! - [`mint`] signs an authority block with a root private key; [`attenuate`] appends a
//!   block signed with a fresh ephemeral key (no root key needed: attenuation is
//!   offline); both take a [`BlockSpec`] (facts, checks, Datalog code, a TTL).
//! - [`inspect`] verifies a token with a public key and describes its blocks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{Algorithm, BiscuitBuilder, BlockBuilder, Check, Term};
use biscuit_auth::builder_ext::BuilderExt;
use biscuit_auth::{KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit};
use serde::Serialize;

use super::keys::public_key_text;
use super::verify::is_time_only_check;

/// A tooling failure, with a message fit for the command line.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A file could not be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `keygen` would overwrite a key file.
    #[error("`{}` already exists\nhelp: pass `--force` to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A key is unusable.
    #[error("key: {reason}")]
    Key {
        /// Why.
        reason: String,
    },
    /// A fact, check or Datalog snippet does not parse.
    #[error("{what}: {message}")]
    Datalog {
        /// Which input (`--fact`, `--check`, `--code`).
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The token cannot be decoded, verified or extended.
    #[error("token: {reason}")]
    Token {
        /// Why.
        reason: String,
    },
}

/// The files [`keygen`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// `<prefix>.private`, mode 0600.
    pub private: PathBuf,
    /// `<prefix>.public`.
    pub public: PathBuf,
    /// The public key, `ed25519/<hex>` or `secp256r1/<hex>`.
    pub public_key: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Generates a root key pair and writes `<prefix>.private` (0600) and `<prefix>.public`.
/// Refuses to replace existing files unless `force`.
pub fn keygen(prefix: &Path, algorithm: Algorithm, force: bool) -> Result<KeyFiles, ToolError> {
    let pair = KeyPair::new_with_algorithm(algorithm);
    let private = with_suffix(prefix, "private");
    let public = with_suffix(prefix, "public");
    if !force {
        for path in [&private, &public] {
            if path.exists() {
                return Err(ToolError::Exists { path: path.clone() });
            }
        }
    }
    if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_private(&private, &pair.private().to_prefixed_string())?;
    let public_key = public_key_text(&pair.public());
    std::fs::write(&public, format!("{public_key}\n")).map_err(io(&public))?;
    Ok(KeyFiles {
        private,
        public,
        public_key,
    })
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a private key readable by its owner only. The file is created with mode 0600
/// (and set to 0600 if it existed), so the key is never briefly world-readable.
fn write_private(path: &Path, text: &str) -> Result<(), ToolError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(path))?;
    file.write_all(format!("{text}\n").as_bytes())
        .map_err(io(path))
}

/// What goes into a new block.
#[derive(Debug, Clone, Default)]
pub struct BlockSpec {
    /// Facts, e.g. `user("alice")`.
    pub facts: Vec<String>,
    /// Checks, e.g. `check if tool("echo")` (the `check if` may be omitted).
    pub checks: Vec<String>,
    /// Datalog source (facts, rules, checks), e.g. from a file.
    pub code: Option<String>,
    /// Adds `check if time($time), $time <= <now + ttl>`.
    pub ttl: Option<Duration>,
}

impl BlockSpec {
    fn check_text(check: &str) -> String {
        let trimmed = check.trim().trim_end_matches(';');
        if trimmed.starts_with("check ") || trimmed.starts_with("reject ") {
            trimmed.to_owned()
        } else {
            format!("check if {trimmed}")
        }
    }

    fn block(&self, now: SystemTime) -> Result<BlockBuilder, ToolError> {
        let mut block = BlockBuilder::new();
        if let Some(code) = &self.code {
            block = block.code(code).map_err(|e| ToolError::Datalog {
                what: "--code",
                message: e.to_string(),
            })?;
        }
        for fact in &self.facts {
            block =
                block
                    .fact(fact.trim().trim_end_matches(';'))
                    .map_err(|e| ToolError::Datalog {
                        what: "--fact",
                        message: format!("`{fact}`: {e}"),
                    })?;
        }
        for check in &self.checks {
            block =
                block
                    .check(Self::check_text(check).as_str())
                    .map_err(|e| ToolError::Datalog {
                        what: "--check",
                        message: format!("`{check}`: {e}"),
                    })?;
        }
        if let Some(ttl) = self.ttl {
            block = block.check_expiration_date(now + ttl);
        }
        Ok(block)
    }
}

/// Mints a token: the authority block from `spec`, signed with `root`.
pub fn mint(
    root: &PrivateKey,
    root_key_id: Option<u32>,
    spec: &BlockSpec,
    now: SystemTime,
) -> Result<String, ToolError> {
    let mut builder = BiscuitBuilder::new().merge(spec.block(now)?);
    if let Some(id) = root_key_id {
        builder = builder.root_key_id(id);
    }
    builder
        .build(&KeyPair::from(root))
        .and_then(|t| t.to_base64())
        .map_err(|e| ToolError::Token {
            reason: e.to_string(),
        })
}

/// Appends a block to a token, offline (the signature chain is extended with a fresh
/// ephemeral key; the root key is not needed and the token is not verified).
pub fn attenuate(token: &str, spec: &BlockSpec, now: SystemTime) -> Result<String, ToolError> {
    let fail = |e: biscuit_auth::error::Token| ToolError::Token {
        reason: e.to_string(),
    };
    let block = spec.block(now)?;
    UnverifiedBiscuit::from_base64(token.trim())
        .and_then(|t| t.append(block))
        .and_then(|t| t.to_base64())
        .map_err(fail)
}

/// One block, as [`inspect`] describes it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// 0 for the authority block.
    pub index: usize,
    /// Its revocation id (hex).
    pub revocation_id: String,
    /// The external (third-party) key that signed it, if any.
    pub external_key: Option<String>,
    /// Its context string, if any.
    pub context: Option<String>,
    /// Facts, as Datalog.
    pub facts: Vec<String>,
    /// Rules, as Datalog.
    pub rules: Vec<String>,
    /// Checks, as Datalog.
    pub checks: Vec<String>,
    /// The earliest date in a check of this block that only reads `time` (RFC 3339).
    pub expires: Option<String>,
    /// The block's whole source.
    pub source: String,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The token's `root_key_id`.
    pub root_key_id: Option<u32>,
    /// The root public key it was verified with.
    pub verified_with: String,
    /// Every block's revocation id, authority first.
    pub revocation_ids: Vec<String>,
    /// The earliest expiry over all blocks (RFC 3339), if any block has a TTL check.
    pub expires: Option<String>,
    /// The blocks.
    pub blocks: Vec<BlockReport>,
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self
            .root_key_id
            .map_or("none".to_owned(), |i| i.to_string());
        writeln!(
            f,
            "signature: valid (root key id {id}, {})",
            self.verified_with
        )?;
        writeln!(
            f,
            "expires:   {}",
            self.expires.as_deref().unwrap_or("never")
        )?;
        for block in &self.blocks {
            let kind = if block.index == 0 {
                "authority"
            } else if block.external_key.is_some() {
                "third party"
            } else {
                "attenuation"
            };
            writeln!(f, "\nblock {} ({kind})", block.index)?;
            writeln!(f, "  revocation id: {}", block.revocation_id)?;
            if let Some(key) = &block.external_key {
                writeln!(f, "  signed by:     {key}")?;
            }
            if let Some(context) = &block.context {
                writeln!(f, "  context:       {context}")?;
            }
            if let Some(expires) = &block.expires {
                writeln!(f, "  expires:       {expires}")?;
            }
            for (label, items) in [
                ("facts", &block.facts),
                ("rules", &block.rules),
                ("checks", &block.checks),
            ] {
                if !items.is_empty() {
                    writeln!(f, "  {label}:")?;
                    for item in items {
                        writeln!(f, "    {item};")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The earliest date in the time-only checks among `checks`.
fn earliest_expiry(checks: &[String]) -> Option<u64> {
    checks
        .iter()
        .filter(|c| is_time_only_check(c))
        .filter_map(|c| Check::try_from(c.as_str()).ok())
        .flat_map(|c| c.queries)
        .flat_map(|q| q.expressions)
        .flat_map(|e| e.ops)
        .filter_map(|op| match op {
            biscuit_auth::builder::Op::Value(Term::Date(d)) => Some(d),
            _ => None,
        })
        .min()
}

fn date_text(secs: u64) -> String {
    Term::Date(secs).to_string()
}

/// Verifies `token` with `root` and describes it.
pub fn inspect(token: &str, root: &PublicKey) -> Result<Inspection, ToolError> {
    let fail = |e: biscuit_auth::error::Token| ToolError::Token {
        reason: e.to_string(),
    };
    let biscuit = biscuit_auth::Biscuit::from_base64(token.trim(), root).map_err(fail)?;
    let revocation_ids: Vec<String> = biscuit
        .revocation_identifiers()
        .iter()
        .map(hex::encode)
        .collect();
    let contexts = biscuit.context();
    let mut blocks = Vec::with_capacity(biscuit.block_count());
    let mut earliest: Option<u64> = None;
    for index in 0..biscuit.block_count() {
        let source = biscuit.print_block_source(index).map_err(fail)?;
        let parsed =
            biscuit_auth::parser::parse_block_source(&source).map_err(|_| ToolError::Token {
                reason: format!("block {index} does not print as valid Datalog"),
            })?;
        let text = |s: &str| s.trim().trim_end_matches(';').trim().to_owned();
        let checks: Vec<String> = parsed.checks.iter().map(|(s, _)| text(s)).collect();
        let expires = earliest_expiry(&checks);
        earliest = match (earliest, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        blocks.push(BlockReport {
            index,
            revocation_id: revocation_ids.get(index).cloned().unwrap_or_default(),
            external_key: biscuit
                .block_external_key(index)
                .map_err(fail)?
                .map(|k| public_key_text(&k)),
            context: contexts.get(index).cloned().flatten(),
            facts: parsed.facts.iter().map(|(s, _)| text(s)).collect(),
            rules: parsed.rules.iter().map(|(s, _)| text(s)).collect(),
            checks,
            expires: expires.map(date_text),
            source,
        });
    }
    Ok(Inspection {
        root_key_id: biscuit.root_key_id(),
        verified_with: public_key_text(root),
        revocation_ids,
        expires: earliest.map(date_text),
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biscuit::keys::{parse_private_key, parse_public_key};

    fn spec(facts: &[&str], checks: &[&str]) -> BlockSpec {
        BlockSpec {
            facts: facts.iter().map(|s| (*s).to_owned()).collect(),
            checks: checks.iter().map(|s| (*s).to_owned()).collect(),
            ..BlockSpec::default()
        }
    }

    #[test]
    fn keygen_writes_owner_only_private_key_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("keys/root");
        let files = keygen(&prefix, Algorithm::Ed25519, false).unwrap();
        let mode = std::fs::metadata(&files.private)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let private = std::fs::read_to_string(&files.private).unwrap();
        assert!(private.starts_with("ed25519-private/"));
        let public = std::fs::read_to_string(&files.public).unwrap();
        assert_eq!(public.trim(), files.public_key);
        let key = parse_private_key(&private, None).unwrap();
        assert_eq!(public_key_text(&key.public()), files.public_key);
        assert!(matches!(
            keygen(&prefix, Algorithm::Ed25519, false),
            Err(ToolError::Exists { .. })
        ));
        let again = keygen(&prefix, Algorithm::Secp256r1, true).unwrap();
        assert!(again.public_key.starts_with("secp256r1/"));
    }

    #[test]
    fn mint_attenuate_inspect() {
        let root = KeyPair::new();
        let now = SystemTime::now();
        let token = mint(
            &root.private(),
            Some(7),
            &BlockSpec {
                ttl: Some(Duration::from_secs(3600)),
                code: Some("right(\"tool\", \"echo\");".to_owned()),
                ..spec(&["user(\"alice\")"], &[])
            },
            now,
        )
        .unwrap();
        let narrower = attenuate(
            &token,
            &BlockSpec {
                ttl: Some(Duration::from_secs(60)),
                ..spec(&[], &["tool(\"echo\")"])
            },
            now,
        )
        .unwrap();
        let report = inspect(&narrower, &root.public()).unwrap();
        assert_eq!(report.root_key_id, Some(7));
        assert_eq!(report.blocks.len(), 2);
        assert_eq!(report.revocation_ids.len(), 2);
        assert!(report.blocks[0]
            .facts
            .contains(&"user(\"alice\")".to_owned()));
        assert_eq!(report.blocks[1].checks[0], "check if tool(\"echo\")");
        // The earlier of the two TTLs.
        assert_eq!(report.expires, report.blocks[1].expires);
        assert!(report.blocks[0].expires.is_some());
        let shown = report.to_string();
        assert!(shown.contains("block 1 (attenuation)"), "{shown}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["blocks"][1]["index"], 1);

        let other = KeyPair::new();
        assert!(inspect(&narrower, &other.public()).is_err());
        assert!(parse_public_key(&report.verified_with, None).is_ok());
    }

    #[test]
    fn bad_datalog_is_reported_by_flag() {
        let root = KeyPair::new();
        let err = mint(
            &root.private(),
            None,
            &spec(&["user("], &[]),
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--fact: `user(`"), "{err}");
        let err = attenuate(
            "not a token",
            &spec(&[], &["tool(\"x\")"]),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, ToolError::Token { .. }), "{err}");
    }
}
