//! What the load benchmark runs, in order, and the results it collects.
//!
//! 1. Request benchmarks: one upstream (100 extra tools, JSON answers); for each target
//!    (direct, mcp-warden Cedar/JWT in plain text and over TLS, Cedar/RS256 JWT, Biscuit,
//!    Cedar with Redis state when a Redis answers, nginx) and each workload (allowed
//!    call, denied call, `tools/list`): a pre-flight check of the answer, a saturation
//!    phase, a fixed-rate phase (with the proxy's CPU time measured over it).
//! 2. Policy scaling: the Cedar target with 10 … 1,000 policies, allowed call, fixed rate.
//! 3. Catalogue scaling: upstreams of 10 … 1,000 tools, `tools/list` direct and through
//!    mcp-warden (Cedar), fixed rate.
//! 4. Session memory: mcp-warden (Cedar) in front of a stateful SSE upstream; RSS before,
//!    after opening N sessions, and after opening a GET event stream on each.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use super::driver::{self, Connection, Outcome, RequestSpec};
use super::procs::{self, Proc};
use super::setup::{self, Target};
use super::upstream::Mode;
use super::Plan;

/// The MCP revision the requests speak.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// Extra tools of the request benchmarks' upstream.
const LIST_TOOLS: usize = 100;

/// One load phase, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Connections the server closed between requests (each reopened by the driver).
    pub reconnects: u64,
    pub seconds: f64,
    pub throughput_rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl From<&Outcome> for Phase {
    fn from(o: &Outcome) -> Self {
        Phase {
            ok: o.ok,
            errors: o.errors,
            first_error: o.first_error.clone(),
            reconnects: o.reconnects,
            seconds: o.elapsed.as_secs_f64(),
            throughput_rps: o.throughput(),
            p50_us: o.quantile_us(0.50),
            p99_us: o.quantile_us(0.99),
            p999_us: o.quantile_us(0.999),
            max_us: o.latency.max() as f64 / 1_000.0,
        }
    }
}

/// One target × workload.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub target: String,
    pub workload: String,
    pub saturation: Phase,
    pub fixed_rate: Phase,
    /// The proxy's CPU time per 1,000 requests of the fixed-rate phase (none for direct).
    pub cpu_ms_per_1000: Option<f64>,
}

/// A proxy's memory over the request benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub target: String,
    pub idle_rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// One policy count.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyScale {
    pub policies: usize,
    pub fixed_rate: Phase,
    pub cpu_ms_per_1000: f64,
}

/// One catalogue size.
#[derive(Debug, Clone, Serialize)]
pub struct ToolScale {
    pub tools: usize,
    pub direct: Phase,
    pub proxied: Phase,
    pub direct_bytes: usize,
    pub proxied_bytes: usize,
}

/// One session count.
#[derive(Debug, Clone, Serialize)]
pub struct SessionScale {
    pub sessions: usize,
    pub baseline_rss_kib: u64,
    pub with_sessions_rss_kib: u64,
    pub with_streams_rss_kib: u64,
    pub per_session_kib: f64,
    pub per_stream_kib: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub rows: Vec<Row>,
    pub memory: Vec<Memory>,
    pub policy_scale: Vec<PolicyScale>,
    pub tool_scale: Vec<ToolScale>,
    pub session_scale: Vec<SessionScale>,
    /// Why the nginx floor is missing, if it is.
    pub nginx_missing: Option<String>,
}

/// What a target does with the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Passes everything (direct, nginx): the denied call runs, the list is whole.
    Plain,
    /// Enforces the bench policies (mcp-warden).
    Warden,
}

fn call(tool: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"hello","limit":10}}}}}}"#
    ))
}

