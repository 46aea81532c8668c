//! Seeded fleets: the same seed always yields the same pools, machines, sessions and ids.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::HorizonFleet;
use super::state::{
    ApplicationPool, DesktopPool, Farm, HorizonState, Machine, Principal, RdsServer, Session,
};

/// Domain SID prefix of the seeded AD users and groups.
const DOMAIN_SID: &str = "S-1-5-21-1004336348-1177238915-682003330";

/// Builds the pod state for a fleet.
pub(crate) fn build(fleet: &HorizonFleet, domain: &str, seed: u64, now_ms: i64) -> HorizonState {
    let mut state = HorizonState::new(domain, StdRng::seed_from_u64(seed));
    match fleet {
        HorizonFleet::Small => seed_small(&mut state, now_ms),
        HorizonFleet::Hospital => seed_hospital(&mut state, now_ms),
        HorizonFleet::Sized {
            pools,
            machines_per_pool,
            active_session_percent,
        } => seed_sized(
            &mut state,
            *pools,
            *machines_per_pool,
            *active_session_percent,
            now_ms,
        ),
    }
    state
}

/// Adds AD groups named in `groups` and `users` numbered users; returns the group SIDs.
fn add_principals(state: &mut HorizonState, groups: &[&str], users: usize) -> Vec<String> {
    const GIVEN: [&str; 10] = [
        "ana", "ben", "chloe", "dev", "elena", "farid", "grace", "hiro", "ines", "jonas",
    ];
    let mut group_ids = Vec::new();
    for (index, name) in groups.iter().enumerate() {
        let id = format!("{DOMAIN_SID}-{}", 5000 + index);
        group_ids.push(id.clone());
        state.principals.push(Principal {
            id,
            login_name: (*name).to_string(),
            display_name: (*name).to_string(),
            group: true,
        });
    }
    for number in 0..users {
        let login = format!("{}.user{:03}", GIVEN[number % GIVEN.len()], number + 1);
        state.principals.push(Principal {
            id: format!("{DOMAIN_SID}-{}", 11_000 + number),
            display_name: login.replace('.', " "),
            login_name: login,
            group: false,
        });
    }
    group_ids
}

struct PoolPlan<'a> {
    name: &'a str,
    dedicated: bool,
    session_type: &'static str,
}

/// Adds a VDI desktop pool; instant clones are floating, dedicated pools are full clones.
fn add_pool(state: &mut HorizonState, plan: &PoolPlan<'_>) -> String {
    let id = state.new_id();
    let vcenter_id = state.vcenter_id.clone();
    state.desktop_pools.push(DesktopPool {
        id: id.clone(),
        name: plan.name.to_string(),
        display_name: plan.name.replace('-', " "),
        description: format!("{} desktops", plan.name),
        enabled: true,
        pool_type: "AUTOMATED",
        source: if plan.dedicated {
            "VIRTUAL_CENTER"
        } else {
            "INSTANT_CLONE"
        },
        user_assignment: Some(if plan.dedicated {
            "DEDICATED"
        } else {
            "FLOATING"
        }),
        session_type: plan.session_type,
        farm_id: None,
        vcenter_id: Some(vcenter_id),
    });
    id
}

/// Adds an available, powered-on machine with no session to a pool.
fn add_machine(state: &mut HorizonState, pool_id: &str, name: String, now_ms: i64) -> usize {
    let id = state.new_id();
    let age_days: i64 = state.rng.random_range(1..60);
    let dns_name = format!("{}.{}", name.to_lowercase(), state.dns_suffix);
    state.machines.push(Machine {
        id,
        name,
        dns_name,
        desktop_pool_id: pool_id.to_string(),
        base_state: "AVAILABLE",
        in_maintenance: false,
        user_ids: Vec::new(),
        power_state: "POWERED_ON",
        create_time: now_ms - age_days * 86_400_000,
    });
    state.machines.len() - 1
}

/// Gives a machine a session of `user` in `session_state`.
fn attach_session(
    state: &mut HorizonState,
    machine: usize,
    user: String,
    session_state: &'static str,
    now_ms: i64,
) {
    let session = state.new_session(user, now_ms, session_state);
    let machine = &state.machines[machine];
    let session = Session {
        machine_id: Some(machine.id.clone()),
        desktop_pool_id: Some(machine.desktop_pool_id.clone()),
        ..session
    };
    state.sessions.push(session);
}

