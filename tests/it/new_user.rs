//! What a new user tripped over, tried through the real binary: a shipped configuration
//! checked in a fresh clone (no keys yet), an environment override that does not fit, a
//! duration without a unit, `policy test` given a directory, and `--help`.

use std::path::Path;
use std::process::Command;

use crate::support::warden::{copy_dir, run_cli};

/// A fresh clone's `config/` and `policies/`: no key has been made yet.
fn fresh_clone() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("config")).unwrap();
    for file in ["biscuit.toml", "demo.toml", "example.toml", "revoked.txt"] {
        std::fs::copy(
            root.join("config").join(file),
            tree.path().join("config").join(file),
        )
        .unwrap();
    }
    for dir in ["example", "biscuit-example", "demo/cedar", "demo/biscuit"] {
        copy_dir(
            &root.join("policies").join(dir),
            &tree.path().join("policies").join(dir),
        );
    }
    tree
}

#[test]
fn check_in_a_fresh_clone_names_the_setting_and_the_command_that_makes_the_key() {
    let tree = fresh_clone();
    let config = tree.path().join("config/biscuit.toml");
    let (ok, _, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("biscuit-root-1.public`: cannot read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("named by `auth.biscuit.keys[0].public_key_file`"),
        "{stderr}"
    );
    assert!(stderr.contains("mcp-warden keygen --out "), "{stderr}");
    // Following the advice makes the check pass.
    let prefix = tree.path().join("config/keys/biscuit-root-1");
    let (ok, _, stderr) = run_cli(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");

    let demo = tree.path().join("config/demo.toml");
    let (ok, _, stderr) = run_cli(&["check", "--config", demo.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(stderr.contains("named by `auth."), "{stderr}");
    assert!(stderr.contains("`mcp-warden demo`"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let tree = fresh_clone();
    let config = tree.path().join("config/example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(["check", "--config", config.to_str().unwrap()])
        .env("MCP_WARDEN__SESSIONS__IDLE_TIMEOUT", "90")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("environment variable `MCP_WARDEN__SESSIONS__IDLE_TIMEOUT`"),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0"), "{stderr}");
    assert!(stderr.contains(r#""30s", "5m""#), "{stderr}");
}

#[test]
fn policy_test_finds_a_directorys_tests_file() {
    let tree = fresh_clone();
    let dir = tree.path().join("policies/example");
    let (ok, stdout, stderr) = run_cli(&["policy", "test", dir.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let (ok, _, stderr) = run_cli(&["policy", "test", tree.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("a directory without a `tests.toml`"),
        "{stderr}"
    );
}

#[test]
fn help_describes_the_tool_with_biscuit() {
    let (ok, stdout, _) = run_cli(&["--help"]);
    assert!(ok);
    assert!(stdout.contains("Model Context Protocol"), "{stdout}");
    assert!(stdout.contains("Biscuit"), "{stdout}");
    assert!(stdout.contains("Cedar"), "{stdout}");
    let (ok, stdout, _) = run_cli(&["dev-jwt", "--help"]);
    assert!(ok);
    assert!(stdout.contains("jti"), "{stdout}");
}

/// Two `dev-jwt` tokens for one user are two credentials (each has its own `jti`).
#[test]
fn dev_jwt_mints_a_fresh_jti() {
    use base64::Engine;
    let tree = fresh_clone();
    let config = tree.path().join("config/example.toml");
    let jti = || {
        let (ok, stdout, stderr) = run_cli(&[
            "dev-jwt",
            "--config",
            config.to_str().unwrap(),
            "--sub",
            "sam",
        ]);
        assert!(ok, "{stderr}");
        let payload = stdout.trim().split('.').nth(1).unwrap().to_owned();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["jti"].as_str().expect("a jti").to_owned()
    };
    let (a, b) = (jti(), jti());
    assert_ne!(a, b);
}
