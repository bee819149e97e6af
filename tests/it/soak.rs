//! The soak and fault run: the real binary in front of the rmcp test server, under steady
//! load from many clients, through a sequence of faults. Bounded in time; ignored by a
//! plain `cargo test`. Run it with
//!
//! ```text
//! SOAK_SECONDS=90 cargo test --test it soak:: -- --ignored --nocapture
//! ```
//!
//! Phases (each a share of `SOAK_SECONDS`, default 90):
//! 1. **baseline**: steady load (`tools/call` and `tools/list` from many clients).
//! 2. **reload**: policies rewritten every 150 ms — a valid generation A, a broken edit,
//!    a valid generation B — with SIGHUP in between. Zero failed requests; every
//!    `tools/list` answer shows exactly generation A's or B's tools (never a mix).
//! 3. **upstream down**: the upstream is killed; clients get prompt 502 JSON-RPC errors
//!    (no request hangs), `/readyz` turns 503; it is restarted on the same port and the
//!    proxy recovers without a restart; `/readyz` turns 200.
//! 4. **slowloris**: a few hundred connections send their heads a byte at a time while
//!    the normal clients go on; their p99 is compared with the baseline's.
//! 5. **hostile upstream** (a second proxy in front of a hand-written server): an answer
//!    that stalls mid-body, an endless SSE event, an enormous list — each a clear error or
//!    withheld answer, the proxy's memory bounded.
//! 6. **max_sessions**: a third proxy with `max_sessions = 8` in front of the session-mode
//!    rmcp server: sessions up to the cap, one more, then the first ones again.
//!
//! It prints a report (requests sent and failed, p50/p99 per phase, RSS and open file
//! descriptors of the proxy before and after) and fails if a rule above is broken.

#![allow(
    clippy::disallowed_methods,
    reason = "a soak run paces its load and its faults in time; it is ignored by default and asserts no timing"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::tokens::{token, AUTH_TOML};
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::warden::{example_policies, Warden};

/// Load clients.
const CLIENTS: usize = 16;
/// Slow clients during the slowloris phase.
const SLOW_CLIENTS: usize = 300;
/// A client gives up on an answer after this long: a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

const SOAK_CONFIG: &str = "
[connections]
header_timeout = \"2s\"
max_connections = 2000
[upstream_timeouts]
connect = \"1s\"
read = \"3s\"
[limits]
max_response_bytes = 1048576
";

/// Generation B forbids two of the tools generation A lets staff use.
const FORBID_B: &str = "\n@id(\"soak-generation-b\")\nforbid (principal, action == Action::\"call_tool\", resource)\nwhen { resource == Tool::\"get_weather\" || resource == Tool::\"whoami\" };\n";

#[derive(Default)]
struct Phase {
    sent: u64,
    ok: u64,
    failed: BTreeMap<String, u64>,
    hung: u64,
    torn: u64,
    latency: Option<Histogram<u64>>,
}

impl Phase {
    fn record(&mut self, elapsed: Duration, outcome: Result<(), String>) {
        self.sent += 1;
        self.latency
            .get_or_insert_with(|| Histogram::new(3).expect("histogram"))
            .record(elapsed.as_micros().max(1) as u64)
            .ok();
        match outcome {
            Ok(()) => self.ok += 1,
            Err(reason) => *self.failed.entry(reason).or_default() += 1,
        }
    }
    fn failed(&self) -> u64 {
        self.failed.values().sum()
    }
    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency
            .as_ref()
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// What the load clients saw, by phase.
struct Load {
    phase: Mutex<String>,
    phases: Mutex<BTreeMap<String, Phase>>,
    order: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// Tool sets a `tools/list` may show (one per policy generation).
    generations: Vec<Vec<String>>,
}

impl Load {
    fn enter(&self, name: &str) {
        *self.phase.lock().unwrap() = name.to_owned();
        self.order.lock().unwrap().push(name.to_owned());
    }
    fn with_phase(&self, f: impl FnOnce(&mut Phase)) {
        let name = self.phase.lock().unwrap().clone();
        f(self.phases.lock().unwrap().entry(name).or_default());
    }
    fn get(&self, name: &str) -> (u64, u64, u64, u64, f64, f64) {
        let phases = self.phases.lock().unwrap();
        let p = phases.get(name);
        p.map_or((0, 0, 0, 0, 0.0, 0.0), |p| {
            (
                p.sent,
                p.failed(),
                p.hung,
                p.torn,
                p.quantile_ms(0.5),
                p.quantile_ms(0.99),
            )
        })
    }
}

fn call_body(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":"echo","arguments":{"text":"soak"}}})
    .to_string()
}

fn list_body(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":{}}).to_string()
}

/// One request; `Ok(answer)` when HTTP 200 carried a JSON-RPC result.
async fn request(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: String,
) -> Result<Value, String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {bearer}"))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "hung".to_owned()
            } else {
                format!("transport: {e}")
            }
        })?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            "hung".to_owned()
        } else {
            format!("body: {e}")
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
        format!(
            "HTTP {status}: not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    if status != 200 || value.get("error").is_some() {
        let message = value["error"]["message"].as_str().unwrap_or("").to_owned();
        return Err(format!("HTTP {status}: {message}"));
    }
    Ok(value)
}

