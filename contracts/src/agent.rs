//! The agent channel, as providers see it.
//!
//! Brokers without a native placement primitive (Horizon VDI pools, Windows 365 Business,
//! physical endpoints) deliver through an agent on each machine that polls the gateway. The
//! gateway implements [`AgentChannel`] and hands it to such providers: `place` records the
//! desired container of each machine, and `observe` reads back what the agents reported.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Activation, Container, ProviderResult};

/// What an agent reported for one container on its machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// Machine id, as the provider lists it.
    pub machine: String,
    /// Container id.
    pub container_id: String,
    /// Version the agent reported.
    pub version: String,
    /// Outcome on the machine.
    pub state: AgentContainerState,
    /// Agent's explanation, for failures.
    #[serde(default)]
    pub detail: String,
}

/// State of a container on a machine, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentContainerState {
    /// The version is installed and launchable.
    Installed,
    /// Installing the version failed.
    Failed,
    /// The container was removed from the machine.
    Removed,
}

/// A machine known only through its agent, registered on the agent's first check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMachine {
    /// Machine id the agent registered with, unique within a provider.
    pub machine: String,
    /// Labels the agent reports, for example `site=north` or `ward=icu`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time of the agent's latest check-in.
    pub last_seen: DateTime<Utc>,
}

/// The gateway's agent channel, scoped by provider name.
#[async_trait]
pub trait AgentChannel: Send + Sync + std::fmt::Debug {
    /// Sets the container version `machine` should have; replaces any other version of the
    /// same container. Agents see the change on their next poll.
    ///
    /// # Errors
    /// Fails when the gateway's store fails.
    async fn set_desired(
        &self,
        provider: &str,
        machine: &str,
        container: &Container,
        activation: Activation,
    ) -> ProviderResult<()>;

    /// Withdraws a container from `machine`; the agent removes it on its next poll.
    ///
    /// # Errors
    /// Fails when the gateway's store fails.
    async fn clear_desired(
        &self,
        provider: &str,
        machine: &str,
        container_id: &str,
    ) -> ProviderResult<()>;

    /// Returns the latest report of each machine for a container (machines that never
    /// reported it are absent).
    ///
    /// # Errors
    /// Fails when the gateway's store fails.
    async fn reports(&self, provider: &str, container_id: &str)
        -> ProviderResult<Vec<AgentReport>>;

    /// Lists the machines whose agents checked in for `provider`, with their labels. The
    /// default returns an empty list, for channels that do not register machines.
    ///
    /// # Errors
    /// Fails when the gateway's store fails.
    async fn machines(&self, provider: &str) -> ProviderResult<Vec<AgentMachine>> {
        let _ = provider;
        Ok(Vec::new())
    }
}

/// An in-process agent channel for provider tests: it stores desired state in memory, and
/// [`MemoryAgentChannel::install_all`] plays the agents by reporting every desired version as
/// installed.
#[derive(Debug, Default)]
pub struct MemoryAgentChannel {
    state: std::sync::Mutex<MemoryAgentState>,
}

#[derive(Debug, Default)]
struct MemoryAgentState {
    /// `(provider, machine, container id)` → desired container.
    desired: std::collections::BTreeMap<(String, String, String), Container>,
    /// `(provider, machine, container id)` → latest report.
    reports: std::collections::BTreeMap<(String, String, String), AgentReport>,
    /// `(provider, machine)` → registered machine.
    machines: BTreeMap<(String, String), AgentMachine>,
}

impl MemoryAgentChannel {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryAgentState> {
        // The maps stay consistent even if a holder panicked, so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the desired container of a machine, if any.
    pub fn desired(&self, provider: &str, machine: &str, container_id: &str) -> Option<Container> {
        let key = (
            provider.to_owned(),
            machine.to_owned(),
            container_id.to_owned(),
        );
        self.lock().desired.get(&key).cloned()
    }

    /// Registers a machine for `provider` as its agent's check-in would, replacing its labels
    /// and setting its last check-in to now.
    pub fn register(&self, provider: &str, machine: &str, labels: BTreeMap<String, String>) {
        let entry = AgentMachine {
            machine: machine.to_owned(),
            labels,
            last_seen: Utc::now(),
        };
        self.lock()
            .machines
            .insert((provider.to_owned(), machine.to_owned()), entry);
    }

    /// Reports every desired container as installed and every withdrawn one as removed, as
    /// agents would after their next poll.
    pub fn install_all(&self) {
        let mut state = self.lock();
        let desired: Vec<_> = state
            .desired
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        for ((provider, machine, container_id), container) in desired {
            state.reports.insert(
                (provider, machine.clone(), container_id.clone()),
                AgentReport {
                    machine,
                    container_id,
                    version: container.version,
                    state: AgentContainerState::Installed,
                    detail: String::new(),
                },
            );
        }
        let stale: Vec<_> = state
            .reports
            .keys()
            .filter(|k| !state.desired.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(report) = state.reports.get_mut(&key) {
                report.state = AgentContainerState::Removed;
            }
        }
    }
}

#[async_trait]
impl AgentChannel for MemoryAgentChannel {
    async fn set_desired(
        &self,
        provider: &str,
        machine: &str,
        container: &Container,
        _activation: Activation,
    ) -> ProviderResult<()> {
        let key = (
            provider.to_owned(),
            machine.to_owned(),
            container.id.clone(),
        );
        self.lock().desired.insert(key, container.clone());
        Ok(())
    }

    async fn clear_desired(
        &self,
        provider: &str,
        machine: &str,
        container_id: &str,
    ) -> ProviderResult<()> {
        let key = (
            provider.to_owned(),
            machine.to_owned(),
            container_id.to_owned(),
        );
        self.lock().desired.remove(&key);
        Ok(())
    }

    async fn reports(
        &self,
        provider: &str,
        container_id: &str,
    ) -> ProviderResult<Vec<AgentReport>> {
        Ok(self
            .lock()
            .reports
            .iter()
            .filter(|((p, _, c), _)| p == provider && c == container_id)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn machines(&self, provider: &str) -> ProviderResult<Vec<AgentMachine>> {
        Ok(self
            .lock()
            .machines
            .iter()
            .filter(|((p, _), _)| p == provider)
            .map(|(_, m)| m.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registered_machines_are_listed_per_provider() {
        let channel = MemoryAgentChannel::default();
        let labels = BTreeMap::from([("site".to_owned(), "north".to_owned())]);
        channel.register("physical-a", "LT-0001", labels.clone());
        channel.register("physical-b", "LT-0002", BTreeMap::new());

        let machines = channel.machines("physical-a").await.expect("machines");
        assert_eq!(machines.len(), 1);
        assert_eq!(machines[0].machine, "LT-0001");
        assert_eq!(machines[0].labels, labels);
    }

    #[tokio::test]
    async fn default_machines_is_empty() {
        #[derive(Debug)]
        struct NoRegistry;
        #[async_trait]
        impl AgentChannel for NoRegistry {
            async fn set_desired(
                &self,
                _: &str,
                _: &str,
                _: &Container,
                _: Activation,
            ) -> ProviderResult<()> {
                Ok(())
            }
            async fn clear_desired(&self, _: &str, _: &str, _: &str) -> ProviderResult<()> {
                Ok(())
            }
            async fn reports(&self, _: &str, _: &str) -> ProviderResult<Vec<AgentReport>> {
                Ok(Vec::new())
            }
        }
        let machines = NoRegistry.machines("any").await.expect("machines");
        assert!(machines.is_empty());
    }
}
