//! The bundled demo, end to end: each persona's rows through the real proxy (Cedar with
//! JWTs, Cedar with Biscuit tokens, the Biscuit engine), attenuation, taint, the shipped
//! configurations and policy tests, `mcp-warden demo` itself, and the database's failures.
//! Real PostgreSQL (`DATABASE_URL`), one database per test; the rmcp client.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;

use mcp_warden::demo::walkthrough::{Persona, PERSONAS};
use mcp_warden::demo::{Database, DbError};

use crate::support::biscuit::{attenuate, Keys, ENGINE_TOML, GENEROUS_TIME_LIMIT_ENV};
use crate::support::client::{list_tool_names, ClientBuilder, McpClient, Revision};
use crate::support::demo::{
    call_json, demo_biscuit_auth_toml, demo_biscuit_policies, demo_policies, demo_proxy_toml,
    names, persona_biscuit, persona_token, run_sql, sorted_strings, token_with, Backend, Clinic,
    SqlOutcome, DEMO_TOML,
};
use crate::support::postgres::{admin_config, server_addr, url_with_port, Forwarder, TestDb};
use crate::support::tokens::AUTH_TOML;
use crate::support::wait;
use crate::support::warden::{copy_dir, free_port, run_cli, Warden};

const FORBIDDEN: i32 = -32003;
const ERIN: &str = "Erin oRTEga";
const DAVID: &str = "DAvID AndErSON";

const ONCOLOGY_NURSE: Persona = Persona {
    var: "ONCOLOGY_NURSE",
    subject: "olga",
    roles: &["nurse"],
    claims: &[("department", "oncology")],
    about: "olga, nurse in oncology",
};

/// What each persona may use and see.
fn expectations() -> [(Persona, Vec<&'static str>, Vec<&'static str>); 4] {
    [
        (
            PERSONAS[0],
            vec!["get_medical_records", "hipaa_compliance_check", "run_sql"],
            vec![ERIN],
        ),
        (
            PERSONAS[1],
            vec![
                "get_medical_records",
                "hipaa_compliance_check",
                "list_patients",
                "run_sql",
            ],
            vec!["Alice Martin", ERIN, "bob nguyen"],
        ),
        (
            PERSONAS[2],
            vec!["hipaa_compliance_check", "list_patients", "run_sql"],
            vec!["Carla Rossi", ERIN, "Grace Kim", "bob nguyen"],
        ),
        (
            ONCOLOGY_NURSE,
            vec![
                "get_medical_records",
                "hipaa_compliance_check",
                "list_patients",
                "run_sql",
            ],
            vec!["Carla Rossi", DAVID, "Hiro Tanaka"],
        ),
    ]
}

async fn sorted_tools(client: &McpClient) -> Vec<String> {
    let mut tools = list_tool_names(client).await;
    tools.sort();
    tools
}

