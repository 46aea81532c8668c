//! The rollout engine: turns stored assignments into provider calls, wave by wave.
//!
//! One loop runs passes: every active assignment is reconciled target by target (targets in
//! parallel), then its wave is judged: continue, pause, roll back or declare convergence. A
//! pass is also what tests drive directly. Before every broker write the engine journals an
//! intent; an intent left pending by a crash is resolved on start by observing the broker,
//! because every provider operation is idempotent and driven by the observed state.

mod clock;
pub mod plan;
mod reconcile;
pub mod registry;
pub mod rollback;
mod waves;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::FreezeConfig;
use crate::model::{Assignment, AssignmentState};
use crate::store::{IntentStatus, Store, StoreError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use registry::{ProviderEntry, ProviderSource, Registry};
pub use waves::rank;

#[cfg(test)]
mod tests;

/// Failure of the engine itself (the store), as opposed to a broker failure, which is
/// recorded on the machine or target and retried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Engine timing and parallelism.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Time between passes when nothing wakes the engine.
    pub interval: Duration,
    /// Lease duration on a target; another replica takes over after it expires.
    pub lease_seconds: i64,
    /// Targets reconciled at the same time.
    pub max_parallel_targets: usize,
    /// How often a converged assignment with nothing left to do is checked for drift.
    pub drift_check: Duration,
    /// How often a converged assignment whose only open machines are deferred by sessions is
    /// checked again.
    pub deferred_recheck: Duration,
    /// Name of this replica in leases.
    pub owner: String,
    /// Source of the current time for windows, freezes and pauses between waves.
    pub clock: Arc<dyn Clock>,
    /// Change freezes from the configuration.
    pub freezes: Vec<FreezeConfig>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            lease_seconds: 30,
            max_parallel_targets: 8,
            drift_check: Duration::from_secs(300),
            deferred_recheck: Duration::from_secs(15),
            owner: format!("gateway-{}", uuid::Uuid::new_v4().simple()),
            clock: Arc::new(SystemClock),
            freezes: Vec::new(),
        }
    }
}

/// The rollout engine.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    registry: Arc<Registry>,
    settings: EngineSettings,
    wake: Notify,
    last_full_check: Mutex<HashMap<(String, i64), Instant>>,
}

