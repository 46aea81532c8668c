//! Recognition of the endpoints the gateway must never call.
//!
//! The classes cover image and provisioning updates, reboots, power actions, session
//! logoff and disconnect, and site-wide tag deletion, as listed in the Citrix Orchestration
//! API reference. The simulator records such calls and returns 202 without changing state.

use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kind of deny-listed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyClass {
    /// `$UpdateProvisioningScheme`, `$RollbackProvisioningScheme` or
    /// `$importProvisionedVirtualMachines` on a machine catalog.
    ImageProvisioning,
    /// Any other write to `/MachineCatalogs` (create, edit, delete, add or remove machines,
    /// machine accounts).
    MachineCatalogWrite,
    /// Writes under `/ImageDefinitions` or `/ImageVersions`.
    ImageDefinition,
    /// Writes under `/provisionedVirtualMachines`.
    ProvisionedVm,
    /// Writes under `/maintenanceCycles`.
    MaintenanceCycle,
    /// Writes to an `UpgradeSchedule` of a catalog or machine.
    UpgradeSchedule,
    /// `$RebootMachines`, `$StartRebootCycle` or a machine `$reboot`.
    Reboot,
    /// Writes to a delivery group's `RebootSchedules`.
    RebootSchedule,
    /// Writes to a delivery group's `PowerTimeSchemes`.
    PowerTimeScheme,
    /// Machine `$shutdown`, `$start`, `$suspend`, `$resume`, or deleting
    /// `PowerActionSchedules`.
    Power,
    /// `$logoff` or `$disconnect` on a machine or a session.
    SessionDestructive,
    /// A `TagsRequestModel` with a non-empty `DeleteTags`, which removes tags site-wide.
    TagDelete,
    /// `DELETE /Machines/{nameOrId}`.
    MachineDelete,
    /// A PATCH that sets `InMaintenanceMode` on a machine or delivery group.
    MaintenanceMode,
}

impl DenyClass {
    /// Every class, for tests that must cover each one.
    pub const ALL: [DenyClass; 14] = [
        DenyClass::ImageProvisioning,
        DenyClass::MachineCatalogWrite,
        DenyClass::ImageDefinition,
        DenyClass::ProvisionedVm,
        DenyClass::MaintenanceCycle,
        DenyClass::UpgradeSchedule,
        DenyClass::Reboot,
        DenyClass::RebootSchedule,
        DenyClass::PowerTimeScheme,
        DenyClass::Power,
        DenyClass::SessionDestructive,
        DenyClass::TagDelete,
        DenyClass::MachineDelete,
        DenyClass::MaintenanceMode,
    ];

    /// Returns the snake_case name stored in [`DeniedCall::class`](crate::common::DeniedCall).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyClass::ImageProvisioning => "image_provisioning",
            DenyClass::MachineCatalogWrite => "machine_catalog_write",
            DenyClass::ImageDefinition => "image_definition",
            DenyClass::ProvisionedVm => "provisioned_vm",
            DenyClass::MaintenanceCycle => "maintenance_cycle",
            DenyClass::UpgradeSchedule => "upgrade_schedule",
            DenyClass::Reboot => "reboot",
            DenyClass::RebootSchedule => "reboot_schedule",
            DenyClass::PowerTimeScheme => "power_time_scheme",
            DenyClass::Power => "power",
            DenyClass::SessionDestructive => "session_destructive",
            DenyClass::TagDelete => "tag_delete",
            DenyClass::MachineDelete => "machine_delete",
            DenyClass::MaintenanceMode => "maintenance_mode",
        }
    }
}

/// Classifies a request by its API path segments (lower case, after `/cvad/manage`).
///
/// Returns `None` for reads and for allowed writes. `POST …/$search` is a read.
pub(crate) fn classify(method: &Method, segments: &[String], body: &[u8]) -> Option<DenyClass> {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return None;
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segs.last() == Some(&"$search") {
        return None;
    }
    if has_delete_tags(body) {
        return Some(DenyClass::TagDelete);
    }
    let has = |name: &str| segs.contains(&name);
    let action = segs.last().copied().unwrap_or("");
    match segs.first().copied().unwrap_or("") {
        "machinecatalogs" => Some(match action {
            "$updateprovisioningscheme"
            | "$rollbackprovisioningscheme"
            | "$importprovisionedvirtualmachines" => DenyClass::ImageProvisioning,
            "$rebootmachines" => DenyClass::Reboot,
            _ if has("upgradeschedule") => DenyClass::UpgradeSchedule,
            _ => DenyClass::MachineCatalogWrite,
        }),
        "imagedefinitions" | "imageversions" => Some(DenyClass::ImageDefinition),
        "provisionedvirtualmachines" => Some(DenyClass::ProvisionedVm),
        "maintenancecycles" => Some(DenyClass::MaintenanceCycle),
        "deliverygroups" => classify_delivery_group(method, &segs, body),
        "machines" => classify_machine(method, &segs, body),
        "sessions" => match action {
            "$logoff" | "$disconnect" => Some(DenyClass::SessionDestructive),
            _ => None,
        },
        _ => None,
    }
}

