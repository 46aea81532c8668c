//! The control-plane HTTP API.
//!
//! Every `/v1` route except the agent channel and the OpenAPI document needs a bearer token.
//! Errors share one body shape, and request bodies are limited in size.

mod agent;
mod assignments;
pub mod auth;
mod environments;
pub mod error;
mod health;
mod json;
mod openapi;
mod plan;
mod providers;
mod records;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{middleware, Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::store::Store;
pub use auth::{ApiToken, Role};
use error::ApiError;
use json::BodyLimit;

/// State every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The engine, woken after each change.
    pub engine: Arc<Engine>,
    /// Control-plane tokens.
    pub tokens: Vec<ApiToken>,
    /// Request body limit in bytes.
    pub body_limit: usize,
    /// Token `/metrics` requires, if any.
    pub metrics_token: Option<ApiToken>,
    /// Agent tokens with the provider each one belongs to.
    pub agent_tokens: Vec<(String, ApiToken)>,
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let v1 = Router::new()
        .route("/providers", get(providers::list))
        .route("/providers/{name}/targets", get(providers::targets))
        .route("/providers/{name}/machines", get(providers::machines))
        .route("/assignments", get(assignments::list))
        .route(
            "/assignments/{id}",
            get(assignments::get)
                .put(assignments::put)
                .delete(assignments::remove),
        )
        .route("/assignments/{id}/machines", get(assignments::machines))
        .route("/assignments/{id}/rollback", post(assignments::rollback))
        .route("/assignments/{id}/pause", post(assignments::pause))
        .route("/assignments/{id}/resume", post(assignments::resume))
        .route(
            "/assignments/{id}/freeze-override",
            post(assignments::override_freeze),
        )
        .route("/plan", post(plan::plan))
        .route("/promote", post(environments::promote))
        .route(
            "/environments/{environment}/rollback",
            post(environments::rollback),
        )
        .route("/agent/desired", get(agent::desired))
        .route("/agent/report", post(agent::report))
        .route("/events", get(records::events))
        .route("/audit", get(records::audit))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .route("/healthz", get(health::liveness))
        .route("/readyz", get(health::readiness))
        .route("/metrics", get(health::metrics))
        .nest("/v1", v1)
        // Authentication runs only for requests that match a route, so an unknown path is a
        // 404 and not a misleading 401 or 403.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; see GET /v1/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::invalid(format!("{method} is not allowed on {}", uri.path()))
        .with_details(serde_json::json!({"status": StatusCode::METHOD_NOT_ALLOWED.as_u16()}))
}

/// Serves the API on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// Fails when the server cannot accept connections.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests;
