//! Example broker plugin for the VDI broker gateway. It drives the Portal API, a small REST
//! inventory-and-publish API (described in `model.rs`): groups of machines are targets, a
//! container version is an app named `vdigw:{container}@{version}` published to a group, and
//! placing it assigns the app to machines.
//!
//! Built as a `cdylib`, it is loaded by the gateway through `export_provider!`; built as an
//! `rlib`, tests use [`PortalProvider`] and [`sim::PortalSim`] directly. Layout: `config`
//! (settings), `model` (wire types), `client` (typed calls, API key, endpoint guard),
//! `provider` (the trait, inventory, publishing), `placement`, `sim` (simulator) and `plugin`
//! (exports).

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod model;
mod placement;
pub mod plugin;
pub mod provider;
pub mod sim;

pub use config::PortalConfig;
pub use provider::{PortalProvider, KIND};

vdi_plugin_sdk::export_provider! {
    kinds: [provider::KIND],
    factory: plugin::build,
    simulator: plugin::simulator,
}
