//! Configuration of the Citrix simulator.

use std::time::Duration;

use crate::common::Knobs;

/// Settings of a [`CitrixSim`](super::CitrixSim): fleet, credentials, token lifetime,
/// fault knobs and the seed that makes the fleet and its ids deterministic.
#[derive(Debug, Clone)]
pub struct CitrixSimConfig {
    /// Fleet to seed.
    pub fleet: Fleet,
    /// Citrix Cloud customer id; default `acme-health`.
    pub customer_id: String,
    /// Client id accepted by the cloud token endpoint; default `gateway-client`.
    pub client_id: String,
    /// Client secret accepted by the cloud token endpoint; default `sim-client-secret`.
    pub client_secret: String,
    /// User name accepted by the on-premises token endpoints; default `HOSP\svc-gateway`.
    pub onprem_username: String,
    /// Password accepted by the on-premises token endpoints; default `sim-password`.
    pub onprem_password: String,
    /// Lifetime of issued tokens; default one hour, as Citrix Cloud documents.
    pub token_lifetime: Duration,
    /// Initial fault knobs; default all off.
    pub knobs: Knobs,
    /// Seed of the fleet, the object ids and the fault draws; default 1.
    pub seed: u64,
}

impl Default for CitrixSimConfig {
    fn default() -> Self {
        Self {
            fleet: Fleet::Small,
            customer_id: "acme-health".to_string(),
            client_id: "gateway-client".to_string(),
            client_secret: "sim-client-secret".to_string(),
            onprem_username: "HOSP\\svc-gateway".to_string(),
            onprem_password: "sim-password".to_string(),
            token_lifetime: Duration::from_secs(3600),
            knobs: Knobs::default(),
            seed: 1,
        }
    }
}

/// Shape of the seeded fleet; the default is [`Fleet::Small`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fleet {
    /// Two delivery groups with 14 machines covering every machine state the gateway must
    /// handle: "EHR Clinicians" (10) and "Lab Systems" (4).
    #[default]
    Small,
    /// Six hospital delivery groups with 440 machines. About a third of the machines have
    /// active sessions, a tenth are disconnected and a few percent are in maintenance,
    /// draining or unregistered. One group is in maintenance mode and one is Remote PC.
    Hospital,
    /// Uniform groups for benchmarks: every machine registered and ready.
    Sized {
        /// Number of delivery groups.
        delivery_groups: usize,
        /// Machines in each group.
        machines_per_group: usize,
        /// Percentage of machines (0 to 100) that start with one active session.
        active_session_percent: u8,
    },
}
