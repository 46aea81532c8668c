//! Bodies of the gateway's agent channel, version 1.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `GET /v1/agent/desired`: the containers one machine should have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Machine id.
    pub machine: String,
    /// Desired containers; an empty list means none.
    #[serde(default)]
    pub containers: Vec<DesiredContainer>,
}

/// One desired container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredContainer {
    /// Container id.
    pub id: String,
    /// Version to install.
    pub version: String,
    /// Launch command (`executable`, `arguments`, `working_directory`), kept as sent.
    #[serde(default)]
    pub launch: Value,
    /// Activation mode: `next_logon`, `when_idle` or `immediate`.
    #[serde(default)]
    pub activation: Option<String>,
}

/// Body of `POST /v1/agent/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Machine id.
    pub machine: String,
    /// One entry per container the agent acted on; empty in a check-in sent only for the
    /// sessions.
    pub containers: Vec<ReportedContainer>,
    /// User sessions open on the machine; left out by agents that do not report sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<ReportedSession>>,
}

/// One user session in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedSession {
    /// User name, for example `HOSP\nurse1`.
    pub user: String,
    /// `active` (a user is connected) or `disconnected`.
    pub state: String,
}

impl ReportedSession {
    /// Returns a session with `user` connected.
    pub fn active(user: &str) -> Self {
        Self {
            user: user.to_string(),
            state: "active".to_string(),
        }
    }

    /// Returns a disconnected session of `user`.
    pub fn disconnected(user: &str) -> Self {
        Self {
            user: user.to_string(),
            state: "disconnected".to_string(),
        }
    }
}

/// Outcome for one container in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedContainer {
    /// Container id.
    pub id: String,
    /// Version the outcome refers to.
    pub version: String,
    /// `installed`, `failed` or `removed`.
    pub state: String,
    /// Explanation, empty on success.
    pub detail: String,
}
