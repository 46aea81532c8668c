//! Citrix quirks against a wiremock server with payloads shaped like the Orchestration API's.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use vdi_citrix::{CitrixConfig, CitrixProvider};
use vdi_contracts::{
    Activation, Container, ContainerRef, ErrorKind, Launch, MachineResult, MachineState,
    PlaceRequest, Provider, SessionState,
};
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "wiremock-client-secret-7c1e";
const TOKEN: &str = "tok-d41d8cd98f00b204";
const SITE: &str = "0b1c9a5e-4a33-4c7e-9f61-2d8f3c1a7b90";
const GROUP_ID: &str = "5e2b7d10-3c4f-4a8e-b1d2-9f0e8c7a6b54";
const TAG_ID: &str = "9a8b7c6d-5e4f-4321-8765-43210fedcba9";
const BASE: &str = "/cvad/manage";

fn config(server: &MockServer) -> CitrixConfig {
    serde_json::from_value(json!({
        "mode": "cloud",
        "api_base_url": format!("{}{BASE}/", server.uri()),
        "token_url": format!("{}/cctrustoauth2/acme-health/tokens/clients", server.uri()),
        "customer_id": "acme-health",
        "client_id": "gateway-client",
        "client_secret": SECRET,
        "allow_plain_http_loopback": true,
        "job_timeout_seconds": 20,
    }))
    .expect("config parses")
}

/// Starts a server that serves the token endpoint (with `expires_in` as a string, as
/// citrix-daas-rest-go declares it) and `me`.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cctrustoauth2/acme-health/tokens/clients"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "bearer", "access_token": TOKEN, "expires_in": "3600",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/me")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "UserId": "a5c5d1b0", "DisplayName": "Gateway", "ExpiryTime": "5:19:11 AM",
            "RefreshExpirationTime": "5:19:11 AM", "IsCspCustomer": false,
            "Customers": [{"Id": "acme-health", "Name": "Acme Health",
                           "Sites": [{"Id": SITE, "Name": "Acme Main"}]}],
        })))
        .mount(&server)
        .await;
    server
}

fn provider(server: &MockServer) -> CitrixProvider {
    CitrixProvider::new("citrix-test", config(server)).expect("provider builds")
}

fn group(name: &str, delivery_type: &str) -> Value {
    json!({
        "Id": GROUP_ID, "Uid": 3, "Name": name, "FullName": name, "DeliveryType": delivery_type,
        "Delivering": delivery_type, "Enabled": true, "InMaintenanceMode": false,
        "TotalDesktops": 4, "SessionCount": 1, "SessionSupport": "SingleSession",
        "Scopes": [], "MinimumFunctionalLevel": "L7_20",
    })
}

async fn mount_group(server: &MockServer, segment: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups/{segment}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

fn machine(index: u32, tags: &[&str]) -> Value {
    json!({
        "Id": format!("m-{index:03}"), "Uid": index, "Name": format!("HOSP\\EHR-VDA-{index:03}"),
        "DnsName": format!("ehr-vda-{index:03}.hosp.local"),
        "DeliveryGroup": {"Id": GROUP_ID, "Name": "EHR Clinicians"},
        "MachineCatalog": {"Id": "cat-1", "Name": "EHR Catalog"},
        "InMaintenanceMode": false, "DrainingUntilShutdown": false, "WillShutdownAfterUse": false,
        "RegistrationState": "Registered", "PowerState": "On", "SummaryState": "Available",
        "SessionCount": 0, "Tags": tags, "ProvisioningType": "MCS",
    })
}

async fn mount_machines(server: &MockServer, machines: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups/{GROUP_ID}/Machines")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": machines, "ContinuationToken": null, "TotalItems": machines.len(),
        })))
        .mount(server)
        .await;
}

async fn mount_sessions(server: &MockServer, sessions: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Sessions")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": sessions})))
        .mount(server)
        .await;
}

async fn mount_tag(server: &MockServer, name_segment: &str, machines: u32) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Tags/{name_segment}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": TAG_ID, "Name": "vdigw:epic@2024.3", "NumMachines": machines,
            "NumApplications": 0, "NumApplicationGroups": 0, "NumMachineCatalogs": 0,
            "NumDeliveryGroups": 0, "NumUnknownObjects": 0, "IsUsedByGpo": false,
        })))
        .mount(server)
        .await;
}

