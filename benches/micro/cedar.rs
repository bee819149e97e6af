//! Cedar decisions: `CedarEngine::decide` for one `tools/call` (allowed and denied), the
//! listing rule for one tool (`may_list`: a listing of one) and for a list of 1,000 tools
//! through one `PolicyEngine::listing` (`list_1000`: a caller's repeated list, which the
//! blind answers kept with the caller serve; `list_1000_first`: a new caller's first list),
//! over generated policy sets of 10, 100 and 1,000 policies.
//!
//! Why: every request pays one decision, and every item of a list result pays one
//! listing question, so these are the per-message cost of the Cedar engine. The cost
//! should grow with the policies that *can* apply to the request (those without a
//! `resource == …` scope, plus those naming the called tool), not with the whole set.
//!
//! The policy set is the shipped example (`policies/example/policies.cedar`, validated
//! against its schema with a few more argument fields), one network `forbid` on
//! `context.source_ip`, and generated policies in the proportions an operator with many
//! tools might write: per-tool permits by role, by scope and argument, by agent and claim,
//! per-tool forbids on annotations and arguments, pattern permits (`resource.name like`)
//! and taint forbids that apply to every tool, and some for other actions. Of every 20
//! generated policies, 13 name one tool, 2 (a pattern permit and a taint forbid) have no
//! resource scope and 5 are for other actions. The candidates of a call are the policies
//! without a resource scope plus those naming its tool (6, 15 and 105 for the benchmarked
//! call at 10, 100 and 1,000 policies); of those, the engine evaluates only the ones whose
//! principal scope the caller matches and whose leading taint guard the session meets:
//! 5 at every size (the pattern permits are for other roles, the taint forbids for
//! labels the session does not carry, `admin-any-tool` for administrators).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::{BenchmarkId, Criterion};
use mcp_warden::auth::{AuthMethod, Identity};
use mcp_warden::mcp::{ListKind, McpAction};
use mcp_warden::policy::load::{compile, SourceFile};
use mcp_warden::policy::{
    AuthzRequest, CedarEngine, ListQuery, ListedItem, PolicyEngine, RequestEnv,
};
use serde_json::{json, Map, Value};

/// Policy-set sizes benchmarked.
pub const SIZES: [usize; 3] = [10, 100, 1_000];

const EXAMPLE_SCHEMA: &str = include_str!("../../policies/example/mcp.cedarschema");
const EXAMPLE_POLICIES: &str = include_str!("../../policies/example/policies.cedar");
const EXAMPLE_ENTITIES: &str = include_str!("../../policies/example/entities.json");

/// A policy every deployment with network rules has; not in the example.
const NETWORK_FORBID: &str = r#"
@id("no-calls-from-quarantine-net")
forbid (principal, action == Action::"call_tool", resource)
when { context has source_ip && context.source_ip.isInRange(ip("203.0.113.0/24")) };
"#;

/// The example schema with the argument fields the generated policies read.
fn schema() -> String {
    let args = "type Arguments = {\n  city?: String,\n};";
    assert!(EXAMPLE_SCHEMA.contains(args), "the example schema changed");
    EXAMPLE_SCHEMA.replace(
        args,
        "type Arguments = {\n  city?: String,\n  path?: String,\n  limit?: Long,\n  query?: String,\n};",
    )
}

