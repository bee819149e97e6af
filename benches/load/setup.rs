//! What each target runs with: mcp-warden configurations (Cedar with JWTs, the Biscuit
//! engine with Biscuit tokens), the policy sets (the repository's example policies, padded
//! to a given count with realistic generated ones), the callers' tokens (minted by the
//! `mcp-warden` binary itself), and the nginx floor's configuration.
//!
//! The proxy runs as it would in production: audit on (to a file), logs at `warn`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The test CA the integration tests use (rcgen), for the TLS target's certificates.
#[path = "../../tests/support/certs.rs"]
mod certs;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the mcp-warden binary with `args` and returns its standard output, trimmed.
fn warden_cli(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .args(args)
        .output()
        .expect("run mcp-warden");
    assert!(
        output.status.success(),
        "mcp-warden {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The part of a configuration every target shares.
fn common(listen: SocketAddr, upstream: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"listen = "{listen}"
upstream = "http://{upstream}/mcp"

[admin]
listen = "{admin}"

[audit]
sink = "file"
path = "audit.log"

[log]
level = "warn"
"#
    )
}

/// A Cedar policy directory with the example schema, entities and policies, padded to
/// `count` policies.
///
/// The padding is what a large deployment writes: per-tool grants for teams (`resource ==
/// Tool::…`, each with an argument condition) and, one in five, policies over every tool
/// (annotation, claim and taint conditions), which the engine must evaluate on every call.
pub fn cedar_policies(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).expect("policy dir");
    let example = repo().join("policies/example");
    for file in ["mcp.cedarschema", "entities.json", "policies.cedar"] {
        std::fs::copy(example.join(file), dir.join(file)).expect("copy example policies");
    }
    let base = std::fs::read_to_string(example.join("policies.cedar")).expect("read policies");
    let have = base.matches("@id(").count();
    let mut extra = String::new();
    for i in 0..count.saturating_sub(have) {
        if i % 5 == 4 {
            extra.push_str(&format!(
                "@id(\"dept-{i}-no-destructive\")\n\
                 forbid (principal, action == Action::\"call_tool\", resource)\n\
                 when {{ principal.claims has department && principal.claims.department == \"dept-{i}\" \
                 && resource.annotations.destructiveHint && !context.session.taints.isEmpty() }};\n\n"
            ));
        } else {
            extra.push_str(&format!(
                "@id(\"team-{i}-tool\")\n\
                 permit (principal in Role::\"team-{i}\", action == Action::\"call_tool\", resource == Tool::\"tool_{i:04}\")\n\
                 when {{ context.arguments has city && context.arguments.city like \"*-{i}\" }};\n\n"
            ));
        }
    }
    std::fs::write(dir.join("generated.cedar"), extra).expect("write generated policies");
    let mut entities: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(example.join("entities.json")).expect("entities"),
    )
    .expect("entities.json");
    for i in 0..count.saturating_sub(have) {
        entities.push(serde_json::json!({
            "uid": { "type": "Role", "id": format!("team-{i}") }, "attrs": {}, "parents": []
        }));
    }
    std::fs::write(
        dir.join("entities.json"),
        serde_json::to_string_pretty(&entities).expect("json"),
    )
    .expect("write entities");
}

/// A target's configuration file, its addresses and the bearer token its caller presents.
pub struct Target {
    pub config: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub token: String,
}

/// mcp-warden with the Cedar engine and HS256 JWTs. The caller is staff with the
/// `mcp:tools` scope: `echo` is allowed, `delete_records` is forbidden
/// (`destructive-admin-only`), half of the catalogue is listed.
pub fn cedar_jwt(
    dir: &Path,
    policies: usize,
    listen: SocketAddr,
    upstream: SocketAddr,
    admin: SocketAddr,
) -> Target {
    cedar_policies(&dir.join("policies"), policies);
    let config = dir.join("cedar.toml");
    std::fs::write(
        &config,
        format!(
            r#"{}
[auth.jwt]
issuer = "https://idp.bench"
audience = ["mcp-warden"]
algorithms = ["HS256"]

[[auth.jwt.keys]]
alg = "HS256"
secret = "bench-only-secret-0123456789abcdef0123456789"

[policy]
dir = "policies"
"#,
            common(listen, upstream, admin)
        ),
    )
    .expect("write config");
    let token = warden_cli(&[
        "dev-jwt",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--sub",
        "bench",
        "--role",
        "staff",
        "--scope",
        "mcp:tools",
        "--claim",
        "department=cardiology",
        "--ttl",
        "4h",
    ]);
    Target {
        config,
        listen,
        admin,
        token,
    }
}

/// [`cedar_jwt`] with RS256 tokens, as real identity providers sign them: the key is the
/// repository's throw-away RSA-2048 test key (`src/auth/testdata`), the caller and its
/// claims the same as [`cedar_jwt`]'s. A session presents one token, so after its first
/// request the proxy's cache of verified tokens answers; the difference to [`cedar_jwt`]
/// is what an RS256 session costs beyond HS256.
pub fn cedar_jwt_rs256(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    admin: SocketAddr,
) -> Target {
    let target = cedar_jwt(dir, 0, listen, upstream, admin);
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth/testdata");
    let config = std::fs::read_to_string(&target.config).expect("read config");
    let config = config
        .replace(r#"algorithms = ["HS256"]"#, r#"algorithms = ["RS256"]"#)
        .replace(
            "alg = \"HS256\"\nsecret = \"bench-only-secret-0123456789abcdef0123456789\"",
            &format!(
                "kid = \"rs\"\nalg = \"RS256\"\npublic_key_file = \"{}\"",
                testdata.join("rsa_public.pem").display()
            ),
        );
    assert!(
        config.contains("RS256") && !config.contains("HS256"),
        "{config}"
    );
    std::fs::write(&target.config, config).expect("write config");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.bench",
        "aud": "mcp-warden",
        "sub": "bench",
        "roles": ["staff"],
        "scope": "mcp:tools",
        "department": "cardiology",
        "iat": now,
        "exp": now + 4 * 3600,
        "jti": format!("bench-{}", std::process::id()),
    });
    let key = std::fs::read(testdata.join("rsa_private.pem")).expect("test key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rs".to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).expect("rsa key"),
    )
    .expect("sign");
    Target { token, ..target }
}