fn container(version: &str) -> Container {
    Container {
        id: "epic".into(),
        version: version.into(),
        display_name: Some("Epic Hyperspace".into()),
        launch: Launch {
            executable: "C:\\Program Files\\Player\\player.exe".into(),
            arguments: Some(format!("--container epic@{version}")),
            working_directory: None,
        },
    }
}

fn place_request(machines: &[&str], version: &str) -> PlaceRequest {
    PlaceRequest {
        target: GROUP_ID.into(),
        container: container(version),
        machines: machines.iter().map(|m| (*m).to_owned()).collect(),
        activation: Activation::Immediate,
    }
}

async fn writes_received(server: &MockServer) -> Vec<Request> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .into_iter()
        .filter(|r| r.method.as_str() != "GET" && !r.url.path().contains("tokens"))
        .collect()
}

fn accepted(job: &str, server: &MockServer) -> ResponseTemplate {
    ResponseTemplate::new(202)
        .insert_header(
            "Location",
            format!("{}{BASE}/Jobs/{job}", server.uri()).as_str(),
        )
        .insert_header("citrix-transactionid", "tx-accepted")
}

async fn mount_job(server: &MockServer, job: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Jobs/{job}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn headers_and_string_expires_in() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .and(header(
            "authorization",
            format!("CwsAuth Bearer={TOKEN}").as_str(),
        ))
        .and(header("citrix-customerid", "acme-health"))
        .and(header("citrix-instanceid", SITE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": [group("EHR Clinicians", "DesktopsAndApps")], "TotalItems": 1,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let targets = provider(&server).list_targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].name, "EHR Clinicians");
    assert_eq!(targets[0].machine_count, Some(4));
}

#[tokio::test]
async fn check_reports_site_name() {
    let server = server().await;
    let health = provider(&server).check().await.expect("check");
    assert_eq!(health.status, vdi_contracts::HealthStatus::Ok);
    assert!(health.detail.contains("Acme Main"), "{}", health.detail);
}

#[tokio::test]
async fn frozen_site_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cctrustoauth2/acme-health/tokens/clients"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": TOKEN, "expires_in": 3600,
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/me")))
        .respond_with(ResponseTemplate::new(530).insert_header("citrix-transactionid", "tx-530"))
        .mount(&server)
        .await;
    let error = provider(&server).check().await.expect_err("frozen site");
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.message.contains("frozen"), "{}", error.message);
    assert!(error.message.contains("tx-530"), "{}", error.message);
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        requests
            .iter()
            .all(|r| !r.url.path().contains("activation")),
        "the provider called a site activation endpoint"
    );
}

#[tokio::test]
async fn on_premises_basic_auth() {
    let server = MockServer::start().await;
    // base64("HOSP\svc-gateway:sim-password")
    let basic = format!("Basic {}", base64_encode("HOSP\\svc-gateway:sim-password"));
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/Tokens")))
        .and(header("authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Token": TOKEN, "Principal": "HOSP\\svc-gateway", "CustomerId": "CitrixOnPremises",
            "ExpiresAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/me")))
        .and(header("citrix-customerid", "CitrixOnPremises"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "UserId": "u", "Customers": [{"Id": "CitrixOnPremises", "Sites": [{"Id": SITE, "Name": "HOSP"}]}],
        })))
        .mount(&server)
        .await;
    let config: CitrixConfig = serde_json::from_value(json!({
        "mode": "on_premises",
        "api_base_url": format!("{}{BASE}", server.uri()),
        "username": "HOSP\\svc-gateway",
        "password": "sim-password",
        "allow_plain_http_loopback": true,
    }))
    .expect("config parses");
    let provider = CitrixProvider::new("citrix-onprem", config).expect("builds");
    let health = provider.check().await.expect("check");
    assert!(health.detail.contains("HOSP"), "{}", health.detail);
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn continuation_token_key_and_param() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_sessions(&server, json!([])).await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups/{GROUP_ID}/Machines")))
        .and(query_param("continuationToken", "page-2-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": [machine(3, &[])], "ContinuationToken": null,
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups/{GROUP_ID}/Machines")))
        .and(query_param("limit", "250"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": [machine(1, &[]), machine(2, &[])], "ContinuationToken": "page-2-token",
            "TotalItems": 3,
        })))
        .mount(&server)
        .await;
    let provider = provider(&server);
    let first = provider
        .list_machines(GROUP_ID, None)
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_cursor.as_deref(), Some("page-2-token"));
    let second = provider
        .list_machines(GROUP_ID, first.next_cursor)
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);
}

