//! Physical devices from Intune and from agent check-ins, their states, and the device group
//! rules that make targets of them. The device inventory is kept for a short time in a
//! [`ReadCache`], and [`page`] cuts listing pages from it.

use std::collections::BTreeMap;

use broker_http::BrokerRequest;
use chrono::Utc;
use vdi_contracts::{
    AgentChannel, AgentMachine, Machine, MachineState, ProviderError, ProviderResult, Session,
    Target, TargetKind,
};
use vdi_graph::enums::{ComplianceState, ManagementState};
use vdi_graph::model::ManagedDevice;
use vdi_graph::{DeviceRef, GraphClient};

use crate::config::{DeviceGroupRule, PhysicalSettings};

pub use vdi_graph::{page, ReadCache};

/// How a device gets containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Entra group and Win32 app through Intune.
    Intune,
    /// The gateway's agent channel.
    Agent,
}

/// A physical device as the provider sees it.
#[derive(Debug, Clone)]
pub struct Device {
    /// Machine id: the Intune device id, or the agent's machine id for agent-only devices.
    pub id: String,
    /// Device name.
    pub name: String,
    /// Delivery path.
    pub delivery: Delivery,
    /// Normalised state.
    pub state: MachineState,
    /// Labels the agent reports.
    pub labels: BTreeMap<String, String>,
    /// Graph ids, for Intune devices.
    pub graph: Option<DeviceRef>,
    /// Machine id the device's agent registered with, when it has one. For an Intune device
    /// it is the device name, so it differs from `id`.
    pub agent: Option<String>,
}

impl Device {
    /// Returns whether the device belongs to the rule's group.
    pub fn matches(&self, rule: &DeviceGroupRule) -> bool {
        let prefix_ok = rule.name_prefix.as_ref().is_none_or(|prefix| {
            self.name
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        });
        let labels_ok = rule
            .labels
            .iter()
            .all(|(key, value)| self.labels.get(key) == Some(value));
        prefix_ok && labels_ok
    }

    /// Returns the device's machine id in the agent channel: its agent's id, or the device id
    /// when no agent registered.
    pub fn agent_id(&self) -> &str {
        self.agent.as_deref().unwrap_or(&self.id)
    }

    /// Returns the contract's machine, in `target`, with the sessions its agent reported.
    /// Pass no sessions for Intune-delivered devices: Graph reports none for them.
    pub fn to_machine(&self, target: &str, sessions: Vec<Session>) -> Machine {
        Machine {
            id: self.id.clone(),
            name: self.name.clone(),
            dns_name: None,
            target: target.to_owned(),
            state: self.state.clone(),
            sessions,
            containers: Vec::new(),
        }
    }
}

/// Returns the target of a rule.
pub fn to_target(rule: &DeviceGroupRule, machine_count: Option<u64>) -> Target {
    Target {
        id: rule.id.clone(),
        name: rule.name.clone().unwrap_or_else(|| rule.id.clone()),
        kind: TargetKind::DeviceGroup,
        machine_count,
    }
}

/// Finds a rule by id or name.
///
/// # Errors
/// `not_found` for an unknown target.
pub fn find_rule<'a>(
    settings: &'a PhysicalSettings,
    target: &str,
) -> ProviderResult<&'a DeviceGroupRule> {
    let rules = &settings.device_groups;
    rules
        .iter()
        .find(|r| r.id == target)
        .or_else(|| rules.iter().find(|r| r.name.as_deref() == Some(target)))
        .ok_or_else(|| {
            let known: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
            ProviderError::not_found(format!(
                "device group {target:?} is not configured; configured groups: {known:?}"
            ))
        })
}

/// Returns the state of an Intune device.
fn intune_state(device: &ManagedDevice, exclude_noncompliant: bool) -> MachineState {
    // NOTE: Graph v1.0 `managedDevice` has no `managementState` (beta only), and the listing
    // reads v1.0, so devices pending a wipe or retire are not marked draining yet.
    match &device.management_state {
        Some(ManagementState::RetirePending | ManagementState::WipePending) => {
            return MachineState::Draining
        }
        Some(ManagementState::Unknown(raw)) => return MachineState::Unknown(raw.clone()),
        _ => {}
    }
    match &device.compliance_state {
        Some(
            state @ (ComplianceState::Noncompliant
            | ComplianceState::Conflict
            | ComplianceState::Error),
        ) if exclude_noncompliant => MachineState::Unknown(state.as_str().to_owned()),
        Some(ComplianceState::Unknown(raw)) => MachineState::Unknown(raw.clone()),
        _ => MachineState::Ready,
    }
}

/// Returns whether a managed device is an Enterprise Cloud PC, which the Windows 365 provider
/// handles.
fn is_cloud_pc(device: &ManagedDevice) -> bool {
    let model = device.model.as_deref().unwrap_or_default();
    let category = device
        .device_category_display_name
        .as_deref()
        .unwrap_or_default();
    model.starts_with("Cloud PC") || category.eq_ignore_ascii_case("Cloud PC")
}

