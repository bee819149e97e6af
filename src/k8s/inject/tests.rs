//! The mutation over pod shapes seen in real clusters.

use super::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// A pod from YAML, as JSON (the API server's view).
fn pod_json(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// Run the webhook's path: should it be injected (opt-in required), the patch, the
/// patched object; returns the patch and the patched pod (typed and raw).
fn inject_json(
    raw: &Value,
    template: &Template,
) -> Result<(json_patch::Patch, Pod, Value), InjectError> {
    let (meta, spec) = read_template(raw)?;
    let (patch, _) = template_patch(&meta, &spec, template)?;
    let mut patched = raw.clone();
    if patched.get("metadata").is_none() {
        // The API server's pods always have metadata; these short fixtures may not.
        patched["metadata"] = serde_json::json!({});
    }
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the pod as sent");
    let pod: Pod = serde_json::from_value(patched.clone()).expect("the patched pod is a Pod");
    Ok((patch, pod, patched))
}

fn ok(yaml: &str) -> (json_patch::Patch, Pod, Value) {
    inject_json(&pod_json(yaml), &Template::default()).unwrap()
}

fn err(yaml: &str) -> InjectError {
    inject_json(&pod_json(yaml), &Template::default()).unwrap_err()
}

fn sidecar(pod: &Pod) -> &Container {
    let spec = pod.spec.as_ref().unwrap();
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == "mcp-warden")
        .expect("a sidecar")
}

fn env<'a>(c: &'a Container, name: &str) -> &'a str {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
        .unwrap_or_else(|| panic!("no env {name}"))
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

const SIMPLE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: mcp
  namespace: tools
  annotations: {mcp-warden.dev/inject: "true"}
spec:
  containers:
  - name: server
    image: ghcr.io/example/mcp-server:1
    ports:
    - {name: mcp, containerPort: 3001}
"#;

#[test]
fn simple_pod_gets_a_native_sidecar_that_takes_the_port_name() {
    let (_, pod, _) = ok(SIMPLE);
    let spec = pod.spec.as_ref().unwrap();
    let init = spec.init_containers.as_ref().unwrap();
    assert_eq!(init.len(), 1);
    let s = &init[0];
    assert_eq!(s.name, "mcp-warden");
    assert_eq!(
        s.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    let ports = s.ports.as_ref().unwrap();
    assert_eq!(ports[0].name.as_deref(), Some("mcp"));
    assert_eq!(ports[0].container_port, 15100);
    assert_eq!(ports[1].name.as_deref(), Some(ADMIN_PORT_NAME));
    assert_eq!(env(s, "MCP_WARDEN__UPSTREAM"), "http://127.0.0.1:3001/mcp");
    assert_eq!(env(s, "MCP_WARDEN__LISTEN"), "0.0.0.0:15100");
    assert_eq!(
        s.args.as_ref().unwrap(),
        &["run", "--config", "/etc/mcp-warden/warden.toml"]
    );
    // The server's port moved out of the way.
    let server_port = &spec.containers[0].ports.as_ref().unwrap()[0];
    assert_eq!(server_port.name.as_deref(), Some("mcp-app"));
    assert_eq!(server_port.container_port, 3001);
    // Startup on /healthz (not /readyz: that needs the server, which waits for us).
    let startup = s.startup_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(startup.path.as_deref(), Some("/healthz"));
    let ready = s
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    // Marker, label, Prometheus.
    assert_eq!(
        annotation(&pod, annotations::INJECTED),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .unwrap()
            .get(labels::INJECTED)
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(annotation(&pod, "prometheus.io/scrape"), Some("true"));
    assert_eq!(annotation(&pod, "prometheus.io/port"), Some("15101"));
    // Policies: the whole ConfigMap as a directory (no subPath: hot reload works).
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == POLICY_VOLUME)
        .unwrap();
    assert_eq!(
        volume.config_map.as_ref().unwrap().name,
        "mcp-warden-policy"
    );
    let mount = &s.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.mount_path, POLICY_MOUNT);
    assert_eq!(mount.sub_path, None);
    assert_eq!(mount.read_only, Some(true));
}

