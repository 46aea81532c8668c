//! The VDI broker integration gateway: API, engine, store and CLI.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]
#![forbid(unsafe_code)]

pub mod agents;
pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod model;
pub mod plugins;
pub mod providers;
pub mod server;
pub mod store;
pub mod telemetry;

#[cfg(test)]
pub(crate) mod testing;
