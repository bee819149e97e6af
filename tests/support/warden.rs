//! Starts the real `mcp-warden` binary with a generated configuration.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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

impl Warden {
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mcp-warden exited early ({status}):\n{}", self.logs());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mcp-warden did not start listening:\n{}", self.logs());
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

    /// Wait for the process to exit (`None` if it is still running after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Wait until the log contains `needle` (or panic after `timeout`).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("log never contained {needle:?}:\n{}", self.logs());
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
