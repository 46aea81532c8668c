//! `/v1/providers`: configured brokers, their targets and machines.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vdi_contracts::{AgentContainerState, ContainerRef, Machine};

use super::error::ApiError;
use super::AppState;
use crate::engine::ProviderEntry;

/// Default and maximum machines per page.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 5000;

/// Assignments read per store query while collecting container ids.
const ASSIGNMENT_PAGE: i64 = 500;

/// `GET /v1/providers`.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut providers = Vec::new();
    for entry in state.engine.registry().all() {
        let health = match entry.health().await {
            Some(health) => json!(health),
            None => {
                json!({"status": "unreachable", "detail": "not checked yet", "checked_at": null})
            }
        };
        let description = entry.provider.describe();
        providers.push(json!({
            "name": entry.name, "kind": entry.kind, "environment": entry.environment,
            "source": entry.source, "health": health,
            "capabilities": description.capabilities, "limits": description.limits,
            "version": description.version,
        }));
    }
    Json(json!({"providers": providers}))
}

fn entry(state: &AppState, name: &str) -> Result<Arc<ProviderEntry>, ApiError> {
    state.engine.registry().get(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "provider {name:?} is not configured; configured providers: {}",
            state.engine.registry().names().join(", ")
        ))
    })
}

/// `GET /v1/providers/{name}/targets`.
pub async fn targets(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = entry(&state, &name)?;
    let targets = entry.provider.list_targets().await.map_err(|e| {
        ApiError::provider(format!("provider {name:?} failed to list targets: {e}"))
    })?;
    Ok(Json(json!({"targets": targets})))
}

/// Query of `GET /v1/providers/{name}/machines`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachinesQuery {
    target: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Position inside the provider's own paging: its cursor and how many items of that page
/// were already returned.
#[derive(Debug, Default, Serialize, Deserialize)]
struct MachineCursor {
    provider_cursor: Option<String>,
    skip: usize,
}

/// `GET /v1/providers/{name}/machines?target=ID`.
pub async fn machines(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<MachinesQuery>,
) -> Result<Json<Value>, ApiError> {
    let entry = entry(&state, &name)?;
    let target = query.target.ok_or_else(|| {
        ApiError::invalid("query parameter target is required; give a target id or name")
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit} is out of range; use 1 to {MAX_LIMIT}"
        )));
    }
    let mut position: MachineCursor = match query.cursor.as_deref() {
        None => MachineCursor::default(),
        Some(text) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "cursor {text:?} is not valid; pass the next_cursor of the previous page unchanged"
                ))
            })?,
    };
    let mut machines: Vec<Machine> = Vec::new();
    let next = loop {
        let page = entry
            .provider
            .list_machines(&target, position.provider_cursor.clone())
            .await
            .map_err(|e| match e.kind {
                vdi_contracts::ErrorKind::NotFound => {
                    ApiError::not_found(format!("provider {name:?} has no target {target:?}: {e}"))
                }
                _ => ApiError::provider(format!("provider {name:?} failed to list machines: {e}")),
            })?;
        let available = page.items.len().saturating_sub(position.skip);
        let wanted = limit - machines.len();
        machines.extend(page.items.into_iter().skip(position.skip).take(wanted));
        if available > wanted {
            position.skip += wanted;
            break Some(position);
        }
        match page.next_cursor {
            None => break None,
            Some(cursor) => {
                position = MachineCursor {
                    provider_cursor: Some(cursor),
                    skip: 0,
                };
                if machines.len() == limit {
                    break Some(position);
                }
            }
        }
    };
    let next_cursor = next.map(|p| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&p).unwrap_or_default())
    });
    let mut reported = if machines.is_empty() {
        HashMap::new()
    } else {
        agent_containers(&state, &name).await?
    };
    let machines: Vec<Value> = machines
        .iter()
        .map(|m| {
            let mut containers: BTreeSet<ContainerRef> = m.containers.iter().cloned().collect();
            containers.extend(reported.remove(&m.id).unwrap_or_default());
            json!({
                "id": m.id, "name": m.name, "dns_name": m.dns_name, "target": m.target,
                "state": m.state.as_str(), "sessions": m.sessions, "containers": containers,
            })
        })
        .collect();
    Ok(Json(
        json!({"machines": machines, "next_cursor": next_cursor}),
    ))
}

/// Returns, per machine id, the container versions that the machine's agent reported as
/// installed for `provider`.
///
/// Agent-delivered machines (Horizon, Windows 365 Business Cloud PCs, agent-only laptops) show
/// no gateway container on the broker, because the broker takes no part in the delivery. The
/// reports are read per container id of the stored assignments, since the agent channel
/// stores them by provider and container.
async fn agent_containers(
    state: &AppState,
    provider: &str,
) -> Result<HashMap<String, Vec<ContainerRef>>, ApiError> {
    let mut by_machine: HashMap<String, Vec<ContainerRef>> = HashMap::new();
    // Only providers with an agent token can receive reports.
    if !state.agent_tokens.iter().any(|(name, _)| name == provider) {
        return Ok(by_machine);
    }
    let mut container_ids = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let batch = state
            .store
            .assignments(after.as_deref(), ASSIGNMENT_PAGE)
            .await?;
        for assignment in &batch {
            container_ids.insert(assignment.spec.container.id.clone());
            container_ids.extend(assignment.previous.iter().map(|c| c.id.clone()));
        }
        match batch.last() {
            Some(last) if batch.len() as i64 == ASSIGNMENT_PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    for container_id in &container_ids {
        for report in state.store.agent_reports(provider, container_id).await? {
            if report.state == AgentContainerState::Installed {
                by_machine
                    .entry(report.machine)
                    .or_default()
                    .push(ContainerRef {
                        id: report.container_id,
                        version: report.version,
                    });
            }
        }
    }
    Ok(by_machine)
}
