//! A serialisable copy of the tenant for assertions in tests.
//!
//! Group members are the current ones, without the read lag that
//! `GET /groups/{id}/members` has.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model;
use super::server::Shared;
use super::state::ContentVersion;

/// The tenant at one moment, as `GET /_sim/state` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphSnapshot {
    /// Cloud PCs in fleet order.
    pub cloud_pcs: Vec<SnapshotCloudPc>,
    /// Provisioning policies and the groups they are assigned to.
    pub provisioning_policies: Vec<SnapshotPolicy>,
    /// Intune managed devices (Enterprise Cloud PCs and laptops) in fleet order.
    pub managed_devices: Vec<SnapshotManagedDevice>,
    /// Entra ID groups with their current member object ids.
    pub groups: Vec<SnapshotGroup>,
    /// Mobile apps in creation order, with their assignments.
    pub mobile_apps: Vec<SnapshotApp>,
    /// Accepted `syncDevice` calls per managed device id.
    pub sync_requests: BTreeMap<String, u64>,
    /// Names of laptops that only the agent channel reaches; Graph does not know them.
    pub agent_only_laptops: Vec<String>,
}

impl GraphSnapshot {
    /// Finds a group by id or display name.
    pub fn group(&self, name_or_id: &str) -> Option<&SnapshotGroup> {
        self.groups
            .iter()
            .find(|g| g.id == name_or_id || g.display_name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds a managed device by id or device name.
    pub fn managed_device(&self, name_or_id: &str) -> Option<&SnapshotManagedDevice> {
        self.managed_devices
            .iter()
            .find(|d| d.id == name_or_id || d.device_name.eq_ignore_ascii_case(name_or_id))
    }

    /// Finds a mobile app by id or display name.
    pub fn mobile_app(&self, name_or_id: &str) -> Option<&SnapshotApp> {
        self.mobile_apps
            .iter()
            .find(|a| a.id == name_or_id || a.display_name.eq_ignore_ascii_case(name_or_id))
    }
}

/// A Cloud PC in a [`GraphSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCloudPc {
    pub id: String,
    pub display_name: String,
    pub user_principal_name: String,
    /// Null for Business Cloud PCs and for ones not enrolled in Intune.
    pub managed_device_id: Option<String>,
    pub managed_device_name: Option<String>,
    pub aad_device_id: Option<String>,
    /// `enterprise` or `business`.
    pub service_plan_type: String,
    /// The beta `status`, for example `provisioned`.
    pub status: String,
    pub provisioning_policy_id: String,
}

/// A provisioning policy in a [`GraphSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPolicy {
    pub id: String,
    pub display_name: String,
    pub group_ids: Vec<String>,
}

/// A managed device in a [`GraphSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManagedDevice {
    pub id: String,
    pub device_name: String,
    /// The Entra ID `deviceId` of the device.
    pub azure_ad_device_id: String,
    /// Object id of the Entra ID device, the id group membership uses.
    pub directory_object_id: Option<String>,
    pub user_principal_name: String,
    pub compliance_state: String,
    pub management_state: String,
}

/// A group in a [`GraphSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    pub id: String,
    pub display_name: String,
    pub mail_nickname: String,
    pub description: Option<String>,
    /// Object ids of the current members, in the order they were added.
    pub members: Vec<String>,
    /// Whether a provisioning policy is assigned to the group.
    pub provisioning_policy_group: bool,
}

/// A mobile app in a [`GraphSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotApp {
    pub id: String,
    pub display_name: String,
    /// The app as `GET /deviceAppManagement/mobileApps/{id}` returns it.
    pub app: Value,
    /// `mobileAppAssignment` objects as `GET …/assignments` returns them.
    pub assignments: Vec<Value>,
    /// Content versions in creation order, with their files.
    pub content_versions: Vec<SnapshotContentVersion>,
}

/// A content version of a [`SnapshotApp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotContentVersion {
    /// "1", "2", ... in creation order.
    pub id: String,
    pub files: Vec<SnapshotContentFile>,
}

