//! The poll, install and report loop of the simulated agents.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use tokio::sync::watch;

use super::config::AgentFleetConfig;
use super::wire::{DesiredState, Report, ReportedContainer, ReportedSession};

/// Timeout of one request to the gateway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one agent remembers between polls.
#[derive(Debug, Default)]
pub(crate) struct MachineAgent {
    /// `ETag` of the last desired state that was reported successfully.
    pub etag: Option<String>,
    /// Container id to installed version.
    pub installed: BTreeMap<String, String>,
    /// Sessions open on the machine now; `None` when the agent does not report sessions.
    pub sessions: Option<Vec<ReportedSession>>,
    /// The latest report the gateway accepted; `None` before the first.
    pub last_report: Option<SentReport>,
}

/// What an accepted report carried about sessions, and when it was sent.
#[derive(Debug, Clone)]
pub(crate) struct SentReport {
    pub sessions: Option<Vec<ReportedSession>>,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct FleetCounters {
    pub polls: AtomicU64,
    pub not_modified: AtomicU64,
    pub reports: AtomicU64,
    pub check_ins: AtomicU64,
    pub errors: AtomicU64,
}

/// State every worker of one fleet shares.
#[derive(Debug)]
pub(crate) struct FleetShared {
    pub config: AgentFleetConfig,
    pub http: reqwest::Client,
    pub agents: Mutex<BTreeMap<String, MachineAgent>>,
    pub counters: FleetCounters,
}

/// Why one poll cycle failed; logged and counted, then retried on the next poll.
#[derive(Debug)]
enum PollError {
    Transport(reqwest::Error),
    Status(&'static str, StatusCode),
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollError::Transport(error) => write!(f, "request failed: {error}"),
            PollError::Status(what, status) => write!(f, "{what} returned HTTP {status}"),
        }
    }
}

impl FleetShared {
    pub fn new(config: AgentFleetConfig) -> Self {
        let agents = config
            .machines
            .iter()
            .map(|m| {
                let agent = MachineAgent {
                    sessions: config.initial_sessions(m),
                    ..MachineAgent::default()
                };
                (m.clone(), agent)
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            agents: Mutex::new(agents),
            counters: FleetCounters::default(),
        }
    }

    pub fn lock_agents(&self) -> MutexGuard<'_, BTreeMap<String, MachineAgent>> {
        // Agents update their entry in one step, so an entry behind a poisoned lock is whole.
        self.agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.gateway_url.trim_end_matches('/'))
    }

    /// Polls once for `machine` and, when the desired state changed, installs, removes and
    /// reports. After a 304 it sends a check-in when one is due.
    async fn poll_once(&self, machine: &str) -> Result<(), PollError> {
        let etag = self
            .lock_agents()
            .get(machine)
            .and_then(|agent| agent.etag.clone());
        let mut request = self
            .http
            .get(self.url("/v1/agent/desired"))
            .query(&[("machine", machine)])
            .header(AUTHORIZATION, format!("Bearer {}", self.config.token));
        if let Some(etag) = &etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(PollError::Transport)?;
        match response.status() {
            StatusCode::NOT_MODIFIED => {
                self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                return self.check_in_if_due(machine).await;
            }
            StatusCode::OK => {}
            status => return Err(PollError::Status("GET /v1/agent/desired", status)),
        }
        let new_etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let desired: DesiredState = response.json().await.map_err(PollError::Transport)?;

        tokio::time::sleep(self.config.install_delay).await;
        let (report, installed) = self.apply(machine, &desired);
        self.send_report(&report).await?;
        if let Some(agent) = self.lock_agents().get_mut(machine) {
            agent.installed = installed;
            agent.etag = new_etag;
            agent.last_report = Some(SentReport {
                sessions: report.sessions.clone(),
                at: Instant::now(),
            });
        }
        // Counted after the update, so a caller that reads the count also finds the change.
        self.counters.reports.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends a check-in (a report without containers) when the machine's sessions changed
    /// since the last accepted report or `report_interval` has passed.
    async fn check_in_if_due(&self, machine: &str) -> Result<(), PollError> {
        let due = self.lock_agents().get(machine).and_then(|agent| {
            let changed_or_old = agent.last_report.as_ref().is_none_or(|last| {
                last.sessions != agent.sessions || last.at.elapsed() >= self.config.report_interval
            });
            changed_or_old.then(|| agent.sessions.clone())
        });
        let Some(sessions) = due else {
            return Ok(());
        };
        let report = Report {
            machine: machine.to_string(),
            containers: Vec::new(),
            sessions,
        };
        self.send_report(&report).await?;
        if let Some(agent) = self.lock_agents().get_mut(machine) {
            agent.last_report = Some(SentReport {
                sessions: report.sessions,
                at: Instant::now(),
            });
        }
        self.counters.check_ins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Posts a report and expects 204.
    async fn send_report(&self, report: &Report) -> Result<(), PollError> {
        let response = self
            .http
            .post(self.url("/v1/agent/report"))
            .header(AUTHORIZATION, format!("Bearer {}", self.config.token))
            .json(report)
            .send()
            .await
            .map_err(PollError::Transport)?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(PollError::Status(
                "POST /v1/agent/report",
                response.status(),
            ));
        }
        Ok(())
    }

    /// Computes the report and the installed set after applying `desired`; the caller
    /// keeps the new set only once the report is accepted.
    fn apply(&self, machine: &str, desired: &DesiredState) -> (Report, BTreeMap<String, String>) {
        let fails = self.config.fail_machines.iter().any(|m| m == machine);
        let (current, sessions) = self
            .lock_agents()
            .get(machine)
            .map(|agent| (agent.installed.clone(), agent.sessions.clone()))
            .unwrap_or_default();
        let mut installed = BTreeMap::new();
        let mut containers = Vec::new();
        for container in &desired.containers {
            let (state, detail) = if fails {
                ("failed", "simulated install failure")
            } else {
                installed.insert(container.id.clone(), container.version.clone());
                ("installed", "")
            };
            containers.push(ReportedContainer {
                id: container.id.clone(),
                version: container.version.clone(),
                state: state.to_string(),
                detail: detail.to_string(),
            });
        }
        for (id, version) in &current {
            if !desired.containers.iter().any(|c| c.id == *id) {
                containers.push(ReportedContainer {
                    id: id.clone(),
                    version: version.clone(),
                    state: "removed".to_string(),
                    detail: String::new(),
                });
            }
        }
        let report = Report {
            machine: machine.to_string(),
            containers,
            sessions,
        };
        (report, installed)
    }
}

/// Polls each assigned machine in turn, then waits `poll_interval`, until stopped.
pub(crate) async fn worker(
    shared: std::sync::Arc<FleetShared>,
    machines: Vec<String>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        for machine in &machines {
            if *stopped.borrow() {
                return;
            }
            let result = tokio::select! {
                result = shared.poll_once(machine) => result,
                _ = stopped.changed() => return,
            };
            if let Err(error) = result {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%machine, %error, "Agent poll failed; retrying on the next poll");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}
