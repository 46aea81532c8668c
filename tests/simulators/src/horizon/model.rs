//! Rendering of pod objects as Horizon Server REST API 2111 JSON, per endpoint version.
//!
//! Field names and enum values follow the 2111 OpenAPI schemas (`DesktopPoolInfo`,
//! `DesktopPoolInfoV5`, `MachineInfo`, `MachineInfoV2`, `SessionInfo`, `FarmInfoV3`,
//! `RDSServerInfo`, `ApplicationPoolInfo`, `ApplicationPoolInfoV2`, `EntitlementInfo`,
//! `ADUserOrGroupInfo`). Unset optional fields are left out, as the server does.

use serde_json::{json, Map, Value};

use super::state::{
    ApplicationPool, DesktopPool, Farm, HorizonState, Machine, Principal, RdsServer, Session,
};

/// Undocumented field added to every object when the `unknown_values` knob is on.
pub const UNKNOWN_FIELD: &str = "zz_undocumented_field";
/// Undocumented machine state given to every third machine when `unknown_values` is on.
pub const UNKNOWN_MACHINE_STATE: &str = "FUTURE_MACHINE_STATE";

/// Horizon Agent version the seeded machines report.
const AGENT_VERSION: &str = "8.4.0";
const AGENT_BUILD: &str = "19067837";

/// Options that change how objects render.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RenderOptions {
    pub unknown_values: bool,
}

impl RenderOptions {
    fn finish(self, mut value: Value) -> Value {
        if self.unknown_values {
            value[UNKNOWN_FIELD] = json!("simulated undocumented field");
        }
        value
    }
}

/// Inserts `key` when `value` is `Some`.
fn put<T: Into<Value>>(object: &mut Value, key: &str, value: Option<T>) {
    if let (Some(map), Some(value)) = (object.as_object_mut(), value) {
        map.insert(key.to_string(), value.into());
    }
}

/// Renders a desktop pool for `/inventory/v{version}/desktop-pools`; v1 nests its settings,
/// v2 and later are flat, v3 adds the global entitlement, v4 `cloud_brokered` and v5
/// `naming_method`.
pub(crate) fn desktop_pool(
    pool: &DesktopPool,
    version: u32,
    access_group_id: &str,
    options: RenderOptions,
) -> Value {
    let mut value = json!({
        "id": pool.id,
        "name": pool.name,
        "display_name": pool.display_name,
        "description": pool.description,
        "enabled": pool.enabled,
        "type": pool.pool_type,
        "source": pool.source,
    });
    if version == 1 {
        value["settings"] = json!({
            "session_type": pool.session_type,
            "delete_in_progress": false,
            "cloud_managed": false,
            "cloud_assigned": false,
        });
        return options.finish(value);
    }

    let vdi = pool.pool_type != "RDS";
    value["session_type"] = json!(pool.session_type);
    value["access_group_id"] = json!(access_group_id);
    value["delete_in_progress"] = json!(false);
    put(&mut value, "user_assignment", pool.user_assignment);
    put(&mut value, "farm_id", pool.farm_id.clone());
    put(&mut value, "vcenter_id", pool.vcenter_id.clone());
    if vdi {
        value["enable_provisioning"] = json!(true);
        value["stop_provisioning_on_error"] = json!(true);
        value["image_source"] = json!("VIRTUAL_CENTER");
    }

    if pool.source == "INSTANT_CLONE" {
        value["provisioning_status_data"] = json!({
            "instant_clone_current_image_state": "READY",
            "instant_clone_operation": "NONE",
        });
    }
    if version >= 4 {
        value["cloud_brokered"] = json!(false);
    }
    if version >= 5 && vdi {
        value["naming_method"] = json!("PATTERN");
    }
    options.finish(value)
}

/// Renders a machine for `/inventory/v1/machines` or, with `version` 2, `/v2/machines`,
/// which adds `session_id` and `access_group_id`.
pub(crate) fn machine(
    machine: &Machine,
    session: Option<&Session>,
    version: u32,
    state: &HorizonState,
    unknown_state: bool,
    options: RenderOptions,
) -> Value {
    let machine_state = if unknown_state && options.unknown_values {
        UNKNOWN_MACHINE_STATE
    } else {
        HorizonState::machine_state(machine, session)
    };
    let mut value = json!({
        "id": machine.id,
        "name": machine.name,
        "dns_name": machine.dns_name,
        "desktop_pool_id": machine.desktop_pool_id,
        "state": machine_state,
        "type": "MANAGED_MACHINE",
        "operating_system": "WINDOWS_10",
        "operating_system_architecture": "BIT_64",
        "agent_version": AGENT_VERSION,
        "agent_build_number": AGENT_BUILD,
        "message_security_mode": "ENHANCED",
        "message_security_enhanced_mode_supported": true,
        "managed_machine_data": {
            "host_name": format!("esx{:02}.{}", machine.name.len() % 8 + 1, state.dns_suffix),
            "in_maintenance_mode": machine.in_maintenance,
            "virtual_machine_power_state": machine.power_state,
            "virtual_center_id": state.vcenter_id,
            "create_time": machine.create_time,
            "path": format!("/Hospital-DC/vm/{}", machine.name),
            "missing_in_vcenter": false,
            "storage_accelerator_state": "CURRENT",
        },
    });
    if !machine.user_ids.is_empty() {
        value["user_ids"] = json!(machine.user_ids);
    }
    if version >= 2 {
        value["access_group_id"] = json!(state.access_group_id);
        put(&mut value, "session_id", session.map(|s| s.id.clone()));
    }
    options.finish(value)
}