#[test]
fn the_sidecar_meets_the_restricted_pod_security_standard() {
    let (_, pod, _) = ok(SIMPLE);
    let sc = sidecar(&pod).security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert!(sc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
}

#[test]
fn a_second_pass_is_skipped_by_the_marker() {
    let (_, pod, _) = ok(SIMPLE);
    assert_eq!(
        should_inject(&pod.metadata, Some("tools"), &[], true).unwrap(),
        Err(Skip::AlreadyInjected)
    );
    assert_eq!(
        should_inject(&pod.metadata, Some("tools"), &[], false).unwrap(),
        Err(Skip::AlreadyInjected),
        "manual injection too"
    );
}

#[test]
fn opt_in_opt_out_and_excluded_namespaces() {
    let meta = |inject: Option<&str>| ObjectMeta {
        annotations: inject
            .map(|v| BTreeMap::from([(annotations::INJECT.to_owned(), v.to_owned())])),
        ..Default::default()
    };
    let excluded = vec!["kube-system".to_owned(), "mcp-warden".to_owned()];
    assert_eq!(
        should_inject(&meta(Some("true")), Some("apps"), &excluded, true).unwrap(),
        Ok(())
    );
    assert_eq!(
        should_inject(&meta(None), Some("apps"), &excluded, true).unwrap(),
        Err(Skip::NotOptedIn)
    );
    assert_eq!(
        should_inject(&meta(None), Some("apps"), &excluded, false).unwrap(),
        Ok(())
    );
    assert_eq!(
        should_inject(&meta(Some("false")), Some("apps"), &excluded, false).unwrap(),
        Err(Skip::OptedOut)
    );
    for ns in ["kube-system", "mcp-warden"] {
        assert!(matches!(
            should_inject(&meta(Some("true")), Some(ns), &excluded, true).unwrap(),
            Err(Skip::ExcludedNamespace { .. })
        ));
    }
    // The namespace in the object counts when the request has none.
    let mut m = meta(Some("true"));
    m.namespace = Some("kube-system".to_owned());
    assert!(should_inject(&m, None, &excluded, true).unwrap().is_err());
    // Anything but "true"/"false" is an error, not a guess.
    assert!(matches!(
        should_inject(&meta(Some("yes")), Some("apps"), &excluded, true),
        Err(InjectError::BadAnnotation { .. })
    ));
}

#[test]
fn several_containers_the_named_port_picks_the_server() {
    let (_, pod, _) = ok(r#"
metadata: {name: multi}
spec:
  containers:
  - name: log-shipper
    image: fluent-bit
    ports: [{name: metrics, containerPort: 2020}]
  - name: server
    image: mcp
    ports: [{name: http, containerPort: 8080}, {name: mcp, containerPort: 3001}]
"#);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.containers.len(),
        2,
        "classic containers unchanged in number"
    );
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0]
            .name
            .as_deref(),
        Some("metrics")
    );
    let server_ports = spec.containers[1].ports.as_ref().unwrap();
    assert_eq!(server_ports[0].name.as_deref(), Some("http"));
    assert_eq!(server_ports[1].name.as_deref(), Some("mcp-app"));
    assert_eq!(
        env(sidecar(&pod), "MCP_WARDEN__UPSTREAM"),
        "http://127.0.0.1:3001/mcp"
    );
}

const WITH_INIT: &str = r#"
metadata: {name: with-init}
spec:
  initContainers:
  - name: migrate
    image: migrate
    command: [migrate, up]
    futureField: kept
  - name: mesh-proxy
    image: mesh
    restartPolicy: Always
  containers:
  - name: server
    image: mcp
    ports: [{name: mcp, containerPort: 3001}]
  volumes:
  - name: data
    emptyDir: {}
"#;

#[test]
fn existing_init_containers_and_sidecars_are_kept_and_the_sidecar_appended() {
    let (patch, pod, raw) = ok(WITH_INIT);
    let init = pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap();
    let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["migrate", "mesh-proxy", "mcp-warden"]);
    assert_eq!(init[0].command.as_ref().unwrap(), &["migrate", "up"]);
    // A field these Kubernetes types do not know stays on its container.
    assert_eq!(
        raw.pointer("/spec/initContainers/0/futureField"),
        Some(&Value::from("kept"))
    );
    assert!(raw.pointer("/spec/initContainers/2/futureField").is_none());
    // The patch only adds, and replaces the renamed port's name: no edits of others.
    for op in &patch.0 {
        match op {
            json_patch::PatchOperation::Add(_) => {}
            json_patch::PatchOperation::Replace(r) => {
                assert_eq!(
                    r.path.to_string(),
                    "/spec/containers/0/ports/0/name",
                    "{op:?}"
                )
            }
            other => panic!("unexpected patch operation {other:?}"),
        }
    }
    let volumes: Vec<&str> = pod
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["data", POLICY_VOLUME]);
}

