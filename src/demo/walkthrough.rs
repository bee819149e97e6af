//! What `mcp-warden demo` needs besides the backend: demo keys, and the personas it
//! prints tokens for (the README's walkthrough uses the same ones).

use std::io::Write;
use std::path::PathBuf;

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
        about: "ana, analyst (patients who consented to research)",
    },
];

/// The agent (`azp`) every demo token names.
pub const DEMO_AGENT: &str = "demo-agent";

/// Create the key files `config` refers to and that do not exist yet: each HS256
/// `[[auth.jwt.keys]]` with a `secret_file` gets 32 random bytes, hex encoded, readable by
/// the owner only. Returns the files created.
pub fn ensure_keys(config: &Config) -> std::io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
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
            std::fs::create_dir_all(dir)?;
        }
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&path)?;
        writeln!(out, "{}", hex::encode(secret))?;
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
             [policy]\ndir = \"p\"\n",
        )
        .unwrap();
        let config = crate::config::load_with_env(&path, []).unwrap();
        let created = ensure_keys(&config).unwrap();
        assert_eq!(created, [dir.path().join("keys/jwt.key")]);
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
    }
}
