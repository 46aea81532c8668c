//! The async trait every broker implements, built-in or loaded as a plugin.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ProviderResult;
use crate::model::{
    Container, ContainerRef, Health, Machine, Observation, Page, PlaceOutcome, PlaceRequest,
    PlannedRequest, Publication, Target, UnplaceRequest,
};

/// Something a provider can do; the engine and the API read these to choose a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Publishes an application per container version.
    PublishApp,
    /// Places versions by tagging machines.
    TagMachines,
    /// Entitles users or groups to published applications.
    EntitleGroups,
    /// Places versions through the gateway's agent channel.
    AgentPlacement,
    /// Sends notices to users in sessions.
    SessionMessages,
    /// Groups many broker writes into one batch request.
    Batch,
}

/// Concurrency and rate the provider recommends for its broker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Concurrent requests the provider sends at most.
    pub concurrency: u32,
    /// Sustained requests per second the provider sends at most.
    pub requests_per_second: f64,
    /// Machines the engine should put in one `place` call.
    pub max_batch: u32,
}

/// What a provider is and can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Provider kind, for example `citrix`.
    pub kind: String,
    /// Version of the provider implementation.
    pub version: String,
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// Recommended limits.
    pub limits: Limits,
}

/// A broker, seen through the operations the engine needs.
///
/// Every operation is idempotent: calling it twice leaves the same broker state and the same
/// gateway-owned objects, so the engine can repeat any call after a crash.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Describes the provider's kind, capabilities and limits.
    fn describe(&self) -> Description;

    /// Authenticates and reaches the broker.
    ///
    /// # Errors
    /// Fails when the broker cannot be reached or rejects the credentials.
    async fn check(&self) -> ProviderResult<Health>;

    /// Lists the groups the broker offers as targets.
    ///
    /// # Errors
    /// Fails on broker or transport errors.
    async fn list_targets(&self) -> ProviderResult<Vec<Target>>;

    /// Lists one page of a target's machines with their sessions; `target` is an id or a name.
    ///
    /// # Errors
    /// Returns `not_found` for an unknown target, and fails on broker or transport errors.
    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>>;

    /// Reports which version of `container_id` each machine of the target has now.
    ///
    /// # Errors
    /// Returns `not_found` for an unknown target, and fails on broker or transport errors.
    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>>;

    /// Makes a container version launchable on a target; creates only what is missing.
    ///
    /// # Errors
    /// Fails when the target is unknown or the broker rejects the objects.
    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication>;

    /// Removes the gateway-owned objects of a container version from a target; objects that
    /// are already gone are not an error.
    ///
    /// # Errors
    /// Fails on broker or transport errors.
    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication>;

    /// Moves machines to the requested version and away from any other version of the same
    /// container. One outcome per machine; a batch can partially fail.
    ///
    /// # Errors
    /// Fails as a whole only when no machine could be attempted (unknown target, auth).
    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome>;

    /// Withdraws every version of a container from machines.
    ///
    /// # Errors
    /// Fails as a whole only when no machine could be attempted.
    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome>;

    /// Lists the broker writes that publishing `container` on the target and placing it on
    /// `machines` would make, reading the broker but writing nothing. The default describes
    /// one placement per machine without paths; providers override it with their requests.
    ///
    /// # Errors
    /// Fails when the broker cannot be read.
    async fn plan(
        &self,
        target: &str,
        container: &Container,
        machines: &[String],
    ) -> ProviderResult<Vec<PlannedRequest>> {
        let _ = (target, container);
        Ok(undescribed_plan(machines))
    }

    /// Releases broker sessions (logout) before the gateway stops.
    async fn shutdown(&self) {}
}

/// Returns the plan of a provider that does not describe its requests: one placement per
/// machine, without methods or paths.
pub fn undescribed_plan(machines: &[String]) -> Vec<PlannedRequest> {
    vec![PlannedRequest {
        operation: "place".into(),
        method: String::new(),
        path: String::new(),
        count: machines.len() as u64,
        note: "the provider does not describe its requests".into(),
        batched: false,
    }]
}
