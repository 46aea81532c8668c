//! The tenant's objects: Cloud PCs, provisioning policies, Intune managed devices and
//! apps, and Entra users, devices and groups with time-stamped membership.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::blob::Blob;
use super::seed::random_uuid;
use super::storage::SasGrant;

/// Windows 365 edition of a Cloud PC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServicePlan {
    Enterprise,
    Business,
}

impl ServicePlan {
    /// Returns the value of `servicePlanType` and `productType` on the beta endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            ServicePlan::Enterprise => "enterprise",
            ServicePlan::Business => "business",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CloudPc {
    pub id: String,
    pub display_name: String,
    pub aad_device_id: Option<String>,
    pub user_principal_name: String,
    pub managed_device_id: Option<String>,
    pub managed_device_name: Option<String>,
    pub provisioning_policy_id: String,
    pub service_plan_id: String,
    pub service_plan_name: String,
    pub plan: ServicePlan,
    /// A beta `cloudPcStatus` member, such as `provisioned` or `movingRegion`.
    pub status: &'static str,
    pub image_display_name: String,
    pub last_modified: String,
    pub grace_period_end: Option<String>,
    pub provisioned: Option<String>,
    /// `statusDetail` code and message of failed Cloud PCs.
    pub status_detail: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct ProvisioningPolicy {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub image_display_name: String,
    /// Entra groups the policy is assigned to; the gateway must never change them.
    pub group_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ManagedDevice {
    pub id: String,
    pub device_name: String,
    pub user_id: String,
    pub user_principal_name: String,
    pub serial_number: String,
    pub os_version: String,
    pub compliance_state: &'static str,
    pub management_state: &'static str,
    pub last_sync: String,
    pub enrolled: String,
    pub azure_ad_device_id: String,
    pub category: String,
    /// Hardware model; Intune reports Cloud PCs as `Cloud PC Enterprise …`.
    pub model: String,
}

/// An Entra ID device object; `device_id` is what Intune calls `azureADDeviceId`.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryDevice {
    pub id: String,
    pub device_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
}

/// One membership of a group, kept after removal so that lagging reads still see it.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub object_id: String,
    pub added: Instant,
    pub removed: Option<Instant>,
}

impl Membership {
    /// Returns whether the membership is current for writes.
    pub fn is_current(&self) -> bool {
        self.removed.is_none()
    }

    /// Returns whether a read at `now` returns the membership when changes take `lag` to show.
    pub fn is_visible(&self, now: Instant, lag: Duration) -> bool {
        let added_seen = self.added + lag <= now;
        let removal_seen = self.removed.is_some_and(|removed| removed + lag <= now);
        added_seen && !removal_seen
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub mail_nickname: String,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    pub members: Vec<Membership>,
}

impl Group {
    /// Returns the ids of the current members, in the order they were added.
    pub fn current_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.is_current())
            .map(|m| m.object_id.clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MobileApp {
    pub id: String,
    /// Properties as the client sent them, without `id`, `@odata.type` and
    /// `committedContentVersion`.
    pub properties: Map<String, Value>,
    pub odata_type: String,
    pub created_at: String,
    pub modified_at: String,
    /// `mobileAppAssignment` objects as returned by `GET …/assignments`.
    pub assignments: Vec<Value>,
    /// Content versions in creation order; their ids are "1", "2", ...
    pub content_versions: Vec<ContentVersion>,
    /// The content version a PATCH committed, and when.
    pub committed: Option<(String, Instant)>,
}

impl MobileApp {
    pub fn content_version_mut(&mut self, id: &str) -> Option<&mut ContentVersion> {
        self.content_versions.iter_mut().find(|v| v.id == id)
    }
}

/// A `mobileAppContent`: one upload of an app's content, with its files.
#[derive(Debug, Clone)]
pub(crate) struct ContentVersion {
    pub id: String,
    pub files: Vec<ContentFile>,
}

impl ContentVersion {
    pub fn file_mut(&mut self, id: &str) -> Option<&mut ContentFile> {
        self.files
            .iter_mut()
            .find(|f| f.id.eq_ignore_ascii_case(id))
    }

    /// Returns whether a file of the version ended `commitFileSuccess`.
    pub fn has_committed_file(&self) -> bool {
        self.files
            .iter()
            .any(|file| file.upload_state == UploadState::CommitFileSuccess)
    }
}

/// `mobileAppContentFileUploadState` members that a content file passes through here
/// (Microsoft Graph v1.0 `mobileAppContentFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadState {
    AzureStorageUriRequestPending,
    AzureStorageUriRequestSuccess,
    AzureStorageUriRenewalPending,
    AzureStorageUriRenewalSuccess,
    CommitFilePending,
    CommitFileSuccess,
    CommitFileFailed,
}

impl UploadState {
    /// Returns the enum member as Graph spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::AzureStorageUriRequestPending => "azureStorageUriRequestPending",
            UploadState::AzureStorageUriRequestSuccess => "azureStorageUriRequestSuccess",
            UploadState::AzureStorageUriRenewalPending => "azureStorageUriRenewalPending",
            UploadState::AzureStorageUriRenewalSuccess => "azureStorageUriRenewalSuccess",
            UploadState::CommitFilePending => "commitFilePending",
            UploadState::CommitFileSuccess => "commitFileSuccess",
            UploadState::CommitFileFailed => "commitFileFailed",
        }
    }
}

