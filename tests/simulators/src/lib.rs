//! Stateful simulators of broker management APIs for end-to-end tests, benchmarks and the demo.
//!
//! Each simulator is an axum server on a loopback port with a seeded fleet, fault knobs and
//! call counters. The `common` module holds the parts every simulator shares.

#![forbid(unsafe_code)]

pub mod agent;
pub mod citrix;
pub mod cli;
pub mod common;
pub mod graph;
pub mod horizon;
