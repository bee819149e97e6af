//! What shared state adds to a decision: `SharedState::check_caller` (the revocation check
//! and the taint read of one request, one round trip) and `SharedState::spend` (one
//! rate-limit rule), with the memory backend and with Redis (`REDIS_URL`, default the
//! local `redis://127.0.0.1:6379`; the Redis cases are left out, with a note, when no
//! Redis answers).
//!
//! Why: with `[state] backend = "redis"` every request pays the round trip before the
//! policy decides, and an allowed body that a rate-limit rule matches pays one more. On
//! loopback this is the floor of that cost; a Redis across a network adds its RTT.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use mcp_warden::auth::{AuthMethod, Identity};
use mcp_warden::mcp::{Classified, McpAction};
use mcp_warden::state::{
    monotonic, Backend, MemoryState, RateLimitConfig, SharedState, StateConfig,
};
use serde_json::json;

fn caller() -> Identity {
    let mut identity = Identity::anonymous();
    identity.method = AuthMethod::Jwt;
    identity.subject = "bench".into();
    identity.claims.insert("jti".into(), json!("bench-token-1"));
    identity
}

fn rule() -> Vec<RateLimitConfig> {
    #[derive(serde::Deserialize)]
    struct R {
        rate_limits: Vec<RateLimitConfig>,
    }
    let r: R = toml::from_str(
        "[[rate_limits]]\nname = \"bench\"\nmethod = \"tools/call\"\nrate = 1000000000\nper = \"1000000s\"\n",
    )
    .expect("rule");
    r.rate_limits
}

fn call() -> Vec<Classified> {
    vec![Classified {
        id: Some(json!(1)),
        method: Some("tools/call".into()),
        action: McpAction::CallTool {
            name: "echo".into(),
            arguments: json!({"text": "hi"}),
        },
        protocol_version: None,
        mcp_name: None,
    }]
}

fn redis_state(rt: &tokio::runtime::Runtime) -> Option<SharedState> {
    let cfg = StateConfig {
        backend: Backend::Redis,
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        key_prefix: format!("mcp-warden-bench:{}:", std::process::id()),
        command_timeout: Duration::from_secs(1),
        ..StateConfig::default()
    };
    let state = SharedState::from_config(
        &cfg,
        &rule(),
        1000,
        Duration::from_secs(600),
        Path::new("."),
    )
    .ok()?;
    if !rt.block_on(state.reachable()) {
        eprintln!(
            "state/: no Redis at {}; only the memory backend is measured",
            cfg.url
        );
        return None;
    }
    // One tainted credential, so the read returns a label.
    rt.block_on(state.record_taint(None, "bench-credential", &["phi".to_owned()]))
        .ok()?;
    Some(state)
}

pub fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let memory = SharedState::memory(
        MemoryState::new(1000, Duration::from_secs(600), 1000, monotonic()),
        &rule(),
    );
    let mut backends = vec![("memory", memory)];
    if let Some(redis) = redis_state(&rt) {
        backends.push(("redis", redis));
    }
    let identity = caller();
    let messages = call();
    let mut group = c.benchmark_group("state");
    for (name, state) in &backends {
        let checked = rt.block_on(state.check_caller(&identity, Some((None, "bench-credential"))));
        assert!(checked.is_ok(), "{name}: {checked:?}");
        group.bench_function(BenchmarkId::new("check_caller", name), |b| {
            b.iter(|| {
                rt.block_on(state.check_caller(
                    black_box(&identity),
                    Some((Some("bench-session"), "bench-credential")),
                ))
            })
        });
        group.bench_function(BenchmarkId::new("spend", name), |b| {
            b.iter(|| rt.block_on(state.spend(black_box(&identity), black_box(&messages))))
        });
    }
    group.finish();
}
