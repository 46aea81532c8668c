//! [`PortalProvider`]: the [`Provider`] trait on a Portal, with inventory and publishing.
//! Placement lives in `placement.rs`.

use vdi_plugin_sdk::contracts::{
    Capability, Container, ContainerRef, Description, ErrorKind, Health, HealthStatus, Limits,
    Machine, MachineState, Observation, Page, PlaceOutcome, PlaceRequest, PlannedRequest,
    Publication, Session, SessionState, Target, TargetKind, UnplaceRequest,
};
use vdi_plugin_sdk::{async_trait, Provider, ProviderError, ProviderResult};

use crate::client::PortalApi;
use crate::config::PortalConfig;
use crate::model::{app_name, parse_app_name, App, Group, MachineBody, MachineStatus, NewApp};

/// Provider kind this plugin serves.
pub const KIND: &str = "example-rest";

/// Most pages one listing follows; with the default page size that is 100,000 machines.
const MAX_PAGES: usize = 1000;

/// Provider for one Portal.
#[derive(Debug)]
pub struct PortalProvider {
    pub(crate) name: String,
    pub(crate) api: PortalApi,
    config: PortalConfig,
}

impl PortalProvider {
    /// Validates the settings and builds the client. Sends nothing.
    ///
    /// # Errors
    /// Returns `invalid` naming the bad key.
    pub fn new(name: &str, config: PortalConfig) -> ProviderResult<Self> {
        let api = PortalApi::new(name, &config)?;
        Ok(Self {
            name: name.to_owned(),
            api,
            config,
        })
    }

    /// Finds the group a target names, by id or by name.
    pub(crate) async fn resolve_group(&self, target: &str) -> ProviderResult<Group> {
        self.fault(target).await;
        let groups = self.api.groups().await?;
        groups
            .into_iter()
            .find(|g| g.id == target || g.name == target)
            .ok_or_else(|| {
                ProviderError::not_found(format!(
                    "Portal group {target:?} not found at provider {}; list the provider's \
                     targets for valid ids and names",
                    self.name
                ))
            })
    }

    /// Reads every machine of a group.
    pub(crate) async fn all_machines(&self, group: &str) -> ProviderResult<Vec<MachineBody>> {
        let mut machines = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_PAGES {
            let body = self.api.machines(group, page).await?;
            machines.extend(body.machines);
            match body.next_page {
                Some(next) if next > page => page = next,
                Some(next) => {
                    return Err(ProviderError::invalid(format!(
                        "Portal returned next_page {next} after page {page} of group {group}; \
                         the listing was stopped to avoid a loop"
                    )))
                }
                None => return Ok(machines),
            }
        }
        Err(ProviderError::invalid(format!(
            "group {group} has more than {MAX_PAGES} pages of machines; raise page_size"
        )))
    }

    /// Runs the fault a test target asks for, when fault injection is on.
    async fn fault(&self, target: &str) {
        if !self.config.fault_injection {
            return;
        }
        match target {
            "fault-abort" => std::process::abort(),
            "fault-hang" => std::future::pending::<()>().await,
            "fault-panic" => panic!("fault injection: target fault-panic"),
            _ => {}
        }
    }
}

/// Returns the version of `container_id` among a machine's apps.
pub(crate) fn placed_version(
    machine: &MachineBody,
    apps: &[App],
    container_id: &str,
) -> Option<String> {
    machine.apps.iter().find_map(|app_id| {
        let app = apps.iter().find(|a| &a.id == app_id)?;
        let (id, version) = parse_app_name(&app.name)?;
        (id == container_id).then(|| version.to_owned())
    })
}

fn machine_state(status: &MachineStatus) -> MachineState {
    match status {
        MachineStatus::Ready => MachineState::Ready,
        MachineStatus::Maintenance => MachineState::Maintenance,
        MachineStatus::Draining => MachineState::Draining,
        MachineStatus::Offline => MachineState::Unregistered,
        MachineStatus::Other(raw) => MachineState::Unknown(raw.clone()),
    }
}

