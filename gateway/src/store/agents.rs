//! Agent channel state: each machine's desired containers, what its agent reported, and the
//! machines agents registered on first check-in, with the sessions of their latest check-in.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::{now_text, Store, StoreError};
use vdi_contracts::agent::AgentSessions;
use vdi_contracts::{
    Activation, AgentContainerState, AgentMachine, AgentReport, Container, Session,
};

/// A desired container of one machine, as the agent channel serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContainer {
    /// The container at its desired version.
    pub container: Container,
    /// Activation mode the agent applies.
    pub activation: Activation,
}

fn state_text(state: &AgentContainerState) -> &'static str {
    match state {
        AgentContainerState::Installed => "installed",
        AgentContainerState::Failed => "failed",
        AgentContainerState::Removed => "removed",
    }
}

fn parse_state(text: &str) -> Option<AgentContainerState> {
    match text {
        "installed" => Some(AgentContainerState::Installed),
        "failed" => Some(AgentContainerState::Failed),
        "removed" => Some(AgentContainerState::Removed),
        _ => None,
    }
}

impl Store {
    /// Sets the desired version of a container on a machine.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn set_agent_desired(
        &self,
        provider: &str,
        machine: &str,
        container: &Container,
        activation: Activation,
    ) -> Result<(), StoreError> {
        let document =
            serde_json::to_string(container).map_err(StoreError::corrupt("container"))?;
        sqlx::query(
            "INSERT INTO agent_desired (provider, machine, container_id, version, container, \
             activation, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (provider, machine, container_id) DO UPDATE SET \
             version = excluded.version, container = excluded.container, \
             activation = excluded.activation, updated_at = excluded.updated_at",
        )
        .bind(provider)
        .bind(machine)
        .bind(&container.id)
        .bind(&container.version)
        .bind(document)
        .bind(activation.as_str())
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("set agent desired"))?;
        Ok(())
    }

    /// Withdraws a container from a machine.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn clear_agent_desired(
        &self,
        provider: &str,
        machine: &str,
        container_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM agent_desired WHERE provider = $1 AND machine = $2 AND container_id = $3",
        )
        .bind(provider)
        .bind(machine)
        .bind(container_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("clear agent desired"))?;
        Ok(())
    }

    /// Returns a machine's desired containers, ordered by container id.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn agent_desired(
        &self,
        provider: &str,
        machine: &str,
    ) -> Result<Vec<DesiredContainer>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT container, activation FROM agent_desired WHERE provider = $1 AND machine = $2 \
             ORDER BY container_id",
        )
        .bind(provider)
        .bind(machine)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read agent desired"))?;
        rows.into_iter()
            .map(|(container, activation)| {
                Ok(DesiredContainer {
                    container: serde_json::from_str(&container)
                        .map_err(StoreError::corrupt("desired container"))?,
                    activation: serde_json::from_value(serde_json::Value::String(activation))
                        .map_err(StoreError::corrupt("activation"))?,
                })
            })
            .collect()
    }

    /// Records what an agent reported for its machine's containers.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn record_agent_reports(
        &self,
        provider: &str,
        reports: &[AgentReport],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin reports"))?;
        let now = now_text();
        for report in reports {
            upsert_report(&mut tx, provider, report, &now).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit reports"))?;
        Ok(())
    }

    /// Records one agent report in a single transaction: its container results and the
    /// machine's check-in with its sessions, as [`Store::touch_agent_machine`] does. `Some`
    /// labels replace the stored ones (an empty map clears them), and `None` keeps them, so a
    /// machine still matches device-group rules on labels it reported earlier.
    ///
    /// # Errors
    /// Fails on database errors; nothing is written then.
    pub async fn record_agent_check_in(
        &self,
        provider: &str,
        machine: &str,
        reports: &[AgentReport],
        labels: Option<&BTreeMap<String, String>>,
        sessions: Option<&[Session]>,
    ) -> Result<(), StoreError> {
        let labels = labels
            .map(serde_json::to_string)
            .transpose()
            .map_err(StoreError::corrupt("agent labels"))?;
        let mut tx = self
            .begin_write()
            .await
            .map_err(StoreError::query("begin agent check-in"))?;
        let now = now_text();
        for report in reports {
            upsert_report(&mut tx, provider, report, &now).await?;
        }
        upsert_machine(
            &mut tx,
            provider,
            machine,
            labels.as_deref(),
            sessions,
            &now,
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit agent check-in"))?;
        Ok(())
    }

    /// Returns the latest report of every machine of a provider for a container.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn agent_reports(
        &self,
        provider: &str,
        container_id: &str,
    ) -> Result<Vec<AgentReport>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT machine, version, state, detail FROM agent_reports WHERE provider = $1 \
             AND container_id = $2 ORDER BY machine",
        )
        .bind(provider)
        .bind(container_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read agent reports"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(machine, version, state, detail)| {
                Some(AgentReport {
                    machine,
                    container_id: container_id.to_owned(),
                    version,
                    state: parse_state(&state)?,
                    detail,
                })
            })
            .collect())
    }

    /// Registers a machine on its agent's first poll, without labels or sessions; later polls
    /// change nothing. One statement, so a report stored between a poll's read and its insert
    /// cannot be overwritten.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn register_agent_machine(
        &self,
        provider: &str,
        machine: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_machines (provider, machine, labels, first_seen, last_seen) \
             VALUES ($1, $2, '{}', $3, $3) ON CONFLICT (provider, machine) DO NOTHING",
        )
        .bind(provider)
        .bind(machine)
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("register agent machine"))?;
        Ok(())
    }

    /// Records an agent's check-in (first or later): its labels, and the sessions it carried.
    /// Both replace what the previous check-in stored, so `None` sessions (an agent that does
    /// not report them) make the machine's sessions unknown again.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn touch_agent_machine(
        &self,
        provider: &str,
        machine: &str,
        labels: &serde_json::Value,
        sessions: Option<&[Session]>,
    ) -> Result<(), StoreError> {
        let labels = labels.to_string();
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query("register agent machine"))?;
        upsert_machine(
            &mut connection,
            provider,
            machine,
            Some(&labels),
            sessions,
            &now_text(),
        )
        .await
    }

    /// Lists the machines whose agents checked in for `provider`, with their labels and the
    /// sessions of their latest check-in.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn agent_machines(&self, provider: &str) -> Result<Vec<AgentMachine>, StoreError> {
        let rows: Vec<MachineRow> = sqlx::query_as(&format!(
            "SELECT {MACHINE_COLUMNS} FROM agent_machines WHERE provider = $1 ORDER BY machine"
        ))
        .bind(provider)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list agent machines"))?;
        rows.into_iter().map(machine_from_row).collect()
    }

    /// Returns the registrations of `machines` for `provider`, ordered by machine id;
    /// machines no agent registered are absent.
    ///
    /// # Errors
    /// Fails on database errors or a corrupt row.
    pub async fn agent_machines_by_id(
        &self,
        provider: &str,
        machines: &[String],
    ) -> Result<Vec<AgentMachine>, StoreError> {
        let mut found = Vec::new();
        for chunk in machines.chunks(MACHINES_PER_QUERY) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT {MACHINE_COLUMNS} FROM agent_machines WHERE provider = $1 \
                 AND machine IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, MachineRow>(&sql).bind(provider);
            for machine in chunk {
                query = query.bind(machine);
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read agent machines"))?;
            for row in rows {
                found.push(machine_from_row(row)?);
            }
        }
        found.sort_by(|a, b| a.machine.cmp(&b.machine));
        found.dedup_by(|a, b| a.machine == b.machine);
        Ok(found)
    }
}

