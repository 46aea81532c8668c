//! Environments: promote a container version from one environment's assignments to
//! another's (`POST /v1/promote`), and roll an environment back (`POST
//! /v1/environments/{environment}/rollback`).
//!
//! An assignment belongs to an environment when every one of its targets is at a provider of
//! that environment (the provider's configured `environment`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::assignments::{rollback_document, status_document};
use super::auth::Caller;
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::engine::rollback::{rollback_history, rollback_target};
use crate::model::{Assignment, AssignmentState};
use crate::store::PutOutcome;

/// Returns the environment every target of the assignment belongs to, or `None` when its
/// targets span several environments or name unknown providers.
fn environment_of(state: &AppState, assignment: &Assignment) -> Option<String> {
    let registry = state.engine.registry();
    let mut found: Option<String> = None;
    for target in &assignment.spec.targets {
        let environment = registry.get(&target.provider)?.environment.clone();
        match &found {
            Some(existing) if *existing != environment => return None,
            _ => found = Some(environment),
        }
    }
    found
}

/// Lists the live assignments of a container in an environment.
async fn assignments_in(
    state: &AppState,
    container: &str,
    environment: &str,
) -> Result<Vec<Assignment>, ApiError> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.store.assignments(after.as_deref(), 500).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        for assignment in page {
            let live = !matches!(
                assignment.state,
                AssignmentState::Removing | AssignmentState::Removed
            );
            if live
                && assignment.spec.container.id == container
                && environment_of(state, &assignment).as_deref() == Some(environment)
            {
                found.push(assignment);
            }
        }
    }
    Ok(found)
}

/// Body of `POST /v1/promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    container: String,
    from: String,
    to: String,
    /// Promote even when the source has not converged.
    #[serde(default)]
    force: bool,
}

/// `POST /v1/promote`: gives every assignment of the container in environment `to` the
/// container (version and launch) that the assignment in environment `from` has.
pub async fn promote(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PromoteBody>,
) -> Result<Response, ApiError> {
    if body.from == body.to {
        return Err(ApiError::invalid(format!(
            "from and to are both {:?}; promote between two environments",
            body.from
        )));
    }
    let sources = assignments_in(&state, &body.container, &body.from).await?;
    let source = match sources.as_slice() {
        [] => {
            return Err(ApiError::not_found(format!(
                "no assignment of container {:?} targets only environment {:?}",
                body.container, body.from
            )))
        }
        [one] => one,
        several => {
            let versions: std::collections::BTreeSet<&str> = several
                .iter()
                .map(|a| a.spec.container.version.as_str())
                .collect();
            if versions.len() > 1 {
                return Err(ApiError::conflict(format!(
                    "environment {:?} runs container {:?} at several versions {versions:?}; promote from one version",
                    body.from, body.container
                )));
            }
            &several[0]
        }
    };
    if source.state != AssignmentState::Converged && !body.force {
        return Err(ApiError::conflict(format!(
            "assignment {:?} in {:?} is {}, not converged; wait for it or pass \"force\": true",
            source.id,
            body.from,
            source.state.as_str()
        )));
    }
    let targets = assignments_in(&state, &body.container, &body.to).await?;
    if targets.is_empty() {
        return Err(ApiError::not_found(format!(
            "no assignment of container {:?} targets only environment {:?}; create one with PUT /v1/assignments/{{id}}",
            body.container, body.to
        )));
    }
    let mut documents = Vec::new();
    for target in targets {
        let mut spec = target.spec.clone();
        spec.container = source.spec.container.clone();
        let outcome = state
            .store
            .put_assignment(&target.id, &spec, &caller.name)
            .await?;
        let (changed, assignment) = match outcome {
            PutOutcome::Changed(a) => (true, a),
            PutOutcome::Unchanged(a) | PutOutcome::Removing(a) => (false, a),
        };
        if changed {
            state
                .store
                .append_event(
                    &assignment.id,
                    "assignment.promoted",
                    &json!({"from": body.from, "to": body.to, "source": source.id,
                            "version": source.spec.container.version, "actor": caller.name}),
                )
                .await?;
        }
        tracing::info!(
            assignment = %assignment.id, from = %body.from, to = %body.to,
            version = %source.spec.container.version, actor = %caller.name, changed,
            "Promoted container version."
        );
        documents.push(status_document(&state, &assignment).await?);
    }
    state.engine.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"source": source.id, "version": source.spec.container.version,
                    "assignments": documents}),
        ),
    )
        .into_response())
}

/// Body of `POST /v1/environments/{environment}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRollbackBody {
    container: String,
    #[serde(default)]
    to_version: Option<String>,
}

/// `POST /v1/environments/{environment}/rollback`: rolls back every assignment of the
/// container in the environment to its previous (or the named) version, choosing each target
/// as `POST /v1/assignments/{id}/rollback` does.
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(environment): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<EnvironmentRollbackBody>,
) -> Result<Response, ApiError> {
    let assignments = assignments_in(&state, &body.container, &environment).await?;
    if assignments.is_empty() {
        return Err(ApiError::not_found(format!(
            "no assignment of container {:?} targets only environment {environment:?}",
            body.container
        )));
    }
    // Every assignment must have the version before any is changed, so an environment is
    // never left half rolled back.
    let mut plan = Vec::new();
    for assignment in &assignments {
        let history = rollback_history(&state.store, assignment).await?;
        let target = rollback_target(assignment, &history, body.to_version.as_deref()).map_err(
            |refusal| {
                ApiError::conflict(format!("{}; nothing was rolled back", refusal.message))
                    .with_details(json!({"assignment": assignment.id,
                                         "rolled_back_from": refusal.rolled_back_from}))
            },
        )?;
        plan.push((assignment, target));
    }
    let mut documents: Vec<Value> = Vec::new();
    for (assignment, target) in plan {
        let reason = format!("environment {environment} rolled back by {}", caller.name);
        let rolled = state
            .store
            .start_rollback(assignment, target, &caller.name, &reason)
            .await?;
        tracing::info!(
            assignment = %assignment.id, environment = %environment,
            from = %assignment.spec.container.version, to = %target.version,
            actor = %caller.name, "Rollback requested."
        );
        documents
            .push(rollback_document(&state, &rolled, &assignment.spec.container.version).await?);
    }
    state.engine.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"assignments": documents})),
    )
        .into_response())
}