/// A `mobileAppContentFile` and the blob uploaded for it.
#[derive(Debug, Clone)]
pub(crate) struct ContentFile {
    pub id: String,
    pub name: String,
    /// Bytes before encryption.
    pub size: u64,
    /// Bytes after encryption: the length the blob must have.
    pub size_encrypted: u64,
    pub manifest: Value,
    pub is_dependency: bool,
    pub created_at: String,
    pub upload_state: UploadState,
    /// GETs of the file that still show the current pending state.
    pub polls_left: u32,
    /// Outcome of the last commit, shown when `commitFilePending` ends: `Err` contains the
    /// reason of a failure.
    pub commit_outcome: Result<(), String>,
    /// Why the last commit failed, once `commitFileFailed` shows.
    pub failure_reason: Option<String>,
    /// The last SAS granted, shown as `azureStorageUri`.
    pub sas: Option<SasGrant>,
    /// Whether a commit revoked `sas`, so that storage rejects it.
    pub sas_revoked: bool,
    pub blob: Blob,
}

/// Everything the simulated tenant holds.
#[derive(Debug)]
pub(crate) struct GraphState {
    pub cloud_pcs: Vec<CloudPc>,
    pub policies: Vec<ProvisioningPolicy>,
    pub managed_devices: Vec<ManagedDevice>,
    pub devices: Vec<DirectoryDevice>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub apps: Vec<MobileApp>,
    /// Ids of agent-only laptops, which Graph does not know.
    pub agent_only_laptops: Vec<String>,
    /// Accepted `syncDevice` calls per managed device id.
    pub sync_requests: BTreeMap<String, u64>,
    /// Time of the last accepted `syncDevice` per managed device id.
    pub last_sync_request: BTreeMap<String, Instant>,
    pub rng: StdRng,
}

impl GraphState {
    pub fn new(rng: StdRng) -> Self {
        Self {
            cloud_pcs: Vec::new(),
            policies: Vec::new(),
            managed_devices: Vec::new(),
            devices: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            apps: Vec::new(),
            agent_only_laptops: Vec::new(),
            sync_requests: BTreeMap::new(),
            last_sync_request: BTreeMap::new(),
            rng,
        }
    }

    /// Returns a new GUID drawn from the seeded generator.
    pub fn new_id(&mut self) -> String {
        random_uuid(&mut self.rng)
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups
            .iter_mut()
            .find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn app_mut(&mut self, id: &str) -> Option<&mut MobileApp> {
        self.apps.iter_mut().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    pub fn managed_device(&self, id: &str) -> Option<&ManagedDevice> {
        self.managed_devices
            .iter()
            .find(|d| d.id.eq_ignore_ascii_case(id))
    }

    pub fn policy(&self, id: &str) -> Option<&ProvisioningPolicy> {
        self.policies.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// Returns whether a provisioning policy is assigned to the group.
    pub fn is_policy_group(&self, group_id: &str) -> bool {
        self.policies.iter().any(|policy| {
            policy
                .group_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(group_id))
        })
    }

    /// Returns the `@odata.type` of a directory object (user, device or group), if it exists.
    pub fn directory_object_type(&self, id: &str) -> Option<&'static str> {
        if self.users.iter().any(|u| u.id.eq_ignore_ascii_case(id)) {
            return Some("#microsoft.graph.user");
        }
        if self.devices.iter().any(|d| d.id.eq_ignore_ascii_case(id)) {
            return Some("#microsoft.graph.device");
        }
        if self.group(id).is_some() {
            return Some("#microsoft.graph.group");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_visibility_lags() {
        let start = Instant::now();
        let lag = Duration::from_millis(300);
        let mut membership = Membership {
            object_id: "a".into(),
            added: start,
            removed: None,
        };
        assert!(!membership.is_visible(start, lag));
        assert!(membership.is_visible(start + lag, lag));

        membership.removed = Some(start + lag);
        assert!(!membership.is_current());
        assert!(membership.is_visible(start + lag, lag));
        assert!(!membership.is_visible(start + lag * 2, lag));
    }
}