/// A content file in a [`SnapshotContentVersion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotContentFile {
    pub id: String,
    pub name: String,
    /// Declared bytes before encryption.
    pub size: u64,
    /// Declared bytes after encryption.
    pub size_encrypted: u64,
    /// `uploadState` of the file, for example `commitFilePending`; a snapshot does not
    /// advance it as a GET of the file does.
    pub upload_state: String,
    /// Bytes of the blob after the last Put Block List; `None` before the first one.
    pub blob_bytes: Option<u64>,
    /// Why the last commit failed, once `commitFileFailed` showed.
    pub failure_reason: Option<String>,
}

/// Copies the tenant out of the shared state.
pub(crate) fn take(shared: &Shared) -> GraphSnapshot {
    let now = Instant::now();
    let state = shared.lock_state();
    let cloud_pcs = state
        .cloud_pcs
        .iter()
        .map(|pc| SnapshotCloudPc {
            id: pc.id.clone(),
            display_name: pc.display_name.clone(),
            user_principal_name: pc.user_principal_name.clone(),
            managed_device_id: pc.managed_device_id.clone(),
            managed_device_name: pc.managed_device_name.clone(),
            aad_device_id: pc.aad_device_id.clone(),
            service_plan_type: pc.plan.as_str().to_string(),
            status: pc.status.to_string(),
            provisioning_policy_id: pc.provisioning_policy_id.clone(),
        })
        .collect();
    let provisioning_policies = state
        .policies
        .iter()
        .map(|p| SnapshotPolicy {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
            group_ids: p.group_ids.clone(),
        })
        .collect();
    let managed_devices = state
        .managed_devices
        .iter()
        .map(|d| SnapshotManagedDevice {
            id: d.id.clone(),
            device_name: d.device_name.clone(),
            azure_ad_device_id: d.azure_ad_device_id.clone(),
            directory_object_id: state
                .devices
                .iter()
                .find(|device| device.device_id == d.azure_ad_device_id)
                .map(|device| device.id.clone()),
            user_principal_name: d.user_principal_name.clone(),
            compliance_state: d.compliance_state.to_string(),
            management_state: d.management_state.to_string(),
        })
        .collect();
    let groups = state
        .groups
        .iter()
        .map(|g| SnapshotGroup {
            id: g.id.clone(),
            display_name: g.display_name.clone(),
            mail_nickname: g.mail_nickname.clone(),
            description: g.description.clone(),
            members: g.current_members(),
            provisioning_policy_group: state.is_policy_group(&g.id),
        })
        .collect();
    let delay = shared.config.app_publish_delay;
    let mobile_apps = state
        .apps
        .iter()
        .map(|app| SnapshotApp {
            id: app.id.clone(),
            display_name: app
                .properties
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            app: Value::Object(model::mobile_app(
                app,
                model::publishing_state(app, now, delay),
            )),
            assignments: app.assignments.clone(),
            content_versions: app.content_versions.iter().map(snapshot_version).collect(),
        })
        .collect();
    GraphSnapshot {
        cloud_pcs,
        provisioning_policies,
        managed_devices,
        groups,
        mobile_apps,
        sync_requests: state.sync_requests.clone(),
        agent_only_laptops: state.agent_only_laptops.clone(),
    }
}

fn snapshot_version(version: &ContentVersion) -> SnapshotContentVersion {
    let files = version
        .files
        .iter()
        .map(|file| SnapshotContentFile {
            id: file.id.clone(),
            name: file.name.clone(),
            size: file.size,
            size_encrypted: file.size_encrypted,
            upload_state: file.upload_state.as_str().to_string(),
            blob_bytes: file.blob.exists().then(|| file.blob.committed_length()),
            failure_reason: file.failure_reason.clone(),
        })
        .collect();
    SnapshotContentVersion {
        id: version.id.clone(),
        files,
    }
}
