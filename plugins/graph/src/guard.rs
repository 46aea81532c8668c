//! The Graph deny-list: every Cloud PC and managed device action that reboots, restarts,
//! reprovisions, restores, resizes, changes power, ends a grace period, wipes, retires or shuts
//! down, every write to provisioning policies and their assignments, and every write to a
//! protected (provisioning) group. Requests inside `$batch` bodies are checked too.

use std::collections::BTreeSet;
use std::sync::Arc;

use broker_http::{BodyInspector, Guard, GuardViolation, InnerRequest};
use http::Method;

/// Broker name in guard violations.
const BROKER: &str = "graph";

/// Methods that change state; reads stay allowed.
const WRITES: &[Method] = &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Cloud PC actions by class (Graph v1.0 and beta `cloudPC` actions). `*` in the first segment
/// of each rule matches the API version (`v1.0`, `beta`).
const CLOUD_PC_ACTIONS: &[(&str, &str)] = &[
    ("reboot", "reboot"),
    ("reboot", "restart"),
    ("reprovision", "reprovision"),
    ("restore", "restore"),
    ("resize", "resize"),
    ("power", "powerOn"),
    ("power", "powerOff"),
    ("power", "start"),
    ("power", "stop"),
    ("grace_period", "endGracePeriod"),
    ("account_type", "changeUserAccountType"),
];

/// Collection-level bulk actions on Cloud PCs (Graph beta).
const CLOUD_PC_BULK: &[(&str, &str)] = &[
    ("resize", "bulkResize"),
    ("restore", "bulkRestore"),
    ("reprovision", "bulkReprovision"),
    ("power", "bulkPowerOn"),
    ("power", "bulkPowerOff"),
];

/// Managed device actions by class (Graph v1.0 and beta `managedDevice` actions).
const MANAGED_DEVICE_ACTIONS: &[(&str, &str)] = &[
    ("reboot", "rebootNow"),
    ("shutdown", "shutDown"),
    ("wipe", "wipe"),
    ("wipe", "cleanWindowsDevice"),
    ("retire", "retire"),
    ("reprovision", "reprovisionCloudPc"),
    ("resize", "resizeCloudPc"),
    ("restore", "restoreCloudPc"),
    ("power", "powerOnCloudPc"),
    ("power", "powerOffCloudPc"),
];

/// Collection-level managed device actions (Graph beta).
const MANAGED_DEVICE_BULK: &[(&str, &str)] = &[
    ("reprovision", "bulkReprovisionCloudPc"),
    ("restore", "bulkRestoreCloudPc"),
    ("wipe", "executeAction"),
];

/// Builds the guard every Graph request passes through; paths are relative to the Graph root.
pub fn graph_guard(protected_groups: &BTreeSet<String>) -> Guard {
    let post = &[Method::POST];
    let mut guard = Guard::new(BROKER).inspect_bodies(Arc::new(BatchInspector));

    for (class, action) in CLOUD_PC_ACTIONS {
        guard = guard.deny(
            class,
            post,
            &format!("*/deviceManagement/virtualEndpoint/cloudPCs/*/{action}"),
        );
    }
    for (class, action) in CLOUD_PC_BULK {
        guard = guard.deny(
            class,
            post,
            &format!("*/deviceManagement/virtualEndpoint/cloudPCs/{action}"),
        );
    }
    // Every bulk action subtype (restart, reprovision, restore, resize, power) is created here.
    guard = guard
        .deny(
            "bulk_action",
            WRITES,
            "*/deviceManagement/virtualEndpoint/bulkActions",
        )
        .deny(
            "bulk_action",
            WRITES,
            "*/deviceManagement/virtualEndpoint/bulkActions/**",
        )
        .deny(
            "deprovision",
            &[Method::DELETE],
            "*/deviceManagement/virtualEndpoint/cloudPCs/*",
        );

    for collection in ["managedDevices", "comanagedDevices"] {
        for (class, action) in MANAGED_DEVICE_ACTIONS {
            guard = guard
                .deny(
                    class,
                    post,
                    &format!("*/deviceManagement/{collection}/*/{action}"),
                )
                .deny(class, post, &format!("*/users/*/managedDevices/*/{action}"));
        }
        for (class, action) in MANAGED_DEVICE_BULK {
            guard = guard.deny(
                class,
                post,
                &format!("*/deviceManagement/{collection}/{action}"),
            );
        }
        guard = guard.deny(
            "retire",
            &[Method::DELETE],
            &format!("*/deviceManagement/{collection}/*"),
        );
    }

    // Unassigning a provisioning policy starts the grace period that ends in deprovisioning.
    guard = guard
        .deny(
            "provisioning_policy",
            WRITES,
            "*/deviceManagement/virtualEndpoint/provisioningPolicies",
        )
        .deny(
            "provisioning_policy",
            WRITES,
            "*/deviceManagement/virtualEndpoint/provisioningPolicies/**",
        );
    for id in protected_groups {
        guard = guard
            .deny("provisioning_group", WRITES, &format!("*/groups/{id}"))
            .deny("provisioning_group", WRITES, &format!("*/groups/{id}/**"));
    }
    guard
}

