//! The processes under test (the upstream, mcp-warden, nginx, the bare Pingora proxy),
//! where they run, and what `/proc` says about them: resident memory (current and peak)
//! and CPU time.
//!
//! Placement: with [`pin_cores`] (the default on two or more CPUs), the driver (this
//! process) and the upstream it starts run on CPU 0 and every proxy on CPU 1, as a sidecar
//! has a CPU budget of its own. The direct run then measures driver and upstream on one
//! core, and a proxied run the same plus a proxy that must keep up on the other; unpinned,
//! the proxy takes its CPU from the driver and the upstream, and the ratio measures the sum.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::upstream::Mode;

/// Whether [`pin_cores`] placed the processes.
static PINNED: AtomicBool = AtomicBool::new(false);

/// Pins this process (every thread) and so the upstreams it starts later to CPU 0;
/// proxies started afterwards go to CPU 1 (`taskset`, from util-linux).
pub fn pin_cores() -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-cp", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if !status.success() {
        return Err(format!("taskset exited with {status}"));
    }
    PINNED.store(true, Ordering::Relaxed);
    Ok(())
}

/// A command for a proxy: on CPU 1 when pinned (`taskset` execs the program, so the
/// child's PID is the proxy's).
fn proxy_command(program: &Path) -> Command {
    if PINNED.load(Ordering::Relaxed) {
        let mut command = Command::new("taskset");
        command.args(["-c", "1"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A child process, killed (with its children, for nginx) on drop.
pub struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        for pid in descendants(self.child.id()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// The process and its children (nginx workers), for memory and CPU.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(descendants(self.child.id()));
        pids
    }

    /// Resident memory now, in KiB, summed over [`Proc::pids`].
    pub fn rss_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| status_kib(p, "VmRSS:"))
            .sum()
    }

    /// Peak resident memory, in KiB, summed over [`Proc::pids`].
    pub fn peak_rss_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| status_kib(p, "VmHWM:"))
            .sum()
    }

    /// User + system CPU time so far, summed over [`Proc::pids`].
    pub fn cpu(&self) -> Duration {
        self.pids().into_iter().map(cpu_time).sum()
    }
}

/// Direct children of `pid` (enough for nginx: master → workers).
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent(child) == Some(pid))
        .collect()
}

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// utime + stime, from clock ticks (100 Hz on Linux).
fn cpu_time(pid: u32) -> Duration {
    let ticks = stat_fields(pid).map_or(0, |f| {
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    });
    Duration::from_millis(ticks * 10)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts this bench binary as the upstream (`upstream --tools N --mode …`); returns it
/// and its address once it prints `READY`.
pub fn upstream(tools: usize, mode: Mode) -> (Proc, SocketAddr) {
    let exe = std::env::current_exe().expect("the bench binary");
    let mode = match mode {
        Mode::Json => "json",
        Mode::Sse => "sse",
    };
    let mut child = Command::new(exe)
        .args(["upstream", "--tools", &tools.to_string(), "--mode", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bench upstream");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the upstream's READY line");
    let addr = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the upstream printed {line:?}, not READY <addr>"));
    (Proc { child }, addr)
}

/// Starts `mcp-warden run --config <config>` (the binary cargo built for this bench, or
/// `$MCP_WARDEN_BIN` to compare another build) and waits until its admin `/readyz`
/// answers 200 and its listener accepts.
pub fn warden(config: &Path, listen: SocketAddr, admin: SocketAddr, log: &Path) -> Proc {
    let log_file = std::fs::File::create(log).expect("warden log file");
    let binary = std::env::var_os("MCP_WARDEN_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_mcp-warden").into(), PathBuf::from);
    let child = proxy_command(&binary)
        .args(["run", "--config"])
        .arg(config)
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start mcp-warden");
    let proc = Proc { child };
    wait_until(
        || http_status(admin, "/readyz") == Some(200),
        &format!("mcp-warden ready (see {})", log.display()),
    );
    wait_until(
        || TcpStream::connect(listen).is_ok(),
        "mcp-warden listening",
    );
    proc
}

/// Starts the bare Pingora proxy ([`super::bare`]: this bench binary again) on `listen`
/// in front of `upstream`; waits until it accepts.
pub fn bare_pingora(listen: SocketAddr, upstream: SocketAddr) -> Proc {
    let exe = std::env::current_exe().expect("the bench binary");
    let mut command = proxy_command(&exe);
    command
        .args(["bare-pingora", "--listen", &listen.to_string()])
        .args(["--upstream", &upstream.to_string()]);
    spawn_listening(command, listen, "the bare Pingora proxy")
}

/// Starts `command` (its output discarded, its errors shown) and waits until `listen`
/// accepts.
fn spawn_listening(mut command: Command, listen: SocketAddr, what: &str) -> Proc {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let proc = Proc { child };
    wait_until(
        || TcpStream::connect(listen).is_ok(),
        &format!("{what} listening"),
    );
    proc
}

/// Starts nginx with `conf` in the foreground; waits until `listen` accepts.
pub fn nginx(binary: &Path, conf: &Path, prefix: &Path, listen: SocketAddr) -> Proc {
    let mut command = proxy_command(binary);
    command.arg("-p").arg(prefix).arg("-c").arg(conf);
    spawn_listening(command, listen, "nginx")
}

#[allow(
    clippy::disallowed_methods,
    reason = "the poll interval of a wait for a process to listen, bounded by the deadline"
)]
fn wait_until(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status of a plain `GET path` (no keep-alive), or `None` if nothing answers.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A free loopback port (bound and released; the child binds it right after).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}
