//! Dry runs: what a rollout of a desired state would do, per provider and target, with no
//! broker write.

use std::collections::HashMap;

use serde::Serialize;
use vdi_contracts::{PlannedRequest, TargetRef};

use super::reconcile::list_all_machines;
use super::waves::{decide, rank, wave_size, Decision};
use super::{Engine, EngineError};
use crate::model::AssignmentSpec;

/// One machine in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMachine {
    /// Machine id.
    pub machine: String,
    /// Machine name.
    pub name: String,
    /// Wave (0 first) that changes it, for machines that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
    /// Reason it is deferred or excluded.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The plan of one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetPlan {
    /// Provider name.
    pub provider: String,
    /// Target as the request names it.
    pub target: String,
    /// Broker id of the target, when found.
    pub target_id: String,
    /// Machines the broker lists.
    pub total: usize,
    /// Machines that already have the version.
    pub already_applied: usize,
    /// Machines a run would change now, with their wave.
    pub affected: Vec<PlannedMachine>,
    /// Machines that would wait for their users' sessions (activation mode).
    pub deferred: Vec<PlannedMachine>,
    /// Machines a run never changes, with the reason.
    pub excluded: Vec<PlannedMachine>,
    /// Broker requests a run would make.
    pub requests: Vec<PlannedRequest>,
    /// HTTP requests those amount to (batched ones excluded).
    pub http_requests: u64,
    /// Estimated seconds, from the provider's rate limit and concurrency.
    pub estimated_seconds: f64,
    /// Provider's configured requests per second.
    pub requests_per_second: f64,
    /// Provider's configured concurrency.
    pub concurrency: u32,
    /// Reason this target cannot be planned, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Plan {
    /// Assignment id the plan is for.
    pub assignment_id: String,
    /// Per target.
    pub targets: Vec<TargetPlan>,
    /// Reason the rollout would wait now (closed window or freeze), when it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// Estimated seconds for the whole rollout: targets run in parallel, waves in sequence
    /// with their pauses.
    pub estimated_seconds: f64,
}

impl Engine {
    /// Plans a desired state without writing to any broker or to the store.
    ///
    /// # Errors
    /// Fails on store errors; broker errors are reported per target.
    pub async fn plan(
        &self,
        assignment_id: &str,
        spec: &AssignmentSpec,
    ) -> Result<Plan, EngineError> {
        let existing = self.store.assignment(assignment_id).await?;
        let mut targets = Vec::new();
        for target in &spec.targets {
            let ranks: HashMap<String, i64> = match &existing {
                Some(_) => self
                    .store
                    .placements(assignment_id, &target.provider, &target.target)
                    .await?
                    .into_iter()
                    .map(|p| (p.machine, p.rank))
                    .collect(),
                None => HashMap::new(),
            };
            targets.push(self.plan_target(assignment_id, spec, target, &ranks).await);
        }
        let blocked = match &existing {
            Some(assignment) => {
                let mut probe = assignment.clone();
                probe.spec = spec.clone();
                probe.state = crate::model::AssignmentState::Pending;
                self.gate(&probe).await?
            }
            None => {
                let probe = crate::model::Assignment {
                    id: assignment_id.to_owned(),
                    revision: 0,
                    state: crate::model::AssignmentState::Pending,
                    spec: spec.clone(),
                    previous: Vec::new(),
                    current_wave: 0,
                    detail: String::new(),
                    wave_started_at: None,
                    next_wave_at: None,
                    actor: String::new(),
                    created_at: self.now(),
                    updated_at: self.now(),
                };
                self.gate(&probe).await?
            }
        };
        let pauses =
            spec.rollout.pause_seconds as f64 * spec.rollout.waves.len().saturating_sub(1) as f64;
        let slowest = targets
            .iter()
            .map(|t| t.estimated_seconds)
            .fold(0.0_f64, f64::max);
        Ok(Plan {
            assignment_id: assignment_id.to_owned(),
            targets,
            blocked,
            estimated_seconds: slowest + pauses,
        })
    }

