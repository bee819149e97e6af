//! The load benchmark: what mcp-warden adds to a request, measured side by side in one run.
//!
//! `cargo bench --bench load` (or `benches/load/run.sh`, which installs nginx first)
//! starts a real MCP server (rmcp, JSON answers) and drives it from this process over
//! loopback, directly and through each proxy in turn: mcp-warden with Cedar and JWTs,
//! mcp-warden with the Biscuit engine and Biscuit tokens, and nginx as a plain reverse
//! proxy (the floor), for an allowed `tools/call`, a denied one and a `tools/list` of
//! 100 tools. Then it scales the policy count, the catalogue size and the number of SSE
//! sessions. Results go to `benches/results/load.json` and `load.md`. See
//! `benches/load/README.md` for the method and how to read the table.

mod bare;
mod driver;
mod procs;
mod report;
mod scenarios;
mod setup;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

/// How long and how hard to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Offered rate of the fixed-rate phases (requests per second).
    pub rate: u64,
    /// Length of a fixed-rate phase.
    pub rate_duration: Duration,
    /// Length of a saturation phase (after `warmup`).
    pub saturate_duration: Duration,
    /// Unmeasured time before a saturation phase.
    pub warmup: Duration,
    /// Connections of the saturation phases.
    pub saturate_connections: usize,
    /// Connections of the fixed-rate phases.
    pub rate_connections: usize,
    /// Policy counts of the policy scaling runs.
    pub policy_counts: Vec<usize>,
    /// Catalogue sizes of the `tools/list` scaling runs.
    pub tool_counts: Vec<usize>,
    /// Offered rate of the `tools/list` scaling runs (large answers).
    pub list_rate: u64,
    /// Session counts of the session-memory runs.
    pub session_counts: Vec<usize>,
    /// Where the results go.
    pub out: PathBuf,
    /// Driver and upstream on CPU 0, proxies on CPU 1 (`procs::pin_cores`); `--no-pin`
    /// shares every CPU between them.
    pub pin: bool,
    /// `--only NAME` (repeated): only the targets whose names contain one of these (and direct),
    /// and no scaling runs: a quick comparison, written outside `benches/results`.
    pub only: Option<Vec<String>>,
}

impl Plan {
    /// Whether the target called `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| name.contains(&o.to_lowercase())))
    }
}

impl Plan {
    fn full() -> Self {
        Plan {
            rate: 1_000,
            rate_duration: Duration::from_secs(10),
            saturate_duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            saturate_connections: 64,
            rate_connections: 32,
            policy_counts: vec![10, 100, 1_000],
            tool_counts: vec![10, 100, 1_000],
            list_rate: 200,
            session_counts: vec![10, 100, 1_000],
            out: setup::repo().join("benches/results"),
            pin: true,
            only: None,
        }
    }

    /// A smoke run: every phase, a few seconds in all.
    fn quick() -> Self {
        Plan {
            rate: 200,
            rate_duration: Duration::from_secs(1),
            saturate_duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            saturate_connections: 8,
            rate_connections: 8,
            policy_counts: vec![10, 100],
            tool_counts: vec![10, 100],
            list_rate: 50,
            session_counts: vec![10],
            out: std::env::temp_dir().join("mcp-warden-load-quick"),
            pin: true,
            only: None,
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench load [-- [--quick] [--rate N] [--out DIR] [--no-pin] [--only NAME]…]\n\
         \x20      (internal) load upstream --tools N --mode json|sse\n\
         \x20      (internal) load bare-pingora --listen ADDR --upstream ADDR"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("upstream") {
        args.next();
        let (mut tools, mut mode) = (0, upstream::Mode::Json);
        while let Some(arg) = args.next() {
            match (arg.as_str(), args.next()) {
                ("--tools", Some(n)) => tools = n.parse().unwrap_or_else(|_| usage()),
                ("--mode", Some(m)) if m == "json" => mode = upstream::Mode::Json,
                ("--mode", Some(m)) if m == "sse" => mode = upstream::Mode::Sse,
                _ => usage(),
            }
        }
        upstream::serve(0, tools, mode);
    }
    if args.peek().map(String::as_str) == Some("bare-pingora") {
        args.next();
        let (mut listen, mut upstream) = (None, None);
        while let Some(arg) = args.next() {
            match (arg.as_str(), args.next().and_then(|a| a.parse().ok())) {
                ("--listen", Some(addr)) => listen = Some(addr),
                ("--upstream", Some(addr)) => upstream = Some(addr),
                _ => usage(),
            }
        }
        match (listen, upstream) {
            (Some(listen), Some(upstream)) => bare::serve(listen, upstream),
            _ => usage(),
        }
    }
    let (mut bench, mut quick, mut rate, mut out, mut pin) = (false, false, None, None, true);
    let mut only = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) does not,
            // and gets the smoke run.
            "--bench" => bench = true,
            "--quick" => quick = true,
            "--no-pin" => pin = false,
            "--rate" => {
                rate = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--out" => out = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--only" => {
                let name = args.next().unwrap_or_else(|| usage());
                only.get_or_insert_with(Vec::new).push(name);
            }
            _ => usage(),
        }
    }
    let mut plan = if bench && !quick {
        Plan::full()
    } else {
        Plan::quick()
    };
    if let Some(rate) = rate {
        plan.rate = rate;
    }
    if only.is_some() {
        plan.out = std::env::temp_dir().join("mcp-warden-load-only");
        plan.only = only;
    }
    if let Some(out) = out {
        plan.out = out;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    plan.pin = pin && cpus >= 2;
    if plan.pin {
        if let Err(e) = procs::pin_cores() {
            eprintln!("cannot pin to CPUs ({e}): every process shares the machine");
            plan.pin = false;
        }
    }
    let results = scenarios::run(&plan);
    report::write(&plan, &results);
}
