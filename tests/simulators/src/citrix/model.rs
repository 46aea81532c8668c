//! Rendering of site objects as Citrix Orchestration response models.
//!
//! Field names, required fields and enum values follow the model documents generated from
//! the Citrix Orchestration API spec (citrix/citrix-daas-rest-go, `citrixorchestration/docs`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::state::{AppGroup, Application, CitrixState, DeliveryGroup, Machine, Session, Tag};

/// Undocumented field added to objects when the `unknown_values` knob is on.
pub const UNKNOWN_FIELD: &str = "ZzUndocumentedField";
/// Undocumented `RegistrationState` given to some machines when `unknown_values` is on.
pub const UNKNOWN_REGISTRATION: &str = "FutureRegistrationValue";

/// Options that change how objects render.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RenderOptions {
    pub unknown_values: bool,
}

/// Formats a time as RFC 3339 in UTC with whole seconds.
pub(crate) fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn formatted(time: DateTime<Utc>) -> String {
    time.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

fn add_unknown_field(value: &mut Value, options: RenderOptions) {
    if options.unknown_values {
        value[UNKNOWN_FIELD] = json!("simulated undocumented field");
    }
}

/// Returns the `SummaryState` of a machine from its power, registration and sessions.
pub(crate) fn summary_state(machine: &Machine) -> &'static str {
    if machine.power == "Off" {
        "Off"
    } else if machine.registration != "Registered" {
        "Unregistered"
    } else if machine
        .sessions
        .iter()
        .any(|s| s.state == "Active" || s.state == "Connected")
    {
        "InUse"
    } else if !machine.sessions.is_empty() {
        "Disconnected"
    } else {
        "Available"
    }
}

fn group_ref(state: &CitrixState, group_id: Option<&str>) -> Option<Value> {
    let group = state.delivery_group(group_id?)?;
    Some(json!({"Id": group.id, "Uid": group.uid, "Name": group.name}))
}

fn catalog_ref(state: &CitrixState, machine: &Machine) -> Option<Value> {
    let catalog = state.catalogs.iter().find(|c| c.id == machine.catalog_id)?;
    Some(json!({"Id": catalog.id, "Uid": catalog.uid, "Name": catalog.name}))
}

/// Renders a `MachineResponseModel`.
pub(crate) fn machine(state: &CitrixState, machine: &Machine, options: RenderOptions) -> Value {
    let group = machine
        .delivery_group_id
        .as_deref()
        .and_then(|id| state.delivery_group(id));
    let provisioning_type = state
        .catalogs
        .iter()
        .find(|c| c.id == machine.catalog_id)
        .map_or("Unknown", |c| c.provisioning_type);
    let registration = if options.unknown_values && machine.uid % 3 == 0 {
        UNKNOWN_REGISTRATION
    } else {
        machine.registration
    };
    let mut value = json!({
        "Id": machine.id,
        "Uid": machine.uid,
        "Sid": machine.sid,
        "Name": machine.name,
        "DnsName": machine.dns_name,
        "IPAddress": machine.ip_address,
        "AgentVersion": "2311.0.0.1234",
        "OSType": "Windows 2022",
        "OSVersion": "10.0.20348",
        "AllocationType": "Random",
        "DeliveryType": group.map_or("Unknown", |g| g.delivery_type),
        "FunctionalLevel": "L7_34",
        "InMaintenanceMode": machine.in_maintenance_mode,
        "MaintenanceModeReason": if machine.in_maintenance_mode { "Administrator" } else { "None" },
        "DrainingUntilShutdown": machine.draining_until_shutdown,
        "WillShutdownAfterUse": machine.will_shutdown_after_use,
        "IsAssigned": false,
        "PowerState": machine.power,
        "RegistrationState": registration,
        "SummaryState": summary_state(machine),
        "SessionCount": machine.sessions.len(),
        "SessionSupport": machine.session_support,
        "ProvisioningType": provisioning_type,
        "Tags": state.tag_names(&machine.tags),
        "Metadata": [],
        "Zone": {"Id": state.zone_id, "Name": "Primary Zone"},
        "ControllerDnsName": format!("ddc01.{}", "hosp.example.org"),
    });
    if let Some(catalog) = catalog_ref(state, machine) {
        value["MachineCatalog"] = catalog;
    }
    if let Some(group) = group_ref(state, machine.delivery_group_id.as_deref()) {
        value["DeliveryGroup"] = group;
    }
    if let Some(session) = machine.sessions.first() {
        value["SessionState"] = json!(session.state);
        value["SessionUserName"] = json!(session.user_name);
        value["SessionStartTime"] = json!(timestamp(session.start_time));
        value["FormattedSessionStartTime"] = json!(formatted(session.start_time));
        value["SessionStateChangeTime"] = json!(timestamp(session.state_change_time));
        value["SessionProtocol"] = json!("HDX");
        value["LastConnectionTime"] = json!(timestamp(session.start_time));
    } else {
        value["SessionUserName"] = Value::Null;
    }
    add_unknown_field(&mut value, options);
    value
}

