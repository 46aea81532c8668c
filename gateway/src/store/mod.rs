//! Persistent state: assignments and revisions, per-machine placements, the intent journal,
//! events, audit records and leases.
//!
//! One set of SQL statements serves SQLite (the embedded default, one file in WAL mode) and
//! PostgreSQL (for several gateway replicas) through sqlx's `Any` driver. Times are stored as
//! RFC 3339 text and JSON documents as text, so both engines read them the same way.

mod agents;
mod assignments;
mod journal;
mod migrations;
mod placements;
mod records;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub use agents::DesiredContainer;
pub use assignments::{PutOutcome, RevisionVersion};
pub use journal::{Intent, IntentStatus};
pub use placements::TargetStatus;
pub use records::{AuditQuery, AuditRecord, Event};

/// Database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file or memory database.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported engine.
    #[error("store url {url:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// The URL with any password removed.
        url: String,
    },
    /// Connecting failed.
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// Driver error.
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("store operation {operation} failed: {source}")]
    Query {
        /// Purpose of the statement.
        operation: &'static str,
        /// Driver error.
        source: sqlx::Error,
    },
    /// A stored document could not be decoded.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt {
        /// Which document.
        what: &'static str,
        /// Decoder message.
        message: String,
    },
}

impl StoreError {
    fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { operation, source }
    }

    fn corrupt(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
        move |error| StoreError::Corrupt {
            what,
            message: error.to_string(),
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the store at `url` and applies pending migrations.
    ///
    /// # Errors
    /// Fails on an unsupported URL, an unreachable server or a failed migration.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl { url: shown });
        };
        let connect_error = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        let pool = match backend {
            Backend::Sqlite => {
                let memory = url.contains(":memory:") || url.contains("mode=memory");
                let connections = if memory { 1 } else { max_connections.max(1) };
                AnyPoolOptions::new()
                    .max_connections(connections)
                    .after_connect(move |connection, _| {
                        Box::pin(async move {
                            // WAL lets readers (the API) proceed while the engine writes; the
                            // busy timeout absorbs the short write locks SQLite takes.
                            let pragmas: &[&str] = if memory {
                                &["PRAGMA busy_timeout = 10000"]
                            } else {
                                &[
                                    "PRAGMA journal_mode = WAL",
                                    "PRAGMA synchronous = NORMAL",
                                    "PRAGMA busy_timeout = 10000",
                                ]
                            };
                            for pragma in pragmas {
                                sqlx::query(pragma).execute(&mut *connection).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&sqlite_url(url))
                    .await
                    .map_err(connect_error)?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(connect_error)?,
        };
        let store = Self { pool, backend };
        migrations::run(&store.pool, backend).await?;
        Ok(store)
    }

    /// Returns the database engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database responds.
    ///
    /// # Errors
    /// Fails when it does not respond.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("ping"))?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite its first statement takes the write
    /// lock, so a transaction that reads before it writes cannot fail with
    /// `SQLITE_BUSY_SNAPSHOT` after another connection wrote in between. The busy timeout
    /// waits for the lock instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("UPDATE schema_migrations SET version = version WHERE version < 0")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` to a SQLite file URL so a missing database file is created.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

/// Returns the current time as stored: RFC 3339 UTC with milliseconds.
pub(crate) fn now_text() -> String {
    time_text(Utc::now())
}

/// Formats a time as stored.
pub(crate) fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a time the way the store compares it.
pub fn format_time(time: DateTime<Utc>) -> String {
    time_text(time)
}

/// Parses a stored time.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what: "timestamp",
            message: format!("{text:?}: {e}"),
        })
}

/// Removes the password from a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// Opens a fresh in-memory SQLite store.
    pub async fn sqlite() -> Store {
        Store::connect("sqlite::memory:", 1)
            .await
            .expect("in-memory sqlite")
    }

    /// Opens a PostgreSQL store in a fresh schema when `DATABASE_URL` is set.
    pub async fn postgres() -> Option<Store> {
        let url = std::env::var("DATABASE_URL").ok()?;
        if !url.starts_with("postgres") {
            return None;
        }
        let schema = format!("t{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create test schema");
        admin.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
        Some(
            Store::connect(&scoped, 4)
                .await
                .expect("connect to test schema"),
        )
    }

    /// Returns every backend available to this test run.
    pub async fn all() -> Vec<Store> {
        let mut stores = vec![sqlite().await];
        stores.extend(postgres().await);
        stores
    }
}

#[cfg(test)]
mod tests;
