//! `/v1/agent/*`: agents poll for their machine's desired containers (with an ETag) and report
//! what they installed and which user sessions are open. Agents authenticate with their
//! provider's agent token, which also scopes them to that provider's machines.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use vdi_contracts::{AgentContainerState, AgentReport, Session, SessionState};

use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use check::{check_container_count, check_labels, check_machine, MAX_SESSIONS, MAX_USER_LEN};

pub(super) mod check;

/// Returns the provider whose agent token the request carries.
fn agent_provider(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("missing agent token; send Authorization: Bearer <agent token>")
        })?;
    let mut found = None;
    for (provider, token) in &state.agent_tokens {
        if token.verify(presented) {
            found = Some(provider.clone());
        }
    }
    found.ok_or_else(|| {
        ApiError::unauthorized(
            "unknown agent token; agents use their provider's agent token, not a control-plane token",
        )
    })
}

/// Query of `GET /v1/agent/desired`.
#[derive(Debug, Deserialize)]
pub struct DesiredQuery {
    machine: Option<String>,
}

/// `GET /v1/agent/desired?machine=ID`.
pub async fn desired(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<DesiredQuery>,
) -> Result<Response, ApiError> {
    let provider = agent_provider(&state, &headers)?;
    let machine = query
        .machine
        .ok_or_else(|| ApiError::invalid("query parameter machine is required"))?;
    check_machine(&machine)?;
    state
        .store
        .register_agent_machine(&provider, &machine)
        .await?;
    let desired = state.store.agent_desired(&provider, &machine).await?;
    let containers: Vec<_> = desired
        .iter()
        .map(|d| {
            json!({
                "id": d.container.id, "version": d.container.version,
                "display_name": d.container.display_name, "launch": d.container.launch,
                "activation": d.activation,
            })
        })
        .collect();
    let body = json!({"machine": machine, "containers": containers});
    let etag = format!(
        "\"{}\"",
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    );
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let etag_header = HeaderValue::from_str(&etag)
        .map_err(|_| ApiError::internal("the computed ETag is not a valid header"))?;
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    Ok(([(header::ETAG, etag_header)], Json(body)).into_response())
}

/// One container in an agent report.
#[derive(Debug, Deserialize)]
pub struct ReportedContainer {
    id: String,
    version: String,
    state: AgentContainerState,
    #[serde(default)]
    detail: String,
}

/// One user session in an agent report.
#[derive(Debug, Deserialize)]
pub struct ReportedSession {
    user: String,
    /// Kept as text so that an unknown state gets a message naming it.
    state: String,
}

/// Body of `POST /v1/agent/report`; unknown fields from newer agents are ignored.
#[derive(Debug, Deserialize)]
pub struct ReportBody {
    machine: String,
    containers: Vec<ReportedContainer>,
    /// Labels of the machine. Absent or `null` keeps the stored labels, and `{}` clears them.
    #[serde(default)]
    labels: Option<serde_json::Value>,
    /// Sessions open on the machine, where an empty list means no session. Absent or `null`,
    /// from agents that do not report them, makes the machine's sessions unknown. Unlike
    /// labels, stored sessions are not kept, because a list from an earlier report may no
    /// longer be true.
    #[serde(default)]
    sessions: Option<Vec<ReportedSession>>,
}

/// Checks reported sessions and converts them to the contract's sessions. `containers` is the
/// number of container results in the same report, which a rejection also leaves unrecorded.
fn check_sessions(
    reported: Vec<ReportedSession>,
    containers: usize,
) -> Result<Vec<Session>, ApiError> {
    let not_recorded = format!(
        "The report was rejected as a whole, so its {containers} container install results \
         were not recorded either; send it again with the session fixed"
    );
    if reported.len() > MAX_SESSIONS {
        return Err(ApiError::invalid(format!(
            "sessions has {} entries; send at most {MAX_SESSIONS}",
            reported.len()
        )));
    }
    reported
        .into_iter()
        .enumerate()
        .map(|(index, session)| {
            let state = match session.state.as_str() {
                "active" => SessionState::Active,
                "disconnected" => SessionState::Disconnected,
                other => {
                    return Err(ApiError::invalid(format!(
                        "sessions[{index}].state {other:?} is not a session state; send \
                         \"active\" while a user is connected, even when locked or idle, and \
                         \"disconnected\" otherwise. {not_recorded}"
                    )))
                }
            };
            let user = session.user;
            if user.is_empty()
                || user.chars().count() > MAX_USER_LEN
                || user.chars().any(char::is_control)
            {
                return Err(ApiError::invalid(format!(
                    "sessions[{index}].user {user:?} must be 1 to {MAX_USER_LEN} characters \
                     without control characters. {not_recorded}"
                )));
            }
            Ok(Session { user, state })
        })
        .collect()
}

/// A report whose values passed every check, ready to store.
struct CheckedReport {
    machine: String,
    reports: Vec<AgentReport>,
    labels: Option<BTreeMap<String, String>>,
    sessions: Option<Vec<Session>>,
}

/// Checks every value of a report, so that a rejected report stores nothing.
fn check_report(body: ReportBody) -> Result<CheckedReport, ApiError> {
    check_machine(&body.machine)?;
    check_container_count(body.containers.len())?;
    let labels = body.labels.map(check_labels).transpose()?;
    let sessions = body
        .sessions
        .map(|sessions| check_sessions(sessions, body.containers.len()))
        .transpose()?;
    let reports = body
        .containers
        .into_iter()
        .map(|c| AgentReport {
            machine: body.machine.clone(),
            container_id: c.id,
            version: c.version,
            state: c.state,
            detail: c.detail,
        })
        .collect();
    Ok(CheckedReport {
        machine: body.machine,
        reports,
        labels,
        sessions,
    })
}

/// `POST /v1/agent/report`. The container results and the check-in are stored in one
/// transaction after every check has passed, so a rejected or failed report leaves no part
/// behind.
pub async fn report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReportBody>,
) -> Result<StatusCode, ApiError> {
    let provider = agent_provider(&state, &headers)?;
    let checked = check_report(body).inspect_err(|error| {
        tracing::debug!(provider = %provider, error = ?error, "Rejected an invalid agent report.");
    })?;
    state
        .store
        .record_agent_check_in(
            &provider,
            &checked.machine,
            &checked.reports,
            checked.labels.as_ref(),
            checked.sessions.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
