//! The integration tests: one binary (`cargo test --test it`), so the crate and its
//! dependencies are linked once, not once per file. Each module is one topic; shared helpers
//! (real servers, clients, the proxy binary) are in `tests/support/`. See `tests/README.md`.

#[path = "../support/mod.rs"]
mod support;

mod admin_tls;
mod biscuit;
mod biscuit_interop;
mod book;
mod bypass;
mod connections;
mod decision_labels;
mod demo;
mod demo_rls;
mod faults;
mod filter_props;
mod filter_repeats;
mod h2;
mod interop;
mod k8s;
mod listeners;
mod new_user;
mod oauth;
mod operations;
mod pinning;
mod proxy;
mod replicas;
mod soak;
mod taint;
mod tasks;
mod tls;
mod upstream_smoke;
