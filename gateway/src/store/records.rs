//! Append-only records: state-change events and the audit trail of broker writes.
//!
//! Neither table is ever updated or deleted from by the gateway.

use serde::Serialize;

use super::{now_text, Store, StoreError};

/// A state change of an assignment, wave or machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Monotonic id, usable as `Last-Event-ID`.
    pub id: i64,
    /// RFC 3339 time.
    pub time: String,
    /// Assignment id.
    pub assignment: String,
    /// Kind, for example `assignment.state` or `machine.applied`.
    pub kind: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// A write the gateway made on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 time.
    pub time: String,
    /// Token name of the control plane that asked, or `engine` for automatic actions.
    pub actor: String,
    /// Assignment id.
    pub assignment: String,
    /// Provider name.
    pub provider: String,
    /// Target.
    pub target: String,
    /// Machine id, empty when the write concerns no single machine.
    pub machine: String,
    /// Operation.
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// Path relative to the broker's API base.
    pub path: String,
    /// `ok`, or the failure.
    pub result: String,
    /// Request id the broker returned.
    pub broker_request_id: String,
}

/// Filter of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Earliest time, RFC 3339, inclusive.
    pub since: Option<String>,
    /// Latest time, RFC 3339, exclusive.
    pub until: Option<String>,
    /// Only this assignment.
    pub assignment: Option<String>,
    /// Maximum records.
    pub limit: i64,
}

impl Store {
    /// Appends an event.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn append_event(
        &self,
        assignment: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin event"))?;
        super::assignments::insert_event(&mut tx, assignment, kind, detail).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit event"))?;
        Ok(())
    }

    /// Appends several events of one assignment in one transaction.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn append_events(
        &self,
        assignment: &str,
        events: &[(&str, serde_json::Value)],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin events"))?;
        for (kind, detail) in events {
            super::assignments::insert_event(&mut tx, assignment, kind, detail).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit events"))?;
        Ok(())
    }

    /// Reads events with an id greater than `after`, oldest first.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, time, assignment_id, kind, detail FROM events WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read events"))?;
        Ok(rows
            .into_iter()
            .map(|(id, time, assignment, kind, detail)| Event {
                id,
                time,
                assignment,
                kind,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
            .collect())
    }

    /// Appends audit records in one transaction.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin audit"))?;
        for record in records {
            sqlx::query(
                "INSERT INTO audit (time, actor, assignment_id, provider, target, machine, \
                 operation, method, path, result, broker_request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(if record.time.is_empty() {
                now_text()
            } else {
                record.time.clone()
            })
            .bind(&record.actor)
            .bind(&record.assignment)
            .bind(&record.provider)
            .bind(&record.target)
            .bind(&record.machine)
            .bind(&record.operation)
            .bind(&record.method)
            .bind(&record.path)
            .bind(&record.result)
            .bind(&record.broker_request_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("insert audit record"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit audit"))?;
        Ok(())
    }

    /// Reads audit records matching the query, oldest first.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT time, actor, assignment_id, provider, target, machine, operation, method, \
             path, result, broker_request_id FROM audit \
             WHERE ($1 = '' OR time >= $1) AND ($2 = '' OR time < $2) \
             AND ($3 = '' OR assignment_id = $3) ORDER BY id LIMIT $4",
        )
        .bind(query.since.as_deref().unwrap_or(""))
        .bind(query.until.as_deref().unwrap_or(""))
        .bind(query.assignment.as_deref().unwrap_or(""))
        .bind(query.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read audit"))?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRecord {
                time: r.0,
                actor: r.1,
                assignment: r.2,
                provider: r.3,
                target: r.4,
                machine: r.5,
                operation: r.6,
                method: r.7,
                path: r.8,
                result: r.9,
                broker_request_id: r.10,
            })
            .collect())
    }

    /// Records an override of a freeze for one revision of an assignment, with an audit record
    /// and an event, in one transaction.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn add_freeze_override(
        &self,
        assignment: &str,
        revision: i64,
        freeze: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = now_text();
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin override"))?;
        sqlx::query(
            "INSERT INTO freeze_overrides (assignment_id, revision, freeze_name, actor, reason, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (assignment_id, revision, freeze_name) DO NOTHING",
        )
        .bind(assignment)
        .bind(revision)
        .bind(freeze)
        .bind(actor)
        .bind(reason)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("insert freeze override"))?;
        sqlx::query(
            "INSERT INTO audit (time, actor, assignment_id, provider, target, machine, \
             operation, method, path, result, broker_request_id) \
             VALUES ($1, $2, $3, '', '', '', 'freeze_override', 'POST', $4, $5, '')",
        )
        .bind(&now)
        .bind(actor)
        .bind(assignment)
        .bind(format!("/v1/assignments/{assignment}/freeze-override"))
        .bind(format!(
            "ok: freeze {freeze} overridden for revision {revision}: {reason}"
        ))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("audit freeze override"))?;
        super::assignments::insert_event(
            &mut tx,
            assignment,
            "assignment.freeze_override",
            &serde_json::json!({"freeze": freeze, "revision": revision, "actor": actor, "reason": reason}),
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit override"))?;
        Ok(())
    }

    /// Returns the freezes overridden for one revision of an assignment.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn freeze_overrides(
        &self,
        assignment: &str,
        revision: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT freeze_name FROM freeze_overrides WHERE assignment_id = $1 AND revision = $2 \
             ORDER BY freeze_name",
        )
        .bind(assignment)
        .bind(revision)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read freeze overrides"))?;
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    /// Counts audit records, for tests and metrics.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("count audit"))?;
        Ok(count)
    }
}
