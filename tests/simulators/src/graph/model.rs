//! JSON shapes of the objects the simulator returns, per API version.
//!
//! Field names follow the Microsoft Graph v1.0 and beta references of `cloudPC`,
//! `cloudPcProvisioningPolicy`, `managedDevice`, `win32LobApp`, `mobileAppAssignment`,
//! `mobileAppContent`, `mobileAppContentFile`, `group`, `user` and `device`. v1.0 Cloud PCs have no `status`, `productType` or
//! `servicePlanType`; those are beta-only.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::state::{
    CloudPc, ContentFile, ContentVersion, DirectoryDevice, Group, ManagedDevice, MobileApp,
    ProvisioningPolicy, UploadState, User,
};

/// Name of the undocumented field that the `unknown_values` knob adds to every object.
pub const UNKNOWN_FIELD: &str = "zzUndocumentedField";
/// Cloud PC `status` that the `unknown_values` knob returns on beta reads.
pub const UNKNOWN_CLOUD_PC_STATUS: &str = "someFutureState";

/// `cloudPcStatus` members declared after `unknownFutureValue`, returned as
/// `unknownFutureValue` unless the request has `Prefer: include-unknown-enum-members`
/// (Microsoft Graph beta `cloudPC` reference).
const EVOLVED_CLOUD_PC_STATUSES: [&str; 5] = [
    "movingRegion",
    "resizePendingLicense",
    "modifyingSingleSignOn",
    "refreshPolicyConfiguration",
    "preparing",
];

/// Beta Cloud PC fields that appear only when `$select` names them.
pub(crate) const SELECT_ONLY_CLOUD_PC_FIELDS: [&str; 1] = ["disasterRecoveryCapability"];

/// Graph API version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    /// Returns the path segment, `v1.0` or `beta`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

fn to_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Renders a Cloud PC; `include_evolved` reflects `Prefer: include-unknown-enum-members`.
pub(crate) fn cloud_pc(
    pc: &CloudPc,
    version: ApiVersion,
    include_evolved: bool,
) -> Map<String, Value> {
    let mut map = to_map(json!({
        "id": pc.id,
        "displayName": pc.display_name,
        "aadDeviceId": pc.aad_device_id,
        "userPrincipalName": pc.user_principal_name,
        "managedDeviceId": pc.managed_device_id,
        "managedDeviceName": pc.managed_device_name,
        "provisioningPolicyId": pc.provisioning_policy_id,
        "provisioningPolicyName": null,
        "servicePlanId": pc.service_plan_id,
        "servicePlanName": pc.service_plan_name,
        "provisioningType": "dedicated",
        "imageDisplayName": pc.image_display_name,
        "lastModifiedDateTime": pc.last_modified,
        "gracePeriodEndDateTime": pc.grace_period_end,
    }));
    if version == ApiVersion::V1 {
        return map;
    }
    let status = if !include_evolved && EVOLVED_CLOUD_PC_STATUSES.contains(&pc.status) {
        "unknownFutureValue"
    } else {
        pc.status
    };
    let status_detail = pc.status_detail.as_ref().map(|(code, message)| {
        json!({
            "code": code,
            "message": message,
            "additionalInformation": [{"name": "retriable", "value": "true"}],
        })
    });
    let beta = json!({
        "status": status,
        "productType": pc.plan.as_str(),
        "servicePlanType": pc.plan.as_str(),
        "statusDetail": status_detail,
        "lastRemoteActionResult": null,
        "provisionedDateTime": pc.provisioned,
        "userExperienceType": "cloudPc",
        "disasterRecoveryCapability": null,
    });
    map.extend(to_map(beta));
    map
}

/// Renders a provisioning policy with its assignments.
pub(crate) fn policy(policy: &ProvisioningPolicy) -> Map<String, Value> {
    to_map(json!({
        "id": policy.id,
        "displayName": policy.display_name,
        "description": policy.description,
        "imageDisplayName": policy.image_display_name,
        "assignments": policy.group_ids.iter().map(|group| policy_assignment(&policy.id, group)).collect::<Vec<_>>(),
    }))
}

/// Renders one `cloudPcProvisioningPolicyAssignment`.
pub(crate) fn policy_assignment(policy_id: &str, group_id: &str) -> Value {
    json!({
        "id": format!("{policy_id}_{group_id}"),
        "target": {
            "@odata.type": "#microsoft.graph.cloudPcManagementGroupAssignmentTarget",
            "groupId": group_id,
        },
    })
}

/// Renders a managed device; `managementState` is beta-only.
pub(crate) fn managed_device(device: &ManagedDevice, version: ApiVersion) -> Map<String, Value> {
    let mut map = to_map(json!({
        "id": device.id,
        "deviceName": device.device_name,
        "managedDeviceName": format!("{}_Windows_{}", device.user_principal_name.split('@').next().unwrap_or(""), device.enrolled.get(..10).unwrap_or("")),
        "userId": device.user_id,
        "userPrincipalName": device.user_principal_name,
        "serialNumber": device.serial_number,
        "operatingSystem": "Windows",
        "osVersion": device.os_version,
        "complianceState": device.compliance_state,
        "lastSyncDateTime": device.last_sync,
        "enrolledDateTime": device.enrolled,
        "managementAgent": "mdm",
        "deviceEnrollmentType": "windowsAzureADJoin",
        "azureADDeviceId": device.azure_ad_device_id,
        "azureADRegistered": true,
        "deviceCategoryDisplayName": device.category,
        "model": device.model,
    }));
    if version == ApiVersion::Beta {
        map.insert("managementState".into(), json!(device.management_state));
    }
    map
}

