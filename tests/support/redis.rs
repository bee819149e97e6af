//! Redis for the replica tests: the shared server (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`) with a key prefix per test, or a `redis-server` of the test's
//! own on a free port, which it may kill and start again (by its PID, never by name).
//! With `CI=true` an unreachable Redis or a missing `redis-server` fails the test.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::warden::free_port;

/// The shared Redis URL.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "mcp-warden-test:{test}:{}:",
        hex::encode(rand::random::<[u8; 6]>())
    )
}

/// Does something answer `PING` at `host:port`?
fn pings(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// `true` when the shared Redis answers; `false` (skip) when it does not, except under
/// `CI=true`, where it panics.
pub fn shared_redis_available() -> bool {
    let url = redis_url();
    let hostport = url
        .trim_start_matches("redis://")
        .trim_start_matches("rediss://")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let ok = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(pings);
    if !ok {
        assert!(
            !in_ci(),
            "Redis at {url} is unreachable (CI=true: not skipping)"
        );
        eprintln!("skipping: no Redis at {url}");
    }
    ok
}

/// `redis-server` on `PATH`? (Under `CI=true` it must be.)
pub fn redis_server_available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "redis-server is not installed (CI=true: not skipping)"
        );
        eprintln!("skipping: no redis-server");
    }
    ok
}

/// TLS files for a `redis-server --tls-port`: a CA and a server certificate for
/// `127.0.0.1`, written into `dir`.
pub struct TlsFiles {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Make a CA and a server certificate with rcgen.
    pub fn generate(dir: &Path) -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("redis.pem"),
            key: dir.join("redis.key"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).unwrap();
        std::fs::write(&files.cert, server_cert.pem()).unwrap();
        std::fs::write(&files.key, server_key.serialize_pem()).unwrap();
        files
    }
}

/// A `redis-server` of the test's own; killed on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a plain server on a free port (no persistence).
    pub fn start() -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            tls: None,
            child: None,
        };
        s.spawn();
        s
    }

    /// Start a TLS-only server on a free port with `files`.
    pub fn start_tls(files: &TlsFiles) -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            tls: Some((files.cert.clone(), files.key.clone(), files.ca.clone())),
            child: None,
        };
        s.spawn();
        s
    }

    /// `redis://127.0.0.1:PORT` (or `rediss://` for TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some((cert, key, ca)) => {
                cmd.args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("spawn redis-server"));
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        super::wait::until(&format!("redis-server listening on {addr}"), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                .ok()
                .map(drop)
        });
    }

    /// Kill it (SIGKILL, by PID) and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
