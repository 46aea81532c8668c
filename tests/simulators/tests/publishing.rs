//! Tags, application groups, applications and asynchronous jobs.

mod support;

use broker_sim::citrix::{Fleet, JobOutcome, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{start, Client};

fn new_app_body(name: &str, groups: Value) -> Value {
    json!({
        "NewApplications": [{
            "Name": name,
            "PublishedName": "Cardio Viewer",
            "ApplicationFolder": "Gateway\\Cardio",
            "ApplicationType": "HostedOnDesktop",
            "InstalledAppProperties": {
                "CommandLineExecutable": "C:\\Program Files\\Player\\player.exe",
                "CommandLineArguments": "launch cardio-viewer@2.1.0",
                "WorkingDirectory": "C:\\Program Files\\Player"
            },
            "Metadata": [{"Name": "gateway.assignment", "Value": "a-1"}]
        }],
        "DeliveryGroups": groups
    })
}

#[tokio::test]
async fn tag_create_conflict_and_lookup() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let (status, tag) = client
        .call(
            Method::POST,
            "Tags",
            Some(json!({"Name": "gw:cardio:2.1.0", "Description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(tag["NumMachines"], 0);
    let (status, body) = client
        .call(
            Method::POST,
            "Tags",
            Some(json!({"Name": "GW:cardio:2.1.0"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["Type"]
        .as_str()
        .unwrap()
        .ends_with("ObjectAlreadyExists"));
    let id = tag["Id"].as_str().unwrap();
    let (status, by_id) = client.get(&format!("Tags/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["Name"], "gw:cardio:2.1.0");
}

#[tokio::test]
async fn machine_tag_add_remove() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let (_, tag) = client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:v1"})))
        .await;
    let tag_id = tag["Id"].as_str().unwrap().to_string();

    let (status, _) = client
        .call(Method::POST, "Machines/HOSP|EHR-VDA-0004/Tags/gw:v1", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call(
            Method::POST,
            &format!("Machines/HOSP|EHR-VDA-0004/Tags/{tag_id}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "adding a tag twice is accepted"
    );
    let (_, machine) = client.get("Machines/HOSP|EHR-VDA-0004").await;
    assert_eq!(machine["Tags"], json!(["gw:v1"]));
    let (_, tags) = client.get("Machines/HOSP|EHR-VDA-0004/Tags").await;
    assert_eq!(tags["Items"][0]["Id"], tag_id.as_str());

    let (status, body) = client
        .call(
            Method::POST,
            "Machines/HOSP|EHR-VDA-0004/Tags/missing",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["Detail"].is_string());

    let (status, _) = client
        .call(
            Method::DELETE,
            "Machines/HOSP|EHR-VDA-0004/Tags/gw:v1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call(
            Method::DELETE,
            "Machines/HOSP|EHR-VDA-0004/Tags/gw:v1",
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "removing a tag the machine lacks"
    );
    assert!(sim
        .snapshot()
        .machine("HOSP\\EHR-VDA-0004")
        .unwrap()
        .tags
        .is_empty());

    let other = sim
        .snapshot()
        .machine("HOSP\\LAB-VDA-0001")
        .unwrap()
        .tags
        .clone();
    assert_eq!(other, ["ward-3-kiosk"]);
}

#[tokio::test]
async fn tag_delete_requires_unused() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:tmp"})))
        .await;
    client
        .call(Method::POST, "Machines/HOSP|LAB-VDA-0002/Tags/gw:tmp", None)
        .await;
    let (status, _) = client.call(Method::DELETE, "Tags/gw:tmp", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    client
        .call(
            Method::DELETE,
            "Machines/HOSP|LAB-VDA-0002/Tags/gw:tmp",
            None,
        )
        .await;
    let (status, _) = client.call(Method::DELETE, "Tags/gw:tmp", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client.get("Tags/gw:tmp").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn publish_async_job_and_read_back() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let body = new_app_body(
        "cardio-viewer-2.1.0",
        json!([{"Item": "EHR Clinicians", "Priority": 0}]),
    );
    let response = client
        .send(Method::POST, "Applications?async=true", Some(body))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("/cvad/manage/Jobs/"));
    assert!(response.bytes().await.unwrap().is_empty());

    let id = location.rsplit('/').next().unwrap();
    let (_, first) = client.get(&format!("Jobs/{id}")).await;
    assert_eq!(first["Status"], "InProgress");
    assert_eq!(first["Type"], "AddApplications");
    let job = client.wait_job(&location).await;
    assert_eq!(job["Status"], "Complete");

    let (status, app) = client
        .get("Applications/Gateway|Cardio|cardio-viewer-2.1.0")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app["InstalledAppProperties"]["CommandLineArguments"],
        "launch cardio-viewer@2.1.0"
    );
    assert_eq!(app["ApplicationFolder"]["Name"], "Gateway\\Cardio");
    assert_eq!(app["NumAssociatedDeliveryGroups"], 1);
    assert_eq!(app["Metadata"][0]["Name"], "gateway.assignment");

    let (status, listed) = client
        .get("Applications?applicationFolder=Gateway%5CCardio")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["TotalItems"], 1);

    let (status, conflict) = client
        .call(
            Method::POST,
            "Applications",
            Some(new_app_body("cardio-viewer-2.1.0", json!([]))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
}

#[tokio::test]
async fn publish_sync_returns_empty_body() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let body = new_app_body("plain-app", json!([{"Item": "Lab Systems"}]));
    let response = client.send(Method::POST, "Applications", Some(body)).await;
    assert!(response.status().is_success());
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(sim.snapshot().application("plain-app").is_some());
}

#[tokio::test]
async fn patch_replaces_delivery_groups() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let body = new_app_body(
        "app-a",
        json!([{"Item": "EHR Clinicians"}, {"Item": "Lab Systems"}]),
    );
    client.call(Method::POST, "Applications", Some(body)).await;
    let snapshot = sim.snapshot();
    assert_eq!(
        snapshot.application("app-a").unwrap().delivery_groups.len(),
        2
    );
    let lab = snapshot.delivery_group("Lab Systems").unwrap().id.clone();

    let patch = json!({"DeliveryGroups": [{"Item": lab, "Priority": 0}], "Enabled": false});
    let (status, _) = client
        .call(
            Method::PATCH,
            "Applications/Gateway|Cardio|app-a",
            Some(patch),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let app = sim.snapshot().application("app-a").unwrap().clone();
    assert_eq!(app.delivery_groups, [lab]);
    assert!(!app.enabled);
    assert_eq!(
        app.command_line_executable,
        "C:\\Program Files\\Player\\player.exe"
    );

    let clear = json!({"DeliveryGroups": []});
    client
        .call(
            Method::PATCH,
            "Applications/Gateway|Cardio|app-a",
            Some(clear),
        )
        .await;
    assert!(sim
        .snapshot()
        .application("app-a")
        .unwrap()
        .delivery_groups
        .is_empty());

    let (status, _) = client
        .call(Method::DELETE, "Applications/Gateway|Cardio|app-a", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sim.snapshot().application("app-a").is_none());
}

#[tokio::test]
async fn app_group_restricted_to_tag() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    client
        .call(
            Method::POST,
            "Tags",
            Some(json!({"Name": "gw:cardio:2.1.0"})),
        )
        .await;
    client
        .call(
            Method::POST,
            "Machines/HOSP|EHR-VDA-0005/Tags/gw:cardio:2.1.0",
            None,
        )
        .await;
    let create = json!({
        "Name": "gw-cardio-2.1.0",
        "RestrictToTag": "gw:cardio:2.1.0",
        "DeliveryGroups": [{"Item": "EHR Clinicians", "Priority": 0}],
        "Metadata": [{"Name": "gateway.owned", "Value": "true"}]
    });
    let (status, group) = client
        .call(Method::POST, "ApplicationGroups", Some(create.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(group["RestrictToTag"]["Name"], "gw:cardio:2.1.0");
    assert_eq!(group["NumMachinesWithTag"], 1);
    assert_eq!(group["DeliveryGroups"][0]["Name"], "EHR Clinicians");
    let (status, _) = client
        .call(Method::POST, "ApplicationGroups", Some(create))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let add = new_app_body("cardio-viewer", json!([]));
    let (status, _) = client
        .call(
            Method::POST,
            "ApplicationGroups/gw-cardio-2.1.0/Applications",
            Some(add),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, apps) = client
        .get("ApplicationGroups/gw-cardio-2.1.0/Applications")
        .await;
    assert_eq!(apps["Items"][0]["Name"], "cardio-viewer");
    let snapshot = sim.snapshot();
    let group = snapshot.application_group("gw-cardio-2.1.0").unwrap();
    assert_eq!(group.restrict_to_tag.as_deref(), Some("gw:cardio:2.1.0"));
    assert_eq!(group.application_ids.len(), 1);

    let (status, _) = client
        .call(
            Method::DELETE,
            "ApplicationGroups/gw-cardio-2.1.0/Applications/cardio-viewer",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call(
            Method::PATCH,
            "ApplicationGroups/gw-cardio-2.1.0",
            Some(json!({"Enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call(Method::DELETE, "ApplicationGroups/gw-cardio-2.1.0", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sim.snapshot().application_groups.is_empty());
}

#[tokio::test]
async fn job_outcomes_follow_knob() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let cases = [
        (JobOutcome::Failed, "failed-app", false),
        (JobOutcome::CompleteWithWarning, "warned-app", true),
    ];
    for (outcome, name, applied) in cases {
        sim.set_knobs(Knobs {
            job_outcome: outcome,
            ..Knobs::default()
        });
        let body = new_app_body(name, json!([{"Item": "Lab Systems"}]));
        let response = client
            .send(Method::POST, "Applications?async=true", Some(body))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{name}");
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let job = client.wait_job(&location).await;
        assert_eq!(job["Status"], outcome.as_str(), "{name}");
        assert_eq!(
            sim.snapshot().application(name).is_some(),
            applied,
            "{name}"
        );
        if outcome == JobOutcome::Failed {
            assert!(job["ErrorString"].is_string());
            assert_eq!(job["ErrorParameters"][0]["Name"], "ErrorDetails");
            assert!(job["ErrorParameters"][0]["Value"]
                .as_str()
                .unwrap()
                .starts_with("ErrorMessage :"));
        }
    }
}
