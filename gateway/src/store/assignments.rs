//! Assignments and their revisions.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_text, parse_time, time_text, Store, StoreError};
use crate::model::{Assignment, AssignmentSpec, AssignmentState};
use vdi_contracts::Container;

const COLUMNS: &str = "id, revision, state, spec, previous_versions, current_wave, paused, \
                       detail, wave_started_at, next_wave_at, actor, created_at, updated_at";

fn decode(row: &AnyRow) -> Result<Assignment, StoreError> {
    let get = |column: &'static str| -> Result<String, StoreError> {
        row.try_get::<String, _>(column)
            .map_err(StoreError::query("decode assignment"))
    };
    let state_text = get("state")?;
    let state = AssignmentState::parse(&state_text).ok_or_else(|| StoreError::Corrupt {
        what: "assignment state",
        message: state_text.clone(),
    })?;
    let spec: AssignmentSpec =
        serde_json::from_str(&get("spec")?).map_err(StoreError::corrupt("assignment spec"))?;
    let previous: Vec<Container> = serde_json::from_str(&get("previous_versions")?)
        .map_err(StoreError::corrupt("previous versions"))?;
    let optional_time = |column: &'static str| -> Result<_, StoreError> {
        let text: Option<String> = row
            .try_get(column)
            .map_err(StoreError::query("decode assignment"))?;
        text.as_deref().map(parse_time).transpose()
    };
    Ok(Assignment {
        id: get("id")?,
        revision: row
            .try_get("revision")
            .map_err(StoreError::query("decode assignment"))?,
        state,
        spec,
        previous,
        current_wave: row
            .try_get("current_wave")
            .map_err(StoreError::query("decode assignment"))?,
        detail: get("detail")?,
        wave_started_at: optional_time("wave_started_at")?,
        next_wave_at: optional_time("next_wave_at")?,
        actor: get("actor")?,
        created_at: parse_time(&get("created_at")?)?,
        updated_at: parse_time(&get("updated_at")?)?,
    })
}

/// Result of storing a desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// A new revision was stored.
    Changed(Assignment),
    /// The body equals the current desired state.
    Unchanged(Assignment),
    /// The assignment is being removed and cannot change.
    Removing(Assignment),
}

/// Maximum earlier versions kept per assignment for rollback.
const MAX_PREVIOUS: usize = 10;