    async fn plan_target(
        &self,
        assignment_id: &str,
        spec: &AssignmentSpec,
        target: &TargetRef,
        ranks: &HashMap<String, i64>,
    ) -> TargetPlan {
        let mut plan = TargetPlan {
            provider: target.provider.clone(),
            target: target.target.clone(),
            ..TargetPlan::default()
        };
        let Some(entry) = self.registry.get(&target.provider) else {
            plan.error = Some(format!("provider {:?} is not configured", target.provider));
            return plan;
        };
        let limits = entry.provider.describe().limits;
        plan.requests_per_second = limits.requests_per_second;
        plan.concurrency = limits.concurrency;
        let targets = match entry.provider.list_targets().await {
            Ok(targets) => targets,
            Err(error) => {
                plan.error = Some(format!("listing targets failed: {error}"));
                return plan;
            }
        };
        let Some(found) = targets
            .iter()
            .find(|t| t.id == target.target || t.name == target.target)
            .or_else(|| {
                targets
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(&target.target))
            })
        else {
            plan.error = Some(format!(
                "target {:?} is not offered by provider {:?}",
                target.target, target.provider
            ));
            return plan;
        };
        plan.target_id = found.id.clone();
        let container = &spec.container;
        let machines = match list_all_machines(&entry, &found.id).await {
            Ok(machines) => machines,
            Err(error) => {
                plan.error = Some(format!("listing machines failed: {error}"));
                return plan;
            }
        };
        let observed: HashMap<String, String> =
            match entry.provider.observe(&found.id, &container.id).await {
                Ok(observations) => observations
                    .into_iter()
                    .filter_map(|o| o.version.map(|v| (o.machine, v)))
                    .collect(),
                Err(error) => {
                    plan.error = Some(format!("observing machines failed: {error}"));
                    return plan;
                }
            };
        plan.total = machines.len();
        let mut ordered: Vec<(i64, &vdi_contracts::Machine)> = machines
            .iter()
            .map(|m| {
                (
                    ranks
                        .get(&m.id)
                        .copied()
                        .unwrap_or_else(|| rank(assignment_id, &m.id)),
                    m,
                )
            })
            .collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let eligible = ordered
            .iter()
            .filter(|(_, m)| m.state.exclusion_reason().is_none())
            .count();
        let boundaries: Vec<usize> = (0..spec.rollout.waves.len())
            .map(|w| wave_size(&spec.rollout, w, eligible, false))
            .collect();
        let mut position = 0usize;
        let mut to_change = Vec::new();
        for (_, machine) in &ordered {
            let eligible_machine = machine.state.exclusion_reason().is_none();
            let wave = boundaries.iter().position(|b| position < *b);
            if eligible_machine {
                position += 1;
            }
            let entry = |reason: String, wave: Option<usize>| PlannedMachine {
                machine: machine.id.clone(),
                name: machine.name.clone(),
                wave,
                reason,
            };
            match decide(
                machine,
                observed.get(&machine.id).map(String::as_str),
                &container.version,
                true,
                spec.activation,
            ) {
                Decision::Applied => plan.already_applied += 1,
                Decision::Excluded(reason) => plan.excluded.push(entry(reason, None)),
                Decision::Deferred(reason) => plan.deferred.push(entry(reason, wave)),
                Decision::Place | Decision::Wait => {
                    to_change.push(machine.id.clone());
                    plan.affected.push(entry(String::new(), wave));
                }
            }
        }
        match entry.provider.plan(&found.id, container, &to_change).await {
            Ok(requests) => plan.requests = requests,
            Err(error) => plan.error = Some(format!("planning requests failed: {error}")),
        }
        plan.http_requests = plan
            .requests
            .iter()
            .filter(|r| !r.batched)
            .map(|r| r.count)
            .sum();
        let rate = limits.requests_per_second.max(f64::MIN_POSITIVE);
        plan.estimated_seconds = plan.http_requests as f64 / rate;
        plan
    }
}
