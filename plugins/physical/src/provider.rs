//! The [`Provider`] implementation for physical endpoints.

use std::collections::HashMap;
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
    ContainerRef, Description, ErrorKind, Health, HealthStatus, Limits, Machine, MachineOutcome,
    MachineResult, Observation, Page, PlaceOutcome, PlaceRequest, Provider, ProviderError,
    ProviderResult, Publication, Target, UnplaceRequest,
};
use vdi_graph::{GraphClient, IntuneDelivery};

use crate::config::{PhysicalConfig, PhysicalSettings};
use crate::inventory::{self, Delivery, Device, ReadCache};

/// Key of the one device inventory the provider keeps.
const INVENTORY_KEY: &str = "devices";

/// Machines per `place` call the engine should send.
const MAX_BATCH: u32 = 100;

/// Concurrency and rate recommended when no Graph connection is configured: agent delivery
/// only writes to the gateway's own store.
const AGENT_ONLY_LIMITS: (u32, f64) = (8, 50.0);

/// Intune-managed and agent-registered physical Windows devices.
#[derive(Debug)]
pub struct PhysicalProvider {
    name: String,
    settings: PhysicalSettings,
    intune: Option<(Arc<GraphClient>, IntuneDelivery)>,
    agents: Arc<dyn AgentChannel>,
    started: OnceCell<()>,
    /// Intune and agent devices, reused by the calls of one reconcile pass.
    inventory: ReadCache<Vec<Device>>,
}

impl PhysicalProvider {
    /// Creates the provider; nothing is sent until the first operation.
    ///
    /// # Errors
    /// `invalid` when the configuration is invalid, with the key and the fix.
    pub fn new(
        name: &str,
        config: PhysicalConfig,
        agents: Arc<dyn AgentChannel>,
    ) -> Result<Self, ProviderError> {
        let settings = config
            .build()
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        let intune = match &settings.graph {
            Some(graph) => {
                let client = Arc::new(GraphClient::new(
                    name,
                    graph.clone(),
                    settings.protected_group_ids.clone(),
                )?);
                let delivery = IntuneDelivery::new(client.clone(), settings.delivery.clone());
                Some((client, delivery))
            }
            None => None,
        };
        Ok(Self {
            name: name.to_owned(),
            inventory: ReadCache::new(settings.inventory_ttl),
            settings,
            intune,
            agents,
            started: OnceCell::new(),
        })
    }

    /// Returns the Graph client, when Intune is configured.
    pub fn client(&self) -> Option<&GraphClient> {
        self.intune.as_ref().map(|(client, _)| client.as_ref())
    }

