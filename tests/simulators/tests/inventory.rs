//! Delivery groups, machines and sessions: lookups, paging and the seeded fleets.

mod support;

use std::collections::HashSet;

use broker_sim::citrix::Fleet;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{start, Client};

#[tokio::test]
async fn small_fleet_groups_and_states() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let (status, groups) = client.get("DeliveryGroups").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = groups["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EHR Clinicians", "Lab Systems"]);
    assert_eq!(groups["TotalItems"], 2);
    assert!(groups["ContinuationToken"].is_null());

    let machines = client
        .get_all("DeliveryGroups/EHR%20Clinicians/Machines", 100)
        .await;
    assert_eq!(machines.len(), 10);
    let count = |field: &str, value: Value| machines.iter().filter(|m| m[field] == value).count();
    assert_eq!(count("InMaintenanceMode", Value::Bool(true)), 1);
    assert_eq!(count("DrainingUntilShutdown", Value::Bool(true)), 1);
    assert_eq!(count("RegistrationState", "Unregistered".into()), 1);
    assert_eq!(count("WillShutdownAfterUse", Value::Bool(true)), 1);
    assert_eq!(count("SessionState", "Active".into()), 2);
    assert_eq!(count("SessionState", "Disconnected".into()), 1);
    assert_eq!(machines[0]["Name"], "HOSP\\EHR-VDA-0001");
    assert_eq!(machines[0]["DeliveryGroup"]["Name"], "EHR Clinicians");
    assert_eq!(machines[0]["SummaryState"], "InUse");

    let (_, lab) = client.get("DeliveryGroups/lab%20systems").await;
    assert_eq!(lab["TotalDesktops"], 4);
    assert_eq!(lab["SessionCount"], 0);
    assert_eq!(lab["DeliveryType"], "DesktopsAndApps");
}