/// Each persona lists its tools, sees its rows (run_sql, list_patients) and is refused
/// or limited as the walkthrough says. `token` makes the persona's credential.
async fn check_personas(clinic: &Clinic, token: impl Fn(&Persona) -> String, how: &str) {
    for (persona, tools, patients) in expectations() {
        let who = format!("{how}: {}", persona.about);
        let client = clinic.client(&token(&persona)).await;
        assert_eq!(sorted_tools(&client).await, tools, "{who}");
        let seen = run_sql(&client, "SELECT name FROM patients").await;
        assert_eq!(sorted_strings(seen.column("name")), patients, "{who}");
        let records = run_sql(
            &client,
            "SELECT p.name FROM medical_records r JOIN patients p ON p.id = r.patient_id",
        )
        .await;
        let record_patients = sorted_strings(records.column("name"));
        assert!(!record_patients.is_empty(), "{who}");
        assert!(
            record_patients
                .iter()
                .all(|p| patients.contains(&p.as_str())),
            "{who}: {record_patients:?}"
        );
        let listed = call_json(&client, "list_patients", json!({})).await;
        if tools.contains(&"list_patients") {
            assert_eq!(names(&listed.unwrap(), "name"), patients, "{who}");
        } else {
            assert_eq!(listed.unwrap_err().0, FORBIDDEN, "{who}");
        }
    }

    // The patient: their own records, not another's, and the proxy compares exactly.
    let patient = clinic.client(&token(&PERSONAS[0])).await;
    let own = call_json(
        &patient,
        "get_medical_records",
        json!({ "patient_name": ERIN }),
    )
    .await
    .unwrap();
    assert_eq!(names(&own, "patient"), [ERIN, ERIN], "{how}");
    for other in [DAVID, "erin ortega"] {
        let refused = call_json(
            &patient,
            "get_medical_records",
            json!({ "patient_name": other }),
        )
        .await;
        assert_eq!(refused.unwrap_err().0, FORBIDDEN, "{how}: {other}");
    }
    let all = run_sql(&patient, "SELECT * FROM medical_records").await;
    assert_eq!(all.row_count(), 2, "{how}");

    // The nurse may ask for anyone; the database answers for her department only.
    let nurse = clinic.client(&token(&PERSONAS[1])).await;
    let elsewhere = call_json(
        &nurse,
        "get_medical_records",
        json!({ "patient_name": DAVID }),
    )
    .await
    .unwrap();
    assert_eq!(elsewhere, json!([]), "{how}");
    let bob = call_json(
        &nurse,
        "get_medical_records",
        json!({ "patient_name": "BOB NGUYEN" }),
    )
    .await
    .unwrap();
    assert_eq!(
        names(&bob, "patient"),
        ["bob nguyen", "bob nguyen"],
        "{how}"
    );

    // The analyst does not read records by name.
    let analyst = clinic.client(&token(&PERSONAS[2])).await;
    let refused = call_json(
        &analyst,
        "get_medical_records",
        json!({ "patient_name": ERIN }),
    )
    .await;
    assert_eq!(refused.unwrap_err().0, FORBIDDEN, "{how}");
}

fn jwt(persona: &Persona) -> String {
    persona_token(persona)
}

