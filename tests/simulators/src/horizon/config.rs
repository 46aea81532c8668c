//! Configuration of the Horizon simulator.

use std::time::Duration;

use crate::common::Knobs;

/// Settings of a [`HorizonSim`](super::HorizonSim): fleet, credentials, token lifetimes,
/// the limit on concurrent queries, fault knobs and the seed that makes the fleet and its
/// ids deterministic.
#[derive(Debug, Clone)]
pub struct HorizonSimConfig {
    /// Fleet to seed.
    pub fleet: HorizonFleet,
    /// User name accepted by `POST /rest/login`, compared case-insensitively; default
    /// `svc-gateway`.
    pub username: String,
    /// Password accepted by `POST /rest/login`; default `sim-password`.
    pub password: String,
    /// NetBIOS domain accepted by `POST /rest/login`, compared case-insensitively; default
    /// `HOSP`.
    pub domain: String,
    /// Lifetime of access tokens; default 30 minutes, the example value of the cluster-wide
    /// `api_session_timeout_minutes` setting (Horizon Server REST API 2312).
    pub access_token_lifetime: Duration,
    /// Lifetime of refresh tokens; default 8 hours.
    // NOTE: 8 hours is a third-party claim; Horizon documents no refresh token lifetime.
    pub refresh_token_lifetime: Duration,
    /// Initial fault knobs; default all off.
    pub knobs: Knobs,
    /// Maximum number of GET requests under `/rest/` in flight at once; the next one gets
    /// 429 until one finishes. 0 means no limit. Default 5.
    pub max_concurrent_queries: usize,
    /// Seed of the fleet, the object ids and the fault draws; default 1.
    pub seed: u64,
}

impl Default for HorizonSimConfig {
    fn default() -> Self {
        Self {
            fleet: HorizonFleet::Small,
            username: "svc-gateway".to_string(),
            password: "sim-password".to_string(),
            domain: "HOSP".to_string(),
            access_token_lifetime: Duration::from_secs(30 * 60),
            refresh_token_lifetime: Duration::from_secs(8 * 3600),
            knobs: Knobs::default(),
            max_concurrent_queries: 5,
            seed: 1,
        }
    }
}

/// Shape of the seeded fleet; the default is [`HorizonFleet::Small`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HorizonFleet {
    /// A small pod with every machine state the gateway must handle. The instant-clone
    /// floating pool "EHR-IC" has 8 machines in mixed states, one in maintenance and one
    /// with an unreachable agent. The dedicated pool "Radiology-Dedicated" has 4 machines.
    /// The RDS farm "EHR-RDS-Farm" has 3 hosts, its RDS desktop pool and one application
    /// pool. AD users and groups are entitled to the pools.
    #[default]
    Small,
    /// A hospital: five instant-clone floating pools (one with application sessions), two
    /// dedicated pools, an empty pool and two RDS farms. 424 VDI machines and 12 RDS hosts,
    /// with connected and disconnected sessions and a few machines in maintenance, error or
    /// unreachable states.
    Hospital,
    /// Uniform instant-clone floating pools for benchmarks, every machine available.
    Sized {
        /// Number of desktop pools.
        pools: usize,
        /// Machines in each pool.
        machines_per_pool: usize,
        /// Percentage of machines (0 to 100) that start with a connected session.
        active_session_percent: u8,
    },
}
