//! [`CitrixProvider`]: the [`Provider`] trait on a Citrix site, and its inventory operations.
//! Publishing lives in `publish.rs`, tag placement in `placement.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use broker_http::{BrokerClient, ClientConfig, RetryConfig};
use http::HeaderName;
use tokio::sync::Mutex;
use tracing::Instrument;
use vdi_contracts::{
    Capability, Container, ContainerRef, Description, Health, HealthStatus, Limits, Machine,
    MachineState, Observation, Page, PlaceOutcome, PlaceRequest, PlannedRequest, Provider,
    ProviderError, ProviderResult, Publication, Session, SessionState, Target, TargetKind,
    UnplaceRequest,
};

use crate::auth::{CitrixAuthenticator, CitrixTokenSource};
use crate::client::CitrixApi;
use crate::config::{CitrixConfig, CitrixSettings};
use crate::error::CitrixClassifier;
use crate::guard::citrix_guard;
use crate::model::{self, DeliveryGroup, RegistrationState};
use crate::naming::{looks_like_id, parse_version_tag};

/// How long a site-wide session listing is reused, so paging through a large delivery group
/// does not fetch every session once per page.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// Provider for one Citrix DaaS or on-premises CVAD site.
#[derive(Debug)]
pub struct CitrixProvider {
    pub(crate) name: String,
    pub(crate) settings: CitrixSettings,
    pub(crate) api: CitrixApi,
    sessions: Mutex<Option<(Instant, Arc<Vec<model::Session>>)>>,
}

impl CitrixProvider {
    /// Validates the configuration and builds the HTTP client with the Citrix guard, error
    /// classifier, limits and authenticator. Sends nothing; `check` is the first call.
    ///
    /// # Errors
    /// `invalid` when the configuration is incomplete or wrong (the message names the key),
    /// or when the HTTP client cannot be built.
    pub fn new(name: &str, config: CitrixConfig) -> Result<Self, ProviderError> {
        let settings = config
            .build()
            .map_err(|error| ProviderError::invalid(format!("provider {name}: {error}")))?;
        let client_config = ClientConfig {
            provider: name.to_owned(),
            base_url: settings.api_base_url.clone(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: settings.request_timeout,
            // Citrix publishes no retry guidance beyond "retry 429 and 5xx"; the shared
            // defaults (jittered, 4 retries, 120 s deadline) fit it.
            retry: RetryConfig::default(),
            concurrency: settings.concurrency as usize,
            requests_per_second: settings.requests_per_second,
            user_agent: format!("vdi-gateway/{}", env!("CARGO_PKG_VERSION")),
            request_id_header: Some(HeaderName::from_static("citrix-transactionid")),
            allow_plain_http_loopback: settings.allow_plain_http_loopback,
        };
        let client = BrokerClient::new(client_config, citrix_guard(), Arc::new(CitrixClassifier))?;
        let source =
            CitrixTokenSource::new(settings.token_url.clone(), settings.credentials.clone());
        let auth = Arc::new(CitrixAuthenticator::new(
            source,
            settings.customer_id.clone(),
            settings.site_id.clone(),
        ));
        let client = client.with_authenticator(auth.clone());
        let api = CitrixApi::new(
            client,
            auth,
            settings.customer_id.clone(),
            settings.page_size,
            settings.job_timeout,
        );
        Ok(Self {
            name: name.to_owned(),
            settings,
            api,
            sessions: Mutex::new(None),
        })
    }

    /// Returns the typed API client.
    pub fn api(&self) -> &CitrixApi {
        &self.api
    }

    /// Reads the delivery group a target names (id, name or `Folder\Name`).
    pub(crate) async fn resolve_group(&self, target: &str) -> ProviderResult<ResolvedGroup> {
        let group = self.api.delivery_group(target).await?.ok_or_else(|| {
            ProviderError::not_found(format!(
                "Citrix delivery group {target:?} not found; list the provider's targets for valid ids and names"
            ))
        })?;
        let id = group
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ProviderError::invalid(format!("Citrix delivery group {target:?} has no Id"))
            })?;
        Ok(ResolvedGroup { id, group })
    }

    /// Returns the site's sessions, reusing a listing younger than [`SESSION_CACHE_TTL`].
    async fn sessions(&self) -> ProviderResult<Arc<Vec<model::Session>>> {
        let mut cached = self.sessions.lock().await;
        if let Some((fetched, sessions)) = cached.as_ref() {
            if fetched.elapsed() < SESSION_CACHE_TTL {
                return Ok(sessions.clone());
            }
        }
        let sessions = Arc::new(self.api.sessions().await?);
        *cached = Some((Instant::now(), sessions.clone()));
        Ok(sessions)
    }

    /// Maps tag ids to names when some machine reports tag ids instead of names; fetches the
    /// site's tags only in that case.
    pub(crate) async fn tag_names(
        &self,
        machines: &[model::Machine],
    ) -> ProviderResult<HashMap<String, String>> {
        let any_id = machines
            .iter()
            .flat_map(|m| m.tags.iter())
            .any(|tag| looks_like_id(tag));
        if !any_id {
            return Ok(HashMap::new());
        }
        let tags = self.api.tags().await?;
        Ok(tags
            .into_iter()
            .filter_map(|tag| Some((tag.id?.to_ascii_lowercase(), tag.name?)))
            .collect())
    }

    /// Returns the gateway tags on a machine as (tag as the machine lists it, container).
    pub(crate) fn gateway_tags(
        &self,
        machine: &model::Machine,
        names: &HashMap<String, String>,
    ) -> Vec<(String, ContainerRef)> {
        machine
            .tags
            .iter()
            .filter_map(|raw| {
                let name = names.get(&raw.to_ascii_lowercase()).unwrap_or(raw);
                let container = parse_version_tag(&self.settings.tag_prefix, name)?;
                Some((raw.clone(), container))
            })
            .collect()
    }

    fn convert_machine(
        &self,
        group: &ResolvedGroup,
        machine: &model::Machine,
        sessions: &SessionIndex,
        names: &HashMap<String, String>,
    ) -> Option<Machine> {
        let id = machine.id.clone().or_else(|| machine.name.clone())?;
        let name = machine.name.clone().unwrap_or_else(|| id.clone());
        Some(Machine {
            state: machine_state(machine, &group.group),
            sessions: sessions.for_machine(&id, &name),
            containers: self
                .gateway_tags(machine, names)
                .into_iter()
                .map(|(_, container)| container)
                .collect(),
            id,
            name,
            dns_name: machine.dns_name.clone(),
            target: group.id.clone(),
        })
    }

    async fn check_site(&self) -> ProviderResult<Health> {
        let me = self.api.me().await?;
        let sites: Vec<&model::Site> = me.customers.iter().flat_map(|c| c.sites.iter()).collect();
        let site = self.api.site().await?;
        let listed = sites.iter().find(|s| {
            s.id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(&site.id))
        });
        let (status, detail) = match listed {
            Some(listed) => (
                HealthStatus::Ok,
                format!(
                    "authenticated to Citrix site {} ({})",
                    listed.name.as_deref().unwrap_or("unnamed"),
                    site.id
                ),
            ),
            None => (
                HealthStatus::Degraded,
                format!(
                    "authenticated, but GET me does not list the configured site {}; check citrix.site_id",
                    site.id
                ),
            ),
        };
        tracing::info!(site_id = %site.id, status = ?status, "checked Citrix site");
        Ok(Health {
            status,
            detail,
            checked_at: chrono::Utc::now(),
        })
    }

    async fn targets(&self) -> ProviderResult<Vec<Target>> {
        let groups = self.api.delivery_groups().await?;
        Ok(groups
            .into_iter()
            .filter_map(|group| {
                let id = group.id.clone()?;
                Some(Target {
                    name: group.name.clone().unwrap_or_else(|| id.clone()),
                    id,
                    kind: TargetKind::DeliveryGroup,
                    machine_count: group.total_desktops,
                })
            })
            .collect())
    }

    async fn machines_page(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let group = self.resolve_group(target).await?;
        let (machines, next_cursor) = self.api.group_machines_page(&group.id, cursor).await?;
        let sessions = SessionIndex::new(&self.sessions().await?);
        let names = self.tag_names(&machines).await?;
        let items = machines
            .iter()
            .filter_map(|machine| self.convert_machine(&group, machine, &sessions, &names))
            .collect();
        Ok(Page { items, next_cursor })
    }
}