/// Renders an Entra ID group.
pub(crate) fn group(group: &Group) -> Map<String, Value> {
    to_map(json!({
        "id": group.id,
        "displayName": group.display_name,
        "description": group.description,
        "mailEnabled": group.mail_enabled,
        "mailNickname": group.mail_nickname,
        "securityEnabled": group.security_enabled,
    }))
}

/// Renders an Entra ID user as a directory object.
pub(crate) fn user(user: &User) -> Map<String, Value> {
    to_map(json!({
        "@odata.type": "#microsoft.graph.user",
        "id": user.id,
        "displayName": user.display_name,
        "userPrincipalName": user.user_principal_name,
    }))
}

/// Renders an Entra ID device as a directory object.
pub(crate) fn device(device: &DirectoryDevice) -> Map<String, Value> {
    to_map(json!({
        "@odata.type": "#microsoft.graph.device",
        "id": device.id,
        "deviceId": device.device_id,
        "displayName": device.display_name,
    }))
}

/// Returns the `publishingState` of an app at `now`: `notPublished` until a PATCH commits
/// a content version, then `processing` for `delay`, then `published`.
pub(crate) fn publishing_state(app: &MobileApp, now: Instant, delay: Duration) -> &'static str {
    match &app.committed {
        None => "notPublished",
        Some((_, at)) if *at + delay <= now => "published",
        Some(_) => "processing",
    }
}

/// Renders a mobile app: the stored properties, its id, type, committed content version and
/// publishing state.
pub(crate) fn mobile_app(app: &MobileApp, publishing: &str) -> Map<String, Value> {
    let committed = app.committed.as_ref().map(|(version, _)| version.as_str());
    let mut map = Map::new();
    map.insert("@odata.type".into(), json!(app.odata_type));
    map.insert("id".into(), json!(app.id));
    map.extend(app.properties.clone());
    map.insert("committedContentVersion".into(), json!(committed));
    map.insert("createdDateTime".into(), json!(app.created_at));
    map.insert("lastModifiedDateTime".into(), json!(app.modified_at));
    map.insert("publishingState".into(), json!(publishing));
    map
}

/// Renders a `mobileAppContent`.
pub(crate) fn content_version(version: &ContentVersion) -> Map<String, Value> {
    to_map(json!({
        "@odata.type": "#microsoft.graph.mobileAppContent",
        "id": version.id,
    }))
}

/// Renders a `mobileAppContentFile` of the app `app_id`, with the SAS URL of its last grant
/// on the listener at `base_url`.
pub(crate) fn content_file(file: &ContentFile, base_url: &str, app_id: &str) -> Map<String, Value> {
    let storage_uri = file
        .sas
        .as_ref()
        .map(|grant| grant.url(base_url, app_id, &file.id));
    let expiry = file.sas.as_ref().map(|grant| grant.expiry_text());
    to_map(json!({
        "@odata.type": "#microsoft.graph.mobileAppContentFile",
        "id": file.id,
        "name": file.name,
        "size": file.size,
        "sizeEncrypted": file.size_encrypted,
        "sizeInBytes": file.size,
        "sizeEncryptedInBytes": file.size_encrypted,
        "manifest": file.manifest,
        "isDependency": file.is_dependency,
        "isCommitted": file.upload_state == UploadState::CommitFileSuccess,
        "uploadState": file.upload_state.as_str(),
        "azureStorageUri": storage_uri,
        "azureStorageUriExpirationDateTime": expiry,
        "createdDateTime": file.created_at,
    }))
}

/// Adds the undocumented field and replaces enum values with undocumented ones.
pub(crate) fn inject_unknown(map: &mut Map<String, Value>) {
    if map.contains_key("status") {
        map.insert("status".into(), json!(UNKNOWN_CLOUD_PC_STATUS));
    }
    if map.contains_key("servicePlanType") {
        map.insert("servicePlanType".into(), json!("unknownFutureValue"));
    }
    if map.contains_key("complianceState") {
        map.insert("complianceState".into(), json!("unknownFutureValue"));
    }
    map.insert(UNKNOWN_FIELD.into(), json!("simulated undocumented field"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::config::GraphFleet;
    use crate::graph::seed;

    #[test]
    fn v1_cloud_pc_has_no_beta_fields() {
        let state = seed::build(&GraphFleet::Small, 1);
        let map = cloud_pc(&state.cloud_pcs[0], ApiVersion::V1, false);
        assert!(!map.contains_key("status"));
        assert!(!map.contains_key("servicePlanType"));
        assert!(map.contains_key("managedDeviceId"));
    }

    #[test]
    fn evolved_status_needs_prefer_header() {
        let state = seed::build(&GraphFleet::Hospital, 1);
        let pc = state
            .cloud_pcs
            .iter()
            .find(|pc| pc.status == "movingRegion")
            .unwrap();
        let hidden = cloud_pc(pc, ApiVersion::Beta, false);
        assert_eq!(hidden["status"], "unknownFutureValue");
        let shown = cloud_pc(pc, ApiVersion::Beta, true);
        assert_eq!(shown["status"], "movingRegion");
    }
}
