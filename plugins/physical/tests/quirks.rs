//! Physical endpoint behaviour against a wiremock server with Graph v1.0 `managedDevice`
//! payloads. Non-Windows devices and Cloud PCs are left out, and non-compliant devices are
//! excluded. Agent-first devices go through the agent under the id their agent registered and
//! leave the Intune groups they had. Agent sessions hold next_logon and when_idle placements,
//! listings page over one Graph read, and agent-only providers need no Graph.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use vdi_contracts::{
    Activation, Container, ErrorKind, HealthStatus, Launch, MachineResult, MachineState,
    MemoryAgentChannel, PlaceRequest, Provider, Session, SessionState,
};
use vdi_physical::{PhysicalConfig, PhysicalProvider};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";

fn container() -> Container {
    Container {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
        display_name: None,
        launch: Launch {
            executable: "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe".into(),
            arguments: None,
            working_directory: None,
        },
    }
}

fn managed(id: &str, name: &str, os: &str, compliance: &str, model: &str) -> Value {
    json!({
        "id": id,
        "deviceName": name,
        "operatingSystem": os,
        "osVersion": "10.0.26100.2314",
        "complianceState": compliance,
        "azureADDeviceId": format!("aad-{id}"),
        "model": model,
        "userPrincipalName": "nurse1@hosp.example",
        "lastSyncDateTime": "2024-11-05T10:00:00Z",
    })
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "physical-access-token",
        })))
        .mount(&server)
        .await;
    // A tenant without Windows 365 returns 403 on provisioning policies.
    Mock::given(method("GET"))
        .and(path(
            "/v1.0/deviceManagement/virtualEndpoint/provisioningPolicies",
        ))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": "Forbidden", "message": "No Windows 365 licence.",
            "innerError": {"request-id": "f0f0f0f0-0000-4000-8000-000000000403"}}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .and(query_param("$filter", "operatingSystem eq 'Windows'"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            managed("md-1", "HOSP-LT-0001", "Windows", "compliant", "Latitude 7450"),
            managed("md-2", "HOSP-LT-0002", "Windows", "noncompliant", "Latitude 7450"),
            managed("md-3", "HOSP-LT-0003", "Windows", "compliant", "Latitude 7450"),
            managed("md-4", "HOSP-LT-0004", "iOS", "compliant", "iPhone 15"),
            managed("md-5", "CPC-nurse-ABCDE", "Windows", "compliant", "Cloud PC Enterprise 4vCPU/16GB/256GB"),
        ]})))
        .mount(&server)
        .await;
    // No gateway-owned version group exists yet, so Intune devices observe no version.
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&server)
        .await;
    server
}

fn provider(
    server: Option<&MockServer>,
    agent_first: bool,
) -> (PhysicalProvider, Arc<MemoryAgentChannel>) {
    provider_with(server, json!({"agent_first": agent_first}))
}

/// Builds the provider with `extra` settings merged over the test defaults.
fn provider_with(
    server: Option<&MockServer>,
    extra: Value,
) -> (PhysicalProvider, Arc<MemoryAgentChannel>) {
    let mut raw = json!({
        "device_groups": [{"id": "laptops", "name_prefix": "HOSP-LT-"}],
    });
    if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
        raw.extend(extra.clone());
    }
    if let Some(server) = server {
        raw["graph"] = json!({
            "tenant_id": TENANT,
            "client_id": "gateway-app",
            "client_secret": "physical-wiremock-secret",
            "token_url": format!("{}/{TENANT}/oauth2/v2.0/token", server.uri()),
            "graph_base_url": server.uri(),
            "requests_per_second": 1000.0,
            "allow_plain_http_loopback": true,
        });
    }
    let config: PhysicalConfig = serde_json::from_value(raw).expect("config parses");
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider = PhysicalProvider::new("physical-test", config, agent.clone()).expect("builds");
    (provider, agent)
}

fn place(machines: &[&str]) -> PlaceRequest {
    PlaceRequest {
        target: "laptops".into(),
        container: container(),
        machines: machines.iter().map(|m| (*m).to_owned()).collect(),
        activation: Activation::NextLogon,
    }
}

fn session(user: &str, state: SessionState) -> Session {
    Session {
        user: user.to_owned(),
        state,
    }
}

/// Records a check-in of `machine`'s agent `age` ago with `sessions`.
fn check_in(
    agent: &MemoryAgentChannel,
    machine: &str,
    sessions: Option<Vec<Session>>,
    age: chrono::Duration,
) {
    let at = Utc::now() - age;
    agent.check_in("physical-test", machine, BTreeMap::new(), sessions, at);
}

async fn managed_device_reads(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/deviceManagement/managedDevices")
        .count()
}

#[tokio::test]
async fn only_windows_laptops_are_listed() {
    let server = server().await;
    let (provider, _agent) = provider(Some(&server), false);

    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");

    let ids: Vec<&str> = page.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["md-1", "md-2", "md-3"]);
    let noncompliant = page.items.iter().find(|m| m.id == "md-2").expect("listed");
    assert_eq!(
        noncompliant.state,
        MachineState::Unknown("noncompliant".into())
    );
}

