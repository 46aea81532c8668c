//! Deterministic tenants for the [`GraphFleet`] choices.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::GraphFleet;
use super::state::{
    CloudPc, DirectoryDevice, GraphState, Group, ManagedDevice, Membership, ProvisioningPolicy,
    ServicePlan, User,
};

/// Domain of the seeded user principal names.
pub(crate) const USER_DOMAIN: &str = "hosp.onmicrosoft.com";
/// Fixed time of the seeded timestamps, so that snapshots of one seed are equal.
const SEED_TIME: &str = "2026-11-02T08:00:00Z";
/// End of the grace period of seeded Cloud PCs in `inGracePeriod`.
const GRACE_END: &str = "2026-11-09T08:00:00Z";

/// Returns a random GUID in lower-case hyphenated form.
pub(crate) fn random_uuid(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    let mut builder = uuid::Builder::from_random_bytes(bytes);
    builder = builder.with_variant(uuid::Variant::RFC4122);
    builder.into_uuid().hyphenated().to_string()
}

/// Returns the time seeded memberships were added: a day ago, so that member lists show
/// them at once under any realistic `membership_lag`.
fn seeded_membership_time() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now)
}

/// Status of one seeded Cloud PC and whether it is a Business one.
struct CloudPcSpec {
    plan: ServicePlan,
    status: &'static str,
    user: String,
    policy: usize,
}

/// Builds the tenant for `fleet`.
pub(crate) fn build(fleet: &GraphFleet, seed: u64) -> GraphState {
    let mut state = GraphState::new(StdRng::seed_from_u64(seed));
    let (specs, laptops, agent_only) = match fleet {
        GraphFleet::Small => small_specs(),
        GraphFleet::Hospital => hospital_specs(),
        GraphFleet::Sized { cloud_pcs, laptops } => sized_specs(*cloud_pcs, *laptops),
    };
    add_policy(&mut state, "Clinicians Enterprise", "W365-Clinicians");
    add_policy(&mut state, "Front Desk Business", "W365-Business");
    for spec in &specs {
        add_cloud_pc(&mut state, spec);
    }
    for (index, compliance) in laptops.iter().enumerate() {
        let name = format!("HOSP-LT-{:04}", index + 1);
        let user = format!("nurse{:03}", index + 1);
        add_managed_device(&mut state, &name, &user, compliance);
    }
    state.agent_only_laptops = (1..=agent_only)
        .map(|n| format!("HOSP-AG-{n:04}"))
        .collect();
    state
}

