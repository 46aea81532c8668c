//! `$batch` with partial failures, and every deny-list class recorded without state change.

mod support;

use broker_sim::citrix::{DenyClass, Fleet, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{start, Client};

fn tag_item(client: &Client, reference: &str, machine: &str, tag: &str) -> Value {
    json!({
        "Reference": reference,
        "Method": "POST",
        "RelativeUrl": format!("v1/{}/{}/Machines/{machine}/Tags/{tag}", client.customer, client.site),
        "Headers": [],
        "Body": null
    })
}

#[tokio::test]
async fn batch_partial_failures() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:v2"})))
        .await;
    let failing = sim
        .snapshot()
        .machine("HOSP\\EHR-VDA-0006")
        .unwrap()
        .id
        .clone();
    sim.set_knobs(Knobs {
        fail_tag_machines: vec![failing],
        ..Knobs::default()
    });
    let batch = json!({"Items": [
        tag_item(&client, "ok", "HOSP|EHR-VDA-0004", "gw:v2"),
        tag_item(&client, "missing-machine", "HOSP|NOPE-0001", "gw:v2"),
        tag_item(&client, "server-error", "HOSP|EHR-VDA-0006", "gw:v2"),
        {
            "Reference": "read",
            "Method": "GET",
            "RelativeUrl": format!("v1/{}/{}/Machines/HOSP%7CEHR-VDA-0004", client.customer, client.site)
        },
        {"Reference": "bad-url", "Method": "GET", "RelativeUrl": "Machines"}
    ]});
    sim.reset_counters();
    let (status, body) = client.call(Method::POST, "$batch", Some(batch)).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<(String, u64)> = body["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Reference"].as_str().unwrap().to_string(),
                i["Code"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("ok", 204),
        ("missing-machine", 404),
        ("server-error", 500),
        ("read", 200),
        ("bad-url", 400),
    ];
    for ((reference, code), (want_ref, want_code)) in codes.iter().zip(expected) {
        assert_eq!(reference, want_ref);
        assert_eq!(*code, want_code, "{reference}");
    }
    let read: Value = serde_json::from_str(body["Items"][3]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(read["Tags"], json!(["gw:v2"]));
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.machines_with_tag("gw:v2").len(), 1);

    let counters = sim.counters();
    assert_eq!(counters.route("POST /cvad/manage/$batch"), 1);
    assert_eq!(
        counters.route("POST /cvad/manage/machines/{id}/tags/{id}"),
        3
    );
    assert_eq!(counters.by_status.get(&500), Some(&1));
}

#[tokio::test]
async fn batch_async_results_and_deny() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:v3"})))
        .await;
    let batch = json!({"Items": [
        tag_item(&client, "a", "HOSP|LAB-VDA-0001", "gw:v3"),
        {
            "Reference": "reboot",
            "Method": "POST",
            "RelativeUrl": format!("v1/{}/{}/Machines/HOSP|LAB-VDA-0002/$reboot", client.customer, client.site)
        }
    ]});
    let response = client
        .send(Method::POST, "$batch?async=true", Some(batch))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job = client.wait_job(&location).await;
    assert_eq!(job["Status"], "Complete");
    let id = location.rsplit('/').next().unwrap();
    let (status, results) = client.get(&format!("Jobs/{id}/Results")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["Items"][0]["Code"], 204);
    assert_eq!(results["Items"][1]["Code"], 202);
    let denied = sim.counters().denied;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].class, "reboot");
}

