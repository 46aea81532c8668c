//! Seeded fleets: the same seed always yields the same groups, machines, sessions and ids.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Fleet;
use super::state::{
    Application, Catalog, CitrixState, DeliveryGroup, Machine, NameValue, PriorityRef, Tag,
};

const DOMAIN: &str = "HOSP";
const DNS_SUFFIX: &str = "hosp.example.org";

/// Builds the site state for a fleet.
pub(crate) fn build(fleet: &Fleet, site_name: &str, seed: u64, now: DateTime<Utc>) -> CitrixState {
    let mut state = CitrixState::new(site_name, DOMAIN, StdRng::seed_from_u64(seed));
    match fleet {
        Fleet::Small => seed_small(&mut state, now),
        Fleet::Hospital => seed_hospital(&mut state, now),
        Fleet::Sized {
            delivery_groups,
            machines_per_group,
            active_session_percent,
        } => seed_sized(
            &mut state,
            *delivery_groups,
            *machines_per_group,
            *active_session_percent,
            now,
        ),
    }
    state
}

/// Description of one delivery group to seed.
struct GroupPlan {
    name: String,
    prefix: String,
    machines: usize,
    session_support: &'static str,
    delivery_type: &'static str,
    is_remote_pc: bool,
    in_maintenance_mode: bool,
}

impl GroupPlan {
    fn new(
        name: impl Into<String>,
        prefix: impl Into<String>,
        machines: usize,
        multi: bool,
    ) -> Self {
        Self {
            name: name.into(),
            prefix: prefix.into(),
            machines,
            session_support: if multi {
                "MultiSession"
            } else {
                "SingleSession"
            },
            delivery_type: "DesktopsAndApps",
            is_remote_pc: false,
            in_maintenance_mode: false,
        }
    }
}

/// Creates a delivery group with its catalog and returns the group id and the catalog id.
fn add_group(state: &mut CitrixState, plan: &GroupPlan) -> (String, String) {
    let catalog = Catalog {
        id: state.new_id(),
        uid: state.new_uid(),
        name: format!("{} Catalog", plan.name),
        provisioning_type: if plan.is_remote_pc { "Manual" } else { "MCS" },
    };
    let group = DeliveryGroup {
        id: state.new_id(),
        uid: state.new_uid(),
        name: plan.name.clone(),
        description: format!("{} machines", plan.name),
        delivery_type: plan.delivery_type,
        session_support: plan.session_support,
        in_maintenance_mode: plan.in_maintenance_mode,
        is_remote_pc: plan.is_remote_pc,
        enabled: true,
    };
    let ids = (group.id.clone(), catalog.id.clone());
    state.catalogs.push(catalog);
    state.delivery_groups.push(group);
    ids
}

/// Creates a registered, powered-on machine with no sessions and no flags.
fn new_machine(
    state: &mut CitrixState,
    plan: &GroupPlan,
    ids: &(String, String),
    group_number: usize,
    number: usize,
    width: usize,
) -> Machine {
    let host = format!("{}-{:0width$}", plan.prefix, number);
    let uid = state.new_uid();
    Machine {
        id: state.new_id(),
        uid,
        sid: format!("S-1-5-21-3623811015-3361044348-30300820-{}", 20_000 + uid),
        name: format!("{}\\{host}", state.domain),
        dns_name: format!("{}.{DNS_SUFFIX}", host.to_lowercase()),
        ip_address: format!(
            "10.{}.{}.{}",
            20 + group_number,
            number / 200,
            10 + number % 200
        ),
        catalog_id: ids.1.clone(),
        delivery_group_id: Some(ids.0.clone()),
        registration: "Registered",
        power: if plan.is_remote_pc { "Unmanaged" } else { "On" },
        in_maintenance_mode: false,
        draining_until_shutdown: false,
        will_shutdown_after_use: false,
        session_support: plan.session_support,
        tags: Vec::new(),
        sessions: Vec::new(),
    }
}

