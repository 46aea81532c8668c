//! Schema migrations, shared by SQLite and PostgreSQL.
//!
//! The statements are written once. Only the auto-increment key (`{id}`) and the triggers
//! that keep records append-only (`{append_only}`) differ between the two engines, so they
//! are substituted per backend. Statements end with a semicolon at the end of a line. Applied
//! versions are recorded in `schema_migrations`, each migration in its own transaction.

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
    (4, "append-only audit and events", "{append_only}"),
    (
        5,
        "agent sessions",
        r#"
ALTER TABLE agent_machines ADD COLUMN sessions TEXT;
ALTER TABLE agent_machines ADD COLUMN sessions_reported_at TEXT;
"#,
    ),
];

/// Triggers that reject updates and deletes of audit records and events, so the trail cannot
/// be rewritten through the database either. Each statement is on one line because the
/// runner splits statements at a semicolon that ends a line.
const APPEND_ONLY_SQLITE: &str = "
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
";

/// The PostgreSQL form of [`APPEND_ONLY_SQLITE`].
const APPEND_ONLY_POSTGRES: &str = "
CREATE OR REPLACE FUNCTION vdigw_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME; END; $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION vdigw_append_only();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION vdigw_append_only();
";

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
        let (id_column, append_only) = match backend {
            Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", APPEND_ONLY_SQLITE),
            Backend::Postgres => (
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                APPEND_ONLY_POSTGRES,
            ),
        };
        let sql = sql
            .replace("{id}", id_column)
            .replace("{append_only}", append_only);
        let mut tx = pool
            .begin()
            .await
            .map_err(StoreError::query("begin migration"))?;
        for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
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