impl Store {
    /// Reads one assignment.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn assignment(&self, id: &str) -> Result<Option<Assignment>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM assignments WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("read assignment"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Lists assignments ordered by id, starting after `after`, at most `limit`.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn assignments(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Assignment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM assignments WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list assignments"))?;
        rows.iter().map(decode).collect()
    }

    /// Lists the assignments the engine still has work on.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn active_assignments(&self) -> Result<Vec<Assignment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM assignments WHERE state NOT IN ('paused', 'failed', 'removed') \
             ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list active assignments"))?;
        rows.iter().map(decode).collect()
    }

    /// Stores a desired state: a new revision when it differs from the current one. A new
    /// container version pushes the old container onto the rollback list.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn put_assignment(
        &self,
        id: &str,
        spec: &AssignmentSpec,
        actor: &str,
    ) -> Result<PutOutcome, StoreError> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin put"))?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM assignments WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("read assignment"))?;
        let current = row.as_ref().map(decode).transpose()?;
        let now = now_text();
        let spec_text = serde_json::to_string(spec).map_err(StoreError::corrupt("spec"))?;

        let (revision, previous, reason) = match &current {
            Some(existing) if existing.state == AssignmentState::Removing => {
                return Ok(PutOutcome::Removing(existing.clone()));
            }
            Some(existing)
                if existing.spec == *spec && existing.state != AssignmentState::Removed =>
            {
                return Ok(PutOutcome::Unchanged(existing.clone()));
            }
            Some(existing) => {
                let mut previous = existing.previous.clone();
                if existing.spec.container.version != spec.container.version
                    && existing.state != AssignmentState::Removed
                {
                    previous.retain(|c| c.version != existing.spec.container.version);
                    previous.insert(0, existing.spec.container.clone());
                }
                previous.retain(|c| c.version != spec.container.version);
                previous.truncate(MAX_PREVIOUS);
                (existing.revision + 1, previous, "update")
            }
            None => (1, Vec::new(), "create"),
        };
        let previous_text =
            serde_json::to_string(&previous).map_err(StoreError::corrupt("previous versions"))?;

        sqlx::query(
            "INSERT INTO revisions (assignment_id, revision, spec, reason, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(revision)
        .bind(&spec_text)
        .bind(reason)
        .bind(actor)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("insert revision"))?;

        if current.is_some() {
            sqlx::query(
                "UPDATE assignments SET revision = $1, state = 'pending', spec = $2, \
                 previous_versions = $3, current_wave = 0, paused = 0, detail = '', \
                 wave_started_at = NULL, next_wave_at = NULL, actor = $4, updated_at = $5 \
                 WHERE id = $6",
            )
            .bind(revision)
            .bind(&spec_text)
            .bind(&previous_text)
            .bind(actor)
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("update assignment"))?;
        } else {
            sqlx::query(
                "INSERT INTO assignments (id, revision, state, spec, previous_versions, \
                 current_wave, paused, detail, wave_started_at, next_wave_at, actor, created_at, \
                 updated_at) VALUES ($1, $2, 'pending', $3, $4, 0, 0, '', NULL, NULL, $5, $6, $6)",
            )
            .bind(id)
            .bind(revision)
            .bind(&spec_text)
            .bind(&previous_text)
            .bind(actor)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("insert assignment"))?;
        }
        insert_event(
            &mut tx,
            id,
            "assignment.revision",
            &serde_json::json!({
                "revision": revision, "version": spec.container.version, "actor": actor,
            }),
        )
        .await?;
        tx.commit().await.map_err(StoreError::query("commit put"))?;
        let stored = self
            .assignment(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "assignment",
                message: format!("{id} vanished after insert"),
            })?;
        Ok(PutOutcome::Changed(stored))
    }

    /// Starts a rollback: a new revision whose container is `target` (an earlier version),
    /// in state `rolling_back`. The version rolled away from joins the rollback list.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn start_rollback(
        &self,
        assignment: &Assignment,
        target: &Container,
        actor: &str,
        reason: &str,
    ) -> Result<Assignment, StoreError> {
        let mut spec = assignment.spec.clone();
        spec.container = target.clone();
        let mut previous = assignment.previous.clone();
        previous.retain(|c| c.version != target.version);
        previous.retain(|c| c.version != assignment.spec.container.version);
        previous.insert(0, assignment.spec.container.clone());
        previous.truncate(MAX_PREVIOUS);
        let revision = assignment.revision + 1;
        let now = now_text();
        let spec_text = serde_json::to_string(&spec).map_err(StoreError::corrupt("spec"))?;
        let previous_text =
            serde_json::to_string(&previous).map_err(StoreError::corrupt("previous versions"))?;

        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin rollback"))?;
        sqlx::query(
            "INSERT INTO revisions (assignment_id, revision, spec, reason, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&assignment.id)
        .bind(revision)
        .bind(&spec_text)
        .bind(format!("rollback: {reason}"))
        .bind(actor)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("insert rollback revision"))?;
        sqlx::query(
            "UPDATE assignments SET revision = $1, state = 'rolling_back', spec = $2, \
             previous_versions = $3, current_wave = 0, paused = 0, detail = $4, \
             wave_started_at = NULL, next_wave_at = NULL, actor = $5, updated_at = $6 \
             WHERE id = $7",
        )
        .bind(revision)
        .bind(&spec_text)
        .bind(&previous_text)
        .bind(reason)
        .bind(actor)
        .bind(&now)
        .bind(&assignment.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("start rollback"))?;
        insert_event(
            &mut tx,
            &assignment.id,
            "assignment.rollback",
            &serde_json::json!({
                "revision": revision, "from": assignment.spec.container.version,
                "to": target.version, "reason": reason, "actor": actor,
            }),
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit rollback"))?;
        self.assignment(&assignment.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "assignment",
                message: format!("{} vanished during rollback", assignment.id),
            })
    }

    /// Sets the state (and its reason), recording an event when the state changes.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn set_assignment_state(
        &self,
        id: &str,
        expected_revision: i64,
        state: AssignmentState,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin state"))?;
        let previous: Option<(String,)> =
            sqlx::query_as("SELECT state FROM assignments WHERE id = $1 AND revision = $2")
                .bind(id)
                .bind(expected_revision)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query("read state"))?;
        let Some((previous,)) = previous else {
            return Ok(false);
        };
        let paused = i64::from(state == AssignmentState::Paused);
        sqlx::query(
            "UPDATE assignments SET state = $1, detail = $2, paused = $3, updated_at = $4 \
             WHERE id = $5 AND revision = $6",
        )
        .bind(state.as_str())
        .bind(detail)
        .bind(paused)
        .bind(now_text())
        .bind(id)
        .bind(expected_revision)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("set state"))?;
        if previous != state.as_str() {
            insert_event(
                &mut tx,
                id,
                "assignment.state",
                &serde_json::json!({
                    "from": previous, "to": state.as_str(), "detail": detail,
                    "revision": expected_revision,
                }),
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit state"))?;
        Ok(true)
    }

    /// Moves the rollout to `wave`, recording when it started.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn set_wave(&self, id: &str, revision: i64, wave: i64) -> Result<(), StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin wave"))?;
        sqlx::query(
            "UPDATE assignments SET current_wave = $1, wave_started_at = $2, next_wave_at = NULL, \
             updated_at = $2 WHERE id = $3 AND revision = $4",
        )
        .bind(wave)
        .bind(time_text(now))
        .bind(id)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("set wave"))?;
        insert_event(
            &mut tx,
            id,
            "wave.started",
            &serde_json::json!({
                "wave": wave, "revision": revision,
            }),
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit wave"))?;
        Ok(())
    }
}

