//! The [`Provider`] implementation for Windows 365.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::OnceCell;
use tracing::Instrument;
use vdi_contracts::{
    validate_identifier, validate_version, AgentChannel, AgentContainerState, AgentReport,
    Capability, Container, ContainerRef, Description, Health, HealthStatus, Limits, Machine,
    MachineOutcome, MachineResult, Observation, Page, PlaceOutcome, PlaceRequest, Provider,
    ProviderError, ProviderResult, Publication, Target, UnplaceRequest,
};
use vdi_graph::{GraphClient, IntuneDelivery};

use crate::config::{Windows365Config, Windows365Settings};
use crate::inventory::{self, CloudPcMachine, ResolvedTarget};

/// Machines per `place` call the engine should send. Their membership writes travel 20 to a
/// `$batch` request, so 100 machines moving between two versions take 10 requests.
const MAX_BATCH: u32 = 100;

/// Windows 365 Cloud PCs on Microsoft Graph.
#[derive(Debug)]
pub struct Windows365Provider {
    name: String,
    settings: Windows365Settings,
    client: Arc<GraphClient>,
    delivery: IntuneDelivery,
    agents: Arc<dyn AgentChannel>,
    /// Set once the provisioning groups are protected; no write happens before.
    started: OnceCell<usize>,
}

impl Windows365Provider {
    /// Creates the provider; nothing is sent until the first operation.
    ///
    /// # Errors
    /// `invalid` when the configuration is invalid, with the key and the fix.
    pub fn new(
        name: &str,
        config: Windows365Config,
        agents: Arc<dyn AgentChannel>,
    ) -> Result<Self, ProviderError> {
        let settings = config
            .build()
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        let client = Arc::new(GraphClient::new(
            name,
            settings.graph.clone(),
            settings.protected_group_ids.clone(),
        )?);
        let delivery = IntuneDelivery::new(client.clone(), settings.delivery.clone());
        Ok(Self {
            name: name.to_owned(),
            settings,
            client,
            delivery,
            agents,
            started: OnceCell::new(),
        })
    }

    /// Returns the Graph client, for its counters.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// Reads the provisioning policies' groups into the guard, once; returns the number of
    /// policies.
    async fn start(&self) -> ProviderResult<usize> {
        self.started
            .get_or_try_init(|| async {
                let policies = self.client.protect_provisioning_groups().await?;
                tracing::info!(
                    provider = %self.name,
                    policies = policies.len(),
                    protected_groups = self.client.protected_groups().len(),
                    "Provisioning groups are protected; the provider is ready."
                );
                Ok::<_, ProviderError>(policies.len())
            })
            .await
            .copied()
    }

    async fn resolve(&self, target: &str) -> ProviderResult<ResolvedTarget> {
        self.start().await?;
        let targets = inventory::targets(&self.client, &self.settings.group_targets).await?;
        inventory::find_target(&targets, target)
    }

    async fn machines(
        &self,
        target: &str,
    ) -> ProviderResult<(ResolvedTarget, Vec<CloudPcMachine>)> {
        let resolved = self.resolve(target).await?;
        let machines = inventory::target_machines(&self.client, &resolved).await?;
        Ok((resolved, machines))
    }

    async fn place_version(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let container = &request.container;
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let (_, machines) = self.machines(&request.target).await?;
        let reports = self.agents.reports(&self.name, &container.id).await?;

        let mut results: HashMap<String, MachineResult> = HashMap::new();
        let mut devices = Vec::new();
        for id in &request.machines {
            let machine = match eligible(&machines, id) {
                Ok(machine) => machine,
                Err(result) => {
                    results.insert(id.clone(), result);
                    continue;
                }
            };
            if !machine.uses_agent() {
                devices.push(machine.device_ref());
                continue;
            }
            let set = self
                .agents
                .set_desired(&self.name, id, container, request.activation)
                .await;
            let result = match set {
                Err(error) => MachineResult::Failed(error.to_body()),
                Ok(()) if installed_version(&reports, id) == Some(&container.version) => {
                    MachineResult::Applied
                }
                Ok(()) => MachineResult::Accepted,
            };
            results.insert(id.clone(), result);
        }

        let mut outcome = PlaceOutcome::default();
        if !devices.is_empty() {
            let delivered = self.delivery.place(container, &devices).await?;
            results.extend(delivered.results);
            outcome.writes = delivered.writes;
        }
        outcome.machines = collect(&request.machines, results);
        Ok(outcome)
    }

    async fn unplace_container(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let (_, machines) = self.machines(&request.target).await?;
        let mut results: HashMap<String, MachineResult> = HashMap::new();
        let mut devices = Vec::new();
        for id in &request.machines {
            let Some(machine) = machines.iter().find(|m| m.pc.id == *id) else {
                let error = ProviderError::not_found(format!(
                    "Cloud PC {id} is not in target {}",
                    request.target
                ));
                results.insert(id.clone(), MachineResult::Failed(error.to_body()));
                continue;
            };
            if !machine.uses_agent() {
                devices.push(machine.device_ref());
                continue;
            }
            let cleared = self
                .agents
                .clear_desired(&self.name, id, &request.container_id)
                .await;
            let result = match cleared {
                Ok(()) => MachineResult::Accepted,
                Err(error) => MachineResult::Failed(error.to_body()),
            };
            results.insert(id.clone(), result);
        }
        let mut outcome = PlaceOutcome::default();
        if !devices.is_empty() {
            let delivered = self
                .delivery
                .unplace(&request.container_id, &devices)
                .await?;
            results.extend(delivered.results);
            outcome.writes = delivered.writes;
        }
        outcome.machines = collect(&request.machines, results);
        Ok(outcome)
    }
}

