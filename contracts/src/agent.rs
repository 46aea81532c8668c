//! The agent channel, as providers see it.
//!
//! Brokers without a native placement primitive (Horizon VDI pools, Windows 365 Business,
//! physical endpoints) deliver through an agent on each machine that polls the gateway. The
//! gateway implements [`AgentChannel`] and hands it to such providers: `place` records the
//! desired container of each machine, and `observe` reads back what the agents reported.
//! Agents also report their machine's user sessions, which [`agent_blocking_reason`] weighs
//! against the activation mode.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Activation, Container, InstallFailure, Observation, ProviderResult, Session};

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
    /// Sessions of the latest check-in, or `None` when that check-in carried no session list,
    /// as from agents that predate session reporting. An empty list means no session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<AgentSessions>,
}

/// User sessions an agent reported for its machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSessions {
    /// Sessions open at the check-in; empty when no user had a session.
    pub sessions: Vec<Session>,
    /// Time of the check-in that carried them.
    pub reported_at: DateTime<Utc>,
}

impl AgentMachine {
    /// Returns the sessions of the latest check-in, when they may be trusted at `now`.
    ///
    /// # Errors
    /// Returns why the sessions are unknown: the agent never reported any, or its latest
    /// report is older than `stale_after`.
    pub fn current_sessions(
        &self,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Result<&[Session], String> {
        let Some(reported) = &self.sessions else {
            return Err(format!(
                "the agent of {} reports no sessions (an agent older than session reporting)",
                self.machine
            ));
        };
        let limit = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
        if now.signed_duration_since(reported.reported_at) > limit {
            return Err(format!(
                "the agent of {} last reported sessions at {}, more than {} ago",
                self.machine,
                reported
                    .reported_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                format_limit(stale_after)
            ));
        }
        Ok(&reported.sessions)
    }

    /// Returns the sessions of the latest check-in when they may be trusted at `now`, and
    /// none otherwise. A provider lists these; its `place` defers machines whose sessions are
    /// unknown through [`agent_blocking_reason`].
    pub fn trusted_sessions(&self, now: DateTime<Utc>, stale_after: Duration) -> Vec<Session> {
        self.current_sessions(now, stale_after)
            .map(<[Session]>::to_vec)
            .unwrap_or_default()
    }
}

/// Inputs for placing a container version through one machine's agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentPlacement<'a> {
    /// Provider the agent belongs to.
    pub provider: &'a str,
    /// Id the machine's agent polls under.
    pub agent_id: &'a str,
    /// The machine's registration, read at placement time so its sessions are current.
    pub registration: Option<&'a AgentMachine>,
    /// Latest reports of the container, to tell an installed version from a pending one.
    pub reports: &'a [AgentReport],
    /// Check-in age after which the agent's sessions are unknown.
    pub stale_after: Duration,
}

/// Places `container` through an agent: defers it when sessions block `activation`, records
/// the desired version otherwise, and reports it applied once the agent has it installed.
pub async fn place_through_agent(
    channel: &dyn AgentChannel,
    placement: AgentPlacement<'_>,
    container: &Container,
    activation: Activation,
    now: DateTime<Utc>,
) -> crate::MachineResult {
    use crate::MachineResult;

    let blocking = agent_blocking_reason(
        activation,
        placement.registration,
        now,
        placement.stale_after,
    );
    if let Some(reason) = blocking {
        return MachineResult::Deferred(reason);
    }
    let set = channel
        .set_desired(
            placement.provider,
            placement.agent_id,
            container,
            activation,
        )
        .await;
    let installed = placement.reports.iter().any(|r| {
        r.machine == placement.agent_id
            && r.state == AgentContainerState::Installed
            && r.version == container.version
    });
    match set {
        Err(error) => MachineResult::Failed(error.to_body()),
        Ok(()) if installed => MachineResult::Applied,
        Ok(()) => MachineResult::Accepted,
    }
}

/// Returns the observation of `machine` from the latest agent reports of one container:
/// the installed version, or the failed install when that is the latest report. `agent_id`
/// is the id the machine's agent reports under, which may differ from the listed id.
pub fn observe_agent(reports: &[AgentReport], agent_id: &str, machine: &str) -> Observation {
    let report = reports.iter().find(|r| r.machine == agent_id);
    let version = report
        .filter(|r| r.state == AgentContainerState::Installed)
        .map(|r| r.version.clone());
    let failure = report
        .filter(|r| r.state == AgentContainerState::Failed)
        .map(|r| InstallFailure {
            version: r.version.clone(),
            detail: r.detail.clone(),
        });
    Observation {
        machine: machine.to_owned(),
        version,
        failure,
    }
}

/// Reads the registrations of `machines` for `provider`, keyed by machine id; machines no
/// agent registered are absent. Sends nothing to the store when `machines` is empty.
///
/// # Errors
/// Fails when the gateway's store fails.
pub async fn registrations_by_id(
    channel: &dyn AgentChannel,
    provider: &str,
    machines: &[String],
) -> ProviderResult<std::collections::HashMap<String, AgentMachine>> {
    if machines.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let found = channel.machines_by_id(provider, machines).await?;
    Ok(found.into_iter().map(|m| (m.machine.clone(), m)).collect())
}