/// Container version of one stored revision, for reasoning about rollback history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionVersion {
    /// Revision number.
    pub revision: i64,
    /// Container version the revision installs.
    pub version: String,
    /// Whether the revision is a rollback (operator, environment or engine) rather than a PUT.
    pub rollback: bool,
}

impl Store {
    /// Lists the container version of every revision of an assignment, oldest first.
    ///
    /// # Errors
    /// Fails on database errors or a revision whose spec has no container version.
    pub async fn revision_versions(&self, id: &str) -> Result<Vec<RevisionVersion>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT revision, spec, reason FROM revisions WHERE assignment_id = $1 \
             ORDER BY revision",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read revisions"))?;
        rows.into_iter()
            .map(|(revision, spec, reason)| {
                let spec: serde_json::Value =
                    serde_json::from_str(&spec).map_err(StoreError::corrupt("revision spec"))?;
                let version = spec["container"]["version"]
                    .as_str()
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "revision spec",
                        message: format!("revision {revision} of {id} has no container.version"),
                    })?
                    .to_owned();
                Ok(RevisionVersion {
                    revision,
                    version,
                    rollback: reason.starts_with("rollback"),
                })
            })
            .collect()
    }
}

impl Store {
    /// Returns why a revision was made (`create`, `update`, `rollback: …`).
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn revision_reason(
        &self,
        id: &str,
        revision: i64,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT reason FROM revisions WHERE assignment_id = $1 AND revision = $2",
        )
        .bind(id)
        .bind(revision)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("read revision"))?;
        Ok(row.map(|(reason,)| reason))
    }

    /// Records that the current wave completed and the next may start at `at`.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn schedule_next_wave(
        &self,
        id: &str,
        revision: i64,
        wave: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin schedule"))?;
        sqlx::query(
            "UPDATE assignments SET next_wave_at = $1, updated_at = $2 WHERE id = $3 \
             AND revision = $4",
        )
        .bind(time_text(at))
        .bind(now_text())
        .bind(id)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("schedule next wave"))?;
        insert_event(
            &mut tx,
            id,
            "wave.completed",
            &serde_json::json!({
                "wave": wave, "revision": revision, "next_wave_at": time_text(at),
            }),
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit schedule"))?;
        Ok(())
    }

    /// Deletes the placements of one target, after the container was withdrawn from it.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn delete_placements(
        &self,
        assignment: &str,
        provider: &str,
        target: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM placements WHERE assignment_id = $1 AND provider = $2 AND target = $3",
        )
        .bind(assignment)
        .bind(provider)
        .bind(target)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("delete placements"))?;
        Ok(())
    }
}

/// Appends an event inside a transaction.
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    assignment: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (time, assignment_id, kind, detail) VALUES ($1, $2, $3, $4)")
        .bind(now_text())
        .bind(assignment)
        .bind(kind)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("insert event"))?;
    Ok(())
}
