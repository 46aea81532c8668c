//! The VDI broker integration gateway: API, engine, store and CLI.

pub mod cli;
pub mod config;
pub mod model;
pub mod store;
