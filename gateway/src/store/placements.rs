//! Per-machine placements and per-target status of each assignment.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_text, parse_time, Store, StoreError};
use crate::model::{Placement, PlacementState, Progress};

const COLUMNS: &str = "provider, target, machine, machine_name, rank, desired_version, \
                       applied_version, state, detail, updated_at";

fn decode(row: &AnyRow) -> Result<Placement, StoreError> {
    let text = |column: &'static str| -> Result<String, StoreError> {
        row.try_get::<String, _>(column)
            .map_err(StoreError::query("decode placement"))
    };
    let state_text = text("state")?;
    Ok(Placement {
        provider: text("provider")?,
        target: text("target")?,
        machine: text("machine")?,
        machine_name: text("machine_name")?,
        rank: row
            .try_get("rank")
            .map_err(StoreError::query("decode placement"))?,
        desired_version: text("desired_version")?,
        applied_version: text("applied_version")?,
        state: PlacementState::parse(&state_text).ok_or_else(|| StoreError::Corrupt {
            what: "placement state",
            message: state_text.clone(),
        })?,
        detail: text("detail")?,
        updated_at: parse_time(&text("updated_at")?)?,
    })
}

/// Status of one target of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// Provider name.
    pub provider: String,
    /// Target as the assignment names it.
    pub target: String,
    /// Broker id of the target, once resolved.
    pub target_id: String,
    /// Versions currently published on the target.
    pub published: Vec<String>,
    /// Short state: `ok`, `error`, `removed`.
    pub state: String,
    /// Last error or note.
    pub detail: String,
}

impl Store {
    /// Reads every placement of one target of an assignment, in wave order.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn placements(
        &self,
        assignment: &str,
        provider: &str,
        target: &str,
    ) -> Result<Vec<Placement>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM placements WHERE assignment_id = $1 AND provider = $2 \
             AND target = $3 ORDER BY rank, machine"
        ))
        .bind(assignment)
        .bind(provider)
        .bind(target)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read placements"))?;
        rows.iter().map(decode).collect()
    }

    /// Inserts or replaces placements, all in one transaction.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn save_placements(
        &self,
        assignment: &str,
        placements: &[Placement],
    ) -> Result<(), StoreError> {
        if placements.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin placements"))?;
        for placement in placements {
            sqlx::query(
                "INSERT INTO placements (assignment_id, provider, target, machine, machine_name, \
                 rank, desired_version, applied_version, state, detail, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (assignment_id, provider, target, machine) DO UPDATE SET \
                 machine_name = excluded.machine_name, rank = excluded.rank, \
                 desired_version = excluded.desired_version, \
                 applied_version = excluded.applied_version, state = excluded.state, \
                 detail = excluded.detail, updated_at = excluded.updated_at",
            )
            .bind(assignment)
            .bind(&placement.provider)
            .bind(&placement.target)
            .bind(&placement.machine)
            .bind(&placement.machine_name)
            .bind(placement.rank)
            .bind(&placement.desired_version)
            .bind(&placement.applied_version)
            .bind(placement.state.as_str())
            .bind(&placement.detail)
            .bind(super::time_text(placement.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("save placement"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit placements"))?;
        Ok(())
    }

    /// Counts machines per state, for the assignment and per `(provider, target)`.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn progress(
        &self,
        assignment: &str,
    ) -> Result<(Progress, BTreeMap<(String, String), Progress>), StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT provider, target, state, COUNT(*) FROM placements WHERE assignment_id = $1 \
             GROUP BY provider, target, state",
        )
        .bind(assignment)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("count placements"))?;
        let mut total = Progress::default();
        let mut per_target: BTreeMap<(String, String), Progress> = BTreeMap::new();
        for (provider, target, state, count) in rows {
            let Some(state) = PlacementState::parse(&state) else {
                continue;
            };
            let count = u64::try_from(count).unwrap_or(0);
            total.add(state, count);
            per_target
                .entry((provider, target))
                .or_default()
                .add(state, count);
        }
        Ok((total, per_target))
    }

    /// Lists an assignment's placements across targets, optionally in one state, ordered by
    /// `(provider, target, machine)` and starting after the cursor key.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn assignment_placements(
        &self,
        assignment: &str,
        state: Option<PlacementState>,
        after: Option<(&str, &str, &str)>,
        limit: i64,
    ) -> Result<Vec<Placement>, StoreError> {
        let (provider, target, machine) = after.unwrap_or(("", "", ""));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM placements WHERE assignment_id = $1 \
             AND ($2 = '' OR state = $2) \
             AND (provider > $3 OR (provider = $3 AND target > $4) \
                  OR (provider = $3 AND target = $4 AND machine > $5)) \
             ORDER BY provider, target, machine LIMIT $6"
        ))
        .bind(assignment)
        .bind(state.map(PlacementState::as_str).unwrap_or(""))
        .bind(provider)
        .bind(target)
        .bind(machine)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list assignment placements"))?;
        rows.iter().map(decode).collect()
    }

    /// Stores the status of a target.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn save_target_status(
        &self,
        assignment: &str,
        status: &TargetStatus,
    ) -> Result<(), StoreError> {
        let published =
            serde_json::to_string(&status.published).map_err(StoreError::corrupt("published"))?;
        sqlx::query(
            "INSERT INTO target_status (assignment_id, provider, target, target_id, published, \
             state, detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (assignment_id, provider, target) DO UPDATE SET \
             target_id = excluded.target_id, published = excluded.published, \
             state = excluded.state, detail = excluded.detail, updated_at = excluded.updated_at",
        )
        .bind(assignment)
        .bind(&status.provider)
        .bind(&status.target)
        .bind(&status.target_id)
        .bind(published)
        .bind(&status.state)
        .bind(&status.detail)
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("save target status"))?;
        Ok(())
    }

    /// Reads the status of every target of an assignment.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn target_statuses(&self, assignment: &str) -> Result<Vec<TargetStatus>, StoreError> {
        let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
            "SELECT provider, target, target_id, published, state, detail FROM target_status \
             WHERE assignment_id = $1 ORDER BY provider, target",
        )
        .bind(assignment)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read target status"))?;
        rows.into_iter()
            .map(|(provider, target, target_id, published, state, detail)| {
                Ok(TargetStatus {
                    provider,
                    target,
                    target_id,
                    published: serde_json::from_str(&published)
                        .map_err(StoreError::corrupt("published versions"))?,
                    state,
                    detail,
                })
            })
            .collect()
    }
}
