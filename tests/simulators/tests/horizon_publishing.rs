//! Horizon application pools, bulk entitlements and `send-message`.

mod horizon_support;

use broker_sim::horizon::{HorizonFleet, Knobs};
use horizon_support::{start, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// SID of the seeded group `EHR-Clinicians`.
const CLINICIANS: &str = "S-1-5-21-1004336348-1177238915-682003330-5000";
/// SID of the seeded group `Nursing`.
const NURSING: &str = "S-1-5-21-1004336348-1177238915-682003330-5002";

async fn farm_id(client: &Client) -> String {
    let (_, farms) = client.get("inventory/v3/farms").await;
    farms[0]["id"].as_str().unwrap().to_string()
}

async fn create_on_farm(client: &Client, name: &str) -> (StatusCode, Option<String>) {
    let farm = farm_id(client).await;
    let body = json!({
        "name": name,
        "display_name": "Epic Hyperspace 2024.3.1",
        "executable_path": "C:\\Program Files\\Player\\player.exe",
        "parameters": "--container epic-hyperspace --version 2024.3.1",
        "farm_id": farm,
    });
    let response = client
        .send(Method::POST, "inventory/v3/application-pools", Some(body))
        .await;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location)
}

#[tokio::test]
async fn create_update_delete_application_pool() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (status, location) = create_on_farm(&client, "gw-epic-2024-3-1").await;
    assert_eq!(status, StatusCode::CREATED);
    let id = location.unwrap().rsplit('/').next().unwrap().to_string();

    let filter = json!({"type": "Equals", "name": "name", "value": "gw-epic-2024-3-1"});
    let (_, found) = client
        .get_filtered("inventory/v2/application-pools", &filter)
        .await;
    assert_eq!(found[0]["id"], id.as_str());
    assert_eq!(
        found[0]["parameters"],
        "--container epic-hyperspace --version 2024.3.1"
    );
    let snapshot = sim.snapshot();
    let pool = snapshot.application_pool("gw-epic-2024-3-1").unwrap();
    assert_eq!(
        pool.executable_path,
        "C:\\Program Files\\Player\\player.exe"
    );
    assert!(pool.farm_id.is_some());

    let update = json!({
        "enabled": false,
        "enable_pre_launch": false,
        "executable_path": "C:\\Program Files\\Player\\player.exe",
        "parameters": "--container epic-hyperspace --version 2024.3.2",
    });
    let path = format!("inventory/v1/application-pools/{id}");
    let (status, _) = client.call(Method::PUT, &path, Some(update)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = client.get(&path).await;
    assert_eq!(body["enabled"], false);
    assert_eq!(
        body["parameters"],
        "--container epic-hyperspace --version 2024.3.2"
    );
    assert_eq!(
        body["display_name"], "Epic Hyperspace 2024.3.1",
        "PUT keeps display_name"
    );

    let (status, _) = client
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = client.get(&path).await;
    assert_eq!(body["enabled"], true);
    assert_eq!(
        body["parameters"],
        "--container epic-hyperspace --version 2024.3.2"
    );

    let (status, _) = client
        .call(Method::PUT, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "PUT needs the required fields"
    );

    let (status, _) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(sim
        .snapshot()
        .application_pool("gw-epic-2024-3-1")
        .is_none());
}

#[tokio::test]
async fn create_rejects_invalid_specs() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (status, _) = create_on_farm(&client, "gw-dup").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = create_on_farm(&client, "GW-DUP").await;
    assert_eq!(status, StatusCode::CONFLICT);

    let snapshot = sim.snapshot();
    let vdi_pool = snapshot.desktop_pool("EHR-IC").unwrap().id.clone();
    let farm = snapshot.farms[0].id.clone();
    let cases = [
        json!({"name": "bad name", "executable_path": "a.exe", "farm_id": farm}),
        json!({"name": "no-path", "farm_id": farm}),
        json!({"name": "no-host", "executable_path": "a.exe"}),
        json!({"name": "two-hosts", "executable_path": "a.exe", "farm_id": farm,
               "desktop_pool_id": vdi_pool}),
        json!({"name": "desktop-only", "executable_path": "a.exe", "desktop_pool_id": vdi_pool}),
        json!({"name": "unknown-farm", "executable_path": "a.exe", "farm_id": "nope"}),
        json!({"name": "bad-mode", "executable_path": "a.exe", "farm_id": farm,
               "multi_session_mode": "SOMETIMES"}),
    ];
    for body in cases {
        let (status, error) = client
            .call(
                Method::POST,
                "inventory/v3/application-pools",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error["error_message"].is_string(), "{error}");
    }
}