#[tokio::test]
async fn sessions_are_fetched_once_per_listing() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_machines(&server, vec![machine(1, &[])]).await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Sessions")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": []})))
        .expect(1)
        .mount(&server)
        .await;
    let provider = provider(&server);
    provider.list_machines(GROUP_ID, None).await.expect("page");
    provider
        .list_machines(GROUP_ID, None)
        .await
        .expect("page again");
}

#[tokio::test]
async fn unknown_enums_and_fields_tolerated() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    let mut odd = machine(1, &["vdigw:epic@2024.3", "ICU-Floor-3"]);
    odd["RegistrationState"] = json!("Hibernated");
    odd["QuantumField"] = json!({"nested": [1, 2]});
    mount_machines(&server, vec![odd, machine(2, &[])]).await;
    mount_sessions(
        &server,
        json!([
            {"Id": "s1", "State": "Shadowing", "Machine": {"Id": "m-002", "Name": "HOSP\\EHR-VDA-002"},
             "User": {"SamName": "HOSP\\nurse1"}, "SessionType": "FutureKind"},
            {"Id": "s2", "State": "Disconnected", "Machine": {"Id": "m-002"},
             "UntrustedUserName": "HOSP\\dr2"},
        ]),
    )
    .await;
    let page = provider(&server)
        .list_machines(GROUP_ID, None)
        .await
        .expect("page with unknown values");
    assert_eq!(
        page.items[0].state,
        MachineState::Unknown("Hibernated".into())
    );
    assert_eq!(page.items[0].containers.len(), 1);
    assert_eq!(page.items[0].containers[0].version, "2024.3");
    assert_eq!(page.items[1].state, MachineState::Ready);
    let states: Vec<SessionState> = page.items[1].sessions.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        vec![SessionState::Active, SessionState::Disconnected]
    );
    assert_eq!(page.items[1].sessions[0].user, "HOSP\\nurse1");
}

#[tokio::test]
async fn names_are_percent_encoded() {
    let server = server().await;
    mount_group(
        &server,
        "EHR%20Clinicians%20%28ICU%29",
        group("EHR Clinicians (ICU)", "DesktopsAndApps"),
    )
    .await;
    mount_machines(&server, vec![]).await;
    mount_sessions(&server, json!([])).await;
    let page = provider(&server)
        .list_machines("EHR Clinicians (ICU)", None)
        .await
        .expect("group with spaces and parentheses");
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn folder_full_name_uses_pipe() {
    let server = server().await;
    mount_group(
        &server,
        "Clinical|EHR%20Clinicians",
        group("EHR Clinicians", "AppsOnly"),
    )
    .await;
    mount_machines(&server, vec![]).await;
    mount_sessions(&server, json!([])).await;
    provider(&server)
        .list_machines("Clinical\\EHR Clinicians", None)
        .await
        .expect("folder path resolves");
}

#[tokio::test]
async fn unknown_target_is_not_found() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups/no-such-group")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "Type": "https://errors-api.cloud.com/orchestration/ObjectNotFound",
            "Detail": "Delivery group not found.",
        })))
        .mount(&server)
        .await;
    let error = provider(&server)
        .list_machines("no-such-group", None)
        .await
        .expect_err("unknown group");
    assert_eq!(error.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn html_bad_gateway_is_retried() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>")
                .insert_header("content-type", "text/html"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": []})))
        .mount(&server)
        .await;
    let targets = provider(&server)
        .list_targets()
        .await
        .expect("retried after 502");
    assert!(targets.is_empty());
}

#[tokio::test]
async fn empty_bad_gateway_is_classified() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let error = provider(&server)
        .list_targets()
        .await
        .expect_err("502 every time");
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.message.contains("502"), "{}", error.message);
}