#[test]
fn no_ports_or_only_numbered_ports_cannot_be_injected() {
    assert_eq!(
        err("spec: {containers: [{name: server, image: mcp}]}"),
        InjectError::NoPort { port: "mcp".into() }
    );
    let numbered =
        "spec: {containers: [{name: server, image: mcp, ports: [{containerPort: 3001}]}]}";
    assert!(matches!(err(numbered), InjectError::NoPort { .. }));
    assert!(
        err(numbered).to_string().contains("mcp-warden.dev/port"),
        "the help names the annotation"
    );
}

#[test]
fn the_port_annotation_names_another_port() {
    let (_, pod, _) = ok(r#"
metadata:
  annotations: {mcp-warden.dev/port: http, mcp-warden.dev/upstream-path: /v1/mcp}
spec:
  containers:
  - name: server
    image: mcp
    ports: [{name: http, containerPort: 8080}]
"#);
    let s = sidecar(&pod);
    assert_eq!(s.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
    assert_eq!(
        env(s, "MCP_WARDEN__UPSTREAM"),
        "http://127.0.0.1:8080/v1/mcp"
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().containers[0]
            .ports
            .as_ref()
            .unwrap()[0]
            .name
            .as_deref(),
        Some("http-app")
    );
}

#[test]
fn named_probes_follow_the_renamed_port_numbered_probes_stay() {
    let (_, pod, _) = ok(r#"
spec:
  containers:
  - name: server
    image: mcp
    ports: [{name: mcp, containerPort: 3001}, {name: admin, containerPort: 9000}]
    livenessProbe: {httpGet: {path: /health, port: mcp}}
    readinessProbe: {tcpSocket: {port: 3001}}
    startupProbe: {httpGet: {path: /started, port: admin}}
    lifecycle: {preStop: {httpGet: {path: /drain, port: mcp}}}
"#);
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let port = |p: &IntOrString| match p {
        IntOrString::String(s) => s.clone(),
        IntOrString::Int(i) => i.to_string(),
    };
    assert_eq!(
        port(
            &c.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .port
        ),
        "mcp-app"
    );
    assert_eq!(
        port(
            &c.readiness_probe
                .as_ref()
                .unwrap()
                .tcp_socket
                .as_ref()
                .unwrap()
                .port
        ),
        "3001"
    );
    assert_eq!(
        port(
            &c.startup_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .port
        ),
        "admin"
    );
    let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert_eq!(port(&pre_stop.http_get.as_ref().unwrap().port), "mcp-app");
}

#[test]
fn conflicts_are_errors_and_leave_the_pod_alone() {
    let taken_container = r#"
spec:
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}]}
  - {name: mcp-warden, image: other}
"#;
    assert!(matches!(
        err(taken_container),
        InjectError::NameTaken {
            what: "container",
            ..
        }
    ));
    let taken_port = r#"
spec:
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}, {name: other, containerPort: 15100}]}
"#;
    assert!(matches!(
        err(taken_port),
        InjectError::PortTaken { port: 15100, .. }
    ));
    let taken_name = r#"
spec:
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}, {name: mcp-app, containerPort: 3002}]}
"#;
    assert!(matches!(
        err(taken_name),
        InjectError::NameTaken { what: "port", .. }
    ));
    let ambiguous = r#"
spec:
  containers:
  - {name: a, image: mcp, ports: [{name: mcp, containerPort: 3001}]}
  - {name: b, image: mcp, ports: [{name: mcp, containerPort: 3002}]}
"#;
    assert!(matches!(err(ambiguous), InjectError::AmbiguousPort { .. }));
    let host = r#"
spec:
  hostNetwork: true
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}]}
"#;
    assert_eq!(err(host), InjectError::HostNetwork);
    let volume = r#"
spec:
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}]}
  volumes: [{name: mcp-warden-policy, emptyDir: {}}]
"#;
    assert!(matches!(
        err(volume),
        InjectError::NameTaken { what: "volume", .. }
    ));

    // inject() itself leaves the objects untouched on error.
    let raw = pod_json(taken_port);
    let (mut meta, mut spec) = read_template(&raw).unwrap();
    let before = (meta.clone(), spec.clone());
    assert!(inject(&mut meta, &mut spec, &Template::default()).is_err());
    assert_eq!((meta, spec), before);
}

#[test]
fn per_pod_annotations_set_the_sidecar() {
    let (_, pod, _) = ok(r#"
metadata:
  annotations:
    mcp-warden.dev/policy-secret: clinic-policy
    mcp-warden.dev/config-file: conf/proxy.toml
    mcp-warden.dev/upstream-port: "3100"
    mcp-warden.dev/log-level: debug
    mcp-warden.dev/cpu-request: 100m
    mcp-warden.dev/memory-limit: 512Mi
    mcp-warden.dev/sidecar: classic
    prometheus.io/scrape: "true"
    prometheus.io/port: "9000"
spec:
  containers:
  - {name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}]}