/// Inserts or replaces a machine's latest report for one container.
async fn upsert_report(
    connection: &mut AnyConnection,
    provider: &str,
    report: &AgentReport,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agent_reports (provider, machine, container_id, version, state, \
         detail, reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (provider, machine, container_id) DO UPDATE SET \
         version = excluded.version, state = excluded.state, detail = excluded.detail, \
         reported_at = excluded.reported_at",
    )
    .bind(provider)
    .bind(&report.machine)
    .bind(&report.container_id)
    .bind(&report.version)
    .bind(state_text(&report.state))
    .bind(&report.detail)
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(StoreError::query("record agent report"))?;
    Ok(())
}

/// Inserts or updates a machine's check-in. `labels` is the JSON text that replaces the stored
/// labels. `None` keeps them, and a new machine then starts with none.
async fn upsert_machine(
    connection: &mut AnyConnection,
    provider: &str,
    machine: &str,
    labels: Option<&str>,
    sessions: Option<&[Session]>,
    now: &str,
) -> Result<(), StoreError> {
    let sessions = sessions
        .map(serde_json::to_string)
        .transpose()
        .map_err(StoreError::corrupt("agent sessions"))?;
    let reported_at = sessions.as_ref().map(|_| now);
    let replace_labels = if labels.is_some() {
        "labels = excluded.labels, "
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO agent_machines (provider, machine, labels, first_seen, last_seen, \
         sessions, sessions_reported_at) VALUES ($1, $2, $3, $4, $4, $5, $6) \
         ON CONFLICT (provider, machine) DO UPDATE SET {replace_labels}\
         last_seen = excluded.last_seen, sessions = excluded.sessions, \
         sessions_reported_at = excluded.sessions_reported_at"
    );
    sqlx::query(&sql)
        .bind(provider)
        .bind(machine)
        .bind(labels.unwrap_or("{}"))
        .bind(now)
        .bind(sessions)
        .bind(reported_at)
        .execute(&mut *connection)
        .await
        .map_err(StoreError::query("register agent machine"))?;
    Ok(())
}

