//! The VDI broker integration gateway: API, engine, store and CLI.

pub mod cli;
pub mod config;
pub mod engine;
pub mod model;
pub mod store;

#[cfg(test)]
pub(crate) mod testing;