fn seed_small(state: &mut CitrixState, now: DateTime<Utc>) {
    let ehr = GroupPlan::new("EHR Clinicians", "EHR-VDA", 10, true);
    let ehr_ids = add_group(state, &ehr);
    for number in 1..=ehr.machines {
        let mut machine = new_machine(state, &ehr, &ehr_ids, 0, number, 4);
        match number {
            1 | 2 => machine.sessions.push(state.new_session("Active", now)),
            3 => machine
                .sessions
                .push(state.new_session("Disconnected", now)),
            7 => machine.in_maintenance_mode = true,
            8 => machine.draining_until_shutdown = true,
            9 => machine.registration = "Unregistered",
            10 => machine.will_shutdown_after_use = true,
            _ => {}
        }
        state.push_machine(machine);
    }

    let lab = GroupPlan::new("Lab Systems", "LAB-VDA", 4, false);
    let lab_ids = add_group(state, &lab);
    for number in 1..=lab.machines {
        let machine = new_machine(state, &lab, &lab_ids, 1, number, 4);
        state.push_machine(machine);
    }

    // A tag and an application that another team owns, which the gateway must leave alone.
    let tag = Tag {
        id: state.new_id(),
        uid: state.new_uid(),
        name: "ward-3-kiosk".to_string(),
        description: Some("Kiosk machines on ward 3".to_string()),
    };
    let lab_first = state.machine_index_of("HOSP\\LAB-VDA-0001");
    if let Some(index) = lab_first {
        state.machines[index].tags.push(tag.id.clone());
    }
    state.tags.push(tag);
    add_existing_app(state, &ehr_ids.0);
}

fn add_existing_app(state: &mut CitrixState, group_id: &str) {
    let app = Application {
        id: state.new_id(),
        uid: state.new_uid(),
        name: "EHR Client".to_string(),
        folder: Some("Clinical".to_string()),
        published_name: "EHR".to_string(),
        description: Some("Electronic health record client".to_string()),
        application_type: "HostedOnDesktop".to_string(),
        command_line_executable: "C:\\Program Files\\EHR\\ehrclient.exe".to_string(),
        command_line_arguments: String::new(),
        working_directory: "C:\\Program Files\\EHR".to_string(),
        client_folder: None,
        enabled: true,
        visible: true,
        metadata: vec![NameValue {
            name: "owner".to_string(),
            value: "clinical-apps-team".to_string(),
        }],
        delivery_groups: vec![PriorityRef {
            id: group_id.to_string(),
            priority: 0,
        }],
        application_groups: Vec::new(),
    };
    state.applications.push(app);
}

fn seed_hospital(state: &mut CitrixState, now: DateTime<Utc>) {
    let mut remote_pc = GroupPlan::new("Remote PC Physicians", "RPC-PHY", 50, false);
    remote_pc.is_remote_pc = true;
    let mut billing = GroupPlan::new("Legacy Billing", "BILL-VDA", 20, true);
    billing.delivery_type = "AppsOnly";
    billing.in_maintenance_mode = true;
    let plans = [
        GroupPlan::new("EHR Clinicians", "EHR-VDA", 240, true),
        GroupPlan::new("ED Triage", "ED-VDA", 60, false),
        GroupPlan::new("Radiology Reading", "RAD-WS", 40, false),
        GroupPlan::new("Pharmacy", "PHARM-VDA", 30, true),
        remote_pc,
        billing,
    ];
    let mut ehr_group = None;
    for (group_number, plan) in plans.iter().enumerate() {
        let ids = add_group(state, plan);
        if group_number == 0 {
            ehr_group = Some(ids.0.clone());
        }
        for number in 1..=plan.machines {
            let mut machine = new_machine(state, plan, &ids, group_number, number, 4);
            apply_hospital_condition(state, &mut machine, plan, now);
            state.push_machine(machine);
        }
    }
    if let Some(group_id) = ehr_group {
        add_existing_app(state, &group_id);
    }
}

