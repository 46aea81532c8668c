//! Entra ID groups: create, find, members with "already a member" and "not a member",
//! and the read lag of member lists.

mod graph_support;

use std::time::Duration;

use broker_sim::graph::{GraphFleet, GraphSimConfig, ALREADY_A_MEMBER};
use graph_support::{start, start_with, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn member_ref(id: &str) -> Value {
    json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")})
}

async fn create_group(client: &Client, name: &str) -> String {
    let body = json!({
        "displayName": name,
        "description": "Devices that get container app 1.2",
        "mailEnabled": false,
        "mailNickname": name.to_lowercase(),
        "securityEnabled": true,
    });
    let (status, group) = client.call(Method::POST, "v1.0/groups", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    group["id"].as_str().unwrap().to_string()
}

fn laptop_object_id(sim: &broker_sim::graph::GraphSim, name: &str) -> String {
    let snapshot = sim.snapshot();
    let device = snapshot.managed_device(name).unwrap();
    device.directory_object_id.clone().unwrap()
}

#[tokio::test]
async fn group_create_and_find() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let id = create_group(&client, "VDIGW-EHR-Viewer-1.2").await;
    let (items, _) = client
        .get_all("v1.0/groups?$filter=displayName eq 'VDIGW-EHR-Viewer-1.2'")
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["securityEnabled"], true);
    let (status, group) = client.get(&format!("v1.0/groups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(group["mailEnabled"], false);
    assert!(sim.snapshot().group(&id).is_some());
}

#[tokio::test]
async fn group_create_rejects_invalid_bodies() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let cases = [
        json!({"displayName": "a", "mailEnabled": false, "securityEnabled": true}),
        json!({"displayName": "a", "mailEnabled": false, "mailNickname": "has space", "securityEnabled": true}),
        json!({"displayName": "a", "mailEnabled": true, "mailNickname": "a", "securityEnabled": true}),
        json!({"displayName": "a", "mailEnabled": false, "mailNickname": "a", "securityEnabled": true, "visibility": "Private"}),
    ];
    for body in cases {
        let (status, error) = client
            .call(Method::POST, "v1.0/groups", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], "Request_BadRequest", "{body}");
    }
}

#[tokio::test]
async fn member_add_remove_cycle() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let group = create_group(&client, "VDIGW-cycle").await;
    let device = laptop_object_id(&sim, "HOSP-LT-0001");
    let add_path = format!("v1.0/groups/{group}/members/$ref");

    let (status, _) = client
        .call(Method::POST, &add_path, Some(member_ref(&device)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.snapshot().group(&group).unwrap().members,
        vec![device.clone()]
    );

    let (status, body) = client
        .call(Method::POST, &add_path, Some(member_ref(&device)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already a member");
    assert_eq!(body["error"]["message"], ALREADY_A_MEMBER);

    let remove_path = format!("v1.0/groups/{group}/members/{device}/$ref");
    let (status, _) = client.call(Method::DELETE, &remove_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sim.snapshot().group(&group).unwrap().members.is_empty());

    let (status, body) = client.call(Method::DELETE, &remove_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a member");
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
}

#[tokio::test]
async fn member_add_unknown_object_is_404() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let group = create_group(&client, "VDIGW-unknown").await;
    let path = format!("v1.0/groups/{group}/members/$ref");
    let missing = "00000000-0000-0000-0000-000000000000";
    let (status, _) = client
        .call(Method::POST, &path, Some(member_ref(missing)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = client
        .call(
            Method::POST,
            &format!("v1.0/groups/{missing}/members/$ref"),
            Some(member_ref(missing)),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn membership_reads_lag_writes() {
    let sim = start_with(GraphSimConfig {
        membership_lag: Duration::from_millis(300),
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let group = create_group(&client, "VDIGW-lag").await;
    let device = laptop_object_id(&sim, "HOSP-LT-0002");
    let members = format!("v1.0/groups/{group}/members");
    client
        .call(
            Method::POST,
            &format!("{members}/$ref"),
            Some(member_ref(&device)),
        )
        .await;

    let (early, _) = client.get_all(&members).await;
    assert!(early.is_empty(), "the new member is not visible yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (late, _) = client.get_all(&members).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["@odata.type"], "#microsoft.graph.device");
    assert_eq!(late[0]["id"], device.as_str());

    client
        .call(Method::DELETE, &format!("{members}/{device}/$ref"), None)
        .await;
    let (still, _) = client.get_all(&members).await;
    assert_eq!(still.len(), 1, "the removal is not visible yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (gone, _) = client.get_all(&members).await;
    assert!(gone.is_empty());
}

#[tokio::test]
async fn members_page_through_next_links() {
    let sim = start(GraphFleet::Hospital).await;
    let client = Client::connect(&sim).await;
    let snapshot = sim.snapshot();
    let group = snapshot.group("W365-Clinicians").unwrap();
    let (items, pages) = client
        .get_all(&format!("v1.0/groups/{}/members?$top=64", group.id))
        .await;
    assert_eq!(items.len(), 200);
    assert_eq!(pages, 4);
    assert!(items
        .iter()
        .all(|m| m["@odata.type"] == "#microsoft.graph.user"));
}

#[tokio::test]
async fn group_delete_and_count() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let group = create_group(&client, "VDIGW-delete").await;
    let (status, _) = client
        .call(Method::DELETE, &format!("v1.0/groups/{group}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client.get(&format!("v1.0/groups/{group}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = client.get("v1.0/groups?$count=true").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "$count needs ConsistencyLevel: eventual"
    );
    let response = client
        .http
        .get(format!("{}v1.0/groups?$count=true", sim.graph_base_url()))
        .bearer_auth(&client.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["@odata.count"], 2);
}

#[tokio::test]
async fn patch_binds_members_atomically() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let group = create_group(&client, "VDIGW-bulk").await;
    let first = laptop_object_id(&sim, "HOSP-LT-0001");
    let second = laptop_object_id(&sim, "HOSP-LT-0002");
    let bind = |ids: &[&str]| {
        let refs: Vec<String> = ids
            .iter()
            .map(|id| format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"))
            .collect();
        json!({"members@odata.bind": refs})
    };
    let path = format!("v1.0/groups/{group}");

    let (status, _) = client
        .call(Method::PATCH, &path, Some(bind(&[&first])))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call(Method::PATCH, &path, Some(bind(&[&second, &first])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "one already a member");
    assert_eq!(
        sim.snapshot().group(&group).unwrap().members,
        vec![first.clone()],
        "nothing added"
    );

    let many: Vec<String> = (0..21).map(|_| second.clone()).collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, _) = client
        .call(Method::PATCH, &path, Some(bind(&many_refs)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "over 20");
    let (status, _) = client
        .call(Method::PATCH, &path, Some(bind(&[&second])))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.snapshot().group(&group).unwrap().members,
        vec![first, second]
    );
}

#[tokio::test]
async fn get_with_unknown_select_is_400() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let id = sim.snapshot().groups[0].id.clone();
    let (status, body) = client
        .get(&format!("v1.0/groups/{id}?$select=id,visibility"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'visibility'"), "{message}");
    let (status, body) = client
        .get(&format!("v1.0/groups/{id}?$select=id,displayName"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().unwrap().len(), 2);
}
