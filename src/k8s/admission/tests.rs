use super::*;
use base64::Engine as _;
use serde_json::{json, Value};

/// An AdmissionReview as the API server sends it for a pod CREATE.
pub(crate) fn review_json(operation: &str, pod: Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "",
            "namespace": "tools",
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "2d2a4b1e-0000-0000-0000-000000000000",
                "groups": ["system:serviceaccounts", "system:authenticated"]
            },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

fn mcp_pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "mcp-7d9c-", "namespace": "tools", "annotations": annotations},
        "spec": {"containers": [{
            "name": "server", "image": "mcp:1",
            "ports": [{"name": "mcp", "containerPort": 3001, "protocol": "TCP"}]
        }]}
    })
}

fn settings() -> WebhookSettings {
    WebhookSettings {
        excluded_namespaces: vec!["kube-system".into(), "mcp-warden".into()],
        ..Default::default()
    }
}

fn run(review_value: &Value, settings: &WebhookSettings) -> (Answer, Value) {
    let answer = review(review_value.to_string().as_bytes(), settings);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    (answer, body)
}

fn patch_of(body: &Value) -> Option<json_patch::Patch> {
    let b64 = body.pointer("/response/patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn an_opted_in_pod_gets_a_patch_and_the_uid_is_echoed() {
    let pod = mcp_pod(json!({"mcp-warden.dev/inject": "true"}));
    let (answer, body) = run(&review_json("CREATE", pod.clone()), &settings());
    assert_eq!(answer.status, 200);
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(
        body["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    assert_eq!(answer.audit.decision, Decision::Injected);
    assert_eq!(answer.audit.name.as_deref(), Some("mcp-7d9c-"));

    let mut patched = pod;
    json_patch::patch(&mut patched, &patch_of(&body).unwrap()).unwrap();
    let typed: Pod = serde_json::from_value(patched.clone()).unwrap();
    assert_eq!(
        typed.spec.unwrap().init_containers.unwrap()[0].name,
        "mcp-warden"
    );

    // Reinvocation: the patched pod comes back; nothing more to do.
    let (answer, body) = run(&review_json("CREATE", patched), &settings());
    assert_eq!(answer.audit.decision, Decision::Skipped);
    assert_eq!(body["response"]["allowed"], true);
    assert!(patch_of(&body).is_none(), "second pass: empty patch");
}

#[test]
fn opted_out_not_opted_in_and_excluded_pods_pass_untouched() {
    for (annotations, namespace) in [
        (json!({"mcp-warden.dev/inject": "false"}), "tools"),
        (json!({}), "tools"),
        (json!({"mcp-warden.dev/inject": "true"}), "kube-system"),
        (json!({"mcp-warden.dev/inject": "true"}), "mcp-warden"),
    ] {
        let mut r = review_json("CREATE", mcp_pod(annotations.clone()));
        r["request"]["namespace"] = namespace.into();
        let (answer, body) = run(&r, &settings());
        assert_eq!(
            answer.audit.decision,
            Decision::Skipped,
            "{annotations} in {namespace}"
        );
        assert_eq!(body["response"]["allowed"], true);
        assert!(patch_of(&body).is_none());
    }
}

#[test]
fn update_delete_and_other_resources_pass_through() {
    let pod = mcp_pod(json!({"mcp-warden.dev/inject": "true"}));
    let mut update = review_json("UPDATE", pod.clone());
    update["request"]["oldObject"] = pod.clone();
    let mut delete = review_json("DELETE", Value::Null);
    delete["request"]["oldObject"] = pod.clone();
    let mut binding = review_json("CREATE", pod.clone());
    binding["request"]["subResource"] = "binding".into();
    let mut deployment = review_json("CREATE", pod);
    deployment["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    for r in [update, delete, binding, deployment] {
        let (answer, body) = run(&r, &settings());
        assert_eq!(answer.status, 200);
        assert_eq!(answer.audit.decision, Decision::PassedThrough, "{r}");
        assert_eq!(body["response"]["allowed"], true);
        assert!(patch_of(&body).is_none());
    }
}

#[test]
fn an_uninjectable_pod_is_denied_or_allowed_per_on_error() {
    let mut pod = mcp_pod(json!({"mcp-warden.dev/inject": "true"}));
    pod["spec"]["containers"][0]["ports"][0]["name"] = "http".into();
    let (answer, body) = run(&review_json("CREATE", pod.clone()), &settings());
    assert_eq!(answer.status, 200);
    assert_eq!(answer.audit.decision, Decision::Denied);
    assert_eq!(body["response"]["allowed"], false);
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("no container has a port named `mcp`"),
        "{message}"
    );
    assert!(message.contains("mcp-warden.dev/inject"), "{message}");

    let allow = WebhookSettings {
        on_error: OnError::Allow,
        ..settings()
    };
    let (answer, body) = run(&review_json("CREATE", pod), &allow);
    assert_eq!(answer.audit.decision, Decision::AllowedUninjected);
    assert_eq!(body["response"]["allowed"], true);
    assert!(patch_of(&body).is_none());
    assert!(body["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("WITHOUT"));
}

#[test]
fn unreadable_reviews_are_clear_errors() {
    let s = settings();
    let answer = review(b"{not json", &s);
    assert_eq!(answer.status, 400);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["response"]["allowed"], false);
    assert!(body["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("not JSON"));

    let mut old = review_json("CREATE", mcp_pod(json!({})));
    old["apiVersion"] = "admission.k8s.io/v1beta1".into();
    let (answer, body) = run(&old, &s);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.audit.decision, Decision::Invalid);
    assert_eq!(
        body["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert!(body["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("v1beta1"));

    let (answer, _) = run(
        &json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}),
        &s,
    );
    assert_eq!(answer.status, 400);

    let mut no_uid = review_json("CREATE", mcp_pod(json!({})));
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    assert_eq!(run(&no_uid, &s).0.status, 400);

    // A pod whose spec is not a pod spec: an injection failure, denied.
    let mut bad = review_json("CREATE", mcp_pod(json!({"mcp-warden.dev/inject": "true"})));
    bad["request"]["object"]["spec"]["containers"] = "nope".into();
    let (answer, body) = run(&bad, &s);
    assert_eq!(answer.audit.decision, Decision::Denied);
    assert_eq!(body["response"]["allowed"], false);
}