#[tokio::test]
async fn machine_name_uses_pipe_in_path() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_machines(
        &server,
        vec![machine(1, &["vdigw:epic@2024.2", "ICU-Floor-3"])],
    )
    .await;
    mount_tag(&server, "vdigw%3Aepic%402024.3", 0).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "{BASE}/Machines/HOSP|EHR-VDA-001/Tags/{TAG_ID}"
        )))
        .respond_with(ResponseTemplate::new(204).insert_header("citrix-transactionid", "tx-add"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!(
            "{BASE}/Machines/HOSP|EHR-VDA-001/Tags/vdigw%3Aepic%402024.2"
        )))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = provider(&server)
        .place(&place_request(&["m-001"], "2024.3"))
        .await
        .expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Applied);
    assert_eq!(outcome.writes.len(), 2);
    assert_eq!(outcome.writes[0].operation, "add_machine_tag");
    assert_eq!(outcome.writes[0].machine.as_deref(), Some("m-001"));
    assert_eq!(
        outcome.writes[0].broker_request_id.as_deref(),
        Some("tx-add")
    );
    assert_eq!(outcome.writes[1].operation, "remove_machine_tag");
    let foreign_kept = writes_received(&server)
        .await
        .iter()
        .all(|r| !r.url.path().contains("ICU-Floor-3"));
    assert!(foreign_kept, "a tag the gateway does not own was touched");
}

#[tokio::test]
async fn tags_by_id_are_resolved() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    // Some servers list tag ids on machines instead of names.
    mount_machines(&server, vec![machine(1, &[TAG_ID]), machine(2, &[])]).await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Tags")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": [{"Id": TAG_ID, "Name": "vdigw:epic@2024.3", "NumMachines": 1}],
        })))
        .mount(&server)
        .await;
    let observations = provider(&server)
        .observe(GROUP_ID, "epic")
        .await
        .expect("observe");
    assert_eq!(observations[0].version.as_deref(), Some("2024.3"));
    assert_eq!(observations[1].version, None);
}

#[tokio::test]
async fn already_placed_makes_no_writes() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_machines(&server, vec![machine(1, &["vdigw:epic@2024.3"])]).await;
    let outcome = provider(&server)
        .place(&place_request(&["m-001", "m-999"], "2024.3"))
        .await
        .expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Applied);
    match &outcome.machines[1].result {
        MachineResult::Failed(body) => assert_eq!(body.kind, ErrorKind::NotFound),
        other => panic!("unknown machine came back {other:?}"),
    }
    assert!(outcome.writes.is_empty(), "{:?}", outcome.writes);
    assert!(writes_received(&server).await.is_empty());
}

#[tokio::test]
async fn excluded_machines_get_no_writes() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    let mut maintenance = machine(1, &[]);
    maintenance["InMaintenanceMode"] = json!(true);
    maintenance["MaintenanceModeReason"] = json!("Administrator");
    let mut draining = machine(2, &[]);
    draining["DrainingUntilShutdown"] = json!(true);
    let mut unregistered = machine(3, &[]);
    unregistered["RegistrationState"] = json!("Unregistered");
    let mut shutting_down = machine(4, &[]);
    shutting_down["WillShutdownAfterUse"] = json!(true);
    mount_machines(
        &server,
        vec![maintenance, draining, unregistered, shutting_down],
    )
    .await;
    let outcome = provider(&server)
        .place(&place_request(
            &["m-001", "m-002", "m-003", "m-004"],
            "2024.3",
        ))
        .await
        .expect("place");
    for machine_outcome in &outcome.machines {
        assert!(
            matches!(machine_outcome.result, MachineResult::Excluded(_)),
            "{machine_outcome:?}"
        );
    }
    assert!(outcome.writes.is_empty());
    assert!(writes_received(&server).await.is_empty());
}