/// A delivery group with its id checked.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedGroup {
    pub(crate) id: String,
    pub(crate) group: DeliveryGroup,
}

/// Normalises a machine's state: maintenance (of the machine or its group) first, then
/// draining, then registration. An unknown registration value is kept, never an error.
pub fn machine_state(machine: &model::Machine, group: &DeliveryGroup) -> MachineState {
    let maintenance =
        machine.in_maintenance_mode == Some(true) || group.in_maintenance_mode == Some(true);
    if maintenance {
        return MachineState::Maintenance;
    }
    if machine.draining_until_shutdown == Some(true)
        || machine.will_shutdown_after_use == Some(true)
    {
        return MachineState::Draining;
    }
    match &machine.registration_state {
        Some(RegistrationState::Registered) => MachineState::Ready,
        Some(
            RegistrationState::Unregistered
            | RegistrationState::Initializing
            | RegistrationState::AgentError,
        ) => MachineState::Unregistered,
        Some(RegistrationState::Unknown(raw)) => MachineState::Unknown(raw.clone()),
        None => MachineState::Unknown("RegistrationState not reported".into()),
    }
}

/// Sessions by machine id and by lower-case machine name.
struct SessionIndex {
    by_key: HashMap<String, Vec<Session>>,
}

impl SessionIndex {
    fn new(sessions: &[model::Session]) -> Self {
        let mut by_key: HashMap<String, Vec<Session>> = HashMap::new();
        for session in sessions {
            let Some(machine) = &session.machine else {
                continue;
            };
            // Connected (logging on) and unknown states count as active, so a machine whose
            // user the gateway cannot see clearly is never treated as idle.
            let state = match session.state {
                Some(model::SessionState::Disconnected) => SessionState::Disconnected,
                _ => SessionState::Active,
            };
            let entry = Session {
                user: session.user_name(),
                state,
            };
            let key = machine
                .id
                .clone()
                .or_else(|| machine.name.as_ref().map(|n| n.to_ascii_lowercase()));
            if let Some(key) = key {
                by_key.entry(key).or_default().push(entry);
            }
        }
        Self { by_key }
    }