/// Adds an RDS farm with `hosts` servers and the RDS desktop pool that publishes it.
/// Returns the farm id and the pool id.
fn add_farm(state: &mut HorizonState, name: &str, prefix: &str, hosts: usize) -> (String, String) {
    let farm_id = state.new_id();
    let pool_id = state.new_id();
    let pool_name = name.trim_end_matches("-Farm").to_string();
    state.farms.push(Farm {
        id: farm_id.clone(),
        name: name.to_string(),
        display_name: name.replace('-', " "),
        description: format!("{name} session hosts"),
        enabled: true,
        farm_type: "AUTOMATED",
        desktop_pool_id: Some(pool_id.clone()),
    });
    state.desktop_pools.push(DesktopPool {
        id: pool_id.clone(),
        name: pool_name.clone(),
        display_name: pool_name.replace('-', " "),
        description: format!("Published desktops of {name}"),
        enabled: true,
        pool_type: "RDS",
        source: "RDS",
        user_assignment: None,
        session_type: "DESKTOP_AND_APPLICATION",
        farm_id: Some(farm_id.clone()),
        vcenter_id: None,
    });
    for number in 1..=hosts {
        let host = format!("{prefix}-{number:02}");
        let id = state.new_id();
        let dns_name = format!("{}.{}", host.to_lowercase(), state.dns_suffix);
        state.rds_servers.push(RdsServer {
            id,
            name: host,
            dns_name,
            farm_id: farm_id.clone(),
            state: "AVAILABLE",
            enabled: true,
            max_sessions: 20,
        });
    }
    (farm_id, pool_id)
}

/// Gives an RDS server `count` sessions, every `disconnected_every`-th one disconnected.
fn add_rds_sessions(
    state: &mut HorizonState,
    server: usize,
    count: usize,
    disconnected_every: usize,
    now_ms: i64,
) {
    let server_id = state.rds_servers[server].id.clone();
    let farm_id = state.rds_servers[server].farm_id.clone();
    let pool_id = state.farm(&farm_id).and_then(|f| f.desktop_pool_id.clone());
    for index in 0..count {
        let user = state.random_user();
        let session_state = if disconnected_every > 0 && index % disconnected_every == 1 {
            "DISCONNECTED"
        } else {
            "CONNECTED"
        };
        let session = state.new_session(user, now_ms, session_state);
        state.sessions.push(Session {
            farm_id: Some(farm_id.clone()),
            rds_server_id: Some(server_id.clone()),
            desktop_pool_id: pool_id.clone(),
            ..session
        });
    }
}

fn entitle_desktop(state: &mut HorizonState, pool_id: &str, sids: &[&String]) {
    let entry = state
        .desktop_entitlements
        .entry(pool_id.to_string())
        .or_default();
    entry.extend(sids.iter().map(|sid| (*sid).clone()));
}

fn seed_small(state: &mut HorizonState, now_ms: i64) {
    let groups = add_principals(
        state,
        &["EHR-Clinicians", "Radiology-Staff", "Nursing", "VDI-Admins"],
        12,
    );
    let ehr = add_pool(
        state,
        &PoolPlan {
            name: "EHR-IC",
            dedicated: false,
            session_type: "DESKTOP",
        },
    );
    let users: Vec<String> = state
        .principals
        .iter()
        .filter(|p| !p.group)
        .map(|p| p.id.clone())
        .collect();
    for number in 1..=8 {
        let index = add_machine(state, &ehr, format!("EHR-IC-{number:03}"), now_ms);
        match number {
            1 | 2 => attach_session(state, index, users[number].clone(), "CONNECTED", now_ms),
            3 => attach_session(state, index, users[3].clone(), "DISCONNECTED", now_ms),
            7 => state.machines[index].in_maintenance = true,
            8 => state.machines[index].base_state = "AGENT_UNREACHABLE",
            _ => {}
        }
    }

    let radiology = add_pool(
        state,
        &PoolPlan {
            name: "Radiology-Dedicated",
            dedicated: true,
            session_type: "DESKTOP",
        },
    );
    for number in 1..=4 {
        let index = add_machine(state, &radiology, format!("RAD-D-{number:03}"), now_ms);
        let user = users[7 + number].clone();
        state.machines[index].user_ids = vec![user.clone()];
        match number {
            1 => attach_session(state, index, user, "CONNECTED", now_ms),
            2 => attach_session(state, index, user, "DISCONNECTED", now_ms),
            4 => {
                state.machines[index].base_state = "PROVISIONED";
                state.machines[index].power_state = "POWERED_OFF";
            }
            _ => {}
        }
    }

    let (farm, rds_pool) = add_farm(state, "EHR-RDS-Farm", "EHR-RDS", 3);
    let servers: Vec<usize> = (0..state.rds_servers.len()).collect();
    add_rds_sessions(state, servers[0], 4, 3, now_ms);
    add_rds_sessions(state, servers[1], 2, 0, now_ms);
    add_rds_sessions(state, servers[2], 1, 0, now_ms);

    entitle_desktop(state, &ehr, &[&groups[0], &groups[2]]);
    entitle_desktop(state, &radiology, &[&groups[1]]);
    entitle_desktop(state, &rds_pool, &[&groups[0]]);

    let viewer = state.new_id();
    state.application_pools.push(ApplicationPool {
        id: viewer.clone(),
        name: "EHR-Print-Viewer".to_string(),
        display_name: "EHR Print Viewer".to_string(),
        description: None,
        enabled: true,
        executable_path: "C:\\Program Files\\EHR\\PrintViewer.exe".to_string(),
        parameters: None,
        start_folder: None,
        publisher: Some("EHR Vendor".to_string()),
        version: Some("12.4".to_string()),
        desktop_pool_id: None,
        farm_id: Some(farm),
        multi_session_mode: "DISABLED",
        max_multi_sessions: None,
        enable_pre_launch: false,
        shortcut_locations: Vec::new(),
        category_folder_name: None,
    });
    state
        .application_entitlements
        .insert(viewer, vec![groups[0].clone()]);
}

