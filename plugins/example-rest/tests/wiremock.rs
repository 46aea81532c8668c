//! The Portal provider against wiremock: request shapes, mapping of payloads, and error
//! classification.

use serde_json::json;
use vdi_plugin_sdk::contracts::{
    ContainerRef, ErrorKind, MachineResult, MachineState, PlaceRequest, SessionState,
};
use vdi_plugin_sdk::Provider;
use vdigw_example_rest::client::portal_guard;
use vdigw_example_rest::plugin::sample_container;
use vdigw_example_rest::{PortalConfig, PortalProvider};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "test-key-123";

fn provider(server: &MockServer) -> PortalProvider {
    let config: PortalConfig = serde_json::from_value(json!({
        "base_url": server.uri(),
        "api_key": KEY,
        "page_size": 2,
        "requests_per_second": 1000.0,
        "allow_plain_http_loopback": true,
    }))
    .expect("config parses");
    PortalProvider::new("portal-test", config).expect("provider builds")
}

async fn mount_groups(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/groups"))
        .and(header("x-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "groups": [{"id": "grp-1", "name": "Clinicians", "machine_count": 3}]
        })))
        .mount(server)
        .await;
}

async fn mount_apps(server: &MockServer, apps: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path("/api/apps"))
        .and(query_param("group", "grp-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "apps": apps })))
        .mount(server)
        .await;
}

fn app(id: &str, name: &str) -> serde_json::Value {
    json!({"id": id, "group": "grp-1", "name": name, "display_name": "Epic", "command": "player.exe"})
}

#[tokio::test]
async fn list_machines_maps_page() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    mount_apps(
        &server,
        json!([
            app("app-7", "vdigw:epic-hyperspace@2024.3.1"),
            app("app-8", "Notepad")
        ]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/api/groups/grp-1/machines"))
        .and(query_param("page", "1"))
        .and(query_param("per_page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "machines": [
                {"id": "m-1", "name": "VDA-001", "status": "ready",
                 "sessions": [{"user": "HOSP\\ann", "state": "disconnected"}],
                 "apps": ["app-7", "app-8"]},
                {"id": "m-2", "name": "VDA-002", "status": "rebuilding",
                 "sessions": [{"user": "HOSP\\bob", "state": "connecting"}]}
            ],
            "page": 1,
            "next_page": 2
        })))
        .mount(&server)
        .await;

    let page = provider(&server)
        .list_machines("Clinicians", None)
        .await
        .expect("listing succeeds");

    assert_eq!(page.next_cursor.as_deref(), Some("2"));
    assert_eq!(page.items.len(), 2);
    let first = &page.items[0];
    assert_eq!(first.state, MachineState::Ready);
    assert_eq!(first.sessions[0].state, SessionState::Disconnected);
    assert_eq!(
        first.containers,
        vec![ContainerRef {
            id: "epic-hyperspace".into(),
            version: "2024.3.1".into()
        }]
    );
    let second = &page.items[1];
    assert_eq!(second.state, MachineState::Unknown("rebuilding".into()));
    assert_eq!(second.sessions[0].state, SessionState::Active);
}

#[tokio::test]
async fn unknown_target_is_not_found() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    let error = provider(&server)
        .list_machines("Radiology", None)
        .await
        .expect_err("unknown group");
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error.message.contains("Radiology"), "{}", error.message);
}

#[tokio::test]
async fn wrong_key_is_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/health"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "bad key"})))
        // The shared client re-authenticates once after a 401, as for every broker.
        .expect(2)
        .mount(&server)
        .await;
    let error = provider(&server).check().await.expect_err("401");
    assert_eq!(error.kind, ErrorKind::Unauthenticated);
    assert!(!error.retryable);
}

#[tokio::test]
async fn publish_posts_new_app() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    mount_apps(&server, json!([])).await;
    Mock::given(method("POST"))
        .and(path("/api/apps"))
        .and(body_partial_json(json!({
            "group": "grp-1",
            "name": "vdigw:epic-hyperspace@2024.3.1",
            "display_name": "Epic Hyperspace",
        })))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("x-request-id", "req-42")
                .set_body_json(app("app-9", "vdigw:epic-hyperspace@2024.3.1")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let publication = provider(&server)
        .publish("grp-1", &sample_container())
        .await
        .expect("publish succeeds");

    assert_eq!(publication.objects, vec!["app-9".to_owned()]);
    assert_eq!(publication.writes.len(), 1);
    assert_eq!(
        publication.writes[0].broker_request_id.as_deref(),
        Some("req-42")
    );
}

#[tokio::test]
async fn publish_conflict_reads_existing_app() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    // The first listing misses the app a concurrent create added; the second sees it.
    Mock::given(method("GET"))
        .and(path("/api/apps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"apps": []})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_apps(
        &server,
        json!([app("app-3", "vdigw:epic-hyperspace@2024.3.1")]),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/api/apps"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"message": "exists"})))
        .mount(&server)
        .await;

    let publication = provider(&server)
        .publish("grp-1", &sample_container())
        .await
        .expect("publish resolves the conflict");

    assert_eq!(publication.objects, vec!["app-3".to_owned()]);
    assert!(publication.writes.is_empty());
}

#[tokio::test]
async fn place_without_publication_fails() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    mount_apps(&server, json!([])).await;
    let request = PlaceRequest {
        target: "grp-1".into(),
        container: sample_container(),
        machines: vec!["m-1".into()],
        activation: Default::default(),
    };
    let error = provider(&server)
        .place(&request)
        .await
        .expect_err("not published");
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error.message.contains("publish"), "{}", error.message);
}

#[tokio::test]
async fn place_assigns_then_removes_old() {
    let server = MockServer::start().await;
    mount_groups(&server).await;
    mount_apps(
        &server,
        json!([
            app("app-1", "vdigw:epic-hyperspace@2024.2.0"),
            app("app-2", "vdigw:epic-hyperspace@2024.3.1")
        ]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/api/groups/grp-1/machines"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "machines": [
                {"id": "m-1", "name": "VDA-001", "status": "ready", "apps": ["app-1"]},
                {"id": "m-5", "name": "VDA-005", "status": "maintenance", "apps": ["app-1"]}
            ],
            "page": 1,
            "next_page": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/machines/m-1/apps/app-2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/machines/m-1/apps/app-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let request = PlaceRequest {
        target: "grp-1".into(),
        container: sample_container(),
        machines: vec!["m-1".into(), "m-5".into()],
        activation: Default::default(),
    };
    let outcome = provider(&server)
        .place(&request)
        .await
        .expect("place succeeds");

    assert_eq!(outcome.machines[0].result, MachineResult::Applied);
    assert!(matches!(
        outcome.machines[1].result,
        MachineResult::Excluded(_)
    ));
    let operations: Vec<&str> = outcome
        .writes
        .iter()
        .map(|w| w.operation.as_str())
        .collect();
    assert_eq!(operations, ["assign_app", "unassign_app"]);
}

#[test]
fn guard_blocks_machine_deletion() {
    let guard = portal_guard();
    let delete = guard.check(&http::Method::DELETE, "api/machines/m-1", None);
    assert!(delete.is_err(), "machine deletion passed the guard");
    let unassign = guard.check(&http::Method::DELETE, "api/machines/m-1/apps/app-1", None);
    assert!(unassign.is_ok(), "{unassign:?}");
    let reboot = guard.check(&http::Method::POST, "api/machines/m-1/reboot", None);
    assert!(reboot.is_err(), "reboot passed the guard");
}
