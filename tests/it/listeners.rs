//! The listener through the real binary: an address that cannot be bound stops start-up
//! with a clear message and a non-zero exit; readiness means the listener is served;
//! slow clients (head or body a byte at a time) are cut off; the connection cap refuses
//! one more connection with a JSON-RPC error and counts it.

#![allow(
    clippy::disallowed_methods,
    reason = "slow clients write a byte at a time with pauses, and polls for a refusal pause between tries (bounded by the hang limit)"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, Upstream, UpstreamBuilder};
use crate::support::warden::{example_policies, free_port, raw_http, Warden};

/// Start the binary on `listen`/`admin` and wait for it to exit; `None` if it is still
/// running after a generous bound (it is then killed: the start did not fail).
fn run_until_exit(listen: SocketAddr, admin: SocketAddr) -> Option<(i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    crate::support::warden::copy_dir(&example_policies(), &dir.path().join("policies"));
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\nupstream = \"http://127.0.0.1:1/mcp\"\n\
             [admin]\nlisten = \"{admin}\"\n[policy]\ndir = \"policies\"\n{AUTH_TOML}\n"
        ),
    )
    .unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("MCP_WARDEN__ADMIN__LISTEN")
        .env_remove("MCP_WARDEN__LISTEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let bound = Instant::now() + Duration::from_secs(60);
    while Instant::now() < bound {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&stderr).unwrap();
            return Some((status.code().unwrap_or(-1), text));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

#[test]
fn a_taken_listen_port_stops_the_start_with_the_address_the_reason_and_help() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let (code, stderr) =
        run_until_exit(taken, free_addr()).expect("the proxy kept running on a taken port");
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on `{taken}` (`listen`)")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(
        stderr.contains("help: another process is listening"),
        "{stderr}"
    );
    assert!(!stderr.contains("mcp-warden listening"), "{stderr}");
}

#[test]
fn a_taken_admin_port_stops_the_start_likewise() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let (code, stderr) =
        run_until_exit(free_addr(), taken).expect("the proxy kept running on a taken port");
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on `{taken}` (`admin.listen`)")),
        "{stderr}"
    );
    assert!(stderr.contains("MCP_WARDEN__ADMIN__LISTEN"), "{stderr}");
    assert!(!stderr.contains("mcp-warden listening"), "{stderr}");
}

#[test]
fn an_address_this_host_does_not_have_stops_the_start() {
    // TEST-NET-1 (RFC 5737) is never a local address.
    let (code, stderr) = run_until_exit("192.0.2.1:8080".parse().unwrap(), free_addr())
        .expect("the proxy kept running without a listener");
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("cannot listen on `192.0.2.1:8080` (`listen`)"),
        "{stderr}"
    );
    assert!(stderr.contains("help: no network interface"), "{stderr}");
}

async fn setup(extra: &str) -> (Upstream, Warden) {
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{extra}"),
    );
    (up, warden)
}

fn get(addr: SocketAddr, path: &str) -> crate::support::warden::RawResponse {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A counter or gauge's value in the proxy's `/metrics` (0 if absent).
fn metric(warden: &Warden, series: &str) -> f64 {
    let text = get(warden.admin, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Poll `/metrics` until `series` has `value` (the proxy notices closes asynchronously).
fn wait_metric(warden: &Warden, series: &str, value: f64) {
    let bound = Instant::now() + Duration::from_secs(30);
    while Instant::now() < bound {
        if metric(warden, series) == value {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{series} never reached {value}: {}", metric(warden, series));
}

fn initialize_request(addr: SocketAddr, keep_alive: bool) -> Vec<u8> {
    // A call, not a list: its answer passes unchanged, with the upstream's length.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-11-25\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n{}\r\n{body}",
        token("alice", &["staff"], "mcp:tools"),
        body.len(),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    )
    .into_bytes()
}

/// Read one HTTP response with a `Content-Length` body off a keep-alive connection.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let lower = head.to_ascii_lowercase();
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_reports_the_listener() {
    let (_up, warden) = setup("").await;
    // The kernel queues connections from the bind on; readiness waits for Pingora.
    let bound = Instant::now() + Duration::from_secs(30);
    let mut ready = get(warden.admin, "/readyz").json();
    while ready["checks"]["listening"] != true && Instant::now() < bound {
        std::thread::sleep(Duration::from_millis(20));
        ready = get(warden.admin, "/readyz").json();
    }
    assert_eq!(ready["checks"]["listening"], true, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
}

/// Write `bytes` one at a time until the peer closes; return everything it sent back.
fn trickle(mut stream: TcpStream, bytes: Vec<u8>) -> Vec<u8> {
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    for b in bytes.iter().cycle() {
        if stream.write_all(&[*b]).is_err() || answer.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    answer.join().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_sent_a_byte_at_a_time_is_answered_408_and_cut_off() {
    let (_up, warden) = setup("[connections]\nheader_timeout = \"300ms\"\n").await;
    let stream = TcpStream::connect(warden.addr).unwrap();
    // Never finishes its head: one more header line, forever.
    let head = b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa\r\n".to_vec();
    let head = [head, b"X-More: b\r\n".to_vec()].concat();
    let answer = tokio::task::spawn_blocking(move || trickle(stream, head))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"jsonrpc\":\"2.0\""), "{text}");
    wait_metric(
        &warden,
        "mcp_warden_connections_refused_total{reason=\"header_timeout\"}",
        1.0,
    );
    // Others are still served.
    let ok = raw_http(warden.addr, &initialize_request(warden.addr, false));
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_sent_a_byte_at_a_time_is_refused_and_cut_off() {
    let (_up, warden) = setup("[limits]\nbody_read_timeout = \"300ms\"\n").await;
    let mut stream = TcpStream::connect(warden.addr).unwrap();
    let mut request = initialize_request(warden.addr, true);
    let body_at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = request.split_off(body_at);
    stream.write_all(&request).unwrap();
    let answer = tokio::task::spawn_blocking(move || trickle(stream, body))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("request body could not be read"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_cap_refuses_one_more_with_a_json_rpc_error_and_a_metric() {
    let (_up, warden) = setup("[connections]\nmax_connections = 2\n").await;
    // The start-up probe's connections are gone before the test begins.
    wait_metric(&warden, "mcp_warden_connections_open", 0.0);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(warden.addr).unwrap();
        c.write_all(&initialize_request(warden.addr, true)).unwrap();
        let (status, body) = read_response(&mut c);
        assert_eq!(status, 200, "{body}");
        held.push(c);
    }
    let refused = raw_http(warden.addr, &initialize_request(warden.addr, false));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], -32006);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        metric(
            &warden,
            "mcp_warden_connections_refused_total{reason=\"connection_limit\"}"
        ),
        1.0
    );
    // The held connections still work.
    for c in &mut held {
        c.write_all(&initialize_request(warden.addr, true)).unwrap();
        assert_eq!(read_response(c).0, 200);
    }
    // One closes: its slot is free again.
    drop(held.pop());
    wait_metric(&warden, "mcp_warden_connections_open", 1.0);
    let ok = raw_http(warden.addr, &initialize_request(warden.addr, false));
    assert_eq!(ok.status, 200, "{}", ok.text());
}
