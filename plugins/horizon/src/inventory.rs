//! Inventory: desktop pools and RDS farms as targets, their machines (pool machines or farm
//! RDS hosts) joined to their sessions, and the normalisation of Horizon states.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vdi_contracts::{
    Machine, MachineState, Page, ProviderError, ProviderResult, Session, SessionState, Target,
    TargetKind,
};

use crate::client::{page_number, Filter, Resource};
use crate::model::{DesktopPool, Farm, MachineInfo, RdsServer, SessionInfo};
use crate::provider::HorizonProvider;

/// How long the list of pools and farms is reused, so paging through a large pool does not
/// list every pool and farm once per page.
pub(crate) const TARGET_CACHE_TTL: Duration = Duration::from_secs(10);

/// How long a target's session listing is reused across pages of one machine listing.
pub(crate) const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// Desktop pools and farms, as last listed.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) pools: Vec<DesktopPool>,
    pub(crate) farms: Vec<Farm>,
}

/// Source of a target's machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MachineSource {
    /// Machines of a desktop pool.
    Pool(String),
    /// RDS hosts of a farm (also for an RDS desktop pool, whose machines are its farm's hosts).
    Farm(String),
}

/// A target resolved from an id or a name.
#[derive(Debug, Clone)]
pub(crate) enum ResolvedTarget {
    /// A desktop pool with its id.
    Pool(String, DesktopPool),
    /// An RDS farm with its id.
    Farm(String, Farm),
}

impl ResolvedTarget {
    pub(crate) fn id(&self) -> &str {
        match self {
            ResolvedTarget::Pool(id, _) | ResolvedTarget::Farm(id, _) => id,
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            ResolvedTarget::Pool(id, pool) => {
                format!("desktop pool {} ({id})", pool.name.as_deref().unwrap_or(id))
            }
            ResolvedTarget::Farm(id, farm) => {
                format!("farm {} ({id})", farm.name.as_deref().unwrap_or(id))
            }
        }
    }

    pub(crate) fn machine_source(&self) -> MachineSource {
        match self {
            ResolvedTarget::Pool(id, pool) => match (&pool.farm_id, pool.is_rds()) {
                (Some(farm), true) => MachineSource::Farm(farm.clone()),
                _ => MachineSource::Pool(id.clone()),
            },
            ResolvedTarget::Farm(id, _) => MachineSource::Farm(id.clone()),
        }
    }

    /// Returns the filter selecting the target's sessions.
    pub(crate) fn session_filter(&self) -> Filter {
        match self.machine_source() {
            MachineSource::Pool(id) => Filter::Equals("desktop_pool_id", id),
            MachineSource::Farm(id) => Filter::Equals("farm_id", id),
        }
    }
}

/// Normalises a machine or RDS host state. Maintenance (the state or the vCenter flag) comes
/// first; any state the gateway does not know is kept verbatim as `Unknown`, never an error.
pub fn machine_state(raw: Option<&str>, in_maintenance_mode: bool) -> MachineState {
    if in_maintenance_mode {
        return MachineState::Maintenance;
    }
    let Some(raw) = raw else {
        return MachineState::Unknown("state not reported".into());
    };
    match raw.to_ascii_uppercase().as_str() {
        "AVAILABLE"
        | "CONNECTED"
        | "DISCONNECTED"
        | "UNASSIGNED_USER_CONNECTED"
        | "UNASSIGNED_USER_DISCONNECTED" => MachineState::Ready,
        "MAINTENANCE" | "DISABLED" | "DISABLE_IN_PROGRESS" => MachineState::Maintenance,
        // ALREADY_USED machines are deleted or refreshed after the last logoff.
        "DELETING" | "ALREADY_USED" | "AGENT_DRAIN_MODE" | "AGENT_DRAIN_UNTIL_RESTART" => {
            MachineState::Draining
        }
        "PROVISIONING" | "PROVISIONING_ERROR" | "WAITING_FOR_AGENT" | "WAIT_FOR_AGENT"
        | "CUSTOMIZING" | "PROVISIONED" | "ERROR" | "AGENT_UNREACHABLE" | "AGENT_CONFIG_ERROR"
        | "IN_PROGRESS" | "VALIDATING" => MachineState::Unregistered,
        // RDSServerInfo spells these AGENT_ERR_*, MachineInfo AGENT_ERROR_*.
        upper if upper.starts_with("AGENT_ERROR_") || upper.starts_with("AGENT_ERR_") => {
            MachineState::Unregistered
        }
        _ => MachineState::Unknown(raw.to_owned()),
    }
}

