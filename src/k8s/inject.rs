//! The mutation: a pod (metadata and spec) plus the injection [`Template`] → the pod with
//! the mcp-warden sidecar. Pure: no I/O, no clock; `inject -f` and the webhook both call it.
//!
//! What it does to an opted-in pod:
//! - finds the MCP server's container port by name (annotation [`annotations::PORT`],
//!   default `mcp`), renames it (default `<name>-app`) and gives the original name to the
//!   sidecar's proxy port, so a Service with `targetPort: mcp` reaches the proxy unchanged
//!   (no iptables, no `NET_ADMIN`); the proxy's upstream is `http://127.0.0.1:<that port>`;
//! - rewrites the server container's own probes and lifecycle hooks that named the old
//!   port to the new name (they keep reaching the server directly on its port);
//! - adds the sidecar: a native sidecar (an init container with `restartPolicy: Always`,
//!   so it starts before the regular containers and stops after them) or, with
//!   [`SidecarMode::Classic`], a regular container for clusters older than 1.29;
//! - mounts the policy ConfigMap (or Secret) as a directory, never with `subPath`, so
//!   the kubelet's symlink swap reaches the proxy's policy watcher and policies hot-reload;
//! - adds the marker annotation [`annotations::INJECTED`] (a second pass is a no-op), the
//!   label [`labels::INJECTED`] (for NetworkPolicy and PodMonitor selectors) and, when the
//!   pod has none of its own, the `prometheus.io/*` scraping annotations.
//!
//! New entries (the sidecar, the volume) are appended, never inserted: `json-patch`'s diff
//! compares arrays index by index, so an insertion at the front would come out as edits
//! of every existing element, and the API server would apply those edits to its own
//! copy, which may hold fields these Kubernetes types do not know. Appended, the patch
//! is one `add` per new entry plus `replace`s of the renamed port names. A native
//! sidecar after the pod's other init containers still starts before the MCP server:
//! the regular init containers run to completion first (they do not need the proxy).
//!
//! Every annotation value that reaches the sidecar's command line or environment is
//! checked first (numbers, names, paths); a bad one is an [`InjectError`], never passed on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Pod annotations read or written by the injector.
pub mod annotations {
    /// Opt-in (`"true"`) or explicit opt-out (`"false"`).
    pub const INJECT: &str = "mcp-warden.dev/inject";
    /// Set on injection (value: the injector's version); its presence makes injection a no-op.
    pub const INJECTED: &str = "mcp-warden.dev/injected";
    /// The name of the MCP server's container port (default `mcp`).
    pub const PORT: &str = "mcp-warden.dev/port";
    /// The new name of that port (default `<port>-app`, at most 15 characters).
    pub const APP_PORT_NAME: &str = "mcp-warden.dev/app-port-name";
    /// The port the proxy forwards to on 127.0.0.1 (default: the named port's number).
    pub const UPSTREAM_PORT: &str = "mcp-warden.dev/upstream-port";
    /// The MCP endpoint path on the server (default `/mcp`).
    pub const UPSTREAM_PATH: &str = "mcp-warden.dev/upstream-path";
    /// The ConfigMap holding the configuration file and policies (default `mcp-warden-policy`).
    pub const POLICY_CONFIGMAP: &str = "mcp-warden.dev/policy-configmap";
    /// A Secret to mount instead of a ConfigMap.
    pub const POLICY_SECRET: &str = "mcp-warden.dev/policy-secret";
    /// The configuration file, relative to the mounted ConfigMap (default `warden.toml`).
    pub const CONFIG_FILE: &str = "mcp-warden.dev/config-file";
    /// The proxy's log level: `trace`, `debug`, `info`, `warn` or `error`.
    pub const LOG_LEVEL: &str = "mcp-warden.dev/log-level";
    /// `native` (default) or `classic`.
    pub const SIDECAR: &str = "mcp-warden.dev/sidecar";
    /// The sidecar's CPU request (a Kubernetes quantity).
    pub const CPU_REQUEST: &str = "mcp-warden.dev/cpu-request";
    /// The sidecar's CPU limit.
    pub const CPU_LIMIT: &str = "mcp-warden.dev/cpu-limit";
    /// The sidecar's memory request.
    pub const MEMORY_REQUEST: &str = "mcp-warden.dev/memory-request";
    /// The sidecar's memory limit.
    pub const MEMORY_LIMIT: &str = "mcp-warden.dev/memory-limit";
    /// Prometheus annotation-based scraping (added only when the pod has none).
    pub const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
    /// The port Prometheus scrapes.
    pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
    /// The path Prometheus scrapes.
    pub const PROMETHEUS_PATH: &str = "prometheus.io/path";
}

