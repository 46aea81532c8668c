//! A serialisable copy of the pod state for assertions in tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::server::Shared;
use super::state::HorizonState;

/// The pod state at one moment, as `GET /_sim/state` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonSnapshot {
    /// Desktop pools in fleet order, RDS desktop pools included.
    pub desktop_pools: Vec<SnapshotDesktopPool>,
    /// RDS farms.
    pub farms: Vec<SnapshotFarm>,
    /// VDI machines in fleet order.
    pub machines: Vec<SnapshotMachine>,
    /// RDS session hosts.
    pub rds_servers: Vec<SnapshotRdsServer>,
    /// Application pools in creation order.
    pub application_pools: Vec<SnapshotApplicationPool>,
    /// Application pool id to entitled user and group SIDs.
    pub application_entitlements: BTreeMap<String, Vec<String>>,
    /// Desktop pool id to entitled user and group SIDs.
    pub desktop_entitlements: BTreeMap<String, Vec<String>>,
    /// Messages sent to sessions with `send-message`, in arrival order.
    pub sent_messages: Vec<SentMessage>,
}

impl HorizonSnapshot {
    /// Finds a desktop pool by id or name.
    pub fn desktop_pool(&self, name_or_id: &str) -> Option<&SnapshotDesktopPool> {
        self.desktop_pools
            .iter()
            .find(|p| p.id == name_or_id || p.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds a machine by id or name.
    pub fn machine(&self, name_or_id: &str) -> Option<&SnapshotMachine> {
        self.machines
            .iter()
            .find(|m| m.id == name_or_id || m.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds an application pool by id or name.
    pub fn application_pool(&self, name_or_id: &str) -> Option<&SnapshotApplicationPool> {
        self.application_pools
            .iter()
            .find(|a| a.id == name_or_id || a.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Returns the machines of a desktop pool, by pool id or name.
    pub fn machines_in_pool(&self, name_or_id: &str) -> Vec<&SnapshotMachine> {
        let Some(pool) = self.desktop_pool(name_or_id) else {
            return Vec::new();
        };
        self.machines
            .iter()
            .filter(|m| m.desktop_pool_id == pool.id)
            .collect()
    }

    /// Returns the SIDs entitled to an application pool, by id or name.
    pub fn application_pool_entitlements(&self, name_or_id: &str) -> Vec<String> {
        self.application_pool(name_or_id)
            .and_then(|pool| self.application_entitlements.get(&pool.id))
            .cloned()
            .unwrap_or_default()
    }
}

/// A desktop pool in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDesktopPool {
    pub id: String,
    pub name: String,
    /// `AUTOMATED`, `MANUAL` or `RDS`.
    pub pool_type: String,
    /// `INSTANT_CLONE`, `VIRTUAL_CENTER` or `RDS`.
    pub source: String,
    /// `DEDICATED` or `FLOATING`; `None` for RDS pools.
    pub user_assignment: Option<String>,
    /// `DESKTOP`, `APPLICATION` or `DESKTOP_AND_APPLICATION`.
    pub session_type: String,
    /// Farm of an RDS pool.
    pub farm_id: Option<String>,
}

/// An RDS farm in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFarm {
    pub id: String,
    pub name: String,
    /// The RDS desktop pool of the farm.
    pub desktop_pool_id: Option<String>,
}

/// A VDI machine in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMachine {
    pub id: String,
    pub name: String,
    pub dns_name: String,
    pub desktop_pool_id: String,
    /// State as the API reports it (never the injected unknown state).
    pub state: String,
    pub in_maintenance_mode: bool,
    /// SIDs of the assigned users of a dedicated machine.
    pub user_ids: Vec<String>,
    pub sessions: Vec<SnapshotSession>,
}

/// An RDS session host in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRdsServer {
    pub id: String,
    pub name: String,
    pub dns_name: String,
    pub farm_id: String,
    pub state: String,
    pub sessions: Vec<SnapshotSession>,
}

/// A session in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSession {
    pub id: String,
    /// SID of the user.
    pub user_id: String,
    /// `CONNECTED`, `DISCONNECTED` or `PENDING`.
    pub state: String,
}

/// An application pool in a [`HorizonSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotApplicationPool {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub enabled: bool,
    pub executable_path: String,
    pub parameters: Option<String>,
    /// Desktop pool the application runs on, for pools based on a desktop pool.
    pub desktop_pool_id: Option<String>,
    /// Farm the application runs on, for pools based on a farm.
    pub farm_id: Option<String>,
}

/// A message sent to a session with `POST /rest/inventory/v1/sessions/action/send-message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub session_id: String,
    /// SID of the session's user.
    pub user_id: String,
    /// `INFO`, `WARNING` or `ERROR`.
    pub message_type: String,
    pub message: String,
}

/// Copies the pod state into a [`HorizonSnapshot`].
pub(crate) fn take(shared: &Shared) -> HorizonSnapshot {
    let state = shared.lock_state();
    build(&state)
}

fn build(state: &HorizonState) -> HorizonSnapshot {
    let session = |s: &super::state::Session| SnapshotSession {
        id: s.id.clone(),
        user_id: s.user_id.clone(),
        state: s.state.to_string(),
    };
    let by_machine = state.session_by_machine();
    let machines = state
        .machines
        .iter()
        .map(|m| {
            let current = by_machine.get(m.id.as_str()).copied();
            SnapshotMachine {
                id: m.id.clone(),
                name: m.name.clone(),
                dns_name: m.dns_name.clone(),
                desktop_pool_id: m.desktop_pool_id.clone(),
                state: HorizonState::machine_state(m, current).to_string(),
                in_maintenance_mode: m.in_maintenance,
                user_ids: m.user_ids.clone(),
                sessions: current.map(session).into_iter().collect(),
            }
        })
        .collect();
    let rds_servers = state
        .rds_servers
        .iter()
        .map(|r| SnapshotRdsServer {
            id: r.id.clone(),
            name: r.name.clone(),
            dns_name: r.dns_name.clone(),
            farm_id: r.farm_id.clone(),
            state: r.state.to_string(),
            sessions: state
                .sessions
                .iter()
                .filter(|s| s.rds_server_id.as_deref() == Some(r.id.as_str()))
                .map(session)
                .collect(),
        })
        .collect();
    HorizonSnapshot {
        desktop_pools: state
            .desktop_pools
            .iter()
            .map(|p| SnapshotDesktopPool {
                id: p.id.clone(),
                name: p.name.clone(),
                pool_type: p.pool_type.to_string(),
                source: p.source.to_string(),
                user_assignment: p.user_assignment.map(str::to_string),
                session_type: p.session_type.to_string(),
                farm_id: p.farm_id.clone(),
            })
            .collect(),
        farms: state
            .farms
            .iter()
            .map(|f| SnapshotFarm {
                id: f.id.clone(),
                name: f.name.clone(),
                desktop_pool_id: f.desktop_pool_id.clone(),
            })
            .collect(),
        machines,
        rds_servers,
        application_pools: state
            .application_pools
            .iter()
            .map(|a| SnapshotApplicationPool {
                id: a.id.clone(),
                name: a.name.clone(),
                display_name: a.display_name.clone(),
                enabled: a.enabled,
                executable_path: a.executable_path.clone(),
                parameters: a.parameters.clone(),
                desktop_pool_id: a.desktop_pool_id.clone(),
                farm_id: a.farm_id.clone(),
            })
            .collect(),
        application_entitlements: state.application_entitlements.clone(),
        desktop_entitlements: state.desktop_entitlements.clone(),
        sent_messages: state.messages.clone(),
    }
}
