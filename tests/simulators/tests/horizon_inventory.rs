//! Horizon inventory: versions, paging, filters, machines and sessions, seeded fleets and
//! maintenance mode.

mod horizon_support;

use std::collections::{BTreeMap, HashSet};

use broker_sim::horizon::{HorizonFleet, HorizonSimConfig};
use horizon_support::{start, start_with, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|v| v["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn versions_beyond_2111_are_404() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let cases = [
        ("inventory/v1/desktop-pools", StatusCode::OK),
        ("inventory/v5/desktop-pools", StatusCode::OK),
        ("inventory/v6/desktop-pools", StatusCode::NOT_FOUND),
        ("inventory/v8/desktop-pools", StatusCode::NOT_FOUND),
        ("inventory/v2/machines", StatusCode::OK),
        ("inventory/v3/machines", StatusCode::NOT_FOUND),
        ("inventory/v5/machines", StatusCode::NOT_FOUND),
        ("inventory/v1/sessions", StatusCode::OK),
        ("inventory/v2/sessions", StatusCode::NOT_FOUND),
        ("inventory/v3/application-pools", StatusCode::OK),
        ("inventory/v4/application-pools", StatusCode::NOT_FOUND),
        ("inventory/v3/farms", StatusCode::OK),
        ("inventory/v7/farms", StatusCode::NOT_FOUND),
        ("inventory/v1/rds-servers", StatusCode::OK),
        ("inventory/v2/rds-servers", StatusCode::NOT_FOUND),
        ("inventory/v0/machines", StatusCode::NOT_FOUND),
        ("inventory/v1/nothing", StatusCode::NOT_FOUND),
    ];
    for (path, expected) in cases {
        let (status, body) = client.get(path).await;
        assert_eq!(status, expected, "GET {path}");
        if expected == StatusCode::NOT_FOUND {
            assert!(body["error_message"].is_string(), "{path}: {body}");
        }
    }
}

#[tokio::test]
async fn small_fleet_pools_and_states() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (_, pools) = client.get("inventory/v5/desktop-pools").await;
    let pools = pools.as_array().unwrap();
    assert_eq!(names(pools), ["EHR-IC", "Radiology-Dedicated", "EHR-RDS"]);
    assert_eq!(pools[0]["source"], "INSTANT_CLONE");
    assert_eq!(pools[0]["user_assignment"], "FLOATING");
    assert_eq!(pools[1]["user_assignment"], "DEDICATED");
    assert_eq!(pools[2]["type"], "RDS");
    assert!(pools[2]["farm_id"].is_string());

    let ehr = client.pool_id("EHR-IC").await;
    let filter = json!({"type": "Equals", "name": "desktop_pool_id", "value": ehr});
    let (status, machines) = client.get_filtered("inventory/v2/machines", &filter).await;
    assert_eq!(status, StatusCode::OK);
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for machine in machines.as_array().unwrap() {
        *states
            .entry(machine["state"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("AGENT_UNREACHABLE", 1),
        ("AVAILABLE", 3),
        ("CONNECTED", 2),
        ("DISCONNECTED", 1),
        ("MAINTENANCE", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(states, expected);

    let (_, farms) = client.get("inventory/v3/farms").await;
    assert_eq!(names(farms.as_array().unwrap()), ["EHR-RDS-Farm"]);
    let (_, servers) = client.get("inventory/v1/rds-servers").await;
    assert_eq!(servers.as_array().unwrap().len(), 3);
    assert_eq!(servers[0]["session_count"], 4);
}

#[tokio::test]
async fn v1_desktop_pools_ignore_paging() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let response = client
        .request(Method::GET, "inventory/v1/desktop-pools?page=1&size=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("HAS_MORE_RECORDS").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3);
    assert!(
        body[0]["settings"]["session_type"].is_string(),
        "v1 nests settings"
    );
    assert!(body[0].get("session_type").is_none());
}

#[tokio::test]
async fn paging_rules_and_header() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (all, pages) = client.get_all("inventory/v1/machines", 5).await;
    assert_eq!(all.len(), 12);
    assert_eq!(pages, 3);
    let ids: HashSet<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12, "pages do not overlap");

    let first = client
        .request(Method::GET, "inventory/v1/machines?page=1&size=5")
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["has_more_records"], "TRUE");

    let cases = [
        (
            "inventory/v1/machines?page=1&size=1001",
            StatusCode::BAD_REQUEST,
        ),
        ("inventory/v1/machines?size=10", StatusCode::BAD_REQUEST),
        ("inventory/v1/machines?page=2", StatusCode::BAD_REQUEST),
        (
            "inventory/v1/machines?page=0&size=10",
            StatusCode::BAD_REQUEST,
        ),
        ("inventory/v1/machines?page=1&size=1000", StatusCode::OK),
        ("inventory/v1/machines?page=50&size=10", StatusCode::OK),
    ];
    for (path, expected) in cases {
        let (status, body) = client.get(path).await;
        assert_eq!(status, expected, "GET {path}: {body}");
    }
    let (_, beyond) = client.get("inventory/v1/machines?page=50&size=10").await;
    assert_eq!(beyond, json!([]));
}