/// Draws the starting condition of one hospital machine: about 35 % connected, 10 %
/// disconnected and a few percent each in maintenance, unreachable, error or provisioning.
fn hospital_machine(state: &mut HorizonState, index: usize, now_ms: i64) {
    let roll: f64 = state.rng.random();
    let user = state.random_user();
    if roll < 0.35 {
        attach_session(state, index, user, "CONNECTED", now_ms);
    } else if roll < 0.45 {
        attach_session(state, index, user, "DISCONNECTED", now_ms);
    } else if roll < 0.47 {
        state.machines[index].in_maintenance = true;
    } else if roll < 0.48 {
        state.machines[index].base_state = "AGENT_UNREACHABLE";
    } else if roll < 0.49 {
        state.machines[index].base_state = "ERROR";
    } else if roll < 0.50 {
        state.machines[index].base_state = "PROVISIONING";
        state.machines[index].power_state = "POWERED_OFF";
    }
}

fn seed_hospital(state: &mut HorizonState, now_ms: i64) {
    let groups = add_principals(
        state,
        &[
            "ED-Clinicians",
            "ICU-Staff",
            "Nursing",
            "Outpatient-Staff",
            "Pharmacy",
            "Radiology-Staff",
            "Physicians",
            "Research",
            "Billing",
        ],
        240,
    );
    let plans = [
        ("ED-Clinical-IC", "ED-IC", 80, false, "DESKTOP", 0),
        ("ICU-Clinical-IC", "ICU-IC", 60, false, "DESKTOP", 1),
        ("Nursing-IC", "NUR-IC", 120, false, "DESKTOP", 2),
        (
            "Outpatient-IC",
            "OPD-IC",
            70,
            false,
            "DESKTOP_AND_APPLICATION",
            3,
        ),
        ("Pharmacy-IC", "PHA-IC", 30, false, "DESKTOP", 4),
        ("Radiology-Dedicated", "RAD-D", 24, true, "DESKTOP", 5),
        ("Physicians-Dedicated", "PHY-D", 40, true, "DESKTOP", 6),
        ("Research-Empty", "RES", 0, false, "DESKTOP", 7),
    ];
    for (name, prefix, machines, dedicated, session_type, group) in plans {
        let pool = add_pool(
            state,
            &PoolPlan {
                name,
                dedicated,
                session_type,
            },
        );
        for number in 1..=machines {
            let index = add_machine(state, &pool, format!("{prefix}-{number:03}"), now_ms);
            if dedicated {
                let user = state.random_user();
                state.machines[index].user_ids = vec![user];
            }
            hospital_machine(state, index, now_ms);
        }
        let group_id = groups[group].clone();
        entitle_desktop(state, &pool, &[&group_id]);
    }
    for (name, prefix, hosts, group) in [
        ("EHR-RDS-Farm", "EHR-RDS", 8, 0),
        ("Billing-RDS-Farm", "BIL-RDS", 4, 8),
    ] {
        let first = state.rds_servers.len();
        let (_, pool) = add_farm(state, name, prefix, hosts);
        for server in first..state.rds_servers.len() {
            let count = state.rng.random_range(3..15);
            add_rds_sessions(state, server, count, 4, now_ms);
        }
        let group_id = groups[group].clone();
        entitle_desktop(state, &pool, &[&group_id]);
    }
    if let Some(server) = state.rds_servers.last_mut() {
        server.state = "AGENT_UNREACHABLE";
    }
}

fn seed_sized(
    state: &mut HorizonState,
    pools: usize,
    machines_per_pool: usize,
    active_session_percent: u8,
    now_ms: i64,
) {
    let groups = add_principals(state, &["Bench-Users"], 100);
    let percent = f64::from(active_session_percent.min(100)) / 100.0;
    for pool_number in 1..=pools {
        let name = format!("Pool-{pool_number:03}");
        let prefix = format!("P{pool_number:03}-VM");
        let pool = add_pool(
            state,
            &PoolPlan {
                name: &name,
                dedicated: false,
                session_type: "DESKTOP",
            },
        );
        for number in 1..=machines_per_pool {
            let index = add_machine(state, &pool, format!("{prefix}-{number:05}"), now_ms);
            if state.rng.random_bool(percent) {
                let user = state.random_user();
                attach_session(state, index, user, "CONNECTED", now_ms);
            }
        }
        entitle_desktop(state, &pool, &[&groups[0]]);
    }
}
