//! Schema migrations, shared by SQLite and PostgreSQL.
//!
//! The statements are written once; only the auto-increment key differs between the two
//! engines, so it is spelled `{id}` and substituted per backend. Applied versions are recorded
//! in `schema_migrations`, each migration in its own transaction.

use sqlx::AnyPool;

use super::{Backend, StoreError};

/// Migrations in order; a version is never edited once released, only followed by a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
CREATE TABLE assignments (
    id TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    previous_versions TEXT NOT NULL,
    current_wave BIGINT NOT NULL,
    paused BIGINT NOT NULL,
    detail TEXT NOT NULL,
    wave_started_at TEXT,
    next_wave_at TEXT,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE revisions (
    assignment_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    spec TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assignment_id, revision)
);
CREATE TABLE target_status (
    assignment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    target_id TEXT NOT NULL,
    published TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (assignment_id, provider, target)
);
CREATE TABLE placements (
    assignment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    machine TEXT NOT NULL,
    machine_name TEXT NOT NULL,
    rank BIGINT NOT NULL,
    desired_version TEXT NOT NULL,
    applied_version TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (assignment_id, provider, target, machine)
);
CREATE INDEX placements_by_state ON placements (assignment_id, state);
CREATE TABLE intents (
    id {id},
    assignment_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX intents_by_status ON intents (status);
CREATE TABLE events (
    id {id},
    time TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE audit (
    id {id},
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    machine TEXT NOT NULL,
    operation TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    result TEXT NOT NULL,
    broker_request_id TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (time);
CREATE TABLE leases (
    assignment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (assignment_id, provider, target)
);
"#,
    ),
    (
        2,
        "agent channel",
        r#"
CREATE TABLE agent_desired (
    provider TEXT NOT NULL,
    machine TEXT NOT NULL,
    container_id TEXT NOT NULL,
    version TEXT NOT NULL,
    container TEXT NOT NULL,
    activation TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, machine, container_id)
);
CREATE TABLE agent_reports (
    provider TEXT NOT NULL,
    machine TEXT NOT NULL,
    container_id TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (provider, machine, container_id)
);
CREATE TABLE agent_machines (
    provider TEXT NOT NULL,
    machine TEXT NOT NULL,
    labels TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (provider, machine)
);
"#,
    ),
    (
        3,
        "freeze overrides",
        r#"
CREATE TABLE freeze_overrides (
    assignment_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    freeze_name TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assignment_id, revision, freeze_name)
);
"#,
    ),
];

/// Applies every migration not yet recorded.
///
/// # Errors
/// Fails when a statement fails; the failing migration is rolled back as a whole.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
         description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(StoreError::query("create schema_migrations"))?;

    for (version, description, sql) in MIGRATIONS {
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::query("read schema_migrations"))?;
        if applied.is_some() {
            continue;
        }
        let id_column = match backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        };
        let sql = sql.replace("{id}", id_column);
        let mut tx = pool
            .begin()
            .await
            .map_err(StoreError::query("begin migration"))?;
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("apply migration"))?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*description)
        .bind(super::now_text())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("record migration"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit migration"))?;
        tracing::info!(version, description, "Applied store migration.");
    }
    Ok(())
}
