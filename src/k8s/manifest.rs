//! `mcp-warden inject -f`: manual injection of multi-document YAML.
//!
//! Each document is read as JSON; a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! Job or CronJob (and the items of a `List`) has its pod template injected with the
//! same patch the webhook would send, applied to the document as read, so fields the
//! Kubernetes types of this build do not know survive. Other documents (Services,
//! ConfigMaps, …) pass through unchanged. Running the command is the opt-in: a template
//! without the `mcp-warden.dev/inject` annotation is injected, one annotated `"false"`
//! or already injected is left alone.

use serde::Deserialize;
use serde_json::Value;

use super::inject::{read_template, should_inject, template_patch, InjectError, Skip, Template};

/// A document could not be injected or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML did not parse.
    #[error("document {index}: not YAML: {message}")]
    Yaml {
        /// 1-based document number.
        index: usize,
        /// What the parser said.
        message: String,
    },
    /// A workload could not be injected.
    #[error("document {index} ({object}): cannot inject: {source}")]
    Inject {
        /// 1-based document number.
        index: usize,
        /// `kind/name`.
        object: String,
        /// Why.
        source: InjectError,
    },
    /// The injected document could not be written back.
    #[error("document {index} ({object}): {message}")]
    Write {
        /// 1-based document number.
        index: usize,
        /// `kind/name`.
        object: String,
        /// What went wrong.
        message: String,
    },
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Injected.
    Injected {
        /// `kind/name`.
        object: String,
        /// The server container.
        container: String,
        /// The proxy's upstream.
        upstream: String,
    },
    /// A workload left alone.
    Skipped {
        /// `kind/name`.
        object: String,
        /// Why.
        reason: Skip,
    },
    /// Not a workload.
    Unchanged {
        /// `kind/name`.
        object: String,
    },
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Injected {
                object,
                container,
                upstream,
            } => write!(
                f,
                "{object}: injected (server container `{container}`, upstream {upstream})"
            ),
            Report::Skipped { object, reason } => write!(f, "{object}: skipped: {reason}"),
            Report::Unchanged { object } => write!(f, "{object}: not a workload, unchanged"),
        }
    }
}

/// Where the pod template is in a document of this kind (a JSON pointer), if anywhere.
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn object_name(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = doc
        .pointer("/metadata/name")
        .or_else(|| doc.pointer("/metadata/generateName"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{}/{name}", kind.to_ascii_lowercase())
}

/// Inject one object in place.
fn inject_object(
    index: usize,
    doc: &mut Value,
    template: &Template,
    excluded_namespaces: &[String],
    reports: &mut Vec<Report>,
) -> Result<(), ManifestError> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let object = object_name(doc);
    if kind == "List" {
        if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                inject_object(index, item, template, excluded_namespaces, reports)?;
            }
        }
        return Ok(());
    }
    let Some(pointer) = template_pointer(&kind) else {
        reports.push(Report::Unchanged { object });
        return Ok(());
    };
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let fail = |source| ManifestError::Inject {
        index,
        object: object.clone(),
        source,
    };
    let target = doc.pointer_mut(pointer).ok_or_else(|| {
        fail(InjectError::NotAPod {
            message: format!("no pod template at `{pointer}`"),
        })
    })?;
    let (meta, spec) = read_template(target).map_err(fail)?;
    if let Err(reason) =
        should_inject(&meta, namespace.as_deref(), excluded_namespaces, false).map_err(fail)?
    {
        reports.push(Report::Skipped { object, reason });
        return Ok(());
    }
    let (patch, injected) = template_patch(&meta, &spec, template).map_err(fail)?;
    if target.get("metadata").is_none() {
        // The patch adds under /metadata, which must exist.
        if let Some(map) = target.as_object_mut() {
            map.insert("metadata".to_owned(), Value::Object(Default::default()));
        }
    }
    json_patch::patch(target, &patch).map_err(|e| ManifestError::Write {
        index,
        object: object.clone(),
        message: format!("the patch does not apply: {e}"),
    })?;
    reports.push(Report::Injected {
        object,
        container: injected.container,
        upstream: injected.upstream,
    });
    Ok(())
}

/// Inject every workload in `yaml` (one or more documents); returns the YAML to write
/// and what happened to each object.
pub fn inject_yaml(
    yaml: &str,
    template: &Template,
    excluded_namespaces: &[String],
) -> Result<(String, Vec<Report>), ManifestError> {
    let mut out = String::new();
    let mut reports = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let index = i + 1;
        let mut doc = Value::deserialize(document).map_err(|e| ManifestError::Yaml {
            index,
            message: e.to_string(),
        })?;
        if doc.is_null() {
            continue;
        }
        inject_object(index, &mut doc, template, excluded_namespaces, &mut reports)?;
        let text = serde_yaml_ng::to_string(&doc).map_err(|e| ManifestError::Write {
            index,
            object: object_name(&doc),
            message: e.to_string(),
        })?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&text);
    }
    Ok((out, reports))
}
