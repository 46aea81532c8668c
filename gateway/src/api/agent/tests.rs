//! Agent channel requests through the router: report bodies with and without sessions and
//! labels, rejected values and limits, and machine ids in polls.

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

async fn desired(app: &Router, query: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .uri(format!("/v1/agent/desired?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {AGENT}"))
        .body(Body::empty())
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

fn error_message(error: &Value) -> &str {
    error["error"]["message"].as_str().unwrap_or_default()
}

async fn stored_labels(state: &AppState, machine: &str) -> Option<Vec<(String, String)>> {
    let machines = state.store.agent_machines("mem").await.expect("machines");
    let found = machines.into_iter().find(|m| m.machine == machine)?;
    Some(found.labels.into_iter().collect())
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn labels_must_be_object() {
    let (app, state) = app().await;
    let cases = [
        (json!("ward=3"), "a string \"ward=3\""),
        (json!([1, 2, 3]), "an array [1,2,3]"),
        (json!(7), "a number 7"),
    ];
    for (labels, named) in cases {
        let body = json!({"machine": "LT-10", "containers": [], "labels": labels});
        let (status, error) = report(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{labels}");
        let message = error_message(&error);
        assert!(message.starts_with("labels is "), "{message}");
        assert!(message.contains(named), "{message}");
    }
    assert_eq!(stored_labels(&state, "LT-10").await, None);
}

#[tokio::test]
async fn label_values_must_be_strings() {
    let (app, state) = app().await;
    let cases = [
        (json!({"ward": 3}), "labels[\"ward\"] is a number"),
        (
            json!({"site": "north", "icu": true}),
            "labels[\"icu\"] is a boolean",
        ),
        (json!({"ward": null}), "labels[\"ward\"] is null"),
        (json!({"ward": ["3"]}), "labels[\"ward\"] is an array"),
    ];
    for (labels, named) in cases {
        let body = json!({"machine": "LT-11", "containers": [], "labels": labels});
        let (status, error) = report(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{labels}");
        let message = error_message(&error);
        assert!(message.contains(named), "{message}");
    }
    assert_eq!(stored_labels(&state, "LT-11").await, None);
}

#[tokio::test]
async fn report_limits_are_enforced() {
    use super::check::{
        MAX_CONTAINERS, MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_MACHINE_LEN,
    };

    let (app, state) = app().await;
    let containers: Vec<Value> = (0..=MAX_CONTAINERS)
        .map(|i| json!({"id": format!("c{i}"), "version": "1", "state": "installed"}))
        .collect();
    let many_labels: serde_json::Map<String, Value> = (0..=MAX_LABELS)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let long_key = "k".repeat(MAX_LABEL_KEY_LEN + 1);
    let long_value = "v".repeat(MAX_LABEL_VALUE_LEN + 1);
    let cases = [
        (
            json!({"machine": "LT-12", "containers": containers}),
            vec!["containers has 501 entries", "maximum is 500"],
        ),
        (
            json!({"machine": "LT-12", "containers": [], "labels": many_labels}),
            vec!["labels has 65 entries", "maximum is 64"],
        ),
        (
            json!({"machine": "LT-12", "containers": [], "labels": {long_key: "x"}}),
            vec!["labels key \"kkkk", "has 129 characters", "1 to 128"],
        ),
        (
            json!({"machine": "LT-12", "containers": [], "labels": {"": "x"}}),
            vec!["labels key \"\" has 0 characters"],
        ),
        (
            json!({"machine": "LT-12", "containers": [], "labels": {"ward": long_value}}),
            vec![
                "labels[\"ward\"] \"vvvv",
                "has 257 characters",
                "maximum is 256",
            ],
        ),
        (
            json!({"machine": "LT-12", "containers": [], "labels": {"ward": "3\n"}}),
            vec!["labels[\"ward\"]", "U+000A"],
        ),
        (
            json!({"machine": "m".repeat(MAX_MACHINE_LEN + 1), "containers": []}),
            vec!["machine \"mmmm", "has 257 characters", "maximum is 256"],
        ),
    ];
    for (body, expected) in cases {
        let (status, error) = report(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected:?}");
        let message = error_message(&error);
        for part in expected {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
    }
    let machines = state.store.agent_machines("mem").await.expect("machines");
    assert!(machines.is_empty(), "a rejected report stored {machines:?}");
    let reports = state
        .store
        .agent_reports("mem", "c0")
        .await
        .expect("reports");
    assert!(reports.is_empty(), "a rejected report stored {reports:?}");
}

#[tokio::test]
async fn report_limits_allow_maximum() {
    use super::check::{MAX_CONTAINERS, MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN};

    let (app, state) = app().await;
    let containers: Vec<Value> = (0..MAX_CONTAINERS)
        .map(|i| json!({"id": format!("c{i}"), "version": "1", "state": "installed"}))
        .collect();
    let mut labels: serde_json::Map<String, Value> = (1..MAX_LABELS)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    labels.insert(
        "k".repeat(MAX_LABEL_KEY_LEN),
        json!("v".repeat(MAX_LABEL_VALUE_LEN)),
    );
    let body = json!({"machine": "LT-13", "containers": containers, "labels": labels});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    let stored = stored_labels(&state, "LT-13").await.expect("registered");
    assert_eq!(stored.len(), MAX_LABELS);
    let last = state
        .store
        .agent_reports("mem", "c499")
        .await
        .expect("reports");
    assert_eq!(last.len(), 1);
}

#[tokio::test]
async fn report_without_labels_keeps_them() {
    let (app, state) = app().await;
    let north = labels(&[("site", "north")]);
    let first = json!({"machine": "LT-14", "containers": [], "labels": {"site": "north"}});
    let absent = json!({"machine": "LT-14", "containers": [], "sessions": []});
    let null = json!({"machine": "LT-14", "containers": [], "labels": null});
    let cleared = json!({"machine": "LT-14", "containers": [], "labels": {}});

    let (status, error) = report(&app, &first).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(stored_labels(&state, "LT-14").await, Some(north.clone()));

    let (status, error) = report(&app, &absent).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(
        stored_labels(&state, "LT-14").await,
        Some(north.clone()),
        "absent labels"
    );
    assert_eq!(stored_sessions(&state, "LT-14").await, Some(Vec::new()));

    let (status, error) = report(&app, &null).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(
        stored_labels(&state, "LT-14").await,
        Some(north),
        "null labels"
    );

    let (status, error) = report(&app, &cleared).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(stored_labels(&state, "LT-14").await, Some(Vec::new()));
}

#[tokio::test]
async fn report_without_labels_registers_machine() {
    let (app, state) = app().await;
    let body = json!({"machine": "LT-15", "containers": []});
    let (status, error) = report(&app, &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    assert_eq!(stored_labels(&state, "LT-15").await, Some(Vec::new()));
}

#[tokio::test]
async fn rejected_session_stores_nothing() {
    let (app, state) = app().await;
    let before = json!({"machine": "LT-16", "labels": {"site": "north"},
        "containers": [{"id": "epic", "version": "1.0", "state": "installed"}],
        "sessions": [{"user": "HOSP\\nurse1", "state": "active"}]});
    let (status, error) = report(&app, &before).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");

    let locked = json!({"machine": "LT-16", "labels": {"site": "south"},
        "containers": [{"id": "epic", "version": "2.0", "state": "installed"},
                       {"id": "pacs", "version": "5.1", "state": "failed", "detail": "disk full"}],
        "sessions": [{"user": "HOSP\\nurse1", "state": "locked"}]});
    let (status, error) = report(&app, &locked).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error_message(&error);
    assert!(message.contains("\"locked\""), "{message}");
    assert!(
        message.contains("its 2 container install results were not recorded"),
        "{message}"
    );

    let epic = state
        .store
        .agent_reports("mem", "epic")
        .await
        .expect("epic");
    assert_eq!(epic.len(), 1);
    assert_eq!(epic[0].version, "1.0");
    let pacs = state
        .store
        .agent_reports("mem", "pacs")
        .await
        .expect("pacs");
    assert!(pacs.is_empty(), "{pacs:?}");
    assert_eq!(
        stored_labels(&state, "LT-16").await,
        Some(labels(&[("site", "north")]))
    );
    assert_eq!(
        stored_sessions(&state, "LT-16").await,
        Some(vec![Session {
            user: "HOSP\\nurse1".into(),
            state: SessionState::Active,
        }])
    );
}

#[tokio::test]
async fn desired_checks_machine_id() {
    let (app, state) = app().await;
    let long = "m".repeat(super::check::MAX_MACHINE_LEN + 1);
    let cases = [
        (format!("machine={long}"), "has 257 characters"),
        ("machine=".to_owned(), "machine is empty"),
        ("machine=LT%0A17".to_owned(), "U+000A"),
        ("machine=%20LT-17".to_owned(), "whitespace"),
        (String::new(), "query parameter machine is required"),
    ];
    for (query, expected) in cases {
        let (status, error) = desired(&app, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let message = error_message(&error);
        assert!(message.contains(expected), "{query}: {message}");
    }
    let machines = state.store.agent_machines("mem").await.expect("machines");
    assert!(
        machines.is_empty(),
        "a rejected poll registered {machines:?}"
    );
}

#[tokio::test]
async fn poll_registers_and_keeps_labels() {
    let (app, state) = app().await;
    let (status, body) = desired(&app, "machine=LT-18").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["machine"], "LT-18");
    assert_eq!(stored_labels(&state, "LT-18").await, Some(Vec::new()));

    let labelled = json!({"machine": "LT-18", "containers": [], "labels": {"site": "north"},
        "sessions": []});
    let (status, error) = report(&app, &labelled).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{error}");
    let (status, body) = desired(&app, "machine=LT-18").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        stored_labels(&state, "LT-18").await,
        Some(labels(&[("site", "north")]))
    );
    assert_eq!(stored_sessions(&state, "LT-18").await, Some(Vec::new()));
}
