//! Graph wire types the providers read. Unknown fields are ignored and every enum is tolerant,
//! so a new Graph field or enum value does not fail a page.

use serde::{Deserialize, Serialize};

use crate::enums::{
    CloudPcProductType, CloudPcStatus, ComplianceState, InstallIntent, ManagementState,
    ProvisioningType, PublishingState, UploadState,
};

/// `cloudPC` as Graph v1.0 returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudPc {
    /// Cloud PC id.
    pub id: String,
    /// Name shown to admins.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Entra device id (`deviceId` of the device object, not its object id).
    #[serde(default)]
    pub aad_device_id: Option<String>,
    /// Intune managed device id; always null for Windows 365 Business (Graph v1.0 `cloudPC`).
    #[serde(default)]
    pub managed_device_id: Option<String>,
    /// Intune device name.
    #[serde(default)]
    pub managed_device_name: Option<String>,
    /// Assigned user.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Provisioning policy that created the Cloud PC.
    #[serde(default)]
    pub provisioning_policy_id: Option<String>,
    /// Provisioning policy name.
    #[serde(default)]
    pub provisioning_policy_name: Option<String>,
    /// Dedicated or shared.
    #[serde(default)]
    pub provisioning_type: Option<ProvisioningType>,
    /// Set only while the status is `inGracePeriod`.
    #[serde(default)]
    pub grace_period_end_date_time: Option<String>,
}

/// The beta-only fields of a `cloudPC` the gateway needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudPcBetaFields {
    /// Cloud PC id.
    pub id: String,
    /// Provisioning status.
    #[serde(default)]
    pub status: Option<CloudPcStatus>,
    /// Enterprise, Business, Frontline and so on.
    #[serde(default)]
    pub product_type: Option<CloudPcProductType>,
}

/// `managedDevice` as Graph v1.0 returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDevice {
    /// Intune device id.
    pub id: String,
    /// Device name.
    #[serde(default)]
    pub device_name: Option<String>,
    /// Operating system, for example `Windows`.
    #[serde(default)]
    pub operating_system: Option<String>,
    /// Compliance state.
    #[serde(default)]
    pub compliance_state: Option<ComplianceState>,
    /// Management state (beta field, read when present).
    #[serde(default)]
    pub management_state: Option<ManagementState>,
    /// Entra device id.
    #[serde(rename = "azureADDeviceId", default)]
    pub azure_ad_device_id: Option<String>,
    /// Primary user.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Last check-in with Intune.
    #[serde(default)]
    pub last_sync_date_time: Option<String>,
    /// Hardware model, for example `Cloud PC Enterprise 4vCPU/16GB/256GB` on a Cloud PC.
    #[serde(default)]
    pub model: Option<String>,
    /// Intune device category, for example `Cloud PC`.
    #[serde(default)]
    pub device_category_display_name: Option<String>,
}

/// A `group`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description; gateway-owned groups carry the ownership marker here.
    #[serde(default)]
    pub description: Option<String>,
}

/// A member of a group, or a device found by `deviceId`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    /// Object id.
    pub id: String,
    /// `#microsoft.graph.device`, `#microsoft.graph.user` and so on.
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// Entra device id, for devices.
    #[serde(default)]
    pub device_id: Option<String>,
    /// User principal name, for users.
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// `cloudPcProvisioningPolicy`, with its assignments read from `{policy}/assignments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningPolicy {
    /// Policy id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Assignments to groups.
    #[serde(default)]
    pub assignments: Vec<PolicyAssignment>,
}

/// `cloudPcProvisioningPolicyAssignment`.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyAssignment {
    /// Assignment id.
    #[serde(default)]
    pub id: Option<String>,
    /// Assignment target.
    #[serde(default)]
    pub target: Option<AssignmentTarget>,
}

/// An assignment target; only the group id matters here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentTarget {
    /// `@odata.type` of the target.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    /// Group id, for group targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// A `mobileApp`, with the fields the gateway reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MobileApp {
    /// App id.
    pub id: String,
    /// `#microsoft.graph.win32LobApp` for the gateway's apps.
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description; gateway-owned apps carry the ownership marker here.
    #[serde(default)]
    pub description: Option<String>,
    /// Publishing state; an app is assignable once `published`.
    #[serde(default)]
    pub publishing_state: Option<PublishingState>,
    /// Content version whose files are committed (`mobileLobApp.committedContentVersion`);
    /// null until the gateway commits the package.
    #[serde(default)]
    pub committed_content_version: Option<String>,
}

/// A `mobileAppContent`: one version of a line-of-business app's content.
#[derive(Debug, Clone, Deserialize)]
pub struct MobileAppContent {
    /// Content version id, for example `1`.
    pub id: String,
}

/// A `mobileAppContentFile`: one file of a content version and its upload state.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MobileAppContentFile {
    /// File id.
    pub id: String,
    /// State of the current upload request.
    #[serde(default)]
    pub upload_state: Option<UploadState>,
    /// Shared access signature URL to upload to; a secret, never logged whole.
    #[serde(default)]
    pub azure_storage_uri: Option<String>,
    /// Whether Intune has verified and committed the file.
    #[serde(default)]
    pub is_committed: Option<bool>,
}

/// A `mobileAppAssignment`.
#[derive(Debug, Clone, Deserialize)]
pub struct MobileAppAssignment {
    /// Assignment id.
    #[serde(default)]
    pub id: Option<String>,
    /// Install intent.
    #[serde(default)]
    pub intent: Option<InstallIntent>,
    /// Target.
    #[serde(default)]
    pub target: Option<serde_json::Value>,
    /// Settings.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

impl MobileAppAssignment {
    /// Returns the group id of a group target.
    pub fn group_id(&self) -> Option<&str> {
        self.target.as_ref()?.get("groupId")?.as_str()
    }
}
