//! In-memory pod state: desktop pools, farms, machines, RDS servers, sessions, application
//! pools, entitlements, AD principals and the messages sent to sessions.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::Rng;

use super::snapshot::SentMessage;

/// Machine state shown while a machine is in maintenance mode and has no session.
pub(crate) const MAINTENANCE: &str = "MAINTENANCE";

#[derive(Debug, Clone)]
pub(crate) struct DesktopPool {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub enabled: bool,
    /// `AUTOMATED`, `MANUAL` or `RDS`.
    pub pool_type: &'static str,
    /// `INSTANT_CLONE`, `VIRTUAL_CENTER`, `RDS`, ...
    pub source: &'static str,
    /// `DEDICATED` or `FLOATING`; `None` for RDS pools.
    pub user_assignment: Option<&'static str>,
    /// `DESKTOP`, `APPLICATION` or `DESKTOP_AND_APPLICATION`.
    pub session_type: &'static str,
    pub farm_id: Option<String>,
    pub vcenter_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Farm {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub enabled: bool,
    /// `AUTOMATED` or `MANUAL`.
    pub farm_type: &'static str,
    /// The RDS desktop pool that publishes the farm's desktops, if any.
    pub desktop_pool_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RdsServer {
    pub id: String,
    pub name: String,
    pub dns_name: String,
    pub farm_id: String,
    /// An `RDSServerInfo.state` value.
    pub state: &'static str,
    pub enabled: bool,
    pub max_sessions: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub id: String,
    pub name: String,
    pub dns_name: String,
    pub desktop_pool_id: String,
    /// State without sessions and maintenance mode, for example `AVAILABLE`, `PROVISIONED`
    /// or `AGENT_UNREACHABLE`.
    pub base_state: &'static str,
    pub in_maintenance: bool,
    /// SIDs of the users assigned to a dedicated machine.
    pub user_ids: Vec<String>,
    pub power_state: &'static str,
    /// Creation time in epoch milliseconds.
    pub create_time: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    /// SID of the user.
    pub user_id: String,
    /// Machine of a VDI desktop session; `None` for RDS sessions.
    pub machine_id: Option<String>,
    pub desktop_pool_id: Option<String>,
    pub farm_id: Option<String>,
    pub rds_server_id: Option<String>,
    /// `DESKTOP` or `APPLICATION`.
    pub session_type: &'static str,
    /// `CONNECTED`, `DISCONNECTED` or `PENDING`.
    pub state: &'static str,
    /// `BLAST`, `PCOIP` or `RDP`.
    pub protocol: &'static str,
    /// Start time in epoch milliseconds.
    pub start_time: i64,
    /// Disconnection time in epoch milliseconds, for disconnected sessions.
    pub disconnected_time: Option<i64>,
    pub application_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ApplicationPool {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub executable_path: String,
    pub parameters: Option<String>,
    pub start_folder: Option<String>,
    pub publisher: Option<String>,
    pub version: Option<String>,
    pub desktop_pool_id: Option<String>,
    pub farm_id: Option<String>,
    pub multi_session_mode: &'static str,
    pub max_multi_sessions: Option<i64>,
    pub enable_pre_launch: bool,
    pub shortcut_locations: Vec<String>,
    pub category_folder_name: Option<String>,
}

/// An Active Directory user or group that entitlements and sessions refer to by SID.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// SID.
    pub id: String,
    /// sAMAccountName.
    pub login_name: String,
    pub display_name: String,
    pub group: bool,
}

/// Everything the simulated pod stores. Guarded by one mutex in the server.
#[derive(Debug)]
pub(crate) struct HorizonState {
    pub domain: String,
    pub dns_suffix: String,
    pub access_group_id: String,
    pub vcenter_id: String,
    pub desktop_pools: Vec<DesktopPool>,
    pub farms: Vec<Farm>,
    pub rds_servers: Vec<RdsServer>,
    pub machines: Vec<Machine>,
    pub sessions: Vec<Session>,
    pub application_pools: Vec<ApplicationPool>,
    /// Desktop pool id to entitled SIDs, in the order they were added.
    pub desktop_entitlements: BTreeMap<String, Vec<String>>,
    /// Application pool id to entitled SIDs, in the order they were added.
    pub application_entitlements: BTreeMap<String, Vec<String>>,
    pub principals: Vec<Principal>,
    pub messages: Vec<SentMessage>,
    pub rng: StdRng,
}

impl HorizonState {
    /// Creates an empty pod; the seed module fills it.
    pub fn new(domain: &str, mut rng: StdRng) -> Self {
        let access_group_id = random_uuid(&mut rng);
        let vcenter_id = random_uuid(&mut rng);
        Self {
            domain: domain.to_string(),
            dns_suffix: format!("{}.example.org", domain.to_lowercase()),
            access_group_id,
            vcenter_id,
            desktop_pools: Vec::new(),
            farms: Vec::new(),
            rds_servers: Vec::new(),
            machines: Vec::new(),
            sessions: Vec::new(),
            application_pools: Vec::new(),
            desktop_entitlements: BTreeMap::new(),
            application_entitlements: BTreeMap::new(),
            principals: Vec::new(),
            messages: Vec::new(),
            rng,
        }
    }

    /// Returns a new deterministic object id.
    pub fn new_id(&mut self) -> String {
        random_uuid(&mut self.rng)
    }

    pub fn desktop_pool(&self, id: &str) -> Option<&DesktopPool> {
        self.desktop_pools.iter().find(|p| p.id == id)
    }

    pub fn farm(&self, id: &str) -> Option<&Farm> {
        self.farms.iter().find(|f| f.id == id)
    }

    pub fn principal(&self, sid: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(sid))
    }

    /// Returns the session on each machine, keyed by machine id.
    pub fn session_by_machine(&self) -> HashMap<&str, &Session> {
        self.sessions
            .iter()
            .filter_map(|s| s.machine_id.as_deref().map(|m| (m, s)))
            .collect()
    }

    /// Returns the state a machine reports: its session's state while it has a session,
    /// `MAINTENANCE` in maintenance mode, otherwise its base state.
    pub fn machine_state(machine: &Machine, session: Option<&Session>) -> &'static str {
        match session.map(|s| s.state) {
            Some("CONNECTED") => "CONNECTED",
            Some("DISCONNECTED") => "DISCONNECTED",
            _ if machine.in_maintenance => MAINTENANCE,
            _ => machine.base_state,
        }
    }

