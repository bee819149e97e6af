//! Third-party MCP implementations for interop tests: the official Python SDK client
//! (`tests/interop/client.py`, `mcp` pinned in `requirements.txt`), the Biscuit Python bindings
//! (`tests/interop/biscuit_tool.py`, `biscuit-python`), and the TypeScript reference
//! server `@modelcontextprotocol/server-everything` (pinned in `package.json`).
//!
//! [`ensure_interop_env`] installs both on first use (a venv under `target/interop/venv`,
//! `npm ci` into `tests/interop/node_modules`) and skips the work on later runs while the pin
//! files are unchanged. python3 (>= 3.10, with `venv`) and Node.js (>= 20, with npm) must be on
//! `PATH`; when they are not, the tests panic (no silent skip).

use std::{
    io::{BufRead, BufReader, Read},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{mpsc, OnceLock},
    thread,
    time::{Duration, Instant},
};

use super::wait;

/// How long server-everything may take to start listening (only bounds a hang).
const SERVER_START_TIMEOUT: Duration = wait::HANG;
/// How long one run of the Python client may take (only bounds a hang).
pub const PYTHON_CLIENT_TIMEOUT: Duration = wait::HANG;

/// Paths of the installed interop tools.
#[derive(Debug, Clone)]
pub struct InteropEnv {
    /// The venv's python, with `mcp` installed.
    pub python: PathBuf,
    /// `tests/interop/client.py`.
    pub client_script: PathBuf,
    /// The `node` executable.
    pub node: PathBuf,
    /// server-everything's entry point (`dist/index.js`; argument `streamableHttp`).
    pub server_everything: PathBuf,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn interop_src() -> PathBuf {
    manifest_dir().join("tests").join("interop")
}

/// Where the venv goes: `$MCP_WARDEN_INTEROP_DIR`, else `<repo>/target/interop`.
fn interop_work_dir() -> PathBuf {
    std::env::var_os("MCP_WARDEN_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target").join("interop"))
}

/// Install (once per checkout and pin change) and return the interop tools.
pub fn ensure_interop_env() -> InteropEnv {
    static ENV: OnceLock<InteropEnv> = OnceLock::new();
    ENV.get_or_init(install).clone()
}

/// The interop venv's python (with `requirements.txt` installed: `mcp`, `biscuit-python`),
/// installed once per checkout and pin change. Needs only python3, not Node.js.
pub fn ensure_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(install_python).clone()
}

fn install_python() -> PathBuf {
    require_tool("python3", &["--version"]);
    let src = interop_src();
    let venv = interop_work_dir().join("venv");
    let python = venv.join("bin").join("python");
    let requirements = src.join("requirements.txt");
    let pip_stamp = venv.join(".mcp-warden-requirements");
    if !python.exists() {
        std::fs::create_dir_all(interop_work_dir()).expect("create the interop work dir");
        run_checked(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    }
    if !stamp_matches(&pip_stamp, &requirements) {
        run_checked(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("-r")
                .arg(&requirements),
        );
        write_stamp(&pip_stamp, &requirements);
    }
    python
}

fn install() -> InteropEnv {
    require_tool("node", &["--version"]);
    require_tool("npm", &["--version"]);
    let python = ensure_python();
    let src = interop_src();

    let lockfile = src.join("package-lock.json");
    let npm_stamp = src.join("node_modules").join(".mcp-warden-package-lock");
    if !stamp_matches(&npm_stamp, &lockfile) {
        run_checked(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&src),
        );
        write_stamp(&npm_stamp, &lockfile);
    }

    let server_everything = src
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("server-everything")
        .join("dist")
        .join("index.js");
    assert!(
        server_everything.exists(),
        "`{}` is missing after `npm ci`",
        server_everything.display()
    );
    InteropEnv {
        python,
        client_script: src.join("client.py"),
        node: PathBuf::from("node"),
        server_everything,
    }
}

fn require_tool(program: &str, args: &[&str]) {
    let found = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return;
    }
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!(
            "`{program}` is not on PATH in CI\n\
             help: the CI image must provide python3 >= 3.10 (with venv) and Node.js >= 20 (with npm)"
        );
    }
    panic!(
        "`{program}` is not on PATH; the interop tests need it\n\
         help: install python3 >= 3.10 with the venv module (Debian/Ubuntu: `apt-get install \
         python3 python3-venv`) and Node.js >= 20 with npm (`apt-get install nodejs npm`, or \
         https://nodejs.org), then rerun"
    );
}

/// The stamp holds a copy of the pin file it was installed from.
fn stamp_matches(stamp: &Path, pins: &Path) -> bool {
    match (std::fs::read(stamp), std::fs::read(pins)) {
        (Ok(stamped), Ok(current)) => stamped == current,
        _ => false,
    }
}

