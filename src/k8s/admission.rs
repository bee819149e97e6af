//! `AdmissionReview` v1 in, `AdmissionReview` v1 out: the webhook's decision, without
//! the network. [`review`] takes the request body as the API server sent it and returns
//! the HTTP status, the body to answer and the audit record of what was decided.
//!
//! - Only `CREATE` of a `pods` object (no subresource) is ever mutated; `UPDATE`,
//!   `DELETE`, `CONNECT` and other resources are allowed untouched.
//! - A pod that is not opted in, opted out, already injected or in an excluded
//!   namespace is allowed untouched.
//! - An opted-in pod gets a JSON Patch ([`super::inject::template_patch`]).
//! - An opted-in pod that cannot be injected is denied with the reason, or allowed
//!   unchanged with a warning, per [`OnError`] (default: deny).
//! - A body that is not an `AdmissionReview` v1 is answered with HTTP 400 and an
//!   `AdmissionReview` whose status says what is wrong (echoing the `uid` when one could
//!   be read), so the API server reports a clear webhook error and applies its
//!   `failurePolicy`.

use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::DynamicObject;
use serde::Serialize;

use super::inject::{should_inject, template_patch, Template};

/// The API version answered and accepted.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// What to do with an opted-in pod that cannot be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Deny its creation, with the reason (fail closed).
    #[default]
    Deny,
    /// Let it run without the sidecar, with a warning to the client.
    Allow,
}

/// The webhook's settings.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// The injection template.
    pub template: Template,
    /// What to do when injection fails.
    pub on_error: OnError,
    /// Namespaces never injected (`kube-system`, the webhook's own).
    pub excluded_namespaces: Vec<String>,
}

/// What the webhook decided (one audit line and one counter increment each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The sidecar was injected.
    Injected,
    /// An opted-in pod could not be injected and was denied.
    Denied,
    /// An opted-in pod could not be injected and was allowed without the sidecar.
    AllowedUninjected,
    /// Not for injection (not opted in, opted out, already injected, excluded).
    Skipped,
    /// Not a pod CREATE: allowed untouched.
    PassedThrough,
    /// The request was not a readable AdmissionReview v1.
    Invalid,
}

impl Decision {
    /// Every decision, for pre-registering metric labels.
    pub const ALL: [Decision; 6] = [
        Decision::Injected,
        Decision::Denied,
        Decision::AllowedUninjected,
        Decision::Skipped,
        Decision::PassedThrough,
        Decision::Invalid,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Injected => "injected",
            Decision::Denied => "denied",
            Decision::AllowedUninjected => "allowed_uninjected",
            Decision::Skipped => "skipped",
            Decision::PassedThrough => "passed_through",
            Decision::Invalid => "invalid",
        }
    }
}

/// The audit record of one review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Always `admission`.
    pub kind: &'static str,
    /// The decision.
    pub decision: Decision,
    /// The request's `uid` (empty when unreadable).
    pub uid: String,
    /// `CREATE`, `UPDATE`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The pod's name or `generateName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who asked (the API server's `userInfo.username`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why (skip reason, injection error, parse error), or what was injected.
    pub reason: String,
    /// Whether the API server was told to admit the object.
    pub allowed: bool,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (an `AdmissionReview`).
    pub body: Vec<u8>,
    /// What to audit.
    pub audit: AuditRecord,
}

fn invalid(uid: &str, message: String) -> Answer {
    let mut response = AdmissionResponse::invalid(&message);
    response.uid = uid.to_owned();
    let body = serde_json::to_vec(&response.into_review()).unwrap_or_default();
    Answer {
        status: 400,
        body,
        audit: AuditRecord {
            kind: "admission",
            decision: Decision::Invalid,
            uid: uid.to_owned(),
            operation: None,
            namespace: None,
            name: None,
            user: None,
            reason: message,
            allowed: false,
        },
    }
}

fn answer(response: AdmissionResponse, audit: AuditRecord) -> Answer {
    let body = serde_json::to_value(response.into_review()).and_then(|mut review| {
        base64_patch(&mut review);
        serde_json::to_vec(&review)
    });
    match body {
        Ok(body) => Answer {
            status: 200,
            body,
            audit,
        },
        Err(e) => invalid(&audit.uid, format!("cannot write the response: {e}")),
    }
}

/// kube-core serializes `response.patch` (a `Vec<u8>`) as an array of numbers. The API
/// server's Go decoder reads that too, but the field is Go `[]byte`, whose JSON form is
/// a base64 string: write that, as every other webhook does.
fn base64_patch(review: &mut serde_json::Value) {
    use base64::Engine as _;
    let Some(patch) = review.pointer_mut("/response/patch") else {
        return;
    };
    if let Some(items) = patch.as_array() {
        let bytes: Option<Vec<u8>> = items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect();
        if let Some(bytes) = bytes {
            *patch = base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into();
        }
    }
}

