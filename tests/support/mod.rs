//! Test support shared by the integration-test binaries (`mod support;` in each).
//!
//! - [`audit`]: reading the proxy's audit log.
//! - [`upstream`]: a real rmcp MCP server that records what reaches it.
//! - [`client`]: the rmcp Streamable HTTP client, for either protocol lifecycle.
//! - [`interop`]: the official Python SDK client and the TypeScript server-everything.
//! - [`warden`]: the real `mcp-warden` binary with a generated configuration.
//! - [`fake`]: a scriptable hostile upstream for shapes real servers won't produce.
//! - [`tokens`]: JWTs signed with the test configurations' secret.
//! - [`biscuit`]: Biscuit keys and tokens made with the real CLI.
//! - [`postgres`]: a throw-away PostgreSQL database per test.
//! - [`demo`]: the demo backend on such a database, alone or behind the proxy.
//! - [`redis`]: the shared Redis with a key prefix per test, or a `redis-server` of the test's own.

// Each test binary uses a different subset.
#![allow(dead_code)]

pub mod audit;
pub mod biscuit;
pub mod client;
pub mod demo;
pub mod fake;
pub mod interop;
pub mod postgres;
pub mod redis;
pub mod tokens;
pub mod upstream;
pub mod warden;
