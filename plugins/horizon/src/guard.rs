//! The Horizon deny-list: image pushes, scheduled farm maintenance, image management, machine
//! reset, restart, rebuild, recover and delete, session logoff, disconnect, reset and restart.
//! The gateway never calls these, and the guard blocks them before a request leaves.

use std::sync::Arc;

use broker_http::{BodyInspector, Guard, GuardViolation};
use http::Method;

/// Broker name in guard violations.
const BROKER: &str = "horizon";

/// Methods that change state; reads stay allowed.
const WRITES: &[Method] = &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Body keys that only appear in image push, scheduled maintenance or destructive machine
/// and session requests (Horizon Server REST API 2111: `DesktopPoolPushImageSpec`,
/// `FarmMaintenanceSpec`, machine delete options).
const DENIED_BODY_KEYS: &[(&str, &str)] = &[
    ("parent_vm_id", "image_push"),
    ("snapshot_id", "image_push"),
    ("im_stream_id", "image_push"),
    ("im_tag_id", "image_push"),
    ("selective_push_image", "image_push"),
    ("logoff_policy", "image_push"),
    ("force_logoff_session", "machine_delete"),
    ("delete_from_disk", "machine_delete"),
];

/// Builds the guard every Horizon request passes through. Paths are relative to the API base
/// (`.../rest/`), and `*` in the version segment covers every API version.
pub fn horizon_guard() -> Guard {
    let post = &[Method::POST];
    let delete = &[Method::DELETE];
    let mut guard = Guard::new(BROKER);

    // Image push replaces a pool's image and recreates its machines.
    for action in [
        "schedule-push-image",
        "cancel-scheduled-push-image",
        "promote-pending-image",
        "apply-image",
    ] {
        guard = guard.deny(
            "image_push",
            post,
            &format!("inventory/*/desktop-pools/*/action/{action}"),
        );
    }
    guard = guard.deny("image_push", WRITES, "inventory/*/desktop-pools/*/tasks/**");

    // Scheduled maintenance of an instant-clone farm can replace its image and log users off.
    for action in ["schedule-maintenance", "cancel-scheduled-maintenance"] {
        guard = guard.deny(
            "farm_maintenance",
            post,
            &format!("inventory/*/farms/*/action/{action}"),
        );
    }

    for collection in ["im-streams", "im-versions", "im-tags", "im-assets"] {
        guard = guard
            .deny(
                "image_management",
                WRITES,
                &format!("config/*/{collection}"),
            )
            .deny(
                "image_management",
                WRITES,
                &format!("config/*/{collection}/**"),
            );
    }

    for action in ["reset", "restart"] {
        guard = guard
            .deny(
                "machine_power",
                post,
                &format!("inventory/*/machines/action/{action}"),
            )
            .deny(
                "machine_power",
                post,
                &format!("inventory/*/machines/*/action/{action}"),
            )
            .deny(
                "machine_power",
                post,
                &format!("inventory/*/rds-servers/action/{action}"),
            );
    }
    for action in ["rebuild", "recover"] {
        guard = guard
            .deny(
                "machine_reprovision",
                post,
                &format!("inventory/*/machines/action/{action}"),
            )
            .deny(
                "machine_reprovision",
                post,
                &format!("inventory/*/machines/*/action/{action}"),
            );
    }

    guard = guard
        .deny("machine_delete", delete, "inventory/*/machines")
        .deny("machine_delete", delete, "inventory/*/machines/*")
        .deny("machine_delete", delete, "inventory/*/rds-servers/**")
        .deny(
            "machine_delete",
            post,
            "inventory/*/desktop-pools/*/action/remove-machines",
        );

    // Logoff and disconnect end or interrupt users' work, forced or not; reset and restart
    // reboot the machine under the session.
    for sessions in ["sessions", "global-sessions"] {
        for action in ["logoff", "disconnect", "reset", "restart"] {
            guard = guard.deny(
                "session_destructive",
                post,
                &format!("inventory/*/{sessions}/action/{action}"),
            );
        }
    }

    // The gateway never edits or deletes pools and farms, because an update can change
    // provisioning and image settings. This is an inference: the push image spec uses the
    // same fields.
    for collection in ["desktop-pools", "farms"] {
        guard = guard
            .deny(
                "pool_change",
                &[Method::PUT, Method::PATCH, Method::DELETE],
                &format!("inventory/*/{collection}/*"),
            )
            .deny("pool_change", delete, &format!("inventory/*/{collection}"));
    }

    // Maintenance mode keeps users out of a machine; the gateway never needs it.
    for action in ["enter-maintenance", "exit-maintenance"] {
        guard = guard.deny(
            "maintenance_mode",
            post,
            &format!("inventory/*/machines/action/{action}"),
        );
    }

    guard.inspect_bodies(Arc::new(DeniedBodyInspector))
}