#[tokio::test]
async fn delivery_group_by_id_and_name() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let id = sim
        .snapshot()
        .delivery_group("Lab Systems")
        .unwrap()
        .id
        .clone();
    let (status, by_id) = client.get(&format!("DeliveryGroups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["Name"], "Lab Systems");
    let (status, _) = client.get("DeliveryGroups/No%20Such%20Group").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn machine_lookup_forms() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let (_, by_name) = client.get("Machines/HOSP|EHR-VDA-0002").await;
    assert_eq!(by_name["Name"], "HOSP\\EHR-VDA-0002");
    let id = by_name["Id"].as_str().unwrap();
    let sid = by_name["Sid"].as_str().unwrap();
    let paths = [
        "Machines/HOSP%7CEHR-VDA-0002".to_string(),
        "Machines/hosp|ehr-vda-0002".to_string(),
        format!("Machines/{id}"),
        format!("Machines/{sid}"),
    ];
    for path in paths {
        let (status, machine) = client.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(machine["Id"], id, "{path}");
    }
    let (status, _) = client.get("Machines/HOSP|NOPE-0001").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn paging_to_end_with_limit() {
    let sim = start(Fleet::Hospital).await;
    let client = Client::cloud(&sim).await;
    let all = client.get_all("Machines", 97).await;
    assert_eq!(all.len(), 440);
    let ids: HashSet<&str> = all.iter().map(|m| m["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 440);
    let counters = sim.counters();
    assert_eq!(counters.route("GET /cvad/manage/machines"), 5);

    let (_, first) = client.get("Machines").await;
    assert_eq!(first["Items"].as_array().unwrap().len(), 250);
    assert_eq!(first["TotalItems"], 440);
}

#[tokio::test]
async fn paging_rejects_bad_parameters() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let cases = [
        "Machines?limit=1001",
        "Machines?limit=0",
        "Machines?limit=abc",
        "Machines?continuationToken=not-a-token",
    ];
    for path in cases {
        let (status, body) = client.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body["Detail"].is_string(), "{path}");
    }
    let (status, _) = client.get("Machines?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_by_machine_and_site() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let all = client.get_all("Sessions", 2).await;
    assert_eq!(all.len(), 3);
    let (_, on_machine) = client.get("Machines/HOSP|EHR-VDA-0003/Sessions").await;
    let items = on_machine["Items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["State"], "Disconnected");
    assert_eq!(items[0]["Machine"]["Name"], "HOSP\\EHR-VDA-0003");
    assert!(items[0]["UntrustedUserName"]
        .as_str()
        .unwrap()
        .starts_with("HOSP\\"));
    let id = items[0]["Id"].as_str().unwrap();
    let (status, one) = client.get(&format!("Sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["Id"], id);
}

#[tokio::test]
async fn end_sessions_frees_machine() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    sim.end_sessions(&["HOSP\\EHR-VDA-0001".to_string()]);
    let (_, machine) = client.get("Machines/HOSP|EHR-VDA-0001").await;
    assert_eq!(machine["SessionCount"], 0);
    assert_eq!(machine["SummaryState"], "Available");
    assert_eq!(client.get_all("Sessions", 10).await.len(), 2);
    sim.end_sessions(&[]);
    assert_eq!(client.get_all("Sessions", 10).await.len(), 0);
}

#[tokio::test]
async fn hospital_fleet_realistic() {
    let sim = start(Fleet::Hospital).await;
    let client = Client::cloud(&sim).await;
    let groups = client.get_all("DeliveryGroups", 250).await;
    assert!(groups.len() >= 5);
    assert!(groups.iter().any(|g| g["IsRemotePC"] == true));
    assert!(groups.iter().any(|g| g["InMaintenanceMode"] == true));
    let ehr = groups
        .iter()
        .find(|g| g["Name"] == "EHR Clinicians")
        .unwrap();
    assert_eq!(ehr["SessionSupport"], "MultiSession");
    assert_eq!(ehr["TotalDesktops"], 240);

    let machines = client.get_all("Machines", 1000).await;
    let total = machines.len() as f64;
    let share = |predicate: &dyn Fn(&Value) -> bool| {
        machines.iter().filter(|m| predicate(m)).count() as f64 / total
    };
    let active = share(&|m| m["SummaryState"] == "InUse");
    let disconnected = share(&|m| m["SummaryState"] == "Disconnected");
    let maintenance = share(&|m| m["InMaintenanceMode"] == true);
    assert!((0.25..=0.45).contains(&active), "active {active}");
    assert!(
        (0.05..=0.15).contains(&disconnected),
        "disconnected {disconnected}"
    );
    assert!(
        (0.005..=0.08).contains(&maintenance),
        "maintenance {maintenance}"
    );
    assert!(machines
        .iter()
        .all(|m| m["Name"].as_str().unwrap().starts_with("HOSP\\")));
}

#[tokio::test]
async fn sized_fleet_for_benchmarks() {
    let sim = start(Fleet::Sized {
        delivery_groups: 2,
        machines_per_group: 600,
        active_session_percent: 50,
    })
    .await;
    let client = Client::cloud(&sim).await;
    let machines = client.get_all("Machines", 1000).await;
    assert_eq!(machines.len(), 1200);
    let in_use = machines
        .iter()
        .filter(|m| m["SummaryState"] == "InUse")
        .count();
    assert!((450..=750).contains(&in_use), "in use {in_use}");
    let (status, _) = client
        .call(Method::GET, "DeliveryGroups/Bench%20Group%2002", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn go_client_base_path_works() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let url = format!(
        "{}/citrix/orchestration/api/{}/{}/DeliveryGroups",
        sim.base_url(),
        client.customer,
        client.site
    );
    let response = client
        .http
        .get(url)
        .header("Authorization", format!("CwsAuth Bearer={}", client.token))
        .header("Citrix-CustomerId", &client.customer)
        .header("Citrix-InstanceId", &client.site)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