/// Pod labels written by the injector.
pub mod labels {
    /// `"true"` on injected pods: what the NetworkPolicy and the PodMonitor select.
    pub const INJECTED: &str = "mcp-warden.dev/injected";
}

/// Where the policy volume is mounted in the sidecar.
pub const POLICY_MOUNT: &str = "/etc/mcp-warden";
/// The policy volume's name in the pod.
pub const POLICY_VOLUME: &str = "mcp-warden-policy";
/// The name of the sidecar's admin (metrics and probes) port.
pub const ADMIN_PORT_NAME: &str = "warden-admin";

/// Native sidecar (init container, `restartPolicy: Always`) or a classic container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SidecarMode {
    /// An init container with `restartPolicy: Always` (Kubernetes ≥ 1.29).
    #[default]
    Native,
    /// A regular container (older clusters; no start/stop ordering).
    Classic,
}

/// The cluster-wide injection settings; annotations override some of them per pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The sidecar image (the same image as the webhook).
    pub image: String,
    /// `IfNotPresent`, `Always` or `Never`.
    pub image_pull_policy: String,
    /// The sidecar container's name.
    pub container_name: String,
    /// The proxy's port (it takes the server port's name).
    pub proxy_port: i32,
    /// The admin port: `/metrics`, `/healthz`, `/readyz`.
    pub admin_port: i32,
    /// Default for [`annotations::PORT`].
    pub port_name: String,
    /// Default for [`annotations::POLICY_CONFIGMAP`].
    pub policy_configmap: String,
    /// Default for [`annotations::CONFIG_FILE`].
    pub config_file: String,
    /// Default for [`annotations::UPSTREAM_PATH`].
    pub upstream_path: String,
    /// Default for [`annotations::LOG_LEVEL`].
    pub log_level: String,
    /// Default for [`annotations::SIDECAR`].
    pub mode: SidecarMode,
    /// Default resources (`cpu-request`, `memory-request`, `cpu-limit`, `memory-limit`).
    pub resources: Resources,
    /// The non-root user and group the sidecar runs as.
    pub run_as_user: i64,
}

/// Sidecar resource requests and limits (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    /// CPU request.
    pub cpu_request: Option<String>,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory request.
    pub memory_request: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
}

/// The image the manifests build (see `k8s/Dockerfile`).
pub const DEFAULT_IMAGE: &str = concat!("mcp-warden:", env!("CARGO_PKG_VERSION"));

impl Default for Template {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            container_name: "mcp-warden".to_owned(),
            proxy_port: 15100,
            admin_port: 15101,
            port_name: "mcp".to_owned(),
            policy_configmap: "mcp-warden-policy".to_owned(),
            config_file: "warden.toml".to_owned(),
            upstream_path: "/mcp".to_owned(),
            log_level: "info".to_owned(),
            mode: SidecarMode::Native,
            resources: Resources {
                cpu_request: Some("50m".to_owned()),
                cpu_limit: None,
                memory_request: Some("64Mi".to_owned()),
                memory_limit: Some("256Mi".to_owned()),
            },
            run_as_user: 65532,
        }
    }
}