#[tokio::test]
async fn batch_with_partial_results() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    let machines: Vec<Value> = (1..=11).map(|i| machine(i, &[])).collect();
    mount_machines(&server, machines).await;
    mount_tag(&server, "vdigw%3Aepic%402024.3", 0).await;
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/$batch")))
        .and(query_param("async", "true"))
        .respond_with(accepted("batch-1", &server))
        .expect(1)
        .mount(&server)
        .await;
    mount_job(
        &server,
        "batch-1",
        json!({"Id": "batch-1", "Type": "Batch", "Status": "CompleteWithWarning",
               "Parameters": [], "CreationTime": "2025-01-01T00:00:00Z",
               "FormattedCreationTime": "1/1/2025"}),
    )
    .await;
    mount_job(
        &server,
        "sub-5",
        json!({"Id": "sub-5", "Status": "Complete"}),
    )
    .await;
    let items: Vec<Value> = (0..11)
        .map(|i| match i {
            3 => json!({"Reference": "3", "Code": 400, "Headers": [],
                        "Body": json!({"Type": "https://errors-api.cloud.com/orchestration/BadRequest",
                                       "Detail": "Tag cannot be added to this machine."}).to_string()}),
            5 => json!({"Reference": "5", "Code": 202,
                        "Headers": [{"Name": "Location", "Value": format!("{}{BASE}/Jobs/sub-5", server.uri())}]}),
            _ => json!({"Reference": i.to_string(), "Code": 204}),
        })
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Jobs/batch-1/Results")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": items})))
        .mount(&server)
        .await;
    let ids: Vec<String> = (1..=11).map(|i| format!("m-{i:03}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let outcome = provider(&server)
        .place(&place_request(&id_refs, "2024.3"))
        .await
        .expect("place");
    assert_eq!(outcome.machines.len(), 11);
    for (index, machine_outcome) in outcome.machines.iter().enumerate() {
        if index == 3 {
            match &machine_outcome.result {
                MachineResult::Failed(body) => {
                    assert_eq!(body.kind, ErrorKind::Invalid);
                    assert!(body.message.contains("cannot be added"), "{}", body.message);
                }
                other => panic!("machine 3 came back {other:?}"),
            }
        } else {
            assert_eq!(
                machine_outcome.result,
                MachineResult::Applied,
                "machine {index}"
            );
        }
    }
    assert_eq!(outcome.writes.len(), 11);
    assert_eq!(outcome.writes[3].status, Some(400));
    let batch = writes_received(&server)
        .await
        .into_iter()
        .find(|r| r.url.path().ends_with("$batch"))
        .expect("batch sent");
    let body: Value = serde_json::from_slice(&batch.body).expect("batch body is JSON");
    let url = body["Items"][0]["RelativeUrl"]
        .as_str()
        .expect("RelativeUrl");
    assert_eq!(
        url,
        format!("v1/acme-health/{SITE}/Machines/HOSP|EHR-VDA-001/Tags/{TAG_ID}")
    );
    assert_eq!(body["Items"][0]["Method"], "POST");
}

/// Mounts everything `publish` reads and creates for a version that does not exist yet.
async fn mount_publish_flow(server: &MockServer, create_job: Value) {
    mount_group(server, GROUP_ID, group("EHR Clinicians", "DesktopsAndApps")).await;
    mount_tag(server, "vdigw%3Aepic%402024.3", 0).await;
    let group_name = "vdigw-epic-2024_3-";
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!("^{BASE}/ApplicationGroups/{group_name}[0-9a-f]{{8}}$")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "Type": "https://errors-api.cloud.com/orchestration/ObjectNotFound", "Detail": "Not found",
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^{BASE}/ApplicationGroups/{group_name}[0-9a-f]{{8}}$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": "ag-1", "Name": "vdigw-epic", "Enabled": true, "NumApplications": 0,
            "Metadata": [{"Name": "vdigw.owner", "Value": "vdi-gateway"}],
            "RestrictToTag": {"Id": TAG_ID, "Name": "vdigw:epic@2024.3"},
            "DeliveryGroups": [{"Item": {"Id": GROUP_ID, "Name": "EHR Clinicians"}, "Priority": 0}],
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/ApplicationGroups")))
        .and(body_partial_json(
            json!({"RestrictToTag": "vdigw:epic@2024.3",
                                      "DeliveryGroups": [{"Item": GROUP_ID, "Priority": 0}]}),
        ))
        .respond_with(accepted("job-ag", server))
        .mount(server)
        .await;
    mount_job(
        server,
        "job-ag",
        json!({"Id": "job-ag", "Status": "Complete"}),
    )
    .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^{BASE}/Applications/{group_name}[0-9a-f]{{8}}$"
        )))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"Detail": "Not found"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!("^{BASE}/Applications/{group_name}[0-9a-f]{{8}}$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": "app-1", "Name": "vdigw-epic", "Enabled": true,
            "Metadata": [{"Name": "vdigw.owner", "Value": "vdi-gateway"}],
            "AssociatedApplicationGroupUuids": ["ag-1"],
            "InstalledAppProperties": {"CommandLineExecutable": "C:\\Program Files\\Player\\player.exe",
                                       "CommandLineArguments": "--container epic@2024.3",
                                       "WorkingDirectory": ""},
        })))
        .mount(server)
        .await;
    // The create returns 202 with an empty body, so no application id comes back.
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/Applications")))
        .and(query_param("async", "true"))
        .and(body_partial_json(json!({"ApplicationGroups": ["ag-1"],
                                      "NewApplications": [{"ApplicationType": "HostedOnDesktop",
                                                           "PublishedName": "Epic Hyperspace"}]})))
        .respond_with(accepted("job-app", server))
        .mount(server)
        .await;
    mount_job(server, "job-app", create_job).await;
}

