//! Windows 365 quirks against a wiremock server with payloads shaped like Graph v1.0 and
//! beta: unknown enum values, "already a member" on group add, Business Cloud PCs through the
//! agent channel with the sessions their agents report, the guard protecting provisioning
//! groups read at start, and listing pages over one Graph read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use vdi_contracts::{
    Activation, Container, ErrorKind, Launch, MachineResult, MachineState, MemoryAgentChannel,
    PlaceRequest, Provider, Session, SessionState,
};
use vdi_windows365::{Windows365Config, Windows365Provider};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const POLICY: &str = "1f0c4e2a-6d3b-4c1e-9a55-7b2f0c9e1a01";
const PROVISIONING_GROUP: &str = "8d2b7c1e-3f4a-4b5c-8d6e-9f0a1b2c3d01";
const VERSION_GROUP: &str = "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a701";
const ALREADY: &str = "One or more added object references already exist for the following modified properties: 'members'.";

fn container() -> Container {
    Container {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
        display_name: None,
        launch: Launch {
            executable: "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe".into(),
            arguments: Some("/launch epic-hyperspace@2024.3.1".into()),
            working_directory: None,
        },
    }
}

fn cloud_pc(id: &str, managed: Option<&str>, aad: &str) -> Value {
    json!({
        "id": id,
        "displayName": format!("Cloud PC Enterprise - {id}"),
        "aadDeviceId": aad,
        "managedDeviceId": managed,
        "managedDeviceName": managed.map(|_| format!("CPC-{id}")),
        "userPrincipalName": format!("{id}@hosp.example"),
        "provisioningPolicyId": POLICY,
        "provisioningPolicyName": "Clinicians Enterprise",
        "provisioningType": "dedicated",
        "servicePlanName": "Cloud PC Enterprise 4vCPU/16GB/256GB",
        "gracePeriodEndDateTime": null,
        "lastModifiedDateTime": "2024-11-05T10:00:00Z",
    })
}

async fn mount_tenant(server: &MockServer, beta: Value, version_group_members: Arc<AtomicU32>) {
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "w365-access-token",
        })))
        .mount(server)
        .await;
    let policies = "/v1.0/deviceManagement/virtualEndpoint/provisioningPolicies";
    Mock::given(method("GET"))
        .and(path(policies))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": POLICY, "displayName": "Clinicians Enterprise", "provisioningType": "dedicated"},
        ]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{policies}/{POLICY}/assignments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": format!("{POLICY}_{PROVISIONING_GROUP}"), "target": {
                "@odata.type": "microsoft.graph.cloudPcManagementGroupAssignmentTarget",
                "groupId": PROVISIONING_GROUP,
            }},
        ]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/virtualEndpoint/cloudPCs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            cloud_pc("cpc-1", Some("md-1"), "aad-1"),
            cloud_pc("cpc-2", Some("md-2"), "aad-2"),
            cloud_pc("cpc-3", Some("md-3"), "aad-3"),
            cloud_pc("cpc-biz", None, "aad-biz"),
        ]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/beta/deviceManagement/virtualEndpoint/cloudPCs"))
        .and(header("prefer", "include-unknown-enum-members"))
        .respond_with(ResponseTemplate::new(200).set_body_json(beta))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": "md-1", "azureADDeviceId": "aad-1"},
            {"id": "md-2", "azureADDeviceId": "aad-2"},
            {"id": "md-3", "azureADDeviceId": "aad-3"},
        ]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .and(query_param("$filter", "startswith(displayName,'vdigw-epic-hyperspace-')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{
            "id": VERSION_GROUP,
            "displayName": "vdigw-epic-hyperspace-2024.3.1",
            "description": "Owned by the VDI broker gateway; container=epic-hyperspace; version=2024.3.1",
        }]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/groups/{VERSION_GROUP}/members")))
        .respond_with(LaggingMembers(version_group_members))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(DirectoryBatch)
        .mount(server)
        .await;
}

/// Lists no member on the first read (directory lag), then `cpc-1`'s device.
struct LaggingMembers(Arc<AtomicU32>);

impl Respond for LaggingMembers {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let reads = self.0.fetch_add(1, Ordering::SeqCst);
        let value = if reads == 0 {
            json!([])
        } else {
            json!([{"@odata.type": "#microsoft.graph.device", "id": "obj-1", "deviceId": "aad-1"}])
        };
        ResponseTemplate::new(200).set_body_json(json!({ "value": value }))
    }
}

