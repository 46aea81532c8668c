//! The Citrix deny-list: endpoints that touch images, catalogs, power, reboots, maintenance or
//! users' sessions, which the gateway must never call, including inside `$batch` bodies.

use std::sync::Arc;

use broker_http::{BodyInspector, Guard, GuardViolation, InnerRequest};
use http::Method;

/// Broker name in guard violations.
const BROKER: &str = "citrix";

/// Methods that change state. Reads stay allowed everywhere, because reading a catalog or a
/// reboot schedule changes nothing.
const WRITES: &[Method] = &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Builds the guard every Citrix request passes through.
pub fn citrix_guard() -> Guard {
    let post = &[Method::POST];
    let delete = &[Method::DELETE];
    let guard = Guard::new(BROKER)
        // Image and provisioning updates replace a catalog's master image and reboot machines.
        .deny(
            "image_provisioning",
            post,
            "MachineCatalogs/*/$UpdateProvisioningScheme",
        )
        .deny(
            "image_provisioning",
            post,
            "MachineCatalogs/*/$RollbackProvisioningScheme",
        )
        .deny(
            "image_provisioning",
            post,
            "MachineCatalogs/*/$repairMachineAccounts",
        )
        .deny(
            "image_provisioning",
            post,
            "MachineCatalogs/*/$importProvisionedVirtualMachines",
        )
        .deny(
            "image_provisioning",
            post,
            "MachineCatalogs/$importProvisionedVirtualMachines",
        )
        // Machine removal, before the broader catalog rule so it reports its own class.
        .deny("machine_delete", delete, "Machines/*")
        .deny("machine_delete", delete, "MachineCatalogs/*/Machines")
        .deny("machine_delete", delete, "MachineCatalogs/*/Machines/*")
        .deny("machine_delete", delete, "DeliveryGroups/*/Machines")
        .deny("machine_delete", delete, "DeliveryGroups/*/Machines/*")
        // Reboots and power actions, before the catalog rule for the same reason.
        .deny("reboot_power", post, "MachineCatalogs/*/$RebootMachines")
        .deny("reboot_power", post, "DeliveryGroups/*/$StartRebootCycle")
        .deny("reboot_power", post, "Machines/*/$reboot")
        .deny("reboot_power", post, "Machines/*/$shutdown")
        .deny("reboot_power", post, "Machines/*/$start")
        .deny("reboot_power", post, "Machines/*/$suspend")
        .deny("reboot_power", post, "Machines/*/$resume")
        .deny("reboot_power", WRITES, "Machines/*/PowerActionSchedules")
        .deny("reboot_power", WRITES, "Machines/*/PowerActionSchedules/**")
        // Catalog writes can change CPU, memory, the machine profile or membership.
        .deny("catalog_write", WRITES, "MachineCatalogs")
        .deny("catalog_write", WRITES, "MachineCatalogs/*")
        .deny("catalog_write", WRITES, "MachineCatalogs/*/**")
        .deny("catalog_write", WRITES, "MachineCatalogsV2")
        .deny("catalog_write", WRITES, "MachineCatalogsV2/**")
        .deny("catalog_write", WRITES, "Machines/*/MachineAccounts")
        .deny("catalog_write", WRITES, "MachineAccounts")
        .deny("catalog_write", WRITES, "MachineAccounts/**")
        .deny("image_definitions", WRITES, "ImageDefinitions")
        .deny("image_definitions", WRITES, "ImageDefinitions/**")
        .deny("image_definitions", WRITES, "ImageVersions")
        .deny("image_definitions", WRITES, "ImageVersions/**")
        .deny("provisioned_vm", WRITES, "ProvisionedVirtualMachines/**")
        .deny("maintenance_cycles", WRITES, "MaintenanceCycles")
        .deny("maintenance_cycles", WRITES, "MaintenanceCycles/**")
        .deny(
            "upgrade_schedule",
            WRITES,
            "MachineCatalogs/*/UpgradeSchedule",
        )
        .deny("upgrade_schedule", WRITES, "Machines/*/UpgradeSchedule")
        .deny(
            "reboot_schedule",
            WRITES,
            "DeliveryGroups/*/RebootSchedules",
        )
        .deny(
            "reboot_schedule",
            WRITES,
            "DeliveryGroups/*/RebootSchedules/**",
        )
        .deny(
            "power_time_scheme",
            WRITES,
            "DeliveryGroups/*/PowerTimeSchemes",
        )
        .deny(
            "power_time_scheme",
            WRITES,
            "DeliveryGroups/*/PowerTimeSchemes/**",
        )
        // Logoff and disconnect end or interrupt users' work.
        .deny("session_destructive", post, "Machines/*/$logoff")
        .deny("session_destructive", post, "Machines/*/$disconnect")
        .deny("session_destructive", post, "Sessions/*/$logoff")
        .deny("session_destructive", post, "Sessions/*/$disconnect")
        // Replacing a machine's whole tag set would drop tags other tools own.
        .deny("tag_replace", &[Method::PUT], "Machines/*/Tags");
    guard
        .inspect_bodies(Arc::new(BatchInspector))
        .inspect_bodies(Arc::new(DestructiveBodyInspector))
}

