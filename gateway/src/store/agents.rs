//! Agent channel state: each machine's desired containers, what its agent reported, and the
//! machines agents registered on first check-in, with the sessions of their latest check-in.

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
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("record agent report"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit reports"))?;
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
    /// only read.
    ///
    /// # Errors
    /// Fails on database errors.
    pub async fn register_agent_machine(
        &self,
        provider: &str,
        machine: &str,
    ) -> Result<(), StoreError> {
        let known: Option<(String,)> = sqlx::query_as(
            "SELECT machine FROM agent_machines WHERE provider = $1 AND machine = $2",
        )
        .bind(provider)
        .bind(machine)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("read agent machine"))?;
        if known.is_none() {
            self.touch_agent_machine(provider, machine, &serde_json::json!({}), None)
                .await?;
        }
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
        let now = now_text();
        let sessions = sessions
            .map(serde_json::to_string)
            .transpose()
            .map_err(StoreError::corrupt("agent sessions"))?;
        let reported_at = sessions.as_ref().map(|_| now.clone());
        sqlx::query(
            "INSERT INTO agent_machines (provider, machine, labels, first_seen, last_seen, \
             sessions, sessions_reported_at) VALUES ($1, $2, $3, $4, $4, $5, $6) \
             ON CONFLICT (provider, machine) DO UPDATE SET labels = excluded.labels, \
             last_seen = excluded.last_seen, sessions = excluded.sessions, \
             sessions_reported_at = excluded.sessions_reported_at",
        )
        .bind(provider)
        .bind(machine)
        .bind(labels.to_string())
        .bind(&now)
        .bind(sessions)
        .bind(reported_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("register agent machine"))?;
        Ok(())
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
fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    let labels: serde_json::Value =
        serde_json::from_str(text).map_err(StoreError::corrupt("agent labels"))?;
    let Some(object) = labels.as_object() else {
        return Ok(std::collections::BTreeMap::new());
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
