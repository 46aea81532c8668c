//! [`HorizonProvider`]: the [`Provider`] trait on a Horizon pod, and placement through the
//! agent channel. Inventory lives in `inventory.rs`, publishing in `publish.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use broker_http::{BearerAuthenticator, BrokerClient, ClientConfig, RetryConfig, TokenCache};
use tokio::sync::Mutex;
use tracing::Instrument;
use vdi_contracts::agent::observe_agent;
use vdi_contracts::{
    validate_identifier, validate_version, AgentChannel, AgentContainerState, AgentReport,
    Capability, Container, ContainerRef, Description, Health, HealthStatus, Limits, Machine,
    MachineOutcome, MachineResult, Observation, Page, PlaceOutcome, PlaceRequest, Provider,
    ProviderError, ProviderResult, Publication, Target, UnplaceRequest,
};

use crate::auth::{logout, HorizonTokenSource};
use crate::client::{Filter, HorizonApi, Resource};
use crate::config::{HorizonConfig, HorizonSettings};
use crate::error::HorizonClassifier;
use crate::guard::horizon_guard;
use crate::inventory::{Inventory, ResolvedTarget};
use crate::model::{DesktopPool, SessionInfo};

/// Token refresh ahead of expiry; Horizon tokens carry no expiry, so this never triggers and
/// only a 401 starts a refresh.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// Cached pools and farms with the time they were listed.
type TargetCache = Option<(Instant, Arc<Inventory>)>;

/// Cached session listings by target id, with the time they were listed.
type SessionCache = HashMap<String, (Instant, Arc<Vec<SessionInfo>>)>;

/// Provider for one Horizon pod (Connection Server cluster).
#[derive(Debug)]
pub struct HorizonProvider {
    pub(crate) name: String,
    pub(crate) settings: HorizonSettings,
    pub(crate) api: HorizonApi,
    agent: Arc<dyn AgentChannel>,
    source: HorizonTokenSource,
    authenticator: Arc<BearerAuthenticator<HorizonTokenSource>>,
    pub(crate) targets_cache: Mutex<TargetCache>,
    pub(crate) sessions_cache: Mutex<SessionCache>,
    /// `(machine, container id, version)` whose users were sent a notice already, so a
    /// repeated `place` does not notify them again.
    notified: std::sync::Mutex<HashSet<(String, String, String)>>,
}