fn classify_delivery_group(method: &Method, segs: &[&str], body: &[u8]) -> Option<DenyClass> {
    if segs.contains(&"$startrebootcycle") {
        Some(DenyClass::Reboot)
    } else if segs.contains(&"rebootschedules") {
        Some(DenyClass::RebootSchedule)
    } else if segs.contains(&"powertimeschemes") {
        Some(DenyClass::PowerTimeScheme)
    } else if *method == Method::PATCH && segs.len() == 2 && sets_maintenance(body) {
        Some(DenyClass::MaintenanceMode)
    } else {
        None
    }
}

fn classify_machine(method: &Method, segs: &[&str], body: &[u8]) -> Option<DenyClass> {
    match segs.get(2).copied() {
        Some("$reboot") => return Some(DenyClass::Reboot),
        Some("$shutdown" | "$start" | "$suspend" | "$resume") => return Some(DenyClass::Power),
        Some("poweractionschedules") => return Some(DenyClass::Power),
        Some("$logoff" | "$disconnect") => return Some(DenyClass::SessionDestructive),
        Some("upgradeschedule") => return Some(DenyClass::UpgradeSchedule),
        _ => {}
    }
    if segs.len() == 2 && *method == Method::DELETE {
        return Some(DenyClass::MachineDelete);
    }
    if segs.len() == 2 && *method == Method::PATCH && sets_maintenance(body) {
        return Some(DenyClass::MaintenanceMode);
    }
    None
}

fn body_object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(body).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn has_delete_tags(body: &[u8]) -> bool {
    body_object(body).is_some_and(|map| {
        map.iter().any(|(key, value)| {
            key.eq_ignore_ascii_case("DeleteTags")
                && value.as_array().is_some_and(|items| !items.is_empty())
        })
    })
}

fn sets_maintenance(body: &[u8]) -> bool {
    body_object(body).is_some_and(|map| {
        map.keys()
            .any(|key| key.eq_ignore_ascii_case("InMaintenanceMode"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_lowercase).collect()
    }

    #[test]
    fn classify_table() {
        let cases: [(Method, &str, &str, Option<DenyClass>); 12] = [
            (
                Method::POST,
                "MachineCatalogs/c/$UpdateProvisioningScheme",
                "",
                Some(DenyClass::ImageProvisioning),
            ),
            (
                Method::PATCH,
                "MachineCatalogs/c",
                "{}",
                Some(DenyClass::MachineCatalogWrite),
            ),
            (Method::POST, "MachineCatalogs/$search", "{}", None),
            (
                Method::POST,
                "Machines/m/$reboot",
                "",
                Some(DenyClass::Reboot),
            ),
            (
                Method::POST,
                "Machines/m/$logoff",
                "",
                Some(DenyClass::SessionDestructive),
            ),
            (
                Method::DELETE,
                "Machines/m",
                "",
                Some(DenyClass::MachineDelete),
            ),
            (
                Method::PUT,
                "Machines/m/Tags",
                r#"{"DeleteTags":["x"]}"#,
                Some(DenyClass::TagDelete),
            ),
            (
                Method::PUT,
                "Machines/m/Tags",
                r#"{"Items":["x"],"DeleteTags":[]}"#,
                None,
            ),
            (Method::POST, "Machines/m/Tags/t", "", None),
            (Method::DELETE, "Machines/m/Tags/t", "", None),
            (Method::GET, "Machines/m/$reboot", "", None),
            (Method::POST, "DeliveryGroups/g/Applications", "{}", None),
        ];
        for (method, path, body, expected) in cases {
            let got = classify(&method, &segments(path), body.as_bytes());
            assert_eq!(got, expected, "{method} {path}");
        }
    }
}