/// Returns the machine when it may be changed, or the result to report instead.
fn eligible<'a>(
    machines: &'a [CloudPcMachine],
    id: &str,
) -> Result<&'a CloudPcMachine, MachineResult> {
    let Some(machine) = machines.iter().find(|m| m.pc.id == id) else {
        let error = ProviderError::not_found(format!("Cloud PC {id} is not in this target"));
        return Err(MachineResult::Failed(error.to_body()));
    };
    match machine.state().exclusion_reason() {
        Some(reason) => Err(MachineResult::Excluded(reason)),
        None => Ok(machine),
    }
}

fn installed_version<'a>(reports: &'a [AgentReport], machine: &str) -> Option<&'a String> {
    reports
        .iter()
        .find(|r| r.machine == machine && r.state == AgentContainerState::Installed)
        .map(|r| &r.version)
}

fn collect(order: &[String], mut results: HashMap<String, MachineResult>) -> Vec<MachineOutcome> {
    order
        .iter()
        .map(|id| MachineOutcome {
            machine: id.clone(),
            result: results.remove(id).unwrap_or_else(|| {
                let error =
                    ProviderError::internal(format!("no result was recorded for machine {id}"));
                MachineResult::Failed(error.to_body())
            }),
        })
        .collect()
}

#[async_trait]
impl Provider for Windows365Provider {
    fn describe(&self) -> Description {
        Description {
            kind: "windows365".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                Capability::PublishApp,
                Capability::AgentPlacement,
                Capability::Batch,
            ],
            limits: Limits {
                concurrency: self.settings.graph.concurrency,
                requests_per_second: self.settings.graph.requests_per_second,
                max_batch: MAX_BATCH,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        let span = tracing::info_span!("windows365", provider = %self.name, op = "check");
        async {
            let policies = self.start().await?;
            Ok(Health {
                status: HealthStatus::Ok,
                detail: format!(
                    "authenticated to Microsoft Graph; {policies} provisioning policies, {} \
                     protected groups",
                    self.client.protected_groups().len()
                ),
                checked_at: Utc::now(),
            })
        }
        .instrument(span)
        .await
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        self.start().await?;
        let targets = inventory::targets(&self.client, &self.settings.group_targets).await?;
        let pcs = inventory::cloud_pcs(&self.client).await?;
        Ok(targets
            .iter()
            .map(|t| {
                let count = match t {
                    ResolvedTarget::Policy { id, .. } => Some(
                        pcs.iter()
                            .filter(|m| m.pc.provisioning_policy_id.as_deref() == Some(id))
                            .count() as u64,
                    ),
                    ResolvedTarget::Group { .. } => None,
                };
                t.to_target(count)
            })
            .collect())
    }

    async fn list_machines(
        &self,
        target: &str,
        _cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let (resolved, machines) = self.machines(target).await?;
        let id = resolved.target_id();
        Ok(Page {
            items: machines.iter().map(|m| m.to_machine(&id)).collect(),
            next_cursor: None,
        })
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        let (_, machines) = self.machines(target).await?;
        let versions = if machines.iter().any(|m| !m.uses_agent()) {
            self.delivery.observe(container_id).await?
        } else {
            HashMap::new()
        };
        let reports = self.agents.reports(&self.name, container_id).await?;
        Ok(machines
            .iter()
            .map(|m| {
                let version = if m.uses_agent() {
                    installed_version(&reports, &m.pc.id).cloned()
                } else {
                    m.pc.aad_device_id
                        .as_ref()
                        .and_then(|aad| versions.get(&aad.to_ascii_lowercase()).cloned())
                };
                Observation {
                    machine: m.pc.id.clone(),
                    version,
                }
            })
            .collect())
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let span = tracing::info_span!("windows365", provider = %self.name, op = "publish", target);
        async {
            let (_, machines) = self.machines(target).await?;
            // Business Cloud PCs get containers from the agent; Intune objects are needed only
            // for Enterprise Cloud PCs.
            if machines.iter().all(CloudPcMachine::uses_agent) {
                return Ok(Publication::default());
            }
            self.delivery.publish(container).await
        }
        .instrument(span)
        .await
    }

    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        self.resolve(target).await?;
        self.delivery.unpublish(container).await
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "windows365",
            provider = %self.name,
            op = "place",
            target = %request.target,
            container = %request.container.reference()
        );
        self.place_version(request).instrument(span).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "windows365",
            provider = %self.name,
            op = "unplace",
            target = %request.target,
            container = %request.container_id
        );
        self.unplace_container(request).instrument(span).await
    }
}