/// Normalises a session state: `DISCONNECTED` is disconnected, and `CONNECTED`, `PENDING` and
/// anything unknown count as active, so the gateway never treats a user it cannot see clearly
/// as gone.
pub fn session_state(raw: Option<&str>) -> SessionState {
    match raw {
        Some(state) if state.eq_ignore_ascii_case("DISCONNECTED") => SessionState::Disconnected,
        _ => SessionState::Active,
    }
}

/// Sessions by machine id (desktop sessions) and RDS host id (RDS sessions).
pub(crate) struct SessionIndex {
    by_machine: HashMap<String, Vec<Session>>,
}

impl SessionIndex {
    pub(crate) fn new(sessions: &[SessionInfo]) -> Self {
        let mut by_machine: HashMap<String, Vec<Session>> = HashMap::new();
        for session in sessions {
            // machine_id is not set for RDS and application sessions (SessionInfo, 2111).
            let Some(host) = session
                .machine_id
                .as_ref()
                .or(session.rds_server_id.as_ref())
            else {
                continue;
            };
            by_machine.entry(host.clone()).or_default().push(Session {
                user: session.user_id.clone().unwrap_or_default(),
                state: session_state(session.session_state.as_deref()),
            });
        }
        Self { by_machine }
    }

    pub(crate) fn for_machine(&self, id: &str) -> Vec<Session> {
        self.by_machine.get(id).cloned().unwrap_or_default()
    }
}

fn pool_machine(target: &str, machine: &MachineInfo, sessions: &SessionIndex) -> Option<Machine> {
    let id = machine.id.clone()?;
    let maintenance = machine
        .managed_machine_data
        .as_ref()
        .and_then(|data| data.in_maintenance_mode)
        == Some(true);
    Some(Machine {
        name: machine.name.clone().unwrap_or_else(|| id.clone()),
        dns_name: machine.dns_name.clone(),
        target: target.to_owned(),
        state: machine_state(machine.state.as_deref(), maintenance),
        sessions: sessions.for_machine(&id),
        containers: Vec::new(),
        id,
    })
}

fn rds_machine(target: &str, server: &RdsServer, sessions: &SessionIndex) -> Option<Machine> {
    let id = server.id.clone()?;
    // A disabled RDS host accepts no new sessions, which is Horizon's maintenance for hosts.
    let disabled = server.enabled == Some(false);
    Some(Machine {
        name: server.name.clone().unwrap_or_else(|| id.clone()),
        dns_name: server.dns_name.clone(),
        target: target.to_owned(),
        state: machine_state(server.state.as_deref(), disabled),
        sessions: sessions.for_machine(&id),
        containers: Vec::new(),
        id,
    })
}

impl HorizonProvider {
    /// Returns the pools and farms, reusing a listing younger than [`TARGET_CACHE_TTL`].
    pub(crate) async fn inventory(&self) -> ProviderResult<Arc<Inventory>> {
        let mut cached = self.targets_cache.lock().await;
        if let Some((fetched, inventory)) = cached.as_ref() {
            if fetched.elapsed() < TARGET_CACHE_TTL {
                return Ok(inventory.clone());
            }
        }
        let (pools, farms) = futures::try_join!(
            self.api.all::<DesktopPool>(Resource::DesktopPools, None),
            self.api.all::<Farm>(Resource::Farms, None),
        )?;
        let inventory = Arc::new(Inventory { pools, farms });
        *cached = Some((Instant::now(), inventory.clone()));
        Ok(inventory)
    }