impl HorizonProvider {
    /// Validates the configuration and builds the HTTP client with the Horizon guard, error
    /// classifier, limits and authenticator. Sends nothing; `check` is the first call.
    ///
    /// # Errors
    /// `invalid` when the configuration is incomplete or wrong (the message names the key),
    /// or when the HTTP client cannot be built.
    pub fn new(
        name: &str,
        config: HorizonConfig,
        agent: Arc<dyn AgentChannel>,
    ) -> Result<Self, ProviderError> {
        let settings = config
            .build()
            .map_err(|error| ProviderError::invalid(format!("provider {name}: {error}")))?;
        let client_config = ClientConfig {
            provider: name.to_owned(),
            base_url: settings.api_base_url.clone(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: settings.request_timeout,
            // Horizon publishes no retry guidance; the shared defaults (jittered, 4 retries,
            // 120 s deadline, Retry-After and X-Rate-Limit-Retry-After-Seconds) fit it.
            retry: RetryConfig::default(),
            concurrency: settings.concurrency as usize,
            requests_per_second: settings.requests_per_second,
            user_agent: format!("vdi-gateway/{}", env!("CARGO_PKG_VERSION")),
            request_id_header: None,
            allow_plain_http_loopback: settings.allow_plain_http_loopback,
        };
        let client =
            BrokerClient::new(client_config, horizon_guard(), Arc::new(HorizonClassifier))?;
        let source = HorizonTokenSource::new(
            settings.username.clone(),
            settings.password.clone(),
            settings.domain.clone(),
        );
        let authenticator = Arc::new(BearerAuthenticator::new(TokenCache::new(
            source.clone(),
            REFRESH_AHEAD,
        )));
        let client = client.with_authenticator(authenticator.clone());
        let api = HorizonApi::new(client, settings.page_size, settings.max_concurrent_queries);
        Ok(Self {
            name: name.to_owned(),
            settings,
            api,
            agent,
            source,
            authenticator,
            targets_cache: Mutex::new(None),
            sessions_cache: Mutex::new(HashMap::new()),
            notified: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// Returns the typed API client.
    pub fn api(&self) -> &HorizonApi {
        &self.api
    }

    async fn check_pod(&self) -> ProviderResult<Health> {
        self.api
            .page::<DesktopPool>(Resource::DesktopPools, None, 1)
            .await?;
        let version = self
            .api
            .confirmed_version(Resource::DesktopPools)
            .unwrap_or("unknown");
        tracing::info!(desktop_pools_version = version, "Checked Horizon pod.");
        Ok(Health {
            status: HealthStatus::Ok,
            detail: format!(
                "authenticated to Horizon as {}\\{}; desktop-pools API {version}",
                self.settings.domain, self.settings.username
            ),
            checked_at: chrono::Utc::now(),
        })
    }

    pub(crate) async fn observe_versions(
        &self,
        target: &str,
        container_id: &str,
    ) -> ProviderResult<Vec<Observation>> {
        let resolved = self.resolve(target).await?;
        let machines = self.all_machines(&resolved).await?;
        let reports = self.agent.reports(&self.name, container_id).await?;
        Ok(machines
            .iter()
            .map(|machine| observe_agent(&reports, &machine.id, &machine.id))
            .collect())
    }

    pub(crate) async fn place_version(
        &self,
        request: &PlaceRequest,
    ) -> ProviderResult<PlaceOutcome> {
        let container = &request.container;
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let resolved = self.resolve(&request.target).await?;
        let machines = self.all_machines(&resolved).await?;
        let reports = self.agent.reports(&self.name, &container.id).await?;

        let mut outcome = PlaceOutcome::default();
        let mut accepted = Vec::new();
        for requested in &request.machines {
            let result = match eligible(&resolved, &machines, requested) {
                Err(result) => result,
                Ok(machine) => {
                    let set = self
                        .agent
                        .set_desired(&self.name, &machine.id, container, request.activation)
                        .await;
                    match set {
                        Err(error) => MachineResult::Failed(error.to_body()),
                        Ok(())
                            if installed_version(&reports, &machine.id)
                                == Some(&container.version) =>
                        {
                            MachineResult::Applied
                        }
                        Ok(()) => {
                            accepted.push(machine.id.clone());
                            MachineResult::Accepted
                        }
                    }
                }
            };
            outcome.machines.push(MachineOutcome {
                machine: requested.clone(),
                result,
            });
        }
        if self.settings.send_messages && !accepted.is_empty() {
            self.notify_users(&resolved, container, &accepted, &mut outcome)
                .await;
        }
        log_outcome("Placed container version.", &outcome);
        Ok(outcome)
    }

    pub(crate) async fn unplace_container(
        &self,
        request: &UnplaceRequest,
    ) -> ProviderResult<PlaceOutcome> {
        let resolved = self.resolve(&request.target).await?;
        let machines = self.all_machines(&resolved).await?;
        let reports = self
            .agent
            .reports(&self.name, &request.container_id)
            .await?;
        let mut outcome = PlaceOutcome::default();
        for requested in &request.machines {
            let result = match eligible(&resolved, &machines, requested) {
                Err(result) => result,
                Ok(machine) => {
                    let cleared = self
                        .agent
                        .clear_desired(&self.name, &machine.id, &request.container_id)
                        .await;
                    match cleared {
                        Err(error) => MachineResult::Failed(error.to_body()),
                        Ok(()) if installed_version(&reports, &machine.id).is_none() => {
                            MachineResult::Applied
                        }
                        Ok(()) => MachineResult::Accepted,
                    }
                }
            };
            outcome.machines.push(MachineOutcome {
                machine: requested.clone(),
                result,
            });
        }
        log_outcome("Withdrew container.", &outcome);
        Ok(outcome)
    }

    /// Sends the configured notice to connected users on machines that accepted a new version,
    /// once per machine and version. Failures are logged, and the placement result stays as it is.
    async fn notify_users(
        &self,
        resolved: &ResolvedTarget,
        container: &Container,
        machines: &[String],
        outcome: &mut PlaceOutcome,
    ) {
        let key = |machine: &String| {
            (
                machine.clone(),
                container.id.clone(),
                container.version.clone(),
            )
        };
        let pending: HashSet<&String> = {
            let notified = self.notified.lock().unwrap_or_else(PoisonError::into_inner);
            machines
                .iter()
                .filter(|m| !notified.contains(&key(m)))
                .collect()
        };
        if pending.is_empty() {
            return;
        }
        // Only connected users can read a notice, so the query filters on the session state.
        let filter = Filter::And(vec![
            resolved.session_filter(),
            Filter::Equals("session_state", "CONNECTED".to_owned()),
        ]);
        let sessions: Vec<SessionInfo> = match self.api.all(Resource::Sessions, Some(&filter)).await
        {
            Ok(sessions) => sessions,
            Err(error) => {
                tracing::warn!(error = %error, "Listing sessions for the update notice failed; no notice sent.");
                return;
            }
        };
        let session_ids: Vec<String> = sessions
            .iter()
            .filter(|s| {
                let host = s.machine_id.as_ref().or(s.rds_server_id.as_ref());
                host.is_some_and(|h| pending.contains(h))
            })
            .filter_map(|s| s.id.clone())
            .collect();
        if !session_ids.is_empty() {
            let text = self
                .settings
                .message_text
                .replace("{app}", container.display_name())
                .replace("{version}", &container.version);
            let message = format!("{}: {text}", self.settings.message_title);
            match self.api.send_message(&session_ids, &message).await {
                Ok((write, failures)) => {
                    outcome.writes.push(write);
                    for failure in failures {
                        tracing::warn!(session = %failure.id, detail = %failure.message, "Horizon did not deliver the update notice to a session.");
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, sessions = session_ids.len(), "Sending the update notice failed; the placement stands.");
                }
            }
        }
        let mut notified = self.notified.lock().unwrap_or_else(PoisonError::into_inner);
        notified.extend(pending.into_iter().map(key));
    }
}

/// Finds a requested machine by id, or by name ignoring case, and checks that it is ready.
/// `Err` carries the final result for a missing or excluded machine.
fn eligible<'a>(
    resolved: &ResolvedTarget,
    machines: &'a [Machine],
    requested: &str,
) -> Result<&'a Machine, MachineResult> {
    let found = machines.iter().find(|m| m.id == requested).or_else(|| {
        machines
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(requested))
    });
    let Some(machine) = found else {
        let error = ProviderError::not_found(format!(
            "machine {requested:?} is not in Horizon {}",
            resolved.display()
        ));
        return Err(MachineResult::Failed(error.to_body()));
    };
    match machine.state.exclusion_reason() {
        Some(reason) => Err(MachineResult::Excluded(reason)),
        None => Ok(machine),
    }
}

/// Returns the version the agent of `machine` reports installed, if any.
fn installed_version<'a>(reports: &'a [AgentReport], machine: &str) -> Option<&'a String> {
    reports
        .iter()
        .find(|r| r.machine == machine && r.state == AgentContainerState::Installed)
        .map(|r| &r.version)
}