#[tokio::test(flavor = "multi_thread")]
async fn personas_see_their_rows_with_cedar_and_jwts() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    check_personas(&clinic, jwt, "cedar, jwt").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personas_see_their_rows_with_cedar_and_biscuits() {
    let keys = Keys::new();
    let extra = format!("{AUTH_TOML}{}{DEMO_TOML}", demo_biscuit_auth_toml(&keys));
    let Some(clinic) = Clinic::start_with(&demo_policies(), &extra).await else {
        return;
    };
    check_personas(&clinic, |p| persona_biscuit(&keys, p), "cedar, biscuit").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personas_see_their_rows_with_the_biscuit_engine() {
    let keys = Keys::new();
    let extra = format!("{ENGINE_TOML}{}{DEMO_TOML}", demo_biscuit_auth_toml(&keys));
    let Some(clinic) = Clinic::start_with(&demo_biscuit_policies(), &extra).await else {
        return;
    };
    check_personas(&clinic, |p| persona_biscuit(&keys, p), "biscuit engine").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_casing_never_widens_through_the_proxy() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    let david = clinic
        .client(&token_with(
            "david",
            &["patient"],
            &[("patient_name", DAVID)],
        ))
        .await;
    let own = call_json(
        &david,
        "get_medical_records",
        json!({ "patient_name": DAVID }),
    )
    .await
    .unwrap();
    assert_eq!(names(&own, "patient"), [DAVID, DAVID]);
    for spelling in ["david anderson", "DAVID ANDERSON", ERIN] {
        let refused = call_json(
            &david,
            "get_medical_records",
            json!({ "patient_name": spelling }),
        )
        .await;
        assert_eq!(refused.unwrap_err().0, FORBIDDEN, "{spelling}");
    }
    let seen = run_sql(&david, "SELECT name FROM patients").await;
    assert_eq!(sorted_strings(seen.column("name")), [DAVID]);
    // A token that spells the name differently from the records: the proxy wants that
    // spelling, the database matches it case-insensitively: still only David.
    let shouty = clinic
        .client(&token_with(
            "david2",
            &["patient"],
            &[("patient_name", "DAVID ANDERSON")],
        ))
        .await;
    let own = call_json(
        &shouty,
        "get_medical_records",
        json!({ "patient_name": "DAVID ANDERSON" }),
    )
    .await
    .unwrap();
    assert_eq!(names(&own, "patient"), [DAVID, DAVID]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attenuated_biscuit_reads_one_patient() {
    let keys = Keys::new();
    for (policies, engine) in [
        (demo_policies(), "".to_owned()),
        (demo_biscuit_policies(), ENGINE_TOML.to_owned()),
    ] {
        let extra = format!(
            "{engine}{AUTH_TOML}{}{DEMO_TOML}",
            demo_biscuit_auth_toml(&keys)
        );
        let Some(clinic) = Clinic::start_with(&policies, &extra).await else {
            return;
        };
        let how = policies.display().to_string();
        let nurse = persona_biscuit(&keys, &PERSONAS[1]);
        let one = attenuate(
            &nurse,
            &[
                "--check",
                r#"tool("get_medical_records")"#,
                "--check",
                r#"arg("patient_name", "bob nguyen")"#,
                "--ttl",
                "5m",
            ],
        );
        let client = clinic.client(&one).await;
        assert_eq!(
            sorted_tools(&client).await,
            ["get_medical_records"],
            "{how}"
        );
        let bob = call_json(
            &client,
            "get_medical_records",
            json!({ "patient_name": "bob nguyen" }),
        )
        .await
        .unwrap();
        assert_eq!(
            names(&bob, "patient"),
            ["bob nguyen", "bob nguyen"],
            "{how}"
        );
        let alice = call_json(
            &client,
            "get_medical_records",
            json!({ "patient_name": "Alice Martin" }),
        )
        .await;
        assert_eq!(alice.unwrap_err().0, FORBIDDEN, "{how}");
        match run_sql(&client, "SELECT name FROM patients").await {
            SqlOutcome::Refused(code, _) => assert_eq!(code, FORBIDDEN, "{how}"),
            other => panic!("{how}: {other:?}"),
        }
        // The token it was narrowed from still has its other tools (not the compliance
        // check: the narrowed token's reads tainted the token it came from, by design).
        let full = clinic.client(&nurse).await;
        assert_eq!(
            sorted_tools(&full).await,
            ["get_medical_records", "list_patients", "run_sql"],
            "{how}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_records_taints_and_the_compliance_check_is_refused() {
    let keys = Keys::new();
    for (policies, extra, token) in [
        (demo_policies(), demo_proxy_toml(), jwt(&PERSONAS[0])),
        (
            demo_biscuit_policies(),
            format!("{ENGINE_TOML}{}{DEMO_TOML}", demo_biscuit_auth_toml(&keys)),
            persona_biscuit(&keys, &PERSONAS[0]),
        ),
    ] {
        let Some(clinic) = Clinic::start_with(&policies, &extra).await else {
            return;
        };
        let how = policies.display().to_string();
        let patient = clinic.client(&token).await;
        let check = json!({ "text": "Erin oRTEga: atrial fibrillation" });
        call_json(&patient, "hipaa_compliance_check", check.clone())
            .await
            .unwrap_or_else(|e| panic!("{how}: clean session: {e:?}"));
        call_json(
            &patient,
            "get_medical_records",
            json!({ "patient_name": ERIN }),
        )
        .await
        .unwrap();
        let (code, _) = call_json(&patient, "hipaa_compliance_check", check.clone())
            .await
            .unwrap_err();
        assert_eq!(code, FORBIDDEN, "{how}");
        assert_eq!(
            sorted_tools(&patient).await,
            ["get_medical_records", "run_sql"],
            "{how}"
        );
        // A new session with the same token is tainted too.
        let again = clinic.client(&token).await;
        let (code, _) = call_json(&again, "hipaa_compliance_check", check)
            .await
            .unwrap_err();
        assert_eq!(code, FORBIDDEN, "{how}");
        let logs = clinic.warden.logs();
        assert!(
            logs.contains("no-open-world-after-records"),
            "{how}: the denial is logged with its policy:\n{logs}"
        );
    }
}

#[test]
fn the_tests_use_the_demo_configuration() {
    let shipped: toml::Table = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap(),
    )
    .unwrap();
    let tests: toml::Table = toml::from_str(DEMO_TOML).unwrap();
    assert_eq!(shipped["identity_headers"], tests["identity_headers"]);
    assert_eq!(
        shipped["taint"]["sources"], tests["taint"]["sources"],
        "config/demo.toml and tests/support/demo.rs DEMO_TOML differ"
    );
    let biscuit: toml::Table = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/demo-biscuit.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(biscuit["identity_headers"], tests["identity_headers"]);
    assert_eq!(biscuit["taint"]["sources"], tests["taint"]["sources"]);
    assert_eq!(
        biscuit["auth"]["biscuit"]["claim_facts"],
        shipped["auth"]["biscuit"]["claim_facts"]
    );
}

/// The repository's `config/demo*.toml` and `policies/demo/` copied to a temporary
/// directory with the same layout (so the demo's keys are made there).
fn demo_tree() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("config")).unwrap();
    for file in ["demo.toml", "demo-biscuit.toml"] {
        std::fs::copy(
            root.join("config").join(file),
            tree.path().join("config").join(file),
        )
        .unwrap();
    }
    for engine in ["cedar", "biscuit"] {
        copy_dir(
            &root.join("policies/demo").join(engine),
            &tree.path().join("policies/demo").join(engine),
        );
    }
    tree
}

#[test]
fn the_demo_configurations_load_and_their_policy_tests_pass() {
    let tree = demo_tree();
    for file in ["demo.toml", "demo-biscuit.toml"] {
        let path = tree.path().join("config").join(file);
        let config = mcp_warden::config::load_with_env(&path, []).unwrap();
        mcp_warden::demo::walkthrough::ensure_keys(&config).unwrap();
        let (ok, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()]);
        assert!(ok, "{file}: {stdout}{stderr}");
    }
    for engine in ["cedar", "biscuit"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("policies/demo")
            .join(engine)
            .join("tests.toml");
        let (ok, stdout, stderr) = run_cli(&["policy", "test", file.to_str().unwrap()]);
        assert!(ok, "{engine}: {stdout}{stderr}");
        let summary = stdout.lines().last().unwrap_or_default();
        let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 20 && summary.ends_with(" 0 failed"), "{summary}");
    }
}

