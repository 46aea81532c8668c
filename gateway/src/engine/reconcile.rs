//! Reconciling one target of one assignment: publish, observe, decide, place, record.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use vdi_contracts::{
    BrokerWrite, Container, ContainerRef, InstallFailure, Machine, MachineResult, Observation,
    PlaceRequest, ProviderError, TargetRef, UnplaceRequest,
};

use super::registry::ProviderEntry;
use super::waves::{decide, rank, wave_size, Decision};
use super::{Engine, EngineError};
use crate::model::{Assignment, AssignmentState, Placement, PlacementState};
use crate::store::{AuditRecord, IntentStatus, TargetStatus};

/// Pages read at most from one target listing, so a broker that loops cannot hang a pass.
const MAX_PAGES: usize = 10_000;

/// What one pass found on one target, for the wave decision.
#[derive(Debug, Clone, Default)]
pub(super) struct TargetReport {
    /// Eligible machines inside the current waves.
    pub in_wave: usize,
    /// Of those, machines still pending (not applied, deferred or failed).
    pub in_wave_pending: usize,
    /// Of those, failed machines.
    pub in_wave_failed: usize,
    /// Target-level failure (unknown provider or target, publish failed).
    pub error: Option<String>,
}

impl Engine {
    /// Reconciles one target of an assignment and reports where its current waves stand.
    pub(super) async fn reconcile_target(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
    ) -> Result<TargetReport, EngineError> {
        let Some(entry) = self.registry.get(&target.provider) else {
            return Ok(TargetReport {
                error: Some(format!("provider {:?} is not configured", target.provider)),
                ..TargetReport::default()
            });
        };
        let mut status = match self.target_status(assignment, target, &entry).await? {
            Ok(status) => status,
            Err(message) => {
                return Ok(TargetReport {
                    error: Some(message),
                    ..TargetReport::default()
                })
            }
        };
        let desired = &assignment.spec.container;

        if !status.published.contains(&desired.version) {
            if let Err(error) = self
                .publish(assignment, target, &entry, &status, desired)
                .await?
            {
                status.state = "error".into();
                status.detail = format!("publish {} failed: {error}", desired.version);
                self.store
                    .save_target_status(&assignment.id, &status)
                    .await?;
                return Ok(TargetReport {
                    error: Some(status.detail),
                    ..TargetReport::default()
                });
            }
            status.published.push(desired.version.clone());
            status.state = "ok".into();
            status.detail.clear();
            self.store
                .save_target_status(&assignment.id, &status)
                .await?;
        }

        let machines = match list_all_machines(&entry, &status.target_id).await {
            Ok(machines) => machines,
            Err(error) => {
                return Ok(TargetReport {
                    error: Some(format!("listing machines failed: {error}")),
                    ..TargetReport::default()
                })
            }
        };
        let (observed, failures) =
            match entry.provider.observe(&status.target_id, &desired.id).await {
                Ok(observations) => split_observations(observations),
                Err(error) => {
                    return Ok(TargetReport {
                        error: Some(format!("observing machines failed: {error}")),
                        ..TargetReport::default()
                    })
                }
            };

        let existing: HashMap<String, Placement> = self
            .store
            .placements(&assignment.id, &target.provider, &target.target)
            .await?
            .into_iter()
            .map(|p| (p.machine.clone(), p))
            .collect();
        let mut ordered: Vec<(i64, &Machine)> = machines
            .iter()
            .map(|m| {
                let rank = existing
                    .get(&m.id)
                    .map(|p| p.rank)
                    .unwrap_or_else(|| rank(&assignment.id, &m.id));
                (rank, m)
            })
            .collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));

        let rollback = assignment.state == AssignmentState::RollingBack;
        let eligible = ordered
            .iter()
            .filter(|(_, m)| m.state.exclusion_reason().is_none())
            .count();
        let wave = usize::try_from(assignment.current_wave).unwrap_or(0);
        let in_wave_count = wave_size(&assignment.spec.rollout, wave, eligible, rollback);

        let mut report = TargetReport {
            in_wave: in_wave_count,
            ..TargetReport::default()
        };
        let mut rows: HashMap<String, Placement> = HashMap::new();
        let mut to_place: Vec<String> = Vec::new();
        let mut position = 0usize;
        for (machine_rank, machine) in &ordered {
            let eligible_machine = machine.state.exclusion_reason().is_none();
            let in_wave = eligible_machine && position < in_wave_count;
            if eligible_machine {
                position += 1;
            }
            let observed_version = observed.get(&machine.id).map(String::as_str);
            let previous = existing.get(&machine.id);
            let decision = decide(
                machine,
                observed_version,
                &desired.version,
                in_wave,
                assignment.spec.activation,
            );
            let (state, detail) = match decision {
                Decision::Applied => (PlacementState::Applied, String::new()),
                Decision::Excluded(reason) => (PlacementState::Excluded, reason),
                Decision::Deferred(reason) => (PlacementState::Deferred, reason),
                Decision::Wait => (PlacementState::Pending, "waiting for its wave".into()),
                Decision::Place => {
                    let install_failed = failures
                        .get(&machine.id)
                        .filter(|failure| failure.version == desired.version);
                    let failed_for_good = previous.is_some_and(|p| {
                        p.state == PlacementState::Failed
                            && p.desired_version == desired.version
                            && p.detail.starts_with("permanent:")
                    });
                    if let Some(failure) = install_failed {
                        // The machine's latest word is a failed install of this version: it
                        // counts against the failure budget until it reports the version
                        // installed. Placing again would not make the agent retry.
                        (
                            PlacementState::Failed,
                            format!(
                                "retryable: install_failed: the machine reported: {}",
                                failure.detail
                            ),
                        )
                    } else if failed_for_good {
                        (
                            PlacementState::Failed,
                            previous.map(|p| p.detail.clone()).unwrap_or_default(),
                        )
                    } else {
                        to_place.push(machine.id.clone());
                        (PlacementState::Pending, "placing".into())
                    }
                }
            };
            rows.insert(
                machine.id.clone(),
                Placement {
                    provider: target.provider.clone(),
                    target: target.target.clone(),
                    machine: machine.id.clone(),
                    machine_name: machine.name.clone(),
                    rank: *machine_rank,
                    desired_version: desired.version.clone(),
                    applied_version: observed_version.unwrap_or_default().to_owned(),
                    state,
                    detail,
                    updated_at: Utc::now(),
                },
            );
        }

        let writes = self
            .place_batches(
                assignment,
                target,
                &entry,
                &status.target_id,
                desired,
                &to_place,
            )
            .await?;
        for (machine, result) in writes.outcomes {
            let Some(row) = rows.get_mut(&machine) else {
                continue;
            };
            match result {
                MachineResult::Applied => {
                    row.state = PlacementState::Applied;
                    row.applied_version = desired.version.clone();
                    row.detail.clear();
                }
                MachineResult::Accepted => {
                    row.state = PlacementState::Pending;
                    row.detail = "accepted by the broker; waiting for it to report".into();
                }
                MachineResult::Deferred(reason) => {
                    row.state = PlacementState::Deferred;
                    row.detail = reason;
                }
                MachineResult::Excluded(reason) => {
                    row.state = PlacementState::Excluded;
                    row.detail = reason;
                }
                MachineResult::Failed(error) => {
                    row.state = PlacementState::Failed;
                    let prefix = if error.retryable {
                        "retryable"
                    } else {
                        "permanent"
                    };
                    row.detail = format!("{prefix}: {}: {}", error.kind, error.message);
                }
            }
        }

        // Machines the broker no longer lists keep their row, marked, so nothing vanishes
        // from the record.
        for (machine, placement) in &existing {
            if !rows.contains_key(machine) {
                let mut gone = placement.clone();
                if gone.state != PlacementState::Excluded {
                    gone.state = PlacementState::Excluded;
                    gone.detail = "machine is no longer listed by the broker".into();
                    gone.updated_at = Utc::now();
                    rows.insert(machine.clone(), gone);
                }
            }
        }

        let mut position = 0usize;
        let mut events = Vec::new();
        let mut changed = Vec::new();
        for (_, machine) in &ordered {
            let Some(row) = rows.get(&machine.id) else {
                continue;
            };
            if machine.state.exclusion_reason().is_none() {
                if position < in_wave_count {
                    // A wave completes only when its machines are applied or have failed, so
                    // machines deferred by their users' sessions hold it.
                    match row.state {
                        PlacementState::Pending | PlacementState::Deferred => {
                            report.in_wave_pending += 1;
                        }
                        PlacementState::Failed => report.in_wave_failed += 1,
                        _ => {}
                    }
                }
                position += 1;
            }
        }
        for row in rows.values() {
            let before = existing.get(&row.machine);
            let same = before.is_some_and(|b| {
                b.state == row.state
                    && b.detail == row.detail
                    && b.applied_version == row.applied_version
                    && b.desired_version == row.desired_version
            });
            if !same {
                if before.map(|b| b.state) != Some(row.state) {
                    events.push((
                        machine_event_kind(row.state),
                        json!({
                            "provider": row.provider, "target": row.target,
                            "machine": row.machine, "name": row.machine_name,
                            "version": row.desired_version, "detail": row.detail,
                        }),
                    ));
                }
                changed.push(row.clone());
            }
        }
        self.store.save_placements(&assignment.id, &changed).await?;
        self.store.append_events(&assignment.id, &events).await?;

        self.retire_old_versions(assignment, target, &entry, &mut status, &observed)
            .await?;
        Ok(report)
    }

    /// Finds the target's status row, resolving the target's broker id on first use.
    async fn target_status(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &ProviderEntry,
    ) -> Result<Result<TargetStatus, String>, EngineError> {
        let statuses = self.store.target_statuses(&assignment.id).await?;
        if let Some(status) = statuses
            .into_iter()
            .find(|s| s.provider == target.provider && s.target == target.target)
        {
            return Ok(Ok(status));
        }
        let targets = match entry.provider.list_targets().await {
            Ok(targets) => targets,
            Err(error) => return Ok(Err(format!("listing targets failed: {error}"))),
        };
        let found = targets
            .iter()
            .find(|t| t.id == target.target || t.name == target.target)
            .or_else(|| {
                targets
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(&target.target))
            });
        let Some(found) = found else {
            return Ok(Err(format!(
                "target {:?} is not offered by provider {:?}",
                target.target, target.provider
            )));
        };
        let status = TargetStatus {
            provider: target.provider.clone(),
            target: target.target.clone(),
            target_id: found.id.clone(),
            published: Vec::new(),
            state: "ok".into(),
            detail: String::new(),
        };
        self.store
            .save_target_status(&assignment.id, &status)
            .await?;
        Ok(Ok(status))
    }

    async fn publish(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &ProviderEntry,
        status: &TargetStatus,
        container: &Container,
    ) -> Result<Result<(), ProviderError>, EngineError> {
        let intent = self
            .store
            .begin_intent(
                &assignment.id,
                assignment.revision,
                &target.provider,
                &target.target,
                "publish",
                &json!({"container": container.id, "version": container.version}),
            )
            .await?;
        let result = entry.provider.publish(&status.target_id, container).await;
        match result {
            Ok(publication) => {
                self.audit(assignment, target, &publication.writes).await?;
                self.store
                    .finish_intent(
                        intent,
                        IntentStatus::Done,
                        &json!({"objects": publication.objects}),
                    )
                    .await?;
                tracing::info!(
                    assignment = %assignment.id, provider = %target.provider,
                    target = %target.target, version = %container.version,
                    "Published container version."
                );
                Ok(Ok(()))
            }
            Err(error) => {
                // Writes made before the failure are audited like those of a success.
                self.audit(assignment, target, &error.writes).await?;
                let mut body = error.to_body();
                body.writes.clear();
                self.store
                    .finish_intent(intent, IntentStatus::Failed, &json!({"error": body}))
                    .await?;
                tracing::warn!(
                    assignment = %assignment.id, provider = %target.provider,
                    target = %target.target, error = %error, writes = error.writes.len(),
                    "Publishing failed."
                );
                Ok(Err(error))
            }
        }
    }

    /// Places machines in batches of the provider's size, several batches at a time.
    async fn place_batches(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &Arc<ProviderEntry>,
        target_id: &str,
        container: &Container,
        machines: &[String],
    ) -> Result<PlaceResults, EngineError> {
        let mut results = PlaceResults::default();
        if machines.is_empty() {
            return Ok(results);
        }
        let limits = entry.provider.describe().limits;
        let batch = usize::try_from(limits.max_batch.max(1)).unwrap_or(1);
        let parallel = usize::try_from(limits.concurrency.clamp(1, 16)).unwrap_or(1);
        let batches: Vec<Vec<String>> = machines.chunks(batch).map(<[String]>::to_vec).collect();
        // Collected before streaming, as in `reconcile_targets`, to keep the task `Send`.
        let futures: Vec<futures::future::BoxFuture<'_, _>> = batches
            .into_iter()
            .map(|chunk| {
                let request = PlaceRequest {
                    target: target_id.to_owned(),
                    container: container.clone(),
                    machines: chunk,
                    activation: assignment.spec.activation,
                };
                let future: futures::future::BoxFuture<'_, _> =
                    Box::pin(self.place_one_batch(assignment, target, entry, request));
                future
            })
            .collect();
        let mut stream = futures::stream::iter(futures).buffer_unordered(parallel);
        while let Some(outcome) = stream.next().await {
            results.outcomes.extend(outcome?);
        }
        Ok(results)
    }

    async fn place_one_batch(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &ProviderEntry,
        request: PlaceRequest,
    ) -> Result<Vec<(String, MachineResult)>, EngineError> {
        let intent = self
            .store
            .begin_intent(
                &assignment.id,
                assignment.revision,
                &target.provider,
                &target.target,
                "place",
                &json!({"version": request.container.version, "machines": request.machines}),
            )
            .await?;
        match entry.provider.place(&request).await {
            Ok(outcome) => {
                self.audit(assignment, target, &outcome.writes).await?;
                let failed = outcome
                    .machines
                    .iter()
                    .filter(|m| matches!(m.result, MachineResult::Failed(_)))
                    .count();
                self.store
                    .finish_intent(
                        intent,
                        IntentStatus::Done,
                        &json!({"machines": outcome.machines.len(), "failed": failed}),
                    )
                    .await?;
                let mut results: Vec<(String, MachineResult)> = outcome
                    .machines
                    .into_iter()
                    .map(|m| (m.machine, m.result))
                    .collect();
                let answered: HashSet<String> = results.iter().map(|(m, _)| m.clone()).collect();
                for machine in &request.machines {
                    if !answered.contains(machine) {
                        results.push((
                            machine.clone(),
                            MachineResult::Failed(
                                ProviderError::internal("the provider returned no outcome")
                                    .with_retryable(true)
                                    .to_body(),
                            ),
                        ));
                    }
                }
                Ok(results)
            }
            Err(error) => {
                tracing::warn!(
                    assignment = %assignment.id, provider = %target.provider,
                    target = %target.target, machines = request.machines.len(),
                    error = %error, "Placing a batch failed."
                );
                self.store
                    .finish_intent(
                        intent,
                        IntentStatus::Failed,
                        &json!({"error": error.to_body()}),
                    )
                    .await?;
                let body = error.to_body();
                Ok(request
                    .machines
                    .into_iter()
                    .map(|m| (m, MachineResult::Failed(body.clone())))
                    .collect())
            }
        }
    }

    /// Unpublishes versions that are neither desired nor the rollback version and that no
    /// machine shows any more.
    async fn retire_old_versions(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &ProviderEntry,
        status: &mut TargetStatus,
        observed: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let mut keep: HashSet<&str> = HashSet::new();
        keep.insert(&assignment.spec.container.version);
        if let Some(previous) = assignment.previous.first() {
            keep.insert(&previous.version);
        }
        let in_use: HashSet<&str> = observed.values().map(String::as_str).collect();
        let retire: Vec<String> = status
            .published
            .iter()
            .filter(|v| !keep.contains(v.as_str()) && !in_use.contains(v.as_str()))
            .cloned()
            .collect();
        for version in retire {
            if self
                .unpublish(assignment, target, entry, &status.target_id, &version)
                .await?
            {
                status.published.retain(|v| *v != version);
                self.store
                    .save_target_status(&assignment.id, status)
                    .await?;
            }
        }
        Ok(())
    }

    /// Unpublishes one version; returns whether every object is gone.
    async fn unpublish(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        entry: &ProviderEntry,
        target_id: &str,
        version: &str,
    ) -> Result<bool, EngineError> {
        let reference = ContainerRef {
            id: assignment.spec.container.id.clone(),
            version: version.to_owned(),
        };
        let intent = self
            .store
            .begin_intent(
                &assignment.id,
                assignment.revision,
                &target.provider,
                &target.target,
                "unpublish",
                &json!({"container": reference.id, "version": version}),
            )
            .await?;
        match entry.provider.unpublish(target_id, &reference).await {
            Ok(publication) => {
                self.audit(assignment, target, &publication.writes).await?;
                self.store
                    .finish_intent(
                        intent,
                        IntentStatus::Done,
                        &json!({"remaining": publication.objects}),
                    )
                    .await?;
                Ok(publication.objects.is_empty())
            }
            Err(error) => {
                tracing::warn!(
                    assignment = %assignment.id, provider = %target.provider,
                    target = %target.target, version, error = %error, "Unpublishing failed."
                );
                self.store
                    .finish_intent(
                        intent,
                        IntentStatus::Failed,
                        &json!({"error": error.to_body()}),
                    )
                    .await?;
                Ok(false)
            }
        }
    }

    /// Withdraws the container from one target: unplace every machine, then unpublish every
    /// version. Returns `Ok(None)` when the target is clean, or what still blocks it.
    pub(super) async fn remove_target(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
    ) -> Result<Option<String>, EngineError> {
        let Some(entry) = self.registry.get(&target.provider) else {
            return Ok(Some(format!(
                "provider {:?} is not configured",
                target.provider
            )));
        };
        let statuses = self.store.target_statuses(&assignment.id).await?;
        let Some(mut status) = statuses
            .into_iter()
            .find(|s| s.provider == target.provider && s.target == target.target)
        else {
            // Never resolved, so nothing was published or placed.
            self.store
                .delete_placements(&assignment.id, &target.provider, &target.target)
                .await?;
            return Ok(None);
        };
        let container = &assignment.spec.container;
        let observed = match entry
            .provider
            .observe(&status.target_id, &container.id)
            .await
        {
            Ok(observed) => observed,
            Err(error) => return Ok(Some(format!("observing machines failed: {error}"))),
        };
        let placed: Vec<String> = observed
            .into_iter()
            .filter(|o| o.version.is_some())
            .map(|o| o.machine)
            .collect();
        let batch = usize::try_from(entry.provider.describe().limits.max_batch.max(1)).unwrap_or(1);
        for chunk in placed.chunks(batch) {
            let request = UnplaceRequest {
                target: status.target_id.clone(),
                container_id: container.id.clone(),
                machines: chunk.to_vec(),
            };
            let intent = self
                .store
                .begin_intent(
                    &assignment.id,
                    assignment.revision,
                    &target.provider,
                    &target.target,
                    "unplace",
                    &json!({"container": container.id, "machines": chunk}),
                )
                .await?;
            match entry.provider.unplace(&request).await {
                Ok(outcome) => {
                    self.audit(assignment, target, &outcome.writes).await?;
                    self.store
                        .finish_intent(
                            intent,
                            IntentStatus::Done,
                            &json!({"machines": chunk.len()}),
                        )
                        .await?;
                }
                Err(error) => {
                    self.store
                        .finish_intent(
                            intent,
                            IntentStatus::Failed,
                            &json!({"error": error.to_body()}),
                        )
                        .await?;
                    return Ok(Some(format!("unplacing failed: {error}")));
                }
            }
        }

        let mut versions: Vec<String> = status.published.clone();
        for version in std::iter::once(&container.version)
            .chain(assignment.previous.iter().map(|c| &c.version))
        {
            if !versions.contains(version) {
                versions.push(version.clone());
            }
        }
        let mut remaining = Vec::new();
        for version in versions {
            if self
                .unpublish(assignment, target, &entry, &status.target_id, &version)
                .await?
            {
                status.published.retain(|v| *v != version);
            } else {
                remaining.push(version);
            }
        }
        if !remaining.is_empty() {
            status.detail = format!(
                "versions {remaining:?} still have objects on the broker (open sessions); retrying"
            );
            self.store
                .save_target_status(&assignment.id, &status)
                .await?;
            return Ok(Some(status.detail));
        }
        status.state = "removed".into();
        status.detail.clear();
        self.store
            .save_target_status(&assignment.id, &status)
            .await?;
        self.store
            .delete_placements(&assignment.id, &target.provider, &target.target)
            .await?;
        Ok(None)
    }

    /// Appends one audit record per broker write.
    async fn audit(
        &self,
        assignment: &Assignment,
        target: &TargetRef,
        writes: &[BrokerWrite],
    ) -> Result<(), EngineError> {
        let records: Vec<AuditRecord> = writes
            .iter()
            .map(|w| AuditRecord {
                time: String::new(),
                actor: assignment.actor.clone(),
                assignment: assignment.id.clone(),
                provider: target.provider.clone(),
                target: target.target.clone(),
                machine: w.machine.clone().unwrap_or_default(),
                operation: w.operation.clone(),
                method: w.method.clone(),
                path: w.path.clone(),
                result: match w.status {
                    Some(code) if (200..300).contains(&code) => "ok".into(),
                    Some(code) => format!("failed: HTTP {code}"),
                    None => "failed: no response".into(),
                },
                broker_request_id: w.broker_request_id.clone().unwrap_or_default(),
            })
            .collect();
        self.store.append_audit(&records).await?;
        Ok(())
    }
}