/// One request per deny-list class: (class, method, path relative to the API base, body).
fn deny_cases(catalog: &str) -> Vec<(DenyClass, Method, String, Value)> {
    vec![
        (
            DenyClass::ImageProvisioning,
            Method::POST,
            format!("MachineCatalogs/{catalog}/$UpdateProvisioningScheme"),
            json!({"MasterImagePath": "x"}),
        ),
        (
            DenyClass::ImageProvisioning,
            Method::POST,
            format!("MachineCatalogs/{catalog}/$RollbackProvisioningScheme"),
            Value::Null,
        ),
        (
            DenyClass::MachineCatalogWrite,
            Method::PATCH,
            format!("MachineCatalogs/{catalog}"),
            json!({"MemoryMB": 8192}),
        ),
        (
            DenyClass::MachineCatalogWrite,
            Method::DELETE,
            format!("MachineCatalogs/{catalog}/Machines/HOSP|EHR-VDA-0001"),
            Value::Null,
        ),
        (
            DenyClass::ImageDefinition,
            Method::POST,
            "ImageDefinitions".into(),
            json!({"Name": "img"}),
        ),
        (
            DenyClass::ImageDefinition,
            Method::POST,
            "ImageVersions/abc/$UpdateResourcePools".into(),
            Value::Null,
        ),
        (
            DenyClass::ProvisionedVm,
            Method::POST,
            "provisionedVirtualMachines/S-1-5-21-1/$applyUpdate".into(),
            Value::Null,
        ),
        (
            DenyClass::MaintenanceCycle,
            Method::POST,
            "maintenanceCycles".into(),
            json!({}),
        ),
        (
            DenyClass::UpgradeSchedule,
            Method::PATCH,
            "Machines/HOSP|EHR-VDA-0001/UpgradeSchedule".into(),
            json!({}),
        ),
        (
            DenyClass::Reboot,
            Method::POST,
            format!("MachineCatalogs/{catalog}/$RebootMachines"),
            Value::Null,
        ),
        (
            DenyClass::Reboot,
            Method::POST,
            "DeliveryGroups/EHR%20Clinicians/$StartRebootCycle".into(),
            Value::Null,
        ),
        (
            DenyClass::Reboot,
            Method::POST,
            "Machines/HOSP|EHR-VDA-0001/$reboot".into(),
            Value::Null,
        ),
        (
            DenyClass::RebootSchedule,
            Method::POST,
            "DeliveryGroups/EHR%20Clinicians/RebootSchedules".into(),
            json!({}),
        ),
        (
            DenyClass::PowerTimeScheme,
            Method::PATCH,
            "DeliveryGroups/EHR%20Clinicians/PowerTimeSchemes/s1".into(),
            json!({}),
        ),
        (
            DenyClass::Power,
            Method::POST,
            "Machines/HOSP|EHR-VDA-0001/$shutdown".into(),
            Value::Null,
        ),
        (
            DenyClass::Power,
            Method::POST,
            "Machines/HOSP|EHR-VDA-0001/$start".into(),
            Value::Null,
        ),
        (
            DenyClass::Power,
            Method::DELETE,
            "Machines/HOSP|EHR-VDA-0001/PowerActionSchedules".into(),
            Value::Null,
        ),
        (
            DenyClass::SessionDestructive,
            Method::POST,
            "Machines/HOSP|EHR-VDA-0001/$logoff".into(),
            Value::Null,
        ),
        (
            DenyClass::SessionDestructive,
            Method::POST,
            "Machines/HOSP|EHR-VDA-0001/$disconnect".into(),
            Value::Null,
        ),
        (
            DenyClass::SessionDestructive,
            Method::POST,
            "Sessions/some-session/$logoff".into(),
            Value::Null,
        ),
        (
            DenyClass::TagDelete,
            Method::PUT,
            "Machines/HOSP|LAB-VDA-0001/Tags".into(),
            json!({"Items": [], "DeleteTags": ["ward-3-kiosk"]}),
        ),
        (
            DenyClass::MachineDelete,
            Method::DELETE,
            "Machines/HOSP|EHR-VDA-0001".into(),
            Value::Null,
        ),
        (
            DenyClass::MaintenanceMode,
            Method::PATCH,
            "Machines/HOSP|EHR-VDA-0002".into(),
            json!({"InMaintenanceMode": true}),
        ),
        (
            DenyClass::MaintenanceMode,
            Method::PATCH,
            "DeliveryGroups/Lab%20Systems".into(),
            json!({"InMaintenanceMode": true}),
        ),
    ]
}

#[tokio::test]
async fn every_deny_class_recorded() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let before = sim.snapshot();
    sim.reset_counters();
    let cases = deny_cases("EHR%20Clinicians%20Catalog");
    for class in DenyClass::ALL {
        assert!(
            cases.iter().any(|(c, ..)| *c == class),
            "no case for {class:?}"
        );
    }
    for (class, method, path, body) in &cases {
        let body = (!body.is_null()).then(|| body.clone());
        let (status, _) = client.call(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{method} {path}");
        let last = sim.counters().denied.last().cloned().expect("recorded");
        assert_eq!(last.class, class.as_str(), "{method} {path}");
        assert_eq!(last.method, method.as_str());
    }
    let counters = sim.counters();
    assert_eq!(counters.denied.len(), cases.len());
    assert_eq!(sim.snapshot(), before, "denied calls change nothing");
}

#[tokio::test]
async fn deny_recorded_even_without_auth() {
    let sim = start(Fleet::Small).await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}Machines/HOSP%7CEHR-VDA-0001/$reboot",
            sim.api_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.counters().denied.len(), 1);
}

#[tokio::test]
async fn allowed_calls_not_denied() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:ok"})))
        .await;
    let put = json!({"Items": ["ward-3-kiosk", "gw:ok"], "CreateTags": [{"Name": "gw:new"}]});
    let (status, _) = client
        .call(Method::PUT, "Machines/HOSP|LAB-VDA-0001/Tags", Some(put))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    client.get("Machines/HOSP|LAB-VDA-0001/Sessions").await;
    assert!(sim.counters().denied.is_empty());
    let tags = sim
        .snapshot()
        .machine("HOSP\\LAB-VDA-0001")
        .unwrap()
        .tags
        .clone();
    assert_eq!(tags, ["ward-3-kiosk", "gw:ok", "gw:new"]);
}