/// Reads the requests of a Graph `$batch` body so the guard checks each one.
///
/// Inner URLs are relative to the batch's version (`/groups/{id}/members/$ref`); an absolute
/// inner URL is reduced to its path. An inner request without a method or URL is blocked,
/// because it cannot be checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchInspector;

impl BodyInspector for BatchInspector {
    fn inner_requests(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        Ok(self
            .inner_requests_with_bodies(method, path, body)?
            .into_iter()
            .map(|inner| (inner.method, inner.path))
            .collect())
    }

    fn inner_requests_with_bodies(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<InnerRequest>, GuardViolation> {
        let trimmed = path.split('?').next().unwrap_or_default().trim_matches('/');
        let Some((version, rest)) = trimmed.split_once('/') else {
            return Ok(Vec::new());
        };
        if *method != Method::POST || !rest.eq_ignore_ascii_case("$batch") {
            return Ok(Vec::new());
        }
        let unreadable = || GuardViolation {
            broker: BROKER.to_owned(),
            class: "batch_unreadable".to_owned(),
            method: method.to_string(),
            path: path.to_owned(),
        };
        let requests = body
            .get("requests")
            .and_then(|r| r.as_array())
            .ok_or_else(unreadable)?;
        let mut inner = Vec::with_capacity(requests.len());
        for request in requests {
            let inner_method = request
                .get("method")
                .and_then(|m| m.as_str())
                .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .ok_or_else(unreadable)?;
            let url = request
                .get("url")
                .and_then(|u| u.as_str())
                .ok_or_else(unreadable)?;
            inner.push(InnerRequest {
                method: inner_method,
                path: inner_path(version, url),
                body: request.get("body").cloned(),
            });
        }
        Ok(inner)
    }
}

/// Returns the path of an inner batch URL relative to the Graph root.
fn inner_path(version: &str, url: &str) -> String {
    if let Ok(absolute) = url::Url::parse(url) {
        return absolute.path().trim_start_matches('/').to_owned();
    }
    format!("{version}/{}", url.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROTECTED: &str = "6b1f0e2a-0000-4000-8000-00000000c11a";

    fn guard() -> Guard {
        graph_guard(&BTreeSet::from([PROTECTED.to_owned()]))
    }

    fn blocked_class(method: Method, path: &str, body: Option<serde_json::Value>) -> String {
        guard()
            .check(&method, path, body.as_ref())
            .expect_err(&format!("{method} {path} must be blocked"))
            .class
    }

    const PC: &str =
        "v1.0/deviceManagement/virtualEndpoint/cloudPCs/ad3b1c9e-7e5f-4a14-9a1b-0b9f1e1e0a01";
    const DEVICE: &str =
        "v1.0/deviceManagement/managedDevices/0f3a6a8e-2c0b-4f2b-9a77-1c1a1e6f0a02";

    #[test]
    fn reboot_is_blocked() {
        assert_eq!(
            blocked_class(Method::POST, &format!("{PC}/reboot"), None),
            "reboot"
        );
        assert_eq!(
            blocked_class(Method::POST, &format!("{DEVICE}/rebootNow"), None),
            "reboot"
        );
    }

    #[test]
    fn restart_is_blocked() {
        let path = PC.replace("v1.0", "beta") + "/restart";
        assert_eq!(blocked_class(Method::POST, &path, None), "reboot");
        let bulk = "beta/deviceManagement/virtualEndpoint/bulkActions";
        assert_eq!(blocked_class(Method::POST, bulk, None), "bulk_action");
    }

    #[test]
    fn reprovision_is_blocked() {
        let path = PC.replace("v1.0", "beta") + "/reprovision";
        assert_eq!(blocked_class(Method::POST, &path, None), "reprovision");
        let device = format!("{DEVICE}/reprovisionCloudPc");
        assert_eq!(blocked_class(Method::POST, &device, None), "reprovision");
    }

    #[test]
    fn restore_is_blocked() {
        assert_eq!(
            blocked_class(Method::POST, &format!("{PC}/restore"), None),
            "restore"
        );
    }

    #[test]
    fn resize_is_blocked() {
        let bulk = "beta/deviceManagement/virtualEndpoint/cloudPCs/bulkResize";
        assert_eq!(blocked_class(Method::POST, bulk, None), "resize");
        assert_eq!(
            blocked_class(Method::POST, &format!("{PC}/resize"), None),
            "resize"
        );
    }

    #[test]
    fn power_change_is_blocked() {
        for action in ["powerOn", "powerOff", "start", "stop"] {
            assert_eq!(
                blocked_class(Method::POST, &format!("{PC}/{action}"), None),
                "power"
            );
        }
    }

    #[test]
    fn end_grace_period_is_blocked() {
        let path = format!("{PC}/endGracePeriod");
        assert_eq!(blocked_class(Method::POST, &path, None), "grace_period");
    }

    #[test]
    fn wipe_is_blocked() {
        assert_eq!(
            blocked_class(Method::POST, &format!("{DEVICE}/wipe"), None),
            "wipe"
        );
        let clean = format!("{DEVICE}/cleanWindowsDevice");
        assert_eq!(blocked_class(Method::POST, &clean, None), "wipe");
    }

    #[test]
    fn retire_is_blocked() {
        assert_eq!(
            blocked_class(Method::POST, &format!("{DEVICE}/retire"), None),
            "retire"
        );
        assert_eq!(blocked_class(Method::DELETE, DEVICE, None), "retire");
    }

    #[test]
    fn shutdown_is_blocked() {
        let path = format!("{DEVICE}/shutDown");
        assert_eq!(blocked_class(Method::POST, &path, None), "shutdown");
    }

    #[test]
    fn policy_assignment_is_blocked() {
        let path = "v1.0/deviceManagement/virtualEndpoint/provisioningPolicies/p1/assign";
        assert_eq!(
            blocked_class(Method::POST, path, None),
            "provisioning_policy"
        );
    }

    #[test]
    fn protected_group_write_is_blocked() {
        let add = format!("v1.0/groups/{PROTECTED}/members/$ref");
        assert_eq!(
            blocked_class(Method::POST, &add, None),
            "provisioning_group"
        );
        let remove = format!("v1.0/groups/{PROTECTED}/members/x/$ref");
        assert_eq!(
            blocked_class(Method::DELETE, &remove, None),
            "provisioning_group"
        );
        assert_eq!(
            blocked_class(Method::PATCH, &format!("v1.0/groups/{PROTECTED}"), None),
            "provisioning_group"
        );
    }

    #[test]
    fn denied_request_inside_batch_is_blocked() {
        let body = json!({"requests": [
            {"id": "1", "method": "GET", "url": "/groups?$select=id"},
            {"id": "2", "method": "DELETE", "url": format!("/groups/{PROTECTED}/members/x/$ref")},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "v1.0/$batch", Some(body)),
            "provisioning_group"
        );
        let reboot = json!({"requests": [
            {"id": "1", "method": "post", "url": format!("https://graph.microsoft.com/{PC}/reboot")},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "v1.0/$batch", Some(reboot)),
            "reboot"
        );
    }

    #[test]
    fn unreadable_batch_is_blocked() {
        let body = json!({"requests": [{"id": "1", "url": "/groups"}]});
        assert_eq!(
            blocked_class(Method::POST, "v1.0/$batch", Some(body)),
            "batch_unreadable"
        );
    }

    #[test]
    fn delivery_requests_are_allowed() {
        let allowed = [
            (
                Method::POST,
                "v1.0/groups/gateway-group/members/$ref".to_owned(),
            ),
            (
                Method::DELETE,
                "v1.0/groups/gateway-group/members/d1/$ref".to_owned(),
            ),
            (Method::POST, format!("{DEVICE}/syncDevice")),
            (
                Method::POST,
                "v1.0/deviceAppManagement/mobileApps".to_owned(),
            ),
            (
                Method::GET,
                "v1.0/deviceManagement/virtualEndpoint/provisioningPolicies".to_owned(),
            ),
            (Method::GET, PC.to_owned()),
        ];
        for (method, path) in allowed {
            assert!(
                guard().check(&method, &path, None).is_ok(),
                "{method} {path}"
            );
        }
    }
}