/// Renders a session for `/inventory/v1/sessions`.
pub(crate) fn session(session: &Session, access_group_id: &str, options: RenderOptions) -> Value {
    let mut value = json!({
        "id": session.id,
        "user_id": session.user_id,
        "broker_user_id": session.user_id,
        "access_group_id": access_group_id,
        "session_type": session.session_type,
        "session_state": session.state,
        "session_protocol": session.protocol,
        "start_time": session.start_time,
        "agent_version": AGENT_VERSION,
        "resourced_remotely": false,
        "brokered_remotely": false,
        "unauthenticated": false,
    });
    put(&mut value, "machine_id", session.machine_id.clone());
    put(
        &mut value,
        "desktop_pool_id",
        session.desktop_pool_id.clone(),
    );
    put(&mut value, "farm_id", session.farm_id.clone());
    put(&mut value, "rds_server_id", session.rds_server_id.clone());
    put(&mut value, "disconnected_time", session.disconnected_time);
    if session.state == "CONNECTED" {
        value["idle_duration"] = json!(0);
    }
    if !session.application_names.is_empty() {
        value["application_names"] = json!(session.application_names);
    }
    options.finish(value)
}

/// Renders a farm for `/inventory/v{1,2,3}/farms`.
pub(crate) fn farm(farm: &Farm, access_group_id: &str, options: RenderOptions) -> Value {
    let mut value = json!({
        "id": farm.id,
        "name": farm.name,
        "display_name": farm.display_name,
        "description": farm.description,
        "enabled": farm.enabled,
        "type": farm.farm_type,
        "access_group_id": access_group_id,
        "delete_in_progress": false,
        "server_error_threshold": 0,
        "use_custom_script_for_load_balancing": false,
    });
    put(&mut value, "desktop_pool_id", farm.desktop_pool_id.clone());
    options.finish(value)
}

/// Renders an RDS server for `/inventory/v1/rds-servers`.
pub(crate) fn rds_server(
    server: &RdsServer,
    session_count: usize,
    access_group_id: &str,
    options: RenderOptions,
) -> Value {
    let load_index = (session_count * 100 / server.max_sessions.max(1)).min(100);
    let load_preference = match load_index {
        0..=33 => "LIGHT",
        34..=66 => "NORMAL",
        _ => "HEAVY",
    };
    let value = json!({
        "id": server.id,
        "name": server.name,
        "dns_name": server.dns_name,
        "description": "",
        "farm_id": server.farm_id,
        "state": server.state,
        "enabled": server.enabled,
        "access_group_id": access_group_id,
        "agent_version": AGENT_VERSION,
        "agent_build_number": AGENT_BUILD,
        "operating_system": "WINDOWS_SERVER_2016_OR_ABOVE",
        "message_security_mode": "ENHANCED",
        "message_security_enhanced_mode_supported": true,
        "session_count": session_count,
        "max_sessions_type": "LIMITED",
        "max_sessions_type_configured": "LIMITED",
        "max_sessions_count": server.max_sessions,
        "max_sessions_count_configured": server.max_sessions,
        "load_index": load_index,
        "load_preference": load_preference,
    });
    options.finish(value)
}

/// Renders an application pool for `/inventory/v{1,2,3}/application-pools`.
pub(crate) fn application_pool(
    pool: &ApplicationPool,
    access_group_id: &str,
    options: RenderOptions,
) -> Value {
    let mut value = json!({
        "id": pool.id,
        "name": pool.name,
        "display_name": pool.display_name,
        "enabled": pool.enabled,
        "executable_path": pool.executable_path,
        "access_group_id": access_group_id,
        "multi_session_mode": pool.multi_session_mode,
        "enable_pre_launch": pool.enable_pre_launch,
        "enable_client_restrictions": false,
        "shortcut_locations": pool.shortcut_locations,
        "cs_restriction_tags": [],
        "icon_ids": [],
    });
    put(&mut value, "description", pool.description.clone());
    put(&mut value, "parameters", pool.parameters.clone());
    put(&mut value, "start_folder", pool.start_folder.clone());
    put(&mut value, "publisher", pool.publisher.clone());
    put(&mut value, "version", pool.version.clone());
    put(&mut value, "desktop_pool_id", pool.desktop_pool_id.clone());
    put(&mut value, "farm_id", pool.farm_id.clone());
    put(&mut value, "max_multi_sessions", pool.max_multi_sessions);
    put(
        &mut value,
        "category_folder_name",
        pool.category_folder_name.clone(),
    );
    options.finish(value)
}

/// Renders an `EntitlementInfo`.
pub(crate) fn entitlement(id: &str, sids: &[String], options: RenderOptions) -> Value {
    options.finish(json!({"id": id, "ad_user_or_group_ids": sids}))
}

/// Renders an `ADUserOrGroupInfo`.
pub(crate) fn principal(principal: &Principal, domain: &str, options: RenderOptions) -> Value {
    let mut value = Map::new();
    value.insert("id".into(), json!(principal.id));
    value.insert("name".into(), json!(principal.login_name));
    value.insert("login_name".into(), json!(principal.login_name));
    value.insert("display_name".into(), json!(principal.display_name));
    value.insert(
        "long_display_name".into(),
        json!(format!(
            "{}@{}",
            principal.login_name,
            domain.to_lowercase()
        )),
    );
    value.insert("domain".into(), json!(domain));
    value.insert("group".into(), json!(principal.group));
    value.insert("kiosk_user".into(), json!(false));
    options.finish(Value::Object(value))
}

/// Renders a `BulkItemResponseInfo`: the outcome of one id in a bulk action.
pub(crate) fn bulk_item(id: &str, status_code: u16, error: Option<&str>) -> Value {
    let mut value = json!({"id": id, "status_code": status_code});
    if let Some(message) = error {
        value["error_messages"] = json!([message]);
        value["timestamp"] = json!(chrono::Utc::now().timestamp_millis());
    }
    value
}