#[tokio::test]
async fn filters_apply_server_side() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let ehr = client.pool_id("EHR-IC").await;
    let available = json!({"type": "And", "filters": [
        {"type": "Equals", "name": "desktop_pool_id", "value": ehr},
        {"type": "Equals", "name": "state", "value": "AVAILABLE"}
    ]});
    let (_, machines) = client
        .get_filtered("inventory/v1/machines", &available)
        .await;
    assert_eq!(
        names(machines.as_array().unwrap()),
        ["EHR-IC-004", "EHR-IC-005", "EHR-IC-006"]
    );

    let in_session = json!({"type": "Or", "filters": [
        {"type": "Equals", "name": "state", "value": "CONNECTED"},
        {"type": "Equals", "name": "state", "value": "DISCONNECTED"}
    ]});
    let (_, machines) = client
        .get_filtered("inventory/v1/machines", &in_session)
        .await;
    assert_eq!(machines.as_array().unwrap().len(), 5);

    let by_name = json!({"type": "StartsWith", "name": "name", "value": "RAD-"});
    let (_, machines) = client.get_filtered("inventory/v1/machines", &by_name).await;
    assert_eq!(machines.as_array().unwrap().len(), 4);

    let invalid = [
        json!({"type": "StartsWith", "name": "state", "value": "AVAIL"}),
        json!({"type": "Equals", "name": "colour", "value": "blue"}),
        json!({"type": "Fuzzy", "name": "name", "value": "EHR"}),
    ];
    for filter in invalid {
        let (status, body) = client.get_filtered("inventory/v1/machines", &filter).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}");
        assert!(
            body["error_message"].as_str().unwrap().contains("filter"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn filter_combines_with_paging() {
    let sim = start(HorizonFleet::Hospital).await;
    let client = Client::login(&sim).await;
    let nursing = client.pool_id("Nursing-IC").await;
    let filter = json!({"type": "Equals", "name": "desktop_pool_id", "value": nursing});
    let response = client
        .request(Method::GET, "inventory/v2/machines")
        .query(&[
            ("filter", filter.to_string()),
            ("page", "1".into()),
            ("size", "50".into()),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("has_more_records").is_some());
    let page: Value = response.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 50);
    assert!(page
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["desktop_pool_id"] == nursing.as_str()));
}

#[tokio::test]
async fn sessions_link_to_machines_and_hosts() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let (_, sessions) = client.get("inventory/v1/sessions").await;
    let sessions = sessions.as_array().unwrap();
    let (_, machines) = client.get("inventory/v2/machines").await;
    let machines: BTreeMap<&str, &Value> = machines
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m))
        .collect();
    let mut vdi = 0;
    let mut rds = 0;
    for session in sessions {
        assert!(session["user_id"]
            .as_str()
            .unwrap()
            .starts_with("S-1-5-21-"));
        match session["machine_id"].as_str() {
            Some(machine_id) => {
                vdi += 1;
                let machine = machines[machine_id];
                assert_eq!(machine["state"], session["session_state"]);
                assert_eq!(machine["session_id"], session["id"]);
            }
            None => {
                rds += 1;
                assert!(session["rds_server_id"].is_string());
                assert!(session["farm_id"].is_string());
            }
        }
    }
    assert_eq!(vdi, 5);
    assert_eq!(rds, 7);

    let disconnected = json!({"type": "NotEquals", "name": "session_state", "value": "CONNECTED"});
    let (_, found) = client
        .get_filtered("inventory/v1/sessions", &disconnected)
        .await;
    assert!(found
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["session_state"] == "DISCONNECTED"));
    assert_eq!(found.as_array().unwrap().len(), 3);

    let machine_id = sessions
        .iter()
        .find_map(|s| s["machine_id"].as_str())
        .unwrap();
    let by_machine = json!({"type": "Equals", "name": "machine_id", "value": machine_id});
    let (_, found) = client
        .get_filtered("inventory/v1/sessions", &by_machine)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn end_sessions_frees_machines() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let machine = sim.snapshot().machine("EHR-IC-001").unwrap().clone();
    assert_eq!(machine.state, "CONNECTED");
    sim.end_sessions(std::slice::from_ref(&machine.id));
    let (_, body) = client
        .get(&format!("inventory/v2/machines/{}", machine.id))
        .await;
    assert_eq!(body["state"], "AVAILABLE");
    assert!(body.get("session_id").is_none());
    sim.end_sessions(&[]);
    let (_, sessions) = client.get("inventory/v1/sessions").await;
    assert_eq!(sessions, json!([]));
}

