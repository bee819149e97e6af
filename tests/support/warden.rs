//! Starts the real `mcp-warden` binary with a generated configuration.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::wait;

/// A running proxy; killed on drop.
pub struct Warden {
    /// `http://127.0.0.1:PORT/mcp` (path as configured upstream).
    pub url: String,
    /// Listen address.
    pub addr: SocketAddr,
    /// Admin listener address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Directory holding the config (and whatever the test put there).
    pub dir: tempfile::TempDir,
    child: Child,
    log: PathBuf,
}

/// A free loopback port (bound and released; the proxy binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Copy a directory (non-recursive is enough for policy dirs).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The example policy directory of the repository.
pub fn example_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/example")
}

/// A policy directory holding the repository's example schema (copied, so there is one
/// schema to maintain) and `cedar` as `policies.cedar`, with no `entities.json`.
pub fn policy_fixture(cedar: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut schemas = 0;
    for entry in std::fs::read_dir(example_policies()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedarschema") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            schemas += 1;
        }
    }
    assert_eq!(schemas, 1, "policies/example must hold exactly one schema");
    std::fs::write(dir.path().join("policies.cedar"), cedar).unwrap();
    dir
}

impl Warden {
    /// Start the proxy in front of `upstream` with the policies `cedar` over the example
    /// schema (see [`policy_fixture`]).
    pub fn start_with_policy(upstream: &str, cedar: &str, extra: &str) -> Warden {
        let policies = policy_fixture(cedar);
        Self::start(upstream, policies.path(), extra)
    }

    /// Start the proxy in front of `upstream` (a full URL). `extra` is TOML appended to
    /// the generated config (auth, identity headers, …). The policy directory is copied
    /// into the temp dir as `policies/` so tests may edit it.
    pub fn start(upstream: &str, policy_dir: &Path, extra: &str) -> Warden {
        Self::start_with_env(upstream, policy_dir, extra, &[])
    }

    /// [`Warden::start`] with extra environment variables.
    pub fn start_with_env(
        upstream: &str,
        policy_dir: &Path,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Warden {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(policy_dir, &dir.path().join("policies"));
        let port = free_port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nupstream = \"{upstream}\"\n\n[policy]\ndir = \"policies\"\n\n{extra}\n"
        );
        let config_path = dir.path().join("warden.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("warden.log");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-warden"));
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info,pingora=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            // Every proxy gets its own admin port (the default 9090 would collide).
            .env("MCP_WARDEN__ADMIN__LISTEN", admin.to_string());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn mcp-warden");
        let path = upstream
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_else(|| "/".into());
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut w = Warden {
            url: format!("http://127.0.0.1:{port}{path}"),
            addr,
            admin,
            dir,
            child,
            log,
        };
        w.wait_ready();
        w
    }

    fn wait_ready(&mut self) {
        wait::until("mcp-warden to listen", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mcp-warden exited early ({status}):\n{}", self.logs());
            }
            TcpStream::connect(self.addr).ok().map(drop)
        });
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the proxy logged so far.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The copied policy directory, for editing.
    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// Send a signal to the proxy process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `http://ADMIN/<path>` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The Prometheus exposition text of the plain-HTTP admin listener.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("read /metrics")
    }

    /// Wait for the process to exit (`None` if it is still running after `timeout`; pass
    /// [`wait::HANG`] unless the test is about the process *not* exiting).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            wait::pause();
        }
        None
    }

    /// Wait until the log contains `needle` (or panic after `timeout`, which only bounds a
    /// hang: pass [`wait::HANG`]).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return;
            }
            wait::pause();
        }
        panic!("log never contained {needle:?}:\n{}", self.logs());
    }

    /// Wait until `needle` appears `count` times in the log (or panic after [`wait::HANG`]).
    pub fn wait_for_nth_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + wait::HANG;
        while self.logs().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "log never had {needle:?} {count} times:\n{}",
                self.logs()
            );
            wait::pause();
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- mcp-warden log ----\n{}", self.logs());
        }
    }
}

/// Run `mcp-warden` with arguments, returning (exit success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(args)
        .output()
        .expect("run mcp-warden");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replace the file at `path` with `contents` the way an editor or a Kubernetes ConfigMap
/// update does: the new text is written in a fresh directory beside the file's own (so
/// writing it fires no watcher), then renamed over the file in one step. A watcher on the
/// file's directory sees exactly one change, and a reload reads either the old text or the
/// new one, never a half-written file (`std::fs::write` truncates first: a reload between
/// the truncation and the write would load an empty file).
pub fn replace_file(path: &Path, contents: &str) {
    let dir = path.parent().expect("a file in a directory");
    let beside = dir.parent().unwrap_or(dir);
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(beside)
        .expect("a staging directory");
    let name = path.file_name().expect("a file name");
    let staged = staging.path().join(name);
    std::fs::write(&staged, contents).expect("write the staged file");
    std::fs::rename(&staged, path).expect("rename the staged file into place");
}

/// A response read off the wire by [`raw_http`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Status line and headers, as text.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value (case-insensitive name), first occurrence.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}\n{}",
                String::from_utf8_lossy(&self.body),
                self.head
            )
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `request` (exact bytes: request line, headers, body; include
/// `Connection: close`) in one write and read the answer until the server closes.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> RawResponse {
    raw_http_pieces(addr, &[request])
}

/// The pause between the pieces of [`raw_http_pieces`], so each is likely its own segment.
/// Nothing may depend on it: the proxy must give the same answer however the pieces
/// arrive.
#[allow(
    clippy::disallowed_methods,
    reason = "paces a request written in pieces; no outcome depends on it"
)]
fn pace() {
    std::thread::sleep(Duration::from_millis(20));
}

/// [`raw_http`] with the request written in pieces, 20 ms apart.
pub fn raw_http_pieces(addr: SocketAddr, pieces: &[&[u8]]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to mcp-warden");
    stream.set_read_timeout(Some(wait::HANG)).unwrap();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            pace();
        }
        // The proxy may answer (and close) before reading everything we send.
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no response from mcp-warden: {e}"),
            Err(_) => break,
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let mut response = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        let mut rest = rest;
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
            if size == 0 {
                break;
            }
            let start = eol + 2;
            let stop = (start + size).min(rest.len());
            response.body.extend_from_slice(&rest[start..stop]);
            rest = &rest[(stop + 2).min(rest.len())..];
        }
    } else {
        let len = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(rest.len())
            .min(rest.len());
        response.body = rest[..len].to_vec();
    }
    response
}