#[tokio::test]
async fn noncompliant_device_is_excluded() {
    let server = server().await;
    let (provider, _agent) = provider(Some(&server), false);

    let outcome = provider.place(&place(&["md-2"])).await.expect("place");

    assert!(matches!(
        outcome.machines[0].result,
        MachineResult::Excluded(_)
    ));
    assert!(outcome.writes.is_empty());
}

#[tokio::test]
async fn agent_first_device_uses_agent() {
    let server = server().await;
    let (provider, agent) = provider(Some(&server), true);
    check_in(
        &agent,
        "HOSP-LT-0003",
        Some(Vec::new()),
        chrono::Duration::zero(),
    );

    let outcome = provider.place(&place(&["md-3"])).await.expect("place");

    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
    assert!(outcome.writes.is_empty());
    // The agent polls with the id it registered, the device name, not the Intune id.
    let desired = agent.desired("physical-test", "HOSP-LT-0003", "epic-hyperspace");
    assert_eq!(desired.map(|c| c.version), Some("2024.3.1".to_owned()));
    assert_eq!(
        agent.desired("physical-test", "md-3", "epic-hyperspace"),
        None
    );

    agent.install_all();
    let observed = provider
        .observe("laptops", "epic-hyperspace")
        .await
        .expect("observe");
    let device = observed
        .iter()
        .find(|o| o.machine == "md-3")
        .expect("listed");
    assert_eq!(device.version.as_deref(), Some("2024.3.1"));
}

/// Returns 204 for every request of a `$batch`.
struct BatchOk;

impl Respond for BatchOk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().expect("batch body");
        let responses: Vec<Value> = body["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| json!({"id": r["id"], "status": 204, "headers": {}}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "responses": responses }))
    }
}

#[tokio::test]
async fn agent_first_device_leaves_intune_group() {
    let server = server().await;
    // Intune delivered 2024.2.0 to md-3 before its agent registered.
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{
            "id": "group-old",
            "displayName": "vdigw-epic-hyperspace-2024.2.0",
            "description": "Owned by the VDI broker gateway; container=epic-hyperspace; version=2024.2.0",
        }]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups/group-old/members"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{
            "@odata.type": "#microsoft.graph.device", "id": "object-md-3", "deviceId": "aad-md-3",
        }]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(BatchOk)
        .mount(&server)
        .await;
    let settings = json!({"agent_first": true, "delivery": {"read_back_delay_ms": 10}});
    let (provider, agent) = provider_with(Some(&server), settings);
    check_in(
        &agent,
        "HOSP-LT-0003",
        Some(Vec::new()),
        chrono::Duration::zero(),
    );

    let outcome = provider.place(&place(&["md-3"])).await.expect("place");

    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
    let desired = agent.desired("physical-test", "HOSP-LT-0003", "epic-hyperspace");
    assert_eq!(desired.map(|c| c.version), Some("2024.3.1".to_owned()));
    let removals: Vec<Value> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/$batch")
        .flat_map(|r| {
            let body: Value = r.body_json().expect("json");
            body["requests"].as_array().cloned().unwrap_or_default()
        })
        .filter(|r| r["method"] == "DELETE")
        .collect();
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(
        removals[0]["url"],
        "/groups/group-old/members/object-md-3/$ref"
    );
    assert_eq!(outcome.writes.len(), 1, "{:?}", outcome.writes);
}

#[tokio::test]
async fn deferred_agent_first_device_keeps_intune() {
    let server = server().await;
    let (provider, agent) = provider(Some(&server), true);
    let active = session("nurse1", SessionState::Active);
    check_in(
        &agent,
        "HOSP-LT-0003",
        Some(vec![active]),
        chrono::Duration::zero(),
    );

    let outcome = provider.place(&place(&["md-3"])).await.expect("place");

    assert!(matches!(
        outcome.machines[0].result,
        MachineResult::Deferred(_)
    ));
    let group_reads = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/groups")
        .count();
    assert_eq!(group_reads, 0, "a deferred device does not leave Intune");
}

#[tokio::test]
async fn agent_only_provider_needs_no_graph() {
    let (provider, agent) = provider(None, false);
    check_in(
        &agent,
        "HOSP-LT-0100",
        Some(Vec::new()),
        chrono::Duration::zero(),
    );
    agent.register("physical-test", "WARD-PC-0001", BTreeMap::new());

    let health = provider.check().await.expect("check");
    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");
    let outcome = provider
        .place(&place(&["HOSP-LT-0100"]))
        .await
        .expect("place");
    agent.install_all();
    let observed = provider
        .observe("laptops", "epic-hyperspace")
        .await
        .expect("observe");

    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(page.items.len(), 1);
    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
    assert_eq!(observed[0].version.as_deref(), Some("2024.3.1"));
}