/// Generated policy number `i` (see the module docs for the mix).
fn generated(i: usize) -> String {
    let role = i % 7;
    match i % 20 {
        0 | 10 | 16 => format!(
            "@id(\"g{i}-role\") permit (principal in Role::\"role{role}\", action == Action::\"call_tool\", resource == Tool::\"tool_{i}\");"
        ),
        1 | 11 => format!(
            "@id(\"g{i}-scope-limit\") permit (principal, action == Action::\"call_tool\", resource == Tool::\"tool_{i}\")\n\
             when {{ principal.scopes.contains(\"tools:{i}\") && context.arguments has limit && context.arguments.limit <= 100 }};"
        ),
        2 | 12 => format!(
            "@id(\"g{i}-destructive\") forbid (principal, action == Action::\"call_tool\", resource == Tool::\"tool_{i}\")\n\
             when {{ resource.annotations.destructiveHint }} unless {{ principal in Role::\"admin\" }};"
        ),
        3 | 13 => format!(
            "@id(\"g{i}-no-etc\") forbid (principal, action == Action::\"call_tool\", resource == Tool::\"tool_{i}\")\n\
             when {{ context.arguments has path && context.arguments.path like \"/etc/*\" }};"
        ),
        4 | 14 => format!(
            "@id(\"g{i}-staff-query\") permit (principal in Role::\"staff\", action == Action::\"call_tool\", resource == Tool::\"tool_{i}\")\n\
             when {{ context.arguments has query && context.time >= 1700000000 }};"
        ),
        5 | 15 => format!(
            "@id(\"g{i}-agent\") permit (principal, action == Action::\"call_tool\", resource == Tool::\"tool_{i}\")\n\
             when {{ context has agent && context.agent == \"agent-{i}\" && principal.claims has department && principal.claims.department == \"dept{i}\" }};"
        ),
        18 => format!(
            "@id(\"g{i}-team-pattern\") permit (principal in Role::\"team{i}\", action == Action::\"call_tool\", resource)\n\
             when {{ resource.name like \"svc{i}_*\" && resource.annotations.readOnlyHint }};"
        ),
        19 => format!(
            "@id(\"g{i}-taint\") forbid (principal, action == Action::\"call_tool\", resource)\n\
             when {{ context.session.taints.contains(\"label{i}\") && resource.annotations.openWorldHint }};"
        ),
        6 | 8 => format!(
            "@id(\"g{i}-docs\") permit (principal, action == Action::\"read_resource\", resource)\n\
             when {{ resource.uri like \"docs{i}://*\" }};"
        ),
        _ => format!(
            "@id(\"g{i}-prompt\") permit (principal in Role::\"role{role}\", action == Action::\"get_prompt\", resource == Prompt::\"prompt_{i}\");"
        ),
    }
}

/// The text of a policy set of exactly `n` policies (`n` ≥ the example's 8).
pub fn policy_text(n: usize) -> String {
    let mut text = format!("{EXAMPLE_POLICIES}\n{NETWORK_FORBID}\n");
    let base = text.matches("@id(").count();
    assert!(n >= base, "at least {base} policies");
    for i in 0..n - base {
        text.push_str(&generated(i));
        text.push('\n');
    }
    assert_eq!(text.matches("@id(").count(), n);
    text
}

/// A Cedar engine over `n` policies (compiled and validated as the proxy does).
pub fn engine(n: usize) -> CedarEngine {
    let bundle = compile(
        &[SourceFile {
            path: PathBuf::from("policies.cedar"),
            text: policy_text(n),
        }],
        &SourceFile {
            path: PathBuf::from("mcp.cedarschema"),
            text: schema(),
        },
        Some(&SourceFile {
            path: PathBuf::from("entities.json"),
            text: EXAMPLE_ENTITIES.to_owned(),
        }),
    )
    .unwrap_or_else(|e| panic!("generated policies do not load: {e}"));
    CedarEngine::new(bundle, 1).expect("engine builds")
}

/// A staff member with the tools scope, through an agent, as a JWT would describe her.
pub fn staff() -> Identity {
    let claims = json!({
        "iss": "https://idp.example",
        "aud": "mcp-warden",
        "email": "alice@example.com",
        "department": "dept5",
        "jti": "5f1c2a",
    });
    Identity {
        subject: "alice".to_owned(),
        agent: Some("agent-5".to_owned()),
        roles: vec!["staff".to_owned(), "role3".to_owned()],
        scopes: vec!["mcp:tools".to_owned(), "tools:1".to_owned()],
        claims: object(claims),
        method: AuthMethod::Jwt,
        biscuit: None,
    }
}

/// A request environment with everything set (address, session, protocol).
pub fn env() -> RequestEnv {
    RequestEnv {
        time: SystemTime::now(),
        source_ip: Some("10.1.2.3".parse().expect("an address")),
        session_id: Some("3c0f9a52-8d1e-4c7b-9f55-1d2a6e0b7c44".to_owned()),
        taints: Vec::new(),
        protocol_version: Some("2025-06-18".to_owned()),
        mtls: None,
    }
}