/// Renders a `SessionResponseModel`, with a short `MachineResponseModel` for its machine.
pub(crate) fn session(
    state: &CitrixState,
    machine: &Machine,
    session: &Session,
    options: RenderOptions,
) -> Value {
    let (domain, account) = session
        .user_name
        .split_once('\\')
        .unwrap_or(("", session.user_name.as_str()));
    let mut machine_value = json!({
        "Id": machine.id,
        "Uid": machine.uid,
        "Name": machine.name,
        "DnsName": machine.dns_name,
        "SessionSupport": machine.session_support,
    });
    if let Some(group) = group_ref(state, machine.delivery_group_id.as_deref()) {
        machine_value["DeliveryGroup"] = group;
    }
    let mut value = json!({
        "Id": session.id,
        "Uid": session.uid,
        "State": session.state,
        "StartTime": timestamp(session.start_time),
        "FormattedStartTime": formatted(session.start_time),
        "StateChangeTime": timestamp(session.state_change_time),
        "FormattedStateChangeTime": formatted(session.state_change_time),
        "UntrustedUserName": session.user_name,
        "IsAnonymousUser": false,
        "IsHidden": false,
        "LogonInProgress": false,
        "LogoffInProgress": false,
        "ApplicationsInUse": [],
        "Machine": machine_value,
        "User": {
            "Sid": session.user_sid,
            "Name": account,
            "DisplayName": session.user_display_name,
            "SamName": session.user_name,
            "SamAccountName": account,
            "PrincipalName": format!("{account}@hosp.example.org"),
            "Domain": domain,
            "IsGroup": false,
            "PropertiesFetched": 0,
        },
    });
    add_unknown_field(&mut value, options);
    value
}

/// Renders a `DeliveryGroupResponseModel` with counts computed from its machines.
pub(crate) fn delivery_group(
    state: &CitrixState,
    group: &DeliveryGroup,
    options: RenderOptions,
) -> Value {
    let mut total = 0;
    let mut available = 0;
    let mut disconnected = 0;
    let mut unregistered = 0;
    let mut sessions = 0;
    for machine in state.machines_in_group(&group.id) {
        total += 1;
        sessions += machine.sessions.len();
        match summary_state(machine) {
            "Available" => available += 1,
            "Disconnected" => disconnected += 1,
            "Unregistered" => unregistered += 1,
            _ => {}
        }
    }
    let applications = count_group_applications(state, &group.id);
    let compatibility = if group.delivery_type == "DesktopsOnly" {
        "IncompatibleDeliveryType"
    } else {
        "Compatible"
    };
    let mut value = json!({
        "Id": group.id,
        "Uid": group.uid,
        "Name": group.name,
        "FullName": group.name,
        "PublishedName": group.name,
        "Description": group.description,
        "Delivering": group.delivery_type,
        "DeliveryType": group.delivery_type,
        "DesktopsAvailable": available,
        "DesktopsDisconnected": disconnected,
        "DesktopsFaulted": 0,
        "DesktopsUnregistered": unregistered,
        "Enabled": group.enabled,
        "HasBeenPromoted": false,
        "InMaintenanceMode": group.in_maintenance_mode,
        "IsBroken": false,
        "IsRemotePC": group.is_remote_pc,
        "IsPowerManaged": !group.is_remote_pc,
        "AutoscalingEnabled": false,
        "MinimumFunctionalLevel": "L7_20",
        "RequireUserHomeZone": false,
        "Scopes": [],
        "Tags": [],
        "Metadata": [],
        "SessionCount": sessions,
        "SessionSupport": group.session_support,
        "SharingKind": "Shared",
        "TotalApplications": applications,
        "TotalDesktops": total,
        "ApplicationGroupCompatibility": compatibility,
        "PolicySetGuid": "00000000-0000-0000-0000-000000000000",
    });
    add_unknown_field(&mut value, options);
    value
}

/// Counts applications delivered to a group directly or through an application group.
fn count_group_applications(state: &CitrixState, group_id: &str) -> usize {
    let via_groups: Vec<&str> = state
        .app_groups
        .iter()
        .filter(|g| g.delivery_groups.iter().any(|r| r.id == group_id))
        .map(|g| g.id.as_str())
        .collect();
    state
        .applications
        .iter()
        .filter(|a| {
            a.delivery_groups.iter().any(|r| r.id == group_id)
                || a.application_groups
                    .iter()
                    .any(|g| via_groups.contains(&g.as_str()))
        })
        .count()
}

