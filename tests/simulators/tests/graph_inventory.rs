//! Cloud PC, provisioning policy and managed device reads, query options and paging.

mod graph_support;

use broker_sim::graph::{
    GraphFleet, GraphSimConfig, Knobs, UNKNOWN_CLOUD_PC_STATUS, UNKNOWN_FIELD,
};
use graph_support::{start, start_with, Client};
use reqwest::StatusCode;
use serde_json::Value;

const CLOUD_PCS: &str = "deviceManagement/virtualEndpoint/cloudPCs";

#[tokio::test]
async fn small_fleet_cloud_pcs_v1() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (items, _) = client.get_all(&format!("v1.0/{CLOUD_PCS}")).await;
    assert_eq!(items.len(), 9);
    assert!(
        items.iter().all(|pc| pc.get("status").is_none()),
        "status is beta-only"
    );
    let without_device = items
        .iter()
        .filter(|pc| pc["managedDeviceId"].is_null())
        .count();
    assert_eq!(
        without_device, 4,
        "three Business PCs and one still provisioning"
    );
}

#[tokio::test]
async fn beta_cloud_pcs_have_status_and_plan() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (items, _) = client.get_all(&format!("beta/{CLOUD_PCS}")).await;
    let count = |status: &str| items.iter().filter(|pc| pc["status"] == status).count();
    assert_eq!(count("provisioned"), 7);
    assert_eq!(count("inGracePeriod"), 1);
    assert_eq!(count("provisioning"), 1);
    let business: Vec<&Value> = items
        .iter()
        .filter(|pc| pc["servicePlanType"] == "business")
        .collect();
    assert_eq!(business.len(), 3);
    assert!(business.iter().all(|pc| pc["managedDeviceId"].is_null()));
    assert!(business.iter().all(|pc| pc["productType"] == "business"));
    let grace = items
        .iter()
        .find(|pc| pc["status"] == "inGracePeriod")
        .unwrap();
    assert!(grace["gracePeriodEndDateTime"].is_string());
}

#[tokio::test]
async fn beta_filter_and_select() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let path = format!("beta/{CLOUD_PCS}?$filter=status eq 'provisioned' and servicePlanType eq 'enterprise'&$select=id,status,managedDeviceId");
    let (items, _) = client.get_all(&path).await;
    assert_eq!(items.len(), 4);
    for item in &items {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{item}");
        assert_eq!(item["status"], "provisioned");
    }
}