/// `n` tools as a server lists them: even ones read-only, odd ones destructive (the
/// `list/` benchmark's catalogue, names and annotations only).
fn catalogue(n: usize) -> Vec<(String, Map<String, Value>)> {
    (0..n)
        .map(|i| {
            let read_only = i % 2 == 0;
            let annotations = object(json!({
                "title": format!("Service tool {i}"),
                "readOnlyHint": read_only,
                "destructiveHint": !read_only,
                "idempotentHint": read_only,
                "openWorldHint": false
            }));
            (format!("svc_tool_{i}"), annotations)
        })
        .collect()
}

/// `v` as a JSON object map.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Registers the `cedar/*` benchmarks.
pub fn benches(c: &mut Criterion) {
    let identity = staff();
    let env = env();
    // Allowed: `staff-read-only-tools` and `weather-served-cities` permit; no forbid.
    let weather = McpAction::CallTool {
        name: "get_weather".to_owned(),
        arguments: json!({"city": "Paris", "units": "metric", "days": 3}),
    };
    let weather_hints = object(json!({
        "title": "Weather forecast",
        "readOnlyHint": true,
        "openWorldHint": true,
    }));
    // Denied: `destructive-admin-only` forbids.
    let delete = McpAction::CallTool {
        name: "delete_records".to_owned(),
        arguments: json!({"table": "appointments", "where": {"before": "2024-01-01"}, "limit": 50}),
    };
    let delete_hints = object(json!({
        "title": "Delete records",
        "readOnlyHint": false,
        "destructiveHint": true,
        "openWorldHint": false,
    }));
    // Listing: not read-only, not destructive: only the argument-dependent weather
    // permit can apply, so partial evaluation leaves a residual (listed).
    let listing_hints = object(json!({
        "readOnlyHint": false,
        "destructiveHint": false,
        "openWorldHint": true,
    }));

    let mut group = c.benchmark_group("cedar");
    for n in SIZES {
        let engine = engine(n);
        let allow = AuthzRequest {
            identity: &identity,
            action: &weather,
            annotations: Some(&weather_hints),
            definition: Default::default(),
            env: &env,
        };
        let deny = AuthzRequest {
            identity: &identity,
            action: &delete,
            annotations: Some(&delete_hints),
            definition: Default::default(),
            env: &env,
        };
        let item = ListedItem {
            kind: ListKind::Tools,
            name: "get_weather",
            annotations: Some((&listing_hints).into()),
            definition: Default::default(),
        };
        let d = engine.decide(&allow);
        assert!(d.allow, "expected an allow at {n}: {d:?}");
        let d = engine.decide(&deny);
        assert!(
            !d.allow && d.policy_ids == ["destructive-admin-only"],
            "{d:?}"
        );
        assert!(engine.may_list(&identity, &item, &env));

        group.bench_with_input(BenchmarkId::new("decide_allow", n), &allow, |b, r| {
            b.iter(|| engine.decide(black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("decide_deny", n), &deny, |b, r| {
            b.iter(|| engine.decide(black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("may_list", n), &item, |b, item| {
            b.iter(|| engine.may_list(black_box(&identity), black_box(item), black_box(&env)))
        });
        let catalogue = catalogue(1_000);
        let list_for = |caller: &Identity, catalogue: &[(String, Map<String, Value>)]| {
            let listing = engine.listing(&ListQuery {
                identity: caller,
                env: &env,
            });
            catalogue
                .iter()
                .filter(|(name, annotations)| {
                    listing.may_list(&ListedItem {
                        kind: ListKind::Tools,
                        name,
                        annotations: Some(annotations.into()),
                        definition: Default::default(),
                    })
                })
                .count()
        };
        let list = |catalogue: &[(String, Map<String, Value>)]| list_for(&identity, catalogue);
        assert_eq!(
            list(&catalogue),
            500,
            "read-only tools listed, destructive hidden"
        );
        group.bench_with_input(BenchmarkId::new("list_1000", n), &catalogue, |b, c| {
            b.iter(|| list(black_box(c)))
        });
        // A caller's first list: no blind answer kept from an earlier one (a new subject
        // each time, so a new caller entry).
        let mut callers = 0u64;
        group.bench_with_input(
            BenchmarkId::new("list_1000_first", n),
            &catalogue,
            |b, catalogue| {
                b.iter(|| {
                    callers += 1;
                    let caller = Identity {
                        subject: format!("first-{callers}"),
                        ..identity.clone()
                    };
                    list_for(&caller, black_box(catalogue))
                })
            },
        );
    }
    group.finish();
}