fn log_outcome(message: &'static str, outcome: &PlaceOutcome) {
    let count =
        |f: fn(&MachineResult) -> bool| outcome.machines.iter().filter(|m| f(&m.result)).count();
    tracing::info!(
        applied = count(|r| matches!(r, MachineResult::Applied)),
        accepted = count(|r| matches!(r, MachineResult::Accepted)),
        excluded = count(|r| matches!(r, MachineResult::Excluded(_))),
        failed = count(|r| matches!(r, MachineResult::Failed(_))),
        "{message}"
    );
}

#[async_trait]
impl Provider for HorizonProvider {
    fn describe(&self) -> Description {
        Description {
            kind: "horizon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                Capability::PublishApp,
                Capability::EntitleGroups,
                Capability::AgentPlacement,
                Capability::SessionMessages,
            ],
            limits: Limits {
                concurrency: self.settings.concurrency,
                requests_per_second: self.settings.requests_per_second,
                // Each place call lists the target's machines once, so batches as large as a
                // page cost one listing per page of machines.
                max_batch: self.settings.page_size,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        let span = tracing::info_span!("horizon", provider = %self.name, op = "check");
        self.check_pod().instrument(span).await
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        let span = tracing::info_span!("horizon", provider = %self.name, op = "list_targets");
        self.targets().instrument(span).await
    }

    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let span = tracing::info_span!("horizon", provider = %self.name, op = "list_machines", target = %target);
        self.machines_page(target, cursor).instrument(span).await
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        let span =
            tracing::info_span!("horizon", provider = %self.name, op = "observe", target = %target);
        self.observe_versions(target, container_id)
            .instrument(span)
            .await
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        let span = tracing::info_span!(
            "horizon", provider = %self.name, op = "publish", target = %target, container = %container.reference()
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
            "horizon", provider = %self.name, op = "unpublish", target = %target, container = %container
        );
        self.unpublish_version(target, container)
            .instrument(span)
            .await
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "horizon", provider = %self.name, op = "place", target = %request.target,
            container = %request.container.reference()
        );
        self.place_version(request).instrument(span).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        let span = tracing::info_span!(
            "horizon", provider = %self.name, op = "unplace", target = %request.target,
            container = %request.container_id
        );
        self.unplace_container(request).instrument(span).await
    }

    async fn shutdown(&self) {
        let span = tracing::info_span!("horizon", provider = %self.name, op = "shutdown");
        logout(self.api.client(), &self.source, &self.authenticator)
            .instrument(span)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use vdi_contracts::{MachineState, MemoryAgentChannel};

    use super::*;

    fn machine(id: &str, state: MachineState) -> Machine {
        Machine {
            id: id.into(),
            name: format!("HOSP-{id}"),
            dns_name: None,
            target: "p1".into(),
            state,
            sessions: Vec::new(),
            containers: Vec::new(),
        }
    }

    fn target() -> ResolvedTarget {
        ResolvedTarget::Pool("p1".into(), DesktopPool::default())
    }

    #[test]
    fn eligible_finds_by_id_and_name() {
        let machines = vec![machine("m1", MachineState::Ready)];
        assert!(eligible(&target(), &machines, "m1").is_ok());
        assert!(eligible(&target(), &machines, "hosp-m1").is_ok());
    }

    #[test]
    fn eligible_excludes_maintenance() {
        let machines = vec![machine("m1", MachineState::Maintenance)];
        let result = eligible(&target(), &machines, "m1").expect_err("excluded");
        assert!(matches!(result, MachineResult::Excluded(_)), "{result:?}");
    }

    #[test]
    fn eligible_unknown_machine_is_not_found() {
        let result = eligible(&target(), &[], "m9").expect_err("missing");
        let MachineResult::Failed(body) = result else {
            panic!("expected a failure, got {result:?}");
        };
        assert_eq!(body.kind, vdi_contracts::ErrorKind::NotFound);
        assert!(body.message.contains("m9"), "{}", body.message);
    }

    #[tokio::test]
    async fn installed_version_reads_installed_reports_only() {
        let agent = MemoryAgentChannel::default();
        let container = Container {
            id: "epic".into(),
            version: "1.0".into(),
            display_name: None,
            launch: vdi_contracts::Launch {
                executable: "p.exe".into(),
                arguments: None,
                working_directory: None,
            },
        };
        agent
            .set_desired("hz", "m1", &container, vdi_contracts::Activation::Immediate)
            .await
            .expect("stored");
        assert!(
            installed_version(&agent.reports("hz", "epic").await.expect("reports"), "m1").is_none()
        );
        agent.install_all();
        let reports = agent.reports("hz", "epic").await.expect("reports");
        assert_eq!(
            installed_version(&reports, "m1").map(String::as_str),
            Some("1.0")
        );
        agent
            .clear_desired("hz", "m1", "epic")
            .await
            .expect("cleared");
        agent.install_all();
        let reports = agent.reports("hz", "epic").await.expect("reports");
        assert!(installed_version(&reports, "m1").is_none());
    }
}
