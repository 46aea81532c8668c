//! Domain types that cross the boundary between the gateway and its providers.
//!
//! Wire types of a particular broker never appear here: each provider converts its own payloads
//! into these types, so the engine reasons about one model whatever the broker.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Maximum length of an identifier chosen by the control plane.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Maximum length of a container version string. Versions end up inside broker tag and object
/// names, which several brokers cap at 64 characters or a little more.
pub const MAX_VERSION_LEN: usize = 64;

/// Rejection of an identifier or version chosen by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// The value is empty or longer than the maximum.
    #[error("{field} must be 1 to {max} characters long, got {len}")]
    #[allow(missing_docs)]
    Length {
        field: &'static str,
        max: usize,
        len: usize,
    },
    /// The value contains a character outside the allowed set.
    #[error("{field} {value:?} contains {character:?}; use only {allowed}")]
    #[allow(missing_docs)]
    Character {
        field: &'static str,
        value: String,
        character: char,
        allowed: &'static str,
    },
}

/// Checks an identifier chosen by the control plane (assignment id, container id): 1 to 128
/// characters of `[A-Za-z0-9._:-]`.
///
/// # Errors
/// Returns [`IdentifierError`] naming the field, the offending character and the allowed set.
pub fn validate_identifier(field: &'static str, value: &str) -> Result<(), IdentifierError> {
    check_charset(
        field,
        value,
        MAX_IDENTIFIER_LEN,
        "letters, digits, '.', '_', ':' and '-'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'),
    )
}

/// Checks a container version: 1 to 64 characters of `[A-Za-z0-9._+-]`.
///
/// # Errors
/// Returns [`IdentifierError`] naming the offending character and the allowed set.
pub fn validate_version(value: &str) -> Result<(), IdentifierError> {
    check_charset(
        "container.version",
        value,
        MAX_VERSION_LEN,
        "letters, digits, '.', '_', '+' and '-'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'),
    )
}

fn check_charset(
    field: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    is_allowed: impl Fn(char) -> bool,
) -> Result<(), IdentifierError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(IdentifierError::Length { field, max, len });
    }
    if let Some(character) = value.chars().find(|c| !is_allowed(*c)) {
        return Err(IdentifierError::Character {
            field,
            value: value.to_owned(),
            character,
            allowed,
        });
    }
    Ok(())
}

/// Command line with which the player on a machine starts a container version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// Executable of the streaming player, already installed on the machine's image.
    pub executable: String,
    /// Command-line arguments that select the container and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Working directory of the launched process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// A packaged application at one version, as the control plane describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Control-plane identifier, for example `epic-hyperspace`.
    pub id: String,
    /// Version string, for example `2024.3.1`.
    pub version: String,
    /// Name users see in their launcher; defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Command that starts this version through the player.
    pub launch: Launch,
}

impl Container {
    /// Returns the name users see: the display name, or the id when none is set.
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }

    /// Returns the `(id, version)` pair of this container.
    pub fn reference(&self) -> ContainerRef {
        ContainerRef {
            id: self.id.clone(),
            version: self.version.clone(),
        }
    }
}

/// A container id and version without launch details.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Container identifier.
    pub id: String,
    /// Container version.
    pub version: String,
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// When a machine may switch to a new version, relative to its users' sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Change only machines with no session at all, so no running or disconnected session gets
    /// the change before its next logon.
    NextLogon,
    /// Change a machine once it has no active session; disconnected sessions do not block.
    #[default]
    WhenIdle,
    /// Change now; users in a session see the new version at their next launch of the app.
    Immediate,
}

impl Activation {
    /// Returns the wire name of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::NextLogon => "next_logon",
            Activation::WhenIdle => "when_idle",
            Activation::Immediate => "immediate",
        }
    }

    /// Decides whether a machine with these sessions may change now, and if not, why.
    pub fn blocking_reason(self, sessions: &[Session]) -> Option<String> {
        let active = sessions
            .iter()
            .filter(|s| s.state == SessionState::Active)
            .count();
        match self {
            Activation::Immediate => None,
            Activation::WhenIdle if active > 0 => Some(format!(
                "{active} active session(s); waiting for the machine to be idle"
            )),
            Activation::WhenIdle => None,
            Activation::NextLogon if !sessions.is_empty() => Some(format!(
                "{} session(s) open; waiting for the next logon",
                sessions.len()
            )),
            Activation::NextLogon => None,
        }
    }
}