#[tokio::test]
async fn create_on_application_desktop_pool() {
    let sim = start(HorizonFleet::Hospital).await;
    let client = Client::login(&sim).await;
    let pool = client.pool_id("Outpatient-IC").await;
    let body = json!({"name": "gw-pacs", "executable_path": "C:\\player.exe",
                      "desktop_pool_id": pool});
    let (status, _) = client
        .call(Method::POST, "inventory/v2/application-pools", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let app = sim.snapshot().application_pool("gw-pacs").unwrap().clone();
    assert_eq!(app.desktop_pool_id.as_deref(), Some(pool.as_str()));
}

#[tokio::test]
async fn entitlements_bulk_per_item() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (_, location) = create_on_farm(&client, "gw-entitled").await;
    let app = location.unwrap().rsplit('/').next().unwrap().to_string();

    let body = json!([
        {"id": app, "ad_user_or_group_ids": [CLINICIANS, "S-1-5-21-0-0-0-404"]},
        {"id": "missing-pool", "ad_user_or_group_ids": [NURSING]}
    ]);
    let (status, items) = client
        .call(
            Method::POST,
            "entitlements/v1/application-pools",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "partial failure is still 200");
    assert_eq!(items[0]["id"], app.as_str());
    assert_eq!(items[0]["details"][0]["status_code"], 200);
    assert_eq!(items[0]["details"][1]["status_code"], 404);
    assert_eq!(items[0]["status_code"], 404);
    assert_eq!(items[1]["status_code"], 404);
    assert_eq!(
        sim.snapshot().application_pool_entitlements("gw-entitled"),
        [CLINICIANS]
    );

    let again = json!([{"id": app, "ad_user_or_group_ids": [CLINICIANS, NURSING]}]);
    let (_, items) = client
        .call(
            Method::POST,
            "entitlements/v1/application-pools",
            Some(again),
        )
        .await;
    assert_eq!(
        items[0]["details"][0]["status_code"], 409,
        "already entitled"
    );
    assert_eq!(items[0]["details"][1]["status_code"], 200);

    let (status, one) = client
        .get(&format!("entitlements/v1/application-pools/{app}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["ad_user_or_group_ids"], json!([CLINICIANS, NURSING]));

    let remove = json!([{"id": app, "ad_user_or_group_ids": [NURSING]}]);
    let (status, items) = client
        .call(
            Method::DELETE,
            "entitlements/v1/application-pools",
            Some(remove.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items[0]["status_code"], 200);
    assert_eq!(
        sim.snapshot().application_pool_entitlements("gw-entitled"),
        [CLINICIANS],
        "delete removes only the named SIDs"
    );
    let (_, items) = client
        .call(
            Method::DELETE,
            "entitlements/v1/application-pools",
            Some(remove),
        )
        .await;
    assert_eq!(items[0]["details"][0]["status_code"], 404);
}

#[tokio::test]
async fn entitlements_reject_bad_bodies() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let pool = client.pool_id("EHR-IC").await;
    let cases = [
        json!([]),
        json!([{"id": pool, "ad_user_or_group_ids": [NURSING]},
               {"id": pool, "ad_user_or_group_ids": [CLINICIANS]}]),
        json!([{"ad_user_or_group_ids": [NURSING]}]),
        json!({"id": pool}),
    ];
    for body in cases {
        let (status, _) = client
            .call(
                Method::POST,
                "entitlements/v1/desktop-pools",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, list) = client.get("entitlements/v1/desktop-pools").await;
    assert_eq!(status, StatusCode::OK);
    let ehr = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == pool.as_str())
        .unwrap();
    assert_eq!(ehr["ad_user_or_group_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn ad_lookup_by_sid() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (status, group) = client
        .get(&format!("external/v1/ad-users-or-groups/{CLINICIANS}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(group["name"], "EHR-Clinicians");
    assert_eq!(group["group"], true);
    let filter = json!({"type": "Equals", "name": "group", "value": true});
    let (_, groups) = client
        .get_filtered("external/v1/ad-users-or-groups", &filter)
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn send_message_records_per_session() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (_, sessions) = client.get("inventory/v1/sessions").await;
    let first = sessions[0]["id"].as_str().unwrap().to_string();
    let body = json!({
        "session_ids": [first, "missing-session"],
        "message": "Epic will update when you log off.",
        "message_type": "INFO",
    });
    let (status, items) = client
        .call(
            Method::POST,
            "inventory/v1/sessions/action/send-message",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items[0]["status_code"], 200);
    assert_eq!(items[1]["status_code"], 404);
    let messages = sim.snapshot().sent_messages;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].session_id, first);
    assert_eq!(messages[0].message_type, "INFO");

    let bad = json!({"session_ids": [first], "message": "x", "message_type": "SHOUT"});
    let (status, _) = client
        .call(
            Method::POST,
            "inventory/v1/sessions/action/send-message",
            Some(bad),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fail_bulk_items_knob() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (_, sessions) = client.get("inventory/v1/sessions").await;
    let ids: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    sim.set_knobs(Knobs {
        fail_bulk_items: vec![ids[1].clone()],
        ..Knobs::default()
    });
    let body = json!({"session_ids": ids, "message": "hi", "message_type": "WARNING"});
    let (status, items) = client
        .call(
            Method::POST,
            "inventory/v1/sessions/action/send-message",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["status_code"])
        .collect();
    assert_eq!(codes, [&json!(200), &json!(500)]);
    assert_eq!(sim.snapshot().sent_messages.len(), 1);
}