#[tokio::test]
async fn v1_filter_on_status_is_400() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (status, body) = client
        .get(&format!("v1.0/{CLOUD_PCS}?$filter=status eq 'provisioned'"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'status'"), "{message}");
}

#[tokio::test]
async fn cloud_pcs_reject_skip() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (status, _) = client.get(&format!("v1.0/{CLOUD_PCS}?$skip=2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn evolved_status_needs_prefer_header() {
    let sim = start(GraphFleet::Hospital).await;
    let client = Client::connect(&sim).await;
    let filter = format!("beta/{CLOUD_PCS}?$filter=status eq 'movingRegion'");
    let (hidden, _) = client.get_all(&filter).await;
    assert!(
        hidden.is_empty(),
        "without Prefer the status reads unknownFutureValue"
    );

    let url = format!("{}{filter}", sim.graph_base_url());
    let response = client
        .http
        .get(url)
        .bearer_auth(&client.token)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn paging_follows_next_links() {
    let sim = start(GraphFleet::Hospital).await;
    let client = Client::connect(&sim).await;
    let (items, pages) = client.get_all(&format!("beta/{CLOUD_PCS}?$top=100")).await;
    assert_eq!(items.len(), 240);
    assert_eq!(pages, 3);
    let (body_status, first) = client.get(&format!("v1.0/{CLOUD_PCS}?$count=true")).await;
    assert_eq!(body_status, StatusCode::OK);
    assert_eq!(first["@odata.count"], 240);
    assert_eq!(
        first["value"].as_array().unwrap().len(),
        50,
        "default page size"
    );
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&sim.base_url()), "{next}");
    assert!(next.contains("$skiptoken="), "{next}");
    let second: Value = client
        .send_url(reqwest::Method::GET, next, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        second.get("@odata.count").is_none(),
        "count on the first page only"
    );
}

#[tokio::test]
async fn paging_with_empty_pages() {
    let sim = start_with(GraphSimConfig {
        knobs: Knobs {
            empty_pages: true,
            ..Knobs::default()
        },
        page_size: 4,
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let (first_status, first) = client.get(&format!("v1.0/{CLOUD_PCS}")).await;
    assert_eq!(first_status, StatusCode::OK);
    assert_eq!(first["value"].as_array().unwrap().len(), 0);
    assert!(
        first["@odata.nextLink"].is_string(),
        "an empty page still has a next link"
    );
    let (items, pages) = client.get_all(&format!("v1.0/{CLOUD_PCS}")).await;
    assert_eq!(items.len(), 9);
    assert_eq!(pages, 6, "three empty pages and three with items");
}

#[tokio::test]
async fn top_over_maximum() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (status, _) = client.get("v1.0/groups?$top=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "directory maximum is 999");
    let (status, body) = client
        .get("v1.0/deviceManagement/managedDevices?$top=5000")
        .await;
    assert_eq!(status, StatusCode::OK, "Intune clamps");
    assert_eq!(body["value"].as_array().unwrap().len(), 11);
}

#[tokio::test]
async fn managed_devices_list_and_filter() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (items, _) = client.get_all("v1.0/deviceManagement/managedDevices").await;
    assert_eq!(
        items.len(),
        11,
        "six laptops and five enrolled Enterprise Cloud PCs"
    );
    assert!(items.iter().all(|d| d["operatingSystem"] == "Windows"));
    assert!(
        items.iter().all(|d| d.get("managementState").is_none()),
        "beta-only"
    );
    let path = "v1.0/deviceManagement/managedDevices?$filter=complianceState eq 'noncompliant'";
    let (noncompliant, _) = client.get_all(path).await;
    assert_eq!(noncompliant.len(), 1);
    assert_eq!(noncompliant[0]["deviceName"], "HOSP-LT-0004");
    let (beta, _) = client.get_all("beta/deviceManagement/managedDevices").await;
    assert!(beta.iter().all(|d| d["managementState"] == "managed"));
}

#[tokio::test]
async fn managed_devices_skip_returns_empty_page() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (status, body) = client
        .get("v1.0/deviceManagement/managedDevices?$skip=5")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
    assert!(body["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn enterprise_pc_resolves_to_directory_device() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (pcs, _) = client
        .get_all(&format!("v1.0/{CLOUD_PCS}?$filter=managedDeviceId ne null"))
        .await;
    let managed_id = pcs[0]["managedDeviceId"].as_str().unwrap();
    let (status, device) = client
        .get(&format!(
            "v1.0/deviceManagement/managedDevices/{managed_id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let device_id = device["azureADDeviceId"].as_str().unwrap();
    let (found, _) = client
        .get_all(&format!(
            "v1.0/devices?$filter=deviceId eq '{device_id}'&$select=id"
        ))
        .await;
    assert_eq!(found.len(), 1);
    let expected = sim
        .snapshot()
        .managed_device(managed_id)
        .unwrap()
        .directory_object_id
        .clone();
    assert_eq!(found[0]["id"].as_str(), expected.as_deref());
}

#[tokio::test]
async fn provisioning_policies_are_readable() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let (policies, _) = client
        .get_all("v1.0/deviceManagement/virtualEndpoint/provisioningPolicies")
        .await;
    assert_eq!(policies.len(), 2);
    let id = policies[0]["id"].as_str().unwrap();
    let path =
        format!("v1.0/deviceManagement/virtualEndpoint/provisioningPolicies/{id}/assignments");
    let (assignments, _) = client.get_all(&path).await;
    let group_id = assignments[0]["target"]["groupId"].as_str().unwrap();
    let snapshot = sim.snapshot();
    assert_eq!(
        snapshot.group(group_id).unwrap().display_name,
        "W365-Clinicians"
    );
}

#[tokio::test]
async fn unknown_values_are_injected() {
    let sim = start(GraphFleet::Small).await;
    sim.set_knobs(Knobs {
        unknown_values: true,
        ..Knobs::default()
    });
    let client = Client::connect(&sim).await;
    let (items, _) = client.get_all(&format!("beta/{CLOUD_PCS}")).await;
    assert!(items
        .iter()
        .all(|pc| pc["status"] == UNKNOWN_CLOUD_PC_STATUS));
    assert!(items
        .iter()
        .all(|pc| pc["servicePlanType"] == "unknownFutureValue"));
    assert!(items.iter().all(|pc| pc.get(UNKNOWN_FIELD).is_some()));
}

#[tokio::test]
async fn same_seed_same_snapshot() {
    let first = start(GraphFleet::Small).await;
    let second = start(GraphFleet::Small).await;
    assert_eq!(first.snapshot(), second.snapshot());
    assert_eq!(first.snapshot().agent_only_laptops.len(), 4);
}

#[tokio::test]
async fn sized_fleet_counts() {
    let sim = start(GraphFleet::Sized {
        cloud_pcs: 120,
        laptops: 30,
    })
    .await;
    let client = Client::connect(&sim).await;
    let (items, _) = client.get_all(&format!("v1.0/{CLOUD_PCS}?$top=999")).await;
    assert_eq!(items.len(), 120);
    assert_eq!(sim.snapshot().managed_devices.len(), 150);
}