/// Why a pod is left alone (not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// No `mcp-warden.dev/inject: "true"` (the webhook injects opted-in pods only).
    #[error("not opted in (no `mcp-warden.dev/inject: \"true\"` annotation)")]
    NotOptedIn,
    /// `mcp-warden.dev/inject: "false"`.
    #[error("opted out (`mcp-warden.dev/inject: \"false\"`)")]
    OptedOut,
    /// The marker annotation is present.
    #[error("already injected (`mcp-warden.dev/injected` is set)")]
    AlreadyInjected,
    /// A namespace that is never injected.
    #[error("namespace `{namespace}` is never injected")]
    ExcludedNamespace {
        /// The namespace.
        namespace: String,
    },
}

/// Why a pod that asked for the sidecar cannot get it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// No container declares a port of that name.
    #[error("no container has a port named `{port}`\n  help: name the MCP server's port `{port}`, or set the `mcp-warden.dev/port` annotation to its name")]
    NoPort {
        /// The port name looked for.
        port: String,
    },
    /// Several containers declare a port of that name.
    #[error("containers `{first}` and `{second}` both have a port named `{port}`")]
    AmbiguousPort {
        /// The port name.
        port: String,
        /// One container.
        first: String,
        /// Another.
        second: String,
    },
    /// A name the sidecar needs is taken.
    #[error("the pod already has a {what} named `{name}`")]
    NameTaken {
        /// `container`, `volume` or `port`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A port number the sidecar needs is taken.
    #[error("container `{container}` already uses port {port}\n  help: the sidecar listens on {port}; free it or change the injector's ports")]
    PortTaken {
        /// The container.
        container: String,
        /// The port.
        port: i32,
    },
    /// The pod uses the node's network.
    #[error("the pod uses `hostNetwork: true`; the sidecar would listen on the node's interfaces")]
    HostNetwork,
    /// An annotation's value is not acceptable.
    #[error("annotation `{annotation}`: `{value}` {reason}")]
    BadAnnotation {
        /// The annotation.
        annotation: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The object is not a pod (or pod template) the injector can read.
    #[error("not a pod: {message}")]
    NotAPod {
        /// What deserialization said.
        message: String,
    },
}

/// What an injection did, for the audit line and `inject`'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The MCP server's container.
    pub container: String,
    /// The port name that moved to the sidecar.
    pub port_name: String,
    /// The server port's new name.
    pub app_port_name: String,
    /// The proxy's upstream.
    pub upstream: String,
    /// Native or classic.
    pub mode: SidecarMode,
}

/// Whether a pod should be injected, before looking at its containers.
///
/// `require_opt_in`: the webhook injects only pods annotated `"true"`; manual injection
/// (`inject -f`) treats running the command as the opt-in. Both honour an explicit
/// `"false"`, the marker annotation and `excluded_namespaces`.
pub fn should_inject(
    meta: &ObjectMeta,
    namespace: Option<&str>,
    excluded_namespaces: &[String],
    require_opt_in: bool,
) -> Result<Result<(), Skip>, InjectError> {
    let annotations = meta.annotations.as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    if let Some(ns) = namespace.or(meta.namespace.as_deref()) {
        if excluded_namespaces.iter().any(|e| e == ns) {
            return Ok(Err(Skip::ExcludedNamespace {
                namespace: ns.to_owned(),
            }));
        }
    }
    if get(annotations::INJECTED).is_some() {
        return Ok(Err(Skip::AlreadyInjected));
    }
    match get(annotations::INJECT) {
        Some("false") => Ok(Err(Skip::OptedOut)),
        Some("true") => Ok(Ok(())),
        None if require_opt_in => Ok(Err(Skip::NotOptedIn)),
        None => Ok(Ok(())),
        Some(other) => Err(InjectError::BadAnnotation {
            annotation: annotations::INJECT,
            value: other.to_owned(),
            reason: "must be \"true\" or \"false\"",
        }),
    }
}

/// The per-pod settings: the template with the pod's annotations applied and checked.
#[derive(Debug, Clone)]
struct PodSettings {
    port_name: String,
    app_port_name: Option<String>,
    upstream_port: Option<i32>,
    upstream_path: String,
    volume: PolicyVolume,
    config_file: String,
    log_level: String,
    mode: SidecarMode,
    resources: Resources,
}