async fn managed_devices(client: &GraphClient) -> ProviderResult<Vec<ManagedDevice>> {
    let request = BrokerRequest::get("v1.0/deviceManagement/managedDevices")
        .operation("list_managed_devices")
        .query("$filter", "operatingSystem eq 'Windows'")
        .query(
            "$select",
            "id,deviceName,operatingSystem,complianceState,azureADDeviceId,model,\
             deviceCategoryDisplayName",
        );
    let devices: Vec<ManagedDevice> = client.list("managed devices", request).await?;
    Ok(devices
        .into_iter()
        .filter(|d| {
            d.operating_system
                .as_deref()
                .is_some_and(|os| os.eq_ignore_ascii_case("Windows"))
        })
        .filter(|d| !is_cloud_pc(d))
        .collect())
}

/// Lists Intune devices (when Graph is configured) and agent-registered devices, sorted by
/// id.
///
/// # Errors
/// Graph or agent channel errors.
pub async fn devices(
    client: Option<&GraphClient>,
    agents: &dyn AgentChannel,
    provider: &str,
    settings: &PhysicalSettings,
) -> ProviderResult<Vec<Device>> {
    let managed = match client {
        Some(client) => managed_devices(client).await?,
        None => Vec::new(),
    };
    let mut registered: Vec<AgentMachine> = agents.machines(provider).await?;
    let mut devices = Vec::new();
    for device in managed {
        let name = device
            .device_name
            .clone()
            .unwrap_or_else(|| device.id.clone());
        let agent = registered
            .iter()
            .position(|a| a.machine.eq_ignore_ascii_case(&name))
            .map(|index| registered.remove(index));
        let delivery = match &agent {
            Some(_) if settings.agent_first => Delivery::Agent,
            _ => Delivery::Intune,
        };
        devices.push(Device {
            state: intune_state(&device, settings.exclude_noncompliant),
            agent: agent.as_ref().map(|a| a.machine.clone()),
            labels: agent.map(|a| a.labels).unwrap_or_default(),
            graph: Some(DeviceRef {
                machine: device.id.clone(),
                aad_device_id: device.azure_ad_device_id.clone(),
                managed_device_id: Some(device.id.clone()),
            }),
            id: device.id,
            name,
            delivery,
        });
    }
    let stale_after = chrono::Duration::from_std(settings.agent_stale_after)
        .unwrap_or_else(|_| chrono::Duration::days(3));
    let now = Utc::now();
    for agent in registered {
        let state = if now - agent.last_seen > stale_after {
            MachineState::Unregistered
        } else {
            MachineState::Ready
        };
        devices.push(Device {
            id: agent.machine.clone(),
            name: agent.machine.clone(),
            delivery: Delivery::Agent,
            state,
            labels: agent.labels,
            graph: None,
            agent: Some(agent.machine),
        });
    }
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn managed(compliance: &str, management: Option<&str>) -> ManagedDevice {
        serde_json::from_value(json!({
            "id": "md-1",
            "deviceName": "HOSP-LT-0001",
            "operatingSystem": "Windows",
            "complianceState": compliance,
            "managementState": management,
        }))
        .expect("parses")
    }

    #[test]
    fn intune_state_table() {
        let cases = [
            ("compliant", None, MachineState::Ready),
            ("inGracePeriod", None, MachineState::Ready),
            (
                "noncompliant",
                None,
                MachineState::Unknown("noncompliant".into()),
            ),
            ("compliant", Some("wipePending"), MachineState::Draining),
            ("compliant", Some("retirePending"), MachineState::Draining),
            (
                "quarantined",
                None,
                MachineState::Unknown("quarantined".into()),
            ),
        ];
        for (compliance, management, state) in cases {
            assert_eq!(
                intune_state(&managed(compliance, management), true),
                state,
                "{compliance} {management:?}"
            );
        }
    }

    #[test]
    fn rule_matches_prefix_and_labels() {
        let device = Device {
            id: "LT-9".into(),
            name: "hosp-lt-0009".into(),
            delivery: Delivery::Agent,
            state: MachineState::Ready,
            labels: BTreeMap::from([("site".into(), "north".into())]),
            graph: None,
            agent: Some("hosp-lt-0009".into()),
        };
        let rule = |prefix: Option<&str>, site: Option<&str>| DeviceGroupRule {
            id: "r".into(),
            name: None,
            name_prefix: prefix.map(str::to_owned),
            labels: site
                .map(|s| BTreeMap::from([("site".to_owned(), s.to_owned())]))
                .unwrap_or_default(),
        };
        assert!(device.matches(&rule(Some("HOSP-LT-"), None)));
        assert!(device.matches(&rule(None, Some("north"))));
        assert!(!device.matches(&rule(None, Some("south"))));
        assert!(!device.matches(&rule(Some("WARD-"), None)));
    }
}