    /// Protects the groups of Windows 365 provisioning policies once, before any write. A
    /// tenant without Windows 365 (403 or 404 on the policies) keeps the configured list.
    async fn start(&self) -> ProviderResult<()> {
        let Some((client, _)) = &self.intune else {
            return Ok(());
        };
        self.started
            .get_or_try_init(|| async {
                match client.protect_provisioning_groups().await {
                    Ok(_) => Ok(()),
                    Err(error)
                        if matches!(error.kind, ErrorKind::Forbidden | ErrorKind::NotFound) =>
                    {
                        tracing::warn!(
                            provider = %self.name,
                            error = %error,
                            "Provisioning policies cannot be read; only the configured \
                             protected groups are protected."
                        );
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            })
            .await
            .copied()
    }

    /// Returns every device, read from Graph and the agent channel unless a recent read is
    /// kept.
    async fn all_devices(&self) -> ProviderResult<Arc<Vec<Device>>> {
        self.start().await?;
        self.inventory
            .get_or_read(INVENTORY_KEY, || {
                inventory::devices(
                    self.client(),
                    self.agents.as_ref(),
                    &self.name,
                    &self.settings,
                )
            })
            .await
    }

    /// Returns the rule's id and its devices, sorted by id.
    async fn devices(&self, target: &str) -> ProviderResult<(String, Vec<Device>)> {
        let rule = inventory::find_rule(&self.settings, target)?;
        let all = self.all_devices().await?;
        let devices = all.iter().filter(|d| d.matches(rule)).cloned().collect();
        Ok((rule.id.clone(), devices))
    }

    /// Reads the agent registrations of the agent-delivered devices among `devices`, by
    /// agent machine id. Read on every call, not kept with the inventory, so sessions are
    /// current.
    async fn registrations<'a>(
        &self,
        devices: impl Iterator<Item = &'a Device>,
    ) -> ProviderResult<HashMap<String, AgentMachine>> {
        let ids: Vec<String> = devices
            .filter(|d| d.delivery == Delivery::Agent)
            .map(|d| d.agent_id().to_owned())
            .collect();
        registrations_by_id(self.agents.as_ref(), &self.name, &ids).await
    }

    async fn machines_page(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let (id, devices) = self.devices(target).await?;
        let (page, next_cursor) = inventory::page(
            &devices,
            |d| d.id.as_str(),
            cursor.as_deref(),
            self.settings.page_size,
        )?;
        let registrations = self.registrations(page.iter()).await?;
        let (now, stale_after) = (Utc::now(), self.settings.agent_stale_after);
        let items = page
            .iter()
            .map(|d| {
                // NOTE: Graph reports no user sessions for Intune devices, so an
                // Intune-delivered device lists none, and when_idle and next_logon cannot hold
                // it. Intune installs its required Win32 app in the background with restart
                // suppressed.
                let sessions = match d.delivery {
                    Delivery::Agent => registrations
                        .get(d.agent_id())
                        .map(|agent| agent.trusted_sessions(now, stale_after))
                        .unwrap_or_default(),
                    Delivery::Intune => Vec::new(),
                };
                d.to_machine(&id, sessions)
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    /// Drops the kept inventory after the provider's own Intune writes, so the next call
    /// reads what they changed.
    fn forget_inventory(&self) {
        self.inventory.invalidate();
    }

    fn delivery(&self) -> ProviderResult<&IntuneDelivery> {
        self.intune.as_ref().map(|(_, d)| d).ok_or_else(|| {
            ProviderError::internal("an Intune device was listed without a Graph connection")
        })
    }

    async fn place_version(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let container = &request.container;
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let (_, devices) = self.devices(&request.target).await?;
        let reports = self.agents.reports(&self.name, &container.id).await?;
        let requested = devices.iter().filter(|d| request.machines.contains(&d.id));
        // Read now, not from the listing, so a user who signed in since is seen.
        let registrations = self.registrations(requested).await?;
        let now = Utc::now();

        let mut results = HashMap::new();
        let mut intune = Vec::new();
        let mut handover = Vec::new();
        for id in &request.machines {
            let Some(device) = devices.iter().find(|d| d.id == *id) else {
                let error = ProviderError::not_found(format!("device {id} is not in this group"));
                results.insert(id.clone(), MachineResult::Failed(error.to_body()));
                continue;
            };
            if let Some(reason) = device.state.exclusion_reason() {
                results.insert(id.clone(), MachineResult::Excluded(reason));
                continue;
            }
            if let (Delivery::Intune, Some(graph)) = (device.delivery, &device.graph) {
                intune.push(graph.clone());
                continue;
            }
            // An Intune-managed device whose agent registered after Intune delivered to it
            // (`agent_first`) leaves the container's Intune groups below, so Intune stops
            // installing the version it had.
            if let Some(graph) = &device.graph {
                handover.push(graph.clone());
            }
            let placement = AgentPlacement {
                provider: &self.name,
                agent_id: device.agent_id(),
                registration: registrations.get(device.agent_id()),
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
        if !intune.is_empty() {
            let delivered = self.delivery()?.place(container, &intune).await;
            self.forget_inventory();
            let delivered = delivered?;
            results.extend(delivered.results);
            outcome.writes = delivered.writes;
        }
        if !handover.is_empty() {
            let writes = self
                .delivery()?
                .release_to_agent(&container.id, handover, &mut results)
                .await;
            self.forget_inventory();
            outcome.writes.extend(writes);
        }
        outcome.machines = collect(&request.machines, results);
        Ok(outcome)
    }

    async fn unplace_container(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let (_, devices) = self.devices(&request.target).await?;
        let mut results = HashMap::new();
        let mut intune = Vec::new();
        for id in &request.machines {
            let Some(device) = devices.iter().find(|d| d.id == *id) else {
                let error = ProviderError::not_found(format!("device {id} is not in this group"));
                results.insert(id.clone(), MachineResult::Failed(error.to_body()));
                continue;
            };
            if let (Delivery::Intune, Some(graph)) = (device.delivery, &device.graph) {
                intune.push(graph.clone());
                continue;
            }
            let cleared = self
                .agents
                .clear_desired(&self.name, device.agent_id(), &request.container_id)
                .await;
            let result = match cleared {
                Ok(()) => MachineResult::Accepted,
                Err(error) => MachineResult::Failed(error.to_body()),
            };
            results.insert(id.clone(), result);
        }
        let mut outcome = PlaceOutcome::default();
        if !intune.is_empty() {
            let delivered = self
                .delivery()?
                .unplace(&request.container_id, &intune)
                .await;
            self.forget_inventory();
            let delivered = delivered?;
            results.extend(delivered.results);
            outcome.writes = delivered.writes;
        }
        outcome.machines = collect(&request.machines, results);
        Ok(outcome)
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
impl Provider for PhysicalProvider {
    fn describe(&self) -> Description {
        let (concurrency, requests_per_second) = match &self.settings.graph {
            Some(graph) => (graph.concurrency, graph.requests_per_second),
            None => AGENT_ONLY_LIMITS,
        };
        let mut capabilities = vec![Capability::AgentPlacement];
        if self.intune.is_some() {
            capabilities.extend([Capability::PublishApp, Capability::Batch]);
        }
        Description {
            kind: "physical".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities,
            limits: Limits {
                concurrency,
                requests_per_second,
                max_batch: MAX_BATCH,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        let span = tracing::info_span!("physical", provider = %self.name, op = "check");
        async {
            self.start().await?;
            let agents = self.agents.machines(&self.name).await?.len();
            let detail = match self.client() {
                Some(client) => format!(
                    "authenticated to Microsoft Graph; {agents} agent devices registered; {} \
                     protected groups",
                    client.protected_groups().len()
                ),
                None => format!("agent delivery only; {agents} agent devices registered"),
            };
            Ok(Health {
                status: HealthStatus::Ok,
                detail,
                checked_at: Utc::now(),
            })
        }
        .instrument(span)
        .await
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        let all = self.all_devices().await?;
        Ok(self
            .settings
            .device_groups
            .iter()
            .map(|rule| {
                let count = all.iter().filter(|d| d.matches(rule)).count() as u64;
                inventory::to_target(rule, Some(count))
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
        let (_, devices) = self.devices(target).await?;
        let versions = if devices.iter().any(|d| d.delivery == Delivery::Intune) {
            self.delivery()?.observe(container_id).await?
        } else {
            HashMap::new()
        };
        let reports = self.agents.reports(&self.name, container_id).await?;
        Ok(devices
            .iter()
            .map(|d| {
                if d.delivery == Delivery::Agent {
                    return observe_agent(&reports, d.agent_id(), &d.id);
                }
                let version = d
                    .graph
                    .as_ref()
                    .and_then(|g| g.aad_device_id.as_ref())
                    .and_then(|aad| versions.get(&aad.to_ascii_lowercase()).cloned());
                Observation {
                    machine: d.id.clone(),
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
        let span = tracing::info_span!("physical", provider = %self.name, op = "publish", target);
        async {
            let (_, devices) = self.devices(target).await?;
            // Agent devices need no broker object; Intune devices need the group and app.
            if devices.iter().all(|d| d.delivery == Delivery::Agent) {
                return Ok(Publication::default());
            }
            let published = self.delivery()?.publish(container).await;
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
        inventory::find_rule(&self.settings, target)?;
        self.start().await?;
        match &self.intune {
            Some((_, delivery)) => {
                let unpublished = delivery.unpublish(container).await;
                self.forget_inventory();
                unpublished
            }
            None => Ok(Publication::default()),
        }
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "physical",
            provider = %self.name,
            op = "place",
            target = %request.target,
            container = %request.container.reference()
        );
        self.place_version(request).instrument(span).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "physical",
            provider = %self.name,
            op = "unplace",
            target = %request.target,
            container = %request.container_id
        );
        self.unplace_container(request).instrument(span).await
    }
}