/// [`cedar_jwt`] behind TLS on the listener: a server certificate for `127.0.0.1` from a
/// fresh test CA (rcgen, ECDSA P-256), TLS 1.3 with HTTP/1.1 (the driver's protocol), no
/// client certificate. The driver keeps its connections alive, so the handshake is paid
/// once per connection (`cargo bench --bench micro -- tls/` measures it); the difference
/// to [`cedar_jwt`] is what TLS costs per request. Returns the client configuration that
/// trusts the CA.
pub fn cedar_jwt_tls(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    admin: SocketAddr,
) -> (Target, Arc<rustls::ClientConfig>) {
    let target = cedar_jwt(dir, 0, listen, upstream, admin);
    let ca = certs::TestCa::new();
    let (cert, key) = ca.server("localhost").write(dir, "server");
    let mut config = std::fs::read_to_string(&target.config).expect("read config");
    config.push_str(&format!(
        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nalpn = [\"http/1.1\"]\n",
        cert.display(),
        key.display()
    ));
    std::fs::write(&target.config, config).expect("write config");
    let client = ca.client_config();
    let mut client = Arc::unwrap_or_clone(client);
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    (target, Arc::new(client))
}

/// [`cedar_jwt`] with its shared state in Redis (`redis_url`, a key prefix of its own): each
/// request reads the token's revocation key and the caller's taint keys (one round trip;
/// a taint source is configured so the read is not skipped), and each allowed `tools/call`
/// spends one bucket of a rule too wide to refuse anything. The difference to
/// [`cedar_jwt`] is the added latency of shared state per decision.
pub fn cedar_jwt_redis(
    dir: &Path,
    redis_url: &str,
    listen: SocketAddr,
    upstream: SocketAddr,
    admin: SocketAddr,
) -> Target {
    let target = cedar_jwt(dir, 0, listen, upstream, admin);
    let mut config = std::fs::read_to_string(&target.config).expect("read config");
    config.push_str(&format!(
        r#"
[taint]
sources = [{{ tool = "get_record", label = "phi" }}]

[state]
backend = "redis"
url = "{redis_url}"
key_prefix = "mcp-warden-load:{}:"

[[rate_limits]]
name = "load"
method = "tools/call"
rate = 1000000000
per = "1000000s"
"#,
        std::process::id()
    ));
    std::fs::write(&target.config, config).expect("write config");
    target
}

/// A Redis URL for [`cedar_jwt_redis`] if one answers (`REDIS_URL`, default local).
pub fn find_redis() -> Option<String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let hostport = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()?
        .split('/')
        .next()?
        .to_owned();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .ok()?
        .next()?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
        .ok()
        .map(|_| url)
}

/// mcp-warden with the Biscuit engine (the example authorizer) and a Biscuit token for
/// staff: the same allow/deny/list outcomes as [`cedar_jwt`].
pub fn biscuit(dir: &Path, listen: SocketAddr, upstream: SocketAddr, admin: SocketAddr) -> Target {
    let keys = dir.join("root");
    warden_cli(&["keygen", "--out", keys.to_str().expect("utf-8 path")]);
    let policies = dir.join("biscuit-policies");
    std::fs::create_dir_all(&policies).expect("policy dir");
    std::fs::copy(
        repo().join("policies/biscuit-example/authorizer.datalog"),
        policies.join("authorizer.datalog"),
    )
    .expect("copy authorizer");
    let config = dir.join("biscuit.toml");
    std::fs::write(
        &config,
        format!(
            r#"{}
[auth.biscuit]

[[auth.biscuit.keys]]
id = 1
public_key_file = "root.public"

[policy]
engine = "biscuit"
dir = "biscuit-policies"
"#,
            common(listen, upstream, admin)
        ),
    )
    .expect("write config");
    let token = warden_cli(&[
        "token",
        "mint",
        "--private-key",
        dir.join("root.private").to_str().expect("utf-8 path"),
        "--root-key-id",
        "1",
        "--fact",
        "user(\"bench\")",
        "--fact",
        "role(\"staff\")",
        "--ttl",
        "4h",
    ]);
    Target {
        config,
        listen,
        admin,
        token,
    }
}

/// nginx as a plain reverse proxy: one worker per core, keep-alive to the upstream, no
/// buffering of answers (as an MCP-aware proxy must stream event streams).
pub fn nginx_conf(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> PathBuf {
    let conf = dir.join("nginx.conf");
    std::fs::create_dir_all(dir.join("logs")).expect("nginx logs dir");
    std::fs::write(
        &conf,
        format!(
            r#"worker_processes auto;
daemon off;
master_process on;
error_log logs/error.log warn;
pid logs/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    upstream mcp {{ server {upstream}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
"#
        ),
    )
    .expect("write nginx.conf");
    conf
}

/// nginx from `PATH` or the usual Debian location.
pub fn find_nginx() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}
