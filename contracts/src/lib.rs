//! Contracts between the VDI broker integration gateway and its providers: the domain model,
//! the async [`Provider`] trait, the error kinds and a conformance suite every provider passes.

#![warn(missing_docs)]
// `unsafe` is denied here and allowed only in `abi`, the plugin ABI, the one module of the
// workspace that needs it; every other crate root forbids it.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod abi;
pub mod agent;
pub mod conformance;
mod error;
pub mod model;
mod provider;

pub use agent::{AgentChannel, AgentContainerState, AgentMachine, AgentReport, MemoryAgentChannel};
pub use error::{ErrorKind, ProviderError, ProviderResult};
pub use model::*;
pub use provider::{undescribed_plan, Capability, Description, Limits, Provider};