/// Resolves devices and returns Graph's "already exist" 400 to every member add.
struct DirectoryBatch;

impl Respond for DirectoryBatch {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("batch body");
        let responses: Vec<Value> = body["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| {
                let id = r["id"].clone();
                let url = r["url"].as_str().unwrap_or_default();
                match r["method"].as_str() {
                    Some("GET") if url.starts_with("/devices") => json!({"id": id, "status": 200,
                        "body": {"value": [{"id": "obj-1", "deviceId": "aad-1"}]}}),
                    Some("POST") => json!({"id": id, "status": 400,
                        "headers": {"Content-Type": "application/json"},
                        "body": {"error": {"code": "Request_BadRequest", "message": ALREADY,
                            "innerError": {"request-id": "b1b1b1b1-0000-4000-8000-000000000400"}}}}),
                    _ => json!({"id": id, "status": 204}),
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "responses": responses }))
    }
}

fn provider(server: &MockServer) -> (Windows365Provider, Arc<MemoryAgentChannel>) {
    provider_with(server, json!({}))
}

/// Builds the provider with `extra` settings merged over the test defaults.
fn provider_with(
    server: &MockServer,
    extra: Value,
) -> (Windows365Provider, Arc<MemoryAgentChannel>) {
    let mut raw = json!({
        "graph": {
            "tenant_id": TENANT,
            "client_id": "gateway-app",
            "client_secret": "w365-wiremock-secret",
            "token_url": format!("{}/{TENANT}/oauth2/v2.0/token", server.uri()),
            "graph_base_url": server.uri(),
            "requests_per_second": 1000.0,
            "allow_plain_http_loopback": true,
        },
        "delivery": {"read_back_delay_ms": 10},
    });
    if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
        raw.extend(extra.clone());
    }
    let config: Windows365Config = serde_json::from_value(raw).expect("config parses");
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider = Windows365Provider::new("w365-test", config, agent.clone()).expect("builds");
    (provider, agent)
}

fn beta_fields() -> Value {
    json!({"value": [
        {"id": "cpc-1", "status": "provisioned", "productType": "enterprise"},
        {"id": "cpc-2", "status": "movingRegion", "productType": "enterprise"},
        {"id": "cpc-3", "status": "unknownFutureValue", "productType": "quantumDesk"},
        {"id": "cpc-biz", "status": "provisioned", "productType": "business"},
    ]})
}

fn place(machines: &[&str]) -> PlaceRequest {
    PlaceRequest {
        target: format!("policy:{POLICY}"),
        container: container(),
        machines: machines.iter().map(|m| (*m).to_owned()).collect(),
        activation: Activation::WhenIdle,
    }
}

fn session(user: &str, state: SessionState) -> Session {
    Session {
        user: user.to_owned(),
        state,
    }
}

/// Records a check-in of the Business Cloud PC's agent `age` ago with `sessions`.
fn check_in(agent: &MemoryAgentChannel, sessions: Option<Vec<Session>>, age: chrono::Duration) {
    let at = Utc::now() - age;
    agent.check_in("w365-test", "cpc-biz", BTreeMap::new(), sessions, at);
}

/// Counts the requests the mock received for `path`.
async fn requests_to(server: &MockServer, path: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == path)
        .count()
}

async fn batch_requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/$batch")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect()
}

#[tokio::test]
async fn unknown_enum_values_are_kept_and_excluded() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider(&server);

    let page = provider
        .list_machines(&format!("policy:{POLICY}"), None)
        .await
        .expect("listing succeeds");

    let state = |id: &str| {
        page.items
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.state.clone())
            .expect("machine listed")
    };
    assert_eq!(state("cpc-1"), MachineState::Ready);
    assert_eq!(state("cpc-2"), MachineState::Unknown("movingRegion".into()));
    assert_eq!(
        state("cpc-3"),
        MachineState::Unknown("unknownFutureValue".into())
    );

    let outcome = provider
        .place(&place(&["cpc-2", "cpc-3"]))
        .await
        .expect("place");
    for machine in &outcome.machines {
        assert!(
            matches!(machine.result, MachineResult::Excluded(_)),
            "{}: {:?}",
            machine.machine,
            machine.result
        );
    }
    assert!(outcome.writes.is_empty());
    assert!(batch_requests(&server).await.is_empty());
}

