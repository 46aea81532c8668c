//! Command-line interface: client commands, the demo, the benchmark and what they share.

pub mod bench;
pub mod client;
pub mod demo;
mod harness;
