//! Citrix provider for the VDI broker gateway: publishes container versions as applications on
//! Citrix DaaS (cloud) and CVAD (on-premises) sites, and places them on machines with tags,
//! through the Orchestration REST API. It never changes images, power state or sessions.
//!
//! Layout: `config` (settings), `auth` (tokens and Citrix headers), `client` (typed calls,
//! jobs, `$batch`), `model` (wire types), `error` (response classification), `guard` (the
//! deny-list), `naming` (derived names), `provider` (the trait and inventory), `publish` and
//! `placement`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod guard;
pub mod model;
pub mod naming;
mod placement;
mod plan;
pub mod provider;
mod publish;

pub use config::{CitrixConfig, Mode};
pub use provider::CitrixProvider;
