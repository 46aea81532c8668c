//! Liveness, readiness and Prometheus metrics.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use vdi_contracts::HealthStatus;

use super::error::ApiError;
use super::AppState;
use crate::model::AssignmentState;

/// `GET /healthz`: the process responds.
pub async fn liveness() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store responds and every provider has been checked once.
pub async fn readiness(State(state): State<Arc<AppState>>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => json!({"status": "ok"}),
        Err(error) => {
            tracing::warn!(error = %error, "Readiness check: the store does not respond.");
            json!({"status": "unreachable"})
        }
    };
    let mut providers = serde_json::Map::new();
    let mut initialised = true;
    for entry in state.engine.registry().all() {
        let health = entry.health().await;
        initialised &= health.is_some();
        // Only the status: details (site names, account names, error texts) are for
        // authenticated callers of GET /v1/providers, and this endpoint needs no token.
        providers.insert(
            entry.name.clone(),
            health.map_or(
                json!({"status": "not checked yet"}),
                |h| json!({"status": h.status, "checked_at": h.checked_at}),
            ),
        );
    }
    let ready = store["status"] == "ok" && initialised;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "store": store, "providers": providers})),
    )
        .into_response()
}

/// `GET /metrics`: assignment, machine and provider gauges in Prometheus text format.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = presented.is_some_and(|p| expected.verify(p.trim()));
        if !ok {
            return Err(ApiError::unauthorized(
                "GET /metrics needs the configured metrics token",
            ));
        }
    }
    let mut text = String::new();
    let _ = writeln!(text, "# HELP vdigw_assignments Assignments by state.");
    let _ = writeln!(text, "# TYPE vdigw_assignments gauge");
    let mut counts = std::collections::HashMap::new();
    let mut after: Option<String> = None;
    let mut machine_totals = crate::model::Progress::default();
    loop {
        let page = state.store.assignments(after.as_deref(), 500).await?;
        if page.is_empty() {
            break;
        }
        for assignment in &page {
            *counts.entry(assignment.state).or_insert(0u64) += 1;
            let (progress, _) = state.store.progress(&assignment.id).await?;
            machine_totals.applied += progress.applied;
            machine_totals.pending += progress.pending;
            machine_totals.deferred += progress.deferred;
            machine_totals.failed += progress.failed;
            machine_totals.excluded += progress.excluded;
        }
        after = page.last().map(|a| a.id.clone());
    }
    for state_name in AssignmentState::ALL {
        let count = counts.get(&state_name).copied().unwrap_or(0);
        let _ = writeln!(
            text,
            "vdigw_assignments{{state=\"{}\"}} {count}",
            state_name.as_str()
        );
    }
    let _ = writeln!(text, "# HELP vdigw_machines Machine placements by state.");
    let _ = writeln!(text, "# TYPE vdigw_machines gauge");
    for (name, value) in [
        ("applied", machine_totals.applied),
        ("pending", machine_totals.pending),
        ("deferred", machine_totals.deferred),
        ("failed", machine_totals.failed),
        ("excluded", machine_totals.excluded),
    ] {
        let _ = writeln!(text, "vdigw_machines{{state=\"{name}\"}} {value}");
    }
    let _ = writeln!(
        text,
        "# HELP vdigw_provider_up Provider health (1 ok, 0.5 degraded, 0 otherwise)."
    );
    let _ = writeln!(text, "# TYPE vdigw_provider_up gauge");
    for entry in state.engine.registry().all() {
        let value = match entry.health().await.map(|h| h.status) {
            Some(HealthStatus::Ok) => 1.0,
            Some(HealthStatus::Degraded) => 0.5,
            _ => 0.0,
        };
        let _ = writeln!(
            text,
            "vdigw_provider_up{{provider=\"{}\"}} {value}",
            entry.name
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
