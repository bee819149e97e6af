//! What `mcp-warden demo` needs besides the backend: demo keys, and the personas it
//! prints tokens for (`docs/src/demo.md` uses the same ones).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::biscuit::{keys, tools};
use crate::config::Config;

/// Someone to try the demo as.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// The shell variable the token is printed as, e.g. `PATIENT`.
    pub var: &'static str,
    /// The token's subject.
    pub subject: &'static str,
    /// Roles.
    pub roles: &'static [&'static str],
    /// Extra claims (the demo configuration forwards `patient_name` and `department`).
    pub claims: &'static [(&'static str, &'static str)],
    /// Who this is, in a few words.
    pub about: &'static str,
}

/// The demo's personas.
pub const PERSONAS: [Persona; 3] = [
    Persona {
        var: "PATIENT",
        subject: "erin",
        roles: &["patient"],
        claims: &[("patient_name", "Erin oRTEga")],
        about: "erin, patient \"Erin oRTEga\"",
    },
    Persona {
        var: "NURSE",
        subject: "nina",
        roles: &["nurse"],
        claims: &[("department", "cardiology")],
        about: "nina, nurse in cardiology",
    },
    Persona {
        var: "ANALYST",
        subject: "ana",
        roles: &["analyst"],
        claims: &[],
        about: "ana, analyst: patients who consented to research",
    },
];

/// The agent (`azp`) every demo token names.
pub const DEMO_AGENT: &str = "demo-agent";

impl Persona {
    /// The authority-block facts of the persona's Biscuit token:
    /// `user("erin"); role("patient"); patient_name("Erin oRTEga");`.
    pub fn biscuit_facts(&self) -> Vec<String> {
        let mut facts = vec![format!("user({})", datalog_string(self.subject))];
        facts.extend(
            self.roles
                .iter()
                .map(|role| format!("role({})", datalog_string(role))),
        );
        facts.extend(
            self.claims
                .iter()
                .map(|(name, value)| format!("{name}({})", datalog_string(value))),
        );
        facts
    }
}

fn datalog_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Why a demo token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoTokenError {
    /// The configuration has no Biscuit root key file to sign with.
    #[error("the configuration has no [[auth.biscuit.keys]] with a `public_key_file` ending in `.public`")]
    NoBiscuitKey,
    /// The private key could not be read.
    #[error("`{}`: {message}", path.display())]
    PrivateKey {
        /// The private key file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] tools::ToolError),
}

/// A Biscuit token for `persona`, valid for `ttl`, signed with the private half of the
/// configuration's first Biscuit root key file (`<name>.private` next to `<name>.public`).
pub fn mint_biscuit(
    config: &Config,
    persona: &Persona,
    ttl: Duration,
) -> Result<String, DemoTokenError> {
    let (id, public) = biscuit_key_files(config)
        .next()
        .ok_or(DemoTokenError::NoBiscuitKey)?;
    let private = public.with_extension("private");
    let text = std::fs::read_to_string(&private).map_err(|e| DemoTokenError::PrivateKey {
        path: private.clone(),
        message: e.to_string(),
    })?;
    let key =
        keys::parse_private_key(&text, None).map_err(|message| DemoTokenError::PrivateKey {
            path: private.clone(),
            message,
        })?;
    let spec = tools::BlockSpec {
        facts: persona.biscuit_facts(),
        ttl: Some(ttl),
        ..Default::default()
    };
    Ok(tools::mint(&key, id, &spec, SystemTime::now())?)
}

/// `(root key id, public key file)` of each Biscuit key read from a `*.public` file.
fn biscuit_key_files(config: &Config) -> impl Iterator<Item = (Option<u32>, PathBuf)> + '_ {
    config
        .raw
        .auth
        .biscuit
        .iter()
        .flat_map(|b| b.keys.iter())
        .filter_map(|key| {
            let file = key.public_key_file.as_ref()?;
            let path = config.base_dir.join(file);
            (path.extension()? == "public").then_some((key.id, path))
        })
}

/// Create the key files `config` refers to and that do not exist yet: each HS256
/// `[[auth.jwt.keys]]` with a `secret_file` gets 32 random bytes, hex encoded, readable by
/// the owner only; each `[[auth.biscuit.keys]]` whose `public_key_file` is `<name>.public`
/// gets an Ed25519 pair, `<name>.public` and `<name>.private` (mode 0600). Returns the
/// files created.
pub fn ensure_keys(config: &Config) -> Result<Vec<PathBuf>, tools::ToolError> {
    let mut created = Vec::new();
    for (_, public) in biscuit_key_files(config) {
        if public.exists() {
            continue;
        }
        let algorithm = keys::parse_algorithm("ed25519")
            .map_err(|reason| tools::ToolError::Token { reason })?;
        let files = tools::keygen(&public.with_extension(""), algorithm, false)?;
        created.extend([files.public, files.private]);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| tools::ToolError::Io { path, source }
    };
    let Some(jwt) = &config.raw.auth.jwt else {
        return Ok(created);
    };
    for key in &jwt.keys {
        let Some(file) = &key.secret_file else {
            continue;
        };
        if !key.alg.starts_with("HS") {
            continue;
        }
        let path = config.base_dir.join(file);
        if path.exists() {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&path).map_err(io(&path))?;
        writeln!(out, "{}", hex::encode(secret)).map_err(io(&path))?;
        created.push(path);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_hmac_key_files_are_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2/mcp\"\n\
             [auth.jwt]\nalgorithms = [\"HS256\"]\n\
             [[auth.jwt.keys]]\nalg = \"HS256\"\nsecret_file = \"keys/jwt.key\"\n\
             [auth.biscuit]\n[[auth.biscuit.keys]]\nid = 1\npublic_key_file = \"keys/root.public\"\n\
             [policy]\ndir = \"p\"\n",
        )
        .unwrap();
        let config = crate::config::load_with_env(&path, []).unwrap();
        let created = ensure_keys(&config).unwrap();
        let keys = dir.path().join("keys");
        assert_eq!(
            created,
            [
                keys.join("root.public"),
                keys.join("root.private"),
                keys.join("jwt.key")
            ]
        );
        let created = &created[2..];
        let first = std::fs::read_to_string(&created[0]).unwrap();
        assert_eq!(first.trim().len(), 64);
        assert!(ensure_keys(&config).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&created[0]).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&created[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The persona tokens are signed with the new root key.
        let token = mint_biscuit(&config, &PERSONAS[0], Duration::from_secs(60)).unwrap();
        let public = keys::parse_public_key(
            &std::fs::read_to_string(keys.join("root.public")).unwrap(),
            None,
        )
        .unwrap();
        let report = tools::inspect(&token, &public).unwrap().to_string();
        assert!(
            report.contains(r#"patient_name("Erin oRTEga")"#),
            "{report}"
        );
    }

    #[test]
    fn persona_facts_are_datalog() {
        assert_eq!(
            PERSONAS[0].biscuit_facts(),
            [
                r#"user("erin")"#,
                r#"role("patient")"#,
                r#"patient_name("Erin oRTEga")"#
            ]
        );
        assert_eq!(datalog_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
