//! API tests through the router, with the in-memory provider.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, ApiToken, AppState, Role};
use crate::engine::{Engine, EngineSettings, ProviderEntry, ProviderSource, Registry};
use crate::model::AssignmentState;
use crate::store::testing;
use crate::testing::MemoryProvider;

const OPERATOR: &str = "operator-token-1";
const VIEWER: &str = "viewer-token-1";
const AGENT: &str = "agent-token-1";

async fn app() -> (Router, Arc<AppState>) {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(10, 0));
    let registry = Registry::new(vec![ProviderEntry::new(
        "mem",
        "memory",
        "test",
        ProviderSource::Builtin,
        provider,
    )])
    .unwrap();
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(registry),
        EngineSettings::default(),
    ));
    let state = Arc::new(AppState {
        store,
        engine,
        tokens: vec![
            ApiToken::new("cloudpager", Role::Operator, &SecretString::from(OPERATOR)),
            ApiToken::new("dashboard", Role::Viewer, &SecretString::from(VIEWER)),
        ],
        body_limit: 4096,
        metrics_token: None,
        agent_tokens: vec![(
            "mem".into(),
            ApiToken::new("mem-agents", Role::Viewer, &SecretString::from(AGENT)),
        )],
    });
    (router(state.clone()), state)
}