#[derive(Debug, Clone)]
enum PolicyVolume {
    ConfigMap(String),
    Secret(String),
}

fn pod_settings(meta: &ObjectMeta, t: &Template) -> Result<PodSettings, InjectError> {
    let empty = BTreeMap::new();
    let a = meta.annotations.as_ref().unwrap_or(&empty);
    let get = |key: &str| a.get(key).map(|v| v.trim().to_owned());
    let bad =
        |annotation: &'static str, value: &str, reason: &'static str| InjectError::BadAnnotation {
            annotation,
            value: value.to_owned(),
            reason,
        };

    let port_name = get(annotations::PORT).unwrap_or_else(|| t.port_name.clone());
    if !is_port_name(&port_name) {
        return Err(bad(
            annotations::PORT,
            &port_name,
            "is not a port name (at most 15 of a-z, 0-9, `-`, with a letter)",
        ));
    }
    let app_port_name = match get(annotations::APP_PORT_NAME) {
        Some(name) if !is_port_name(&name) => {
            return Err(bad(
                annotations::APP_PORT_NAME,
                &name,
                "is not a port name (at most 15 of a-z, 0-9, `-`, with a letter)",
            ))
        }
        other => other,
    };
    let upstream_port = match get(annotations::UPSTREAM_PORT) {
        None => None,
        Some(v) => match v.parse::<i32>() {
            Ok(p) if (1..=65535).contains(&p) => Some(p),
            _ => {
                return Err(bad(
                    annotations::UPSTREAM_PORT,
                    &v,
                    "is not a port number (1-65535)",
                ))
            }
        },
    };
    let upstream_path = get(annotations::UPSTREAM_PATH).unwrap_or_else(|| t.upstream_path.clone());
    if !upstream_path.starts_with('/')
        || !upstream_path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(bad(
            annotations::UPSTREAM_PATH,
            &upstream_path,
            "is not an absolute URL path (`/…`, no spaces, query or fragment)",
        ));
    }
    let volume = match (
        get(annotations::POLICY_CONFIGMAP),
        get(annotations::POLICY_SECRET),
    ) {
        (Some(_), Some(_)) => {
            return Err(bad(
                annotations::POLICY_SECRET,
                &get(annotations::POLICY_SECRET).unwrap_or_default(),
                "conflicts with `mcp-warden.dev/policy-configmap`: set one of them",
            ))
        }
        (None, Some(secret)) => {
            check_object_name(annotations::POLICY_SECRET, &secret)?;
            PolicyVolume::Secret(secret)
        }
        (configmap, None) => {
            let name = configmap.unwrap_or_else(|| t.policy_configmap.clone());
            check_object_name(annotations::POLICY_CONFIGMAP, &name)?;
            PolicyVolume::ConfigMap(name)
        }
    };
    let config_file = get(annotations::CONFIG_FILE).unwrap_or_else(|| t.config_file.clone());
    if config_file.is_empty()
        || config_file.starts_with('/')
        || config_file
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == ".." || part.starts_with(".."))
        || !config_file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        return Err(bad(
            annotations::CONFIG_FILE,
            &config_file,
            "is not a relative file name inside the policy volume",
        ));
    }
    let log_level = get(annotations::LOG_LEVEL).unwrap_or_else(|| t.log_level.clone());
    if !["trace", "debug", "info", "warn", "error"].contains(&log_level.as_str()) {
        return Err(bad(
            annotations::LOG_LEVEL,
            &log_level,
            "must be trace, debug, info, warn or error",
        ));
    }
    let mode = match get(annotations::SIDECAR).as_deref() {
        None => t.mode,
        Some("native") => SidecarMode::Native,
        Some("classic") => SidecarMode::Classic,
        Some(other) => {
            return Err(bad(
                annotations::SIDECAR,
                other,
                "must be \"native\" or \"classic\"",
            ))
        }
    };
    let mut resources = t.resources.clone();
    for (key, slot) in [
        (annotations::CPU_REQUEST, &mut resources.cpu_request),
        (annotations::CPU_LIMIT, &mut resources.cpu_limit),
        (annotations::MEMORY_REQUEST, &mut resources.memory_request),
        (annotations::MEMORY_LIMIT, &mut resources.memory_limit),
    ] {
        if let Some(v) = get(key) {
            if !is_quantity(&v) {
                return Err(bad(
                    key,
                    &v,
                    "is not a Kubernetes quantity (e.g. `100m`, `128Mi`)",
                ));
            }
            *slot = Some(v);
        }
    }
    Ok(PodSettings {
        port_name,
        app_port_name,
        upstream_port,
        upstream_path,
        volume,
        config_file,
        log_level,
        mode,
        resources,
    })
}