/// Decide one `AdmissionReview` (see the module docs).
pub fn review(body: &[u8], settings: &WebhookSettings) -> Answer {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid("", format!("malformed AdmissionReview: not JSON: {e}")),
    };
    let uid = value
        .pointer("/request/uid")
        .and_then(|u| u.as_str())
        .unwrap_or("")
        .to_owned();
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value.get("kind").and_then(|v| v.as_str());
    if kind != Some("AdmissionReview") || api_version != Some(API_VERSION) {
        return invalid(
            &uid,
            format!(
                "expected an AdmissionReview {API_VERSION}, got kind `{}` apiVersion `{}`\n  help: set `admissionReviewVersions: [\"v1\"]` in the MutatingWebhookConfiguration",
                kind.unwrap_or(""),
                api_version.unwrap_or("")
            ),
        );
    }
    let review: AdmissionReview<DynamicObject> = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return invalid(&uid, format!("malformed AdmissionReview: {e}")),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return invalid(&uid, "AdmissionReview without a `request`".to_owned()),
    };
    decide(&request, settings)
}

fn decide(request: &AdmissionRequest<DynamicObject>, settings: &WebhookSettings) -> Answer {
    let operation = serde_json::to_value(&request.operation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    let mut audit = AuditRecord {
        kind: "admission",
        decision: Decision::PassedThrough,
        uid: request.uid.clone(),
        operation,
        namespace: request.namespace.clone(),
        name: None,
        user: request.user_info.username.clone(),
        reason: String::new(),
        allowed: true,
    };
    let allow = AdmissionResponse::from(request);

    let is_pod = request.resource.group.is_empty()
        && request.resource.resource == "pods"
        && request.sub_resource.is_none();
    if request.operation != Operation::Create || !is_pod {
        audit.reason = format!(
            "not a pod CREATE ({} {})",
            audit.operation.as_deref().unwrap_or("?"),
            request.resource.resource
        );
        return answer(allow, audit);
    }
    let Some(object) = request.object.as_ref() else {
        return invalid(&request.uid, "CREATE without an `object`".to_owned());
    };
    let pod: Result<Pod, _> = serde_json::to_value(object).and_then(serde_json::from_value);
    let pod = match pod {
        Ok(pod) => pod,
        Err(e) => {
            return injection_failed(
                allow,
                audit,
                settings,
                super::inject::InjectError::NotAPod {
                    message: e.to_string(),
                },
            )
        }
    };
    audit.name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone());
    let Some(spec) = pod.spec.as_ref() else {
        return injection_failed(
            allow,
            audit,
            settings,
            super::inject::InjectError::NotAPod {
                message: "no `spec`".to_owned(),
            },
        );
    };
    match should_inject(
        &pod.metadata,
        request.namespace.as_deref(),
        &settings.excluded_namespaces,
        true,
    ) {
        Ok(Err(skip)) => {
            audit.decision = Decision::Skipped;
            audit.reason = skip.to_string();
            return answer(allow, audit);
        }
        Ok(Ok(())) => {}
        Err(e) => return injection_failed(allow, audit, settings, e),
    }
    match template_patch(&pod.metadata, spec, &settings.template) {
        Ok((patch, injected)) => {
            audit.decision = Decision::Injected;
            audit.reason = format!(
                "sidecar ({:?}) for container `{}`, port `{}` renamed `{}`, upstream {}",
                injected.mode,
                injected.container,
                injected.port_name,
                injected.app_port_name,
                injected.upstream
            )
            .to_lowercase();
            match allow.with_patch(patch) {
                Ok(response) => answer(response, audit),
                Err(e) => invalid(&request.uid, format!("cannot write the patch: {e}")),
            }
        }
        Err(e) => injection_failed(allow, audit, settings, e),
    }
}

fn injection_failed(
    allow: AdmissionResponse,
    mut audit: AuditRecord,
    settings: &WebhookSettings,
    error: super::inject::InjectError,
) -> Answer {
    let message = format!("mcp-warden cannot inject its sidecar: {error}");
    audit.reason = error.to_string();
    match settings.on_error {
        OnError::Deny => {
            audit.decision = Decision::Denied;
            audit.allowed = false;
            answer(
                allow.deny(format!(
                    "{message}\n  help: fix the pod, or opt out with the annotation `mcp-warden.dev/inject: \"false\"`"
                )),
                audit,
            )
        }
        OnError::Allow => {
            audit.decision = Decision::AllowedUninjected;
            let mut response = allow;
            response.warnings = Some(vec![format!(
                "{message}; the pod runs WITHOUT the policy proxy"
            )]);
            answer(response, audit)
        }
    }
}

#[cfg(test)]
mod tests;