/// Renders a `TagResponseModel` with its usage counts.
pub(crate) fn tag(state: &CitrixState, tag: &Tag) -> Value {
    let machines = state
        .machines
        .iter()
        .filter(|m| m.tags.contains(&tag.id))
        .count();
    json!({
        "Id": tag.id,
        "Uid": tag.uid,
        "Name": tag.name,
        "Description": tag.description,
        "IsUsedByGpo": false,
        "NumMachines": machines,
        "NumApplications": 0,
        "NumApplicationGroups": 0,
        "NumMachineCatalogs": 0,
        "NumDeliveryGroups": 0,
        "NumAutoscale": 0,
        "NumUnknownObjects": 0,
        "ScopeReferences": [],
    })
}

/// Renders an `ApplicationGroupResponseModel`.
pub(crate) fn app_group(state: &CitrixState, group: &AppGroup) -> Value {
    let restrict = group
        .restrict_to_tag
        .as_deref()
        .and_then(|id| state.tag(id));
    let mut machines_total = 0;
    let mut tagged_total = 0;
    let mut groups = Vec::new();
    let mut uids = Vec::new();
    for reference in &group.delivery_groups {
        let Some(delivery_group) = state.delivery_group(&reference.id) else {
            continue;
        };
        let machines = state.machines_in_group(&delivery_group.id).count();
        let tagged = match restrict {
            Some(tag) => state
                .machines_in_group(&delivery_group.id)
                .filter(|m| m.tags.contains(&tag.id))
                .count(),
            None => machines,
        };
        machines_total += machines;
        tagged_total += tagged;
        uids.push(delivery_group.uid);
        groups.push(json!({
            "Id": delivery_group.id,
            "Uid": delivery_group.uid,
            "Name": delivery_group.name,
            "Priority": reference.priority,
            "NumMachines": machines,
            "NumTaggedMachines": tagged,
            "SessionSupport": delivery_group.session_support,
        }));
    }
    let applications = state
        .applications
        .iter()
        .filter(|a| a.application_groups.contains(&group.id))
        .count();
    let mut value = json!({
        "Id": group.id,
        "Uid": group.uid,
        "Name": group.name,
        "FullName": group.name,
        "Description": group.description,
        "Enabled": group.enabled,
        "Metadata": group.metadata,
        "Tags": [],
        "Scopes": [],
        "NumApplications": applications,
        "NumMachines": machines_total,
        "NumMachinesWithTag": tagged_total,
        "DeliveryGroups": groups,
        "AssociatedDeliveryGroupUids": uids,
    });
    if let Some(tag) = restrict {
        value["RestrictToTag"] = json!({"Id": tag.id, "Uid": tag.uid, "Name": tag.name});
    }
    value
}

/// Renders an `ApplicationResponseModel`.
pub(crate) fn application(app: &Application) -> Value {
    let mut value = json!({
        "Id": app.id,
        "Uid": app.uid,
        "Name": app.name,
        "PublishedName": app.published_name,
        "Description": app.description,
        "ApplicationType": app.application_type,
        "ClientFolder": app.client_folder,
        "DoNotEnumerate": false,
        "Enabled": app.enabled,
        "Visible": app.visible,
        "SharingKind": "Shared",
        "CloudWorkspaceManaged": false,
        "InstalledAppProperties": {
            "CommandLineExecutable": app.command_line_executable,
            "CommandLineArguments": app.command_line_arguments,
            "WorkingDirectory": app.working_directory,
        },
        "Metadata": app.metadata,
        "Tags": [],
        "NumAssociatedDeliveryGroups": app.delivery_groups.len(),
        "NumAssociatedApplicationGroups": app.application_groups.len(),
        "AssociatedDeliveryGroupUuids": app.delivery_groups.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "AssociatedApplicationGroupUuids": app.application_groups,
    });
    if let Some(folder) = &app.folder {
        value["ApplicationFolder"] = json!({"Name": folder});
    }
    value
}

/// Wraps one page of items in a collection model.
pub(crate) fn collection(items: Vec<Value>, continuation: Option<String>, total: usize) -> Value {
    let mut value = Map::new();
    value.insert("Items".to_string(), Value::Array(items));
    value.insert(
        "ContinuationToken".to_string(),
        continuation.map_or(Value::Null, Value::String),
    );
    value.insert("TotalItems".to_string(), json!(total));
    Value::Object(value)
}