fn write_stamp(stamp: &Path, pins: &Path) {
    std::fs::copy(pins, stamp)
        .unwrap_or_else(|error| panic!("write stamp `{}`: {error}", stamp.display()));
}

fn run_checked(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard {
    /// For server-everything: `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl ChildGuard {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start server-everything (Streamable HTTP, stateful, SSE) on a free 127.0.0.1 port and wait
/// until it accepts connections.
///
/// It takes its port from `$PORT` only (and listens on all interfaces), so the port is picked by
/// binding `127.0.0.1:0` and releasing it; if another process grabs it first, this retries.
pub fn start_server_everything() -> ChildGuard {
    let env = ensure_interop_env();
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        // A minimal environment: server-everything has a `get-env` tool that returns its
        // whole environment, which must not be the test runner's (it may hold credentials).
        let mut child = Command::new(&env.node)
            .arg(&env.server_everything)
            .arg("streamableHttp")
            .env_clear()
            .envs(minimal_env())
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start server-everything with `node`: {error}"));
        let stderr = child.stderr.take().expect("piped stderr");
        match wait_until_listening(stderr, port) {
            Ok(()) => {
                return ChildGuard {
                    url: format!("http://127.0.0.1:{port}/mcp"),
                    port,
                    child,
                };
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                last_error = error;
            }
        }
    }
    panic!("server-everything did not start: {last_error}");
}

/// The only variables an example server started by the tests gets: `PATH` and `HOME`.
fn minimal_env() -> Vec<(&'static str, std::ffi::OsString)> {
    ["PATH", "HOME"]
        .into_iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (name, value)))
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Watch stderr for the "listening on port N" line, then confirm with a TCP connect. stderr is
/// drained for the rest of the child's life so it never blocks on a full pipe.
fn wait_until_listening(stderr: impl Read + Send + 'static, port: u16) -> Result<(), String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        let mut log = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &ready_tx {
                log.push_str(&line);
                log.push('\n');
                if line.contains(&format!("listening on port {port}")) {
                    let _ = tx.send(Ok(()));
                    ready_tx = None;
                }
            }
        }
        if let Some(tx) = ready_tx {
            let _ = tx.send(Err(format!("exited before listening; stderr:\n{log}")));
        }
    });
    match ready_rx.recv_timeout(SERVER_START_TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(format!("not listening after {SERVER_START_TIMEOUT:?}")),
    }
    let deadline = Instant::now() + wait::HANG;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("port {port} refuses connections"));
        }
        wait::pause();
    }
    Ok(())
}

/// What `client.py` printed, parsed.
#[derive(Debug, Clone)]
pub struct PythonReport {
    /// The whole JSON object.
    pub json: serde_json::Value,
    /// The script's stderr (SDK logs, warnings).
    pub stderr: String,
}

impl PythonReport {
    /// Tool names from `tools/list`, or `None` when listing failed or never ran.
    pub fn tools(&self) -> Option<Vec<String>> {
        self.json["tools"].as_array().map(|tools| {
            tools
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// The `call` object (`ok`, `is_error`, `error`, `content`, `structured_content`).
    pub fn call(&self) -> &serde_json::Value {
        &self.json["call"]
    }

    /// The JSON-RPC error code of the call, if it was rejected.
    pub fn call_error_code(&self) -> Option<i64> {
        self.json["call"]["error"]["code"].as_i64()
    }
}

/// Run `client.py URL ARGS…` (see its docstring for flags: `--bearer`, `--api-key`,
/// `--header`, `--mode`, `--call`, `--args`) and parse its report. Panics if the script fails or
/// exceeds [`PYTHON_CLIENT_TIMEOUT`].
///
/// Runs on tokio's blocking pool, so servers on the test's own (current-thread) runtime keep
/// serving while the script talks to them.
pub async fn run_python_client(url: &str, args: &[&str]) -> PythonReport {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python_client_blocking(&url, &args)
    })
    .await
    .unwrap_or_else(|error| match error.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(error) => panic!("client.py task: {error}"),
    })
}

/// [`run_python_client`] for code without a runtime. Do not call it from a `#[tokio::test]`
/// whose runtime serves the URL: the single runtime thread would block and the script hang.
pub fn run_python_client_blocking(url: &str, args: &[&str]) -> PythonReport {
    let env = ensure_interop_env();
    let mut command = Command::new(&env.python);
    command.arg(&env.client_script).arg(url).args(args);
    let output = output_with_timeout(&mut command, PYTHON_CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "client.py {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!("client.py printed no JSON object ({error})\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    PythonReport { json, stderr }
}

/// `Command::output` with a deadline; the child is killed when it passes.
fn output_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {timeout:?}");
        }
        wait::pause();
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = pipe.read_to_end(&mut buffer);
        buffer
    })
}