fn list() -> Bytes {
    Bytes::from_static(br#"{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{}}"#)
}

fn spec(addr: SocketAddr, token: &str, body: Bytes, statuses: &[u16], marker: &str) -> RequestSpec {
    RequestSpec {
        addr,
        path: "/mcp".into(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("mcp-protocol-version".into(), PROTOCOL_VERSION.into()),
        ],
        body,
        statuses: statuses.to_vec(),
        marker: marker.into(),
        tls: None,
    }
}

/// The three workloads for a target, with the answer each must get.
fn workloads(addr: SocketAddr, token: &str, kind: Kind) -> Vec<(&'static str, RequestSpec)> {
    let denied = match kind {
        Kind::Plain => spec(
            addr,
            token,
            call("delete_records"),
            &[200],
            "delete_records: hello",
        ),
        // A denied call is a JSON-RPC error -32003 (HTTP 200 or 403, per the verdict).
        Kind::Warden => spec(addr, token, call("delete_records"), &[200, 403], "-32003"),
    };
    // tool_0099 is read-only (listed for the bench caller); tool_0100 destructive (hidden).
    let list = spec(addr, token, list(), &[200], "\"tool_0099\"");
    vec![
        (
            "tools/call allowed",
            spec(addr, token, call("echo"), &[200], "echo: hello"),
        ),
        ("tools/call denied", denied),
        ("tools/list (100 tools)", list),
    ]
}

/// Sends each workload once and checks the answer, so a misconfigured run stops here
/// instead of measuring errors. The `tools/list` goes first: mcp-warden learns the tools'
/// annotations from it (until then a tool counts as destructive, the spec's default).
fn preflight(
    rt: &tokio::runtime::Runtime,
    target: &str,
    kind: Kind,
    specs: &[(&str, RequestSpec)],
) {
    for (workload, spec) in specs.iter().rev() {
        let body = rt
            .block_on(driver::once(spec))
            .unwrap_or_else(|e| panic!("{target} / {workload}: unexpected answer: {e}"));
        if workload.starts_with("tools/list") {
            let hidden = memchr::memmem::find(&body, b"\"tool_0100\"").is_none();
            assert_eq!(
                hidden,
                kind == Kind::Warden,
                "{target} / {workload}: destructive tool_0100 hidden = {hidden}"
            );
        }
    }
}

/// A fixed-rate phase at `plan.rate`, with the proxy's CPU milliseconds per 1,000
/// requests over it (when there is a proxy).
fn fixed_rate_with_cpu(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    spec: Arc<RequestSpec>,
    proxy: Option<&Proc>,
) -> (Outcome, Option<f64>) {
    let before = proxy.map(Proc::cpu);
    let fixed = rt.block_on(driver::fixed_rate(
        spec,
        plan.rate,
        plan.rate_connections,
        plan.rate_duration,
    ));
    let cpu = proxy.zip(before).map(|(p, before)| {
        let used = p.cpu().saturating_sub(before);
        used.as_secs_f64() * 1_000.0 / (fixed.ok.max(1) as f64 / 1_000.0)
    });
    (fixed, cpu)
}

/// Runs the workloads against one target (over TLS when `tls` is given).
#[allow(
    clippy::too_many_arguments,
    reason = "one call per target; the arguments are what differs between targets"
)]
fn measure(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    target: &str,
    kind: Kind,
    addr: SocketAddr,
    token: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: Option<&Proc>,
) -> Vec<Row> {
    let mut specs = workloads(addr, token, kind);
    for (_, spec) in &mut specs {
        spec.tls = tls.clone();
    }
    preflight(rt, target, kind, &specs);
    let mut rows = Vec::new();
    for (workload, spec) in specs {
        let spec = Arc::new(spec);
        eprintln!("  {target} / {workload}: saturation …");
        let saturation = rt.block_on(driver::saturate(
            spec.clone(),
            plan.saturate_connections,
            plan.warmup,
            plan.saturate_duration,
        ));
        eprintln!("  {target} / {workload}: {} req/s offered …", plan.rate);
        let (fixed, cpu_ms_per_1000) = fixed_rate_with_cpu(rt, plan, spec, proxy);
        rows.push(Row {
            target: target.into(),
            workload: workload.into(),
            saturation: Phase::from(&saturation),
            fixed_rate: Phase::from(&fixed),
            cpu_ms_per_1000,
        });
    }
    rows
}

