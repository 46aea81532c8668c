//! Targets (provisioning policies and configured groups), the Cloud PCs of a target, and the
//! mapping of Cloud PC status to the gateway's machine states. Graph reads are kept for a short
//! time in a [`ReadCache`], and [`page`] cuts listing pages from them.

use std::collections::HashMap;

use broker_http::BrokerRequest;
use vdi_contracts::{
    Machine, MachineState, ProviderError, ProviderResult, Session, Target, TargetKind,
};
use vdi_graph::enums::{CloudPcProductType, CloudPcStatus};
use vdi_graph::model::{CloudPc, CloudPcBetaFields, DirectoryObject, Group, ManagedDevice};
use vdi_graph::{DeviceRef, GraphClient};

use crate::beta;

pub use vdi_graph::{page, ReadCache};

/// Path of the v1.0 Cloud PC collection.
const CLOUD_PCS: &str = "v1.0/deviceManagement/virtualEndpoint/cloudPCs";

/// The v1.0 Cloud PC properties the provider reads.
const CLOUD_PC_FIELDS: &str =
    "id,displayName,aadDeviceId,managedDeviceId,managedDeviceName,userPrincipalName,provisioningPolicyId";

/// A target, resolved from its id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedTarget {
    /// Cloud PCs of a provisioning policy.
    Policy {
        /// Policy id.
        id: String,
        /// Policy name.
        name: String,
    },
    /// Cloud PCs whose device or user is a member of a configured group.
    Group {
        /// Group id.
        id: String,
        /// Group name.
        name: String,
    },
}

impl ResolvedTarget {
    /// Returns the target id: `policy:{id}` or `group:{id}`.
    pub fn target_id(&self) -> String {
        match self {
            ResolvedTarget::Policy { id, .. } => format!("policy:{id}"),
            ResolvedTarget::Group { id, .. } => format!("group:{id}"),
        }
    }

    fn name(&self) -> &str {
        match self {
            ResolvedTarget::Policy { name, .. } | ResolvedTarget::Group { name, .. } => name,
        }
    }

    /// Returns the contract's target.
    pub fn to_target(&self, machine_count: Option<u64>) -> Target {
        Target {
            id: self.target_id(),
            name: self.name().to_owned(),
            kind: TargetKind::CloudPcGroup,
            machine_count,
        }
    }
}

/// A Cloud PC with its beta status and product type.
#[derive(Debug, Clone)]
pub struct CloudPcMachine {
    /// v1.0 fields.
    pub pc: CloudPc,
    /// Beta `status`; `None` when beta did not list the Cloud PC.
    pub status: Option<CloudPcStatus>,
    /// Beta `productType`.
    pub product: Option<CloudPcProductType>,
    /// Whether an Enterprise Cloud PC's agent has checked in and `agent_first` is set, so its
    /// agent delivers instead of Intune.
    pub agent_first: bool,
}

impl CloudPcMachine {
    /// Returns whether delivery goes through the agent: Business Cloud PCs have no Intune
    /// managed device (Graph v1.0 `cloudPC.managedDeviceId` is null for Business), and
    /// Enterprise Cloud PCs use their agent under `agent_first`.
    pub fn uses_agent(&self) -> bool {
        self.pc.managed_device_id.is_none()
            || self.product == Some(CloudPcProductType::Business)
            || self.agent_first
    }

    /// Returns whether Intune manages the Cloud PC, so Intune may have delivered to it.
    pub fn intune_managed(&self) -> bool {
        self.pc.managed_device_id.is_some() && self.product != Some(CloudPcProductType::Business)
    }

    /// Returns the normalised state; only provisioned Cloud PCs are `Ready`.
    pub fn state(&self) -> MachineState {
        match &self.status {
            None => MachineState::Unknown("status not reported by Graph beta".into()),
            Some(CloudPcStatus::Provisioned | CloudPcStatus::ProvisionedWithWarnings) => {
                MachineState::Ready
            }
            Some(
                CloudPcStatus::NotProvisioned
                | CloudPcStatus::Provisioning
                | CloudPcStatus::PendingProvision
                | CloudPcStatus::Failed,
            ) => MachineState::Unregistered,
            Some(CloudPcStatus::InGracePeriod | CloudPcStatus::Deprovisioning) => {
                MachineState::Draining
            }
            Some(CloudPcStatus::Resizing | CloudPcStatus::Restoring) => MachineState::Maintenance,
            Some(CloudPcStatus::Unknown(raw)) => MachineState::Unknown(raw.clone()),
        }
    }