/// An IANA service name as Kubernetes checks port names: 1–15 characters of `a-z0-9-`,
/// at least one letter, no leading, trailing or doubled `-`.
pub fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A DNS-1123 subdomain (ConfigMap and Secret names).
fn check_object_name(annotation: &'static str, name: &str) -> Result<(), InjectError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(InjectError::BadAnnotation {
            annotation,
            value: name.to_owned(),
            reason: "is not a ConfigMap/Secret name (lowercase DNS subdomain)",
        })
    }
}

/// A Kubernetes quantity in the common forms (`100m`, `0.5`, `128Mi`, `1G`, `1e3`).
fn is_quantity(v: &str) -> bool {
    let digits_end = v
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(v.len());
    let (number, suffix) = v.split_at(digits_end);
    let number_ok =
        !number.is_empty() && number.bytes().filter(|&b| b == b'.').count() <= 1 && number != ".";
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || (suffix.len() > 1
        && (suffix.starts_with('e') || suffix.starts_with('E'))
        && suffix[1..].bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}

/// Every container of the pod, init and ephemeral ones included, for name checks.
fn all_container_names(spec: &PodSpec) -> impl Iterator<Item = &str> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str()),
        )
}

fn ports_of(c: &Container) -> impl Iterator<Item = &ContainerPort> {
    c.ports.iter().flatten()
}