    /// Resolves a target id or name to a desktop pool or a farm; ids win over names.
    pub(crate) async fn resolve(&self, target: &str) -> ProviderResult<ResolvedTarget> {
        let inventory = self.inventory().await?;
        let as_pool = |pool: &DesktopPool| {
            let id = pool.id.clone()?;
            Some(ResolvedTarget::Pool(id, pool.clone()))
        };
        let as_farm = |farm: &Farm| {
            let id = farm.id.clone()?;
            Some(ResolvedTarget::Farm(id, farm.clone()))
        };
        let has_id = |id: &Option<String>| id.as_deref() == Some(target);
        let has_name = |name: &Option<String>| {
            name.as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(target))
        };
        let pools = &inventory.pools;
        let farms = &inventory.farms;
        let resolved = pools
            .iter()
            .find(|p| has_id(&p.id))
            .and_then(as_pool)
            .or_else(|| farms.iter().find(|f| has_id(&f.id)).and_then(as_farm))
            .or_else(|| pools.iter().find(|p| has_name(&p.name)).and_then(as_pool))
            .or_else(|| farms.iter().find(|f| has_name(&f.name)).and_then(as_farm));
        resolved.ok_or_else(|| {
            ProviderError::not_found(format!(
                "Horizon desktop pool or farm {target:?} not found; list the provider's targets for valid ids and names"
            ))
        })
    }

    /// Lists desktop pools and farms as targets.
    pub(crate) async fn targets(&self) -> ProviderResult<Vec<Target>> {
        // A fresh listing, so a pool created a moment ago shows up.
        *self.targets_cache.lock().await = None;
        let inventory = self.inventory().await?;
        let pools = inventory.pools.iter().filter_map(|pool| {
            let id = pool.id.clone()?;
            Some(Target {
                name: pool.name.clone().unwrap_or_else(|| id.clone()),
                id,
                kind: TargetKind::DesktopPool,
                // NOTE: DesktopPoolInfo and FarmInfo of 2111 carry no machine count, and
                // counting would cost a full machine listing per target.
                machine_count: None,
            })
        });
        let farms = inventory.farms.iter().filter_map(|farm| {
            let id = farm.id.clone()?;
            Some(Target {
                name: farm.name.clone().unwrap_or_else(|| id.clone()),
                id,
                kind: TargetKind::Farm,
                machine_count: None,
            })
        });
        Ok(pools.chain(farms).collect())
    }

    /// Returns a target's sessions, reusing a listing younger than [`SESSION_CACHE_TTL`].
    pub(crate) async fn sessions(
        &self,
        target: &ResolvedTarget,
    ) -> ProviderResult<Arc<Vec<SessionInfo>>> {
        let key = target.id().to_owned();
        let mut cache = self.sessions_cache.lock().await;
        if let Some((fetched, sessions)) = cache.get(&key) {
            if fetched.elapsed() < SESSION_CACHE_TTL {
                return Ok(sessions.clone());
            }
        }
        let filter = target.session_filter();
        let sessions = Arc::new(
            self.api
                .all::<SessionInfo>(Resource::Sessions, Some(&filter))
                .await?,
        );
        cache.insert(key, (Instant::now(), sessions.clone()));
        Ok(sessions)
    }

    /// Lists one page of a target's machines with their sessions.
    pub(crate) async fn machines_page(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let page = page_number(cursor.as_deref())?;
        let resolved = self.resolve(target).await?;
        let target_id = resolved.id().to_owned();
        let sessions = SessionIndex::new(&self.sessions(&resolved).await?);
        let (items, next_cursor) = match resolved.machine_source() {
            MachineSource::Pool(pool) => {
                let filter = Filter::Equals("desktop_pool_id", pool);
                let (machines, next) = self
                    .api
                    .page::<MachineInfo>(Resource::Machines, Some(&filter), page)
                    .await?;
                let items = machines
                    .iter()
                    .filter_map(|m| pool_machine(&target_id, m, &sessions))
                    .collect();
                (items, next)
            }
            MachineSource::Farm(farm) => {
                let filter = Filter::Equals("farm_id", farm);
                let (servers, next) = self
                    .api
                    .page::<RdsServer>(Resource::RdsServers, Some(&filter), page)
                    .await?;
                let items = servers
                    .iter()
                    .filter_map(|s| rds_machine(&target_id, s, &sessions))
                    .collect();
                (items, next)
            }
        };
        Ok(Page { items, next_cursor })
    }

    /// Lists every machine of a resolved target, with sessions.
    pub(crate) async fn all_machines(
        &self,
        resolved: &ResolvedTarget,
    ) -> ProviderResult<Vec<Machine>> {
        let target_id = resolved.id();
        let sessions = SessionIndex::new(&self.sessions(resolved).await?);
        let machines = match resolved.machine_source() {
            MachineSource::Pool(pool) => {
                let filter = Filter::Equals("desktop_pool_id", pool);
                let machines: Vec<MachineInfo> =
                    self.api.all(Resource::Machines, Some(&filter)).await?;
                machines
                    .iter()
                    .filter_map(|m| pool_machine(target_id, m, &sessions))
                    .collect()
            }
            MachineSource::Farm(farm) => {
                let filter = Filter::Equals("farm_id", farm);
                let servers: Vec<RdsServer> =
                    self.api.all(Resource::RdsServers, Some(&filter)).await?;
                servers
                    .iter()
                    .filter_map(|s| rds_machine(target_id, s, &sessions))
                    .collect()
            }
        };
        Ok(machines)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn state_table() {
        let cases = [
            ("AVAILABLE", MachineState::Ready),
            ("CONNECTED", MachineState::Ready),
            ("DISCONNECTED", MachineState::Ready),
            ("UNASSIGNED_USER_CONNECTED", MachineState::Ready),
            ("available", MachineState::Ready),
            ("MAINTENANCE", MachineState::Maintenance),
            ("DISABLED", MachineState::Maintenance),
            ("DELETING", MachineState::Draining),
            ("ALREADY_USED", MachineState::Draining),
            ("AGENT_DRAIN_MODE", MachineState::Draining),
            ("AGENT_UNREACHABLE", MachineState::Unregistered),
            ("PROVISIONING", MachineState::Unregistered),
            ("PROVISIONED", MachineState::Unregistered),
            ("ERROR", MachineState::Unregistered),
            ("AGENT_ERROR_NEEDS_REBOOT", MachineState::Unregistered),
            ("AGENT_ERR_NEED_REBOOT", MachineState::Unregistered),
            ("WAIT_FOR_AGENT", MachineState::Unregistered),
            ("UNKNOWN", MachineState::Unknown("UNKNOWN".into())),
            ("HIBERNATED", MachineState::Unknown("HIBERNATED".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(machine_state(Some(raw), false), expected, "{raw}");
        }
    }

    #[test]
    fn maintenance_flag_wins() {
        assert_eq!(
            machine_state(Some("AVAILABLE"), true),
            MachineState::Maintenance
        );
    }

    #[test]
    fn missing_state_is_unknown() {
        assert!(matches!(
            machine_state(None, false),
            MachineState::Unknown(_)
        ));
    }

    #[test]
    fn session_state_table() {
        assert_eq!(session_state(Some("CONNECTED")), SessionState::Active);
        assert_eq!(
            session_state(Some("DISCONNECTED")),
            SessionState::Disconnected
        );
        assert_eq!(session_state(Some("PENDING")), SessionState::Active);
        assert_eq!(session_state(Some("SOMETHING_NEW")), SessionState::Active);
        assert_eq!(session_state(None), SessionState::Active);
    }

    #[test]
    fn sessions_join_by_machine_and_rds_host() {
        let sessions: Vec<SessionInfo> = serde_json::from_value(json!([
            {"id": "s1", "user_id": "S-1-5-21-1-1001", "machine_id": "m1",
             "session_state": "CONNECTED", "session_type": "DESKTOP"},
            {"id": "s2", "user_id": "S-1-5-21-1-1002", "rds_server_id": "rds1",
             "farm_id": "f1", "session_state": "DISCONNECTED", "session_type": "APPLICATION"},
            {"id": "s3", "user_id": "S-1-5-21-1-1003", "session_state": "CONNECTED"},
        ]))
        .expect("sessions parse");
        let index = SessionIndex::new(&sessions);
        assert_eq!(index.for_machine("m1").len(), 1);
        let on_host = index.for_machine("rds1");
        assert_eq!(on_host.len(), 1);
        assert_eq!(on_host[0].state, SessionState::Disconnected);
        assert_eq!(on_host[0].user, "S-1-5-21-1-1002");
        assert!(index.for_machine("m2").is_empty());
    }

    #[test]
    fn rds_pool_lists_its_farm_hosts() {
        let pool: DesktopPool = serde_json::from_value(json!({
            "id": "p-rds", "name": "EHR-RDS", "type": "RDS", "farm_id": "f1",
            "session_type": "DESKTOP_AND_APPLICATION",
        }))
        .expect("pool parses");
        let target = ResolvedTarget::Pool("p-rds".into(), pool);
        assert_eq!(target.machine_source(), MachineSource::Farm("f1".into()));
        assert_eq!(
            target.session_filter(),
            Filter::Equals("farm_id", "f1".into())
        );
    }

    #[test]
    fn disabled_rds_host_is_maintenance() {
        let server: RdsServer = serde_json::from_value(json!({
            "id": "rds1", "name": "RDSH-01", "enabled": false, "state": "AVAILABLE",
        }))
        .expect("server parses");
        let machine = rds_machine("f1", &server, &SessionIndex::new(&[])).expect("has id");
        assert_eq!(machine.state, MachineState::Maintenance);
    }
}
