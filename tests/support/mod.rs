//! Test support shared by the integration tests (`tests/it/`; see `tests/README.md`).
//!
//! - [`audit`]: reading the proxy's audit log.
//! - [`certs`]: a test CA and the server, client and SPIFFE certificates it signs.
//! - [`upstream`]: a real rmcp MCP server that records what reaches it.
//! - [`client`]: the rmcp Streamable HTTP client, for either protocol lifecycle.
//! - [`h2`]: one HTTP/2 connection (h2c or TLS), requests as streams on it.
//! - [`http`]: plain HTTP requests, for what the rmcp client would never send.
//! - [`interop`]: the official Python SDK client and the TypeScript server-everything.
//! - [`warden`]: the real `mcp-warden` binary with a generated configuration.
//! - [`fake`]: a scriptable hostile upstream for shapes real servers won't produce.
//! - [`tls_front`]: TLS (and mTLS) in front of a real upstream.
//! - [`tokens`]: JWTs signed with the test configurations' secret.
//! - [`biscuit`]: Biscuit keys and tokens made with the real CLI.
//! - [`postgres`]: a throw-away PostgreSQL database per test.
//! - [`demo`]: the demo backend on such a database, alone or behind the proxy.
//! - [`redis`]: the shared Redis with a key prefix per test, or a `redis-server` of the test's own.
//! - [`wait`]: waiting for an event (never for a time) with a deadline that only bounds a hang.
//! - [`walkthrough`]: a book page's shell walkthrough, run as written.

// A test file outside `tests/it/` may still include this module (`mod support;`) and
// use a subset of it.
#![allow(dead_code)]

pub mod audit;
pub mod biscuit;
pub mod certs;
pub mod client;
pub mod demo;
pub mod fake;
pub mod h2;
pub mod http;
pub mod interop;
pub mod postgres;
pub mod redis;
pub mod tls_front;
pub mod tokens;
pub mod upstream;
pub mod wait;
pub mod walkthrough;
pub mod warden;