/// `mcp-warden demo` as a user runs it; killed on drop.
struct DemoProcess {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: std::path::PathBuf,
    proxy_url: String,
}

impl DemoProcess {
    fn start(tree: &Path, config: &str, database_url: &str) -> DemoProcess {
        let listen = format!("127.0.0.1:{}", free_port());
        let upstream = format!("http://127.0.0.1:{}/mcp", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let stderr = tree.join(format!("{config}.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .current_dir(tree)
            .args(["demo", "--config", &format!("config/{config}")])
            .args(["--database-url", database_url])
            .env("MCP_WARDEN__LISTEN", &listen)
            .env("MCP_WARDEN__UPSTREAM", &upstream)
            .env("MCP_WARDEN__ADMIN__LISTEN", &admin)
            // See `GENEROUS_TIME_LIMIT_ENV`: Biscuit's time limit is wall-clock time.
            .env(GENEROUS_TIME_LIMIT_ENV.0, GENEROUS_TIME_LIMIT_ENV.1)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn mcp-warden demo");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut demo = DemoProcess {
            child,
            stdout: lines,
            stderr,
            proxy_url: format!("http://{listen}/mcp"),
        };
        demo.wait_ready(&listen);
        demo
    }

    fn wait_ready(&mut self, listen: &str) {
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        wait::until("the demo to get ready", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mcp-warden demo exited ({status}):\n{}", self.logs());
            }
            let banner_done = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("Ctrl-C stops the demo"));
            (banner_done && std::net::TcpStream::connect(addr).is_ok()).then_some(())
        });
    }

    fn logs(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// `export VAR=value` lines of the banner.
    fn exported(&self, var: &str) -> String {
        let prefix = format!("export {var}=");
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no `{prefix}` in the banner:\n{}", self.logs()))
    }

    async fn client(&self, token: &str) -> McpClient {
        let client = ClientBuilder::new(&self.proxy_url, Revision::legacy())
            .bearer(token)
            .connect()
            .await;
        list_tool_names(&client).await;
        client
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- mcp-warden demo ----\n{}", self.logs());
        }
    }
}

