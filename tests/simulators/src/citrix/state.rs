//! In-memory site state: delivery groups, machines, sessions, tags, applications and jobs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::jobs::Job;

/// A `{Name, Value}` pair as Citrix uses for metadata and job parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameValue {
    /// Name of the entry.
    pub name: String,
    /// Value of the entry.
    pub value: String,
}

/// A reference to a delivery group with its priority, as applications and application
/// groups hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PriorityRef {
    pub id: String,
    pub priority: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct DeliveryGroup {
    pub id: String,
    pub uid: i64,
    pub name: String,
    pub description: String,
    pub delivery_type: &'static str,
    pub session_support: &'static str,
    pub in_maintenance_mode: bool,
    pub is_remote_pc: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub id: String,
    pub uid: i64,
    pub name: String,
    pub provisioning_type: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub id: String,
    pub uid: i64,
    pub sid: String,
    /// `DOMAIN\NAME`.
    pub name: String,
    pub dns_name: String,
    pub ip_address: String,
    pub catalog_id: String,
    pub delivery_group_id: Option<String>,
    pub registration: &'static str,
    pub power: &'static str,
    pub in_maintenance_mode: bool,
    pub draining_until_shutdown: bool,
    pub will_shutdown_after_use: bool,
    pub session_support: &'static str,
    /// Tag ids in the order they were added.
    pub tags: Vec<String>,
    pub sessions: Vec<Session>,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub uid: i64,
    /// `DOMAIN\user`.
    pub user_name: String,
    pub user_display_name: String,
    pub user_sid: String,
    pub state: &'static str,
    pub start_time: DateTime<Utc>,
    pub state_change_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub id: String,
    pub uid: i64,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct AppGroup {
    pub id: String,
    pub uid: i64,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub session_sharing_enabled: bool,
    /// Tag id.
    pub restrict_to_tag: Option<String>,
    pub delivery_groups: Vec<PriorityRef>,
    pub metadata: Vec<NameValue>,
}

#[derive(Debug, Clone)]
pub(crate) struct Application {
    pub id: String,
    pub uid: i64,
    pub name: String,
    /// Admin folder path with `\` separators, `None` for the root.
    pub folder: Option<String>,
    pub published_name: String,
    pub description: Option<String>,
    pub application_type: String,
    pub command_line_executable: String,
    pub command_line_arguments: String,
    pub working_directory: String,
    pub client_folder: Option<String>,
    pub enabled: bool,
    pub visible: bool,
    pub metadata: Vec<NameValue>,
    pub delivery_groups: Vec<PriorityRef>,
    /// Application group ids.
    pub application_groups: Vec<String>,
}

impl Application {
    /// Returns the folder path and name joined with `\`.
    pub fn full_path(&self) -> String {
        match &self.folder {
            Some(folder) => format!("{folder}\\{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Everything the simulated site stores. Guarded by one mutex in the server.
#[derive(Debug)]
pub(crate) struct CitrixState {
    pub site_id: String,
    pub site_name: String,
    pub zone_id: String,
    pub domain: String,
    pub delivery_groups: Vec<DeliveryGroup>,
    pub catalogs: Vec<Catalog>,
    pub machines: Vec<Machine>,
    /// Lower-case machine id, SID and `DOMAIN\NAME` to index in `machines`.
    pub machine_index: HashMap<String, usize>,
    pub tags: Vec<Tag>,
    pub app_groups: Vec<AppGroup>,
    pub applications: Vec<Application>,
    pub jobs: HashMap<String, Job>,
    pub next_uid: i64,
    pub rng: StdRng,
}

impl CitrixState {
    /// Creates an empty site; the seed module fills it.
    pub fn new(site_name: &str, domain: &str, mut rng: StdRng) -> Self {
        let site_id = random_uuid(&mut rng);
        let zone_id = random_uuid(&mut rng);
        Self {
            site_id,
            site_name: site_name.to_string(),
            zone_id,
            domain: domain.to_string(),
            delivery_groups: Vec::new(),
            catalogs: Vec::new(),
            machines: Vec::new(),
            machine_index: HashMap::new(),
            tags: Vec::new(),
            app_groups: Vec::new(),
            applications: Vec::new(),
            jobs: HashMap::new(),
            next_uid: 1,
            rng,
        }
    }

    /// Returns a new deterministic object id.
    pub fn new_id(&mut self) -> String {
        random_uuid(&mut self.rng)
    }

    /// Returns a new deprecated integer uid.
    pub fn new_uid(&mut self) -> i64 {
        let uid = self.next_uid;
        self.next_uid += 1;
        uid
    }

    /// Adds a machine and indexes it by id, SID and name.
    pub fn push_machine(&mut self, machine: Machine) {
        let index = self.machines.len();
        for key in [&machine.id, &machine.sid, &machine.name] {
            self.machine_index.insert(key.to_lowercase(), index);
        }
        self.machines.push(machine);
    }

    /// Finds a machine by id, SID or name; `DOMAIN|NAME` stands for `DOMAIN\NAME`.
    pub fn machine_index_of(&self, name_or_id: &str) -> Option<usize> {
        let key = name_or_id.replace('|', "\\").to_lowercase();
        self.machine_index.get(&key).copied()
    }

    /// Finds a delivery group by id, name or full name (case-insensitive).
    pub fn delivery_group_index_of(&self, name_or_id: &str) -> Option<usize> {
        let key = name_or_id.replace('|', "\\");
        self.delivery_groups
            .iter()
            .position(|g| g.id.eq_ignore_ascii_case(&key) || g.name.eq_ignore_ascii_case(&key))
    }

    /// Returns the delivery group with this id.
    pub fn delivery_group(&self, id: &str) -> Option<&DeliveryGroup> {
        self.delivery_groups.iter().find(|g| g.id == id)
    }

    /// Finds a tag by id or name (case-insensitive).
    pub fn tag_index_of(&self, name_or_id: &str) -> Option<usize> {
        self.tags.iter().position(|t| {
            t.id.eq_ignore_ascii_case(name_or_id) || t.name.eq_ignore_ascii_case(name_or_id)
        })
    }

    /// Returns the tag with this id.
    pub fn tag(&self, id: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }

    /// Finds an application group by id or name (case-insensitive).
    pub fn app_group_index_of(&self, name_or_id: &str) -> Option<usize> {
        let key = name_or_id.replace('|', "\\");
        self.app_groups
            .iter()
            .position(|g| g.id.eq_ignore_ascii_case(&key) || g.name.eq_ignore_ascii_case(&key))
    }

    /// Finds an application by id, by `Folder|Sub|Name` path, or by a name that is unique
    /// across folders.
    pub fn application_index_of(&self, name_or_id: &str) -> Option<usize> {
        let path = name_or_id.replace('|', "\\");
        if let Some(index) = self.applications.iter().position(|a| {
            a.id.eq_ignore_ascii_case(name_or_id) || a.full_path().eq_ignore_ascii_case(&path)
        }) {
            return Some(index);
        }
        let mut by_name = self
            .applications
            .iter()
            .enumerate()
            .filter(|(_, a)| a.name.eq_ignore_ascii_case(&path));
        match (by_name.next(), by_name.next()) {
            (Some((index, _)), None) => Some(index),
            _ => None,
        }
    }

    /// Returns the machines of a delivery group, in fleet order.
    pub fn machines_in_group<'a>(&'a self, group_id: &'a str) -> impl Iterator<Item = &'a Machine> {
        self.machines
            .iter()
            .filter(move |m| m.delivery_group_id.as_deref() == Some(group_id))
    }

    /// Returns the names of the tags with these ids, skipping unknown ids.
    pub fn tag_names(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.tag(id).map(|t| t.name.clone()))
            .collect()
    }

    /// Returns every session with the index of its machine.
    pub fn sessions(&self) -> impl Iterator<Item = (usize, &Session)> {
        self.machines
            .iter()
            .enumerate()
            .flat_map(|(index, m)| m.sessions.iter().map(move |s| (index, s)))
    }

    /// Ends every session on the given machines, or on all machines when `machines` is
    /// empty. Unknown names are skipped. Returns the number of sessions ended.
    pub fn end_sessions(&mut self, machines: &[String]) -> usize {
        let indexes: Vec<usize> = if machines.is_empty() {
            (0..self.machines.len()).collect()
        } else {
            machines
                .iter()
                .filter_map(|m| self.machine_index_of(m))
                .collect()
        };
        let mut ended = 0;
        for index in indexes {
            ended += self.machines[index].sessions.len();
            self.machines[index].sessions.clear();
        }
        ended
    }

    /// Starts or ends one random session, as users do during a shift.
    pub fn churn_once(&mut self, now: DateTime<Utc>) {
        let with_sessions: Vec<usize> = (0..self.machines.len())
            .filter(|&i| !self.machines[i].sessions.is_empty())
            .collect();
        let end = self.rng.random_bool(0.5);
        if end && !with_sessions.is_empty() {
            let machine = with_sessions[self.rng.random_range(0..with_sessions.len())];
            let sessions = &mut self.machines[machine].sessions;
            let victim = self.rng.random_range(0..sessions.len());
            sessions.remove(victim);
            return;
        }
        let candidates: Vec<usize> = (0..self.machines.len())
            .filter(|&i| self.can_host_new_session(i))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let machine = candidates[self.rng.random_range(0..candidates.len())];
        let session = self.new_session("Active", now);
        self.machines[machine].sessions.push(session);
    }

    fn can_host_new_session(&self, index: usize) -> bool {
        let machine = &self.machines[index];
        let group_open = machine
            .delivery_group_id
            .as_deref()
            .and_then(|id| self.delivery_group(id))
            .is_some_and(|g| !g.in_maintenance_mode && g.enabled);
        let capacity = if machine.session_support == "MultiSession" {
            8
        } else {
            1
        };
        group_open
            && machine.registration == "Registered"
            && !machine.in_maintenance_mode
            && !machine.draining_until_shutdown
            && machine.sessions.len() < capacity
    }

    /// Creates a session for a random user of the site's domain.
    pub fn new_session(&mut self, state: &'static str, now: DateTime<Utc>) -> Session {
        const GIVEN: [&str; 12] = [
            "Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
            "Kemi", "Liam",
        ];
        const FAMILY: [&str; 12] = [
            "Garcia", "Okafor", "Nguyen", "Schmidt", "Patel", "Rossi", "Kowalski", "Haddad",
            "Larsen", "Moreau", "Tanaka", "Brennan",
        ];
        let given_name = GIVEN[self.rng.random_range(0..GIVEN.len())];
        let family_name = FAMILY[self.rng.random_range(0..FAMILY.len())];
        let number: u32 = self.rng.random_range(1..500);
        let minutes: i64 = self.rng.random_range(5..480);
        let start_time = now - chrono::Duration::minutes(minutes);
        let rid: u32 = self.rng.random_range(1100..99_000);
        Session {
            id: self.new_id(),
            uid: self.new_uid(),
            user_name: format!(
                "{}\\{}.{}{number}",
                self.domain,
                given_name.to_lowercase(),
                family_name.to_lowercase()
            ),
            user_display_name: format!("{given_name} {family_name}"),
            user_sid: format!("S-1-5-21-3623811015-3361044348-30300820-{rid}"),
            state,
            start_time,
            state_change_time: start_time,
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
