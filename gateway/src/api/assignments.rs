//! `/v1/assignments`: desired state in, status documents out.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::engine::rollback::{rollback_history, rollback_target, NoRollbackTarget};
use crate::model::{
    validate_assignment_id, Assignment, AssignmentSpec, AssignmentState, PlacementState,
};
use crate::store::PutOutcome;

/// Default and maximum page sizes of list endpoints.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// Builds the status document of an assignment.
pub async fn status_document(state: &AppState, assignment: &Assignment) -> Result<Value, ApiError> {
    let (progress, per_target) = state.store.progress(&assignment.id).await?;
    let statuses = state.store.target_statuses(&assignment.id).await?;
    let per_target: Vec<Value> = assignment
        .spec
        .targets
        .iter()
        .map(|t| {
            let counts = per_target
                .get(&(t.provider.clone(), t.target.clone()))
                .copied()
                .unwrap_or_default();
            let status = statuses
                .iter()
                .find(|s| s.provider == t.provider && s.target == t.target);
            json!({
                "provider": t.provider, "target": t.target,
                "target_id": status.map(|s| s.target_id.clone()),
                "total": counts.total, "applied": counts.applied, "pending": counts.pending,
                "deferred": counts.deferred, "failed": counts.failed,
                "excluded": counts.excluded,
                "published_versions": status.map(|s| s.published.clone()).unwrap_or_default(),
                "detail": status.map(|s| s.detail.clone()).unwrap_or_default(),
            })
        })
        .collect();
    let spec = &assignment.spec;
    Ok(json!({
        "id": assignment.id,
        "revision": assignment.revision,
        "container": spec.container,
        "targets": spec.targets,
        "activation": spec.activation,
        "rollout": spec.rollout,
        "window": spec.window,
        "state": assignment.state,
        "detail": assignment.detail,
        "previous_versions": assignment.previous.iter().map(|c| c.version.clone()).collect::<Vec<_>>(),
        "progress": {
            "total": progress.total, "applied": progress.applied, "pending": progress.pending,
            "deferred": progress.deferred, "failed": progress.failed,
            "excluded": progress.excluded,
        },
        "per_target": per_target,
        "current_wave": assignment.current_wave,
        "created_at": assignment.created_at,
        "updated_at": assignment.updated_at,
    }))
}

async fn load(state: &AppState, id: &str) -> Result<Assignment, ApiError> {
    validate_assignment_id(id).map_err(ApiError::invalid)?;
    state
        .store
        .assignment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assignment {id:?} does not exist")))
}

/// `PUT /v1/assignments/{id}`.
pub async fn put(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<AssignmentSpec>,
) -> Result<Response, ApiError> {
    validate_assignment_id(&id).map_err(ApiError::invalid)?;
    spec.validate().map_err(ApiError::invalid)?;
    check_targets(&state, &spec).await?;

    let outcome = state.store.put_assignment(&id, &spec, &caller.name).await?;
    let (status, assignment) = match outcome {
        PutOutcome::Changed(a) => {
            tracing::info!(
                assignment = %id, revision = a.revision, version = %spec.container.version,
                actor = %caller.name, "Stored a new revision."
            );
            state.engine.wake();
            (StatusCode::ACCEPTED, a)
        }
        PutOutcome::Unchanged(a) => (StatusCode::OK, a),
        PutOutcome::Removing(_) => {
            return Err(ApiError::conflict(format!(
                "assignment {id:?} is being removed; wait for state removed, then PUT again"
            )))
        }
    };
    Ok((status, Json(status_document(&state, &assignment).await?)).into_response())
}

/// Rejects targets whose provider is not configured or that the provider does not offer.
pub(super) async fn check_targets(state: &AppState, spec: &AssignmentSpec) -> Result<(), ApiError> {
    let registry = state.engine.registry();
    for target in &spec.targets {
        let Some(entry) = registry.get(&target.provider) else {
            return Err(ApiError::unprocessable(format!(
                "provider {:?} is not configured; configured providers: {}",
                target.provider,
                registry.names().join(", ")
            )));
        };
        let targets = entry.provider.list_targets().await.map_err(|e| {
            ApiError::provider(format!(
                "provider {:?} could not list its targets: {e}",
                target.provider
            ))
        })?;
        let known = targets.iter().any(|t| {
            t.id == target.target
                || t.name == target.target
                || t.name.eq_ignore_ascii_case(&target.target)
        });
        if !known {
            return Err(ApiError::unprocessable(format!(
                "provider {:?} offers no target {:?}; GET /v1/providers/{}/targets lists them",
                target.provider, target.target, target.provider
            )));
        }
    }
    Ok(())
}

/// `GET /v1/assignments/{id}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let assignment = load(&state, &id).await?;
    Ok(Json(status_document(&state, &assignment).await?))
}

/// Query of list endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    provider: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(format!(
            "limit {n} is out of range; use 1 to {MAX_LIMIT}"
        ))),
    }
}

