//! The book's walkthroughs run as written: the getting-started guide's worked example (curl,
//! the Python SDK example `docs/examples/python_sdk.py`, a policy edit, taint) against the
//! real binary in front of `@modelcontextprotocol/server-everything`, and the demo walkthrough
//! against `mcp-warden demo` on a real PostgreSQL, the biscuit and TLS guides against
//! server-everything. Each page's `sh` blocks are the commands;
//! the `text` blocks below them are what they must print (see `support::walkthrough`).

#![allow(
    clippy::disallowed_methods,
    reason = "polls for a server to answer pause between tries (bounded by the hang limit)"
)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::interop::{ensure_python, start_server_everything};
use crate::support::postgres::TestDb;
use crate::support::walkthrough::{collect_lines, page, run_page, Lines, Shell};
use crate::support::warden::free_port;

/// Datalog evaluations (Biscuit tokens, under either engine) get more time than the shipped
/// configurations' 20 ms, so a loaded machine cannot turn a walkthrough step into a
/// `run_limit` denial: what is tested is the output, not the machine's speed.
const MAX_TIME: (&str, &str) = ("MCP_WARDEN__POLICY__BISCUIT__LIMITS__MAX_TIME", "60s");

/// Copy `from` (a directory, recursively) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "node_modules" && entry.file_name() != "demo-keys" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The repository's runnable files, as a user's checkout has them, with the binary where a
/// release build puts it.
fn checkout() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = tempfile::tempdir().unwrap();
    for dir in ["config", "policies", "scripts", "docs/examples"] {
        copy_tree(&root.join(dir), &tree.path().join(dir));
    }
    std::fs::create_dir_all(tree.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_mcp-warden"),
        tree.path().join("target/release/mcp-warden"),
    )
    .unwrap();
    tree
}

/// A process whose stdout and stderr lines are collected; killed on drop.
struct Server {
    child: Child,
    lines: Lines,
}

impl Server {
    fn start(command: &mut Command) -> Server {
        Server::start_into(command, Arc::new(Mutex::new(Vec::new())))
    }

    /// [`Server::start`], collecting into `lines`.
    fn start_into(command: &mut Command, lines: Lines) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcp-warden");
        collect_lines(child.stdout.take().unwrap(), lines.clone());
        collect_lines(child.stderr.take().unwrap(), lines.clone());
        Server { child, lines }
    }

    /// Wait until `addr` accepts connections and every `needle` has been printed.
    fn wait_ready(&mut self, addr: &str, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}):\n{}", self.logs());
            }
            let printed = {
                let lines = self.lines.lock().unwrap();
                needles
                    .iter()
                    .all(|needle| lines.iter().any(|line| line.contains(needle)))
            };
            if printed && TcpStream::connect(addr).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- server output ----\n{}", self.logs());
        }
    }
}