#[tokio::test]
async fn single_objects_and_404() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let snapshot = sim.snapshot();
    let pool = snapshot.desktop_pool("EHR-IC").unwrap();
    let (status, body) = client
        .get(&format!("inventory/v5/desktop-pools/{}", pool.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "EHR-IC");
    let farm = &snapshot.farms[0];
    let (status, _) = client.get(&format!("inventory/v1/farms/{}", farm.id)).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "inventory/v5/desktop-pools/nope",
        "inventory/v1/machines/nope",
        "inventory/v1/sessions/nope",
        "inventory/v1/rds-servers/nope",
        "inventory/v1/application-pools/nope",
    ] {
        let (status, _) = client.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn maintenance_mode_per_item() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let machine = sim.snapshot().machine("EHR-IC-004").unwrap().id.clone();
    let (status, items) = client
        .call(
            Method::POST,
            "inventory/v1/machines/action/enter-maintenance",
            Some(json!([machine, "missing-machine"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items[0]["status_code"], 200);
    assert_eq!(items[1]["status_code"], 404);
    assert!(items[1]["error_messages"][0].is_string());
    assert_eq!(
        sim.snapshot().machine("EHR-IC-004").unwrap().state,
        "MAINTENANCE"
    );

    let (status, _) = client
        .call(
            Method::POST,
            "inventory/v1/machines/action/exit-maintenance",
            Some(json!([machine])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.snapshot().machine("EHR-IC-004").unwrap().state,
        "AVAILABLE"
    );
    let (status, _) = client
        .call(
            Method::POST,
            "inventory/v1/machines/action/enter-maintenance",
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hospital_fleet_is_realistic() {
    let sim = start(HorizonFleet::Hospital).await;
    let client = Client::login(&sim).await;
    let (machines, pages) = client.get_all("inventory/v2/machines", 100).await;
    assert_eq!(machines.len(), 424);
    assert_eq!(pages, 5);
    let (big, _) = client.get_all("inventory/v2/machines", 1000).await;
    assert_eq!(big, machines, "page size does not change the result");

    let empty = client.pool_id("Research-Empty").await;
    let filter = json!({"type": "Equals", "name": "desktop_pool_id", "value": empty});
    let (_, none) = client.get_filtered("inventory/v2/machines", &filter).await;
    assert_eq!(none, json!([]));

    let (_, sessions) = client.get("inventory/v1/sessions").await;
    let sessions = sessions.as_array().unwrap();
    let connected = sessions
        .iter()
        .filter(|s| s["session_state"] == "CONNECTED")
        .count();
    let disconnected = sessions
        .iter()
        .filter(|s| s["session_state"] == "DISCONNECTED")
        .count();
    assert!(connected > 100, "{connected} connected");
    assert!(disconnected > 20, "{disconnected} disconnected");
    let (_, farms) = client.get("inventory/v3/farms").await;
    assert_eq!(farms.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn seeded_fleets_are_deterministic() {
    let first = start(HorizonFleet::Hospital).await.snapshot();
    let second = start(HorizonFleet::Hospital).await.snapshot();
    assert_eq!(first, second);
    let other = start_with(HorizonSimConfig {
        fleet: HorizonFleet::Hospital,
        seed: 2,
        ..HorizonSimConfig::default()
    })
    .await
    .snapshot();
    assert_ne!(first.machines[0].id, other.machines[0].id);
}

#[tokio::test]
async fn sized_fleet_matches_request() {
    let sim = start(HorizonFleet::Sized {
        pools: 2,
        machines_per_pool: 50,
        active_session_percent: 40,
    })
    .await;
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.desktop_pools.len(), 2);
    assert_eq!(snapshot.machines.len(), 100);
    let busy = snapshot
        .machines
        .iter()
        .filter(|m| m.state == "CONNECTED")
        .count();
    assert!((20..=60).contains(&busy), "{busy} machines in session");
    assert!(snapshot
        .machines
        .iter()
        .all(|m| m.state == "CONNECTED" || m.state == "AVAILABLE"));
}
