//! Deterministic wave order and per-machine decisions.
//!
//! A machine's rank is a hash of the assignment id and the machine id, so the order is stable
//! across restarts and replicas, and differs between assignments (the same machines are not
//! always first). Wave `k` of a target contains the first `ceil(waves[k]% × eligible)` eligible
//! machines in rank order.

use sha2::{Digest, Sha256};
use vdi_contracts::{Activation, Machine, RolloutPolicy};

/// Returns the stable rank of a machine within an assignment.
pub fn rank(assignment: &str, machine: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(assignment.as_bytes());
    hasher.update([0]);
    hasher.update(machine.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Keep ranks non-negative so they sort the same as text and as numbers in every database.
    (u64::from_be_bytes(bytes) >> 1) as i64
}

/// What the engine does with one machine in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The broker already shows the desired version.
    Applied,
    /// Never changed: the machine's state forbids it.
    Excluded(String),
    /// In the current waves but blocked by sessions.
    Deferred(String),
    /// In the current waves: place it now.
    Place,
    /// In a later wave.
    Wait,
}

/// Decides one machine's fate given whether it is inside the current waves.
pub fn decide(
    machine: &Machine,
    observed: Option<&str>,
    desired: &str,
    in_wave: bool,
    activation: Activation,
) -> Decision {
    if observed == Some(desired) {
        return Decision::Applied;
    }
    if let Some(reason) = machine.state.exclusion_reason() {
        return Decision::Excluded(reason);
    }
    if !in_wave {
        return Decision::Wait;
    }
    match activation.blocking_reason(&machine.sessions) {
        Some(reason) => Decision::Deferred(reason),
        None => Decision::Place,
    }
}

/// Returns how many eligible machines of a target are inside waves `0..=wave`; a rollback
/// uses one wave of everything, because returning to a known-good version must be fast.
pub fn wave_size(policy: &RolloutPolicy, wave: usize, eligible: usize, rollback: bool) -> usize {
    if rollback {
        eligible
    } else {
        policy.cumulative_count(wave, eligible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdi_contracts::{MachineState, Session, SessionState};

    fn machine(state: MachineState, sessions: Vec<Session>) -> Machine {
        Machine {
            id: "m1".into(),
            name: "HOSP\\M1".into(),
            dns_name: None,
            target: "dg".into(),
            state,
            sessions,
            containers: Vec::new(),
        }
    }

    fn active() -> Session {
        Session {
            user: "HOSP\\nurse".into(),
            state: SessionState::Active,
        }
    }

    #[test]
    fn rank_is_stable_and_spread() {
        assert_eq!(rank("a", "m1"), rank("a", "m1"));
        assert_ne!(rank("a", "m1"), rank("b", "m1"));
        assert!(rank("a", "m1") >= 0);
    }

    #[test]
    fn applied_wins_over_exclusion() {
        let m = machine(MachineState::Maintenance, vec![]);
        assert_eq!(
            decide(&m, Some("2"), "2", false, Activation::Immediate),
            Decision::Applied
        );
    }

    #[test]
    fn maintenance_is_excluded() {
        let m = machine(MachineState::Maintenance, vec![]);
        let decision = decide(&m, None, "2", true, Activation::Immediate);
        assert!(matches!(decision, Decision::Excluded(_)), "{decision:?}");
    }

    #[test]
    fn when_idle_defers_active_session() {
        let m = machine(MachineState::Ready, vec![active()]);
        let decision = decide(&m, Some("1"), "2", true, Activation::WhenIdle);
        assert!(matches!(decision, Decision::Deferred(_)), "{decision:?}");
    }

    #[test]
    fn immediate_places_despite_session() {
        let m = machine(MachineState::Ready, vec![active()]);
        assert_eq!(
            decide(&m, Some("1"), "2", true, Activation::Immediate),
            Decision::Place
        );
    }

    #[test]
    fn later_wave_waits() {
        let m = machine(MachineState::Ready, vec![]);
        assert_eq!(
            decide(&m, None, "2", false, Activation::Immediate),
            Decision::Wait
        );
    }

    #[test]
    fn wave_sizes_round_up() {
        let policy = RolloutPolicy {
            waves: vec![5.0, 25.0, 100.0],
            ..RolloutPolicy::default()
        };
        assert_eq!(wave_size(&policy, 0, 10, false), 1);
        assert_eq!(wave_size(&policy, 1, 10, false), 3);
        assert_eq!(wave_size(&policy, 2, 10, false), 10);
        assert_eq!(wave_size(&policy, 0, 10, true), 10);
    }
}