/// Gives a hospital machine a realistic condition: a few percent in maintenance, draining
/// or unregistered, about a third with active sessions and a tenth disconnected.
fn apply_hospital_condition(
    state: &mut CitrixState,
    machine: &mut Machine,
    plan: &GroupPlan,
    now: DateTime<Utc>,
) {
    let condition: f64 = state.rng.random();
    if condition < 0.03 {
        machine.in_maintenance_mode = true;
    } else if condition < 0.05 {
        machine.draining_until_shutdown = true;
    } else if condition < 0.08 {
        machine.registration = "Unregistered";
    } else if condition < 0.09 {
        machine.registration = "Unregistered";
        machine.power = if plan.is_remote_pc {
            "Unmanaged"
        } else {
            "Off"
        };
    } else if condition < 0.11 && plan.session_support == "SingleSession" {
        machine.will_shutdown_after_use = true;
    }
    if machine.registration != "Registered" || machine.in_maintenance_mode {
        return;
    }

    let usage: f64 = state.rng.random();
    if usage < 0.35 {
        let count = if plan.session_support == "MultiSession" {
            state.rng.random_range(1..=4)
        } else {
            1
        };
        for _ in 0..count {
            let session = state.new_session("Active", now);
            machine.sessions.push(session);
        }
    } else if usage < 0.45 {
        let session = state.new_session("Disconnected", now);
        machine.sessions.push(session);
    }
}

fn seed_sized(
    state: &mut CitrixState,
    groups: usize,
    per_group: usize,
    active_percent: u8,
    now: DateTime<Utc>,
) {
    let probability = f64::from(active_percent.min(100)) / 100.0;
    for group_number in 0..groups {
        let name = format!("Bench Group {:02}", group_number + 1);
        let prefix = format!("BENCH{:02}-VDA", group_number + 1);
        let plan = GroupPlan::new(name, prefix, per_group, true);
        let ids = add_group(state, &plan);
        for number in 1..=per_group {
            let mut machine = new_machine(state, &plan, &ids, group_number, number, 5);
            if state.rng.random_bool(probability) {
                let session = state.new_session("Active", now);
                machine.sessions.push(session);
            }
            state.push_machine(machine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(state: &CitrixState) -> Vec<(String, usize, bool)> {
        state
            .machines
            .iter()
            .map(|m| (m.id.clone(), m.sessions.len(), m.in_maintenance_mode))
            .collect()
    }

    #[test]
    fn same_seed_same_fleet() {
        let now = Utc::now();
        let first = build(&Fleet::Hospital, "acme-health", 7, now);
        let second = build(&Fleet::Hospital, "acme-health", 7, now);
        assert_eq!(first.site_id, second.site_id);
        assert_eq!(summary(&first), summary(&second));
    }

    #[test]
    fn small_fleet_shape() {
        let state = build(&Fleet::Small, "acme-health", 1, Utc::now());
        assert_eq!(state.delivery_groups.len(), 2);
        assert_eq!(state.machines.len(), 14);
        let active = state
            .sessions()
            .filter(|(_, s)| s.state == "Active")
            .count();
        let disconnected = state
            .sessions()
            .filter(|(_, s)| s.state == "Disconnected")
            .count();
        assert_eq!(active, 2);
        assert_eq!(disconnected, 1);
        assert!(state.machine_index_of("HOSP|EHR-VDA-0001").is_some());
    }

    #[test]
    fn hospital_fleet_ratios() {
        let state = build(&Fleet::Hospital, "acme-health", 1, Utc::now());
        let total = state.machines.len() as f64;
        let active = state
            .machines
            .iter()
            .filter(|m| m.sessions.iter().any(|s| s.state == "Active"))
            .count() as f64;
        assert_eq!(state.machines.len(), 440);
        assert!((0.25..0.45).contains(&(active / total)), "active {active}");
        assert!(state.delivery_groups.iter().any(|g| g.in_maintenance_mode));
        assert!(state.delivery_groups.iter().any(|g| g.is_remote_pc));
    }
}