#[tokio::test]
async fn publish_reads_application_back() {
    let server = server().await;
    mount_publish_flow(&server, json!({"Id": "job-app", "Status": "InProgress"})).await;
    // The job is polled until it completes.
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Jobs/job-app")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Id": "job-app", "Status": "InProgress"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Jobs/job-app")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Id": "job-app", "Status": "Complete"})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let publication = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect("publish");
    assert_eq!(
        publication.objects,
        vec![TAG_ID.to_owned(), "ag-1".into(), "app-1".into()]
    );
    let operations: Vec<&str> = publication
        .writes
        .iter()
        .map(|w| w.operation.as_str())
        .collect();
    assert_eq!(
        operations,
        vec!["create_application_group", "create_application"]
    );
    assert_eq!(publication.writes[1].status, Some(202));
}

#[tokio::test]
async fn job_complete_with_warning_succeeds() {
    let server = server().await;
    mount_publish_flow(
        &server,
        json!({"Id": "job-app", "Status": "CompleteWithWarning", "ErrorString": "Icon not found"}),
    )
    .await;
    let publication = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect("a warning is success");
    assert_eq!(publication.objects.len(), 3);
}

#[tokio::test]
async fn job_failed_reports_details() {
    let server = server().await;
    mount_publish_flow(
        &server,
        json!({"Id": "job-app", "Type": "AddApplications", "Status": "Failed",
               "ErrorString": "Generic failure", "ErrorCode": "InternalServerError",
               "ErrorParameters": [{"Name": "ErrorDetails",
                                    "Value": "ErrorMessage : Executable path is not allowed\r\n"}]}),
    )
    .await;
    let error = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect_err("failed job");
    assert!(
        error.message.contains("Executable path is not allowed"),
        "{}",
        error.message
    );
    assert!(error.message.contains("job-app"), "{}", error.message);
}

