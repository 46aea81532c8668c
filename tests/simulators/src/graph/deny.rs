//! Recognition of the Graph calls the gateway must never make.
//!
//! The classes cover the Cloud PC and managed device actions that reboot, restart, change
//! power, reprovision, restore, resize, end a grace period, wipe or retire (Microsoft Graph
//! v1.0 and beta `cloudPC` and `managedDevice` references). They also cover Cloud PC bulk
//! actions and any write to provisioning policies or to the groups they are assigned to,
//! because removing a member there starts a grace period that ends in deprovisioning. The
//! simulator records such calls, also inside `$batch`, and returns 204 without changing
//! state.

use axum::http::Method;
use serde::{Deserialize, Serialize};

use super::state::GraphState;

/// Kind of deny-listed Graph call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphDenyClass {
    /// `cloudPCs/{id}/reboot` or `restart`, `managedDevices/{id}/rebootNow`, bulk restart.
    Reboot,
    /// `powerOn`, `powerOff`, `start`, `stop` of a Cloud PC or `shutDown` of a device.
    Power,
    /// `cloudPCs/{id}/reprovision`, `managedDevices/{id}/reprovisionCloudPc` and their
    /// bulk forms.
    Reprovision,
    /// `cloudPCs/{id}/restore` and bulk restore.
    Restore,
    /// `cloudPCs/{id}/resize` and bulk resize.
    Resize,
    /// `cloudPCs/{id}/endGracePeriod`, which deprovisions at once.
    EndGracePeriod,
    /// `managedDevices/{id}/wipe` or `cleanWindowsDevice`.
    Wipe,
    /// `managedDevices/{id}/retire`.
    Retire,
    /// `cloudPCs/{id}/changeUserAccountType`, which takes effect only after a restart.
    RestartRequired,
    /// `DELETE` of a managed device or Cloud PC.
    DeviceDelete,
    /// Any write under `virtualEndpoint/bulkActions`.
    BulkAction,
    /// Any write under `virtualEndpoint/provisioningPolicies`, including `assign`.
    ProvisioningPolicy,
    /// Any write to a group a provisioning policy is assigned to, or to its members.
    ProvisioningGroup,
}

impl GraphDenyClass {
    /// Every class, for tests that must cover each one.
    pub const ALL: [GraphDenyClass; 13] = [
        GraphDenyClass::Reboot,
        GraphDenyClass::Power,
        GraphDenyClass::Reprovision,
        GraphDenyClass::Restore,
        GraphDenyClass::Resize,
        GraphDenyClass::EndGracePeriod,
        GraphDenyClass::Wipe,
        GraphDenyClass::Retire,
        GraphDenyClass::RestartRequired,
        GraphDenyClass::DeviceDelete,
        GraphDenyClass::BulkAction,
        GraphDenyClass::ProvisioningPolicy,
        GraphDenyClass::ProvisioningGroup,
    ];

    /// Returns the snake_case name stored in [`DeniedCall::class`](crate::common::DeniedCall).
    pub fn as_str(self) -> &'static str {
        match self {
            GraphDenyClass::Reboot => "reboot",
            GraphDenyClass::Power => "power",
            GraphDenyClass::Reprovision => "reprovision",
            GraphDenyClass::Restore => "restore",
            GraphDenyClass::Resize => "resize",
            GraphDenyClass::EndGracePeriod => "end_grace_period",
            GraphDenyClass::Wipe => "wipe",
            GraphDenyClass::Retire => "retire",
            GraphDenyClass::RestartRequired => "restart_required",
            GraphDenyClass::DeviceDelete => "device_delete",
            GraphDenyClass::BulkAction => "bulk_action",
            GraphDenyClass::ProvisioningPolicy => "provisioning_policy",
            GraphDenyClass::ProvisioningGroup => "provisioning_group",
        }
    }
}

