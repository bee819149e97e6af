#![doc = include_str!("../README.md")]
//!
//! ## The code, one hop each
//!
//! - Where is a `tools/call` decided? [`exchange::verdict::authorize_body`] asks
//!   [`policy::PolicyEngine::decide`] for every message of a body; [`exchange`] shows the
//!   whole path of one request (admission, decision, answer filtering) and
//!   [`exchange::refusal`] every error a client can get.
//! - [`proxy`] is the Pingora glue only: callbacks, body reader, listeners, drain, admin.
//! - [`mcp`] parses and classifies JSON-RPC; [`auth`] turns credentials into an
//!   [`auth::Identity`]; [`policy`] holds the Cedar and Biscuit engines and hot reload;
//!   [`taint`] tracks sensitive reads; [`audit`] and [`metrics`] record; [`config`]
//!   reads the configuration; [`demo`] is the bundled demo backend; [`k8s`] injects the
//!   sidecar into Kubernetes pods (`inject`, `webhook`); [`tls`] serves rustls with
//!   certificate reload.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod biscuit;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod k8s;
pub mod mcp;
pub mod metrics;
pub mod pins;
pub mod policy;
pub mod proxy;
pub mod schema;
pub mod state;
pub mod taint;
pub mod tls;

#[cfg(test)]
mod module_graph;
#[cfg(test)]
mod testing;
