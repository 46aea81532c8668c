//! The [`Provider`] implementation for Windows 365.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::OnceCell;
use tracing::Instrument;
use vdi_contracts::agent::{
    observe_agent, place_through_agent, registrations_by_id, AgentPlacement,
};
use vdi_contracts::{
    validate_identifier, validate_version, AgentChannel, AgentMachine, Capability, Container,
    ContainerRef, Description, Health, HealthStatus, Limits, Machine, MachineOutcome,
    MachineResult, Observation, Page, PlaceOutcome, PlaceRequest, Provider, ProviderError,
    ProviderResult, Publication, Target, UnplaceRequest,
};
use vdi_graph::model::DirectoryObject;
use vdi_graph::{GraphClient, IntuneDelivery};

use crate::config::{Windows365Config, Windows365Settings};
use crate::inventory::{self, CloudPcMachine, Inventory, ReadCache, ResolvedTarget};

/// Key of the one inventory the provider keeps.
const INVENTORY_KEY: &str = "tenant";

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
    /// Targets and Cloud PCs, reused by the calls of one reconcile pass.
    inventory: ReadCache<Inventory>,
    /// Members of group targets, by group id.
    members: ReadCache<Vec<DirectoryObject>>,
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
            inventory: ReadCache::new(settings.inventory_ttl),
            members: ReadCache::new(settings.inventory_ttl),
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

    /// Returns the targets and Cloud PCs, read from Graph unless a recent read is kept.
    async fn inventory(&self) -> ProviderResult<Arc<Inventory>> {
        self.start().await?;
        self.inventory
            .get_or_read(INVENTORY_KEY, || {
                inventory::read_inventory(&self.client, &self.settings.group_targets)
            })
            .await
    }

    async fn resolve(&self, target: &str) -> ProviderResult<ResolvedTarget> {
        let inventory = self.inventory().await?;
        inventory::find_target(&inventory.targets, target)
    }

    /// Returns the target and its Cloud PCs, sorted by id.
    async fn machines(
        &self,
        target: &str,
    ) -> ProviderResult<(ResolvedTarget, Vec<CloudPcMachine>)> {
        let inventory = self.inventory().await?;
        let resolved = inventory::find_target(&inventory.targets, target)?;
        let members = match &resolved {
            ResolvedTarget::Policy { .. } => Arc::new(Vec::new()),
            ResolvedTarget::Group { id, .. } => {
                self.members
                    .get_or_read(id, || inventory::group_members(&self.client, id))
                    .await?
            }
        };
        let mut machines = inventory::target_machines(&inventory.cloud_pcs, &resolved, &members);
        if self.settings.agent_first {
            // Registrations are read on every call, not kept with the inventory, so a Cloud
            // PC switches to its agent on the first pass after the agent's check-in.
            let registered: HashSet<String> = self
                .agents
                .machines(&self.name)
                .await?
                .into_iter()
                .map(|m| m.machine)
                .collect();
            for machine in &mut machines {
                machine.agent_first =
                    machine.intune_managed() && registered.contains(&machine.pc.id);
            }
        }
        Ok((resolved, machines))
    }

    /// Reads the agent registrations of the agent-delivered Cloud PCs among `machines`, by id.
    async fn registrations<'a>(
        &self,
        machines: impl Iterator<Item = &'a CloudPcMachine>,
    ) -> ProviderResult<HashMap<String, AgentMachine>> {
        let ids: Vec<String> = machines
            .filter(|m| m.uses_agent())
            .map(|m| m.pc.id.clone())
            .collect();
        registrations_by_id(self.agents.as_ref(), &self.name, &ids).await
    }

    async fn machines_page(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let (resolved, machines) = self.machines(target).await?;
        let (page, next_cursor) = inventory::page(
            &machines,
            |m| m.pc.id.as_str(),
            cursor.as_deref(),
            self.settings.page_size,
        )?;
        let registrations = self.registrations(page.iter()).await?;
        let id = resolved.target_id();
        let (now, stale_after) = (Utc::now(), self.settings.agent_stale_after);
        let items = page
            .iter()
            .map(|m| {
                // NOTE: Graph reports no user sessions for Cloud PCs, so an Enterprise Cloud PC
                // lists none, and when_idle and next_logon cannot hold it. Intune installs its
                // required Win32 app in the background with restart suppressed.
                let sessions = match registrations.get(&m.pc.id) {
                    Some(agent) if m.uses_agent() => agent.trusted_sessions(now, stale_after),
                    _ => Vec::new(),
                };
                m.to_machine(&id, sessions)
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    async fn place_version(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let container = &request.container;
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let (_, machines) = self.machines(&request.target).await?;
        let reports = self.agents.reports(&self.name, &container.id).await?;
        let requested = machines
            .iter()
            .filter(|m| request.machines.contains(&m.pc.id));
        // Read now, not from the listing, so a user who signed in since is seen.
        let registrations = self.registrations(requested).await?;
        let now = Utc::now();

        let mut results: HashMap<String, MachineResult> = HashMap::new();
        let mut devices = Vec::new();
        let mut handover = Vec::new();
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
            // An Enterprise Cloud PC whose agent took over (`agent_first`) leaves the
            // container's Intune groups below, so Intune stops installing what it delivered.
            if machine.intune_managed() {
                handover.push(machine.device_ref());
            }
            let placement = AgentPlacement {
                provider: &self.name,
                agent_id: id,
                registration: registrations.get(id),
                reports: &reports,
                stale_after: self.settings.agent_stale_after,
            };
            let result = place_through_agent(
                self.agents.as_ref(),
                placement,
                container,
                request.activation,
                now,
            )
            .await;
            results.insert(id.clone(), result);
        }

        let mut outcome = PlaceOutcome::default();
        if !devices.is_empty() {
            let delivered = self.delivery.place(container, &devices).await;
            self.forget_inventory();
            let delivered = delivered?;
            results.extend(delivered.results);
            outcome.writes = delivered.writes;
        }
        if !handover.is_empty() {
            let writes = self
                .delivery
                .release_to_agent(&container.id, handover, &mut results)
                .await;
            self.forget_inventory();
            outcome.writes.extend(writes);
        }
        outcome.machines = collect(&request.machines, results);
        Ok(outcome)
    }

    /// Drops the kept Graph reads after the provider's own Intune writes, so the next call
    /// reads what they changed.
    fn forget_inventory(&self) {
        self.inventory.invalidate();
        self.members.invalidate();
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
            if !machine.uses_agent() || machine.intune_managed() {
                // An agent-first Cloud PC may still be in an Intune group if its agent never
                // took a version, so it leaves the groups too.
                devices.push(machine.device_ref());
            }
            if !machine.uses_agent() {
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
            let delivered = self.delivery.unplace(&request.container_id, &devices).await;
            self.forget_inventory();
            let delivered = delivered?;
            for (machine, result) in delivered.results {
                // An agent-first Cloud PC keeps its agent's result unless leaving Intune failed.
                let keep_agent_result =
                    results.contains_key(&machine) && !matches!(result, MachineResult::Failed(_));
                if !keep_agent_result {
                    results.insert(machine, result);
                }
            }
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
        let inventory = self.inventory().await?;
        Ok(inventory
            .targets
            .iter()
            .map(|t| {
                let count = match t {
                    ResolvedTarget::Policy { id, .. } => Some(
                        inventory
                            .cloud_pcs
                            .iter()
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
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        self.machines_page(target, cursor).await
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
                if m.uses_agent() {
                    return observe_agent(&reports, &m.pc.id, &m.pc.id);
                }
                let version =
                    m.pc.aad_device_id
                        .as_ref()
                        .and_then(|aad| versions.get(&aad.to_ascii_lowercase()).cloned());
                Observation {
                    machine: m.pc.id.clone(),
                    version,
                    failure: None,
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
            let published = self.delivery.publish(container).await;
            self.forget_inventory();
            published
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
        let unpublished = self.delivery.unpublish(container).await;
        self.forget_inventory();
        unpublished
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