/// Starts mcp-warden for `target` (written under `dir`) and waits until it is ready.
fn start_warden(dir: &Path, target: &Target) -> Proc {
    procs::warden(
        &target.config,
        target.listen,
        target.admin,
        &dir.join("warden.log"),
    )
}

/// Addresses of one proxy: its listener and its admin listener.
fn addrs() -> (SocketAddr, SocketAddr) {
    (procs::free_addr(), procs::free_addr())
}

/// The target name of the bare Pingora proxy ([`super::bare`]).
pub const BARE_PINGORA: &str = "Pingora (bare)";

/// [`measure`] for a proxy process, with its memory: resident when idle (before the
/// workloads) and at its peak (after them).
#[allow(
    clippy::too_many_arguments,
    reason = "one call per proxy; the arguments are what differs between targets"
)]
fn measure_proxy(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    target: &str,
    kind: Kind,
    addr: SocketAddr,
    token: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: &Proc,
) -> (Vec<Row>, Memory) {
    eprintln!("{target} → {addr}");
    let idle = proxy.rss_kib();
    let rows = measure(rt, plan, target, kind, addr, token, tls, Some(proxy));
    let memory = Memory {
        target: target.into(),
        idle_rss_kib: idle,
        peak_rss_kib: proxy.peak_rss_kib(),
    };
    (rows, memory)
}

/// Runs every scenario of `plan`.
pub fn run(plan: &Plan) -> Results {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let work = tempfile::tempdir().expect("temporary directory");
    let (upstream, upstream_addr) = procs::upstream(LIST_TOOLS, Mode::Json);
    let mut rows = Vec::new();
    let mut memory = Vec::new();

    eprintln!("direct → {upstream_addr}");
    let cedar_dir = work.path().join("cedar");
    let (cedar_addr, cedar_admin) = addrs();
    let cedar = setup::cedar_jwt(&cedar_dir, 0, cedar_addr, upstream_addr, cedar_admin);
    rows.extend(measure(
        &rt,
        plan,
        "direct",
        Kind::Plain,
        upstream_addr,
        &cedar.token,
        None,
        None,
    ));

    let jwt = cedar.token.clone();
    let biscuit_dir = work.path().join("biscuit");
    let (biscuit_addr, biscuit_admin) = addrs();
    std::fs::create_dir_all(&biscuit_dir).expect("dir");
    let biscuit = setup::biscuit(&biscuit_dir, biscuit_addr, upstream_addr, biscuit_admin);
    let rs256_dir = work.path().join("cedar-rs256");
    let (rs256_addr, rs256_admin) = addrs();
    let rs256 = setup::cedar_jwt_rs256(&rs256_dir, rs256_addr, upstream_addr, rs256_admin);
    let tls_dir = work.path().join("cedar-tls");
    let (tls_addr, tls_admin) = addrs();
    let (tls, tls_client) = setup::cedar_jwt_tls(&tls_dir, tls_addr, upstream_addr, tls_admin);
    let mut targets = vec![
        ("mcp-warden (Cedar, JWT)", cedar_dir, cedar, None),
        (
            "mcp-warden (Cedar, JWT, TLS)",
            tls_dir,
            tls,
            Some(tls_client),
        ),
        ("mcp-warden (Cedar, RS256 JWT)", rs256_dir, rs256, None),
        ("mcp-warden (Biscuit)", biscuit_dir, biscuit, None),
    ];
    // The Cedar target again with its shared state in Redis, when a Redis answers.
    match setup::find_redis() {
        Some(url) => {
            let dir = work.path().join("cedar-redis");
            let (addr, admin) = addrs();
            let target = setup::cedar_jwt_redis(&dir, &url, addr, upstream_addr, admin);
            targets.push(("mcp-warden (Cedar, JWT, Redis state)", dir, target, None));
        }
        None => eprintln!("no Redis (REDIS_URL): the Redis-state target is left out"),
    }
    for (name, dir, target, tls) in targets {
        if !plan.runs(name) {
            continue;
        }
        let proxy = start_warden(&dir, &target);
        let (measured, used) = measure_proxy(
            &rt,
            plan,
            name,
            Kind::Warden,
            target.listen,
            &target.token,
            tls,
            &proxy,
        );
        rows.extend(measured);
        memory.push(used);
    }

    let nginx_missing = match setup::find_nginx() {
        None => Some("nginx is not installed (benches/load/run.sh installs it)".to_owned()),
        Some(_) if !plan.runs("nginx") => None,
        Some(binary) => {
            let dir = work.path().join("nginx");
            let listen = procs::free_addr();
            let conf = setup::nginx_conf(&dir, listen, upstream_addr);
            let proxy = procs::nginx(&binary, &conf, &dir, listen);
            let (measured, used) =
                measure_proxy(&rt, plan, "nginx", Kind::Plain, listen, &jwt, None, &proxy);
            rows.extend(measured);
            memory.push(used);
            None
        }
    };
    // The framework's floor: Pingora with mcp-warden's runtime settings, forwarding only.
    if plan.runs(BARE_PINGORA) {
        let bare_listen = procs::free_addr();
        let bare = procs::bare_pingora(bare_listen, upstream_addr);
        let (measured, used) = measure_proxy(
            &rt,
            plan,
            BARE_PINGORA,
            Kind::Plain,
            bare_listen,
            &jwt,
            None,
            &bare,
        );
        rows.extend(measured);
        memory.push(used);
    }
    drop(upstream);

    if plan.only.is_some() {
        return Results {
            rows,
            memory,
            policy_scale: Vec::new(),
            tool_scale: Vec::new(),
            session_scale: Vec::new(),
            nginx_missing,
        };
    }
    let policy_scale = policy_scaling(&rt, plan, work.path());
    let tool_scale = tool_scaling(&rt, plan, work.path());
    let session_scale = session_scaling(&rt, plan, work.path());
    Results {
        rows,
        memory,
        policy_scale,
        tool_scale,
        session_scale,
        nginx_missing,
    }
}

