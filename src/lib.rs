#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod config;
pub mod demo;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod state;
pub mod taint;