/// Inject the sidecar into `meta` and `spec` (see the module docs). On error nothing
/// has been changed.
pub fn inject(
    meta: &mut ObjectMeta,
    spec: &mut PodSpec,
    template: &Template,
) -> Result<Injected, InjectError> {
    let settings = pod_settings(meta, template)?;
    if spec.host_network == Some(true) {
        return Err(InjectError::HostNetwork);
    }
    if all_container_names(spec).any(|n| n == template.container_name) {
        return Err(InjectError::NameTaken {
            what: "container",
            name: template.container_name.clone(),
        });
    }
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == POLICY_VOLUME)
    {
        return Err(InjectError::NameTaken {
            what: "volume",
            name: POLICY_VOLUME.to_owned(),
        });
    }

    // The MCP server's container and port (exactly one).
    let mut found: Option<(usize, usize)> = None;
    for (ci, c) in spec.containers.iter().enumerate() {
        for (pi, p) in ports_of(c).enumerate() {
            if p.name.as_deref() == Some(settings.port_name.as_str()) {
                if let Some((first, _)) = found {
                    return Err(InjectError::AmbiguousPort {
                        port: settings.port_name.clone(),
                        first: spec.containers[first].name.clone(),
                        second: c.name.clone(),
                    });
                }
                found = Some((ci, pi));
            }
        }
    }
    let (ci, pi) = found.ok_or_else(|| InjectError::NoPort {
        port: settings.port_name.clone(),
    })?;
    let app_port = spec.containers[ci]
        .ports
        .as_ref()
        .map(|ports| ports[pi].container_port)
        .unwrap_or_default();
    let upstream_port = settings.upstream_port.unwrap_or(app_port);

    let app_port_name = settings.app_port_name.clone().unwrap_or_else(|| {
        let candidate = format!("{}-app", settings.port_name);
        if candidate.len() <= 15 {
            candidate
        } else {
            "mcp-app".to_owned()
        }
    });
    for (what, name) in [("port", app_port_name.as_str()), ("port", ADMIN_PORT_NAME)] {
        let taken = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(ports_of)
            .any(|p| p.name.as_deref() == Some(name));
        if taken || (name == app_port_name && name == settings.port_name) {
            return Err(InjectError::NameTaken {
                what,
                name: name.to_owned(),
            });
        }
    }
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for p in ports_of(c) {
            if p.container_port == template.proxy_port || p.container_port == template.admin_port {
                return Err(InjectError::PortTaken {
                    container: c.name.clone(),
                    port: p.container_port,
                });
            }
        }
    }
    if upstream_port == template.proxy_port || upstream_port == template.admin_port {
        return Err(InjectError::PortTaken {
            container: spec.containers[ci].name.clone(),
            port: upstream_port,
        });
    }

    // All checks passed: change the pod.
    let server = &mut spec.containers[ci];
    if let Some(ports) = server.ports.as_mut() {
        ports[pi].name = Some(app_port_name.clone());
    }
    rename_probe_ports(server, &settings.port_name, &app_port_name);
    let container_name = server.name.clone();

    let upstream = format!("http://127.0.0.1:{upstream_port}{}", settings.upstream_path);
    let sidecar = sidecar_container(template, &settings, &upstream);
    match settings.mode {
        SidecarMode::Native => spec
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(sidecar),
        SidecarMode::Classic => spec.containers.push(sidecar),
    }
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: POLICY_VOLUME.to_owned(),
        config_map: match &settings.volume {
            PolicyVolume::ConfigMap(name) => Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..Default::default()
            }),
            PolicyVolume::Secret(_) => None,
        },
        secret: match &settings.volume {
            PolicyVolume::Secret(name) => Some(SecretVolumeSource {
                secret_name: Some(name.clone()),
                ..Default::default()
            }),
            PolicyVolume::ConfigMap(_) => None,
        },
        ..Default::default()
    });

    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(
        annotations::INJECTED.to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    if !annotations.contains_key(annotations::PROMETHEUS_SCRAPE) {
        annotations.insert(annotations::PROMETHEUS_SCRAPE.to_owned(), "true".to_owned());
        annotations.insert(
            annotations::PROMETHEUS_PORT.to_owned(),
            template.admin_port.to_string(),
        );
        annotations.insert(
            annotations::PROMETHEUS_PATH.to_owned(),
            "/metrics".to_owned(),
        );
    }
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::INJECTED.to_owned(), "true".to_owned());

    Ok(Injected {
        container: container_name,
        port_name: settings.port_name,
        app_port_name,
        upstream,
        mode: settings.mode,
    })
}

