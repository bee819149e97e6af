//! The load benchmark's output: `load.json` (everything measured, for machines) and
//! `load.md` (the tables the README shows), both written to the plan's output directory,
//! and the Markdown printed to standard output.
//!
//! "Added latency" is the proxied quantile minus the direct quantile of the same workload
//! in the same run (a difference of quantiles, not a quantile of differences).

use std::fmt::Write as _;

use serde::Serialize;

use super::scenarios::{Phase, Results, Row};
use super::Plan;

/// The machine the run was on.
#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            // The machine's CPUs, not this process's: the driver pins itself to one.
            cores: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count()
                .max(1),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Document<'a> {
    date: String,
    machine: Machine,
    rate_rps: u64,
    rate_seconds: f64,
    saturation_seconds: f64,
    saturation_connections: usize,
    rate_connections: usize,
    /// Driver and upstream on CPU 0, proxy on CPU 1.
    pinned: bool,
    results: &'a Results,
}

/// Writes `load.json` and `load.md` under `plan.out` and prints the Markdown.
pub fn write(plan: &Plan, results: &Results) {
    let document = Document {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        machine: Machine::read(),
        rate_rps: plan.rate,
        rate_seconds: plan.rate_duration.as_secs_f64(),
        saturation_seconds: plan.saturate_duration.as_secs_f64(),
        saturation_connections: plan.saturate_connections,
        rate_connections: plan.rate_connections,
        pinned: plan.pin,
        results,
    };
    let markdown = markdown(&document);
    std::fs::create_dir_all(&plan.out).expect("create the output directory");
    let json = serde_json::to_string_pretty(&document).expect("serialise results");
    std::fs::write(plan.out.join("load.json"), json + "\n").expect("write load.json");
    std::fs::write(plan.out.join("load.md"), &markdown).expect("write load.md");
    println!("{markdown}");
    eprintln!("results: {}", plan.out.display());
}

fn direct<'a>(results: &'a Results, workload: &str) -> Option<&'a Row> {
    results
        .rows
        .iter()
        .find(|r| r.target == "direct" && r.workload == workload)
}

fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1_000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn signed_us(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", us(-v))
    } else {
        format!("+{}", us(v))
    }
}

/// Errors and server-closed connections of a phase, when there are any.
fn errors(phase: &Phase) -> String {
    let mut s = String::new();
    if phase.errors > 0 {
        let _ = write!(
            s,
            " ⚠ {} errors ({})",
            phase.errors,
            phase.first_error.as_deref().unwrap_or("")
        );
    }
    if phase.reconnects > 0 {
        let _ = write!(s, " ({} reconnects)", phase.reconnects);
    }
    s
}

fn markdown(doc: &Document<'_>) -> String {
    let r = doc.results;
    let m = &doc.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured {} on {} ({} cores, {} GiB, Linux {}). {} Fixed rate: {} req/s for {} s on \
         {} connections; saturation: {} connections for {} s.\n",
        doc.date,
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        if doc.pinned {
            "Pinned with `taskset`: the load driver and the upstream on CPU 0, the proxy \
             (mcp-warden, nginx or the bare Pingora) on CPU 1."
        } else {
            "Everything (load driver, proxy, upstream) shares the machine."
        },
        doc.rate_rps,
        doc.rate_seconds,
        doc.rate_connections,
        doc.saturation_connections,
        doc.saturation_seconds
    );
    let _ = writeln!(
        s,
        "| Target | Workload | Saturation req/s | × direct | p50 | p99 | p99.9 | added p50 | added p99 | proxy CPU / 1k req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &r.rows {
        let base = direct(r, &row.workload);
        let ratio = base.map_or(String::new(), |d| {
            format!(
                "{:.2}",
                row.saturation.throughput_rps / d.saturation.throughput_rps
            )
        });
        let (added50, added99) = match base {
            Some(d) if row.target != "direct" => (
                signed_us(row.fixed_rate.p50_us - d.fixed_rate.p50_us),
                signed_us(row.fixed_rate.p99_us - d.fixed_rate.p99_us),
            ),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0}{} | {} | {} | {} | {}{} | {} | {} | {} |",
            row.target,
            row.workload,
            row.saturation.throughput_rps,
            errors(&row.saturation),
            ratio,
            us(row.fixed_rate.p50_us),
            us(row.fixed_rate.p99_us),
            us(row.fixed_rate.p999_us),
            errors(&row.fixed_rate),
            added50,
            added99,
            row.cpu_ms_per_1000
                .map_or(String::new(), |c| format!("{c:.0} ms")),
        );
    }
    if let Some(why) = &r.nginx_missing {
        let _ = writeln!(s, "\nNo nginx floor in this run: {why}.");
    }

    let _ = writeln!(
        s,
        "\n**Proxy memory**\n\n| Proxy | idle RSS | peak RSS |\n|---|---:|---:|"
    );
    for mem in &r.memory {
        let _ = writeln!(
            s,
            "| {} | {:.1} MiB | {:.1} MiB |",
            mem.target,
            mem.idle_rss_kib as f64 / 1024.0,
            mem.peak_rss_kib as f64 / 1024.0
        );
    }

    let direct_call = direct(r, "tools/call allowed");
    let _ = writeln!(
        s,
        "\n**Policy count** (mcp-warden, Cedar, allowed `tools/call`, {} req/s)\n\n\
         | Policies | p50 | p99 | added p50 | added p99 | proxy CPU / 1k req |\n|---:|---:|---:|---:|---:|---:|",
        doc.rate_rps
    );
    for p in &r.policy_scale {
        let (a50, a99) = direct_call.map_or((String::new(), String::new()), |d| {
            (
                signed_us(p.fixed_rate.p50_us - d.fixed_rate.p50_us),
                signed_us(p.fixed_rate.p99_us - d.fixed_rate.p99_us),
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {}{} | {} | {} | {:.0} ms |",
            p.policies,
            us(p.fixed_rate.p50_us),
            us(p.fixed_rate.p99_us),
            errors(&p.fixed_rate),
            a50,
            a99,
            p.cpu_ms_per_1000
        );
    }

    let _ = writeln!(
        s,
        "\n**Catalogue size** (`tools/list`, half the tools hidden by policy)\n\n\
         | Tools | answer bytes direct → proxied | direct p50 / p99 | mcp-warden p50 / p99 | added p50 | added p99 |\n|---:|---:|---:|---:|---:|---:|"
    );
    for t in &r.tool_scale {
        let _ = writeln!(
            s,
            "| {} | {} → {} | {} / {} | {} / {}{}{} | {} | {} |",
            t.tools,
            t.direct_bytes,
            t.proxied_bytes,
            us(t.direct.p50_us),
            us(t.direct.p99_us),
            us(t.proxied.p50_us),
            us(t.proxied.p99_us),
            errors(&t.direct),
            errors(&t.proxied),
            signed_us(t.proxied.p50_us - t.direct.p50_us),
            signed_us(t.proxied.p99_us - t.direct.p99_us),
        );
    }

    let _ = writeln!(
        s,
        "\n**Sessions** (mcp-warden RSS; stateful SSE upstream)\n\n\
         | Sessions | baseline | with sessions | per session | with a GET stream each | per stream |\n|---:|---:|---:|---:|---:|---:|"
    );
    for x in &r.session_scale {
        let _ = writeln!(
            s,
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.1} KiB |",
            x.sessions,
            x.baseline_rss_kib as f64 / 1024.0,
            x.with_sessions_rss_kib as f64 / 1024.0,
            x.per_session_kib,
            x.with_streams_rss_kib as f64 / 1024.0,
            x.per_stream_kib
        );
    }
    s
}