#[tokio::test]
async fn desktops_only_group_rejects_publish() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("Radiology Desktops", "DesktopsOnly"),
    )
    .await;
    let error = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect_err("desktops only");
    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(
        error.message.contains("Radiology Desktops"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn delivery_group_list_is_sent_whole() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_tag(&server, "vdigw%3Aepic%402024.3", 0).await;
    // Someone replaced the group's delivery groups with another one.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^{BASE}/ApplicationGroups/vdigw-epic-.*$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": "ag-1", "Name": "vdigw-epic",
            "Metadata": [{"Name": "vdigw.owner", "Value": "vdi-gateway"}],
            "DeliveryGroups": [{"Item": {"Id": "dg-lab", "Name": "Lab Systems"}, "Priority": 2}],
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{BASE}/ApplicationGroups/ag-1")))
        .and(body_json(json!({"DeliveryGroups": [
            {"Item": "dg-lab", "Priority": 2},
            {"Item": GROUP_ID, "Priority": 0},
        ]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!("^{BASE}/Applications/vdigw-epic-.*$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": "app-1", "Enabled": true,
            "Metadata": [{"Name": "vdigw.owner", "Value": "vdi-gateway"}],
            "AssociatedApplicationGroupUuids": ["ag-1"],
            "InstalledAppProperties": {"CommandLineExecutable": "C:\\Program Files\\Player\\player.exe",
                                       "CommandLineArguments": "--container epic@2024.3"},
        })))
        .mount(&server)
        .await;
    let publication = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect("publish repairs the group");
    assert_eq!(publication.writes.len(), 1);
    assert_eq!(publication.writes[0].operation, "update_application_group");
}

#[tokio::test]
async fn unpublish_with_sessions_disables() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^{BASE}/Applications/vdigw-epic-.*$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Id": "app-1", "Enabled": true,
            "Metadata": [{"Name": "vdigw.owner", "Value": "vdi-gateway"}],
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Applications/app-1/Sessions")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Items": [{"Id": "s1", "State": "Active", "Machine": {"Id": "m-001"}}],
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{BASE}/Applications/app-1")))
        .and(body_json(json!({"Enabled": false})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let reference = ContainerRef {
        id: "epic".into(),
        version: "2024.3".into(),
    };
    let publication = provider(&server)
        .unpublish(GROUP_ID, &reference)
        .await
        .expect("unpublish");
    assert_eq!(publication.writes.len(), 1);
    let deletes = writes_received(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .count();
    assert_eq!(deletes, 0, "an application in use was deleted");
}

#[tokio::test]
async fn unpublish_missing_objects_is_ok() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    let reference = ContainerRef {
        id: "epic".into(),
        version: "2024.3".into(),
    };
    let publication = provider(&server)
        .unpublish(GROUP_ID, &reference)
        .await
        .expect("nothing to remove");
    assert!(publication.writes.is_empty());
}

/// Collects formatted log lines for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secret_never_logged_or_printed() {
    let server = server().await;
    // A 401 on the first call makes the client fetch a second token, logging on the way.
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"Detail": "expired"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/DeliveryGroups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": []})))
        .mount(&server)
        .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let provider = provider(&server);
    provider.check().await.expect("check");
    provider.list_targets().await.expect("targets after 401");
    let printed = format!("{provider:?}");

    let logs = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(!logs.is_empty(), "no logs captured");
    assert!(!logs.contains(SECRET), "client secret in logs");
    assert!(!logs.contains(TOKEN), "token in logs");
    assert!(!printed.contains(SECRET), "client secret in Debug output");
    assert!(!printed.contains(TOKEN), "token in Debug output");
}

#[tokio::test]
async fn tag_created_concurrently_is_reused() {
    let server = server().await;
    mount_publish_flow(&server, json!({"Id": "job-app", "Status": "Complete"})).await;
    // Another delivery group's publish creates the shared version tag between our lookup
    // and our create, so the create returns 409 ObjectAlreadyExists.
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/Tags/vdigw%3Aepic%402024.3")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "Type": "https://errors-api.cloud.com/cvad/ObjectNotFound", "Detail": "Not found",
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/Tags")))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "Type": "https://errors-api.cloud.com/cvad/ObjectAlreadyExists",
            "Detail": "Tag 'vdigw:epic@2024.3' already exists.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let publication = provider(&server)
        .publish(GROUP_ID, &container("2024.3"))
        .await
        .expect("publish succeeds with the concurrently created tag");
    assert_eq!(publication.objects[0], TAG_ID);
    assert!(
        publication
            .writes
            .iter()
            .all(|w| w.operation != "create_tag"),
        "the refused create is not a write: {:?}",
        publication.writes
    );
}

#[tokio::test]
async fn refused_add_keeps_old_tag() {
    let server = server().await;
    mount_group(
        &server,
        GROUP_ID,
        group("EHR Clinicians", "DesktopsAndApps"),
    )
    .await;
    mount_machines(&server, vec![machine(1, &["vdigw:epic@2024.2"])]).await;
    mount_tag(&server, "vdigw%3Aepic%402024.3", 1).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path_regex(format!(
            "^{BASE}/Machines/.*/Tags/.*$"
        )))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "Type": "https://errors-api.cloud.com/cvad/ObjectConflict",
            "Detail": "The machine is locked by another operation.",
        })))
        .mount(&server)
        .await;
    // The old version's tag must stay when the new one was refused, so the machine keeps a
    // launchable version.
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    let outcome = provider(&server)
        .place(&place_request(&["m-001"], "2024.3"))
        .await
        .expect("place");
    assert!(
        matches!(outcome.machines[0].result, MachineResult::Failed(_)),
        "{:?}",
        outcome.machines[0]
    );
}
