//! Windows 365 provider for the VDI broker gateway, on Microsoft Graph.
//!
//! Targets are Cloud PC groups: the Cloud PCs of a provisioning policy (`policy:{id}`, read
//! only) or of a configured Entra group (`group:{id}`). Enterprise Cloud PCs get a container
//! version through a gateway-owned Entra group and a required Win32 app (restart suppressed);
//! Business Cloud PCs, which have no Intune managed device, through the gateway's agent
//! channel. Only provisioned Cloud PCs are changed; the rest are reported as excluded.
//!
//! Layout: `config` (settings), `beta` (the one module that reads Graph beta), `inventory`
//! (targets, Cloud PCs, states) and `provider` (the trait).

#![forbid(unsafe_code)]

pub mod beta;
pub mod config;
pub mod inventory;
pub mod provider;

pub use config::Windows365Config;
pub use provider::Windows365Provider;