/// Rejects any write whose body carries a key of an image push, scheduled maintenance or
/// machine delete request, whatever its path, so a new endpoint version cannot slip through.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeniedBodyInspector;

impl BodyInspector for DeniedBodyInspector {
    fn inner_requests(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        if let Some(class) = denied_key(body, 0) {
            return Err(GuardViolation {
                broker: BROKER.to_owned(),
                class: class.to_owned(),
                method: method.to_string(),
                path: path.to_owned(),
            });
        }
        Ok(Vec::new())
    }
}

/// Returns the class of the first denied key found, a few levels deep.
fn denied_key(value: &serde_json::Value, depth: usize) -> Option<&'static str> {
    if depth > 8 {
        return None;
    }
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(key, inner)| {
            DENIED_BODY_KEYS
                .iter()
                .find(|(denied, _)| key.eq_ignore_ascii_case(denied))
                .map(|(_, class)| *class)
                .or_else(|| denied_key(inner, depth + 1))
        }),
        serde_json::Value::Array(items) => items.iter().find_map(|v| denied_key(v, depth + 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn blocked_class(method: Method, path: &str, body: Option<serde_json::Value>) -> String {
        horizon_guard()
            .check(&method, path, body.as_ref())
            .expect_err("guard allowed a denied request")
            .class
    }

    fn allowed(method: Method, path: &str, body: Option<serde_json::Value>) {
        let result = horizon_guard().check(&method, path, body.as_ref());
        assert!(result.is_ok(), "{method} {path}: {result:?}");
    }

    #[test]
    fn blocks_image_push() {
        let body = json!({"parent_vm_id": "vm-1", "snapshot_id": "snap-1",
                          "logoff_policy": "WAIT_FOR_LOGOFF", "start_time": 0});
        for path in [
            "inventory/v1/desktop-pools/p1/action/schedule-push-image",
            "inventory/v2/desktop-pools/p1/action/schedule-push-image",
            "inventory/v1/desktop-pools/p1/action/cancel-scheduled-push-image",
            "inventory/v1/desktop-pools/p1/action/promote-pending-image",
            "inventory/v1/desktop-pools/p1/action/apply-image",
            "inventory/v1/desktop-pools/p1/tasks/t1/action/resume",
        ] {
            assert_eq!(
                blocked_class(Method::POST, path, Some(body.clone())),
                "image_push",
                "{path}"
            );
        }
    }

    #[test]
    fn blocks_farm_maintenance() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/farms/f1/action/schedule-maintenance",
                None
            ),
            "farm_maintenance"
        );
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/farms/f1/action/cancel-scheduled-maintenance",
                None
            ),
            "farm_maintenance"
        );
    }

    #[test]
    fn blocks_image_management() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "config/v1/im-streams",
                Some(json!({"name": "s"}))
            ),
            "image_management"
        );
        assert_eq!(
            blocked_class(Method::DELETE, "config/v1/im-tags/t1", None),
            "image_management"
        );
        allowed(Method::GET, "config/v1/im-streams", None);
    }

    #[test]
    fn blocks_machine_power() {
        for path in [
            "inventory/v1/machines/action/reset",
            "inventory/v1/machines/action/restart",
            "inventory/v1/rds-servers/action/restart",
        ] {
            assert_eq!(
                blocked_class(Method::POST, path, Some(json!(["m1"]))),
                "machine_power",
                "{path}"
            );
        }
    }

    #[test]
    fn blocks_machine_reprovision() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/machines/action/rebuild",
                Some(json!(["m1"]))
            ),
            "machine_reprovision"
        );
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/machines/action/recover",
                Some(json!(["m1"]))
            ),
            "machine_reprovision"
        );
    }

    #[test]
    fn blocks_machine_delete() {
        assert_eq!(
            blocked_class(Method::DELETE, "inventory/v1/machines", None),
            "machine_delete"
        );
        assert_eq!(
            blocked_class(Method::DELETE, "inventory/v1/machines/m1", None),
            "machine_delete"
        );
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/desktop-pools/p1/action/remove-machines",
                Some(json!(["m1"]))
            ),
            "machine_delete"
        );
    }

    #[test]
    fn blocks_session_destructive() {
        for path in [
            "inventory/v1/sessions/action/logoff?forced=true",
            "inventory/v1/sessions/action/logoff",
            "inventory/v1/sessions/action/disconnect",
            "inventory/v1/sessions/action/reset",
            "inventory/v1/sessions/action/restart",
            "inventory/v1/global-sessions/action/logoff",
            "inventory/v1/global-sessions/action/restart",
        ] {
            assert_eq!(
                blocked_class(Method::POST, path, Some(json!(["s1"]))),
                "session_destructive",
                "{path}"
            );
        }
    }

    #[test]
    fn blocks_pool_change() {
        assert_eq!(
            blocked_class(
                Method::PUT,
                "inventory/v1/desktop-pools/p1",
                Some(json!({}))
            ),
            "pool_change"
        );
        assert_eq!(
            blocked_class(Method::DELETE, "inventory/v1/farms/f1", None),
            "pool_change"
        );
    }

    #[test]
    fn blocks_maintenance_mode() {
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v1/machines/action/enter-maintenance",
                Some(json!(["m1"]))
            ),
            "maintenance_mode"
        );
    }

    #[test]
    fn blocks_denied_body_keys_on_any_path() {
        let push = json!({"machine_ids": ["m1"], "im_stream_id": "s1", "im_tag_id": "t1"});
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v9/desktop-pools/p1/action/new-name",
                Some(push)
            ),
            "image_push"
        );
        let delete = json!([{"id": "m1", "options": {"delete_from_disk": true}}]);
        assert_eq!(
            blocked_class(
                Method::POST,
                "inventory/v3/machines/action/remove",
                Some(delete)
            ),
            "machine_delete"
        );
    }

    #[test]
    fn blocks_encoded_and_case_variants() {
        assert_eq!(
            blocked_class(Method::POST, "Inventory/V1/Machines/Action/Reset", None),
            "machine_power"
        );
        assert_eq!(
            blocked_class(Method::POST, "inventory/v1/sessions/action/%6Cogoff", None),
            "session_destructive"
        );
    }

    #[test]
    fn allows_gateway_calls() {
        allowed(
            Method::POST,
            "login",
            Some(json!({"username": "u", "password": "p", "domain": "D"})),
        );
        allowed(Method::POST, "refresh", Some(json!({"refresh_token": "r"})));
        allowed(Method::POST, "logout", Some(json!({"refresh_token": "r"})));

        allowed(Method::GET, "inventory/v5/desktop-pools", None);
        allowed(Method::GET, "inventory/v2/machines?page=1&size=500", None);
        allowed(Method::GET, "inventory/v1/rds-servers", None);
        allowed(Method::GET, "inventory/v1/sessions", None);
        allowed(Method::GET, "inventory/v3/farms", None);

        allowed(
            Method::POST,
            "inventory/v2/application-pools",
            Some(
                json!({"name": "vdigw-epic-1_0-0a1b2c3d", "executable_path": "C:\\p.exe",
                        "desktop_pool_id": "p1", "enabled": true}),
            ),
        );
        allowed(
            Method::PUT,
            "inventory/v1/application-pools/ap1",
            Some(
                json!({"executable_path": "C:\\p.exe", "enabled": false, "enable_pre_launch": false}),
            ),
        );
        allowed(Method::DELETE, "inventory/v1/application-pools/ap1", None);

        allowed(
            Method::POST,
            "entitlements/v1/application-pools",
            Some(json!([{"id": "ap1", "ad_user_or_group_ids": ["S-1-5-21-1-1001"]}])),
        );
        allowed(
            Method::DELETE,
            "entitlements/v1/application-pools",
            Some(json!([{"id": "ap1", "ad_user_or_group_ids": ["S-1-5-21-1-1001"]}])),
        );
        allowed(
            Method::POST,
            "inventory/v1/sessions/action/send-message",
            Some(json!({"session_ids": ["s1"], "message": "m", "message_type": "INFO"})),
        );
    }
}