/// Wave plan and failure budget of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Cumulative percentages of each target's eligible machines, ending at 100.
    #[serde(default = "RolloutPolicy::default_waves")]
    pub waves: Vec<f64>,
    /// Failure percentage above which the rollout stops (default 0: any failure stops it).
    #[serde(default)]
    pub max_failure_percent: f64,
    /// Seconds to wait between waves (default 0).
    #[serde(default)]
    pub pause_seconds: u64,
    /// Roll back to the previous version when the failure budget is exceeded, instead of pausing.
    #[serde(default)]
    pub auto_rollback: bool,
}

impl RolloutPolicy {
    fn default_waves() -> Vec<f64> {
        vec![100.0]
    }

    /// Checks that waves increase strictly, stay within (0, 100] and end at 100, and that the
    /// failure budget is a percentage.
    ///
    /// # Errors
    /// Returns a message naming the offending value and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.waves.is_empty() {
            return Err(
                "rollout.waves is empty; give cumulative percentages such as [5, 25, 100]".into(),
            );
        }
        let mut previous = 0.0;
        for wave in &self.waves {
            if !wave.is_finite() || *wave <= previous || *wave > 100.0 {
                return Err(format!(
                    "rollout.waves {:?} must increase strictly within (0, 100]; for example [5, 25, 100]",
                    self.waves
                ));
            }
            previous = *wave;
        }
        if (previous - 100.0).abs() > f64::EPSILON {
            return Err(format!(
                "rollout.waves {:?} must end at 100 so every machine is reached",
                self.waves
            ));
        }
        if !(0.0..=100.0).contains(&self.max_failure_percent) {
            return Err(format!(
                "rollout.max_failure_percent {} must be between 0 and 100",
                self.max_failure_percent
            ));
        }
        Ok(())
    }

    /// Returns how many of `eligible` machines are in waves `0..=wave` (rounding up, so a small
    /// first wave still contains at least one machine).
    pub fn cumulative_count(&self, wave: usize, eligible: usize) -> usize {
        let percent = self.waves.get(wave).copied().unwrap_or(100.0);
        let count = (percent / 100.0 * eligible as f64).ceil() as usize;
        count.min(eligible)
    }
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self {
            waves: Self::default_waves(),
            max_failure_percent: 0.0,
            pause_seconds: 0,
            auto_rollback: false,
        }
    }
}

/// Days of the week in a maintenance window rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One allowed interval of a maintenance window, in the window's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRule {
    /// Days on which the interval starts.
    pub days: Vec<Weekday>,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`; an end before the start crosses midnight.
    pub end: String,
}

/// Maintenance window: rollouts change machines only inside one of its intervals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// IANA time zone name, for example `America/Chicago`.
    pub timezone: String,
    /// Allowed intervals.
    pub allow: Vec<WindowRule>,
}

/// A provider and one of its targets, as an assignment names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// Configured provider name, for example `citrix-prod`.
    pub provider: String,
    /// Target id or name at that provider.
    pub target: String,
}

/// Kind of group a broker offers as a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Citrix delivery group.
    DeliveryGroup,
    /// Horizon desktop pool.
    DesktopPool,
    /// Horizon RDS farm.
    Farm,
    /// Windows 365 Cloud PC group.
    CloudPcGroup,
    /// Group of physical endpoints.
    DeviceGroup,
}

/// A group of machines the broker offers as a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Broker identifier of the group.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Kind of group.
    pub kind: TargetKind,
    /// Number of machines, when the broker reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_count: Option<u64>,
}

/// A user session on a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// User name as the broker reports it.
    pub user: String,
    /// Normalised state.
    pub state: SessionState,
}

/// Normalised session state; brokers' connecting and unknown states count as active, so the
/// engine never changes a machine under a user it cannot see clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// A user is connected.
    Active,
    /// The session exists but no user is connected.
    Disconnected,
}

/// Normalised machine state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "raw")]
pub enum MachineState {
    /// Registered and accepting sessions.
    Ready,
    /// In maintenance mode: nobody may connect, and the gateway leaves it alone.
    Maintenance,
    /// Draining until shutdown, or shutting down after use.
    Draining,
    /// Not registered with the broker (off, agent down, initialising).
    Unregistered,
    /// A state the gateway does not know; kept verbatim and treated as not eligible.
    Unknown(String),
}

impl MachineState {
    /// Returns the short wire name of this state.
    pub fn as_str(&self) -> &str {
        match self {
            MachineState::Ready => "ready",
            MachineState::Maintenance => "maintenance",
            MachineState::Draining => "draining",
            MachineState::Unregistered => "unregistered",
            MachineState::Unknown(raw) => raw,
        }
    }

    /// Returns why the gateway must not change a machine in this state, if it must not.
    pub fn exclusion_reason(&self) -> Option<String> {
        match self {
            MachineState::Ready => None,
            MachineState::Maintenance => Some("machine is in maintenance mode".into()),
            MachineState::Draining => Some("machine is draining until shutdown".into()),
            MachineState::Unregistered => Some("machine is not registered with the broker".into()),
            MachineState::Unknown(raw) => Some(format!("machine state {raw:?} is not known")),
        }
    }
}

/// A machine as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Broker identifier, stable across renames.
    pub id: String,
    /// Name as the broker shows it, for example `HOSP\EHR-VDA-001`.
    pub name: String,
    /// DNS name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Target id the machine belongs to.
    pub target: String,
    /// Normalised state.
    pub state: MachineState,
    /// Sessions on the machine.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// Gateway-owned container versions the broker shows on this machine.
    #[serde(default)]
    pub containers: Vec<ContainerRef>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Version of a container that a machine has now, as the broker shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Machine id.
    pub machine: String,
    /// Version the broker shows; `None` when the container is not placed on the machine.
    pub version: Option<String>,
    /// Failed install the machine reported as its latest word on the container, from agents;
    /// brokers that show no install outcome leave it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<InstallFailure>,
}

/// An install of a container version that failed on a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallFailure {
    /// Version whose install failed.
    pub version: String,
    /// The machine's explanation, for example `disk full`.
    pub detail: String,
}

/// A write the provider made on the broker, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerWrite {
    /// Operation in the gateway's words, for example `add_machine_tag`.
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// Path relative to the broker's base URL, without query secrets.
    pub path: String,
    /// Machine the write concerns, when it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// HTTP status, or `None` when no response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request id the broker returned (for example `citrix-transactionid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_request_id: Option<String>,
}

