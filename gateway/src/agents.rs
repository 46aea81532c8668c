//! The gateway side of the agent channel: providers record desired containers through
//! [`StoreAgentChannel`], and agents read them and report back over `/v1/agent/*`.

use async_trait::async_trait;
use vdi_contracts::{
    Activation, AgentChannel, AgentMachine, AgentReport, Container, ErrorKind, ProviderError,
    ProviderResult,
};

use crate::store::{Store, StoreError};

/// Agent channel backed by the gateway's store, so desired state survives restarts and is
/// shared by replicas.
#[derive(Debug, Clone)]
pub struct StoreAgentChannel {
    store: Store,
}

impl StoreAgentChannel {
    /// Creates the channel over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn store_failure(error: StoreError) -> ProviderError {
    ProviderError::new(ErrorKind::Internal, "the gateway's store failed")
        .with_retryable(true)
        .with_source(error)
}

#[async_trait]
impl AgentChannel for StoreAgentChannel {
    async fn set_desired(
        &self,
        provider: &str,
        machine: &str,
        container: &Container,
        activation: Activation,
    ) -> ProviderResult<()> {
        self.store
            .set_agent_desired(provider, machine, container, activation)
            .await
            .map_err(store_failure)
    }

    async fn clear_desired(
        &self,
        provider: &str,
        machine: &str,
        container_id: &str,
    ) -> ProviderResult<()> {
        self.store
            .clear_agent_desired(provider, machine, container_id)
            .await
            .map_err(store_failure)
    }

    async fn reports(
        &self,
        provider: &str,
        container_id: &str,
    ) -> ProviderResult<Vec<AgentReport>> {
        self.store
            .agent_reports(provider, container_id)
            .await
            .map_err(store_failure)
    }

    async fn machines(&self, provider: &str) -> ProviderResult<Vec<AgentMachine>> {
        self.store
            .agent_machines(provider)
            .await
            .map_err(store_failure)
    }

    async fn machines_by_id(
        &self,
        provider: &str,
        machines: &[String],
    ) -> ProviderResult<Vec<AgentMachine>> {
        self.store
            .agent_machines_by_id(provider, machines)
            .await
            .map_err(store_failure)
    }
}
