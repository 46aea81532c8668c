//! Response documents of the gateway API, as far as the client shows them.

use serde::Deserialize;
use serde_json::Value;

// Views of response documents. They accept unknown fields and fill missing ones, because the
// API may add fields at any time.

/// Assignment status document, as far as the client shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AssignmentView {
    pub(super) id: String,
    pub(super) revision: u64,
    pub(super) container: ContainerView,
    pub(super) targets: Vec<TargetRefView>,
    pub(super) activation: Option<String>,
    pub(super) state: String,
    pub(super) previous_versions: Vec<String>,
    pub(super) progress: Option<Counts>,
    pub(super) per_target: Vec<TargetProgress>,
    pub(super) rollout: RolloutView,
    pub(super) current_wave: Option<u64>,
    pub(super) updated_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ContainerView {
    pub(super) id: String,
    pub(super) version: String,
    pub(super) display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TargetRefView {
    pub(super) provider: String,
    pub(super) target: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RolloutView {
    pub(super) waves: Vec<f64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub(super) struct Counts {
    pub(super) total: u64,
    pub(super) applied: u64,
    pub(super) pending: u64,
    pub(super) deferred: u64,
    pub(super) failed: u64,
    pub(super) excluded: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TargetProgress {
    pub(super) provider: String,
    pub(super) target: String,
    #[serde(flatten)]
    pub(super) counts: Counts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ProviderList {
    pub(super) providers: Vec<ProviderView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ProviderView {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) environment: String,
    pub(super) source: String,
    pub(super) health: Option<HealthView>,
    pub(super) capabilities: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HealthView {
    pub(super) status: String,
    pub(super) detail: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TargetList {
    pub(super) targets: Vec<TargetView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TargetView {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) machine_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MachineView {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) state: Value,
    pub(super) sessions: Vec<SessionView>,
    pub(super) containers: Vec<ContainerView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SessionView {
    pub(super) state: String,
}
