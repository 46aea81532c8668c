//! Physical endpoint provider for the VDI broker gateway.
//!
//! Intune-managed Windows devices get a container version through the same gateway-owned
//! Entra group and required Win32 app as Enterprise Cloud PCs. Unmanaged devices, and
//! agent-first ones when configured, get it through the agent channel; their agents register
//! them on first check-in. Devices are grouped into device-group targets by configured rules
//! (name prefix, agent labels).
//!
//! Layout: `config` (settings and rules), `inventory` (devices, states, rule matching) and
//! `provider` (the trait).

#![forbid(unsafe_code)]

pub mod config;
pub mod inventory;
pub mod provider;

pub use config::{DeviceGroupRule, PhysicalConfig};
pub use provider::PhysicalProvider;