#[tokio::test]
async fn already_a_member_is_success() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider(&server);

    let outcome = provider.place(&place(&["cpc-1"])).await.expect("place");

    assert_eq!(outcome.machines.len(), 1);
    assert_eq!(outcome.machines[0].result, MachineResult::Applied);
    let adds: Vec<_> = outcome
        .writes
        .iter()
        .filter(|w| w.operation == "add_group_member")
        .collect();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].status, Some(400));
    assert_eq!(
        adds[0].path,
        format!("v1.0/groups/{VERSION_GROUP}/members/$ref")
    );
}

#[tokio::test]
async fn business_cloud_pc_goes_through_agent() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, agent) = provider(&server);
    check_in(&agent, Some(Vec::new()), chrono::Duration::zero());

    let outcome = provider.place(&place(&["cpc-biz"])).await.expect("place");

    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
    assert!(outcome.writes.is_empty());
    let desired = agent.desired("w365-test", "cpc-biz", "epic-hyperspace");
    assert_eq!(desired.map(|c| c.version), Some("2024.3.1".to_owned()));

    agent.install_all();
    let observed = provider
        .observe(&format!("policy:{POLICY}"), "epic-hyperspace")
        .await
        .expect("observe");
    let business = observed
        .iter()
        .find(|o| o.machine == "cpc-biz")
        .expect("listed");
    assert_eq!(business.version.as_deref(), Some("2024.3.1"));
}

#[tokio::test]
async fn provisioning_group_write_is_blocked() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    // A gateway-owned description on a provisioning group must not make it writable.
    Mock::given(method("GET"))
        .and(path_regex("^/v1.0/groups$"))
        .and(query_param("$filter", "startswith(displayName,'vdigw-epic-hyperspace-')"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{
            "id": PROVISIONING_GROUP,
            "displayName": "vdigw-epic-hyperspace-2024.3.1",
            "description": "Owned by the VDI broker gateway; container=epic-hyperspace; version=2024.3.1",
        }]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/groups/{PROVISIONING_GROUP}/members")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&server)
        .await;
    let (provider, _agent) = provider(&server);

    let outcome = provider.place(&place(&["cpc-1"])).await.expect("place");

    let MachineResult::Failed(error) = &outcome.machines[0].result else {
        panic!("expected a failure, got {:?}", outcome.machines[0].result);
    };
    assert_eq!(error.kind, ErrorKind::GuardViolation);
    let writes: Vec<Value> = batch_requests(&server)
        .await
        .into_iter()
        .filter(|b| b["requests"][0]["method"] != "GET")
        .collect();
    assert!(writes.is_empty(), "sent {writes:?}");
    assert_eq!(provider.client().stats().guard_blocks, 1);
}

#[tokio::test]
async fn business_sessions_are_listed() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, agent) = provider(&server);
    let active = vec![session("HOSP\\frontdesk1", SessionState::Active)];
    check_in(&agent, Some(active.clone()), chrono::Duration::zero());

    let page = provider
        .list_machines(&format!("policy:{POLICY}"), None)
        .await
        .expect("listing");

    let sessions = |id: &str| {
        page.items
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.sessions.clone())
            .expect("listed")
    };
    assert_eq!(sessions("cpc-biz"), active);
    assert!(sessions("cpc-1").is_empty());
}

#[tokio::test]
async fn stale_or_missing_sessions_are_not_listed() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, agent) = provider(&server);
    let target = format!("policy:{POLICY}");
    let active = vec![session("HOSP\\frontdesk1", SessionState::Active)];
    check_in(&agent, Some(active), chrono::Duration::hours(25));

    let page = provider
        .list_machines(&target, None)
        .await
        .expect("listing");
    let business = page
        .items
        .iter()
        .find(|m| m.id == "cpc-biz")
        .expect("listed");
    assert!(business.sessions.is_empty(), "{:?}", business.sessions);
}

#[tokio::test]
async fn active_business_user_defers_when_idle() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, agent) = provider(&server);
    let active = vec![session("HOSP\\frontdesk1", SessionState::Active)];
    check_in(&agent, Some(active), chrono::Duration::zero());

    let outcome = provider.place(&place(&["cpc-biz"])).await.expect("place");
    let MachineResult::Deferred(reason) = &outcome.machines[0].result else {
        panic!("expected a deferral, got {:?}", outcome.machines[0].result);
    };
    assert!(reason.contains("1 active session"), "{reason}");
    assert_eq!(
        agent.desired("w365-test", "cpc-biz", "epic-hyperspace"),
        None
    );

    let away = vec![session("HOSP\\frontdesk1", SessionState::Disconnected)];
    check_in(&agent, Some(away), chrono::Duration::zero());
    let outcome = provider.place(&place(&["cpc-biz"])).await.expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
}

