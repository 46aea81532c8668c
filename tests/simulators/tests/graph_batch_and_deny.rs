//! `$batch` with inner 429 and 424, and every deny-list class, directly and in a batch.

mod graph_support;

use broker_sim::graph::{GraphDenyClass, GraphFleet, GraphSim, Knobs};
use graph_support::{start, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn batch(client: &Client, requests: Value) -> (StatusCode, Value) {
    client
        .call(
            Method::POST,
            "v1.0/$batch",
            Some(json!({"requests": requests})),
        )
        .await
}

fn response_of<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn batch_runs_inner_requests() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let group_body = json!({"displayName": "VDIGW-batch", "mailEnabled": false, "mailNickname": "vdigw-batch", "securityEnabled": true});
    let requests = json!([
        {"id": "1", "method": "GET", "url": "/deviceManagement/managedDevices?$top=2"},
        {"id": "2", "method": "POST", "url": "/groups", "body": group_body, "headers": {"Content-Type": "application/json"}},
        {"id": "3", "method": "GET", "url": "/groups?$filter=displayName eq 'VDIGW-batch'", "dependsOn": ["2"]},
    ]);
    let (status, body) = batch(&client, requests).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response_of(&body, "1")["status"], 200);
    assert_eq!(
        response_of(&body, "1")["body"]["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(response_of(&body, "2")["status"], 201);
    assert_eq!(
        response_of(&body, "3")["body"]["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let counters = sim.counters();
    assert_eq!(counters.http_requests, 2, "token and batch");
    assert_eq!(counters.total, 5);
    assert_eq!(counters.route("POST /v1.0/groups"), 1);
}

#[tokio::test]
async fn batch_inner_429_and_424() {
    let sim = start(GraphFleet::Small).await;
    sim.set_knobs(Knobs {
        batch_throttle_rate: 1.0,
        ..Knobs::default()
    });
    let client = Client::connect(&sim).await;
    let requests = json!([
        {"id": "a", "method": "GET", "url": "/groups"},
        {"id": "b", "method": "GET", "url": "/groups", "dependsOn": ["a"]},
    ]);
    let (status, body) = batch(&client, requests).await;
    assert_eq!(status, StatusCode::OK, "the batch itself succeeds");
    let throttled = response_of(&body, "a");
    assert_eq!(throttled["status"], 429);
    assert!(
        throttled["headers"]["Retry-After"].is_string(),
        "{throttled}"
    );
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    let dependent = response_of(&body, "b");
    assert_eq!(dependent["status"], 424);
    assert_eq!(sim.counters().by_status.get(&424), Some(&1));
}

#[tokio::test]
async fn batch_rejects_invalid_batches() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/groups"}))
        .collect();
    let (status, _) = batch(&client, Value::Array(many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "more than 20");
    let duplicate = json!([{"id": "1", "method": "GET", "url": "/groups"}, {"id": "1", "method": "GET", "url": "/groups"}]);
    let (status, _) = batch(&client, duplicate).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "duplicate ids");
    let absolute =
        json!([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/groups"}]);
    let (status, body) = batch(&client, absolute).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response_of(&body, "1")["status"], 400, "absolute inner url");
}

/// Returns a denied call of each class as method and path under `/v1.0`.
fn denied_calls(sim: &GraphSim) -> Vec<(GraphDenyClass, Method, String)> {
    let snapshot = sim.snapshot();
    let pc = &snapshot.cloud_pcs[0].id;
    let device = &snapshot.managed_device("HOSP-LT-0001").unwrap().id;
    let policy = &snapshot.provisioning_policies[0].id;
    let group = &snapshot.provisioning_policies[0].group_ids[0];
    let member = &snapshot.group(group).unwrap().members[0];
    let pcs = "deviceManagement/virtualEndpoint/cloudPCs";
    let devices = "deviceManagement/managedDevices";
    vec![
        (
            GraphDenyClass::Reboot,
            Method::POST,
            format!("{pcs}/{pc}/reboot"),
        ),
        (
            GraphDenyClass::Reboot,
            Method::POST,
            format!("{devices}/{device}/rebootNow"),
        ),
        (
            GraphDenyClass::Power,
            Method::POST,
            format!("{pcs}/{pc}/powerOff"),
        ),
        (
            GraphDenyClass::Power,
            Method::POST,
            format!("{devices}/{device}/shutDown"),
        ),
        (
            GraphDenyClass::Reprovision,
            Method::POST,
            format!("{pcs}/{pc}/reprovision"),
        ),
        (
            GraphDenyClass::Restore,
            Method::POST,
            format!("{pcs}/{pc}/restore"),
        ),
        (
            GraphDenyClass::Resize,
            Method::POST,
            format!("{pcs}/{pc}/resize"),
        ),
        (
            GraphDenyClass::EndGracePeriod,
            Method::POST,
            format!("{pcs}/{pc}/endGracePeriod"),
        ),
        (
            GraphDenyClass::Wipe,
            Method::POST,
            format!("{devices}/{device}/wipe"),
        ),
        (
            GraphDenyClass::Wipe,
            Method::POST,
            format!("{devices}/{device}/cleanWindowsDevice"),
        ),
        (
            GraphDenyClass::Retire,
            Method::POST,
            format!("{devices}/{device}/retire"),
        ),
        (
            GraphDenyClass::RestartRequired,
            Method::POST,
            format!("{pcs}/{pc}/changeUserAccountType"),
        ),
        (
            GraphDenyClass::DeviceDelete,
            Method::DELETE,
            format!("{devices}/{device}"),
        ),
        (
            GraphDenyClass::BulkAction,
            Method::POST,
            "deviceManagement/virtualEndpoint/bulkActions".to_string(),
        ),
        (
            GraphDenyClass::ProvisioningPolicy,
            Method::POST,
            format!("deviceManagement/virtualEndpoint/provisioningPolicies/{policy}/assign"),
        ),
        (
            GraphDenyClass::ProvisioningGroup,
            Method::DELETE,
            format!("groups/{group}/members/{member}/$ref"),
        ),
        (
            GraphDenyClass::ProvisioningGroup,
            Method::DELETE,
            format!("groups/{group}"),
        ),
    ]
}

#[tokio::test]
async fn every_deny_class_is_counted_without_change() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let before = sim.snapshot();
    let calls = denied_calls(&sim);
    let covered: std::collections::HashSet<GraphDenyClass> =
        calls.iter().map(|(class, _, _)| *class).collect();
    assert_eq!(
        covered.len(),
        GraphDenyClass::ALL.len(),
        "every class has a case"
    );

    for (class, method, path) in &calls {
        let (status, _) = client
            .call(method.clone(), &format!("v1.0/{path}"), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{method} {path}");
        let denied = sim.counters().denied;
        let last = denied.last().unwrap();
        assert_eq!(last.class, class.as_str(), "{method} {path}");
    }
    assert_eq!(sim.counters().denied.len(), calls.len());
    assert_eq!(sim.snapshot(), before, "denied calls change nothing");
}

#[tokio::test]
async fn deny_applies_inside_batch_and_beta() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let before = sim.snapshot();
    let pc = before.cloud_pcs[0].id.clone();
    let requests = json!([
        {"id": "1", "method": "POST", "url": format!("/deviceManagement/virtualEndpoint/cloudPCs/{pc}/reprovision")},
        {"id": "2", "method": "POST", "url": format!("/deviceManagement/virtualEndpoint/cloudPCs/{pc}/microsoft.graph.restart")},
    ]);
    let (status, body) = batch(&client, requests).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response_of(&body, "1")["status"], 204);
    let classes: Vec<String> = sim
        .counters()
        .denied
        .iter()
        .map(|d| d.class.clone())
        .collect();
    assert_eq!(classes, vec!["reprovision", "reboot"]);

    let (status, _) = client
        .call(
            Method::POST,
            &format!("beta/deviceManagement/virtualEndpoint/cloudPCs/{pc}/powerOn"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.counters().denied.len(), 3);
    assert_eq!(sim.snapshot(), before);
}

#[tokio::test]
async fn denied_call_without_token_is_still_recorded() {
    let sim = start(GraphFleet::Small).await;
    let pc = sim.snapshot().cloud_pcs[0].id.clone();
    let url = format!(
        "{}v1.0/deviceManagement/virtualEndpoint/cloudPCs/{pc}/reboot",
        sim.graph_base_url()
    );
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.counters().denied.len(), 1);
}
