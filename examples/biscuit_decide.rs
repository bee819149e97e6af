//! `BiscuitEngine::decide` in a loop, for instruction counts under valgrind (the
//! criterion benchmark cannot run there: Biscuit's time limits expire at 50× slowdown).
//!
//! `cargo build --profile bench --example biscuit_decide`, then
//! `valgrind --tool=callgrind target/release/examples/biscuit_decide <loaded|per_request> <1|3> <n>`;
//! the instructions of one decision are the difference between two `n`, divided.
//! Same policy, tokens and request as `benches/micro/biscuit.rs` (`authorize/*`),
//! with the cache hit of the authenticator included (`cached_verify_authorize/*`).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use biscuit_auth::{AuthorizerLimits, KeyPair};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use mcp_warden::auth::{AuthConfig, Authenticator};
use mcp_warden::biscuit::keys::public_key_text;
use mcp_warden::biscuit::tools::{attenuate, mint, BlockSpec};
use mcp_warden::mcp::McpAction;
use mcp_warden::policy::biscuit::load_datalog_dir;
use mcp_warden::policy::{AuthzRequest, BiscuitEngine, PolicyEngine, RequestEnv};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, blocks, n) = match &args[1..] {
        [m, b, n] => (m.clone(), b.clone(), n.parse::<usize>().expect("a count")),
        _ => panic!("usage: biscuit_decide <loaded|per_request> <1|3> <n>"),
    };
    // Generous: valgrind is slow, and a timeout would change what is measured.
    let limits = AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_secs(10),
    };
    let keys = KeyPair::new();
    let now = SystemTime::now();
    let authority = BlockSpec {
        facts: [
            r#"user("alice")"#,
            r#"agent("scheduler-bot")"#,
            r#"role("staff")"#,
            r#"scope("mcp:tools")"#,
            r#"right("tool", "echo")"#,
            r#"right("weather")"#,
        ]
        .map(str::to_owned)
        .to_vec(),
        ttl: Some(Duration::from_secs(3_600)),
        ..BlockSpec::default()
    };
    let mut token = mint(&keys.private(), Some(1), &authority, now).expect("mint");
    if blocks == "3" {
        let narrowed = BlockSpec {
            checks: vec![r#"check if tool($t), ["get_weather", "echo"].contains($t)"#.to_owned()],
            ..BlockSpec::default()
        };
        let short = BlockSpec {
            ttl: Some(Duration::from_secs(600)),
            ..BlockSpec::default()
        };
        token = attenuate(&token, &narrowed, now)
            .and_then(|t| attenuate(&t, &short, now))
            .expect("attenuate");
    }
    let text = format!(
        "[biscuit]\ncache_size = 100\n[[biscuit.keys]]\nid = 1\npublic_key = \"{}\"\n",
        public_key_text(&keys.public())
    );
    let cfg: AuthConfig = toml::from_str(&text).expect("auth config");
    let mut auth = Authenticator::from_config(&cfg, Path::new(".")).expect("authenticator");
    auth.set_datalog_limits(limits.clone());
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii");
    headers.insert(AUTHORIZATION, bearer);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/biscuit-example");
    let program = load_datalog_dir(&dir, &HashMap::new()).expect("example authorizer");
    let mut engine = BiscuitEngine::new(program, 1, limits);
    if mode == "per_request" {
        engine = engine.uncached();
    }
    let env = RequestEnv {
        time: SystemTime::now(),
        source_ip: Some("10.1.2.3".parse().expect("an address")),
        session_id: Some("3c0f9a52-8d1e-4c7b-9f55-1d2a6e0b7c44".to_owned()),
        taints: Vec::new(),
        protocol_version: Some("2025-06-18".to_owned()),
        mtls: None,
    };
    let call = McpAction::CallTool {
        name: "get_weather".to_owned(),
        arguments: json!({"city": "Paris", "units": "metric", "days": 3}),
    };
    let hints = match json!({"title": "Weather forecast", "readOnlyHint": true, "openWorldHint": true})
    {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let decide = || {
        let identity = auth.authenticate(black_box(&headers)).expect("verifies");
        engine.decide(&AuthzRequest {
            identity: &identity,
            action: black_box(&call),
            annotations: Some(&hints),
            definition: Default::default(),
            env: &env,
        })
    };
    // The first decision warms both caches (token verification, loaded state).
    assert!(decide().allow, "the request is allowed");
    for _ in 0..n {
        black_box(decide());
    }
}
