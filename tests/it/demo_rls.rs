//! Row-level security in the demo backend holds against what an agent can write into
//! `run_sql`: each attack runs as patient "Erin oRTEga" twice — directly against the
//! backend (identity headers sent by the test: as if the proxy were bypassed) and through
//! the proxy with Erin's token — and, where a sequence matters, as several statements in
//! one caller-bound transaction at the database layer. Each must leave Erin seeing only
//! Erin. Real PostgreSQL (`DATABASE_URL`), one database per test.

use serde_json::{json, Value};

use mcp_warden::demo::walkthrough::PERSONAS;
use mcp_warden::demo::{Caller, QueryOutput, SqlError};

use crate::support::client::McpClient;
use crate::support::demo::{
    call_json, patient_headers, persona_token, run_sql, sorted_strings, Backend, Clinic, SqlOutcome,
};
use crate::support::postgres::TestDb;

const ERIN: &str = "Erin oRTEga";
const DAVID: &str = "DAvID AndErSON";

/// What an attack must come to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// It runs, and every value of this column is Erin's name.
    OwnRows(&'static str),
    /// It runs and returns no rows.
    NoRows,
    /// The database refuses it with this SQLSTATE (a tool error the agent sees).
    Refused(&'static str),
}

fn erin() -> Caller {
    Caller {
        user: Some("erin".into()),
        roles: vec!["patient".into()],
        patient: Some(ERIN.into()),
        department: None,
    }
}

/// Erin's two clients: directly to the backend, and through the proxy.
async fn erin_clients(clinic: &Clinic) -> [(&'static str, McpClient); 2] {
    let headers = patient_headers(ERIN);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    [
        ("directly", clinic.backend.client(&headers).await),
        (
            "through the proxy",
            clinic.client(&persona_token(&PERSONAS[0])).await,
        ),
    ]
}

/// Run each `(query, expectation)` through `run_sql` as Erin, both ways; after each, a
/// plain SELECT in the same MCP session still sees only Erin.
async fn attack(clinic: &Clinic, cases: &[(&str, Expect)]) {
    for (how, client) in erin_clients(clinic).await {
        for (query, expect) in cases {
            let outcome = run_sql(&client, query).await;
            check(&outcome, *expect, &format!("{how}: `{query}`"));
            let after = run_sql(&client, "SELECT name FROM patients").await;
            assert_eq!(
                sorted_strings(after.column("name")),
                [ERIN],
                "{how}: after `{query}`"
            );
        }
    }
}

fn check(outcome: &SqlOutcome, expect: Expect, what: &str) {
    match (expect, outcome) {
        (Expect::OwnRows(column), SqlOutcome::Rows(_)) => {
            let values = sorted_strings(outcome.column(column));
            assert!(!values.is_empty(), "{what}: no rows at all");
            assert!(values.iter().all(|v| v == ERIN), "{what}: saw {values:?}");
        }
        (Expect::NoRows, SqlOutcome::Rows(_)) => {
            assert_eq!(outcome.row_count(), 0, "{what}: {outcome:?}");
        }
        (Expect::Refused(code), SqlOutcome::Failed(text)) => {
            assert!(
                text.contains(&format!("SQLSTATE {code}")),
                "{what}: expected SQLSTATE {code}, got {text}"
            );
        }
        _ => panic!("{what}: expected {expect:?}, got {outcome:?}"),
    }
}

/// Run statements in one caller-bound transaction at the database layer.
async fn in_one_transaction(
    clinic: &Clinic,
    statements: &[&str],
) -> Vec<Result<QueryOutput, SqlError>> {
    clinic
        .backend
        .db
        .run_statements(&erin(), statements)
        .await
        .unwrap_or_else(|e| panic!("{statements:?}: {e}"))
}

/// The `name` column of the last statement's rows (which must have run).
fn last_names(outcomes: &[Result<QueryOutput, SqlError>]) -> Vec<String> {
    let last = outcomes.last().unwrap().as_ref().unwrap_or_else(|e| {
        panic!("the last statement failed: {e} (all: {outcomes:?})");
    });
    let index = last.columns.iter().position(|c| c == "name").unwrap();
    let mut names: Vec<String> = last
        .rows
        .iter()
        .map(|row| row[index].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn sqlstate(outcome: &Result<QueryOutput, SqlError>) -> Option<&str> {
    outcome.as_ref().err().and_then(|e| e.code.as_deref())
}

#[tokio::test(flavor = "multi_thread")]
async fn there_are_other_patients_to_leak() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    let admin = clinic.db.admin_client().await;
    let patients: i64 = admin
        .query_one("SELECT count(*) FROM clinic.patients", &[])
        .await
        .unwrap()
        .get(0);
    let records: i64 = admin
        .query_one("SELECT count(*) FROM clinic.medical_records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((patients, records), (8, 11));
    attack(
        &clinic,
        &[
            ("SELECT name FROM patients", Expect::OwnRows("name")),
            (
                "SELECT p.name FROM medical_records r JOIN patients p ON p.id = r.patient_id",
                Expect::OwnRows("name"),
            ),
            (
                "SELECT name FROM patients WHERE name = 'DAvID AndErSON'",
                Expect::NoRows,
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn set_config_cannot_change_the_caller() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "SELECT set_config('app.patient', 'DAvID AndErSON', true) AS s, name FROM patients",
                Expect::OwnRows("name"),
            ),
            (
                "SELECT name FROM patients \
                 WHERE set_config('clinic.patient', 'DAvID AndErSON', false) IS NOT NULL",
                Expect::OwnRows("name"),
            ),
        ],
    )
    .await;
    let outcomes = in_one_transaction(
        &clinic,
        &[
            "SELECT set_config('app.patient', 'DAvID AndErSON', false)",
            "SELECT set_config('clinic.patient', 'DAvID AndErSON', true)",
            "SELECT name FROM patients",
        ],
    )
    .await;
    assert_eq!(last_names(&outcomes), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_cannot_change_the_caller() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            ("SET app.patient = 'DAvID AndErSON'", Expect::NoRows),
            (
                "SET LOCAL clinic.patient = 'DAvID AndErSON'",
                Expect::NoRows,
            ),
            (
                "SET search_path = clinic_private, pg_temp, clinic",
                Expect::NoRows,
            ),
        ],
    )
    .await;
    let outcomes = in_one_transaction(
        &clinic,
        &[
            "SET app.patient = 'DAvID AndErSON'",
            "SET LOCAL app.roles = 'nurse'",
            "SET search_path = pg_temp, clinic_private, clinic",
            "SELECT name FROM clinic.patients",
        ],
    )
    .await;
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(last_names(&outcomes), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_role_is_refused() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            ("SET ROLE mcp_demo_owner", Expect::Refused("42501")),
            ("SET ROLE postgres", Expect::Refused("42501")),
            ("SET LOCAL ROLE mcp_demo_owner", Expect::Refused("42501")),
            (
                "SELECT set_config('role', 'mcp_demo_owner', true), name FROM patients",
                Expect::Refused("42501"),
            ),
            (
                "SET SESSION AUTHORIZATION postgres",
                Expect::Refused("42501"),
            ),
        ],
    )
    .await;
    let outcomes = in_one_transaction(
        &clinic,
        &["SET ROLE mcp_demo_owner", "SELECT name FROM patients"],
    )
    .await;
    assert_eq!(sqlstate(&outcomes[0]), Some("42501"));
    assert_eq!(last_names(&outcomes), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resetting_role_stays_the_reader() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            ("RESET ROLE", Expect::NoRows),
            ("RESET SESSION AUTHORIZATION", Expect::NoRows),
            ("RESET ALL", Expect::NoRows),
        ],
    )
    .await;
    let outcomes = in_one_transaction(
        &clinic,
        &[
            "RESET ROLE",
            "RESET SESSION AUTHORIZATION",
            "SELECT current_user::text AS name, session_user::text AS session",
            "SELECT name FROM patients",
        ],
    )
    .await;
    let who = outcomes[2].as_ref().unwrap();
    assert_eq!(
        who.rows,
        [[json!("mcp_demo_reader"), json!("mcp_demo_reader")]]
    );
    assert_eq!(last_names(&outcomes), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn multiple_statements_are_refused_by_the_server() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "SELECT name FROM patients; SELECT name FROM patients",
                Expect::Refused("42601"),
            ),
            (
                "SET ROLE mcp_demo_owner; SELECT name FROM patients",
                Expect::Refused("42601"),
            ),
            (
                "COMMIT; SELECT name FROM patients",
                Expect::Refused("42601"),
            ),
            (
                "SELECT 1 AS one;\nRESET ROLE;\nSELECT name FROM patients",
                Expect::Refused("42601"),
            ),
            // One statement with a trailing semicolon is still one statement.
            ("SELECT name FROM patients;", Expect::OwnRows("name")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_change_nothing() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "SELECT name FROM patients -- WHERE lower(name) = 'david anderson'",
                Expect::OwnRows("name"),
            ),
            (
                "/* SET ROLE mcp_demo_owner; */ SELECT name FROM patients /* ; SELECT 1 */",
                Expect::OwnRows("name"),
            ),
            (
                "SELECT name FROM patients; -- ; DROP POLICY patient_sees_self ON patients",
                Expect::OwnRows("name"),
            ),
            (
                "SELECT name FROM patients WHERE true /*! OR 1=1 */ --' OR '1'='1",
                Expect::OwnRows("name"),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cte_tricks_change_nothing() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "WITH s AS (SELECT set_config('app.patient', 'DAvID AndErSON', true) AS v) \
                 SELECT p.name FROM s, patients p",
                Expect::OwnRows("name"),
            ),
            (
                "WITH RECURSIVE everyone (name) AS (SELECT name FROM patients \
                 UNION SELECT p.name FROM patients p JOIN everyone e ON true) \
                 SELECT name FROM everyone",
                Expect::OwnRows("name"),
            ),
            (
                "WITH r AS (SELECT clinic_private.bind_caller('guess', 'david', \
                 ARRAY['nurse'], 'DAvID AndErSON', 'oncology') AS b) \
                 SELECT p.name FROM r, patients p",
                Expect::Refused("42501"),
            ),
            (
                "WITH gone AS (DELETE FROM medical_records RETURNING patient_id) \
                 SELECT * FROM gone",
                Expect::Refused("25006"),
            ),
            (
                "WITH moved AS (UPDATE patients SET name = name RETURNING name) \
                 SELECT name FROM moved",
                Expect::Refused("25006"),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_identity_cannot_be_read() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            // The identity is in no setting, so there is nothing to find there.
            (
                "SELECT name, setting FROM pg_settings \
                 WHERE setting ILIKE '%ortega%' OR setting ILIKE '%anderson%'",
                Expect::NoRows,
            ),
            (
                "SELECT name FROM patients \
                 WHERE lower(name) = lower(current_setting('app.patient', true))",
                Expect::NoRows,
            ),
            // The binding says who the caller is: only Erin.
            (
                "SELECT patient FROM clinic_private.caller()",
                Expect::OwnRows("patient"),
            ),
            (
                "SELECT * FROM pg_temp.clinic_caller",
                Expect::Refused("42501"),
            ),
            (
                "SELECT key FROM clinic_private.binding_key",
                Expect::Refused("42501"),
            ),
            (
                "SELECT name FROM patients WHERE name = 'DAvID AndErSON'",
                Expect::NoRows,
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binding_cannot_be_forged_or_changed() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "SELECT clinic_private.bind_caller('guess', 'david', ARRAY['nurse'], \
                 'DAvID AndErSON', 'oncology')",
                Expect::Refused("42501"),
            ),
            (
                "UPDATE pg_temp.clinic_caller SET patient = 'DAvID AndErSON'",
                Expect::Refused("42501"),
            ),
            (
                "INSERT INTO pg_temp.clinic_caller VALUES ('x', ARRAY['nurse'], NULL, 'oncology')",
                Expect::Refused("42501"),
            ),
            (
                "CREATE TEMP TABLE clinic_caller (user_name text, roles text[], \
                 patient text, department text)",
                Expect::Refused("25006"),
            ),
            ("DROP TABLE pg_temp.clinic_caller", Expect::Refused("25006")),
        ],
    )
    .await;
    // Even with the real key, a second binding cannot be made inside the read-only
    // transaction: the key is not the only lock.
    let admin = clinic.db.admin_client().await;
    let key: String = admin
        .query_one("SELECT key FROM clinic_private.binding_key", &[])
        .await
        .unwrap()
        .get(0);
    let forged = format!(
        "SELECT clinic_private.bind_caller('{key}', 'david', ARRAY['nurse'], '{DAVID}', 'oncology')"
    );
    let outcomes = in_one_transaction(&clinic, &[&forged, "SELECT name FROM patients"]).await;
    assert_eq!(sqlstate(&outcomes[0]), Some("25006"), "{outcomes:?}");
    assert_eq!(last_names(&outcomes), [ERIN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_cannot_reach_past_the_reader() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "SELECT pg_read_file('/etc/passwd')",
                Expect::Refused("42501"),
            ),
            ("SELECT lo_import('/etc/passwd')", Expect::Refused("42501")),
            (
                "DO $$ BEGIN PERFORM set_config('role', 'mcp_demo_owner', true); END $$",
                Expect::Refused("42501"),
            ),
            (
                "CREATE FUNCTION clinic.everyone() RETURNS SETOF text LANGUAGE sql \
                 SECURITY DEFINER AS 'SELECT name FROM clinic.patients'",
                Expect::Refused("25006"),
            ),
            (
                "SELECT name FROM patients WHERE 1 / (CASE WHEN name = 'DAvID AndErSON' \
                 THEN 0 ELSE 1 END) = 1",
                Expect::OwnRows("name"),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_is_refused() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "COPY patients TO '/tmp/patients.csv'",
                Expect::Refused("42501"),
            ),
            ("COPY patients FROM '/etc/passwd'", Expect::Refused("42501")),
            (
                "COPY (SELECT name FROM patients) TO PROGRAM 'cat'",
                Expect::Refused("42501"),
            ),
            ("COPY patients FROM STDIN", Expect::Refused("42501")),
        ],
    )
    .await;
    // COPY to the client is not something run_sql answers; it fails without rows.
    for (how, client) in erin_clients(&clinic).await {
        match run_sql(&client, "COPY patients TO STDOUT").await {
            SqlOutcome::Failed(_) => {}
            other => panic!("{how}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_refused() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            (
                "INSERT INTO patients (name, department, date_of_birth) \
                 VALUES ('Mallory', 'cardiology', '2000-01-01')",
                Expect::Refused("25006"),
            ),
            (
                "UPDATE patients SET department = 'oncology'",
                Expect::Refused("25006"),
            ),
            ("DELETE FROM medical_records", Expect::Refused("25006")),
            ("TRUNCATE medical_records", Expect::Refused("25006")),
            (
                "SELECT name FROM patients FOR UPDATE",
                Expect::Refused("25006"),
            ),
            (
                "ALTER TABLE patients DISABLE ROW LEVEL SECURITY",
                Expect::Refused("25006"),
            ),
            (
                "DROP POLICY patient_sees_self ON patients",
                Expect::Refused("25006"),
            ),
            (
                "GRANT SELECT ON patients TO PUBLIC",
                Expect::Refused("25006"),
            ),
            ("SET TRANSACTION READ WRITE", Expect::Refused("25001")),
            ("SET transaction_read_only = off", Expect::Refused("25001")),
        ],
    )
    .await;
    let admin = clinic.db.admin_client().await;
    let row = admin
        .query_one(
            "SELECT (SELECT count(*) FROM clinic.patients), \
                    (SELECT count(*) FROM clinic.medical_records)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (8, 11));
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_the_transaction_ends_the_binding() {
    let Some(clinic) = Clinic::start().await else {
        return;
    };
    attack(
        &clinic,
        &[
            ("COMMIT", Expect::NoRows),
            ("ROLLBACK", Expect::NoRows),
            ("COMMIT AND CHAIN", Expect::NoRows),
            ("BEGIN", Expect::NoRows),
            ("BEGIN READ WRITE", Expect::Refused("25001")),
            (
                "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                Expect::Refused("25001"),
            ),
            ("SAVEPOINT s", Expect::NoRows),
        ],
    )
    .await;
    // At the database layer nothing runs after a statement that ended the transaction.
    for ender in [
        "COMMIT",
        "ROLLBACK",
        "COMMIT AND CHAIN",
        "ROLLBACK AND CHAIN",
    ] {
        let outcomes = in_one_transaction(
            &clinic,
            &[
                "SET default_transaction_read_only = off",
                ender,
                "SELECT name FROM patients",
            ],
        )
        .await;
        let last = outcomes[2].as_ref().unwrap_err();
        assert!(last.message.starts_with("not run"), "{ender}: {last}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_in_as_the_reader_without_the_backend_sees_nothing() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let _backend = Backend::start(&db.url).await;
    let mut config = db.config();
    config.user("mcp_demo_reader").password("mcp_demo_reader");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)) }
    };
    // No binding: no rows.
    assert_eq!(
        count("SELECT count(*) FROM clinic.patients").await.unwrap(),
        0
    );
    // A read-write transaction, a look-alike binding table of one's own: ignored.
    client
        .batch_execute(
            "BEGIN; CREATE TEMP TABLE clinic_caller (user_name text, roles text[], \
             patient text, department text); \
             INSERT INTO clinic_caller VALUES ('x', ARRAY['nurse', 'analyst'], \
             'DAvID AndErSON', 'oncology')",
        )
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM clinic.patients").await.unwrap(),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM clinic_private.caller()")
            .await
            .unwrap(),
        0
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    // Binding without the key: refused.
    let err = client
        .batch_execute(
            "SELECT clinic_private.bind_caller('guess', 'x', ARRAY['nurse'], NULL, 'oncology')",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_identity_headers_see_zero_rows() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = Backend::start(&db.url).await;
    for headers in [
        vec![],
        vec![("x-mcp-user", "someone")],
        vec![("x-mcp-roles", "admin,staff")],
        vec![("x-mcp-department", "cardiology")],
    ] {
        let client = backend.client(&headers).await;
        let what = format!("{headers:?}");
        assert_eq!(
            call_json(&client, "list_patients", json!({}))
                .await
                .unwrap(),
            json!([]),
            "{what}"
        );
        assert_eq!(
            call_json(
                &client,
                "get_medical_records",
                json!({ "patient_name": ERIN })
            )
            .await
            .unwrap(),
            json!([]),
            "{what}"
        );
        for query in ["SELECT * FROM medical_records", "SELECT * FROM patients"] {
            assert_eq!(
                run_sql(&client, query).await.row_count(),
                0,
                "{what}: {query}"
            );
        }
        // The transaction is bound to the caller the headers name: no patient, no nurse
        // department (a `department` without the nurse role grants nothing).
        let bound = run_sql(
            &client,
            "SELECT patient, 'nurse' = ANY(roles) AS nurse FROM clinic_private.caller()",
        )
        .await;
        assert_eq!(bound.column("patient"), [Value::Null], "{what}");
        assert_eq!(bound.column("nurse"), [json!(false)], "{what}");
        let counted = run_sql(&client, "SELECT count(*) AS n FROM patients").await;
        assert_eq!(counted.column("n"), [json!(0)], "{what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn patient_names_match_in_any_case_at_the_database() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = Backend::start(&db.url).await;
    for (header, expected) in [
        ("ERIN ORTEGA", ERIN),
        ("erin ortega", ERIN),
        ("dAVId aNDeRsoN", DAVID),
    ] {
        let headers = patient_headers(header);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let client = backend.client(&headers).await;
        let seen = run_sql(&client, "SELECT name FROM patients").await;
        assert_eq!(sorted_strings(seen.column("name")), [expected], "{header}");
        let records = call_json(
            &client,
            "get_medical_records",
            json!({ "patient_name": expected.to_uppercase() }),
        )
        .await
        .unwrap();
        let patients: Vec<&Value> = records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["patient"])
            .collect();
        assert_eq!(patients.len(), 2, "{header}: {records}");
        assert!(
            patients.iter().all(|p| *p == expected),
            "{header}: {records}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn long_and_large_answers_are_bounded() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = Backend::start(&db.url).await;
    let headers = patient_headers(ERIN);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = backend.client(&headers).await;
    match run_sql(&client, "SELECT generate_series(1, 100000) AS n").await {
        SqlOutcome::Rows(out) => {
            assert_eq!(
                out["rows"].as_array().unwrap().len(),
                mcp_warden::demo::db::MAX_ROWS
            );
            assert_eq!(out["truncated"], json!(true));
        }
        other => panic!("{other:?}"),
    }
    // Cancelled by the statement timeout (57014 with PostgreSQL's own wording for it), not
    // left to run its minute; no timed assertion, so a slow machine cannot fail it.
    match run_sql(&client, "SELECT pg_sleep(60)").await {
        SqlOutcome::Failed(text) => {
            assert!(text.contains("SQLSTATE 57014"), "{text}");
            assert!(text.contains("statement timeout"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}