fn policy_scaling(rt: &tokio::runtime::Runtime, plan: &Plan, work: &Path) -> Vec<PolicyScale> {
    let (upstream, upstream_addr) = procs::upstream(LIST_TOOLS, Mode::Json);
    let mut out = Vec::new();
    for &count in &plan.policy_counts {
        let dir = work.join(format!("policies-{count}"));
        let (addr, admin) = addrs();
        let target = setup::cedar_jwt(&dir, count, addr, upstream_addr, admin);
        let proxy = start_warden(&dir, &target);
        eprintln!("policy scaling: {count} policies");
        let specs = workloads(addr, &target.token, Kind::Warden);
        preflight(rt, "policy scaling", Kind::Warden, &specs);
        let spec = Arc::new(specs.into_iter().next().expect("allowed call").1);
        let (fixed, cpu) = fixed_rate_with_cpu(rt, plan, spec, Some(&proxy));
        out.push(PolicyScale {
            policies: count,
            fixed_rate: Phase::from(&fixed),
            cpu_ms_per_1000: cpu.expect("a proxy was measured"),
        });
    }
    drop(upstream);
    out
}

fn tool_scaling(rt: &tokio::runtime::Runtime, plan: &Plan, work: &Path) -> Vec<ToolScale> {
    let mut out = Vec::new();
    for &tools in &plan.tool_counts {
        let (upstream, upstream_addr) = procs::upstream(tools, Mode::Json);
        let dir = work.join(format!("tools-{tools}"));
        let (addr, admin) = addrs();
        let target = setup::cedar_jwt(&dir, 0, addr, upstream_addr, admin);
        let proxy = start_warden(&dir, &target);
        eprintln!("catalogue scaling: {tools} tools");
        let phase = |addr| {
            let spec = Arc::new(spec(addr, &target.token, list(), &[200], "\"tools\""));
            let body = rt.block_on(driver::once(&spec)).expect("pre-flight");
            let outcome = rt.block_on(driver::fixed_rate(
                spec,
                plan.list_rate,
                plan.rate_connections,
                plan.rate_duration,
            ));
            (Phase::from(&outcome), body.len())
        };
        let (direct, direct_bytes) = phase(upstream_addr);
        let (proxied, proxied_bytes) = phase(addr);
        drop(proxy);
        drop(upstream);
        out.push(ToolScale {
            tools,
            direct,
            proxied,
            direct_bytes,
            proxied_bytes,
        });
    }
    out
}