/// `GET /v1/assignments`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(query.limit)?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(AssignmentState::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {text:?} is not an assignment state; use one of {}",
                AssignmentState::ALL.map(AssignmentState::as_str).join(", ")
            ))
        })?),
    };
    let mut after = decode_cursor(query.cursor.as_deref())?;
    let mut documents = Vec::new();
    let mut next = None;
    // Filters apply after reading, so read further pages until the page is full.
    'pages: loop {
        let batch = state.store.assignments(after.as_deref(), limit).await?;
        let exhausted = (batch.len() as i64) < limit;
        for assignment in batch {
            after = Some(assignment.id.clone());
            let state_ok = wanted.is_none_or(|w| w == assignment.state);
            let provider_ok = query
                .provider
                .as_ref()
                .is_none_or(|p| assignment.spec.targets.iter().any(|t| &t.provider == p));
            if state_ok && provider_ok {
                documents.push(status_document(&state, &assignment).await?);
                if documents.len() as i64 == limit {
                    next = after.clone();
                    break 'pages;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(Json(json!({
        "assignments": documents,
        "next_cursor": next.map(|k| encode_cursor(&[k.as_str()])),
    })))
}

/// `GET /v1/assignments/{id}/machines`.
pub async fn machines(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    load(&state, &id).await?;
    let limit = page_limit(query.limit)?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(PlacementState::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {text:?} is not a machine state; use applied, pending, deferred, failed or excluded"
            ))
        })?),
    };
    let after: Option<Vec<String>> = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(decode_parts(cursor, 3)?),
    };
    let rows = state
        .store
        .assignment_placements(
            &id,
            wanted,
            after
                .as_ref()
                .map(|k| (k[0].as_str(), k[1].as_str(), k[2].as_str())),
            limit,
        )
        .await?;
    let next = (rows.len() as i64 == limit).then(|| {
        let last = &rows[rows.len() - 1];
        encode_cursor(&[&last.provider, &last.target, &last.machine])
    });
    let machines: Vec<Value> = rows
        .iter()
        .map(|p| {
            json!({
                "provider": p.provider, "target": p.target, "machine": p.machine,
                "name": p.machine_name, "state": p.state,
                "version": if p.state == PlacementState::Applied { &p.desired_version } else { &p.applied_version },
                "desired_version": p.desired_version, "detail": p.detail,
                "updated_at": p.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({"machines": machines, "next_cursor": next})))
}

/// Body of `POST /v1/assignments/{id}/rollback`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    to_version: Option<String>,
}

/// `POST /v1/assignments/{id}/rollback`.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Response, ApiError> {
    let assignment = load(&state, &id).await?;
    if matches!(
        assignment.state,
        AssignmentState::Removing | AssignmentState::Removed
    ) {
        return Err(ApiError::conflict(format!(
            "assignment {id:?} is {}; it cannot be rolled back",
            assignment.state.as_str()
        )));
    }
    let history = rollback_history(&state.store, &assignment).await?;
    let target = rollback_target(&assignment, &history, body.to_version.as_deref())
        .map_err(|refusal| refusal.into_api_error(&id))?;
    let reason = format!("requested by {}", caller.name);
    let rolled = state
        .store
        .start_rollback(&assignment, target, &caller.name, &reason)
        .await?;
    tracing::info!(
        assignment = %id, from = %assignment.spec.container.version, to = %target.version,
        actor = %caller.name, "Rollback requested."
    );
    state.engine.wake();
    let document = rollback_document(&state, &rolled, &assignment.spec.container.version).await?;
    Ok((StatusCode::ACCEPTED, Json(document)).into_response())
}

impl NoRollbackTarget {
    /// Converts to the API error of `POST /v1/assignments/{id}/rollback`: 422 for an unknown
    /// `to_version`, otherwise 409, with the version rolled back from in the details.
    pub(super) fn into_api_error(self, assignment: &str) -> ApiError {
        let details = json!({"assignment": assignment, "rolled_back_from": self.rolled_back_from});
        if self.unknown_version {
            ApiError::unprocessable(self.message)
        } else {
            ApiError::conflict(self.message).with_details(details)
        }
    }
}

/// Builds the status document of a rollback response: the status document with a `rollback`
/// object naming the version left (`from`) and the version being installed (`to`).
///
/// # Errors
/// Fails on store errors.
pub(super) async fn rollback_document(
    state: &AppState,
    rolled: &Assignment,
    from: &str,
) -> Result<Value, ApiError> {
    let mut document = status_document(state, rolled).await?;
    document["rollback"] = json!({"from": from, "to": rolled.spec.container.version});
    Ok(document)
}

/// `POST /v1/assignments/{id}/pause`.
pub async fn pause(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let assignment = load(&state, &id).await?;
    check_pausable(&assignment)?;
    let detail = format!("paused by {}", caller.name);
    state
        .store
        .set_assignment_state(&id, assignment.revision, AssignmentState::Paused, &detail)
        .await?;
    tracing::info!(assignment = %id, actor = %caller.name, "Rollout paused.");
    let current = load(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_document(&state, &current).await?),
    )
        .into_response())
}

