//! Wire types of the Portal REST API, shared by the client and the simulator.
//!
//! The API, version 1:
//!
//! | Request | Response |
//! |---|---|
//! | `GET /api/health` | `200 {"status": "ok", "version"}` |
//! | `GET /api/groups` | `200 {"groups": [Group]}` |
//! | `GET /api/groups/{id}/machines?page=N&per_page=M` | `200 MachinePage`, `404` unknown group |
//! | `GET /api/apps?group={id}` | `200 {"apps": [App]}` |
//! | `POST /api/apps` with `NewApp` | `201 App`, `409` same name in the group |
//! | `DELETE /api/apps/{id}` | `204`, `404` unknown app |
//! | `PUT /api/machines/{id}/apps/{app}` | `204` (also when already assigned), `404` |
//! | `DELETE /api/machines/{id}/apps/{app}` | `204`, `404` when not assigned |
//!
//! Every request carries `X-Api-Key`; a wrong or missing key gets `401`. Errors have a body
//! `{"message": "..."}`. Pages start at 1. Machine power, reboot, deletion and image endpoints
//! exist on real portals, and the plugin's endpoint guard blocks them.

use serde::{Deserialize, Serialize};

/// `GET /api/health` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthBody {
    /// `ok` when the portal serves requests.
    pub status: String,
    /// API version.
    pub version: String,
}

/// A group of machines, the plugin's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Portal id, for example `grp-1`.
    pub id: String,
    /// Name, for example `Clinicians`.
    pub name: String,
    /// Machines in the group.
    pub machine_count: u64,
}

/// `GET /api/groups` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupList {
    /// Every group.
    pub groups: Vec<Group>,
}

/// Machine status as the portal reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    /// Accepting sessions.
    Ready,
    /// In maintenance: nobody may connect.
    Maintenance,
    /// Draining until shutdown.
    Draining,
    /// Off or its agent is down.
    Offline,
    /// A status this plugin does not know, kept verbatim.
    #[serde(untagged)]
    Other(String),
}

/// A user session on a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBody {
    /// User name.
    pub user: String,
    /// `active` or `disconnected`; anything else counts as active.
    pub state: String,
}

/// A machine in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineBody {
    /// Portal id, for example `m-1`.
    pub id: String,
    /// Name, for example `CLIN-001`.
    pub name: String,
    /// DNS name, when known.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// Status.
    pub status: MachineStatus,
    /// Sessions.
    #[serde(default)]
    pub sessions: Vec<SessionBody>,
    /// Ids of the apps assigned to the machine.
    #[serde(default)]
    pub apps: Vec<String>,
}

/// `GET /api/groups/{id}/machines` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachinePage {
    /// Machines of this page.
    pub machines: Vec<MachineBody>,
    /// This page's number.
    pub page: u32,
    /// Next page's number; `null` on the last page.
    pub next_page: Option<u32>,
}

/// A published application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Portal id, for example `app-3`.
    pub id: String,
    /// Group the app is published to.
    pub group: String,
    /// Unique name within the group; the gateway's apps are `vdigw:{container}@{version}`.
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// Executable.
    pub command: String,
    /// Command-line arguments.
    #[serde(default)]
    pub arguments: Option<String>,
}

/// `GET /api/apps` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    /// Apps of the group.
    pub apps: Vec<App>,
}

/// `POST /api/apps` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApp {
    /// Group to publish to.
    pub group: String,
    /// Unique name within the group.
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// Executable.
    pub command: String,
    /// Command-line arguments.
    #[serde(default)]
    pub arguments: Option<String>,
}

/// Error body of every non-success response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
}

/// Prefix of the names of apps the gateway owns.
pub const APP_PREFIX: &str = "vdigw:";

/// Returns the app name of a container version: `vdigw:{id}@{version}`.
pub fn app_name(container_id: &str, version: &str) -> String {
    format!("{APP_PREFIX}{container_id}@{version}")
}

/// Returns `(container id, version)` of a gateway-owned app name.
pub fn parse_app_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(APP_PREFIX)?.rsplit_once('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_name_round_trips() {
        let name = app_name("epic-hyperspace", "2024.3.1");
        assert_eq!(parse_app_name(&name), Some(("epic-hyperspace", "2024.3.1")));
    }

    #[test]
    fn foreign_app_is_not_owned() {
        assert_eq!(parse_app_name("Notepad"), None);
    }

    #[test]
    fn unknown_status_is_kept() {
        let status: MachineStatus = serde_json::from_str("\"rebuilding\"").expect("parses");
        assert_eq!(status, MachineStatus::Other("rebuilding".into()));
    }
}
