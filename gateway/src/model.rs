//! Gateway-side domain types: assignments, their states and per-machine placements.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vdi_contracts::{
    validate_identifier, validate_version, Activation, Container, RolloutPolicy, TargetRef, Window,
};

/// Desired state of an assignment, as the control plane sends it in `PUT /v1/assignments/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentSpec {
    /// Container at the desired version.
    pub container: Container,
    /// Targets to deliver to.
    pub targets: Vec<TargetRef>,
    /// When machines may change relative to sessions.
    #[serde(default)]
    pub activation: Activation,
    /// Waves and failure budget.
    #[serde(default)]
    pub rollout: RolloutPolicy,
    /// Maintenance window; `None` means any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

impl AssignmentSpec {
    /// Checks identifiers, version, targets and rollout policy.
    ///
    /// # Errors
    /// Returns a message naming the invalid field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        validate_identifier("container.id", &self.container.id).map_err(|e| e.to_string())?;
        validate_version(&self.container.version).map_err(|e| e.to_string())?;
        if self.container.launch.executable.trim().is_empty() {
            return Err("container.launch.executable is empty; give the player's path".into());
        }
        if self.targets.is_empty() {
            return Err("targets is empty; name at least one {\"provider\", \"target\"}".into());
        }
        for (index, target) in self.targets.iter().enumerate() {
            if target.provider.is_empty() || target.target.is_empty() {
                return Err(format!(
                    "targets[{index}] needs both \"provider\" and \"target\""
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for target in &self.targets {
            if !seen.insert((&target.provider, &target.target)) {
                return Err(format!(
                    "target {}/{} is listed twice",
                    target.provider, target.target
                ));
            }
        }
        self.rollout.validate()?;
        if let Some(window) = &self.window {
            crate::engine::window::validate(window)?;
        }
        Ok(())
    }
}

/// Lifecycle state of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AssignmentState {
    Pending,
    WaitingForWindow,
    RollingOut,
    Paused,
    Converged,
    Failed,
    RollingBack,
    RolledBack,
    Removing,
    Removed,
}

impl AssignmentState {
    /// Returns the wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::WaitingForWindow => "waiting_for_window",
            Self::RollingOut => "rolling_out",
            Self::Paused => "paused",
            Self::Converged => "converged",
            Self::Failed => "failed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Removing => "removing",
            Self::Removed => "removed",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == value)
    }

    /// Every state, in lifecycle order.
    pub const ALL: [AssignmentState; 10] = [
        Self::Pending,
        Self::WaitingForWindow,
        Self::RollingOut,
        Self::Paused,
        Self::Converged,
        Self::Failed,
        Self::RollingBack,
        Self::RolledBack,
        Self::Removing,
        Self::Removed,
    ];

    /// Returns whether the engine still has work in this state (deferred machines included).
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Paused | Self::Failed | Self::Removed)
    }
}

/// Stored assignment: current desired state and rollout position.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Control-plane id.
    pub id: String,
    /// Revision number, starting at 1.
    pub revision: i64,
    /// Lifecycle state.
    pub state: AssignmentState,
    /// Current desired state.
    pub spec: AssignmentSpec,
    /// Earlier versions of the container, newest first, kept for rollback.
    pub previous: Vec<Container>,
    /// Index of the wave being rolled out.
    pub current_wave: i64,
    /// Why the assignment is in its state (rollback reason, pause reason).
    pub detail: String,
    /// When the current wave started.
    pub wave_started_at: Option<DateTime<Utc>>,
    /// When the current wave completed, the earliest start of the next (`pause_seconds`).
    pub next_wave_at: Option<DateTime<Utc>>,
    /// Token name that made the latest revision; `engine` for automatic rollbacks.
    pub actor: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// State of one machine within an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum PlacementState {
    Applied,
    Pending,
    Deferred,
    Failed,
    Excluded,
}

impl PlacementState {
    /// Returns the wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Deferred => "deferred",
            Self::Failed => "failed",
            Self::Excluded => "excluded",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Pending,
            Self::Deferred,
            Self::Failed,
            Self::Excluded,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// One machine's placement row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// Provider name.
    pub provider: String,
    /// Target as the assignment names it.
    pub target: String,
    /// Machine id.
    pub machine: String,
    /// Machine name.
    pub machine_name: String,
    /// Position in the deterministic wave order (0 first).
    pub rank: i64,
    /// Version the machine should have.
    pub desired_version: String,
    /// Version the broker showed last; empty when none.
    pub applied_version: String,
    /// State.
    pub state: PlacementState,
    /// Reason for deferred, failed and excluded states.
    pub detail: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Counts of machines per placement state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// All machines.
    pub total: u64,
    /// At the desired version.
    pub applied: u64,
    /// Not yet attempted.
    pub pending: u64,
    /// Waiting for sessions to end.
    pub deferred: u64,
    /// Failed.
    pub failed: u64,
    /// Never changed (maintenance, draining, unregistered).
    pub excluded: u64,
}

impl Progress {
    /// Adds `count` machines in `state`.
    pub fn add(&mut self, state: PlacementState, count: u64) {
        self.total += count;
        match state {
            PlacementState::Applied => self.applied += count,
            PlacementState::Pending => self.pending += count,
            PlacementState::Deferred => self.deferred += count,
            PlacementState::Failed => self.failed += count,
            PlacementState::Excluded => self.excluded += count,
        }
    }
}

/// Checks an assignment id.
///
/// # Errors
/// Returns the message of the identifier rule it breaks.
pub fn validate_assignment_id(id: &str) -> Result<(), String> {
    validate_identifier("assignment_id", id).map_err(|e| e.to_string())
}