fn body(version: &str) -> Value {
    json!({
        "container": {"id": "epic-hyperspace", "version": version,
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": "--run epic"}},
        "targets": [{"provider": "mem", "target": "EHR Clinicians"}],
        "rollout": {"waves": [50, 100]}
    })
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
    content_type: Option<&str>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

async fn put(app: &Router, id: &str, value: &Value) -> (StatusCode, Value) {
    let (status, body, _) = call(
        app,
        Method::PUT,
        &format!("/v1/assignments/{id}"),
        Some(OPERATOR),
        Some(value.to_string()),
        Some("application/json"),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let (app, _) = app().await;
    let (status, _, _) = call(&app, Method::GET, "/healthz", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_token_is_401() {
    let (app, _) = app().await;
    let (status, body, headers) = call(&app, Method::GET, "/v1/providers", None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn wrong_token_is_401() {
    let (app, _) = app().await;
    let (status, _, _) = call(&app, Method::GET, "/v1/providers", Some("nope"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn viewer_cannot_put() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::PUT,
        "/v1/assignments/a1",
        Some(VIEWER),
        Some(body("1.0").to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn put_is_idempotent() {
    let (app, _) = app().await;
    let (first, document) = put(&app, "a1", &body("1.0")).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    assert_eq!(document["revision"], 1);
    assert_eq!(document["state"], "pending");
    let (second, _) = put(&app, "a1", &body("1.0")).await;
    assert_eq!(second, StatusCode::OK);
    let (third, document) = put(&app, "a1", &body("2.0")).await;
    assert_eq!(third, StatusCode::ACCEPTED);
    assert_eq!(document["previous_versions"], json!(["1.0"]));
}

#[tokio::test]
async fn invalid_json_is_400() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::PUT,
        "/v1/assignments/a1",
        Some(OPERATOR),
        Some("{\"container\": ".into()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn unknown_field_is_400() {
    let (app, _) = app().await;
    let mut value = body("1.0");
    value["containr"] = json!({});
    let (status, body) = put(&app, "a1", &value).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("containr"), "{message}");
}

#[tokio::test]
async fn bad_id_characters_are_400() {
    let (app, _) = app().await;
    let (status, body) = put(&app, "a%20b", &body("1.0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("assignment_id"));
}

#[tokio::test]
async fn bad_version_is_400() {
    let (app, _) = app().await;
    let (status, _) = put(&app, "a1", &body("1.0/../x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_provider_is_422() {
    let (app, _) = app().await;
    let mut value = body("1.0");
    value["targets"][0]["provider"] = json!("horizon-east");
    let (status, body) = put(&app, "a1", &value).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("mem"));
}

#[tokio::test]
async fn unknown_target_is_422() {
    let (app, _) = app().await;
    let mut value = body("1.0");
    value["targets"][0]["target"] = json!("Nope");
    let (status, _) = put(&app, "a1", &value).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (app, _) = app().await;
    let mut value = body("1.0");
    value["container"]["display_name"] = json!("x".repeat(8192));
    let (status, body) = put(&app, "a1", &value).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::PUT,
        "/v1/assignments/a1",
        Some(OPERATOR),
        Some(body("1.0").to_string()),
        Some("text/plain"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
}

#[tokio::test]
async fn unknown_assignment_is_404() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::GET,
        "/v1/assignments/missing",
        Some(VIEWER),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn rollback_needs_previous_version() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    let path = "/v1/assignments/a1/rollback";
    let (status, _, _) = call(&app, Method::POST, path, Some(OPERATOR), None, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    put(&app, "a1", &body("2.0")).await;
    let (status, document, _) = call(&app, Method::POST, path, Some(OPERATOR), None, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(document["state"], "rolling_back");
    assert_eq!(document["container"]["version"], "1.0");
}

#[tokio::test]
async fn rollback_to_unknown_version_is_422() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    put(&app, "a1", &body("2.0")).await;
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/v1/assignments/a1/rollback",
        Some(OPERATOR),
        Some(json!({"to_version": "0.9"}).to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn pause_and_resume() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    let (status, document, _) = call(
        &app,
        Method::POST,
        "/v1/assignments/a1/pause",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(document["state"], "paused");
    let (_, document, _) = call(
        &app,
        Method::POST,
        "/v1/assignments/a1/resume",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_eq!(document["state"], "rolling_out");
}

#[tokio::test]
async fn delete_then_put_conflicts() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    let (status, document, _) = call(
        &app,
        Method::DELETE,
        "/v1/assignments/a1",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(document["state"], "removing");
    let (status, _) = put(&app, "a1", &body("2.0")).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn engine_pass_shows_progress() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    state.engine.pass().await.unwrap();
    let (_, document, _) = call(
        &app,
        Method::GET,
        "/v1/assignments/a1",
        Some(VIEWER),
        None,
        None,
    )
    .await;
    assert_eq!(document["state"], "rolling_out");
    assert_eq!(document["progress"]["applied"], 5);
    assert_eq!(document["per_target"][0]["total"], 10);
    let (_, machines, _) = call(
        &app,
        Method::GET,
        "/v1/assignments/a1/machines?state=applied&limit=2",
        Some(VIEWER),
        None,
        None,
    )
    .await;
    assert_eq!(machines["machines"].as_array().unwrap().len(), 2);
    let cursor = machines["next_cursor"].as_str().unwrap();
    let (_, rest, _) = call(
        &app,
        Method::GET,
        &format!("/v1/assignments/a1/machines?state=applied&limit=10&cursor={cursor}"),
        Some(VIEWER),
        None,
        None,
    )
    .await;
    assert_eq!(rest["machines"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn provider_machines_page() {
    let (app, _) = app().await;
    let path = "/v1/providers/mem/machines?target=dg-1&limit=3";
    let (status, first, _) = call(&app, Method::GET, path, Some(VIEWER), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = first["machines"].as_array().unwrap().len();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (_, page, _) = call(
            &app,
            Method::GET,
            &format!("{path}&cursor={next}"),
            Some(VIEWER),
            None,
            None,
        )
        .await;
        seen += page["machines"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 10);
}

#[tokio::test]
async fn provider_machines_unknown_target_404() {
    let (app, _) = app().await;
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/v1/providers/mem/machines?target=nope",
        Some(VIEWER),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn audit_exports_csv() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    state.engine.pass().await.unwrap();
    let request = Request::builder()
        .uri("/v1/audit?assignment=a1")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .header(header::ACCEPT, "text/csv")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("time,actor,assignment"));
    assert_eq!(lines.len(), 1 + 6, "publish plus five tags:\n{text}");
    assert!(lines[1].contains(",cloudpager,a1,mem,"), "{}", lines[1]);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let (app, _) = app().await;
    let (status, document, _) = call(&app, Method::GET, "/v1/openapi.json", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/healthz",
        "/readyz",
        "/v1/providers",
        "/v1/providers/{name}/targets",
        "/v1/providers/{name}/machines",
        "/v1/assignments",
        "/v1/assignments/{id}",
        "/v1/assignments/{id}/machines",
        "/v1/assignments/{id}/rollback",
        "/v1/assignments/{id}/pause",
        "/v1/assignments/{id}/resume",
        "/v1/events",
        "/v1/audit",
        "/v1/plan",
        "/v1/promote",
        "/v1/environments/{environment}/rollback",
        "/v1/assignments/{id}/freeze-override",
        "/v1/agent/desired",
        "/v1/agent/report",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn agent_desired_etag_and_report() {
    let (app, state) = app().await;
    let container = vdi_contracts::Container {
        id: "epic".into(),
        version: "2.0".into(),
        display_name: None,
        launch: vdi_contracts::Launch {
            executable: "player.exe".into(),
            arguments: None,
            working_directory: None,
        },
    };
    state
        .store
        .set_agent_desired(
            "mem",
            "m001",
            &container,
            vdi_contracts::Activation::WhenIdle,
        )
        .await
        .unwrap();
    let (status, body, headers) = call(
        &app,
        Method::GET,
        "/v1/agent/desired?machine=m001",
        Some(AGENT),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["containers"][0]["version"], "2.0");
    assert_eq!(body["containers"][0]["activation"], "when_idle");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();

    let request = Request::builder()
        .uri("/v1/agent/desired?machine=m001")
        .header(header::AUTHORIZATION, format!("Bearer {AGENT}"))
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    let report = json!({"machine": "m001", "containers": [
        {"id": "epic", "version": "2.0", "state": "installed"}], "agent_version": "9.9"});
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/v1/agent/report",
        Some(AGENT),
        Some(report.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reports = state.store.agent_reports("mem", "epic").await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].version, "2.0");
}

#[tokio::test]
async fn agent_rejects_control_plane_token() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::GET,
        "/v1/agent/desired?machine=m001",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("agent token"));
}

#[tokio::test]
async fn agent_change_updates_etag() {
    let (app, state) = app().await;
    let path = "/v1/agent/desired?machine=m002";
    let (_, _, first) = call(&app, Method::GET, path, Some(AGENT), None, None).await;
    let mut container = vdi_contracts::Container {
        id: "epic".into(),
        version: "1.0".into(),
        display_name: None,
        launch: vdi_contracts::Launch {
            executable: "player.exe".into(),
            arguments: None,
            working_directory: None,
        },
    };
    state
        .store
        .set_agent_desired(
            "mem",
            "m002",
            &container,
            vdi_contracts::Activation::Immediate,
        )
        .await
        .unwrap();
    let (_, _, second) = call(&app, Method::GET, path, Some(AGENT), None, None).await;
    assert_ne!(first[header::ETAG], second[header::ETAG]);
    container.version = "1.1".into();
    state
        .store
        .set_agent_desired(
            "mem",
            "m002",
            &container,
            vdi_contracts::Activation::Immediate,
        )
        .await
        .unwrap();
    let (_, body, third) = call(&app, Method::GET, path, Some(AGENT), None, None).await;
    assert_ne!(second[header::ETAG], third[header::ETAG]);
    assert_eq!(body["containers"][0]["version"], "1.1");
}

async fn two_environment_app() -> (Router, Arc<AppState>) {
    let store = testing::sqlite().await;
    let entry = |name: &str, environment: &str| {
        ProviderEntry::new(
            name,
            "memory",
            environment,
            ProviderSource::Builtin,
            Arc::new(MemoryProvider::new(3, 0)),
        )
    };
    let registry =
        Registry::new(vec![entry("mem-test", "test"), entry("mem-prod", "prod")]).unwrap();
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(registry),
        EngineSettings::default(),
    ));
    let state = Arc::new(AppState {
        store,
        engine,
        tokens: vec![ApiToken::new(
            "cloudpager",
            Role::Operator,
            &SecretString::from(OPERATOR),
        )],
        body_limit: 4096,
        metrics_token: None,
        agent_tokens: Vec::new(),
    });
    (router(state.clone()), state)
}

fn environment_body(provider: &str, version: &str) -> Value {
    let mut value = body(version);
    value["targets"][0]["provider"] = json!(provider);
    value
}

#[tokio::test]
async fn promote_copies_converged_version() {
    let (app, state) = two_environment_app().await;
    put(&app, "epic-test", &environment_body("mem-test", "2.0")).await;
    put(&app, "epic-prod", &environment_body("mem-prod", "1.0")).await;
    let promote = json!({"container": "epic-hyperspace", "from": "test", "to": "prod"});
    let (status, body, _) = call(
        &app,
        Method::POST,
        "/v1/promote",
        Some(OPERATOR),
        Some(promote.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the test rollout has not converged: {body}"
    );

    for _ in 0..4 {
        state.engine.pass().await.unwrap();
    }
    let (status, body, _) = call(
        &app,
        Method::POST,
        "/v1/promote",
        Some(OPERATOR),
        Some(promote.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["assignments"][0]["id"], "epic-prod");
    assert_eq!(body["assignments"][0]["container"]["version"], "2.0");
    assert_eq!(body["assignments"][0]["previous_versions"], json!(["1.0"]));
}

#[tokio::test]
async fn environment_rollback_reverts_every_assignment() {
    let (app, _) = two_environment_app().await;
    put(&app, "epic-prod", &environment_body("mem-prod", "1.0")).await;
    put(&app, "epic-prod", &environment_body("mem-prod", "2.0")).await;
    let (status, body, _) = call(
        &app,
        Method::POST,
        "/v1/environments/prod/rollback",
        Some(OPERATOR),
        Some(json!({"container": "epic-hyperspace"}).to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["assignments"][0]["state"], "rolling_back");
    assert_eq!(body["assignments"][0]["container"]["version"], "1.0");
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/v1/environments/test/rollback",
        Some(OPERATOR),
        Some(json!({"container": "epic-hyperspace"}).to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_route_is_404_not_403() {
    let (app, _) = app().await;
    let (status, body, _) = call(
        &app,
        Method::DELETE,
        "/v1/providers",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = call(
        &app,
        Method::PUT,
        "/v1/nothing-here",
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&app, Method::GET, "/v1/providers", None, None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "known routes still need a token"
    );
}

#[tokio::test]
async fn plan_with_unknown_provider_is_422() {
    let (app, _) = app().await;
    let mut value = body("1.0");
    value["assignment_id"] = json!("a1");
    value["targets"][0]["provider"] = json!("citrix-cloud");
    let (status, body, _) = call(
        &app,
        Method::POST,
        "/v1/plan",
        Some(OPERATOR),
        Some(value.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

async fn post_action(app: &Router, id: &str, action: &str) -> (StatusCode, Value) {
    let (status, body, _) = call(
        app,
        Method::POST,
        &format!("/v1/assignments/{id}/{action}"),
        Some(OPERATOR),
        None,
        None,
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn resume_not_paused_is_409() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;

    let (status, body) = post_action(&app, "a1", "resume").await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"a1\""), "{message}");
    assert!(message.contains("is pending, not paused"), "{message}");
    assert_eq!(body["error"]["details"]["state"], "pending");
}

#[tokio::test]
async fn pause_twice_is_409() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    let (status, _) = post_action(&app, "a1", "pause").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, body) = post_action(&app, "a1", "pause").await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"a1\" is already paused"), "{message}");
    assert_eq!(body["error"]["details"]["state"], "paused");
}

#[tokio::test]
async fn pause_finished_is_409() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    for finished in [
        AssignmentState::Converged,
        AssignmentState::RolledBack,
        AssignmentState::Failed,
        AssignmentState::Removed,
    ] {
        let revision = state
            .store
            .assignment("a1")
            .await
            .unwrap()
            .unwrap()
            .revision;
        state
            .store
            .set_assignment_state("a1", revision, finished, "")
            .await
            .unwrap();

        let (status, body) = post_action(&app, "a1", "pause").await;

        assert_eq!(status, StatusCode::CONFLICT, "{finished:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("\"a1\" is {}", finished.as_str())),
            "{message}"
        );
    }
}

#[tokio::test]
async fn resume_failed_is_accepted() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    state
        .store
        .set_assignment_state("a1", 1, AssignmentState::Failed, "over budget")
        .await
        .unwrap();

    let (status, body) = post_action(&app, "a1", "resume").await;

    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "rolling_out");
}

/// Checks `value` against the JSON Schema keywords the OpenAPI document uses (`$ref` to a
/// component, `allOf`, `oneOf`, `type`, `enum`, `required`, `properties`,
/// `additionalProperties`, `items`, `minItems`) and returns every violation with its path.
/// `pattern`, `format` and numeric bounds are not checked.
fn schema_violations(document: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.trim_start_matches("#/components/schemas/");
        let resolved = &document["components"]["schemas"][name];
        assert!(!resolved.is_null(), "{path}: unresolved $ref {target}");
        return schema_violations(document, resolved, value, path);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        found.extend(schema_violations(document, part, value, path));
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|option| schema_violations(document, option, value, path).is_empty())
            .count();
        if matching != 1 {
            found.push(format!("{path}: matches {matching} oneOf options"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            found.push(format!("{path}: {value} is not in {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_ok = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|name| type_ok(name)) {
        found.push(format!("{path}: {value} is not of type {types:?}"));
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                found.push(format!("{path}: required property {key} is missing"));
            }
        }
        for (key, item) in object {
            let item_path = format!("{path}.{key}");
            match schema["properties"].get(key) {
                Some(property) => {
                    found.extend(schema_violations(document, property, item, &item_path));
                }
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    found.push(format!("{item_path}: additional property is not allowed"));
                }
                None if schema["additionalProperties"].is_object() => found.extend(
                    schema_violations(document, &schema["additionalProperties"], item, &item_path),
                ),
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                found.push(format!("{path}: fewer than {min} items"));
            }
        }
        if schema["items"].is_object() {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{index}]");
                found.extend(schema_violations(
                    document,
                    &schema["items"],
                    item,
                    &item_path,
                ));
            }
        }
    }
    found
}

#[tokio::test]
async fn plan_body_matches_openapi() {
    let (app, _) = app().await;
    let (_, document, _) = call(&app, Method::GET, "/v1/openapi.json", None, None, None).await;
    let schema = &document["paths"]["/v1/plan"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    // The body `vdi-gateway plan` sends: the assignment of `assign` plus its id.
    let plan = json!({
        "assignment_id": "epic-prod",
        "container": {"id": "epic-hyperspace", "version": "2024.4.0",
                      "display_name": "Epic Hyperspace",
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": "/launch"}},
        "targets": [{"provider": "mem", "target": "EHR Clinicians"}],
        "activation": "when_idle",
        "rollout": {"waves": [5.0, 25.0, 100.0], "max_failure_percent": 2.0,
                    "pause_seconds": 0, "auto_rollback": true}
    });

    let violations = schema_violations(&document, schema, &plan, "body");
    assert!(violations.is_empty(), "{violations:#?}");

    let (status, reply, _) = call(
        &app,
        Method::POST,
        "/v1/plan",
        Some(OPERATOR),
        Some(plan.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    let mut without_id = plan.clone();
    without_id.as_object_mut().unwrap().remove("assignment_id");
    let violations = schema_violations(&document, schema, &without_id, "body");
    assert_eq!(
        violations,
        ["body: required property assignment_id is missing"]
    );
    let mut unknown = plan.clone();
    unknown["dry_run"] = json!(true);
    let violations = schema_violations(&document, schema, &unknown, "body");
    assert_eq!(
        violations,
        ["body.dry_run: additional property is not allowed"]
    );
}

#[tokio::test]
async fn provider_machines_show_agent_containers() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    let report = |machine: &str, version: &str, state| vdi_contracts::AgentReport {
        machine: machine.into(),
        container_id: "epic-hyperspace".into(),
        version: version.into(),
        state,
        detail: String::new(),
    };
    state
        .store
        .record_agent_reports(
            "mem",
            &[
                report("m001", "1.0", vdi_contracts::AgentContainerState::Installed),
                report("m002", "1.0", vdi_contracts::AgentContainerState::Failed),
            ],
        )
        .await
        .unwrap();

    let (status, page, _) = call(
        &app,
        Method::GET,
        "/v1/providers/mem/machines?target=dg-1&limit=3",
        Some(VIEWER),
        None,
        None,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{page}");
    let machines = page["machines"].as_array().unwrap();
    let containers = |id: &str| {
        machines
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["containers"].clone())
            .unwrap()
    };
    assert_eq!(
        containers("m001"),
        json!([{"id": "epic-hyperspace", "version": "1.0"}])
    );
    assert_eq!(
        containers("m002"),
        json!([]),
        "a failed install is not shown"
    );
    assert_eq!(containers("m000"), json!([]));
}

async fn post_rollback(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, reply, _) = call(
        app,
        Method::POST,
        path,
        Some(OPERATOR),
        Some(body.to_string()),
        Some("application/json"),
    )
    .await;
    (status, reply)
}

const A1_ROLLBACK: &str = "/v1/assignments/a1/rollback";

#[tokio::test]
async fn second_rollback_is_409() {
    let (app, state) = app().await;
    put(&app, "a1", &body("1.0")).await;
    put(&app, "a1", &body("2.0")).await;

    let (status, first) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["container"]["version"], "1.0");
    assert_eq!(first["rollback"], json!({"from": "2.0", "to": "1.0"}));

    let (status, second) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{second}");
    assert_eq!(second["error"]["details"]["rolled_back_from"], "2.0");
    let message = second["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("PUT the assignment with version 2.0"),
        "{message}"
    );

    let stored = state.store.assignment("a1").await.unwrap().unwrap();
    assert_eq!(stored.revision, 3);
    assert_eq!(stored.spec.container.version, "1.0");
}

#[tokio::test]
async fn rollback_to_left_version_is_409() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    put(&app, "a1", &body("2.0")).await;
    post_rollback(&app, A1_ROLLBACK, &json!({})).await;

    let (status, reply) = post_rollback(&app, A1_ROLLBACK, &json!({"to_version": "2.0"})).await;

    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"]["details"]["rolled_back_from"], "2.0");
}

#[tokio::test]
async fn second_rollback_goes_further_back() {
    let (app, _) = app().await;
    for version in ["1.0", "2.0", "3.0"] {
        put(&app, "a1", &body(version)).await;
    }

    let (status, first) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["rollback"], json!({"from": "3.0", "to": "2.0"}));

    let (status, second) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["rollback"], json!({"from": "2.0", "to": "1.0"}));
    assert_eq!(second["revision"], 5);

    let (status, third) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{third}");
    assert_eq!(third["error"]["details"]["rolled_back_from"], "2.0");
}

#[tokio::test]
async fn rollback_after_skip_stays_back() {
    let (app, _) = app().await;
    for version in ["1.0", "2.0", "3.0"] {
        put(&app, "a1", &body(version)).await;
    }
    let (status, first) = post_rollback(&app, A1_ROLLBACK, &json!({"to_version": "1.0"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    // 2.0 is newer than the restored 1.0, so only an explicit request goes there.
    let (status, default) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{default}");
    assert_eq!(default["error"]["details"]["rolled_back_from"], "3.0");

    let (status, named) = post_rollback(&app, A1_ROLLBACK, &json!({"to_version": "2.0"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{named}");
    assert_eq!(named["rollback"], json!({"from": "1.0", "to": "2.0"}));
}

#[tokio::test]
async fn put_same_version_keeps_guard() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    put(&app, "a1", &body("2.0")).await;
    post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    let mut slower = body("1.0");
    slower["rollout"]["waves"] = json!([10, 100]);
    let (status, _) = put(&app, "a1", &slower).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, reply) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;

    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"]["details"]["rolled_back_from"], "2.0");
}

#[tokio::test]
async fn put_new_version_ends_guard() {
    let (app, _) = app().await;
    put(&app, "a1", &body("1.0")).await;
    put(&app, "a1", &body("2.0")).await;
    post_rollback(&app, A1_ROLLBACK, &json!({})).await;
    put(&app, "a1", &body("2.1")).await;

    let (status, reply) = post_rollback(&app, A1_ROLLBACK, &json!({})).await;

    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["rollback"], json!({"from": "2.1", "to": "1.0"}));
}

#[tokio::test]
async fn environment_second_rollback_is_409() {
    let (app, state) = two_environment_app().await;
    put(&app, "epic-prod", &environment_body("mem-prod", "1.0")).await;
    put(&app, "epic-prod", &environment_body("mem-prod", "2.0")).await;
    let path = "/v1/environments/prod/rollback";
    let request = json!({"container": "epic-hyperspace"});

    let (status, first) = post_rollback(&app, path, &request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(
        first["assignments"][0]["rollback"],
        json!({"from": "2.0", "to": "1.0"})
    );

    let (status, second) = post_rollback(&app, path, &request).await;
    assert_eq!(status, StatusCode::CONFLICT, "{second}");
    assert_eq!(second["error"]["details"]["assignment"], "epic-prod");
    assert_eq!(second["error"]["details"]["rolled_back_from"], "2.0");

    let named = json!({"container": "epic-hyperspace", "to_version": "2.0"});
    let (status, third) = post_rollback(&app, path, &named).await;
    assert_eq!(status, StatusCode::CONFLICT, "{third}");
    let stored = state.store.assignment("epic-prod").await.unwrap().unwrap();
    assert_eq!(stored.spec.container.version, "1.0");
}

fn plan_request(targets: &[&str]) -> Value {
    let mut value = body("2.0");
    value["assignment_id"] = json!("a1");
    value["targets"] = targets
        .iter()
        .map(|provider| json!({"provider": provider, "target": "EHR Clinicians"}))
        .collect();
    value
}

async fn post_plan(app: &Router, value: &Value) -> Value {
    let (status, reply, _) = call(
        app,
        Method::POST,
        "/v1/plan",
        Some(OPERATOR),
        Some(value.to_string()),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply
}

#[tokio::test]
async fn plan_lists_withdrawn_targets() {
    let (app, state) = two_environment_app().await;
    let fresh = post_plan(&app, &plan_request(&["mem-prod"])).await;
    assert_eq!(
        fresh["withdrawn_targets"],
        json!([]),
        "a new assignment drops nothing"
    );

    let mut both = body("1.0");
    both["targets"] = plan_request(&["mem-test", "mem-prod"])["targets"].clone();
    put(&app, "a1", &both).await;
    state.engine.pass().await.unwrap();

    let narrow = post_plan(&app, &plan_request(&["mem-prod"])).await;
    let withdrawn = narrow["withdrawn_targets"].as_array().unwrap();
    assert_eq!(withdrawn.len(), 1, "{narrow}");
    assert_eq!(withdrawn[0]["provider"], "mem-test");
    assert_eq!(withdrawn[0]["target"], "EHR Clinicians");
    assert_eq!(withdrawn[0]["machines"], 3);

    let same = post_plan(&app, &plan_request(&["mem-test", "mem-prod"])).await;
    assert_eq!(same["withdrawn_targets"], json!([]));
}