    /// Returns the device reference for Intune delivery.
    pub fn device_ref(&self) -> DeviceRef {
        DeviceRef {
            machine: self.pc.id.clone(),
            aad_device_id: self.pc.aad_device_id.clone(),
            managed_device_id: self.pc.managed_device_id.clone(),
        }
    }

    /// Returns the contract's machine, in `target`, with the sessions its agent reported.
    /// Pass no sessions for Enterprise Cloud PCs: Graph reports none for them.
    pub fn to_machine(&self, target: &str, sessions: Vec<Session>) -> Machine {
        let pc = &self.pc;
        let name = pc
            .display_name
            .clone()
            .or_else(|| pc.managed_device_name.clone())
            .unwrap_or_else(|| pc.id.clone());
        Machine {
            id: pc.id.clone(),
            name,
            dns_name: None,
            target: target.to_owned(),
            state: self.state(),
            sessions,
            containers: Vec::new(),
        }
    }
}

/// Targets and Cloud PCs as read from Graph at one time.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Provisioning policy targets, then the configured group targets.
    pub targets: Vec<ResolvedTarget>,
    /// Every Cloud PC of the tenant, sorted by id.
    pub cloud_pcs: Vec<CloudPcMachine>,
}

/// Reads the targets and every Cloud PC.
///
/// # Errors
/// Graph errors; `not_found` when a configured group does not exist.
pub async fn read_inventory(
    client: &GraphClient,
    group_targets: &[String],
) -> ProviderResult<Inventory> {
    let targets = targets(client, group_targets).await?;
    let mut cloud_pcs = cloud_pcs(client).await?;
    cloud_pcs.sort_by(|a, b| a.pc.id.cmp(&b.pc.id));
    Ok(Inventory { targets, cloud_pcs })
}

/// Lists provisioning policy targets and the configured group targets.
///
/// # Errors
/// Graph errors; `not_found` when a configured group does not exist.
pub async fn targets(
    client: &GraphClient,
    group_targets: &[String],
) -> ProviderResult<Vec<ResolvedTarget>> {
    let mut targets: Vec<ResolvedTarget> = client
        .provisioning_policies()
        .await?
        .into_iter()
        .map(|p| ResolvedTarget::Policy {
            name: p.display_name.unwrap_or_else(|| p.id.clone()),
            id: p.id,
        })
        .collect();
    for id in group_targets {
        let request = BrokerRequest::get(format!("v1.0/groups/{id}"))
            .operation("get_group")
            .query("$select", "id,displayName");
        let group: Group = client.get_json(request).await.map_err(|error| {
            ProviderError::new(
                error.kind,
                format!("configured group target {id}: {}", error.message),
            )
            .with_retryable(error.retryable)
        })?;
        targets.push(ResolvedTarget::Group {
            name: group.display_name.unwrap_or_else(|| id.clone()),
            id: group.id,
        });
    }
    Ok(targets)
}

/// Finds a target by id (`policy:{id}`, `group:{id}`) or name.
///
/// # Errors
/// `not_found` for an unknown target.
pub fn find_target(targets: &[ResolvedTarget], wanted: &str) -> ProviderResult<ResolvedTarget> {
    targets
        .iter()
        .find(|t| t.target_id() == wanted)
        .or_else(|| targets.iter().find(|t| t.name() == wanted))
        .cloned()
        .ok_or_else(|| {
            ProviderError::not_found(format!(
                "target {wanted:?} is neither a provisioning policy (policy:{{id}}) nor a \
                 configured group (group:{{id}}); list_targets shows the valid ids"
            ))
        })
}

/// Lists every Cloud PC with its beta fields.
///
/// # Errors
/// Graph errors.
pub async fn cloud_pcs(client: &GraphClient) -> ProviderResult<Vec<CloudPcMachine>> {
    let request = BrokerRequest::get(CLOUD_PCS)
        .operation("list_cloud_pcs")
        .query("$select", CLOUD_PC_FIELDS);
    let pcs: Vec<CloudPc> = client.list("Cloud PCs", request).await?;
    let mut fields: HashMap<String, CloudPcBetaFields> = beta::cloud_pc_fields(client).await?;
    let entra_ids = if pcs.iter().any(|pc| pc.managed_device_id.is_some()) {
        managed_entra_ids(client).await?
    } else {
        HashMap::new()
    };
    Ok(pcs
        .into_iter()
        .map(|mut pc| {
            // Group membership needs the Entra device of the Intune device, so an Enterprise
            // Cloud PC's device id is taken from its managed device when Intune has one.
            if let Some(entra) = pc.managed_device_id.as_ref().and_then(|m| entra_ids.get(m)) {
                pc.aad_device_id = Some(entra.clone());
            }
            let beta = fields.remove(&pc.id);
            CloudPcMachine {
                status: beta.as_ref().and_then(|b| b.status.clone()),
                product: beta.and_then(|b| b.product_type),
                agent_first: false,
                pc,
            }
        })
        .collect())
}