/// Point the server's own probes and hooks that named the moved port at its new name.
fn rename_probe_ports(c: &mut Container, old: &str, new: &str) {
    let rename = |port: &mut IntOrString| {
        if matches!(port, IntOrString::String(s) if s == old) {
            *port = IntOrString::String(new.to_owned());
        }
    };
    for probe in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(h) = probe.http_get.as_mut() {
            rename(&mut h.port);
        }
        if let Some(t) = probe.tcp_socket.as_mut() {
            rename(&mut t.port);
        }
    }
    if let Some(lifecycle) = c.lifecycle.as_mut() {
        for handler in [lifecycle.post_start.as_mut(), lifecycle.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(h) = handler.http_get.as_mut() {
                rename(&mut h.port);
            }
            if let Some(t) = handler.tcp_socket.as_mut() {
                rename(&mut t.port);
            }
        }
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(ADMIN_PORT_NAME.to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

fn sidecar_container(t: &Template, s: &PodSettings, upstream: &str) -> Container {
    let env = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..Default::default()
    };
    let quantities = |pairs: [(&str, &Option<String>); 2]| {
        let map: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(key, value)| {
                value
                    .as_ref()
                    .map(|v| (key.to_owned(), Quantity(v.clone())))
            })
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let requests = quantities([
        ("cpu", &s.resources.cpu_request),
        ("memory", &s.resources.memory_request),
    ]);
    let limits = quantities([
        ("cpu", &s.resources.cpu_limit),
        ("memory", &s.resources.memory_limit),
    ]);
    Container {
        name: t.container_name.clone(),
        image: Some(t.image.clone()),
        image_pull_policy: Some(t.image_pull_policy.clone()),
        args: Some(vec![
            "run".to_owned(),
            "--config".to_owned(),
            format!("{POLICY_MOUNT}/{}", s.config_file),
        ]),
        env: Some(vec![
            env("MCP_WARDEN__LISTEN", format!("0.0.0.0:{}", t.proxy_port)),
            env("MCP_WARDEN__UPSTREAM", upstream.to_owned()),
            env(
                "MCP_WARDEN__ADMIN__LISTEN",
                format!("0.0.0.0:{}", t.admin_port),
            ),
            env("MCP_WARDEN__LOG__LEVEL", s.log_level.clone()),
            env("MCP_WARDEN_LOG_FORMAT", "json".to_owned()),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some(s.port_name.clone()),
                container_port: t.proxy_port,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            },
            ContainerPort {
                name: Some(ADMIN_PORT_NAME.to_owned()),
                container_port: t.admin_port,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            },
        ]),
        restart_policy: match s.mode {
            SidecarMode::Native => Some("Always".to_owned()),
            SidecarMode::Classic => None,
        },
        // Started = serving (policies are loaded before the listeners open). Not
        // `/readyz`: that needs the MCP server, which a native sidecar's startup blocks.
        startup_probe: Some(http_probe("/healthz", 1, 120)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        resources: Some(ResourceRequirements {
            requests,
            limits,
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(t.run_as_user),
            run_as_group: Some(t.run_as_user),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: POLICY_VOLUME.to_owned(),
            mount_path: POLICY_MOUNT.to_owned(),
            read_only: Some(true),
            ..Default::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Default::default()
    }
}

/// The JSON Patch that injects a pod template (`{"metadata": …, "spec": …}`, which is
/// also the shape of a Pod's top level). The diff is between the typed object before
/// and after [`inject`], both serialized the same way, so fields this version of the
/// Kubernetes types does not know are never touched by the patch.
pub fn template_patch(
    meta: &ObjectMeta,
    spec: &PodSpec,
    template: &Template,
) -> Result<(json_patch::Patch, Injected), InjectError> {
    let mut new_meta = meta.clone();
    let mut new_spec = spec.clone();
    let injected = inject(&mut new_meta, &mut new_spec, template)?;
    let before = as_template_value(meta, spec)?;
    let after = as_template_value(&new_meta, &new_spec)?;
    Ok((json_patch::diff(&before, &after), injected))
}

fn as_template_value(meta: &ObjectMeta, spec: &PodSpec) -> Result<serde_json::Value, InjectError> {
    let not_a_pod = |e: serde_json::Error| InjectError::NotAPod {
        message: e.to_string(),
    };
    Ok(serde_json::json!({
        "metadata": serde_json::to_value(meta).map_err(not_a_pod)?,
        "spec": serde_json::to_value(spec).map_err(not_a_pod)?,
    }))
}

/// Read `{"metadata": …, "spec": …}` (a Pod or a pod template) as typed values.
pub fn read_template(value: &serde_json::Value) -> Result<(ObjectMeta, PodSpec), InjectError> {
    let not_a_pod = |e: serde_json::Error| InjectError::NotAPod {
        message: e.to_string(),
    };
    let meta = match value.get("metadata") {
        Some(m) => serde_json::from_value(m.clone()).map_err(not_a_pod)?,
        None => ObjectMeta::default(),
    };
    let spec = value
        .get("spec")
        .ok_or_else(|| InjectError::NotAPod {
            message: "no `spec`".to_owned(),
        })
        .and_then(|s| serde_json::from_value(s.clone()).map_err(not_a_pod))?;
    Ok((meta, spec))
}

#[cfg(test)]
mod tests;