fn violation(class: &str, method: &Method, path: &str) -> GuardViolation {
    GuardViolation {
        broker: BROKER.to_owned(),
        class: class.to_owned(),
        method: method.to_string(),
        path: path.to_owned(),
    }
}

/// Finds a key of a JSON object, ignoring ASCII case.
fn field<'a>(object: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Returns the path without its query and leading slash.
fn bare_path(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.trim_start_matches('/')
}

/// Returns whether the path's last segment is `segment`, ignoring ASCII case.
fn ends_with_segment(path: &str, segment: &str) -> bool {
    bare_path(path)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case(segment))
}

/// Returns whether the path is `{collection}/{one segment}`.
fn is_object_path(path: &str, collection: &str) -> bool {
    let segments: Vec<&str> = bare_path(path).trim_end_matches('/').split('/').collect();
    segments.len() == 2 && segments[0].eq_ignore_ascii_case(collection)
}

/// Expands `POST $batch` into the requests it carries, and checks each carried body.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchInspector;

impl BatchInspector {
    /// Strips the `v1/{customerId}/{siteId}/` prefix Citrix requires on batch URLs
    /// (`BatchRequestItemModel`, citrix-daas-rest-go docs), so the rules see API paths.
    pub fn api_path(relative_url: &str) -> String {
        let trimmed = relative_url.trim_start_matches('/');
        let mut segments = trimmed.splitn(4, '/');
        let first = segments.next().unwrap_or_default();
        let is_version = first.len() > 1
            && first.starts_with(['v', 'V'])
            && first[1..].chars().all(|c| c.is_ascii_digit());
        if !is_version {
            return trimmed.to_owned();
        }
        let _customer = segments.next();
        let _site = segments.next();
        segments.next().unwrap_or_default().to_owned()
    }
}

impl BodyInspector for BatchInspector {
    fn inner_requests(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        let inner = self.inner_requests_with_bodies(method, path, body)?;
        Ok(inner.into_iter().map(|r| (r.method, r.path)).collect())
    }

    /// Returns each item with its body, so the guard runs every inspector on it in turn
    /// (a `DeleteTags` body or a nested `$batch` inside a batch).
    fn inner_requests_with_bodies(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<InnerRequest>, GuardViolation> {
        if *method != Method::POST || !ends_with_segment(path, "$batch") {
            return Ok(Vec::new());
        }
        let Some(items) = field(body, "Items").and_then(|v| v.as_array()) else {
            return Err(violation("batch_unreadable", method, path));
        };
        let mut inner = Vec::with_capacity(items.len());
        for item in items {
            let item_method = field(item, "Method")
                .and_then(|v| v.as_str())
                .unwrap_or("GET");
            let item_method = Method::from_bytes(item_method.to_ascii_uppercase().as_bytes())
                .map_err(|_| violation("batch_unreadable", method, path))?;
            let Some(url) = field(item, "RelativeUrl").and_then(|v| v.as_str()) else {
                return Err(violation("batch_unreadable", method, path));
            };
            // Item bodies are JSON text; a body that does not parse reaches no endpoint rule,
            // so it is rejected rather than passed unchecked.
            let item_body = match field(item, "Body") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
                Some(serde_json::Value::String(text)) => Some(
                    serde_json::from_str::<serde_json::Value>(text)
                        .map_err(|_| violation("batch_unreadable", method, path))?,
                ),
                Some(other) => Some(other.clone()),
            };
            inner.push(InnerRequest {
                method: item_method,
                path: Self::api_path(url),
                body: item_body,
            });
        }
        Ok(inner)
    }
}

/// Rejects bodies that are destructive whatever their path: any `DeleteTags` (which removes a
/// tag from every object of the site, then deletes it), any write setting `UpgradeSchedule`,
/// and machine or delivery group updates that toggle maintenance mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct DestructiveBodyInspector;

