//! Configuration of the agent fleet simulator.

use std::collections::BTreeMap;
use std::time::Duration;

use super::wire::ReportedSession;

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
    /// User sessions open on each machine at start; machines not listed have none. Change
    /// them at run time with [`AgentFleet::set_sessions`](super::AgentFleet::set_sessions).
    pub sessions: BTreeMap<String, Vec<ReportedSession>>,
    /// Machines whose agents leave `sessions` out of their reports, as agents older than
    /// session reporting do.
    pub unreported_sessions: Vec<String>,
    /// Maximum time between two reports of one agent. After a 304 the agent sends a check-in
    /// (a report with no containers) once this has passed, or at once when its sessions
    /// changed. Default 60 s.
    pub report_interval: Duration,
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
            sessions: BTreeMap::new(),
            unreported_sessions: Vec::new(),
            report_interval: Duration::from_secs(60),
        }
    }
}

impl AgentFleetConfig {
    /// Returns the sessions `machine` starts with: `None` when its agent does not report
    /// sessions.
    pub(crate) fn initial_sessions(&self, machine: &str) -> Option<Vec<ReportedSession>> {
        if self.unreported_sessions.iter().any(|m| m == machine) {
            return None;
        }
        Some(self.sessions.get(machine).cloned().unwrap_or_default())
    }
}