/// Decides whether an agent-delivered machine may change now under `activation`, from the
/// sessions its agent reported. Returns the reason to defer it, or `None` to go ahead.
///
/// `agent` is the machine's registration, `None` when no agent checked in. The sessions are
/// unknown without an agent, without a session report, or with a report older than
/// `stale_after`. Then `when_idle` and `next_logon` defer the machine, because the gateway
/// cannot tell whether a user is signed in. [`crate::SessionState`] counts brokers' unknown
/// session states as active for the same reason. `immediate` never waits.
pub fn agent_blocking_reason(
    activation: Activation,
    agent: Option<&AgentMachine>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> Option<String> {
    if activation == Activation::Immediate {
        return None;
    }
    let sessions = match agent {
        None => Err("no agent has checked in for this machine".to_owned()),
        Some(agent) => agent.current_sessions(now, stale_after),
    };
    match sessions {
        Ok(sessions) => activation.blocking_reason(sessions),
        Err(unknown) => Some(format!(
            "sessions unknown: {unknown}; {} waits until the agent reports them (activation \
             immediate does not wait)",
            activation.as_str()
        )),
    }
}

/// Formats a staleness limit in whole hours when it is one, otherwise in seconds.
fn format_limit(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, rest) = (seconds / 3600, seconds % 3600);
    if hours > 0 && rest == 0 {
        format!("{hours} h")
    } else {
        format!("{seconds} s")
    }
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

    /// Returns the registrations of `machines` for `provider`, with the sessions of their
    /// latest check-in; machines no agent registered are absent. The default filters
    /// [`AgentChannel::machines`].
    ///
    /// # Errors
    /// Fails when the gateway's store fails.
    async fn machines_by_id(
        &self,
        provider: &str,
        machines: &[String],
    ) -> ProviderResult<Vec<AgentMachine>> {
        let requested: std::collections::HashSet<&str> =
            machines.iter().map(String::as_str).collect();
        let mut registered = self.machines(provider).await?;
        registered.retain(|m| requested.contains(m.machine.as_str()));
        Ok(registered)
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

    /// Registers a machine for `provider` as a check-in without sessions would (an agent
    /// older than session reporting), replacing its labels and setting its last check-in to
    /// now.
    pub fn register(&self, provider: &str, machine: &str, labels: BTreeMap<String, String>) {
        self.check_in(provider, machine, labels, None, Utc::now());
    }

    /// Records a check-in of `machine` at `at`, as its agent's report would: labels and
    /// sessions are replaced, and `None` sessions mean the check-in carried none.
    pub fn check_in(
        &self,
        provider: &str,
        machine: &str,
        labels: BTreeMap<String, String>,
        sessions: Option<Vec<Session>>,
        at: DateTime<Utc>,
    ) {
        let entry = AgentMachine {
            machine: machine.to_owned(),
            labels,
            last_seen: at,
            sessions: sessions.map(|sessions| AgentSessions {
                sessions,
                reported_at: at,
            }),
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
    use crate::SessionState;

    fn report(machine: &str, version: &str, state: AgentContainerState) -> AgentReport {
        AgentReport {
            machine: machine.into(),
            container_id: "epic".into(),
            version: version.into(),
            state,
            detail: "disk full".into(),
        }
    }

    #[test]
    fn observe_agent_maps_reports() {
        let reports = [
            report("agent-1", "2.0", AgentContainerState::Installed),
            report("agent-2", "2.0", AgentContainerState::Failed),
            report("agent-3", "2.0", AgentContainerState::Removed),
        ];

        let installed = observe_agent(&reports, "agent-1", "m-1");
        assert_eq!(installed.machine, "m-1");
        assert_eq!(installed.version.as_deref(), Some("2.0"));
        assert_eq!(installed.failure, None);

        let failed = observe_agent(&reports, "agent-2", "m-2");
        assert_eq!(failed.version, None);
        let failure = failed.failure.expect("failure reported");
        assert_eq!(failure.version, "2.0");
        assert_eq!(failure.detail, "disk full");

        let removed = observe_agent(&reports, "agent-3", "m-3");
        assert_eq!(removed.version, None);
        assert_eq!(removed.failure, None);

        let silent = observe_agent(&reports, "agent-4", "m-4");
        assert_eq!(silent.version, None);
        assert_eq!(silent.failure, None);
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn session(user: &str, state: SessionState) -> Session {
        Session {
            user: user.to_owned(),
            state,
        }
    }

    fn agent(sessions: Option<Vec<Session>>, age: chrono::Duration) -> AgentMachine {
        let at = Utc::now() - age;
        AgentMachine {
            machine: "LT-0001".into(),
            labels: BTreeMap::new(),
            last_seen: at,
            sessions: sessions.map(|sessions| AgentSessions {
                sessions,
                reported_at: at,
            }),
        }
    }

    #[test]
    fn blocking_reason_table() {
        let fresh = chrono::Duration::minutes(5);
        let stale = chrono::Duration::hours(25);
        let active = vec![session("HOSP\\nurse1", SessionState::Active)];
        let disconnected = vec![session("HOSP\\nurse2", SessionState::Disconnected)];
        let cases: [(&str, Activation, Option<AgentMachine>, bool); 14] = [
            (
                "active, when_idle",
                Activation::WhenIdle,
                Some(agent(Some(active.clone()), fresh)),
                true,
            ),
            (
                "active, next_logon",
                Activation::NextLogon,
                Some(agent(Some(active.clone()), fresh)),
                true,
            ),
            (
                "active, immediate",
                Activation::Immediate,
                Some(agent(Some(active.clone()), fresh)),
                false,
            ),
            (
                "disconnected, when_idle",
                Activation::WhenIdle,
                Some(agent(Some(disconnected.clone()), fresh)),
                false,
            ),
            (
                "disconnected, next_logon",
                Activation::NextLogon,
                Some(agent(Some(disconnected.clone()), fresh)),
                true,
            ),
            (
                "zero sessions, when_idle",
                Activation::WhenIdle,
                Some(agent(Some(Vec::new()), fresh)),
                false,
            ),
            (
                "zero sessions, next_logon",
                Activation::NextLogon,
                Some(agent(Some(Vec::new()), fresh)),
                false,
            ),
            (
                "never reported, when_idle",
                Activation::WhenIdle,
                Some(agent(None, fresh)),
                true,
            ),
            (
                "never reported, next_logon",
                Activation::NextLogon,
                Some(agent(None, fresh)),
                true,
            ),
            (
                "never reported, immediate",
                Activation::Immediate,
                Some(agent(None, fresh)),
                false,
            ),
            (
                "stale zero sessions, when_idle",
                Activation::WhenIdle,
                Some(agent(Some(Vec::new()), stale)),
                true,
            ),
            (
                "stale zero sessions, immediate",
                Activation::Immediate,
                Some(agent(Some(Vec::new()), stale)),
                false,
            ),
            ("no agent, when_idle", Activation::WhenIdle, None, true),
            ("no agent, immediate", Activation::Immediate, None, false),
        ];
        for (case, activation, agent, blocked) in cases {
            let reason = agent_blocking_reason(activation, agent.as_ref(), Utc::now(), DAY);
            assert_eq!(reason.is_some(), blocked, "{case}: {reason:?}");
        }
    }

    #[test]
    fn unknown_sessions_name_the_cause() {
        let never = agent(None, chrono::Duration::zero());
        let reason = agent_blocking_reason(Activation::WhenIdle, Some(&never), Utc::now(), DAY)
            .expect("deferred");
        assert!(reason.contains("reports no sessions"), "{reason}");
        assert!(reason.contains("when_idle"), "{reason}");

        let stale = agent(Some(Vec::new()), chrono::Duration::hours(30));
        let reason = agent_blocking_reason(Activation::NextLogon, Some(&stale), Utc::now(), DAY)
            .expect("deferred");
        assert!(reason.contains("more than 24 h ago"), "{reason}");
    }

    #[test]
    fn fresh_sessions_are_returned() {
        let reported = vec![session("HOSP\\nurse1", SessionState::Active)];
        let machine = agent(Some(reported.clone()), chrono::Duration::minutes(1));
        let sessions = machine
            .current_sessions(Utc::now(), DAY)
            .expect("fresh sessions");
        assert_eq!(sessions, reported.as_slice());
    }

    #[test]
    fn session_limit_is_inclusive() {
        let now = Utc::now();
        let mut machine = agent(Some(Vec::new()), chrono::Duration::zero());
        if let Some(sessions) = machine.sessions.as_mut() {
            sessions.reported_at = now - chrono::Duration::hours(24);
        }
        assert!(machine.current_sessions(now, DAY).is_ok());
        assert!(machine
            .current_sessions(now + chrono::Duration::seconds(1), DAY)
            .is_err());
    }

    #[tokio::test]
    async fn check_in_replaces_sessions() {
        let channel = MemoryAgentChannel::default();
        let active = vec![session("HOSP\\nurse1", SessionState::Active)];
        channel.check_in(
            "p",
            "LT-1",
            BTreeMap::new(),
            Some(active.clone()),
            Utc::now(),
        );
        let machines = channel.machines("p").await.expect("machines");
        let reported = machines[0].sessions.as_ref().expect("sessions reported");
        assert_eq!(reported.sessions, active);

        channel.register("p", "LT-1", BTreeMap::new());
        let machines = channel.machines("p").await.expect("machines");
        assert_eq!(machines[0].sessions, None);
    }

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
    async fn machines_by_id_filters() {
        let channel = MemoryAgentChannel::default();
        for machine in ["LT-1", "LT-2", "LT-3"] {
            channel.register("p", machine, BTreeMap::new());
        }
        channel.register("other", "LT-1", BTreeMap::new());
        let requested = vec!["LT-1".to_owned(), "LT-3".to_owned(), "LT-9".to_owned()];
        let found = channel
            .machines_by_id("p", &requested)
            .await
            .expect("machines");
        let ids: Vec<&str> = found.iter().map(|m| m.machine.as_str()).collect();
        assert_eq!(ids, ["LT-1", "LT-3"]);
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