/// One request answered with an event stream, read until the stream ends: the JSON-RPC
/// messages of its events (`Err("hung")` if it does not end in time).
async fn events(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: String,
) -> Result<Vec<Value>, String> {
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {bearer}"))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err("hung".into()),
            // The proxy closes a stream it ended early.
            Err(_) => break,
        }
    }
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect())
}

fn tool_names(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn spawn_clients(load: &Arc<Load>, url: &str) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|n| {
            let load = Arc::clone(load);
            let url = url.to_owned();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(CLIENT_TIMEOUT)
                    .build()
                    .expect("client");
                let bearer = token("alice", &["staff"], "mcp:tools");
                let mut id = 0u64;
                while !load.stop.load(Ordering::Acquire) {
                    id += 1;
                    let listing = (id + n as u64).is_multiple_of(4);
                    let body = if listing {
                        list_body(id)
                    } else {
                        call_body(id)
                    };
                    let started = Instant::now();
                    let outcome = request(&client, &url, &bearer, body).await;
                    let elapsed = started.elapsed();
                    let torn = match &outcome {
                        Ok(answer) if listing => !load.generations.contains(&tool_names(answer)),
                        _ => false,
                    };
                    let hung = matches!(&outcome, Err(e) if e == "hung");
                    load.with_phase(|p| {
                        p.record(elapsed, outcome.map(|_| ()));
                        p.hung += u64::from(hung);
                        p.torn += u64::from(torn);
                    });
                    if hung || load.phase.lock().unwrap().starts_with("upstream down") {
                        // Do not spin on instant errors.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect()
}

/// The proxy process's resident memory (KiB) and open file descriptors.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// The sum of a metric's samples whose series starts with `series` (a name, or a name and
/// the start of its labels: `name{label="v"`). The value is the sample line's last field.
async fn metric(warden: &Warden, series: &str) -> f64 {
    let Ok(r) = reqwest::get(warden.admin_url("/metrics")).await else {
        return -1.0;
    };
    let text = r.text().await.unwrap_or_default();
    sum_samples(&text, series)
}

fn sum_samples(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(series)?;
            // `name` must not match `name_more`: what follows is labels or the value.
            let next = rest.chars().next()?;
            if !series.contains('{') && next != '{' && next != ' ' {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

#[test]
fn samples_are_summed_with_and_without_labels() {
    let text = "# HELP x\nm_total{result=\"success\"} 5\nm_total{result=\"failure\"} 2\nm_total_other 9\ng 3\n";
    assert_eq!(sum_samples(text, "m_total"), 7.0);
    assert_eq!(sum_samples(text, "m_total{result=\"failure\""), 2.0);
    assert_eq!(sum_samples(text, "g"), 3.0);
}

async fn ready(warden: &Warden) -> bool {
    matches!(reqwest::get(warden.admin_url("/readyz")).await, Ok(r) if r.status() == 200)
}

/// Poll until `check` holds (bounded); how long it took.
async fn until<F: std::future::Future<Output = bool>>(
    bound: Duration,
    mut check: impl FnMut() -> F,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Wait until the proxy serves no downstream connection (its own count).
async fn quiesce(warden: &Warden) {
    until(Duration::from_secs(30), || async {
        metric(warden, "mcp_warden_connections_open").await == 0.0
    })
    .await;
}

/// A hand-written upstream for shapes no real server produces. By request: `tools/call`
/// of `stall` sends half a body and then nothing; `tools/list` with cursor `endless`
/// answers one SSE event that never ends; with cursor `huge` a 24 MiB list.
async fn hostile_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Head and body (the proxy sends Content-Length).
                let body = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                let rpc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = rpc["id"].clone();
                let cursor = rpc["params"]["cursor"].as_str().unwrap_or("");
                let tool = rpc["params"]["name"].as_str().unwrap_or("");
                if tool == "stall" {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\":\"2.0\",")
                        .await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } else if cursor == "endless" {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":")
                        .await;
                    let filler = vec![b' '; 64 * 1024];
                    while stream.write_all(&filler).await.is_ok() {}
                } else if cursor == "huge" {
                    let mut tools = String::from("[");
                    let mut i = 0;
                    while tools.len() < 24 << 20 {
                        if i > 0 {
                            tools.push(',');
                        }
                        tools.push_str(&format!("{{\"name\":\"secret_{i:08}\",\"inputSchema\":{{\"type\":\"object\"}}}}"));
                        i += 1;
                    }
                    tools.push(']');
                    let body = format!(
                        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"tools\":{tools}}}}}"
                    );
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                } else {
                    let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}");
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                }
            });
        }
    });
    (url, task)
}