#[tokio::test]
async fn unknown_business_sessions_defer() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, agent) = provider(&server);
    let cases = [
        (None, chrono::Duration::zero(), "reports no sessions"),
        (
            Some(Vec::new()),
            chrono::Duration::hours(25),
            "more than 24 h ago",
        ),
    ];

    let outcome = provider.place(&place(&["cpc-biz"])).await.expect("place");
    let MachineResult::Deferred(reason) = &outcome.machines[0].result else {
        panic!("no agent: {:?}", outcome.machines[0].result);
    };
    assert!(reason.contains("no agent has checked in"), "{reason}");
    for (sessions, age, cause) in cases {
        check_in(&agent, sessions, age);
        let outcome = provider.place(&place(&["cpc-biz"])).await.expect("place");
        let MachineResult::Deferred(reason) = &outcome.machines[0].result else {
            panic!("{cause}: {:?}", outcome.machines[0].result);
        };
        assert!(reason.contains(cause), "{reason}");
    }
    assert_eq!(
        agent.desired("w365-test", "cpc-biz", "epic-hyperspace"),
        None
    );

    let mut immediate = place(&["cpc-biz"]);
    immediate.activation = Activation::Immediate;
    let outcome = provider.place(&immediate).await.expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
}

#[tokio::test]
async fn pages_share_one_graph_read() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider_with(&server, json!({"page_size": 3}));
    let target = format!("policy:{POLICY}");

    let first = provider.list_machines(&target, None).await.expect("page 1");
    let second = provider
        .list_machines(&target, first.next_cursor.clone())
        .await
        .expect("page 2");
    provider
        .observe(&target, "epic-hyperspace")
        .await
        .expect("observe");

    let ids: Vec<&str> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(ids, ["cpc-1", "cpc-2", "cpc-3", "cpc-biz"]);
    assert!(first.next_cursor.is_some());
    assert_eq!(second.next_cursor, None);
    let cloud_pcs = "/v1.0/deviceManagement/virtualEndpoint/cloudPCs";
    assert_eq!(requests_to(&server, cloud_pcs).await, 1);
    assert_eq!(
        requests_to(&server, "/beta/deviceManagement/virtualEndpoint/cloudPCs").await,
        1
    );
}

#[tokio::test]
async fn cloud_pcs_are_read_with_select() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider(&server);

    provider
        .list_machines(&format!("policy:{POLICY}"), None)
        .await
        .expect("listing");

    let requests = server.received_requests().await.unwrap_or_default();
    let read = requests
        .iter()
        .find(|r| r.url.path() == "/v1.0/deviceManagement/virtualEndpoint/cloudPCs")
        .expect("Cloud PCs read");
    let select = read
        .url
        .query_pairs()
        .find(|(key, _)| key == "$select")
        .map(|(_, value)| value.into_owned())
        .expect("$select sent");
    for field in [
        "id",
        "managedDeviceId",
        "aadDeviceId",
        "provisioningPolicyId",
    ] {
        assert!(select.split(',').any(|f| f == field), "{field} in {select}");
    }
}

#[tokio::test]
async fn intune_write_drops_the_kept_read() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider(&server);
    let target = format!("policy:{POLICY}");
    let cloud_pcs = "/v1.0/deviceManagement/virtualEndpoint/cloudPCs";

    provider
        .list_machines(&target, None)
        .await
        .expect("listing");
    provider.place(&place(&["cpc-1"])).await.expect("place");
    assert_eq!(requests_to(&server, cloud_pcs).await, 1);

    provider
        .list_machines(&target, None)
        .await
        .expect("listing");
    assert_eq!(requests_to(&server, cloud_pcs).await, 2);
}

#[tokio::test]
async fn foreign_cursor_is_invalid() {
    let server = MockServer::start().await;
    mount_tenant(&server, beta_fields(), Arc::default()).await;
    let (provider, _agent) = provider(&server);

    let error = provider
        .list_machines(&format!("policy:{POLICY}"), Some("page-2".into()))
        .await
        .expect_err("foreign cursor");

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(error.message.contains("\"page-2\""), "{}", error.message);
}
