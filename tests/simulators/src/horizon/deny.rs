//! Recognition of the Horizon endpoints the gateway must never call.
//!
//! The classes follow the Horizon Server REST API 2111 reference. They cover image pushes
//! and their tasks, farm maintenance (which can replace a farm's image) and image
//! management writes. They also cover resets and restarts, rebuild and recover, machine
//! deletion, session logoff and disconnect, and any other write to desktop pools or farms.
//! The simulator records such calls and returns the action's usual success status without
//! changing state.

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// Kind of deny-listed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HorizonDenyClass {
    /// `schedule-push-image`, `cancel-scheduled-push-image`, `promote-pending-image`,
    /// `apply-image` or a push-image task action on a desktop pool.
    ImagePush,
    /// `schedule-maintenance` or `cancel-scheduled-maintenance` on a farm.
    FarmMaintenance,
    /// Writes under `/config/v*/im-streams`, `im-versions`, `im-tags` or `im-assets`.
    ImageManagement,
    /// `reset` or `restart` of machines or sessions, local or global.
    Reboot,
    /// `rebuild` or `recover` of machines.
    Rebuild,
    /// `DELETE` of machines or RDS servers, or `remove-machines` on a desktop pool.
    MachineDelete,
    /// `logoff` (forced or not) or `disconnect` of sessions, local or global.
    SessionDestructive,
    /// Any other create, update or delete of a desktop pool or farm, since it can change
    /// provisioning or image settings.
    PoolWrite,
}

impl HorizonDenyClass {
    /// Every class, for tests that must cover each one.
    pub const ALL: [HorizonDenyClass; 8] = [
        HorizonDenyClass::ImagePush,
        HorizonDenyClass::FarmMaintenance,
        HorizonDenyClass::ImageManagement,
        HorizonDenyClass::Reboot,
        HorizonDenyClass::Rebuild,
        HorizonDenyClass::MachineDelete,
        HorizonDenyClass::SessionDestructive,
        HorizonDenyClass::PoolWrite,
    ];

    /// Returns the snake_case name stored in [`DeniedCall::class`](crate::common::DeniedCall).
    pub fn as_str(self) -> &'static str {
        match self {
            HorizonDenyClass::ImagePush => "image_push",
            HorizonDenyClass::FarmMaintenance => "farm_maintenance",
            HorizonDenyClass::ImageManagement => "image_management",
            HorizonDenyClass::Reboot => "reboot",
            HorizonDenyClass::Rebuild => "rebuild",
            HorizonDenyClass::MachineDelete => "machine_delete",
            HorizonDenyClass::SessionDestructive => "session_destructive",
            HorizonDenyClass::PoolWrite => "pool_write",
        }
    }
}

/// Actions on desktop pools and farms that only read.
const READ_ONLY_POOL_ACTIONS: [&str; 1] = ["validate-installed-applications"];

/// Classifies a request by its lower-case path segments after `/rest`.
///
/// Returns `None` for reads and for allowed writes.
pub(crate) fn classify(method: &Method, segments: &[String]) -> Option<HorizonDenyClass> {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return None;
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (area, rest) = match segs.as_slice() {
        [area, version, rest @ ..] if is_version(version) => (*area, rest),
        _ => return None,
    };
    if area == "config" {
        let image = rest
            .first()
            .is_some_and(|r| matches!(*r, "im-streams" | "im-versions" | "im-tags" | "im-assets"));
        return image.then_some(HorizonDenyClass::ImageManagement);
    }
    if area != "inventory" {
        return None;
    }
    let resource = rest.first().copied().unwrap_or("");
    let action = match rest {
        [.., "action", action] => Some(*action),
        _ => None,
    };
    match resource {
        "machines" | "rds-servers" => match action {
            Some("reset" | "restart") => Some(HorizonDenyClass::Reboot),
            Some("rebuild" | "recover") => Some(HorizonDenyClass::Rebuild),
            None if *method == Method::DELETE => Some(HorizonDenyClass::MachineDelete),
            _ => None,
        },
        "sessions" | "global-sessions" => match action {
            Some("reset" | "restart") => Some(HorizonDenyClass::Reboot),
            Some("logoff" | "disconnect") => Some(HorizonDenyClass::SessionDestructive),
            _ => None,
        },
        "desktop-pools" => match action {
            Some(
                "schedule-push-image"
                | "cancel-scheduled-push-image"
                | "promote-pending-image"
                | "apply-image",
            ) => Some(HorizonDenyClass::ImagePush),
            Some("remove-machines") => Some(HorizonDenyClass::MachineDelete),
            _ if rest.contains(&"tasks") => Some(HorizonDenyClass::ImagePush),
            Some(action) if READ_ONLY_POOL_ACTIONS.contains(&action) => None,
            _ => Some(HorizonDenyClass::PoolWrite),
        },
        "farms" => match action {
            Some("schedule-maintenance" | "cancel-scheduled-maintenance") => {
                Some(HorizonDenyClass::FarmMaintenance)
            }
            Some("remove-rds-servers") => Some(HorizonDenyClass::MachineDelete),
            Some(action) if READ_ONLY_POOL_ACTIONS.contains(&action) => None,
            _ => Some(HorizonDenyClass::PoolWrite),
        },
        _ => None,
    }
}