/// Columns of [`MachineRow`], in order.
const MACHINE_COLUMNS: &str = "machine, labels, last_seen, sessions, sessions_reported_at";

/// Machine ids per `IN` list, well below the bound-parameter limits of SQLite (32766) and
/// PostgreSQL (65535).
const MACHINES_PER_QUERY: usize = 500;

/// An `agent_machines` row: machine, labels, last check-in, sessions, their report time.
type MachineRow = (String, String, String, Option<String>, Option<String>);

fn machine_from_row(row: MachineRow) -> Result<AgentMachine, StoreError> {
    let (machine, labels, last_seen, sessions, reported_at) = row;
    Ok(AgentMachine {
        machine,
        labels: parse_labels(&labels)?,
        last_seen: super::parse_time(&last_seen)?,
        sessions: parse_sessions(sessions.as_deref(), reported_at.as_deref())?,
    })
}

/// Reads stored labels; values that are not strings keep their JSON text.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let labels: serde_json::Value =
        serde_json::from_str(text).map_err(StoreError::corrupt("agent labels"))?;
    let Some(object) = labels.as_object() else {
        return Ok(BTreeMap::new());
    };
    Ok(object
        .iter()
        .map(|(key, value)| {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            (key.clone(), text)
        })
        .collect())
}

/// Reads stored sessions; both columns are NULL for a check-in that carried none.
fn parse_sessions(
    sessions: Option<&str>,
    reported_at: Option<&str>,
) -> Result<Option<AgentSessions>, StoreError> {
    let (Some(sessions), Some(reported_at)) = (sessions, reported_at) else {
        return Ok(None);
    };
    Ok(Some(AgentSessions {
        sessions: serde_json::from_str(sessions).map_err(StoreError::corrupt("agent sessions"))?,
        reported_at: super::parse_time(reported_at)?,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vdi_contracts::{AgentContainerState, AgentReport};

    use crate::store::{testing, Store};

    async fn labels_of(store: &Store, machine: &str) -> BTreeMap<String, String> {
        let machines = store.agent_machines("p1").await.unwrap();
        let found = machines.into_iter().find(|m| m.machine == machine);
        found.expect("machine registered").labels
    }

    #[tokio::test]
    async fn check_in_keeps_labels_when_absent() {
        for store in testing::all().await {
            let backend = store.backend();
            let north = BTreeMap::from([("site".to_owned(), "north".to_owned())]);
            let report = AgentReport {
                machine: "LT-1".into(),
                container_id: "epic".into(),
                version: "2.0".into(),
                state: AgentContainerState::Installed,
                detail: String::new(),
            };

            store
                .record_agent_check_in("p1", "LT-1", &[report], Some(&north), Some(&[]))
                .await
                .unwrap();
            assert_eq!(labels_of(&store, "LT-1").await, north, "{backend:?}");
            let reports = store.agent_reports("p1", "epic").await.unwrap();
            assert_eq!(reports.len(), 1, "{backend:?}");

            store
                .record_agent_check_in("p1", "LT-1", &[], None, None)
                .await
                .unwrap();
            assert_eq!(labels_of(&store, "LT-1").await, north, "{backend:?}");
            let machines = store.agent_machines("p1").await.unwrap();
            assert_eq!(machines[0].sessions, None, "{backend:?}: sessions");

            store.register_agent_machine("p1", "LT-1").await.unwrap();
            assert_eq!(labels_of(&store, "LT-1").await, north, "{backend:?}: poll");

            store
                .record_agent_check_in("p1", "LT-1", &[], Some(&BTreeMap::new()), None)
                .await
                .unwrap();
            assert!(labels_of(&store, "LT-1").await.is_empty(), "{backend:?}");

            store
                .record_agent_check_in("p1", "LT-2", &[], None, None)
                .await
                .unwrap();
            assert!(
                labels_of(&store, "LT-2").await.is_empty(),
                "{backend:?}: new"
            );
        }
    }
}