pub(crate) fn to_machine(body: MachineBody, group: &str, apps: &[App]) -> Machine {
    let containers = body
        .apps
        .iter()
        .filter_map(|app_id| apps.iter().find(|a| &a.id == app_id))
        .filter_map(|app| parse_app_name(&app.name))
        .map(|(id, version)| ContainerRef {
            id: id.to_owned(),
            version: version.to_owned(),
        })
        .collect();
    let sessions = body
        .sessions
        .iter()
        .map(|s| Session {
            user: s.user.clone(),
            // A state the plugin does not know counts as active, so nobody loses a session.
            state: if s.state == "disconnected" {
                SessionState::Disconnected
            } else {
                SessionState::Active
            },
        })
        .collect();
    Machine {
        state: machine_state(&body.status),
        id: body.id,
        name: body.name,
        dns_name: body.dns_name,
        target: group.to_owned(),
        sessions,
        containers,
    }
}

#[async_trait]
impl Provider for PortalProvider {
    fn describe(&self) -> Description {
        Description {
            kind: KIND.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec![Capability::PublishApp],
            limits: Limits {
                concurrency: self.config.concurrency,
                requests_per_second: self.config.requests_per_second,
                max_batch: 50,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        let health = self.api.health().await?;
        let status = if health.status == "ok" {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        };
        Ok(Health {
            status,
            detail: format!("Portal API {} reports {}", health.version, health.status),
            checked_at: chrono::Utc::now(),
        })
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        let groups = self.api.groups().await?;
        Ok(groups
            .into_iter()
            .map(|g| Target {
                id: g.id,
                name: g.name,
                kind: TargetKind::DesktopPool,
                machine_count: Some(g.machine_count),
            })
            .collect())
    }

    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let group = self.resolve_group(target).await?;
        let page = match cursor.as_deref() {
            None => 1,
            Some(text) => text.parse::<u32>().map_err(|_| {
                ProviderError::invalid(format!("cursor {text:?} is not a Portal page number"))
            })?,
        };
        let apps = self.api.apps(&group.id).await?;
        let body = self.api.machines(&group.id, page).await?;
        let items = body
            .machines
            .into_iter()
            .map(|m| to_machine(m, &group.id, &apps))
            .collect();
        Ok(Page {
            items,
            next_cursor: body.next_page.map(|p| p.to_string()),
        })
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        let group = self.resolve_group(target).await?;
        let apps = self.api.apps(&group.id).await?;
        let machines = self.all_machines(&group.id).await?;
        Ok(machines
            .iter()
            .map(|m| Observation {
                machine: m.id.clone(),
                version: placed_version(m, &apps, container_id),
                failure: None,
            })
            .collect())
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        let group = self.resolve_group(target).await?;
        let name = app_name(&container.id, &container.version);
        let existing = self.api.apps(&group.id).await?;
        if let Some(app) = existing.iter().find(|a| a.name == name) {
            return Ok(Publication {
                objects: vec![app.id.clone()],
                writes: Vec::new(),
            });
        }
        let new_app = NewApp {
            group: group.id.clone(),
            name: name.clone(),
            display_name: container.display_name().to_owned(),
            command: container.launch.executable.clone(),
            arguments: container.launch.arguments.clone(),
        };
        match self.api.create_app(&new_app).await {
            Ok((app, write)) => {
                tracing::info!(provider = %self.name, target = %group.id, app = %app.id, "Published app.");
                Ok(Publication {
                    objects: vec![app.id],
                    writes: vec![write],
                })
            }
            // A concurrent or retried create won; the app exists now.
            Err(error) if error.kind == ErrorKind::Conflict => {
                let apps = self.api.apps(&group.id).await?;
                let app = apps.into_iter().find(|a| a.name == name).ok_or(error)?;
                Ok(Publication {
                    objects: vec![app.id],
                    writes: Vec::new(),
                })
            }
            Err(error) => Err(error),
        }
    }

    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        let group = self.resolve_group(target).await?;
        let name = app_name(&container.id, &container.version);
        let apps = self.api.apps(&group.id).await?;
        let Some(app) = apps.into_iter().find(|a| a.name == name) else {
            return Ok(Publication::default());
        };
        let writes = self.api.delete_app(&app.id).await?.into_iter().collect();
        Ok(Publication {
            objects: vec![app.id],
            writes,
        })
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        crate::placement::place(self, request).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        crate::placement::unplace(self, request).await
    }

    async fn plan(
        &self,
        target: &str,
        container: &Container,
        machines: &[String],
    ) -> ProviderResult<Vec<PlannedRequest>> {
        crate::placement::plan(self, target, container, machines).await
    }
}
