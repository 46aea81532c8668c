//! Configuration of the agent fleet simulator.

use std::time::Duration;

/// Settings of an [`AgentFleet`](super::AgentFleet).
#[derive(Debug, Clone)]
pub struct AgentFleetConfig {
    /// Base URL of the gateway, for example `http://127.0.0.1:8080`; the agents append
    /// `/v1/agent/...`.
    pub gateway_url: String,
    /// Agent token sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// Machine ids, one agent each, as the provider lists them.
    pub machines: Vec<String>,
    /// Pause between two polls of the same agent; default 500 ms.
    pub poll_interval: Duration,
    /// Simulated time to install the containers of one desired-state change; default 50 ms.
    pub install_delay: Duration,
    /// Machines whose agents report every desired container as `failed`.
    pub fail_machines: Vec<String>,
    /// Maximum number of requests in flight across the fleet; default 32.
    pub max_in_flight: usize,
}

impl Default for AgentFleetConfig {
    fn default() -> Self {
        Self {
            gateway_url: "http://127.0.0.1:8080".to_string(),
            token: String::new(),
            machines: Vec::new(),
            poll_interval: Duration::from_millis(500),
            install_delay: Duration::from_millis(50),
            fail_machines: Vec::new(),
            max_in_flight: 32,
        }
    }
}