impl Engine {
    /// Creates an engine.
    pub fn new(store: Store, registry: Arc<Registry>, settings: EngineSettings) -> Self {
        Self {
            store,
            registry,
            settings,
            wake: Notify::new(),
            last_full_check: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the provider registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Returns the configured change freezes.
    pub fn freezes(&self) -> &[FreezeConfig] {
        &self.settings.freezes
    }

    /// Returns the engine's current time.
    pub fn now(&self) -> chrono::DateTime<Utc> {
        self.settings.clock.now()
    }

    /// Returns why the assignment may not change machines now (an active freeze that is not
    /// overridden, or a closed maintenance window), or `None` when it may. Rollbacks pass
    /// both: they return machines to a version that was already approved and running.
    ///
    /// # Errors
    /// Fails on store errors.
    pub async fn gate(&self, assignment: &Assignment) -> Result<Option<String>, EngineError> {
        if assignment.state == AssignmentState::RollingBack {
            return Ok(None);
        }
        let now = self.now();
        let overridden = self
            .store
            .freeze_overrides(&assignment.id, assignment.revision)
            .await?;
        for freeze in self.settings.freezes.iter().filter(|f| f.is_active(now)) {
            if overridden.contains(&freeze.name) {
                continue;
            }
            let covered = assignment.spec.targets.iter().any(|target| {
                let environment = self
                    .registry
                    .get(&target.provider)
                    .map(|e| e.environment.clone())
                    .unwrap_or_default();
                freeze.covers(&target.provider, &environment)
            });
            if covered {
                return Ok(Some(format!(
                    "change freeze {} is in force until {}{}",
                    freeze.name,
                    freeze.end.to_rfc3339(),
                    if freeze.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", freeze.reason)
                    }
                )));
            }
        }
        if let Some(window) = &assignment.spec.window {
            if !window::is_open(window, now) {
                let next = window::next_opening(window, now)
                    .map_or_else(|| "never within a week".to_owned(), |t| t.to_rfc3339());
                return Ok(Some(format!(
                    "outside the maintenance window ({}); it opens next at {next}",
                    window.timezone
                )));
            }
        }
        Ok(None)
    }

    /// Starts a pass now instead of at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs passes until `shutdown` is cancelled: first resolves intents a crash left open,
    /// then reconciles every interval or when woken.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if let Err(error) = self.recover().await {
            tracing::error!(error = %error, "Resolving interrupted intents failed; continuing.");
        }
        loop {
            if let Err(error) = self.pass().await {
                tracing::error!(error = %error, "Engine pass failed; retrying at the next interval.");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.interval) => {}
            }
        }
        tracing::info!("Engine stopped.");
    }

    /// Closes intents left pending by a crash. The broker state they may have changed is read
    /// back by the next pass, which only writes what still differs, so nothing is repeated
    /// blindly.
    ///
    /// # Errors
    /// Fails on store errors.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let pending = self.store.pending_intents().await?;
        for intent in &pending {
            tracing::warn!(
                intent = intent.id, assignment = %intent.assignment, provider = %intent.provider,
                target = %intent.target, operation = %intent.operation,
                "Intent was interrupted; resolving it by observing the broker."
            );
            self.store
                .finish_intent(
                    intent.id,
                    IntentStatus::Superseded,
                    &serde_json::json!({"resolved_by": "observation on restart"}),
                )
                .await?;
        }
        Ok(pending.len())
    }

    /// Reconciles every active assignment once.
    ///
    /// # Errors
    /// Fails on store errors; broker errors are recorded, not returned.
    pub async fn pass(&self) -> Result<(), EngineError> {
        for assignment in self.store.active_assignments().await? {
            self.reconcile_assignment(assignment).await?;
        }
        Ok(())
    }

    async fn reconcile_assignment(&self, mut assignment: Assignment) -> Result<(), EngineError> {
        if assignment.state == AssignmentState::Removing {
            return self.remove(&assignment).await;
        }
        if let Some(reason) = self.gate(&assignment).await? {
            // Nothing is written to any broker while a freeze or a closed window holds.
            if matches!(
                assignment.state,
                AssignmentState::Pending | AssignmentState::RollingOut
            ) || (assignment.state == AssignmentState::WaitingForWindow
                && assignment.detail != reason)
            {
                self.store
                    .set_assignment_state(
                        &assignment.id,
                        assignment.revision,
                        AssignmentState::WaitingForWindow,
                        &reason,
                    )
                    .await?;
            }
            return Ok(());
        }
        self.withdraw_dropped_targets(&assignment).await?;
        if assignment.state == AssignmentState::Pending {
            self.store
                .set_wave(&assignment.id, assignment.revision, 0)
                .await?;
        }
        if matches!(
            assignment.state,
            AssignmentState::Pending | AssignmentState::WaitingForWindow
        ) {
            self.store
                .set_assignment_state(
                    &assignment.id,
                    assignment.revision,
                    AssignmentState::RollingOut,
                    "",
                )
                .await?;
            assignment.state = AssignmentState::RollingOut;
        }
        if self.can_skip(&assignment).await? {
            return Ok(());
        }

        let reports = self.reconcile_targets(&assignment).await?;
        let key = (assignment.id.clone(), assignment.revision);
        self.last_full_check
            .lock()
            .await
            .insert(key, Instant::now());

        let errors: Vec<String> = reports.iter().filter_map(|r| r.error.clone()).collect();
        let pending: usize = reports.iter().map(|r| r.in_wave_pending).sum();
        let failed: usize = reports.iter().map(|r| r.in_wave_failed).sum();
        let in_wave: usize = reports.iter().map(|r| r.in_wave).sum();
        if !errors.is_empty() {
            tracing::warn!(assignment = %assignment.id, errors = ?errors, "Targets need attention.");
        }
        if pending > 0 || !errors.is_empty() {
            return Ok(());
        }

        let percent = if in_wave == 0 {
            0.0
        } else {
            failed as f64 * 100.0 / in_wave as f64
        };
        let policy = &assignment.spec.rollout;
        let rolling_back = assignment.state == AssignmentState::RollingBack;
        if failed > 0 && percent > policy.max_failure_percent && !rolling_back {
            return self
                .over_budget(&assignment, failed, in_wave, percent)
                .await;
        }

        let last_wave = i64::try_from(policy.waves.len()).unwrap_or(1) - 1;
        if !rolling_back
            && assignment.current_wave < last_wave
            && matches!(assignment.state, AssignmentState::RollingOut)
        {
            return self.advance_wave(&assignment).await;
        }

        let done = if rolling_back || assignment.state == AssignmentState::RolledBack {
            AssignmentState::RolledBack
        } else {
            AssignmentState::Converged
        };
        if assignment.state != done {
            let detail = if rolling_back {
                // Keep saying why the rollback happened.
                assignment.detail.clone()
            } else if failed > 0 {
                format!("{failed} machine(s) failed within the budget")
            } else {
                String::new()
            };
            self.store
                .set_assignment_state(&assignment.id, assignment.revision, done, &detail)
                .await?;
            tracing::info!(assignment = %assignment.id, state = done.as_str(), "Rollout finished.");
        }
        Ok(())
    }

    /// Returns whether a finished assignment has nothing to do until its next drift check.
    async fn can_skip(&self, assignment: &Assignment) -> Result<bool, EngineError> {
        if !matches!(
            assignment.state,
            AssignmentState::Converged | AssignmentState::RolledBack
        ) {
            return Ok(false);
        }
        let (progress, _) = self.store.progress(&assignment.id).await?;
        if progress.pending + progress.failed > 0 {
            return Ok(false);
        }
        let wait = if progress.deferred > 0 {
            self.settings.deferred_recheck
        } else {
            self.settings.drift_check
        };
        let key = (assignment.id.clone(), assignment.revision);
        let recent = self
            .last_full_check
            .lock()
            .await
            .get(&key)
            .is_some_and(|at| at.elapsed() < wait);
        Ok(recent)
    }

    async fn reconcile_targets(
        &self,
        assignment: &Assignment,
    ) -> Result<Vec<reconcile::TargetReport>, EngineError> {
        let parallel = self.settings.max_parallel_targets.max(1);
        type TargetFuture<'a> =
            futures::future::BoxFuture<'a, Result<Option<reconcile::TargetReport>, EngineError>>;
        // The futures are collected before streaming them: a closure inside the stream type
        // makes rustc unable to prove the engine task `Send`.
        let futures: Vec<TargetFuture<'_>> = assignment
            .spec
            .targets
            .iter()
            .map(|target| -> TargetFuture<'_> {
                Box::pin(async move {
                    if !self.lease(assignment, target).await? {
                        return Ok(None);
                    }
                    let span = tracing::info_span!(
                        "reconcile", assignment = %assignment.id, provider = %target.provider,
                        target = %target.target
                    );
                    self.reconcile_target(assignment, target)
                        .instrument(span)
                        .await
                        .map(Some)
                })
            })
            .collect();
        let results: Vec<Result<Option<reconcile::TargetReport>, EngineError>> =
            futures::stream::iter(futures)
                .buffer_unordered(parallel)
                .collect()
                .await;
        let mut reports = Vec::new();
        for result in results {
            match result? {
                Some(report) => reports.push(report),
                // Another replica owns this target; count it as pending so the wave waits.
                None => reports.push(reconcile::TargetReport {
                    in_wave_pending: 1,
                    ..reconcile::TargetReport::default()
                }),
            }
        }
        Ok(reports)
    }

    async fn lease(
        &self,
        assignment: &Assignment,
        target: &vdi_contracts::TargetRef,
    ) -> Result<bool, EngineError> {
        Ok(self
            .store
            .acquire_lease(
                &assignment.id,
                &target.provider,
                &target.target,
                &self.settings.owner,
                self.settings.lease_seconds,
            )
            .await?)
    }

    async fn over_budget(
        &self,
        assignment: &Assignment,
        failed: usize,
        in_wave: usize,
        percent: f64,
    ) -> Result<(), EngineError> {
        let policy = &assignment.spec.rollout;
        let reason = format!(
            "{failed} of {in_wave} machines failed ({percent:.1}%), over the budget of {}%",
            policy.max_failure_percent
        );
        // The same rule as an operator's rollback: never back to a version a rollback left.
        let history = rollback::rollback_history(&self.store, assignment).await?;
        match rollback::rollback_target(assignment, &history, None) {
            Ok(previous) if policy.auto_rollback => {
                tracing::warn!(
                    assignment = %assignment.id, to = %previous.version, reason = %reason,
                    "Rolling back automatically."
                );
                self.store
                    .start_rollback(assignment, previous, "engine", &reason)
                    .await?;
                self.wake();
            }
            target => {
                let detail = match target {
                    Err(refusal) if policy.auto_rollback => {
                        format!("{reason}; not rolled back ({}), paused", refusal.message)
                    }
                    _ => format!("{reason}; paused"),
                };
                tracing::warn!(assignment = %assignment.id, detail = %detail, "Pausing rollout.");
                self.store
                    .set_assignment_state(
                        &assignment.id,
                        assignment.revision,
                        AssignmentState::Paused,
                        &detail,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn advance_wave(&self, assignment: &Assignment) -> Result<(), EngineError> {
        let now = self.now();
        let pause = chrono::Duration::seconds(
            i64::try_from(assignment.spec.rollout.pause_seconds).unwrap_or(i64::MAX / 1000),
        );
        match assignment.next_wave_at {
            None if pause > chrono::Duration::zero() => {
                self.store
                    .schedule_next_wave(
                        &assignment.id,
                        assignment.revision,
                        assignment.current_wave,
                        now + pause,
                    )
                    .await?;
            }
            Some(at) if at > now => {}
            _ => {
                if pause == chrono::Duration::zero() {
                    self.store
                        .schedule_next_wave(
                            &assignment.id,
                            assignment.revision,
                            assignment.current_wave,
                            now,
                        )
                        .await?;
                }
                let next = assignment.current_wave + 1;
                tracing::info!(assignment = %assignment.id, wave = next, "Starting next wave.");
                self.store
                    .set_wave(&assignment.id, assignment.revision, next)
                    .await?;
                self.wake();
            }
        }
        Ok(())
    }

    /// Withdraws the container from targets an earlier revision had and the current one
    /// dropped, so a narrowed assignment does not leave machines with an unmanaged version.
    async fn withdraw_dropped_targets(&self, assignment: &Assignment) -> Result<(), EngineError> {
        let dropped: Vec<vdi_contracts::TargetRef> = self
            .store
            .target_statuses(&assignment.id)
            .await?
            .into_iter()
            .filter(|status| status.state != "removed")
            .filter(|status| {
                !assignment
                    .spec
                    .targets
                    .iter()
                    .any(|t| t.provider == status.provider && t.target == status.target)
            })
            .map(|status| vdi_contracts::TargetRef {
                provider: status.provider,
                target: status.target,
            })
            .collect();
        for target in dropped {
            if !self.lease(assignment, &target).await? {
                continue;
            }
            match self.remove_target(assignment, &target).await? {
                None => {
                    tracing::info!(
                        assignment = %assignment.id, provider = %target.provider,
                        target = %target.target,
                        "Withdrew the container from a target the assignment no longer names."
                    );
                    self.store
                        .append_event(
                            &assignment.id,
                            "target.withdrawn",
                            &serde_json::json!({"provider": target.provider, "target": target.target}),
                        )
                        .await?;
                }
                Some(reason) => tracing::warn!(
                    assignment = %assignment.id, provider = %target.provider,
                    target = %target.target, reason = %reason,
                    "Withdrawing the container from a dropped target is not finished."
                ),
            }
        }
        Ok(())
    }

    async fn remove(&self, assignment: &Assignment) -> Result<(), EngineError> {
        let mut blocked = Vec::new();
        for target in &assignment.spec.targets {
            if !self.lease(assignment, target).await? {
                blocked.push(format!(
                    "{}/{}: owned by another replica",
                    target.provider, target.target
                ));
                continue;
            }
            if let Some(reason) = self.remove_target(assignment, target).await? {
                blocked.push(format!("{}/{}: {reason}", target.provider, target.target));
            }
        }
        if blocked.is_empty() {
            self.store
                .set_assignment_state(
                    &assignment.id,
                    assignment.revision,
                    AssignmentState::Removed,
                    "",
                )
                .await?;
            tracing::info!(assignment = %assignment.id, "Assignment removed from every target.");
        } else {
            tracing::warn!(assignment = %assignment.id, blocked = ?blocked, "Removal not finished.");
        }
        Ok(())
    }
}
