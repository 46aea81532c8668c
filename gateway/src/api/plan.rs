//! `POST /v1/plan`: what a `PUT /v1/assignments/{id}` with the same body would do, with no
//! broker write and no stored change.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use vdi_contracts::TargetRef;

use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::model::{validate_assignment_id, AssignmentSpec, AssignmentState};

/// `POST /v1/plan` with an assignment body plus `"assignment_id"`.
pub async fn plan(
    State(state): State<Arc<AppState>>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid("the plan body must be a JSON object"))?;
    let id = match object.remove("assignment_id") {
        Some(Value::String(id)) => id,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "assignment_id must be a string, got {other}"
            )))
        }
        None => {
            return Err(ApiError::invalid(
                "assignment_id is missing; add the id the assignment would have",
            ))
        }
    };
    validate_assignment_id(&id).map_err(ApiError::invalid)?;
    let spec: AssignmentSpec = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("invalid plan body: {e}")))?;
    spec.validate().map_err(ApiError::invalid)?;
    // The same checks as PUT, so a plan for an unknown provider or target fails the same way.
    super::assignments::check_targets(&state, &spec).await?;
    let plan = state.engine.plan(&id, &spec).await?;
    let mut document = serde_json::to_value(&plan)
        .map_err(|e| ApiError::internal(format!("failed to encode the plan: {e}")))?;
    document["withdrawn_targets"] = Value::Array(withdrawn_targets(&state, &id, &spec).await?);
    Ok(Json(document))
}

/// Lists the targets the engine would withdraw the container from if `spec` were stored: the
/// targets of the existing assignment, and targets of earlier revisions not yet withdrawn,
/// that `spec` no longer names. Each entry carries the machines the gateway tracks there
/// (`machines`) and how many of them have the container (`applied`).
async fn withdrawn_targets(
    state: &AppState,
    id: &str,
    spec: &AssignmentSpec,
) -> Result<Vec<Value>, ApiError> {
    let Some(existing) = state.store.assignment(id).await? else {
        return Ok(Vec::new());
    };
    if existing.state == AssignmentState::Removed {
        return Ok(Vec::new());
    }
    let mut dropped: Vec<TargetRef> = Vec::new();
    let statuses = state.store.target_statuses(id).await?;
    let earlier = statuses
        .into_iter()
        .filter(|status| status.state != "removed")
        .map(|status| TargetRef {
            provider: status.provider,
            target: status.target,
        });
    for target in existing.spec.targets.iter().cloned().chain(earlier) {
        let still_targeted = spec
            .targets
            .iter()
            .any(|t| t.provider == target.provider && t.target == target.target);
        if !still_targeted && !dropped.contains(&target) {
            dropped.push(target);
        }
    }
    let (_, counts) = state.store.progress(id).await?;
    Ok(dropped
        .into_iter()
        .map(|target| {
            let count = counts
                .get(&(target.provider.clone(), target.target.clone()))
                .copied()
                .unwrap_or_default();
            json!({
                "provider": target.provider, "target": target.target,
                "machines": count.total, "applied": count.applied,
            })
        })
        .collect())
}