fn dev_jwt(tree: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .current_dir(tree)
        .args(["dev-jwt", "--config", "config/example.toml"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn addresses() -> (String, String) {
    (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    )
}

#[test]
fn getting_started_runs_as_written() {
    let tree = checkout();
    let python = ensure_python();
    let venv = python.parent().unwrap().parent().unwrap();
    std::os::unix::fs::symlink(venv, tree.path().join(".venv")).unwrap();
    let everything = start_server_everything();
    let (listen, admin) = addresses();

    // What scripts/quickstart.sh does, on free ports.
    let mut warden = Server::start(
        Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .current_dir(tree.path())
            .args(["run", "--config", "config/example.toml"])
            .env("MCP_WARDEN__LISTEN", &listen)
            .env("MCP_WARDEN__UPSTREAM", &everything.url)
            .env("MCP_WARDEN__ADMIN__LISTEN", &admin)
            .env("NO_COLOR", "1")
            .env(MAX_TIME.0, MAX_TIME.1)
            .env_remove("RUST_LOG"),
    );
    warden.wait_ready(&listen, &[]);
    let staff = dev_jwt(
        tree.path(),
        &["--sub", "sam", "--role", "staff", "--scope", "mcp:tools"],
    );
    let admin_token = dev_jwt(tree.path(), &["--sub", "ada", "--role", "admin"]);

    let mut shell = Shell::start(
        tree.path(),
        &[
            ("STAFF", staff),
            ("ADMIN", admin_token),
            ("MCP_URL", format!("http://{listen}/mcp")),
        ],
    );
    shell.replace = vec![
        ("127.0.0.1:8080".into(), listen.clone()),
        ("127.0.0.1:9090".into(), admin.clone()),
        (
            "127.0.0.1:3001".into(),
            format!("127.0.0.1:{}", everything.port),
        ),
    ];
    run_page(
        "docs/src/getting-started.md",
        &page("getting-started.md"),
        &mut shell,
        &warden.lines,
        &mut |_| {},
    );
}

/// Run `page` (named `name`) against a fresh `mcp-warden demo` on its own database.
async fn run_against_the_demo(name: &str, page: &str) {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let tree = checkout();
    let (listen, admin) = addresses();
    let upstream = format!("127.0.0.1:{}", free_port());
    let mut demo = Server::start(
        Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .current_dir(tree.path())
            .args(["demo", "--database-url", &db.url])
            .env("MCP_WARDEN__LISTEN", &listen)
            .env("MCP_WARDEN__UPSTREAM", format!("http://{upstream}/mcp"))
            .env("MCP_WARDEN__ADMIN__LISTEN", &admin)
            .env("NO_COLOR", "1")
            .env(MAX_TIME.0, MAX_TIME.1)
            .env_remove("RUST_LOG"),
    );
    tokio::task::block_in_place(|| demo.wait_ready(&listen, &["Ctrl-C stops the demo"]));
    // The banner's `export NAME=value` lines, pasted into the shell.
    let exports: Vec<(String, String)> = demo
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|rest| rest.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    assert!(
        exports.iter().any(|(name, _)| name == "PATIENT_BISCUIT"),
        "{exports:?}"
    );
    let env: Vec<(&str, String)> = exports
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    let mut shell = Shell::start(tree.path(), &env);
    shell.replace = vec![
        ("127.0.0.1:8080".into(), listen.clone()),
        ("127.0.0.1:9090".into(), admin.clone()),
        ("127.0.0.1:3001".into(), upstream.clone()),
    ];
    tokio::task::block_in_place(|| run_page(name, page, &mut shell, &demo.lines, &mut |_| {}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_walkthrough_runs_as_written() {
    run_against_the_demo("docs/src/demo.md", &page("demo.md")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_tour_runs_as_written() {
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    run_against_the_demo("README.md", &std::fs::read_to_string(readme).unwrap()).await;
}

#[test]
fn expected_output_wildcards() {
    use crate::support::walkthrough::matches;
    assert!(matches("a…c", "abbbc"));
    assert!(matches("a…", "a"));
    assert!(matches("…x…y…", "0x1y2"));
    assert!(!matches("…y…x…", "0x1y2"));
    assert!(!matches("abc", "abcd"));
    assert!(!matches("ab…ba", "aba"));
}

#[test]
fn the_biscuit_walkthrough_runs_as_written() {
    let tree = checkout();
    let (listen, admin) = addresses();
    let logs: Lines = Arc::new(Mutex::new(Vec::new()));
    let mut servers = Vec::new();
    let mut everything = None;
    let mut shell = Shell::start(tree.path(), &[("MCP_URL", format!("http://{listen}/mcp"))]);
    shell.replace = vec![
        ("127.0.0.1:8080".into(), listen.clone()),
        ("127.0.0.1:9090".into(), admin.clone()),
    ];
    let dir = tree.path().to_owned();
    run_page(
        "docs/src/biscuit.md",
        &page("biscuit.md"),
        &mut shell,
        &logs,
        &mut |code| {
            if !code.contains("mcp-warden run --config config/biscuit.toml") {
                return;
            }
            // Step 2, on free ports: server-everything, then the proxy (whose key the
            // walkthrough's step 1 just made).
            let upstream = start_server_everything();
            let mut warden = Server::start_into(
                Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
                    .current_dir(&dir)
                    .args(["run", "--config", "config/biscuit.toml"])
                    .env("MCP_WARDEN__LISTEN", &listen)
                    .env("MCP_WARDEN__UPSTREAM", &upstream.url)
                    .env("MCP_WARDEN__ADMIN__LISTEN", &admin)
                    .env("NO_COLOR", "1")
                    .env(MAX_TIME.0, MAX_TIME.1)
                    .env_remove("RUST_LOG"),
                logs.clone(),
            );
            warden.wait_ready(&listen, &[]);
            servers.push(warden);
            everything = Some(upstream);
        },
    );
    assert!(everything.is_some(), "the page never started the servers");
    drop(servers);
}

/// `docs/src/tls.md`: a test CA made with `openssl`, the proxy with TLS, mTLS required and
/// the admin listener over HTTPS (`config/tls.toml`), `curl --cert` (a filtered list, a
/// call, a 401 without a certificate), the certificate's identity in the audit line and the
/// Cedar decision, the Python SDK over mTLS, a certificate rotated by replacing its files,
/// and the metrics scraped with a client certificate.
#[test]
fn the_tls_walkthrough_runs_as_written() {
    let tree = checkout();
    let python = ensure_python();
    let venv = python.parent().unwrap().parent().unwrap();
    std::os::unix::fs::symlink(venv, tree.path().join(".venv")).unwrap();
    let (listen, admin) = addresses();
    let port = |addr: &str| addr.rsplit(':').next().unwrap().to_owned();
    let logs: Lines = Arc::new(Mutex::new(Vec::new()));
    let mut servers = Vec::new();
    let mut everything = None;
    let mut shell = Shell::start(
        tree.path(),
        &[(
            "MCP_URL",
            format!("https://localhost:{}/mcp", port(&listen)),
        )],
    );
    shell.replace = vec![
        (
            "localhost:8443".into(),
            format!("localhost:{}", port(&listen)),
        ),
        (
            "localhost:9090".into(),
            format!("localhost:{}", port(&admin)),
        ),
    ];
    let dir = tree.path().to_owned();
    run_page(
        "docs/src/tls.md",
        &page("tls.md"),
        &mut shell,
        &logs,
        &mut |code| {
            if !code.contains("mcp-warden run --config config/tls.toml") {
                return;
            }
            // On free ports: server-everything, then the proxy with the certificates the
            // page's first step made.
            let upstream = start_server_everything();
            let mut warden = Server::start_into(
                Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
                    .current_dir(&dir)
                    .args(["run", "--config", "config/tls.toml"])
                    .env("MCP_WARDEN__LISTEN", &listen)
                    .env("MCP_WARDEN__UPSTREAM", &upstream.url)
                    .env("MCP_WARDEN__ADMIN__LISTEN", &admin)
                    .env("NO_COLOR", "1")
                    .env_remove("RUST_LOG"),
                logs.clone(),
            );
            warden.wait_ready(&listen, &["mcp-warden listening"]);
            servers.push(warden);
            everything = Some(upstream);
        },
    );
    assert!(everything.is_some(), "the page never started the servers");
    drop(servers);
}

/// `docs/src/commands.md`: `policy test` takes a policy directory for its `tests.toml`.
#[test]
fn policy_test_takes_a_directory() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/example");
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(["policy", "test", dir])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}
