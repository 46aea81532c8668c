//! Agent report bodies through the router: old bodies without sessions, new ones with them,
//! and rejected session values.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;
use vdi_contracts::{Session, SessionState};

use crate::api::{router, ApiToken, AppState, Role};
use crate::engine::{Engine, EngineSettings, ProviderEntry, ProviderSource, Registry};
use crate::store::testing;
use crate::testing::MemoryProvider;

const AGENT: &str = "agent-token-sessions";

async fn app() -> (Router, Arc<AppState>) {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(3, 0));
    let entry = ProviderEntry::new("mem", "memory", "test", ProviderSource::Builtin, provider);
    let registry = Registry::new(vec![entry]).expect("registry");
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(registry),
        EngineSettings::default(),
    ));
    let state = Arc::new(AppState {
        store,
        engine,
        tokens: Vec::new(),
        body_limit: 64 * 1024,
        metrics_token: None,
        agent_tokens: vec![(
            "mem".into(),
            ApiToken::new("mem-agents", Role::Viewer, &SecretString::from(AGENT)),
        )],
    });
    (router(state.clone()), state)
}

async fn report(app: &Router, body: &Value) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/agent/report")
        .header(header::AUTHORIZATION, format!("Bearer {AGENT}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn stored_sessions(state: &AppState, machine: &str) -> Option<Vec<Session>> {
    let machines = state.store.agent_machines("mem").await.expect("machines");
    let found = machines
        .into_iter()
        .find(|m| m.machine == machine)
        .expect("machine registered");
    found.sessions.map(|s| s.sessions)
}

#[tokio::test]
async fn report_without_sessions_is_accepted() {
    let (app, state) = app().await;
    let body = json!({"machine": "LT-1", "containers": [
        {"id": "epic", "version": "2.0", "state": "installed"}]});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(stored_sessions(&state, "LT-1").await, None);
}

#[tokio::test]
async fn report_with_sessions_is_stored() {
    let (app, state) = app().await;
    let body = json!({"machine": "LT-2", "containers": [], "labels": {"site": "north"},
        "sessions": [{"user": "HOSP\\nurse1", "state": "active"},
                     {"user": "HOSP\\nurse2", "state": "disconnected"}]});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    let sessions = stored_sessions(&state, "LT-2").await.expect("sessions");
    assert_eq!(
        sessions,
        vec![
            Session {
                user: "HOSP\\nurse1".into(),
                state: SessionState::Active,
            },
            Session {
                user: "HOSP\\nurse2".into(),
                state: SessionState::Disconnected,
            },
        ]
    );
}

#[tokio::test]
async fn later_report_replaces_sessions() {
    let (app, state) = app().await;
    let busy = json!({"machine": "LT-3", "containers": [],
        "sessions": [{"user": "HOSP\\nurse1", "state": "active"}]});
    let idle = json!({"machine": "LT-3", "containers": [], "sessions": []});
    let old = json!({"machine": "LT-3", "containers": [], "sessions": null});

    report(&app, &busy).await;
    assert_eq!(
        stored_sessions(&state, "LT-3").await.map(|s| s.len()),
        Some(1)
    );
    report(&app, &idle).await;
    assert_eq!(stored_sessions(&state, "LT-3").await, Some(Vec::new()));
    report(&app, &old).await;
    assert_eq!(stored_sessions(&state, "LT-3").await, None);
}

#[tokio::test]
async fn bad_session_values_are_rejected() {
    let (app, state) = app().await;
    let cases = [
        (
            json!([{"user": "HOSP\\nurse1", "state": "locked"}]),
            "\"locked\"",
        ),
        (json!([{"user": "", "state": "active"}]), "sessions[0].user"),
        (
            json!([{"user": "a", "state": "active"}, {"user": "b\u{7}", "state": "active"}]),
            "sessions[1].user",
        ),
    ];
    for (sessions, named) in cases {
        let body = json!({"machine": "LT-4", "containers": [], "sessions": sessions});
        let (status, error) = report(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sessions}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{message}");
    }
    let machines = state.store.agent_machines("mem").await.expect("machines");
    assert!(
        machines.is_empty(),
        "a rejected report registered {machines:?}"
    );
}

#[tokio::test]
async fn session_state_must_be_text() {
    let (app, _) = app().await;
    let body = json!({"machine": "LT-5", "containers": [],
        "sessions": [{"user": "HOSP\\nurse1", "state": 1}]});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid JSON body"), "{message}");
}

#[tokio::test]
async fn too_many_sessions_are_rejected() {
    let (app, _) = app().await;
    let sessions: Vec<Value> = (0..=super::MAX_SESSIONS)
        .map(|i| json!({"user": format!("u{i}"), "state": "active"}))
        .collect();
    let body = json!({"machine": "LT-6", "containers": [], "sessions": sessions});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 1000"), "{message}");
}
