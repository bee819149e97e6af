//! Biscuit keys and tokens for tests, made with the real `mcp-warden` CLI (`keygen`,
//! `token mint`, `token attenuate`), and the proxy configuration that trusts them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::warden::run_cli;

/// Root keys (two, for rotation), a key nobody trusts, and the revocation file, in a
/// temporary directory the proxy's configuration points at by absolute path.
pub struct Keys {
    /// Holds the key files and `revoked.txt`.
    pub dir: tempfile::TempDir,
}

impl Keys {
    /// Makes root key 1 (Ed25519), root key 2 (P-256) and an untrusted key.
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        for (name, algorithm) in [
            ("root1", "ed25519"),
            ("root2", "secp256r1"),
            ("stranger", "ed25519"),
        ] {
            let out = dir.path().join(name);
            let (ok, stdout, stderr) = run_cli(&[
                "keygen",
                "--out",
                out.to_str().unwrap(),
                "--algorithm",
                algorithm,
            ]);
            assert!(ok, "keygen: {stderr}");
            assert!(stdout.starts_with(algorithm), "{stdout}");
        }
        std::fs::write(dir.path().join("revoked.txt"), "").unwrap();
        Keys { dir }
    }

    /// `<name>.private`.
    pub fn private(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.private"))
    }

    /// `<name>.public`.
    pub fn public(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.public"))
    }

    /// The revocation file.
    pub fn revoked(&self) -> PathBuf {
        self.dir.path().join("revoked.txt")
    }

    /// `[auth.biscuit]` trusting roots 1 and 2, with the revocation file and a
    /// `patient_name` claim sent as `X-MCP-Patient`.
    pub fn auth_toml(&self) -> String {
        format!(
            r#"
[auth.biscuit]
revocation_file = "{revoked}"
claim_facts = ["patient_name"]

[[auth.biscuit.keys]]
id = 1
public_key_file = "{root1}"

[[auth.biscuit.keys]]
id = 2
algorithm = "secp256r1"
public_key_file = "{root2}"

[identity_headers]
claims = {{ "X-MCP-Patient" = "patient_name" }}
"#,
            revoked = self.revoked().display(),
            root1 = self.public("root1").display(),
            root2 = self.public("root2").display(),
        )
    }

    /// Mints a token signed by `key` (`root1`, `root2`, `stranger`) claiming root key
    /// id `id`, with these facts and extra CLI arguments (`--check`, `--ttl`, …).
    pub fn mint(&self, key: &str, id: u32, facts: &[&str], extra: &[&str]) -> String {
        let private = self.private(key);
        let id = id.to_string();
        let mut args = vec![
            "token",
            "mint",
            "--private-key",
            private.to_str().unwrap(),
            "--root-key-id",
            &id,
        ];
        for fact in facts {
            args.extend(["--fact", fact]);
        }
        args.extend(extra);
        cli_token(&args)
    }
}

/// Appends a block (CLI arguments: `--check`, `--fact`, `--ttl`) to `token`.
pub fn attenuate(token: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "attenuate", "--token", token];
    args.extend(extra);
    cli_token(&args)
}

fn cli_token(args: &[&str]) -> String {
    let (ok, stdout, stderr) = run_cli(args);
    assert!(ok, "mcp-warden {args:?}: {stderr}");
    let token = stdout.trim().to_owned();
    assert!(!token.is_empty() && !token.contains('.'), "{token}");
    token
}

/// `token inspect --json` with a public key file.
pub fn inspect(token: &str, public: &Path) -> serde_json::Value {
    let (ok, stdout, stderr) = run_cli(&[
        "token",
        "inspect",
        "--token",
        token,
        "--public-key",
        public.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "inspect: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// The example Biscuit policy directory of the repository.
pub fn example_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/biscuit-example")
}

/// Configuration text that selects the Biscuit engine: it must come right after the
/// generated `[policy]` table (first in `Warden::start`'s `extra`), and be followed by a
/// table header. Biscuit's run-time limit is wall-clock time, so it is set far above the
/// default (20 ms) here: a busy test machine must not turn a decision into a run-limit
/// denial. The limits on facts and iterations, which bound the work deterministically,
/// keep their defaults.
pub const ENGINE_TOML: &str =
    "engine = \"biscuit\"\n\n[policy.biscuit.limits]\nmax_time = \"2m\"\n";

/// The environment override with the same generous time limit, for processes started on a
/// shipped configuration (`mcp-warden demo`).
pub const GENEROUS_TIME_LIMIT_ENV: (&str, &str) =
    ("MCP_WARDEN__POLICY__BISCUIT__LIMITS__MAX_TIME", "2m");