/// `scripts/mcp-call.sh TOKEN METHOD [PARAMS]` against `url`, as the README runs it.
fn mcp_call(url: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp-call.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("MCP_URL", url)
        .output()
        .expect("run scripts/mcp-call.sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_command_runs_the_walkthrough() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let tree = demo_tree();

    // Cedar, with JWTs and Biscuits; the keys are made on the first start.
    let demo = DemoProcess::start(tree.path(), "demo.toml", &db.url);
    for key in [
        "jwt-hs256.key",
        "biscuit-root.public",
        "biscuit-root.private",
    ] {
        assert!(
            tree.path().join("config/demo-keys").join(key).is_file(),
            "{key}"
        );
    }
    let patient = demo.client(&demo.exported("PATIENT")).await;
    assert_eq!(
        sorted_tools(&patient).await,
        ["get_medical_records", "hipaa_compliance_check", "run_sql"]
    );
    let own = call_json(
        &patient,
        "get_medical_records",
        json!({ "patient_name": ERIN }),
    )
    .await
    .unwrap();
    assert_eq!(names(&own, "patient"), [ERIN, ERIN]);
    let other = call_json(
        &patient,
        "get_medical_records",
        json!({ "patient_name": DAVID }),
    )
    .await;
    assert_eq!(other.unwrap_err().0, FORBIDDEN);
    let all = run_sql(&patient, "SELECT * FROM medical_records").await;
    assert_eq!(all.row_count(), 2);
    let (code, _) = call_json(&patient, "hipaa_compliance_check", json!({ "text": "x" }))
        .await
        .unwrap_err();
    assert_eq!(code, FORBIDDEN, "tainted after reading records");

    // The README's client script, with a token from the banner.
    let listed = mcp_call(&demo.proxy_url, &[&demo.exported("NURSE"), "tools/list"]);
    assert!(
        listed.contains("get_medical_records hipaa_compliance_check list_patients run_sql"),
        "{listed}"
    );
    let nurse = demo.client(&demo.exported("NURSE")).await;
    let listed = call_json(&nurse, "list_patients", json!({})).await.unwrap();
    assert_eq!(names(&listed, "name"), ["Alice Martin", ERIN, "bob nguyen"]);

    for var in [
        "PATIENT_BISCUIT",
        "NURSE_BISCUIT",
        "ANALYST_BISCUIT",
        "ANALYST",
    ] {
        let client = demo.client(&demo.exported(var)).await;
        assert!(!sorted_tools(&client).await.is_empty(), "{var}");
    }
    // Audit lines follow the banner on standard output.
    wait::until("an audit line on standard output", || {
        demo.stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"decision""#) && l.contains("get_medical_records"))
            .then_some(())
    });
    drop(demo);

    // The Biscuit engine, same database (migrations already applied), same keys.
    let demo = DemoProcess::start(tree.path(), "demo-biscuit.toml", &db.url);
    let patient = demo.client(&demo.exported("PATIENT")).await;
    assert_eq!(
        sorted_tools(&patient).await,
        ["get_medical_records", "hipaa_compliance_check", "run_sql"]
    );
    let seen = run_sql(&patient, "SELECT name FROM patients").await;
    assert_eq!(sorted_strings(seen.column("name")), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_going_down_is_a_clear_error() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let forwarder = Forwarder::start(server_addr(&admin_config())).await;
    let url = url_with_port(&admin_config(), forwarder.port, &db.name);
    let backend = Backend::start(&url).await;
    let warden = Warden::start(&backend.url, &demo_policies(), &demo_proxy_toml());
    let headers = [("x-mcp-roles", "nurse"), ("x-mcp-department", "cardiology")];
    let direct = backend.client(&headers).await;
    let proxied = ClientBuilder::new(&warden.url, Revision::legacy())
        .bearer(jwt(&PERSONAS[1]))
        .connect()
        .await;
    list_tool_names(&proxied).await;
    for client in [&direct, &proxied] {
        call_json(client, "list_patients", json!({})).await.unwrap();
    }

    forwarder.cut().await;
    let expected = format!(
        "database unavailable: cannot reach PostgreSQL at `postgres://{}@127.0.0.1:{}/{}`",
        admin_config().get_user().unwrap_or("postgres"),
        forwarder_port(&url),
        db.name
    );
    for (how, client) in [("directly", &direct), ("through the proxy", &proxied)] {
        let (code, message) = call_json(client, "list_patients", json!({}))
            .await
            .unwrap_err();
        assert_eq!(code, -32603, "{how}: {message}");
        assert!(message.starts_with(&expected), "{how}: {message}");
        match run_sql(client, "SELECT 1").await {
            SqlOutcome::Refused(-32603, message) => {
                assert!(message.contains("database unavailable"), "{how}: {message}")
            }
            other => panic!("{how}: {other:?}"),
        }
        // Still serving: listing needs no database.
        let tools = list_tool_names(client).await;
        assert!(
            tools.contains(&"list_patients".to_owned()),
            "{how}: {tools:?}"
        );
    }
    // And a tool that needs no database still answers.
    call_json(&direct, "hipaa_compliance_check", json!({ "text": "ok" }))
        .await
        .unwrap();
    assert!(!warden.logs().contains("panicked"));
}

fn forwarder_port(url: &str) -> u16 {
    url.parse::<tokio_postgres::Config>().unwrap().get_ports()[0]
}

#[test]
fn start_up_names_the_database_url_it_tried() {
    let closed = free_port();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{closed}/clinic");
    let (ok, _, stderr) = run_cli(&[
        "demo-backend",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ]);
    assert!(!ok);
    let expected =
        format!("cannot reach PostgreSQL at `postgres://postgres@127.0.0.1:{closed}/clinic`");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("help: start PostgreSQL, or set DATABASE_URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is never shown: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `mcp-warden demo` says the same before starting anything.
    let tree = demo_tree();
    let (ok, _, stderr) = run_cli(&[
        "demo",
        "--config",
        tree.path().join("config/demo.toml").to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert!(!ok);
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_an_unsafe_database_is_refused() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    Database::setup(&db.url).await.unwrap();
    Database::setup(&db.url).await.unwrap();
    let admin = db.admin_client().await;
    let counts = admin
        .query_one(
            "SELECT (SELECT count(*) FROM clinic.patients), \
                    (SELECT count(*) FROM mcp_warden_demo_migrations)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (8, 3));

    for (break_it, repair, problem) in [
        (
            "ALTER TABLE clinic.patients NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE clinic.patients FORCE ROW LEVEL SECURITY",
            "`clinic.patients` does not force row-level security",
        ),
        (
            "ALTER TABLE clinic.medical_records DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE clinic.medical_records ENABLE ROW LEVEL SECURITY",
            "`clinic.medical_records` does not have row-level security enabled",
        ),
        (
            "GRANT INSERT ON clinic.medical_records TO mcp_demo_reader",
            "REVOKE INSERT ON clinic.medical_records FROM mcp_demo_reader",
            "`clinic.medical_records` grants the reader more than SELECT",
        ),
        (
            "CREATE VIEW clinic.everyone AS SELECT name FROM clinic.patients",
            "DROP VIEW clinic.everyone",
            "`clinic.everyone` is not a plain table",
        ),
    ] {
        admin.batch_execute(break_it).await.unwrap();
        match Database::setup(&db.url).await {
            Err(DbError::Unsafe { reason, .. }) => assert_eq!(reason, problem, "{break_it}"),
            other => panic!("{break_it}: {other:?}"),
        }
        admin.batch_execute(repair).await.unwrap();
    }
    Database::setup(&db.url).await.unwrap();
}