    fn for_machine(&self, id: &str, name: &str) -> Vec<Session> {
        self.by_key
            .get(id)
            .or_else(|| self.by_key.get(&name.to_ascii_lowercase()))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl Provider for CitrixProvider {
    fn describe(&self) -> Description {
        Description {
            kind: "citrix".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                Capability::PublishApp,
                Capability::TagMachines,
                Capability::Batch,
            ],
            limits: Limits {
                concurrency: self.settings.concurrency,
                requests_per_second: self.settings.requests_per_second,
                max_batch: self.settings.batch_size,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        let span = tracing::info_span!("citrix", provider = %self.name, op = "check");
        self.check_site().instrument(span).await
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        let span = tracing::info_span!("citrix", provider = %self.name, op = "list_targets");
        self.targets().instrument(span).await
    }

    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let span = tracing::info_span!("citrix", provider = %self.name, op = "list_machines", target = %target);
        self.machines_page(target, cursor).instrument(span).await
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        let span =
            tracing::info_span!("citrix", provider = %self.name, op = "observe", target = %target);
        self.observe_versions(target, container_id)
            .instrument(span)
            .await
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        let span = tracing::info_span!(
            "citrix", provider = %self.name, op = "publish", target = %target, container = %container.reference()
        );
        self.publish_version(target, container)
            .instrument(span)
            .await
    }

    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        let span = tracing::info_span!(
            "citrix", provider = %self.name, op = "unpublish", target = %target, container = %container
        );
        self.unpublish_version(target, container)
            .instrument(span)
            .await
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "citrix", provider = %self.name, op = "place", target = %request.target,
            container = %request.container.reference()
        );
        self.place_version(request).instrument(span).await
    }

    async fn plan(
        &self,
        target: &str,
        container: &Container,
        machines: &[String],
    ) -> ProviderResult<Vec<PlannedRequest>> {
        self.plan_version(target, container, machines).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "citrix", provider = %self.name, op = "unplace", target = %request.target,
            container = %request.container_id
        );
        self.unplace_container(request).instrument(span).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(json: serde_json::Value) -> model::Machine {
        serde_json::from_value(json).expect("machine parses")
    }

    #[test]
    fn state_table() {
        let group = DeliveryGroup::default();
        let cases = [
            (
                serde_json::json!({"RegistrationState": "Registered"}),
                MachineState::Ready,
            ),
            (
                serde_json::json!({"RegistrationState": "Registered", "InMaintenanceMode": true}),
                MachineState::Maintenance,
            ),
            (
                serde_json::json!({"RegistrationState": "Registered", "DrainingUntilShutdown": true}),
                MachineState::Draining,
            ),
            (
                serde_json::json!({"RegistrationState": "Registered", "WillShutdownAfterUse": true}),
                MachineState::Draining,
            ),
            (
                serde_json::json!({"RegistrationState": "Unregistered"}),
                MachineState::Unregistered,
            ),
            (
                serde_json::json!({"RegistrationState": "AgentError"}),
                MachineState::Unregistered,
            ),
            (
                serde_json::json!({"RegistrationState": "Hibernating"}),
                MachineState::Unknown("Hibernating".into()),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                machine_state(&machine(json.clone()), &group),
                expected,
                "{json}"
            );
        }
    }

    #[test]
    fn group_maintenance_wins() {
        let group = DeliveryGroup {
            in_maintenance_mode: Some(true),
            ..DeliveryGroup::default()
        };
        let state = machine_state(
            &machine(serde_json::json!({"RegistrationState": "Registered"})),
            &group,
        );
        assert_eq!(state, MachineState::Maintenance);
    }

    #[test]
    fn sessions_join_by_id_and_name() {
        let sessions: Vec<model::Session> = serde_json::from_value(serde_json::json!([
            {"State": "Active", "Machine": {"Id": "m1"}, "UntrustedUserName": "HOSP\\nurse1"},
            {"State": "Disconnected", "Machine": {"Name": "HOSP\\EHR-2"}, "User": {"SamName": "HOSP\\dr2"}},
            {"State": "Connected", "Machine": {"Id": "m1"}},
            {"State": "Reconnecting", "Machine": {"Id": "m1"}},
        ]))
        .expect("sessions parse");
        let index = SessionIndex::new(&sessions);
        let on_m1 = index.for_machine("m1", "HOSP\\EHR-1");
        assert_eq!(on_m1.len(), 3);
        assert!(on_m1.iter().all(|s| s.state == SessionState::Active));
        let on_m2 = index.for_machine("m2", "hosp\\ehr-2");
        assert_eq!(on_m2.len(), 1);
        assert_eq!(on_m2[0].state, SessionState::Disconnected);
        assert_eq!(on_m2[0].user, "HOSP\\dr2");
    }
}