impl DestructiveBodyInspector {
    fn check(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), GuardViolation> {
        if contains_key(body, "DeleteTags", 0) {
            return Err(violation("tag_delete_sitewide", method, path));
        }
        let is_update = *method == Method::PATCH || *method == Method::PUT;
        if is_update && field(body, "UpgradeSchedule").is_some() {
            return Err(violation("upgrade_schedule", method, path));
        }
        let toggles_maintenance = field(body, "InMaintenanceMode").is_some()
            && (is_object_path(path, "Machines") || is_object_path(path, "DeliveryGroups"));
        if is_update && toggles_maintenance {
            return Err(violation("maintenance_mode", method, path));
        }
        Ok(())
    }
}

/// Returns whether `key` appears anywhere in the value, a few levels deep.
fn contains_key(value: &serde_json::Value, key: &str, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(key) || contains_key(v, key, depth + 1)),
        serde_json::Value::Array(items) => items.iter().any(|v| contains_key(v, key, depth + 1)),
        _ => false,
    }
}

impl BodyInspector for DestructiveBodyInspector {
    fn inner_requests(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        self.check(method, path, body)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn blocked_class(method: Method, path: &str, body: Option<serde_json::Value>) -> String {
        citrix_guard()
            .check(&method, path, body.as_ref())
            .expect_err("guard allowed a denied request")
            .class
    }

    fn allowed(method: Method, path: &str, body: Option<serde_json::Value>) {
        let result = citrix_guard().check(&method, path, body.as_ref());
        assert!(result.is_ok(), "{method} {path}: {result:?}");
    }

    #[test]
    fn blocks_image_provisioning() {
        let body = json!({"MasterImagePath": "XDHyp:\\image.vm", "RebootOptions": {}});
        let class = blocked_class(
            Method::POST,
            "MachineCatalogs/EHR%20Catalog/$UpdateProvisioningScheme",
            Some(body),
        );
        assert_eq!(class, "image_provisioning");
    }

    #[test]
    fn blocks_catalog_write() {
        let class = blocked_class(
            Method::PATCH,
            "MachineCatalogs/cat-1",
            Some(json!({"CpuCount": 4})),
        );
        assert_eq!(class, "catalog_write");
    }

    #[test]
    fn blocks_machine_delete() {
        assert_eq!(
            blocked_class(Method::DELETE, "Machines/HOSP|EHR-VDA-001", None),
            "machine_delete"
        );
    }

    #[test]
    fn blocks_image_definitions() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "ImageDefinitions/def-1/ImageVersions",
                Some(json!({}))
            ),
            "image_definitions"
        );
    }

    #[test]
    fn blocks_provisioned_vm() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "ProvisionedVirtualMachines/S-1-5-21/$applyUpdate",
                None
            ),
            "provisioned_vm"
        );
    }

    #[test]
    fn blocks_maintenance_cycles() {
        assert_eq!(
            blocked_class(Method::POST, "MaintenanceCycles/c1/$restart", None),
            "maintenance_cycles"
        );
    }

    #[test]
    fn blocks_upgrade_schedule_body() {
        let body = json!({"UpgradeSchedule": {"StartTime": "2025-01-01T02:00:00Z"}});
        assert_eq!(
            blocked_class(Method::PATCH, "Machines/HOSP|EHR-VDA-001", Some(body)),
            "upgrade_schedule"
        );
    }

    #[test]
    fn blocks_reboot_power() {
        assert_eq!(
            blocked_class(Method::POST, "Machines/m1/$reboot", None),
            "reboot_power"
        );
        assert_eq!(
            blocked_class(Method::POST, "DeliveryGroups/EHR/$StartRebootCycle", None),
            "reboot_power"
        );
        assert_eq!(
            blocked_class(Method::POST, "MachineCatalogs/c1/$RebootMachines", None),
            "reboot_power"
        );
    }

    #[test]
    fn blocks_reboot_schedule() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "DeliveryGroups/dg1/RebootSchedules",
                Some(json!({}))
            ),
            "reboot_schedule"
        );
    }

    #[test]
    fn blocks_power_time_scheme() {
        assert_eq!(
            blocked_class(
                Method::PATCH,
                "DeliveryGroups/dg1/PowerTimeSchemes/p1",
                Some(json!({}))
            ),
            "power_time_scheme"
        );
    }

    #[test]
    fn blocks_session_destructive() {
        assert_eq!(
            blocked_class(Method::POST, "Sessions/s1/$logoff", None),
            "session_destructive"
        );
        assert_eq!(
            blocked_class(Method::POST, "Machines/m1/$disconnect", None),
            "session_destructive"
        );
    }

    #[test]
    fn blocks_delete_tags_body() {
        let body = json!({"Items": ["a"], "DeleteTags": ["vdigw:epic@1"]});
        assert_eq!(
            blocked_class(Method::PUT, "Machines/m1/Tags", Some(body.clone())),
            "tag_replace"
        );
        assert_eq!(
            DestructiveBodyInspector
                .inner_requests(&Method::PUT, "Machines/m1/Tags", &body)
                .expect_err("DeleteTags passed")
                .class,
            "tag_delete_sitewide"
        );
    }

    #[test]
    fn blocks_maintenance_toggle() {
        assert_eq!(
            blocked_class(
                Method::PATCH,
                "Machines/m1",
                Some(json!({"InMaintenanceMode": false}))
            ),
            "maintenance_mode"
        );
    }

    #[test]
    fn blocks_reboot_inside_batch() {
        let body = json!({"Items": [
            {"Reference": "0", "Method": "POST",
             "RelativeUrl": "v1/acme-health/site-1/Machines/HOSP|EHR-VDA-001/Tags/vdigw:epic@1"},
            {"Reference": "1", "Method": "POST",
             "RelativeUrl": "/v1/acme-health/site-1/Machines/HOSP|EHR-VDA-002/$reboot?async=true"},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "$batch", Some(body)),
            "reboot_power"
        );
    }

    #[test]
    fn blocks_delete_tags_inside_batch() {
        let inner = json!({"DeleteTags": ["x"]}).to_string();
        let body = json!({"Items": [
            {"Reference": "0", "Method": "PATCH", "RelativeUrl": "v1/c/s/Tags/x", "Body": inner},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "$batch", Some(body)),
            "tag_delete_sitewide"
        );
    }

    #[test]
    fn blocks_delete_tags_on_any_path() {
        let body = json!({"Name": "vdigw:epic@1", "DeleteTags": ["vdigw:epic@1"]});
        assert_eq!(
            blocked_class(Method::PATCH, "Tags/vdigw%3Aepic%401", Some(body)),
            "tag_delete_sitewide"
        );
    }

    #[test]
    fn blocks_unreadable_batch() {
        let missing_items = json!({"Requests": []});
        assert_eq!(
            blocked_class(Method::POST, "$batch", Some(missing_items)),
            "batch_unreadable"
        );
        let bad_body = json!({"Items": [
            {"Reference": "0", "Method": "PATCH", "RelativeUrl": "v1/c/s/Tags/x", "Body": "{not json"},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "$batch", Some(bad_body)),
            "batch_unreadable"
        );
    }

    #[test]
    fn blocks_nested_batch_reboot() {
        let inner = json!({"Items": [
            {"Reference": "0", "Method": "POST", "RelativeUrl": "v1/c/s/Machines/m1/$shutdown"},
        ]})
        .to_string();
        let body = json!({"Items": [
            {"Reference": "0", "Method": "POST", "RelativeUrl": "v1/c/s/$batch", "Body": inner},
        ]});
        assert_eq!(
            blocked_class(Method::POST, "$batch", Some(body)),
            "reboot_power"
        );
    }

    #[test]
    fn allows_gateway_calls() {
        allowed(
            Method::POST,
            "Machines/HOSP|EHR-VDA-001/Tags/vdigw%3Aepic%401.0",
            None,
        );
        allowed(
            Method::DELETE,
            "Machines/HOSP|EHR-VDA-001/Tags/tag-id-1",
            None,
        );
        allowed(
            Method::POST,
            "Tags",
            Some(json!({"Name": "vdigw:epic@1.0"})),
        );
        allowed(
            Method::POST,
            "Applications",
            Some(
                json!({"NewApplications": [{"Name": "vdigw-epic-1_0"}], "ApplicationGroups": ["g1"]}),
            ),
        );
        allowed(
            Method::PATCH,
            "Applications/app-1",
            Some(json!({"Enabled": false})),
        );
        allowed(Method::DELETE, "Applications/app-1", None);
        allowed(
            Method::POST,
            "ApplicationGroups",
            Some(json!({"Name": "vdigw-epic"})),
        );
        allowed(Method::GET, "MachineCatalogs/cat-1", None);
        allowed(
            Method::GET,
            "DeliveryGroups/EHR%20Clinicians/Machines",
            None,
        );
    }

    #[test]
    fn allows_tag_batch() {
        let body = json!({"Items": [
            {"Reference": "0", "Method": "POST", "RelativeUrl": "v1/c/s/Machines/m1/Tags/t1"},
            {"Reference": "1", "Method": "DELETE", "RelativeUrl": "v1/c/s/Machines/m1/Tags/t0"},
        ]});
        allowed(Method::POST, "$batch", Some(body));
    }

    #[test]
    fn batch_prefix_is_stripped() {
        assert_eq!(
            BatchInspector::api_path("v1/acme/site-1/Machines/m1/Tags/t1"),
            "Machines/m1/Tags/t1"
        );
        assert_eq!(BatchInspector::api_path("Machines/m1"), "Machines/m1");
    }
}
