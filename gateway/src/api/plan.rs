//! `POST /v1/plan`: what a `PUT /v1/assignments/{id}` with the same body would do, with no
//! broker write and no stored change.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::engine::plan::Plan;
use crate::model::{validate_assignment_id, AssignmentSpec};

/// `POST /v1/plan` with an assignment body plus `"assignment_id"`.
pub async fn plan(
    State(state): State<Arc<AppState>>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<Plan>, ApiError> {
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
    Ok(Json(state.engine.plan(&id, &spec).await?))
}