/// A request on `connection`; returns the answer with its body read.
async fn exchange(
    connection: &mut Connection,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(http::response::Parts, Bytes), String> {
    let response = connection.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts, body))
}

fn post(
    addr: SocketAddr,
    token: &str,
    session: Option<&str>,
    body: &'static str,
) -> hyper::Request<Full<Bytes>> {
    let mut request = hyper::Request::post("/mcp")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", PROTOCOL_VERSION);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

/// Opens a session through the proxy: `initialize`, then `notifications/initialized`,
/// on `connection` (one connection for all, so that the memory measured is the sessions',
/// not that of connections opened and closed).
async fn open_session(
    connection: &mut Connection,
    addr: SocketAddr,
    token: &str,
) -> Result<String, String> {
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"load","version":"0"}}}"#;
    let (parts, _) = exchange(connection, post(addr, token, None, initialize)).await?;
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("initialize: HTTP {} without a session id", parts.status))?
        .to_owned();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (parts, _) = exchange(connection, post(addr, token, Some(&session), initialized)).await?;
    if parts.status != 202 {
        return Err(format!("notifications/initialized: HTTP {}", parts.status));
    }
    Ok(session)
}

/// Opens the session's GET event stream and keeps it (connection and answer) open.
async fn open_stream(
    addr: SocketAddr,
    token: &str,
    session: &str,
) -> Result<(Connection, hyper::Response<hyper::body::Incoming>), String> {
    let mut connection = Connection::open(addr).await?;
    let request = hyper::Request::get("/mcp")
        .header("host", addr.to_string())
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .header("mcp-session-id", session)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = connection.request(request).await?;
    if response.status() != 200 {
        return Err(format!("GET stream: HTTP {}", response.status()));
    }
    Ok((connection, response))
}

#[allow(
    clippy::disallowed_methods,
    reason = "a measurement: memory is read after the process has settled"
)]
fn session_scaling(rt: &tokio::runtime::Runtime, plan: &Plan, work: &Path) -> Vec<SessionScale> {
    let settle = || std::thread::sleep(Duration::from_millis(1_500));
    let mut out = Vec::new();
    for &count in &plan.session_counts {
        let (upstream, upstream_addr) = procs::upstream(0, Mode::Sse);
        let dir = work.join(format!("sessions-{count}"));
        let (addr, admin) = addrs();
        let target = setup::cedar_jwt(&dir, 0, addr, upstream_addr, admin);
        let proxy = start_warden(&dir, &target);
        eprintln!("session memory: {count} sessions");
        let mut connection = rt.block_on(Connection::open(addr)).expect("connect");
        // One session first, so that lazily built state is in the baseline.
        rt.block_on(open_session(&mut connection, addr, &target.token))
            .expect("first session");
        settle();
        let baseline = proxy.rss_kib();
        let sessions: Vec<String> = rt.block_on(async {
            let mut sessions = Vec::with_capacity(count);
            for _ in 0..count {
                let session = open_session(&mut connection, addr, &target.token).await;
                sessions.push(session.expect("open a session"));
            }
            sessions
        });
        settle();
        let with_sessions = proxy.rss_kib();
        let streams = rt.block_on(async {
            let mut streams = Vec::with_capacity(count);
            for session in &sessions {
                streams.push(
                    open_stream(addr, &target.token, session)
                        .await
                        .expect("GET stream"),
                );
            }
            streams
        });
        settle();
        let with_streams = proxy.rss_kib();
        drop(streams);
        drop(proxy);
        drop(upstream);
        let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / count as f64;
        out.push(SessionScale {
            sessions: count,
            baseline_rss_kib: baseline,
            with_sessions_rss_kib: with_sessions,
            with_streams_rss_kib: with_streams,
            per_session_kib: per(with_sessions, baseline),
            per_stream_kib: per(with_streams, with_sessions),
        });
    }
    out
}