/// Rejects pausing an assignment that is already paused or whose rollout has ended, with 409
/// naming the assignment and its state.
fn check_pausable(assignment: &Assignment) -> Result<(), ApiError> {
    let id = &assignment.id;
    let current = assignment.state.as_str();
    let message = match assignment.state {
        AssignmentState::Pending
        | AssignmentState::WaitingForWindow
        | AssignmentState::RollingOut
        | AssignmentState::RollingBack => return Ok(()),
        AssignmentState::Paused => format!(
            "assignment {id:?} is already paused; resume it with POST /v1/assignments/{id}/resume"
        ),
        AssignmentState::Converged
        | AssignmentState::RolledBack
        | AssignmentState::Failed
        | AssignmentState::Removing
        | AssignmentState::Removed => format!(
            "assignment {id:?} is {current}, so there is no rollout to pause; only pending, \
             waiting_for_window, rolling_out and rolling_back assignments can be paused"
        ),
    };
    Err(ApiError::conflict(message).with_details(json!({"assignment": id, "state": current})))
}

/// Rejects resuming an assignment that is neither paused nor failed, with 409 naming the
/// assignment and its state.
fn check_resumable(assignment: &Assignment) -> Result<(), ApiError> {
    if matches!(
        assignment.state,
        AssignmentState::Paused | AssignmentState::Failed
    ) {
        return Ok(());
    }
    let id = &assignment.id;
    let current = assignment.state.as_str();
    Err(ApiError::conflict(format!(
        "assignment {id:?} is {current}, not paused; only paused or failed assignments can be \
         resumed"
    ))
    .with_details(json!({"assignment": id, "state": current})))
}

/// `POST /v1/assignments/{id}/resume`.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let assignment = load(&state, &id).await?;
    check_resumable(&assignment)?;
    let rolling_back = state
        .store
        .revision_reason(&id, assignment.revision)
        .await?
        .is_some_and(|r| r.starts_with("rollback"));
    let next = if rolling_back {
        AssignmentState::RollingBack
    } else {
        AssignmentState::RollingOut
    };
    let detail = format!("resumed by {}", caller.name);
    state
        .store
        .set_assignment_state(&id, assignment.revision, next, &detail)
        .await?;
    tracing::info!(assignment = %id, actor = %caller.name, "Rollout resumed.");
    state.engine.wake();
    let current = load(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_document(&state, &current).await?),
    )
        .into_response())
}

/// `DELETE /v1/assignments/{id}`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let assignment = load(&state, &id).await?;
    if !matches!(
        assignment.state,
        AssignmentState::Removing | AssignmentState::Removed
    ) {
        let detail = format!("removal requested by {}", caller.name);
        state
            .store
            .set_assignment_state(&id, assignment.revision, AssignmentState::Removing, &detail)
            .await?;
        tracing::info!(assignment = %id, actor = %caller.name, "Removal requested.");
        state.engine.wake();
    }
    let current = load(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_document(&state, &current).await?),
    )
        .into_response())
}

/// Body of `POST /v1/assignments/{id}/freeze-override`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeOverrideBody {
    freeze: String,
    reason: String,
}

/// `POST /v1/assignments/{id}/freeze-override`: lets the current revision roll out during a
/// named freeze. Needs the admin role; the override is audited.
pub async fn override_freeze(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<FreezeOverrideBody>,
) -> Result<Response, ApiError> {
    let assignment = load(&state, &id).await?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "reason is empty; say why the freeze is overridden, for the audit trail",
        ));
    }
    let known: Vec<&str> = state
        .engine
        .freezes()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    if !known.contains(&body.freeze.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "freeze {:?} is not configured; configured freezes: {}",
            body.freeze,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    state
        .store
        .add_freeze_override(
            &id,
            assignment.revision,
            &body.freeze,
            &caller.name,
            &body.reason,
        )
        .await?;
    tracing::warn!(
        assignment = %id, revision = assignment.revision, freeze = %body.freeze,
        actor = %caller.name, reason = %body.reason, "Change freeze overridden."
    );
    state.engine.wake();
    let current = load(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_document(&state, &current).await?),
    )
        .into_response())
}

/// Encodes cursor key parts as URL-safe base64 of a JSON array.
pub fn encode_cursor(parts: &[&str]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(parts).unwrap_or_default())
}

fn decode_parts(cursor: &str, count: usize) -> Result<Vec<String>, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "cursor {cursor:?} is not valid; pass the next_cursor of the previous page unchanged"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if parts.len() == count {
        Ok(parts)
    } else {
        Err(invalid())
    }
}

fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .map(|c| decode_parts(c, 1).map(|mut parts| parts.remove(0)))
        .transpose()
}