/// Returns the Entra device id (`azureADDeviceId`) of every managed device, by managed
/// device id.
async fn managed_entra_ids(client: &GraphClient) -> ProviderResult<HashMap<String, String>> {
    let request = BrokerRequest::get("v1.0/deviceManagement/managedDevices")
        .operation("list_managed_devices")
        .query("$select", "id,azureADDeviceId");
    let devices: Vec<ManagedDevice> = client.list("managed devices", request).await?;
    Ok(devices
        .into_iter()
        .filter_map(|d| Some((d.id, d.azure_ad_device_id?)))
        .collect())
}

/// Lists the members of a group target, with the ids that match them to Cloud PCs.
///
/// # Errors
/// Graph errors.
pub async fn group_members(
    client: &GraphClient,
    group_id: &str,
) -> ProviderResult<Vec<DirectoryObject>> {
    let request = BrokerRequest::get(format!("v1.0/groups/{group_id}/members"))
        .operation("list_group_members")
        .query("$select", "id,deviceId,userPrincipalName");
    client.list("group members", request).await
}

/// Selects the Cloud PCs of a target from `cloud_pcs`, keeping their order. `members` are the
/// group's members for a group target and are ignored for a policy target.
pub fn target_machines(
    cloud_pcs: &[CloudPcMachine],
    target: &ResolvedTarget,
    members: &[DirectoryObject],
) -> Vec<CloudPcMachine> {
    cloud_pcs
        .iter()
        .filter(|m| match target {
            ResolvedTarget::Policy { id, .. } => {
                m.pc.provisioning_policy_id.as_deref() == Some(id.as_str())
            }
            ResolvedTarget::Group { .. } => members.iter().any(|member| is_member(&m.pc, member)),
        })
        .cloned()
        .collect()
}

/// Returns whether a group member is the Cloud PC's device or its user.
fn is_member(pc: &CloudPc, member: &DirectoryObject) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    same(&pc.aad_device_id, &member.device_id)
        || same(&pc.user_principal_name, &member.user_principal_name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn machine(status: &str, managed: Option<&str>) -> CloudPcMachine {
        let pc: CloudPc = serde_json::from_value(json!({
            "id": "ad3b1c9e-0001",
            "displayName": "CPC-clin-01",
            "managedDeviceId": managed,
        }))
        .expect("parses");
        CloudPcMachine {
            pc,
            status: Some(CloudPcStatus::from_wire(status)),
            product: None,
            agent_first: false,
        }
    }

    #[test]
    fn status_table() {
        let cases = [
            ("provisioned", MachineState::Ready),
            ("provisionedWithWarnings", MachineState::Ready),
            ("provisioning", MachineState::Unregistered),
            ("failed", MachineState::Unregistered),
            ("inGracePeriod", MachineState::Draining),
            ("resizing", MachineState::Maintenance),
            ("movingRegion", MachineState::Unknown("movingRegion".into())),
            (
                "unknownFutureValue",
                MachineState::Unknown("unknownFutureValue".into()),
            ),
        ];
        for (status, state) in cases {
            assert_eq!(machine(status, Some("m1")).state(), state, "{status}");
        }
    }

    #[test]
    fn business_uses_agent() {
        assert!(machine("provisioned", None).uses_agent());
        assert!(!machine("provisioned", Some("m1")).uses_agent());
    }

    #[test]
    fn unknown_target_is_not_found() {
        let targets = vec![ResolvedTarget::Policy {
            id: "p1".into(),
            name: "Clinicians".into(),
        }];
        assert!(find_target(&targets, "policy:p1").is_ok());
        assert!(find_target(&targets, "Clinicians").is_ok());
        let error = find_target(&targets, "policy:p2").expect_err("unknown");
        assert_eq!(error.kind, vdi_contracts::ErrorKind::NotFound);
    }
}