/// Lower-case action names on Cloud PCs and managed devices, with their class.
pub(crate) const DENIED_ACTIONS: [(&str, GraphDenyClass); 22] = [
    ("reboot", GraphDenyClass::Reboot),
    ("restart", GraphDenyClass::Reboot),
    ("rebootnow", GraphDenyClass::Reboot),
    ("bulkrestart", GraphDenyClass::Reboot),
    ("poweron", GraphDenyClass::Power),
    ("poweroff", GraphDenyClass::Power),
    ("start", GraphDenyClass::Power),
    ("stop", GraphDenyClass::Power),
    ("shutdown", GraphDenyClass::Power),
    ("reprovision", GraphDenyClass::Reprovision),
    ("reprovisioncloudpc", GraphDenyClass::Reprovision),
    ("bulkreprovisioncloudpc", GraphDenyClass::Reprovision),
    ("restore", GraphDenyClass::Restore),
    ("bulkrestorecloudpc", GraphDenyClass::Restore),
    ("resize", GraphDenyClass::Resize),
    ("bulkresize", GraphDenyClass::Resize),
    ("endgraceperiod", GraphDenyClass::EndGracePeriod),
    ("wipe", GraphDenyClass::Wipe),
    ("cleanwindowsdevice", GraphDenyClass::Wipe),
    ("retire", GraphDenyClass::Retire),
    ("changeuseraccounttype", GraphDenyClass::RestartRequired),
    ("bulkactions", GraphDenyClass::BulkAction),
];

/// Classifies a request by its lower-case path segments after the version segment.
///
/// Returns `None` for reads and for allowed writes.
pub(crate) fn classify(
    method: &Method,
    segments: &[&str],
    state: &GraphState,
) -> Option<GraphDenyClass> {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return None;
    }
    match segments {
        ["devicemanagement", "virtualendpoint", "provisioningpolicies", ..] => {
            Some(GraphDenyClass::ProvisioningPolicy)
        }
        ["devicemanagement", "virtualendpoint", "bulkactions", ..] => {
            Some(GraphDenyClass::BulkAction)
        }
        ["devicemanagement", "virtualendpoint", "cloudpcs", rest @ ..]
        | ["devicemanagement", "manageddevices", rest @ ..] => classify_device(method, rest),
        ["groups", group_id, ..] if state.is_policy_group(group_id) => {
            Some(GraphDenyClass::ProvisioningGroup)
        }
        _ => None,
    }
}

/// Classifies a write under `cloudPCs` or `managedDevices`.
fn classify_device(method: &Method, rest: &[&str]) -> Option<GraphDenyClass> {
    let action = match rest {
        [_id] if *method == Method::DELETE => return Some(GraphDenyClass::DeviceDelete),
        [_id, action] => *action,
        [action] => *action,
        _ => return None,
    };
    let action = action.strip_prefix("microsoft.graph.").unwrap_or(action);
    DENIED_ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::config::GraphFleet;
    use crate::graph::seed;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_lowercase).collect()
    }

    #[test]
    fn classify_cases() {
        let state = seed::build(&GraphFleet::Small, 1);
        let policy_group = format!("groups/{}/members/$ref", state.groups[0].id);
        let cases = [
            (
                Method::POST,
                "deviceManagement/virtualEndpoint/cloudPCs/x/reboot",
                Some(GraphDenyClass::Reboot),
            ),
            (
                Method::POST,
                "deviceManagement/managedDevices/x/rebootNow",
                Some(GraphDenyClass::Reboot),
            ),
            (
                Method::POST,
                "deviceManagement/managedDevices/x/microsoft.graph.wipe",
                Some(GraphDenyClass::Wipe),
            ),
            (
                Method::POST,
                "deviceManagement/managedDevices/x/syncDevice",
                None,
            ),
            (
                Method::POST,
                "deviceManagement/virtualEndpoint/cloudPCs/x/troubleshoot",
                None,
            ),
            (
                Method::DELETE,
                "deviceManagement/managedDevices/x",
                Some(GraphDenyClass::DeviceDelete),
            ),
            (
                Method::POST,
                "deviceManagement/virtualEndpoint/provisioningPolicies/p/assign",
                Some(GraphDenyClass::ProvisioningPolicy),
            ),
            (
                Method::POST,
                policy_group.as_str(),
                Some(GraphDenyClass::ProvisioningGroup),
            ),
            (Method::POST, "groups/other/members/$ref", None),
            (
                Method::GET,
                "deviceManagement/virtualEndpoint/cloudPCs/x/reboot",
                None,
            ),
        ];
        for (method, path, expected) in cases {
            let lower = segments(path);
            let refs: Vec<&str> = lower.iter().map(String::as_str).collect();
            assert_eq!(
                classify(&method, &refs, &state),
                expected,
                "{method} {path}"
            );
        }
    }
}
