//! Kubernetes: injecting the mcp-warden sidecar into MCP server pods.
//!
//! One pure function does the work, [`inject::inject`]: pod metadata and spec plus an
//! injection [`Template`] → the pod with the sidecar (the server's named port moved to
//! the proxy, probes kept on the server, policies mounted from a ConfigMap). Two entry
//! points call it:
//!
//! - `mcp-warden inject -f FILE` ([`manifest`]): manual injection of multi-document YAML
//!   (Pods and the workloads that hold pod templates), like `linkerd inject --manual`;
//! - `mcp-warden webhook` ([`admission`], [`server`]): a mutating admission webhook that
//!   answers `AdmissionReview` v1 over HTTPS with a JSON Patch computed by diff.
//!
//! The manifests that install the webhook are under `k8s/`; the operator's guide is
//! `docs/src/kubernetes.md`. Nothing here touches Pingora.

pub mod admission;
pub mod cli;
pub mod inject;
pub mod manifest;
pub mod server;

pub use admission::{review, OnError, WebhookSettings};
pub use cli::{InjectArgs, WebhookArgs};
pub use inject::{inject, template_patch, InjectError, Injected, SidecarMode, Skip, Template};