    /// Ends every session on the given machines or RDS servers (ids or names), or every
    /// session when `targets` is empty, as if the users logged off. Unknown names are
    /// skipped. Returns the number of sessions ended.
    pub fn end_sessions(&mut self, targets: &[String]) -> usize {
        let before = self.sessions.len();
        if targets.is_empty() {
            self.sessions.clear();
            return before;
        }
        let mut hosts: Vec<String> = Vec::new();
        for target in targets {
            let machine = self.machines.iter().find(|m| {
                m.id == *target
                    || m.name.eq_ignore_ascii_case(target)
                    || m.dns_name.eq_ignore_ascii_case(target)
            });
            let server = self
                .rds_servers
                .iter()
                .find(|s| s.id == *target || s.name.eq_ignore_ascii_case(target));
            hosts.extend(machine.map(|m| m.id.clone()));
            hosts.extend(server.map(|s| s.id.clone()));
        }
        self.sessions.retain(|s| {
            let host = s.machine_id.as_ref().or(s.rds_server_id.as_ref());
            !host.is_some_and(|h| hosts.contains(h))
        });
        before - self.sessions.len()
    }

    /// Starts, disconnects or ends one random session, as users do during a shift.
    pub fn churn_once(&mut self, now_ms: i64) {
        let roll: f64 = self.rng.random();
        if roll < 0.4 && !self.sessions.is_empty() {
            let victim = self.rng.random_range(0..self.sessions.len());
            self.sessions.remove(victim);
            return;
        }

        if roll < 0.55 && !self.sessions.is_empty() {
            let index = self.rng.random_range(0..self.sessions.len());
            let session = &mut self.sessions[index];
            if session.state == "CONNECTED" {
                session.state = "DISCONNECTED";
                session.disconnected_time = Some(now_ms);
            } else {
                session.state = "CONNECTED";
                session.disconnected_time = None;
            }
            return;
        }

        let busy = self.session_by_machine();
        let free: Vec<usize> = (0..self.machines.len())
            .filter(|&i| {
                let machine = &self.machines[i];
                machine.base_state == "AVAILABLE"
                    && !machine.in_maintenance
                    && !busy.contains_key(machine.id.as_str())
            })
            .collect();
        if free.is_empty() {
            return;
        }
        let index = free[self.rng.random_range(0..free.len())];
        let machine_id = self.machines[index].id.clone();
        let pool_id = self.machines[index].desktop_pool_id.clone();
        let user = self.random_user();
        let session = self.new_session(user, now_ms, "CONNECTED");
        self.sessions.push(Session {
            machine_id: Some(machine_id),
            desktop_pool_id: Some(pool_id),
            ..session
        });
    }

    /// Returns the SID of a random user (not a group), or a made-up SID when there is none.
    pub fn random_user(&mut self) -> String {
        let users: Vec<&Principal> = self.principals.iter().filter(|p| !p.group).collect();
        if users.is_empty() {
            return "S-1-5-21-1004336348-1177238915-682003330-9999".to_string();
        }
        let index = self.rng.random_range(0..users.len());
        users[index].id.clone()
    }

    /// Creates a desktop session of `user` with no host; callers set the machine or the RDS
    /// server.
    pub fn new_session(&mut self, user: String, now_ms: i64, state: &'static str) -> Session {
        let minutes: i64 = self.rng.random_range(5..480);
        let start_time = now_ms - minutes * 60_000;
        let disconnected_time = (state == "DISCONNECTED")
            .then(|| start_time + self.rng.random_range(1..minutes.max(2)) * 60_000);
        let protocol = if self.rng.random_bool(0.8) {
            "BLAST"
        } else {
            "PCOIP"
        };
        Session {
            id: self.new_id(),
            user_id: user,
            machine_id: None,
            desktop_pool_id: None,
            farm_id: None,
            rds_server_id: None,
            session_type: "DESKTOP",
            state,
            protocol,
            start_time,
            disconnected_time,
            application_names: Vec::new(),
        }
    }
}

/// Returns a version 4 UUID made from the seeded random generator.
pub(crate) fn random_uuid(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