"#);
    let spec = pod.spec.as_ref().unwrap();
    assert!(spec.init_containers.is_none(), "classic: no init container");
    let s = &spec.containers[1];
    assert_eq!(s.name, "mcp-warden");
    assert_eq!(s.restart_policy, None);
    assert_eq!(env(s, "MCP_WARDEN__UPSTREAM"), "http://127.0.0.1:3100/mcp");
    assert_eq!(env(s, "MCP_WARDEN__LOG__LEVEL"), "debug");
    assert_eq!(
        s.args.as_ref().unwrap()[2],
        "/etc/mcp-warden/conf/proxy.toml"
    );
    let r = s.resources.as_ref().unwrap();
    assert_eq!(r.requests.as_ref().unwrap()["cpu"].0, "100m");
    assert_eq!(r.limits.as_ref().unwrap()["memory"].0, "512Mi");
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == POLICY_VOLUME)
        .unwrap();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("clinic-policy")
    );
    assert!(volume.config_map.is_none());
    // The pod's own scraping annotations are not overwritten.
    assert_eq!(annotation(&pod, "prometheus.io/port"), Some("9000"));
}

#[test]
fn bad_annotation_values_never_reach_the_sidecar() {
    for (key, value) in [
        (annotations::CONFIG_FILE, "../../etc/passwd"),
        (annotations::CONFIG_FILE, "/etc/passwd"),
        (annotations::CONFIG_FILE, "..data/warden.toml"),
        (annotations::UPSTREAM_PATH, "/mcp --config /tmp/x"),
        (annotations::UPSTREAM_PATH, "mcp"),
        (annotations::UPSTREAM_PATH, "/mcp?x=1"),
        (annotations::UPSTREAM_PORT, "0"),
        (annotations::UPSTREAM_PORT, "70000"),
        (annotations::UPSTREAM_PORT, "3001; rm"),
        (annotations::LOG_LEVEL, "loud"),
        (annotations::CPU_REQUEST, "lots"),
        (annotations::MEMORY_LIMIT, "1Zi"),
        (annotations::POLICY_CONFIGMAP, "Bad_Name"),
        (annotations::PORT, "this-name-is-far-too-long"),
        (annotations::APP_PORT_NAME, "UPPER"),
        (annotations::SIDECAR, "sometimes"),
    ] {
        let yaml = format!(
            "metadata: {{annotations: {{{key}: {value:?}}}}}\nspec: {{containers: [{{name: server, image: mcp, ports: [{{name: mcp, containerPort: 3001}}]}}]}}"
        );
        match inject_json(&pod_json(&yaml), &Template::default()) {
            Err(InjectError::BadAnnotation { annotation, .. }) => assert_eq!(annotation, key),
            other => panic!("{key}: {value}: {other:?}"),
        }
    }
    let both = r#"
metadata: {annotations: {mcp-warden.dev/policy-secret: a, mcp-warden.dev/policy-configmap: b}}
spec: {containers: [{name: server, image: mcp, ports: [{name: mcp, containerPort: 3001}]}]}
"#;
    assert!(matches!(err(both), InjectError::BadAnnotation { .. }));
}

#[test]
fn long_port_names_get_a_short_new_name() {
    let (_, pod, _) = ok(r#"
metadata: {annotations: {mcp-warden.dev/port: streamable-http}}
spec: {containers: [{name: server, image: mcp, ports: [{name: streamable-http, containerPort: 3001}]}]}
"#);
    let name = pod.spec.as_ref().unwrap().containers[0]
        .ports
        .as_ref()
        .unwrap()[0]
        .name
        .clone()
        .unwrap();
    assert!(is_port_name(&name), "{name}");
    assert_eq!(name, "mcp-app");
}

#[test]
fn port_names_and_quantities() {
    for good in ["mcp", "mcp-app", "h2c", "a1", "abcdefghijklmno"] {
        assert!(is_port_name(good), "{good}");
    }
    for bad in [
        "",
        "MCP",
        "-mcp",
        "mcp-",
        "a--b",
        "123",
        "abcdefghijklmnop",
        "m_p",
    ] {
        assert!(!is_port_name(bad), "{bad}");
    }
    for good in ["100m", "0.5", "1", "128Mi", "1G", "2Ki", "1e3"] {
        assert!(is_quantity(good), "{good}");
    }
    for bad in ["", "m", "1.2.3", "1Zi", "-1", "1 Gi", "."] {
        assert!(!is_quantity(bad), "{bad}");
    }
}
