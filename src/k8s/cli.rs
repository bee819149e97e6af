//! The `inject` and `webhook` subcommands: their arguments and what they run.

use anyhow::Context as _;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::admission::{OnError, WebhookSettings};
use super::inject::{SidecarMode, Template};
use super::server::{Server, ServerSettings};
use crate::tls::CertFiles;

/// The injection template's settings, shared by `inject` and `webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateArgs {
    /// The sidecar image.
    #[arg(long, env = "MCP_WARDEN_SIDECAR_IMAGE", default_value = super::inject::DEFAULT_IMAGE)]
    pub image: String,
    /// The sidecar's image pull policy.
    #[arg(long, default_value = "IfNotPresent", value_parser = ["IfNotPresent", "Always", "Never"])]
    pub image_pull_policy: String,
    /// `native` (init container with `restartPolicy: Always`, Kubernetes ≥ 1.29) or
    /// `classic` (a regular container); pods override it with `mcp-warden.dev/sidecar`.
    #[arg(long, value_enum, default_value = "native")]
    pub sidecar_mode: SidecarMode,
    /// The proxy's port in the pod (it takes the MCP server port's name).
    #[arg(long, default_value_t = 15100)]
    pub proxy_port: i32,
    /// The sidecar's admin port (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, default_value_t = 15101)]
    pub admin_port: i32,
    /// Default name of the MCP server's port (`mcp-warden.dev/port`).
    #[arg(long, default_value = "mcp")]
    pub port_name: String,
    /// Default policy ConfigMap (`mcp-warden.dev/policy-configmap`).
    #[arg(long, default_value = "mcp-warden-policy")]
    pub policy_configmap: String,
    /// Default configuration file in it (`mcp-warden.dev/config-file`).
    #[arg(long, default_value = "warden.toml")]
    pub config_file: String,
    /// Default MCP endpoint path (`mcp-warden.dev/upstream-path`).
    #[arg(long, default_value = "/mcp")]
    pub upstream_path: String,
    /// Default proxy log level (`mcp-warden.dev/log-level`).
    #[arg(long, default_value = "info")]
    pub sidecar_log_level: String,
}

impl TemplateArgs {
    /// The template these arguments describe.
    pub fn template(&self) -> anyhow::Result<Template> {
        for (flag, port) in [
            ("--proxy-port", self.proxy_port),
            ("--admin-port", self.admin_port),
        ] {
            if !(1..=65535).contains(&port) {
                anyhow::bail!("{flag} {port}: not a port number");
            }
        }
        if self.proxy_port == self.admin_port {
            anyhow::bail!("--proxy-port and --admin-port must differ");
        }
        if !super::inject::is_port_name(&self.port_name) {
            anyhow::bail!("--port-name `{}`: not a port name", self.port_name);
        }
        Ok(Template {
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            proxy_port: self.proxy_port,
            admin_port: self.admin_port,
            port_name: self.port_name.clone(),
            policy_configmap: self.policy_configmap.clone(),
            config_file: self.config_file.clone(),
            upstream_path: self.upstream_path.clone(),
            log_level: self.sidecar_log_level.clone(),
            mode: self.sidecar_mode,
            ..Template::default()
        })
    }
}

/// `mcp-warden inject`: add the sidecar to Kubernetes YAML (manual injection).
#[derive(Debug, Clone, clap::Args)]
pub struct InjectArgs {
    /// A YAML file (one or more documents); `-` for standard input.
    #[arg(long, short)]
    pub file: PathBuf,
    /// Namespaces never injected (repeatable).
    #[arg(long = "exclude-namespace", default_value = "kube-system")]
    pub exclude_namespaces: Vec<String>,
    /// The injection template.
    #[command(flatten)]
    pub template: TemplateArgs,
}

/// `mcp-warden webhook`: the mutating admission webhook, over HTTPS.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address to listen on (port 0: any; the chosen address is logged).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Serving certificate chain (PEM); reloaded when it changes.
    #[arg(long, default_value = "/etc/mcp-warden/tls/tls.crt")]
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, default_value = "/etc/mcp-warden/tls/tls.key")]
    pub tls_key: PathBuf,
    /// Largest AdmissionReview body accepted.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// What to do with an opted-in pod that cannot be injected: `deny` (default) or
    /// `allow` it without the sidecar (with a warning).
    #[arg(long, value_enum, default_value = "deny")]
    pub on_error: OnError,
    /// The webhook's own namespace, never injected.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Other namespaces never injected (repeatable).
    #[arg(long = "exclude-namespace", default_value = "kube-system")]
    pub exclude_namespaces: Vec<String>,
    /// How long SIGTERM waits for requests in flight.
    #[arg(long, default_value = "10s")]
    pub drain: humantime::Duration,
    /// The injection template.
    #[command(flatten)]
    pub template: TemplateArgs,
}

/// Run `inject`: the injected YAML on standard output, a line per object on standard error.
pub fn run_inject(args: &InjectArgs) -> anyhow::Result<()> {
    let template = args.template.template()?;
    let yaml = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("{}: cannot read", args.file.display()))?
    };
    let (out, reports) = super::manifest::inject_yaml(&yaml, &template, &args.exclude_namespaces)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    for report in reports {
        eprintln!("{report}");
    }
    print!("{out}");
    Ok(())
}

/// Run `webhook` until SIGTERM or SIGINT.
pub fn run_webhook(args: &WebhookArgs) -> anyhow::Result<()> {
    let template = args.template.template()?;
    let mut excluded = args.exclude_namespaces.clone();
    if let Some(ns) = &args.namespace {
        excluded.push(ns.clone());
    }
    let settings = WebhookSettings {
        template,
        on_error: args.on_error,
        excluded_namespaces: excluded,
    };
    let server_settings = ServerSettings {
        listen: args.listen,
        cert: CertFiles {
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
        },
        max_body_bytes: args.max_body_bytes,
        drain: *args.drain,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        let server = Server::bind(server_settings, settings)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let addr = server.local_addr()?;
        tracing::info!(%addr, on_error = ?args.on_error, "webhook listening (https)");
        server
            .run(async {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            })
            .await;
        Ok(())
    })
}