/// Returns whether a segment is an API version such as `v1`.
pub(crate) fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(method: Method, path: &str) -> Option<HorizonDenyClass> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        classify(&method, &segments)
    }

    #[test]
    fn classifies_denied_calls() {
        use HorizonDenyClass::*;
        let cases = [
            (
                Method::POST,
                "inventory/v1/desktop-pools/p1/action/schedule-push-image",
                ImagePush,
            ),
            (
                Method::POST,
                "inventory/v2/desktop-pools/p1/action/schedule-push-image",
                ImagePush,
            ),
            (
                Method::POST,
                "inventory/v1/desktop-pools/p1/tasks/t1/action/pause",
                ImagePush,
            ),
            (
                Method::POST,
                "inventory/v1/farms/f1/action/schedule-maintenance",
                FarmMaintenance,
            ),
            (Method::POST, "config/v1/im-streams", ImageManagement),
            (Method::DELETE, "config/v1/im-tags/t", ImageManagement),
            (Method::POST, "inventory/v1/machines/action/reset", Reboot),
            (Method::POST, "inventory/v1/machines/action/restart", Reboot),
            (Method::POST, "inventory/v1/sessions/action/reset", Reboot),
            (
                Method::POST,
                "inventory/v1/global-sessions/action/restart",
                Reboot,
            ),
            (
                Method::POST,
                "inventory/v1/machines/action/rebuild",
                Rebuild,
            ),
            (
                Method::POST,
                "inventory/v1/machines/action/recover",
                Rebuild,
            ),
            (Method::DELETE, "inventory/v1/machines", MachineDelete),
            (Method::DELETE, "inventory/v1/machines/m1", MachineDelete),
            (
                Method::POST,
                "inventory/v1/desktop-pools/p1/action/remove-machines",
                MachineDelete,
            ),
            (
                Method::POST,
                "inventory/v1/sessions/action/logoff",
                SessionDestructive,
            ),
            (
                Method::POST,
                "inventory/v1/sessions/action/disconnect",
                SessionDestructive,
            ),
            (Method::PUT, "inventory/v1/desktop-pools/p1", PoolWrite),
            (Method::POST, "inventory/v1/desktop-pools", PoolWrite),
            (Method::DELETE, "inventory/v1/farms/f1", PoolWrite),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                class(method.clone(), path),
                Some(expected),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn allows_gateway_calls() {
        let cases = [
            (Method::GET, "inventory/v1/machines"),
            (
                Method::POST,
                "inventory/v1/machines/action/enter-maintenance",
            ),
            (Method::POST, "inventory/v1/sessions/action/send-message"),
            (Method::POST, "inventory/v1/machines/m1/action/assign-users"),
            (Method::POST, "inventory/v3/application-pools"),
            (Method::DELETE, "inventory/v1/application-pools/a1"),
            (Method::POST, "entitlements/v1/application-pools"),
            (
                Method::POST,
                "inventory/v1/desktop-pools/p1/action/validate-installed-applications",
            ),
        ];
        for (method, path) in cases {
            assert_eq!(class(method.clone(), path), None, "{method} {path}");
        }
    }
}
