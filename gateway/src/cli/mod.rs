//! Command-line interface.

pub mod client;
