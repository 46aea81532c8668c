//! The intent journal and the leases that give one replica ownership of a target.
//!
//! Before every broker write the engine records an intent; after it, the outcome. An intent
//! still `pending` after a restart means the gateway stopped between the two: the engine then
//! observes the broker instead of repeating the call blindly, and closes the intent as
//! `superseded`.

use sqlx::Row;

use super::{now_text, Store, StoreError};

/// State of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    /// Recorded, call not known to have finished.
    Pending,
    /// The call finished and its outcome is recorded.
    Done,
    /// The call failed.
    Failed,
    /// Found pending after a restart and resolved by observing the broker.
    Superseded,
}

impl IntentStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
        }
    }
}

/// A journaled broker write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Journal id.
    pub id: i64,
    /// Assignment.
    pub assignment: String,
    /// Revision the intent belongs to.
    pub revision: i64,
    /// Provider name.
    pub provider: String,
    /// Target.
    pub target: String,
    /// Operation, for example `publish` or `place`.
    pub operation: String,
    /// JSON of what was requested.
    pub payload: String,
}

impl Store {
    /// Records an intent before a broker write and returns its id.
    ///
    /// # Errors
    /// Fails on database errors; the engine then makes no broker call.
    pub async fn begin_intent(
        &self,
        assignment: &str,
        revision: i64,
        provider: &str,
        target: &str,
        operation: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO intents (assignment_id, revision, provider, target, operation, payload, \
             status, outcome, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', '', $7) \
             RETURNING id",
        )
        .bind(assignment)
        .bind(revision)
        .bind(provider)
        .bind(target)
        .bind(operation)
        .bind(payload.to_string())
        .bind(now_text())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("insert intent"))?;
        row.try_get::<i64, _>(0)
            .map_err(StoreError::query("read intent id"))
    }

    /// Records the outcome of an intent.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn finish_intent(
        &self,
        id: i64,
        status: IntentStatus,
        outcome: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE intents SET status = $1, outcome = $2, finished_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(outcome.to_string())
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("finish intent"))?;
        Ok(())
    }

    /// Lists intents left pending, oldest first.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn pending_intents(&self) -> Result<Vec<Intent>, StoreError> {
        let rows: Vec<(i64, String, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, assignment_id, revision, provider, target, operation, payload \
             FROM intents WHERE status = 'pending' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read pending intents"))?;
        Ok(rows
            .into_iter()
            .map(
                |(id, assignment, revision, provider, target, operation, payload)| Intent {
                    id,
                    assignment,
                    revision,
                    provider,
                    target,
                    operation,
                    payload,
                },
            )
            .collect())
    }

    /// Counts intents per status, for tests and metrics.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn intent_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT status, COUNT(*) FROM intents GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("count intents"))
    }

    /// Takes or renews the lease on one target of an assignment for `owner`, valid for
    /// `seconds`. Returns false when another owner holds an unexpired lease.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn acquire_lease(
        &self,
        assignment: &str,
        provider: &str,
        target: &str,
        owner: &str,
        seconds: i64,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let expires = now + seconds * 1000;
        let result = sqlx::query(
            "INSERT INTO leases (assignment_id, provider, target, owner, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (assignment_id, provider, target) DO UPDATE SET \
             owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leases.owner = excluded.owner OR leases.expires_at < $6",
        )
        .bind(assignment)
        .bind(provider)
        .bind(target)
        .bind(owner)
        .bind(expires)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("acquire lease"))?;
        Ok(result.rows_affected() > 0)
    }

    /// Releases a lease held by `owner`.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn release_lease(
        &self,
        assignment: &str,
        provider: &str,
        target: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM leases WHERE assignment_id = $1 AND provider = $2 AND target = $3 \
             AND owner = $4",
        )
        .bind(assignment)
        .bind(provider)
        .bind(target)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("release lease"))?;
        Ok(())
    }
}