#[tokio::test]
async fn unknown_group_is_not_found() {
    let (provider, _agent) = provider(None, false);

    let error = provider
        .list_machines("no-such-group", None)
        .await
        .expect_err("unknown");

    assert_eq!(error.kind, vdi_contracts::ErrorKind::NotFound);
}

#[tokio::test]
async fn agent_sessions_hold_next_logon() {
    let (provider, agent) = provider(None, false);
    let open = vec![session("HOSP\\nurse1", SessionState::Disconnected)];
    check_in(
        &agent,
        "HOSP-LT-0100",
        Some(open.clone()),
        chrono::Duration::zero(),
    );

    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");
    assert_eq!(page.items[0].sessions, open);

    let outcome = provider
        .place(&place(&["HOSP-LT-0100"]))
        .await
        .expect("place");
    let MachineResult::Deferred(reason) = &outcome.machines[0].result else {
        panic!("expected a deferral, got {:?}", outcome.machines[0].result);
    };
    assert!(reason.contains("1 session(s) open"), "{reason}");

    let mut when_idle = place(&["HOSP-LT-0100"]);
    when_idle.activation = Activation::WhenIdle;
    let outcome = provider.place(&when_idle).await.expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
}

#[tokio::test]
async fn agent_first_sessions_use_the_agent_id() {
    let server = server().await;
    let (provider, agent) = provider(Some(&server), true);
    let active = vec![session("HOSP\\nurse3", SessionState::Active)];
    check_in(
        &agent,
        "HOSP-LT-0003",
        Some(active.clone()),
        chrono::Duration::zero(),
    );

    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");
    let device = page.items.iter().find(|m| m.id == "md-3").expect("listed");
    assert_eq!(device.sessions, active);

    let outcome = provider.place(&place(&["md-3"])).await.expect("place");
    assert!(matches!(
        outcome.machines[0].result,
        MachineResult::Deferred(_)
    ));
}

#[tokio::test]
async fn intune_devices_list_no_sessions() {
    let server = server().await;
    let (provider, agent) = provider(Some(&server), false);
    let active = vec![session("HOSP\\nurse1", SessionState::Active)];
    check_in(
        &agent,
        "HOSP-LT-0001",
        Some(active),
        chrono::Duration::zero(),
    );

    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");

    assert!(page.items.iter().all(|m| m.sessions.is_empty()));
}

#[tokio::test]
async fn stale_agent_first_sessions_defer() {
    let server = server().await;
    let (provider, agent) = provider(Some(&server), true);
    check_in(
        &agent,
        "HOSP-LT-0003",
        Some(Vec::new()),
        chrono::Duration::hours(73),
    );

    let page = provider
        .list_machines("laptops", None)
        .await
        .expect("listing");
    let device = page.items.iter().find(|m| m.id == "md-3").expect("listed");
    assert_eq!(device.state, MachineState::Ready, "Intune keeps it ready");

    let outcome = provider.place(&place(&["md-3"])).await.expect("place");
    let MachineResult::Deferred(reason) = &outcome.machines[0].result else {
        panic!("expected a deferral, got {:?}", outcome.machines[0].result);
    };
    assert!(reason.contains("more than 72 h ago"), "{reason}");
}

#[tokio::test]
async fn stale_agent_only_device_is_excluded() {
    let (provider, agent) = provider(None, false);
    check_in(
        &agent,
        "HOSP-LT-0100",
        Some(Vec::new()),
        chrono::Duration::hours(73),
    );

    let outcome = provider
        .place(&place(&["HOSP-LT-0100"]))
        .await
        .expect("place");

    assert!(matches!(
        outcome.machines[0].result,
        MachineResult::Excluded(_)
    ));
}

#[tokio::test]
async fn pages_share_one_graph_read() {
    let server = server().await;
    let (provider, agent) = provider_with(Some(&server), json!({"page_size": 2}));
    check_in(
        &agent,
        "HOSP-LT-0100",
        Some(Vec::new()),
        chrono::Duration::zero(),
    );

    let mut ids = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = provider
            .list_machines("laptops", cursor.take())
            .await
            .expect("page");
        pages += 1;
        ids.extend(page.items.into_iter().map(|m| m.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    provider
        .observe("laptops", "epic-hyperspace")
        .await
        .expect("observe");

    assert_eq!(ids, ["HOSP-LT-0100", "md-1", "md-2", "md-3"]);
    assert_eq!(pages, 2);
    assert_eq!(managed_device_reads(&server).await, 1);
}

#[tokio::test]
async fn zero_cache_reads_every_call() {
    let server = server().await;
    let (provider, _agent) = provider_with(Some(&server), json!({"inventory_cache_seconds": 0}));

    for _ in 0..2 {
        provider
            .list_machines("laptops", None)
            .await
            .expect("listing");
    }

    assert_eq!(managed_device_reads(&server).await, 2);
}

#[tokio::test]
async fn foreign_cursor_is_invalid() {
    let (provider, _agent) = provider(None, false);

    let error = provider
        .list_machines("laptops", Some("page-2".into()))
        .await
        .expect_err("foreign cursor");

    assert_eq!(error.kind, ErrorKind::Invalid);
}
