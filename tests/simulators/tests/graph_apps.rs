//! Intune win32 apps with assignments, and `syncDevice`.

mod graph_support;

use std::time::Duration;

use broker_sim::graph::{GraphFleet, GraphSimConfig};
use graph_support::content::publish_content;
use graph_support::{start, start_with, win32_app, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const APPS: &str = "v1.0/deviceAppManagement/mobileApps";

async fn create_app(client: &Client, name: &str) -> Value {
    let (status, app) = client.call(Method::POST, APPS, Some(win32_app(name))).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    app
}

fn required_for(group_id: &str) -> Value {
    json!({"mobileAppAssignments": [{
        "@odata.type": "#microsoft.graph.mobileAppAssignment",
        "intent": "required",
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id},
    }]})
}

#[tokio::test]
async fn app_create_get_delete() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let app = create_app(&client, "EHR Viewer 1.2 (container)").await;
    assert_eq!(app["@odata.type"], "#microsoft.graph.win32LobApp");
    assert_eq!(app["publishingState"], "notPublished");
    assert_eq!(app["committedContentVersion"], Value::Null);
    assert_eq!(
        app["installExperience"]["deviceRestartBehavior"],
        "suppress"
    );
    let id = app["id"].as_str().unwrap();

    let (status, fetched) = client.get(&format!("{APPS}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["displayName"], "EHR Viewer 1.2 (container)");
    assert!(sim.snapshot().mobile_app(id).is_some());

    let (status, _) = client
        .call(Method::DELETE, &format!("{APPS}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client.get(&format!("{APPS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_create_rejects_invalid_bodies() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let mut no_rules = win32_app("a");
    no_rules["rules"] = json!([]);
    let mut bad_restart = win32_app("a");
    bad_restart["installExperience"]["deviceRestartBehavior"] = json!("sometimes");
    let mut unknown_property = win32_app("a");
    unknown_property["autoReboot"] = json!(true);
    let mut other_type = win32_app("a");
    other_type["@odata.type"] = json!("#microsoft.graph.webApp");
    let mut no_install = win32_app("a");
    no_install
        .as_object_mut()
        .unwrap()
        .remove("installCommandLine");
    for body in [
        no_rules,
        bad_restart,
        unknown_property,
        other_type,
        no_install,
    ] {
        let (status, _) = client.call(Method::POST, APPS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(sim.snapshot().mobile_apps.is_empty());
}

#[tokio::test]
async fn app_assign_replaces_assignments() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let app = create_app(&client, "Dictation 4.1").await;
    let id = app["id"].as_str().unwrap();
    publish_content(&client, id).await;
    let body = json!({"displayName": "VDIGW-dictation", "mailEnabled": false, "mailNickname": "vdigw-dictation", "securityEnabled": true});
    let (_, group) = client.call(Method::POST, "v1.0/groups", Some(body)).await;
    let group_id = group["id"].as_str().unwrap();

    let (status, _) = client
        .call(
            Method::POST,
            &format!("{APPS}/{id}/assign"),
            Some(required_for(group_id)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (items, _) = client.get_all(&format!("{APPS}/{id}/assignments")).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["intent"], "required");
    assert_eq!(items[0]["target"]["groupId"], group_id);

    let (status, _) = client
        .call(
            Method::POST,
            &format!("{APPS}/{id}/assign"),
            Some(json!({"mobileAppAssignments": []})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        sim.snapshot()
            .mobile_app(id)
            .unwrap()
            .assignments
            .is_empty(),
        "assign replaces the set"
    );
}

#[tokio::test]
async fn app_assign_rejects_bad_targets() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let app = create_app(&client, "Dictation 4.2").await;
    publish_content(&client, app["id"].as_str().unwrap()).await;
    let path = format!("{APPS}/{}/assign", app["id"].as_str().unwrap());
    let (status, _) = client
        .call(
            Method::POST,
            &path,
            Some(required_for("00000000-0000-0000-0000-000000000000")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown group");
    let mut bad_intent = required_for(&sim.snapshot().groups[0].id);
    bad_intent["mobileAppAssignments"][0]["intent"] = json!("mandatory");
    let (status, _) = client.call(Method::POST, &path, Some(bad_intent)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn app_assign_waits_for_publishing() {
    let sim = start_with(GraphSimConfig {
        app_publish_delay: Duration::from_millis(200),
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let app = create_app(&client, "Slow app").await;
    let id = app["id"].as_str().unwrap();
    assert_eq!(app["publishingState"], "notPublished");
    let path = format!("{APPS}/{id}/assign");
    let group = sim.snapshot().groups[0].id.clone();
    let (status, _) = client
        .call(Method::POST, &path, Some(required_for(&group)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no content yet");

    publish_content(&client, id).await;
    let (_, app) = client.get(&format!("{APPS}/{id}")).await;
    assert_eq!(app["publishingState"], "processing");
    let (status, _) = client
        .call(Method::POST, &path, Some(required_for(&group)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "still processing");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _) = client
        .call(Method::POST, &path, Some(required_for(&group)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn sync_device_counted_and_limited() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let device = sim
        .snapshot()
        .managed_device("HOSP-LT-0003")
        .unwrap()
        .id
        .clone();
    let path = format!("v1.0/deviceManagement/managedDevices/{device}/syncDevice");
    let (status, _) = client.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.snapshot().sync_requests.get(&device), Some(&1));

    let response = client.send(Method::POST, &path, None).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "per-device limit"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(sim.snapshot().sync_requests.get(&device), Some(&1));

    let missing =
        "v1.0/deviceManagement/managedDevices/00000000-0000-0000-0000-000000000000/syncDevice";
    let (status, _) = client.call(Method::POST, missing, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