/// Slow clients: each sends a request head a byte at a time, reconnecting when cut off.
fn spawn_slowloris(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    cut_off: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..SLOW_CLIENTS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let cut_off = Arc::clone(&cut_off);
            tokio::spawn(async move {
                let head = b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                while !stop.load(Ordering::Acquire) {
                    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let mut i = 0;
                    loop {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        let b = head.get(i).copied().unwrap_or(b'a');
                        i += 1;
                        if s.write_all(&[b]).await.is_err() {
                            cut_off.fetch_add(1, Ordering::AcqRel);
                            break;
                        }
                        let mut probe = [0u8; 512];
                        if tokio::time::timeout(Duration::from_millis(200), s.read(&mut probe))
                            .await
                            .is_ok()
                        {
                            cut_off.fetch_add(1, Ordering::AcqRel);
                            break;
                        }
                    }
                }
            })
        })
        .collect()
}

fn write_policies(warden: &Warden, text: &str) {
    let path = warden.policy_dir().join("policies.cedar");
    let tmp = warden.policy_dir().join(".policies.cedar.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak run: SOAK_SECONDS=90 cargo test --test it soak:: -- --ignored --nocapture"]
async fn soak() {
    let budget: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let share = |fraction: f64| Duration::from_secs_f64(budget as f64 * fraction);
    let mut report = String::new();
    let mut problems: Vec<String> = Vec::new();

    // The proxy in front of the rmcp server.
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let up_port = up.addr.port();
    let base_policies = std::fs::read_to_string(example_policies().join("policies.cedar")).unwrap();
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{SOAK_CONFIG}\n"),
    );
    let url = warden.url.clone();
    let pid = warden.pid();

    // The two generations' views of the tools, as a caller sees them.
    let client = reqwest::Client::new();
    let bearer = token("alice", &["staff"], "mcp:tools");
    let view_a = tool_names(
        &request(&client, &url, &bearer, list_body(1))
            .await
            .expect("list"),
    );
    write_policies(&warden, &format!("{base_policies}{FORBID_B}"));
    warden.signal("HUP");
    let view_b = until(Duration::from_secs(30), || async {
        request(&client, &url, &bearer, list_body(2))
            .await
            .is_ok_and(|a| tool_names(&a) != view_a)
    })
    .await
    .map(|_| ());
    assert!(
        view_b.is_some(),
        "generation B never loaded:\n{}",
        warden.logs()
    );
    let view_b = tool_names(&request(&client, &url, &bearer, list_body(3)).await.unwrap());
    write_policies(&warden, &base_policies);
    warden.signal("HUP");
    until(Duration::from_secs(30), || async {
        request(&client, &url, &bearer, list_body(4))
            .await
            .is_ok_and(|a| tool_names(&a) == view_a)
    })
    .await
    .expect("generation A back");
    quiesce(&warden).await;
    let (rss_before, fds_before) = usage(pid);

    let load = Arc::new(Load {
        phase: Mutex::new(String::new()),
        phases: Mutex::new(BTreeMap::new()),
        order: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        generations: vec![view_a.clone(), view_b.clone()],
    });
    load.enter("1 baseline");
    let clients = spawn_clients(&load, &url);
    tokio::time::sleep(share(0.15)).await;

    // 2. Reloads: valid A, broken, valid B, SIGHUP, …
    load.enter("2 reload storm");
    let reloads_before = metric(&warden, "mcp_warden_policy_reloads_total").await;
    let storm_end = Instant::now() + share(0.2);
    let mut step = 0u64;
    while Instant::now() < storm_end {
        match step % 4 {
            0 => write_policies(&warden, &format!("{base_policies}{FORBID_B}")),
            1 => write_policies(
                &warden,
                "permit (principal, action == Action::\"call_tool\"",
            ),
            2 => write_policies(&warden, &base_policies),
            _ => warden.signal("HUP"),
        }
        step += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    write_policies(&warden, &base_policies);
    warden.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reloads = metric(&warden, "mcp_warden_policy_reloads_total").await - reloads_before;
    let rejected = metric(
        &warden,
        "mcp_warden_policy_reloads_total{result=\"failure\"",
    )
    .await;
    report.push_str(&format!(
        "reload storm: {step} edits/signals, {reloads} reloads counted ({rejected} rejected so far)\n"
    ));

    // 3. The upstream dies and comes back.
    load.enter("3 upstream down");
    drop(up);
    let to_unready = until(Duration::from_secs(10), || async { !ready(&warden).await }).await;
    tokio::time::sleep(share(0.08)).await;
    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .port(up_port)
        .start()
        .await;
    let restarted = Instant::now();
    load.enter("4 recovered");
    let to_ready = until(Duration::from_secs(30), || async { ready(&warden).await }).await;
    let first_ok = until(Duration::from_secs(30), || async {
        request(&client, &url, &bearer, call_body(9)).await.is_ok()
    })
    .await;
    report.push_str(&format!(
        "upstream down: /readyz 503 after {:?}; restarted: /readyz 200 after {:?}, first answer {:?} after restart\n",
        to_unready,
        to_ready,
        first_ok.map(|_| restarted.elapsed())
    ));
    if to_unready.is_none() || to_ready.is_none() || first_ok.is_none() {
        problems.push("readiness or recovery did not follow the upstream".into());
    }
    tokio::time::sleep(share(0.08)).await;

    // 4. Slowloris.
    load.enter("5 slowloris");
    let slow_stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let slow = spawn_slowloris(warden.addr, Arc::clone(&slow_stop), Arc::clone(&cut_off));
    tokio::time::sleep(share(0.2)).await;
    slow_stop.store(true, Ordering::Release);
    for s in slow {
        let _ = s.await;
    }
    let cut = metric(
        &warden,
        "mcp_warden_connections_refused_total{reason=\"header_timeout\"}",
    )
    .await;
    report.push_str(&format!(
        "slowloris: {SLOW_CLIENTS} slow clients, {} cut off (client count), {cut} by the proxy's metric\n",
        cut_off.load(Ordering::Acquire)
    ));

    load.stop.store(true, Ordering::Release);
    for c in clients {
        let _ = c.await;
    }
    quiesce(&warden).await;
    // Idle upstream connections are pooled; let the pool settle as after any run.
    let (rss_after, fds_after) = usage(pid);

    // 5. A hostile upstream, behind its own proxy.
    let (hostile_url, hostile_task) = hostile_upstream().await;
    let hostile = Warden::start(
        &hostile_url,
        &example_policies(),
        &format!("{AUTH_TOML}\n{SOAK_CONFIG}"),
    );
    let (rss_h0, _) = usage(hostile.pid());
    // A new connection for each hostile request: the proxy closes a connection after an
    // answer it cut short or ended early, and once the head went out it cannot say so.
    let long = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    // As an admin: the policy lets admins call a tool the proxy has not seen listed.
    let admin = token("root", &["admin"], "mcp:tools");
    let stall = request(
        &long,
        &hostile.url,
        &admin,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"stall","arguments":{}}}).to_string(),
    )
    .await;
    let stall_time = started.elapsed();
    report.push_str(&format!(
        "hostile, stalled answer: {stall:?} after {stall_time:?}\n"
    ));
    if stall.is_ok() || matches!(&stall, Err(e) if e == "hung") {
        problems.push("a stalled upstream answer was not cut off".into());
    }
    let started = Instant::now();
    let endless = events(
        &long,
        &hostile.url,
        &bearer,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"endless"}})
            .to_string(),
    )
    .await;
    let endless_time = started.elapsed();
    let (rss_h1, _) = usage(hostile.pid());
    report.push_str(&format!(
        "hostile, endless SSE event: {endless:?} after {endless_time:?}; proxy RSS {rss_h0} -> {rss_h1} KiB\n"
    ));
    let withheld = matches!(&endless, Ok(messages) if messages.len() == 1
        && messages[0]["id"] == json!(2)
        && messages[0]["error"]["code"] == json!(-32005));
    if !withheld {
        problems.push(
            "an endless SSE event did not end the stream with a withheld-answer error".into(),
        );
    }
    let started = Instant::now();
    let huge = request(
        &long,
        &hostile.url,
        &bearer,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"huge"}})
            .to_string(),
    )
    .await;
    let huge_time = started.elapsed();
    let (rss_h2, fds_h2) = usage(hostile.pid());
    report.push_str(&format!(
        "hostile, 24 MiB list: {huge:?} after {huge_time:?}; proxy RSS {rss_h2} KiB, fds {fds_h2}\n"
    ));
    if matches!(&huge, Ok(a) if a.to_string().contains("secret_")) {
        problems.push("an enormous list passed unfiltered".into());
    }
    if rss_h2.saturating_sub(rss_h0) > 64 * 1024 {
        problems.push(format!(
            "hostile answers grew the proxy by {} KiB",
            rss_h2 - rss_h0
        ));
    }
    drop(hostile);
    hostile_task.abort();

    // 6. max_sessions.
    let sessions_up = UpstreamBuilder::new(ResponseMode::Sse)
        .any_host()
        .start()
        .await;
    let capped = Warden::start(
        &sessions_up.url,
        &example_policies(),
        &format!("{AUTH_TOML}\n[sessions]\nmax_sessions = 8\n"),
    );
    let mut sessions = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..9 {
        let r = client
            .post(&capped.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {bearer}"))
            .body(
                json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"soak","version":"1"}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let sid = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().await.unwrap_or_default();
        match sid {
            Some(sid) if status == 200 => sessions.push(sid),
            _ => refusals.push(format!("session {i}: HTTP {status} {text}")),
        }
    }
    let mut still = 0;
    for sid in &sessions {
        let r = client
            .post(&capped.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", sid)
            .header("authorization", format!("Bearer {bearer}"))
            .body(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string())
            .send()
            .await
            .unwrap();
        still += usize::from(r.status().is_success());
    }
    report.push_str(&format!(
        "max_sessions = 8: {} sessions opened of 9 tried, refusals {:?}; {} of the opened still usable\n",
        sessions.len(),
        refusals,
        still
    ));
    if refusals.is_empty() || still != sessions.len() {
        problems.push(
            "max_sessions: the session over the cap was not refused, or an existing one was lost"
                .into(),
        );
    }
    drop(capped);
    drop(sessions_up);

    // The report.
    let mut total = (0, 0);
    let mut table = String::from(
        "| phase | sent | failed | hung | torn lists | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|\n",
    );
    for name in load.order.lock().unwrap().iter() {
        let (sent, failed, hung, torn, p50, p99) = load.get(name);
        total.0 += sent;
        total.1 += failed;
        table.push_str(&format!(
            "| {name} | {sent} | {failed} | {hung} | {torn} | {p50:.1} | {p99:.1} |\n"
        ));
    }
    let phases = load.phases.lock().unwrap();
    for (name, p) in phases.iter() {
        if !p.failed.is_empty() {
            report.push_str(&format!("failures in {name}: {:?}\n", p.failed));
        }
    }
    let check = |name: &str, problems: &mut Vec<String>| {
        if let Some(p) = phases.get(name) {
            if p.failed() > 0 || p.hung > 0 || p.torn > 0 {
                problems.push(format!(
                    "{name}: {} failed, {} hung, {} torn",
                    p.failed(),
                    p.hung,
                    p.torn
                ));
            }
        }
    };
    check("1 baseline", &mut problems);
    check("2 reload storm", &mut problems);
    check("5 slowloris", &mut problems);
    if let Some(p) = phases.get("3 upstream down") {
        let other = p
            .failed
            .iter()
            // The proxy's own answer is a 502. A request the upstream had already taken
            // when it was stopped gets the upstream's own answer instead: rmcp's 500 for a
            // handler cancelled mid-call, relayed as it came.
            .filter(|(k, _)| {
                let expected = k.starts_with("HTTP 502")
                    || (k.starts_with("HTTP 500")
                        && k.contains("no response message received from handler"));
                !expected
            })
            .map(|(_, v)| v)
            .sum::<u64>();
        if p.hung > 0 || other > 0 {
            problems.push(format!(
                "upstream down: {} hung, {other} failures other than 502",
                p.hung
            ));
        }
    }
    if fds_after > fds_before + 32 {
        problems.push(format!("fds {fds_before} -> {fds_after}"));
    }
    println!(
        "\n## soak report ({budget}s budget, debug build)\n\n{table}\nrequests: {} sent, {} failed (failures in `3 upstream down` are the expected 502s)\nproxy RSS {rss_before} -> {rss_after} KiB, open fds {fds_before} -> {fds_after}\n{report}\nproblems: {problems:?}\n",
        total.0, total.1
    );
    drop(phases);
    drop(up);
    assert!(
        problems.is_empty(),
        "soak problems: {problems:?}\n{}",
        warden.logs()
    );
}
