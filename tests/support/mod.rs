//! Test support shared by the integration-test binaries (`mod support;` in each).
//!
//! - [`upstream`]: a real rmcp MCP server that records what reaches it.
//! - [`client`]: the rmcp Streamable HTTP client, for either protocol lifecycle.
//! - [`interop`]: the official Python SDK client and the TypeScript server-everything.

// Each test binary uses a different subset.
#![allow(dead_code)]

pub mod client;
pub mod interop;
pub mod upstream;