type FleetSpecs = (Vec<CloudPcSpec>, Vec<&'static str>, usize);

fn small_specs() -> FleetSpecs {
    let enterprise = [
        "provisioned",
        "provisioned",
        "provisioned",
        "provisioned",
        "inGracePeriod",
        "provisioning",
    ];
    let mut specs: Vec<CloudPcSpec> = enterprise
        .iter()
        .enumerate()
        .map(|(i, status)| CloudPcSpec {
            plan: ServicePlan::Enterprise,
            status,
            user: format!("clinician{:02}", i + 1),
            policy: 0,
        })
        .collect();
    specs.extend((1..=3).map(|i| CloudPcSpec {
        plan: ServicePlan::Business,
        status: "provisioned",
        user: format!("frontdesk{i:02}"),
        policy: 1,
    }));
    let mut laptops = vec!["compliant"; 6];
    laptops[3] = "noncompliant";
    (specs, laptops, 4)
}

fn hospital_specs() -> FleetSpecs {
    let mut specs: Vec<CloudPcSpec> = (1..=200)
        .map(|i| {
            let status = match i {
                _ if i % 50 == 0 => "failed",
                _ if i % 40 == 0 => "provisioning",
                _ if i % 25 == 0 => "inGracePeriod",
                _ if i % 67 == 0 => "provisionedWithWarnings",
                77 => "movingRegion",
                88 => "resizing",
                _ => "provisioned",
            };
            CloudPcSpec {
                plan: ServicePlan::Enterprise,
                status,
                user: format!("clinician{i:03}"),
                policy: 0,
            }
        })
        .collect();
    specs.extend((1..=40).map(|i| CloudPcSpec {
        plan: ServicePlan::Business,
        status: if i == 40 {
            "inGracePeriod"
        } else {
            "provisioned"
        },
        user: format!("frontdesk{i:03}"),
        policy: 1,
    }));
    let laptops = (1..=300)
        .map(|i| match i {
            _ if i % 15 == 0 => "noncompliant",
            _ if i % 50 == 1 => "inGracePeriod",
            _ => "compliant",
        })
        .collect();
    (specs, laptops, 100)
}

fn sized_specs(cloud_pcs: usize, laptops: usize) -> FleetSpecs {
    let specs = (1..=cloud_pcs)
        .map(|i| CloudPcSpec {
            plan: ServicePlan::Enterprise,
            status: "provisioned",
            user: format!("clinician{i:05}"),
            policy: 0,
        })
        .collect();
    (specs, vec!["compliant"; laptops], 0)
}

fn add_user(state: &mut GraphState, name: &str) -> User {
    let user = User {
        id: state.new_id(),
        user_principal_name: format!("{name}@{USER_DOMAIN}"),
        display_name: name.to_string(),
    };
    state.users.push(user.clone());
    user
}

fn add_policy(state: &mut GraphState, name: &str, group_name: &str) {
    let group = Group {
        id: state.new_id(),
        display_name: group_name.to_string(),
        description: Some(format!("Users who get a Cloud PC from '{name}'")),
        mail_nickname: group_name.to_lowercase(),
        mail_enabled: false,
        security_enabled: true,
        members: Vec::new(),
    };
    let policy = ProvisioningPolicy {
        id: state.new_id(),
        display_name: name.to_string(),
        description: format!("{name} provisioning policy"),
        image_display_name: "Windows 11 Enterprise + Microsoft 365 Apps 24H2".to_string(),
        group_ids: vec![group.id.clone()],
    };
    state.groups.push(group);
    state.policies.push(policy);
}

fn add_cloud_pc(state: &mut GraphState, spec: &CloudPcSpec) {
    let user = add_user(state, &spec.user);
    let policy = state.policies[spec.policy].clone();
    if let Some(group) = state.group_mut(&policy.group_ids[0]) {
        group.members.push(Membership {
            object_id: user.id.clone(),
            added: seeded_membership_time(),
            removed: None,
        });
    }

    let enrolled = !matches!(spec.status, "provisioning" | "failed" | "notProvisioned");
    let suffix: String = (0..5)
        .map(|_| char::from(b'A' + state.rng.random_range(0..26u8)))
        .collect();
    let short: String = spec.user.chars().take(5).collect();
    let device_name = format!("CPC-{short}-{suffix}");
    let aad_device_id = enrolled.then(|| state.new_id());
    let managed = if enrolled && spec.plan == ServicePlan::Enterprise {
        let device = add_managed_device(state, &device_name, &spec.user, "compliant");
        Some(device.id)
    } else {
        if let Some(device_id) = &aad_device_id {
            add_directory_device(state, device_id, &device_name);
        }
        None
    };

    let (plan_name, plan_id) = match spec.plan {
        ServicePlan::Enterprise => ("Cloud PC Enterprise 4vCPU/16GB/256GB", "enterprise-plan"),
        ServicePlan::Business => ("Cloud PC Business 2vCPU/8GB/128GB", "business-plan"),
    };
    let status_detail = (spec.status == "failed").then(|| {
        (
            "intuneEnrollFailed".to_string(),
            "The Cloud PC could not be enrolled in Intune.".to_string(),
        )
    });

    let cloud_pc = CloudPc {
        id: state.new_id(),
        display_name: format!("{plan_name} - {}", spec.user),
        aad_device_id,
        user_principal_name: format!("{}@{USER_DOMAIN}", spec.user),
        managed_device_name: managed.as_ref().map(|_| device_name.clone()),
        managed_device_id: managed,
        provisioning_policy_id: policy.id.clone(),
        service_plan_id: format!("{plan_id}-{}", policy.id.get(..8).unwrap_or("00000000")),
        service_plan_name: plan_name.to_string(),
        plan: spec.plan,
        status: spec.status,
        image_display_name: policy.image_display_name.clone(),
        last_modified: SEED_TIME.to_string(),
        grace_period_end: (spec.status == "inGracePeriod").then(|| GRACE_END.to_string()),
        provisioned: enrolled.then(|| SEED_TIME.to_string()),
        status_detail,
    };
    state.cloud_pcs.push(cloud_pc);
}

fn add_directory_device(state: &mut GraphState, device_id: &str, name: &str) {
    let device = DirectoryDevice {
        id: state.new_id(),
        device_id: device_id.to_string(),
        display_name: name.to_string(),
    };
    state.devices.push(device);
}

fn add_managed_device(
    state: &mut GraphState,
    name: &str,
    user_name: &str,
    compliance: &'static str,
) -> ManagedDevice {
    let user_id = match state
        .users
        .iter()
        .find(|u| u.display_name == user_name)
        .cloned()
    {
        Some(user) => user.id,
        None => add_user(state, user_name).id,
    };
    let azure_ad_device_id = state.new_id();
    add_directory_device(state, &azure_ad_device_id, name);
    let serial: u32 = state.rng.random_range(10_000_000..99_999_999);
    let device = ManagedDevice {
        id: state.new_id(),
        device_name: name.to_string(),
        user_id,
        user_principal_name: format!("{user_name}@{USER_DOMAIN}"),
        serial_number: format!("PF{serial}"),
        os_version: "10.0.26100.2314".to_string(),
        compliance_state: compliance,
        management_state: "managed",
        last_sync: SEED_TIME.to_string(),
        enrolled: SEED_TIME.to_string(),
        azure_ad_device_id,
        category: if name.starts_with("CPC-") {
            "Cloud PC".to_string()
        } else {
            "Clinical laptops".to_string()
        },
        model: if name.starts_with("CPC-") {
            "Cloud PC Enterprise 4vCPU/16GB/256GB".to_string()
        } else {
            "Latitude 5440".to_string()
        },
    };
    state.managed_devices.push(device.clone());
    device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleet_counts() {
        let state = build(&GraphFleet::Small, 1);
        assert_eq!(state.cloud_pcs.len(), 9);
        let business = state
            .cloud_pcs
            .iter()
            .filter(|pc| pc.plan == ServicePlan::Business);
        assert!(business.clone().all(|pc| pc.managed_device_id.is_none()));
        assert_eq!(business.count(), 3);
        assert_eq!(state.policies.len(), 2);
        let laptops = state
            .managed_devices
            .iter()
            .filter(|d| d.device_name.starts_with("HOSP-LT-"));
        assert_eq!(laptops.count(), 6);
        assert_eq!(
            state.managed_devices.len(),
            6 + 5,
            "five enrolled Cloud PCs"
        );
        assert_eq!(state.agent_only_laptops.len(), 4);
    }

    #[test]
    fn same_seed_same_ids() {
        let first = build(&GraphFleet::Small, 7);
        let second = build(&GraphFleet::Small, 7);
        assert_eq!(first.cloud_pcs[0].id, second.cloud_pcs[0].id);
        assert_eq!(first.groups[1].id, second.groups[1].id);
    }

    #[test]
    fn hospital_fleet_counts() {
        let state = build(&GraphFleet::Hospital, 1);
        assert_eq!(state.cloud_pcs.len(), 240);
        assert_eq!(state.agent_only_laptops.len(), 100);
        assert!(state.cloud_pcs.iter().any(|pc| pc.status == "movingRegion"));
    }
}
