//! Simulator of a fleet of in-guest agents that speak the gateway's agent channel.
//!
//! Each agent polls `GET {gateway}/v1/agent/desired?machine=ID` with its last `ETag` in
//! `If-None-Match`. On 200 it waits `install_delay`, "installs" every listed container,
//! removes the containers no longer listed and sends `POST {gateway}/v1/agent/report`,
//! expecting 204. On 304 it sends a check-in (a report with no containers) only when its
//! machine's sessions changed or `report_interval` has passed. Every report carries the
//! machine's user sessions, except from agents configured to leave them out. Failed polls and
//! reports are counted and retried on the next poll, because the agent keeps its old `ETag`
//! until a report succeeds.
//!
//! ```no_run
//! # async fn demo() {
//! use broker_sim::agent::{AgentFleet, AgentFleetConfig};
//! let fleet = AgentFleet::start(AgentFleetConfig {
//!     gateway_url: "http://127.0.0.1:8080".into(),
//!     token: "agent-token".into(),
//!     machines: vec!["EHR-IC-001".into()],
//!     ..AgentFleetConfig::default()
//! });
//! println!("{:?}", fleet.installed());
//! fleet.stop().await;
//! # }
//! ```

mod config;
mod poll;
mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::AgentFleetConfig;
pub use self::wire::{DesiredContainer, DesiredState, Report, ReportedContainer, ReportedSession};

use self::poll::{worker, FleetShared};

/// Request counts of an [`AgentFleet`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentCounters {
    /// `GET /v1/agent/desired` requests sent, whatever their outcome.
    pub polls: u64,
    /// Polls that got 304.
    pub not_modified: u64,
    /// Reports after a 200 poll that got 204.
    pub reports: u64,
    /// Check-ins after a 304 poll (reports without containers, for the sessions) that got 204.
    pub check_ins: u64,
    /// Failed polls and reports: transport errors, unexpected status codes and bodies.
    pub errors: u64,
}

/// A running fleet of simulated agents.
///
/// Dropping it aborts the agents; [`AgentFleet::stop`] lets them finish their current
/// request first.
#[derive(Debug)]
pub struct AgentFleet {
    shared: Arc<FleetShared>,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl AgentFleet {
    /// Starts the agents: `max_in_flight` worker tasks (at least one, at most one per
    /// machine) that poll their share of the machines in turn, so at most `max_in_flight`
    /// requests are open at once.
    ///
    /// Must be called inside a tokio runtime.
    pub fn start(config: AgentFleetConfig) -> Self {
        let shared = Arc::new(FleetShared::new(config));
        let (stop, stopped) = watch::channel(false);
        let machines = shared.config.machines.len();
        let workers = shared.config.max_in_flight.clamp(1, machines.max(1));
        let handles = (0..workers)
            .map(|index| {
                let assigned: Vec<String> = shared
                    .config
                    .machines
                    .iter()
                    .skip(index)
                    .step_by(workers)
                    .cloned()
                    .collect();
                tokio::spawn(worker(shared.clone(), assigned, stopped.clone()))
            })
            .collect();
        tracing::info!(
            gateway = %shared.config.gateway_url,
            machines,
            workers,
            "Agent fleet started"
        );
        Self {
            shared,
            stop,
            workers: handles,
        }
    }

    /// Returns the containers each machine has installed, as `(container id, version)`
    /// sorted by id; every configured machine is present.
    pub fn installed(&self) -> BTreeMap<String, Vec<(String, String)>> {
        self.shared
            .lock_agents()
            .iter()
            .map(|(machine, agent)| {
                let containers = agent
                    .installed
                    .iter()
                    .map(|(id, version)| (id.clone(), version.clone()))
                    .collect();
                (machine.clone(), containers)
            })
            .collect()
    }

    /// Replaces the sessions open on `machine`; `None` makes its agent leave sessions out of
    /// its reports. The agent reports the change after its next poll. Returns false when the
    /// machine is not in the fleet.
    pub fn set_sessions(&self, machine: &str, sessions: Option<Vec<ReportedSession>>) -> bool {
        match self.shared.lock_agents().get_mut(machine) {
            Some(agent) => {
                agent.sessions = sessions;
                true
            }
            None => false,
        }
    }

    /// Returns the request counts.
    pub fn counters(&self) -> AgentCounters {
        let counters = &self.shared.counters;
        AgentCounters {
            polls: counters.polls.load(Ordering::Relaxed),
            not_modified: counters.not_modified.load(Ordering::Relaxed),
            reports: counters.reports.load(Ordering::Relaxed),
            check_ins: counters.check_ins.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops every agent and waits up to 5 seconds for the workers to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for handle in std::mem::take(&mut self.workers) {
            let abort = handle.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .is_err()
            {
                tracing::warn!("Agent worker did not stop within 5 s; aborting it");
                abort.abort();
            }
        }
        tracing::info!(gateway = %self.shared.config.gateway_url, "Agent fleet stopped");
    }
}

impl Drop for AgentFleet {
    fn drop(&mut self) {
        for handle in &self.workers {
            handle.abort();
        }
    }
}