/// Outcomes gathered from every batch of a pass.
#[derive(Debug, Default)]
struct PlaceResults {
    outcomes: Vec<(String, MachineResult)>,
}

fn machine_event_kind(state: PlacementState) -> &'static str {
    match state {
        PlacementState::Applied => "machine.applied",
        PlacementState::Pending => "machine.pending",
        PlacementState::Deferred => "machine.deferred",
        PlacementState::Failed => "machine.failed",
        PlacementState::Excluded => "machine.excluded",
    }
}

/// Lists every machine of a target by following cursors.
pub(super) async fn list_all_machines(
    entry: &ProviderEntry,
    target_id: &str,
) -> Result<Vec<Machine>, ProviderError> {
    let mut machines = Vec::new();
    let mut cursor = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = entry
            .provider
            .list_machines(target_id, cursor.take())
            .await?;
        machines.extend(page.items);
        match page.next_cursor {
            Some(next) if !seen.insert(next.clone()) => {
                return Err(ProviderError::invalid(format!(
                    "provider {} repeated the paging cursor {next:?}",
                    entry.name
                )));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(machines),
        }
    }
    Err(ProviderError::invalid(format!(
        "provider {} returned more than {MAX_PAGES} pages of machines",
        entry.name
    )))
}

/// Splits observations into the version each machine shows and the failed installs machines
/// reported.
fn split_observations(
    observations: Vec<Observation>,
) -> (HashMap<String, String>, HashMap<String, InstallFailure>) {
    let mut versions = HashMap::new();
    let mut failures = HashMap::new();
    for observation in observations {
        if let Some(version) = observation.version {
            versions.insert(observation.machine.clone(), version);
        }
        if let Some(failure) = observation.failure {
            failures.insert(observation.machine, failure);
        }
    }
    (versions, failures)
}
