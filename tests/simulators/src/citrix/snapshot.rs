//! A serialisable copy of the site state for assertions in tests.

use serde::{Deserialize, Serialize};

use super::server::Shared;
use super::state::NameValue;

/// The site state at one moment, as `GET /_sim/state` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Site id, the `Citrix-InstanceId` clients send.
    pub site_id: String,
    /// Delivery groups in fleet order.
    pub delivery_groups: Vec<SnapshotDeliveryGroup>,
    /// Machines in fleet order.
    pub machines: Vec<SnapshotMachine>,
    /// Site tags.
    pub tags: Vec<SnapshotTag>,
    /// Application groups.
    pub application_groups: Vec<SnapshotApplicationGroup>,
    /// Applications.
    pub applications: Vec<SnapshotApplication>,
}

impl Snapshot {
    /// Finds a machine by id or `DOMAIN\NAME` (`DOMAIN|NAME` also works).
    pub fn machine(&self, name_or_id: &str) -> Option<&SnapshotMachine> {
        let name = name_or_id.replace('|', "\\");
        self.machines
            .iter()
            .find(|m| m.id == name_or_id || m.name.eq_ignore_ascii_case(&name))
    }

    /// Finds a delivery group by id or name.
    pub fn delivery_group(&self, name_or_id: &str) -> Option<&SnapshotDeliveryGroup> {
        self.delivery_groups
            .iter()
            .find(|g| g.id == name_or_id || g.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds an application by id or name.
    pub fn application(&self, name_or_id: &str) -> Option<&SnapshotApplication> {
        self.applications
            .iter()
            .find(|a| a.id == name_or_id || a.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds an application group by id or name.
    pub fn application_group(&self, name_or_id: &str) -> Option<&SnapshotApplicationGroup> {
        self.application_groups
            .iter()
            .find(|g| g.id == name_or_id || g.name.eq_ignore_ascii_case(name_or_id))
    }

    /// Returns the machines that carry a tag, by tag name.
    pub fn machines_with_tag(&self, tag: &str) -> Vec<&SnapshotMachine> {
        self.machines
            .iter()
            .filter(|m| m.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
            .collect()
    }
}

/// A delivery group in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDeliveryGroup {
    pub id: String,
    pub name: String,
    pub delivery_type: String,
    pub session_support: String,
    pub in_maintenance_mode: bool,
    pub is_remote_pc: bool,
}

/// A machine in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMachine {
    pub id: String,
    /// `DOMAIN\NAME`.
    pub name: String,
    /// Delivery group id.
    pub delivery_group: Option<String>,
    /// Tag names in the order they were added.
    pub tags: Vec<String>,
    pub sessions: Vec<SnapshotSession>,
    pub in_maintenance_mode: bool,
    pub draining_until_shutdown: bool,
    pub will_shutdown_after_use: bool,
    /// `RegistrationState` without injected unknown values.
    pub registration: String,
    pub power: String,
}

/// A session in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSession {
    pub id: String,
    /// `Active`, `Connected` or `Disconnected`.
    pub state: String,
    /// `DOMAIN\user`.
    pub user: String,
}

/// A tag in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotTag {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

/// An application group in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotApplicationGroup {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Tag name.
    pub restrict_to_tag: Option<String>,
    /// Delivery group ids.
    pub delivery_groups: Vec<String>,
    /// Ids of the applications in the group.
    pub application_ids: Vec<String>,
    pub metadata: Vec<NameValue>,
}

/// An application in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotApplication {
    pub id: String,
    pub name: String,
    /// Admin folder path with `\` separators.
    pub folder: Option<String>,
    pub published_name: String,
    pub command_line_executable: String,
    pub command_line_arguments: String,
    pub working_directory: String,
    /// Application group ids.
    pub application_groups: Vec<String>,
    /// Delivery group ids.
    pub delivery_groups: Vec<String>,
    pub metadata: Vec<NameValue>,
    pub enabled: bool,
    pub visible: bool,
}

/// Copies the current state.
pub(crate) fn take(shared: &Shared) -> Snapshot {
    let state = shared.lock_state();
    let delivery_groups = state
        .delivery_groups
        .iter()
        .map(|g| SnapshotDeliveryGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            delivery_type: g.delivery_type.to_string(),
            session_support: g.session_support.to_string(),
            in_maintenance_mode: g.in_maintenance_mode,
            is_remote_pc: g.is_remote_pc,
        })
        .collect();
    let machines = state
        .machines
        .iter()
        .map(|m| SnapshotMachine {
            id: m.id.clone(),
            name: m.name.clone(),
            delivery_group: m.delivery_group_id.clone(),
            tags: state.tag_names(&m.tags),
            sessions: m
                .sessions
                .iter()
                .map(|s| SnapshotSession {
                    id: s.id.clone(),
                    state: s.state.to_string(),
                    user: s.user_name.clone(),
                })
                .collect(),
            in_maintenance_mode: m.in_maintenance_mode,
            draining_until_shutdown: m.draining_until_shutdown,
            will_shutdown_after_use: m.will_shutdown_after_use,
            registration: m.registration.to_string(),
            power: m.power.to_string(),
        })
        .collect();
    let tags = state
        .tags
        .iter()
        .map(|t| SnapshotTag {
            id: t.id.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
        })
        .collect();
    let application_groups = state
        .app_groups
        .iter()
        .map(|g| SnapshotApplicationGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            enabled: g.enabled,
            restrict_to_tag: g
                .restrict_to_tag
                .as_deref()
                .and_then(|id| state.tag(id))
                .map(|t| t.name.clone()),
            delivery_groups: g.delivery_groups.iter().map(|r| r.id.clone()).collect(),
            application_ids: state
                .applications
                .iter()
                .filter(|a| a.application_groups.contains(&g.id))
                .map(|a| a.id.clone())
                .collect(),
            metadata: g.metadata.clone(),
        })
        .collect();
    let applications = state
        .applications
        .iter()
        .map(|a| SnapshotApplication {
            id: a.id.clone(),
            name: a.name.clone(),
            folder: a.folder.clone(),
            published_name: a.published_name.clone(),
            command_line_executable: a.command_line_executable.clone(),
            command_line_arguments: a.command_line_arguments.clone(),
            working_directory: a.working_directory.clone(),
            application_groups: a.application_groups.clone(),
            delivery_groups: a.delivery_groups.iter().map(|r| r.id.clone()).collect(),
            metadata: a.metadata.clone(),
            enabled: a.enabled,
            visible: a.visible,
        })
        .collect();
    Snapshot {
        site_id: state.site_id.clone(),
        delivery_groups,
        machines,
        tags,
        application_groups,
        applications,
    }
}