/// A broker request that a run would make, as a plan reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRequest {
    /// Operation in the gateway's words, for example `add_machine_tag`.
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// Path pattern relative to the broker's API base, for example `Machines/{machine}/Tags/{tag}`.
    pub path: String,
    /// How many such requests the run makes.
    pub count: u64,
    /// Grouping of the requests, for example `in 3 $batch requests`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Whether these requests travel inside batch requests listed separately, so they add no
    /// HTTP requests of their own.
    #[serde(default)]
    pub batched: bool,
}

/// Result of publishing a container version on a target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Publication {
    /// Broker ids of the gateway-owned objects that make the version launchable.
    pub objects: Vec<String>,
    /// Writes made; empty when everything already existed.
    pub writes: Vec<BrokerWrite>,
}

/// A request to move machines of one target to a container version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRequest {
    /// Target id.
    pub target: String,
    /// Container at the version to place.
    pub container: Container,
    /// Machine ids to change.
    pub machines: Vec<String>,
    /// Activation mode the engine already applied; providers that defer on their own side
    /// (agents) pass it on.
    pub activation: Activation,
}

/// A request to withdraw a container from machines of one target, whatever version they have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnplaceRequest {
    /// Target id.
    pub target: String,
    /// Container id to withdraw.
    pub container_id: String,
    /// Machine ids to change.
    pub machines: Vec<String>,
}

/// Result for one machine of a place or unplace request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum MachineResult {
    /// The broker now shows the requested state.
    Applied,
    /// The broker accepted the change and will apply it later (agent delivery); the engine
    /// observes it.
    Accepted,
    /// Not changed now, for the reason given; the engine tries again later.
    Deferred(String),
    /// Never changed, for the reason given (maintenance mode, draining, unregistered).
    Excluded(String),
    /// The change failed.
    Failed(ProviderErrorBody),
}

/// Outcome of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineOutcome {
    /// Machine id.
    pub machine: String,
    /// Result.
    pub result: MachineResult,
}

/// Per-machine outcomes of a place or unplace call, with the writes it made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlaceOutcome {
    /// One entry per requested machine.
    pub machines: Vec<MachineOutcome>,
    /// Writes made on the broker.
    pub writes: Vec<BrokerWrite>,
}

/// Serializable form of a provider error, used in outcomes and plugin envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderErrorBody {
    /// Error kind.
    pub kind: crate::ErrorKind,
    /// Message for an operator.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
    /// Broker writes the call made before it failed, for the audit trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<BrokerWrite>,
}

/// Broker health as `check` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// Finding of the check, for an operator.
    pub detail: String,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
}

/// Broker health status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Authenticated and reachable.
    Ok,
    /// Reachable, with a problem an operator should look at.
    Degraded,
    /// Not reachable or not authenticated.
    Unreachable,
}
