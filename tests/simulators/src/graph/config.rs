//! Configuration of the Microsoft Graph simulator.

use std::time::Duration;

use super::upload::ContentUploadKnobs;
use crate::common::Knobs;

/// Settings of a [`GraphSim`](super::GraphSim): fleet, app credentials, token lifetime,
/// directory lag, page size, published Intune limits, fault knobs and the seed that makes
/// the fleet and its ids deterministic.
#[derive(Debug, Clone)]
pub struct GraphSimConfig {
    /// Fleet to seed.
    pub fleet: GraphFleet,
    /// Directory (tenant) id in the token URL; default `11111111-2222-3333-4444-555555555555`.
    pub tenant_id: String,
    /// Application (client) id accepted by the token endpoint; default `gateway-app`.
    pub client_id: String,
    /// Client secret accepted by the token endpoint; default `sim-graph-secret`.
    pub client_secret: String,
    /// Lifetime of access tokens; default 3599 s, the `expires_in` of the identity platform
    /// example response.
    pub token_lifetime: Duration,
    /// Initial fault knobs; default all off.
    pub knobs: Knobs,
    /// Delay before a group membership change shows in `GET /groups/{id}/members`; default
    /// 300 ms. Writes see the change at once, as Entra ID's eventual consistency allows.
    pub membership_lag: Duration,
    /// Items per page when the request has no `$top`; default 50.
    pub page_size: usize,
    /// Delay between the PATCH that sets a `win32LobApp`'s `committedContentVersion` and its
    /// `publishingState` becoming `published`; default zero. Until that PATCH the app is
    /// `notPublished`, and assigning an app that is not published gets 400.
    pub app_publish_delay: Duration,
    /// Initial knobs of content upload: pending GETs, SAS lifetime and injected commit
    /// failures; see [`ContentUploadKnobs`] for the defaults.
    pub content_upload: ContentUploadKnobs,
    /// Minimum time between two accepted `syncDevice` calls for one device; default 5 s.
    // NOTE: Intune publishes no per-device limit for syncDevice; 5 s is a guess that makes
    // clients handle a per-device 429.
    pub sync_device_interval: Duration,
    /// Per-app request limits of the Intune services.
    pub intune_limits: IntuneLimits,
    /// Seed of the fleet, the object ids and the fault draws; default 1.
    pub seed: u64,
}

impl Default for GraphSimConfig {
    fn default() -> Self {
        Self {
            fleet: GraphFleet::Small,
            tenant_id: "11111111-2222-3333-4444-555555555555".to_string(),
            client_id: "gateway-app".to_string(),
            client_secret: "sim-graph-secret".to_string(),
            token_lifetime: Duration::from_secs(3599),
            knobs: Knobs::default(),
            membership_lag: Duration::from_millis(300),
            page_size: 50,
            app_publish_delay: Duration::ZERO,
            content_upload: ContentUploadKnobs::default(),
            sync_device_interval: Duration::from_secs(5),
            intune_limits: IntuneLimits::default(),
            seed: 1,
        }
    }
}

/// Per-app request limits in one sliding window; requests over a limit get 429 with
/// `Retry-After`. The defaults are the published per-app limits of the Intune devices and
/// applications services (Microsoft Graph throttling limits, Intune service limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntuneLimits {
    /// Whether the limits apply; default true.
    pub enabled: bool,
    /// Length of the window; default 20 s.
    pub window: Duration,
    /// Requests of any method to `managedDevices` and Cloud PC paths per window; default 2000.
    pub device_requests: usize,
    /// Writes to `managedDevices` and Cloud PC paths per window; default 200.
    // NOTE: Microsoft publishes no Cloud PC table, so Cloud PC paths share the device limits.
    pub device_writes: usize,
    /// Requests of any method to `mobileApps` paths per window; default 1000.
    pub app_requests: usize,
    /// Writes to `mobileApps` paths per window; default 100.
    pub app_writes: usize,
}

impl Default for IntuneLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(20),
            device_requests: 2000,
            device_writes: 200,
            app_requests: 1000,
            app_writes: 100,
        }
    }
}

/// Shape of the seeded fleet; the default is [`GraphFleet::Small`].
///
/// Every Enterprise Cloud PC is also an Intune managed device named after its
/// `managedDeviceName`, so managed device lists hold Cloud PCs and laptops. Agent-only
/// laptops exist nowhere in Graph; their ids are in [`GraphSnapshot::agent_only_laptops`].
///
/// [`GraphSnapshot::agent_only_laptops`]: super::GraphSnapshot::agent_only_laptops
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GraphFleet {
    /// Six Enterprise Cloud PCs (four provisioned, one `inGracePeriod`, one
    /// `provisioning`), three provisioned Business Cloud PCs, two provisioning policies
    /// assigned to "W365-Clinicians" and "W365-Business", six Intune-managed laptops
    /// `HOSP-LT-0001` to `HOSP-LT-0006` (`HOSP-LT-0004` non-compliant) and four agent-only
    /// laptops `HOSP-AG-0001` to `HOSP-AG-0004`.
    #[default]
    Small,
    /// A hospital: 200 Enterprise and 40 Business Cloud PCs in mixed states, including
    /// failed ones and states added after `unknownFutureValue`, 300 managed laptops and 100
    /// agent-only laptops.
    Hospital,
    /// Provisioned Enterprise Cloud PCs and compliant managed laptops for benchmarks; no
    /// Business Cloud PCs and no agent-only laptops.
    Sized {
        /// Number of Enterprise Cloud PCs.
        cloud_pcs: usize,
        /// Number of managed laptops.
        laptops: usize,
    },
}
