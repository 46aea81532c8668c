//! Omnissa (VMware) Horizon provider for the VDI broker gateway, on the Horizon Server REST
//! API. It publishes container versions as application pools on RDS farms and on desktop
//! pools with application sessions, and entitles them to the pool's users and groups. It
//! places versions on machines through the gateway's agent channel. The endpoint guard blocks
//! image pushes, machine reset, restart, rebuild, recover and delete, and session logoff and
//! disconnect.
//!
//! Layout: `config` (settings), `auth` (login, refresh, logout), `client` (version probing,
//! paging, filters, entitlements), `model` (wire types), `error` (response and bulk item
//! classification), `guard` (the deny-list), `inventory` (targets, machines, states),
//! `publish` (application pools) and `provider` (the trait and agent placement).

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod guard;
pub mod inventory;
pub mod model;
pub mod provider;
pub mod publish;

pub use config::HorizonConfig;
pub use provider::HorizonProvider;
