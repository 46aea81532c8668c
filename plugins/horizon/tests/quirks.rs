//! Horizon quirks against a wiremock server with payloads shaped like the Horizon Server REST
//! API 2111's.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vdi_contracts::{
    Activation, Container, ContainerRef, ErrorKind, Launch, MachineResult, MachineState,
    MemoryAgentChannel, PlaceRequest, Provider, SessionState, TargetKind, UnplaceRequest,
};
use vdi_horizon::{HorizonConfig, HorizonProvider};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PASSWORD: &str = "wiremock-horizon-pa55";
const ACCESS: &str = "access-6f1d2c9a0b";
const ACCESS_2: &str = "access-second-77e1";
const REFRESH: &str = "refresh-3c4b5a6d7e";
const POOL: &str = "pool-ehr-ic";
const FARM: &str = "farm-ehr-rds";
const RDS_POOL: &str = "pool-ehr-rds";
const SID_NURSES: &str = "S-1-5-21-3623811015-3361044348-30300820-1013";
const SID_DOCTORS: &str = "S-1-5-21-3623811015-3361044348-30300820-1014";
const SID_OLD: &str = "S-1-5-21-3623811015-3361044348-30300820-1099";

fn config(server: &MockServer, extra: Value) -> HorizonConfig {
    let mut raw = json!({
        "api_base_url": format!("{}/rest/", server.uri()),
        "username": "svc-gateway",
        "password": PASSWORD,
        "domain": "HOSP",
        "requests_per_second": 1000.0,
        "allow_plain_http_loopback": true,
    });
    if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
        raw.extend(extra.clone());
    }
    serde_json::from_value(raw).expect("config parses")
}

fn provider_with(server: &MockServer, extra: Value) -> (HorizonProvider, Arc<MemoryAgentChannel>) {
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider = HorizonProvider::new("horizon-test", config(server, extra), agent.clone())
        .expect("provider builds");
    (provider, agent)
}

fn provider(server: &MockServer) -> (HorizonProvider, Arc<MemoryAgentChannel>) {
    provider_with(server, json!({}))
}

/// Starts a server whose login issues [`ACCESS`] and [`REFRESH`].
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/login"))
        .and(body_json(
            json!({"username": "svc-gateway", "password": PASSWORD, "domain": "HOSP"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS, "refresh_token": REFRESH,
        })))
        .mount(&server)
        .await;
    server
}

async fn mount_json(server: &MockServer, verb: &str, route: &str, body: Value) {
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn mount_missing(server: &MockServer, route: &str) {
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error_message": "The requested resource is not available",
        })))
        .mount(server)
        .await;
}

fn pool(id: &str, name: &str, session_type: &str) -> Value {
    json!({
        "id": id, "name": name, "display_name": name, "enabled": true, "type": "AUTOMATED",
        "source": "INSTANT_CLONE", "user_assignment": "FLOATING", "session_type": session_type,
        "enable_provisioning": true, "image_source": "VIRTUAL_CENTER", "naming_method": "PATTERN",
        "vcenter_id": "vc-1", "access_group_id": "ag-root", "cloud_brokered": false,
    })
}

fn rds_pool() -> Value {
    json!({
        "id": RDS_POOL, "name": "EHR-RDS", "display_name": "EHR (RDS)", "enabled": true,
        "type": "RDS", "source": "RDS", "session_type": "DESKTOP_AND_APPLICATION",
        "farm_id": FARM, "access_group_id": "ag-root",
    })
}

fn farm() -> Value {
    json!({
        "id": FARM, "name": "EHR-RDS-Farm", "display_name": "EHR RDS Farm", "enabled": true,
        "type": "AUTOMATED", "access_group_id": "ag-root", "desktop_pool_id": RDS_POOL,
        "delete_in_progress": false, "server_error_threshold": 0,
    })
}

fn machine(index: u32, state: &str) -> Value {
    json!({
        "id": format!("vm-{index:03}"), "name": format!("EHR-IC-{index:03}"),
        "dns_name": format!("ehr-ic-{index:03}.hosp.local"), "desktop_pool_id": POOL,
        "state": state, "type": "MANAGED_MACHINE", "user_ids": [],
        "agent_version": "8.4.0", "operating_system": "WINDOWS_10",
        "operating_system_architecture": "BIT_64", "message_security_mode": "ENHANCED",
        "managed_machine_data": {"host_name": "esx01.hosp.local", "in_maintenance_mode": false,
                                 "virtual_machine_power_state": "POWERED_ON",
                                 "storage_accelerator_state": "CURRENT"},
    })
}

fn rds_server(index: u32, state: &str) -> Value {
    json!({
        "id": format!("rds-{index:02}"), "name": format!("EHR-RDSH-{index:02}"),
        "dns_name": format!("ehr-rdsh-{index:02}.hosp.local"), "farm_id": FARM,
        "enabled": true, "state": state, "session_count": 1, "max_sessions_type": "UNLIMITED",
        "load_preference": "LIGHT", "operating_system": "WINDOWS_SERVER_2016_OR_ABOVE",
    })
}

fn session(id: &str, user: &str, machine: Option<&str>, rds: Option<&str>, state: &str) -> Value {
    let mut value = json!({
        "id": id, "user_id": user, "broker_user_id": user, "session_state": state,
        "session_type": if rds.is_some() { "APPLICATION" } else { "DESKTOP" },
        "session_protocol": "BLAST", "start_time": 1_733_300_000_000_i64,
        "access_group_id": "ag-root", "resourced_remotely": false,
    });
    if let Some(machine) = machine {
        value["machine_id"] = json!(machine);
        value["desktop_pool_id"] = json!(POOL);
    }
    if let Some(rds) = rds {
        value["rds_server_id"] = json!(rds);
        value["farm_id"] = json!(FARM);
    }
    value
}

/// Mounts v5 desktop-pools and v3 farms.
async fn mount_targets(server: &MockServer, pools: Value, farms: Value) {
    mount_json(server, "GET", "/rest/inventory/v5/desktop-pools", pools).await;
    mount_json(server, "GET", "/rest/inventory/v3/farms", farms).await;
}

async fn mount_sessions(server: &MockServer, sessions: Value) {
    mount_json(server, "GET", "/rest/inventory/v2/sessions", sessions).await;
}

fn container(version: &str) -> Container {
    Container {
        id: "epic-hyperspace".into(),
        version: version.into(),
        display_name: Some("Epic Hyperspace".into()),
        launch: Launch {
            executable: "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe".into(),
            arguments: Some(format!("/launch epic-hyperspace@{version}")),
            working_directory: None,
        },
    }
}

fn filter_of(request: &Request) -> Option<Value> {
    request
        .url
        .query_pairs()
        .find(|(name, _)| name == "filter")
        .and_then(|(_, value)| serde_json::from_str(&value).ok())
}

async fn requests_to(server: &MockServer, verb: &str, route: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == route)
        .collect()
}

#[tokio::test]
async fn page_and_size_both_sent() {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(
        &server,
        json!([session(
            "sess-1",
            SID_NURSES,
            Some("vm-001"),
            None,
            "CONNECTED"
        )]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v2/machines"))
        .and(query_param("page", "1"))
        .and(query_param("size", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("HAS_MORE_RECORDS", "true")
                .set_body_json(json!([machine(1, "CONNECTED"), machine(2, "AVAILABLE")])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v2/machines"))
        .and(query_param("page", "2"))
        .and(query_param("size", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([machine(3, "AVAILABLE")])))
        .mount(&server)
        .await;
    let (provider, _) = provider_with(&server, json!({"page_size": 2}));

    let first = provider
        .list_machines("EHR-IC", None)
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    assert_eq!(first.items[0].sessions.len(), 1);
    assert_eq!(first.items[0].sessions[0].state, SessionState::Active);
    let second = provider
        .list_machines("EHR-IC", first.next_cursor)
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);

    for request in requests_to(&server, "GET", "/rest/inventory/v2/machines").await {
        let query: Vec<String> = request
            .url
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert!(query.contains(&"page".to_owned()), "{}", request.url);
        assert!(query.contains(&"size".to_owned()), "{}", request.url);
        assert_eq!(
            filter_of(&request),
            Some(json!({"type": "Equals", "name": "desktop_pool_id", "value": POOL}))
        );
    }
}

#[tokio::test]
async fn v1_desktop_pools_without_paging() {
    let server = server().await;
    for version in ["v5", "v4", "v3", "v2"] {
        mount_missing(&server, &format!("/rest/inventory/{version}/desktop-pools")).await;
    }
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v1/desktop-pools"))
        .and(query_param_is_missing("page"))
        .and(query_param_is_missing("size"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": POOL, "name": "EHR-IC", "display_name": "EHR", "description": "", "enabled": true,
            "type": "AUTOMATED", "source": "INSTANT_CLONE",
            "settings": {"session_type": "DESKTOP", "delete_in_progress": false},
        }])))
        .expect(2)
        .mount(&server)
        .await;
    mount_json(&server, "GET", "/rest/inventory/v3/farms", json!([])).await;
    let (provider, _) = provider(&server);

    let targets = provider.list_targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].id, POOL);
    assert_eq!(targets[0].kind, TargetKind::DesktopPool);
    provider.list_targets().await.expect("targets again");
    // The version found is kept, so the higher versions are probed once.
    assert_eq!(
        requests_to(&server, "GET", "/rest/inventory/v5/desktop-pools")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn cpa_conflict_falls_back_to_lower_version() {
    let server = server().await;
    // Horizon returns 409 "CPA not initialized for the pod" on federation-aware versions.
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_message": "CPA not initialized for the pod",
        })))
        .mount(&server)
        .await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v4/desktop-pools",
        json!([pool(POOL, "EHR-IC", "DESKTOP")]),
    )
    .await;
    mount_json(&server, "GET", "/rest/inventory/v3/farms", json!([])).await;
    let (provider, _) = provider(&server);
    let targets = provider.list_targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
}

#[tokio::test]
async fn empty_pool_and_farm_only_site() {
    let server = server().await;
    mount_targets(&server, json!([]), json!([farm()])).await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v1/rds-servers",
        json!([
            rds_server(1, "AVAILABLE"),
            rds_server(2, "AGENT_UNREACHABLE"),
        ]),
    )
    .await;
    mount_sessions(
        &server,
        json!([session(
            "sess-r1",
            SID_DOCTORS,
            None,
            Some("rds-01"),
            "DISCONNECTED"
        )]),
    )
    .await;
    let (provider, _) = provider(&server);

    let targets = provider.list_targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].kind, TargetKind::Farm);
    let page = provider
        .list_machines("EHR-RDS-Farm", None)
        .await
        .expect("hosts");
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].state, MachineState::Ready);
    assert_eq!(page.items[0].sessions[0].state, SessionState::Disconnected);
    assert_eq!(page.items[1].state, MachineState::Unregistered);
}

#[tokio::test]
async fn empty_pool_lists_nothing() {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(&server, json!([])).await;
    // An empty pool: an empty array on one server, an empty 200 body on another.
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v2/machines"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v2/machines"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    for attempt in 0..2 {
        let page = provider
            .list_machines(POOL, None)
            .await
            .expect("empty page");
        assert!(page.items.is_empty(), "attempt {attempt}");
        assert_eq!(page.next_cursor, None, "attempt {attempt}");
    }
}

#[tokio::test]
async fn unknown_target_is_not_found() {
    let server = server().await;
    mount_targets(
        &server,
        json!([pool(POOL, "EHR-IC", "DESKTOP")]),
        json!([farm()]),
    )
    .await;
    let (provider, _) = provider(&server);
    let error = provider
        .list_machines("Cardiology", None)
        .await
        .expect_err("unknown");
    assert_eq!(error.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn unknown_machine_states_are_kept() {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(&server, json!([])).await;
    let mut no_state = machine(4, "AVAILABLE");
    no_state.as_object_mut().expect("object").remove("state");
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v2/machines",
        json!([
            machine(1, "AVAILABLE"),
            machine(2, "HIBERNATED_BY_A_FUTURE_RELEASE"),
            machine(3, "MAINTENANCE"),
            no_state,
            machine(5, "AGENT_UNREACHABLE"),
        ]),
    )
    .await;
    let (provider, agent) = provider(&server);

    let page = provider.list_machines(POOL, None).await.expect("machines");
    let states: Vec<MachineState> = page.items.iter().map(|m| m.state.clone()).collect();
    assert_eq!(states[0], MachineState::Ready);
    assert_eq!(
        states[1],
        MachineState::Unknown("HIBERNATED_BY_A_FUTURE_RELEASE".into())
    );
    assert_eq!(states[2], MachineState::Maintenance);
    assert!(
        matches!(states[3], MachineState::Unknown(_)),
        "{:?}",
        states[3]
    );
    assert_eq!(states[4], MachineState::Unregistered);

    let request = PlaceRequest {
        target: POOL.into(),
        container: container("2024.3.1"),
        machines: vec!["vm-002".into(), "vm-003".into(), "vm-005".into()],
        activation: Activation::Immediate,
    };
    let outcome = provider.place(&request).await.expect("place");
    for machine_outcome in &outcome.machines {
        assert!(
            matches!(machine_outcome.result, MachineResult::Excluded(_)),
            "{machine_outcome:?}"
        );
        assert!(
            agent
                .desired("horizon-test", &machine_outcome.machine, "epic-hyperspace")
                .is_none(),
            "{} got a desired container",
            machine_outcome.machine
        );
    }
    assert!(outcome.writes.is_empty());
}

#[tokio::test]
async fn place_goes_through_agent_channel() {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(&server, json!([])).await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v2/machines",
        json!([machine(1, "AVAILABLE"), machine(2, "CONNECTED"),]),
    )
    .await;
    let (provider, agent) = provider(&server);
    let mut request = PlaceRequest {
        target: "EHR-IC".into(),
        container: container("2024.3.1"),
        machines: vec!["vm-001".into(), "vm-002".into(), "vm-404".into()],
        activation: Activation::WhenIdle,
    };

    let publication = provider
        .publish("EHR-IC", &request.container)
        .await
        .expect("publish");
    assert!(publication.objects.is_empty(), "{publication:?}");
    assert!(publication.writes.is_empty(), "{publication:?}");

    let outcome = provider.place(&request).await.expect("place");
    assert_eq!(outcome.machines[0].result, MachineResult::Accepted);
    assert_eq!(outcome.machines[1].result, MachineResult::Accepted);
    let MachineResult::Failed(body) = &outcome.machines[2].result else {
        panic!("unknown machine: {:?}", outcome.machines[2]);
    };
    assert_eq!(body.kind, ErrorKind::NotFound);
    assert!(agent
        .desired("horizon-test", "vm-001", "epic-hyperspace")
        .is_some());

    agent.install_all();
    request.machines.truncate(2);
    let again = provider.place(&request).await.expect("place again");
    assert!(
        again
            .machines
            .iter()
            .all(|m| m.result == MachineResult::Applied),
        "{again:?}"
    );
    let observed = provider
        .observe(POOL, "epic-hyperspace")
        .await
        .expect("observe");
    assert_eq!(observed.len(), 2);
    assert!(
        observed
            .iter()
            .all(|o| o.version.as_deref() == Some("2024.3.1")),
        "{observed:?}"
    );

    let unplaced = provider
        .unplace(&UnplaceRequest {
            target: POOL.into(),
            container_id: "epic-hyperspace".into(),
            machines: vec!["vm-001".into()],
        })
        .await
        .expect("unplace");
    assert_eq!(unplaced.machines[0].result, MachineResult::Accepted);
    assert!(agent
        .desired("horizon-test", "vm-001", "epic-hyperspace")
        .is_none());
    agent.install_all();
    let observed = provider
        .observe(POOL, "epic-hyperspace")
        .await
        .expect("observe");
    let first = observed
        .iter()
        .find(|o| o.machine == "vm-001")
        .expect("vm-001 observed");
    assert_eq!(first.version, None);
    assert!(requests_to(
        &server,
        "POST",
        "/rest/inventory/v1/sessions/action/send-message"
    )
    .await
    .is_empty());
}

#[tokio::test]
async fn notice_failures_are_not_fatal() {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(
        &server,
        json!([
            session("sess-1", SID_NURSES, Some("vm-001"), None, "CONNECTED"),
            session("sess-2", SID_DOCTORS, Some("vm-002"), None, "CONNECTED"),
        ]),
    )
    .await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v2/machines",
        json!([machine(1, "CONNECTED"), machine(2, "CONNECTED"),]),
    )
    .await;
    // Bulk actions return 200 with one status per item (BulkItemResponseInfo).
    Mock::given(method("POST"))
        .and(path("/rest/inventory/v1/sessions/action/send-message"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "sess-1", "status_code": 200, "error_messages": [], "timestamp": 1},
            {"id": "sess-2", "status_code": 404, "error_messages": ["Session not found"], "timestamp": 1},
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider_with(&server, json!({"send_messages": true}));
    let request = PlaceRequest {
        target: POOL.into(),
        container: container("2024.3.1"),
        machines: vec!["vm-001".into(), "vm-002".into()],
        activation: Activation::Immediate,
    };
    let outcome = provider.place(&request).await.expect("place");
    assert!(
        outcome
            .machines
            .iter()
            .all(|m| m.result == MachineResult::Accepted),
        "{outcome:?}"
    );
    assert_eq!(outcome.writes.len(), 1);
    assert_eq!(outcome.writes[0].operation, "send_message");

    let sent = requests_to(
        &server,
        "POST",
        "/rest/inventory/v1/sessions/action/send-message",
    )
    .await;
    let body: Value = serde_json::from_slice(&sent[0].body).expect("json body");
    assert_eq!(body["session_ids"], json!(["sess-1", "sess-2"]));
    assert_eq!(body["message_type"], json!("INFO"));
    let text = body["message"].as_str().expect("message");
    assert!(text.contains("Epic Hyperspace 2024.3.1"), "{text}");
    let query = requests_to(&server, "GET", "/rest/inventory/v2/sessions").await;
    let filtered = query.iter().filter_map(filter_of).any(|f| {
        f["type"] == "And"
            && f["filters"].as_array().is_some_and(|all| {
                all.contains(
                    &json!({"type": "Equals", "name": "session_state", "value": "CONNECTED"}),
                )
            })
    });
    assert!(filtered, "no session query filtered on session_state");

    let again = provider.place(&request).await.expect("second place");
    assert!(again.writes.is_empty(), "{:?}", again.writes);
}

/// Mounts a farm with its RDS pool, the pool's entitlements and an application pool listing.
async fn mount_publish_flow(server: &MockServer, app_pools: Value, app_entitlements: Value) {
    mount_targets(server, json!([rds_pool()]), json!([farm()])).await;
    mount_json(
        server,
        "GET",
        &format!("/rest/entitlements/v1/desktop-pools/{RDS_POOL}"),
        json!({
            "id": RDS_POOL, "ad_user_or_group_ids": [SID_NURSES, SID_DOCTORS],
        }),
    )
    .await;
    mount_json(
        server,
        "GET",
        "/rest/inventory/v3/application-pools",
        app_pools,
    )
    .await;
    mount_json(
        server,
        "GET",
        "/rest/entitlements/v1/application-pools/ap-1",
        app_entitlements,
    )
    .await;
    mount_sessions(server, json!([])).await;
}

fn app_pool(name: &str) -> Value {
    json!({
        "id": "ap-1", "name": name, "display_name": "Epic Hyperspace 2024.3.1", "enabled": true,
        "executable_path": "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe",
        "parameters": "/launch epic-hyperspace@2024.3.1", "farm_id": FARM,
        "multi_session_mode": "DISABLED", "shortcut_locations": [], "access_group_id": "ag-root",
    })
}

fn app_pool_name() -> String {
    let reference = ContainerRef {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
    };
    vdi_horizon::publish::app_pool_name("vdigw", &reference, FARM)
}

#[tokio::test]
async fn publish_creates_entitled_app_pool_once() {
    let server = server().await;
    let name = app_pool_name();
    mount_targets(&server, json!([rds_pool()]), json!([farm()])).await;
    mount_json(
        &server,
        "GET",
        &format!("/rest/entitlements/v1/desktop-pools/{RDS_POOL}"),
        json!({
            "id": RDS_POOL, "ad_user_or_group_ids": [SID_NURSES, SID_DOCTORS],
        }),
    )
    .await;
    // Looked up before the create (none), then read back after it.
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v3/application-pools"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v3/application-pools",
        json!([app_pool(&name)]),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/rest/inventory/v3/application-pools"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/entitlements/v1/application-pools/ap-1"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"error_message": "Not found"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_json(
        &server,
        "GET",
        "/rest/entitlements/v1/application-pools/ap-1",
        json!({
            "id": "ap-1", "ad_user_or_group_ids": [SID_DOCTORS, SID_NURSES],
        }),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/rest/entitlements/v1/application-pools"))
        .and(body_json(
            json!([{"id": "ap-1", "ad_user_or_group_ids": [SID_NURSES, SID_DOCTORS]}]),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": "ap-1", "status_code": 200, "error_messages": [], "timestamp": 1,
            "details": [
                {"ad_user_or_group_id": SID_NURSES, "status_code": 200, "error_messages": []},
                {"ad_user_or_group_id": SID_DOCTORS, "status_code": 200, "error_messages": []},
            ],
        }])))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);

    let first = provider
        .publish("EHR-RDS-Farm", &container("2024.3.1"))
        .await
        .expect("publish");
    assert_eq!(first.objects, vec!["ap-1".to_owned()]);
    assert_eq!(first.writes.len(), 2, "{:?}", first.writes);
    let second = provider
        .publish(FARM, &container("2024.3.1"))
        .await
        .expect("publish again");
    assert!(second.writes.is_empty(), "{:?}", second.writes);
    assert_eq!(second.objects, first.objects);

    let created = requests_to(&server, "POST", "/rest/inventory/v3/application-pools").await;
    let body: Value = serde_json::from_slice(&created[0].body).expect("json body");
    assert_eq!(body["name"], json!(name));
    assert_eq!(body["farm_id"], json!(FARM));
    assert_eq!(
        body["parameters"],
        json!("/launch epic-hyperspace@2024.3.1")
    );
    assert!(body["executable_path"]
        .as_str()
        .is_some_and(|p| p.ends_with("JukeboxPlayer.exe")));
}

#[tokio::test]
async fn bulk_entitlement_item_failure_names_sid() {
    let server = server().await;
    mount_publish_flow(
        &server,
        json!([app_pool(&app_pool_name())]),
        json!({
            "id": "ap-1", "ad_user_or_group_ids": [SID_NURSES],
        }),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/rest/entitlements/v1/application-pools"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": "ap-1", "status_code": 200, "error_messages": [], "timestamp": 1,
            "details": [{"ad_user_or_group_id": SID_DOCTORS, "status_code": 400,
                         "error_messages": ["AD user or group not found"], "timestamp": 1}],
        }])))
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    let error = provider
        .publish(FARM, &container("2024.3.1"))
        .await
        .expect_err("item failed");
    assert_eq!(error.kind, ErrorKind::Conflict);
    assert!(error.message.contains(SID_DOCTORS), "{}", error.message);
    assert!(
        error.message.contains("AD user or group not found"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn entitlement_changes_name_exactly_the_sids() {
    let server = server().await;
    mount_publish_flow(
        &server,
        json!([app_pool(&app_pool_name())]),
        json!({
            "id": "ap-1", "ad_user_or_group_ids": [SID_NURSES, SID_OLD],
        }),
    )
    .await;
    let ok = |sid: &str| {
        ResponseTemplate::new(200).set_body_json(json!([{
            "id": "ap-1", "status_code": 200, "error_messages": [],
            "details": [{"ad_user_or_group_id": sid, "status_code": 200}],
        }]))
    };
    Mock::given(method("POST"))
        .and(path("/rest/entitlements/v1/application-pools"))
        .and(body_json(
            json!([{"id": "ap-1", "ad_user_or_group_ids": [SID_DOCTORS]}]),
        ))
        .respond_with(ok(SID_DOCTORS))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/rest/entitlements/v1/application-pools"))
        .and(body_json(
            json!([{"id": "ap-1", "ad_user_or_group_ids": [SID_OLD]}]),
        ))
        .respond_with(ok(SID_OLD))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    let publication = provider
        .publish(FARM, &container("2024.3.1"))
        .await
        .expect("publish");
    assert_eq!(publication.writes.len(), 2, "{:?}", publication.writes);
}

#[tokio::test]
async fn unpublish_removes_held_sids_then_pool() {
    let server = server().await;
    mount_publish_flow(
        &server,
        json!([app_pool(&app_pool_name())]),
        json!({
            "id": "ap-1", "ad_user_or_group_ids": [SID_NURSES, SID_OLD],
        }),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path("/rest/entitlements/v1/application-pools"))
        .and(body_json(
            json!([{"id": "ap-1", "ad_user_or_group_ids": [SID_NURSES, SID_OLD]}]),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": "ap-1", "status_code": 200, "error_messages": [], "details": [],
        }])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/rest/inventory/v1/application-pools/ap-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    let reference = ContainerRef {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
    };
    let publication = provider
        .unpublish(FARM, &reference)
        .await
        .expect("unpublish");
    assert!(publication.objects.is_empty(), "{publication:?}");
    assert_eq!(publication.writes.len(), 2);
}

#[tokio::test]
async fn unpublish_missing_pool_is_ok() {
    let server = server().await;
    mount_publish_flow(&server, json!([]), json!({})).await;
    let (provider, _) = provider(&server);
    let reference = ContainerRef {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
    };
    let publication = provider
        .unpublish(FARM, &reference)
        .await
        .expect("nothing to remove");
    assert!(publication.writes.is_empty());
    assert!(publication.objects.is_empty());
}

/// Records when each request arrives, and responds to each after a fixed delay.
#[derive(Clone)]
struct Arrivals {
    times: Arc<Mutex<Vec<Instant>>>,
    body: Value,
}

impl Respond for Arrivals {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.times.lock().expect("arrivals").push(Instant::now());
        ResponseTemplate::new(200)
            .set_body_json(self.body.clone())
            .set_delay(Duration::from_millis(200))
    }
}

/// Runs four listings at once with `limit` concurrent queries and returns the smallest gap
/// between the arrivals of machine queries.
async fn smallest_query_gap(limit: u32) -> Duration {
    let server = server().await;
    mount_targets(&server, json!([pool(POOL, "EHR-IC", "DESKTOP")]), json!([])).await;
    mount_sessions(&server, json!([])).await;
    let arrivals = Arrivals {
        times: Arc::default(),
        body: json!([machine(1, "AVAILABLE")]),
    };
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v2/machines"))
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    let (provider, _) = provider_with(
        &server,
        json!({"max_concurrent_queries": limit, "concurrency": 8}),
    );
    provider
        .list_targets()
        .await
        .expect("warm the target cache");
    provider
        .list_machines(POOL, None)
        .await
        .expect("warm the session cache");
    arrivals.times.lock().expect("arrivals").clear();

    let listings = (0..4).map(|_| provider.list_machines(POOL, None));
    for result in futures::future::join_all(listings).await {
        result.expect("listing");
    }
    let mut times = arrivals.times.lock().expect("arrivals").clone();
    times.sort();
    times
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .min()
        .expect("at least two queries")
}

#[tokio::test]
async fn concurrent_queries_are_bounded() {
    let gap = smallest_query_gap(1).await;
    assert!(
        gap >= Duration::from_millis(180),
        "queries overlapped: gap {gap:?}"
    );
}

#[tokio::test]
async fn concurrent_queries_overlap_without_bound() {
    let gap = smallest_query_gap(4).await;
    assert!(
        gap < Duration::from_millis(100),
        "queries did not overlap: gap {gap:?}"
    );
}

#[tokio::test]
async fn unauthorized_refreshes_once() {
    let server = server().await;
    mount_json(&server, "GET", "/rest/inventory/v3/farms", json!([])).await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error_message": "Session expired"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_2}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([pool(POOL, "EHR-IC", "DESKTOP")])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v3/farms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/refresh"))
        .and(body_json(json!({"refresh_token": REFRESH})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": ACCESS_2})))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    let health = provider.check().await.expect("check after refresh");
    assert_eq!(health.status, vdi_contracts::HealthStatus::Ok);
    assert_eq!(requests_to(&server, "POST", "/rest/login").await.len(), 1);
    assert_eq!(requests_to(&server, "POST", "/rest/refresh").await.len(), 1);
}

#[tokio::test]
async fn failed_refresh_logs_in_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS, "refresh_token": REFRESH,
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS_2, "refresh_token": "refresh-second",
        })))
        .mount(&server)
        .await;
    // Horizon 2111 answers an expired refresh token with 500.
    Mock::given(method("POST"))
        .and(path("/rest/refresh"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error_message": "Invalid refresh token"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_2}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    provider.check().await.expect("check after a fresh login");
    assert_eq!(
        requests_to(&server, "POST", "/rest/refresh").await.len(),
        1,
        "refresh retried"
    );
    assert_eq!(requests_to(&server, "POST", "/rest/login").await.len(), 2);
}

async fn throttled_then_ok(header_name: &str) -> Duration {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .respond_with(ResponseTemplate::new(429).insert_header(header_name, "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v5/desktop-pools",
        json!([]),
    )
    .await;
    let (provider, _) = provider(&server);
    let started = Instant::now();
    provider.check().await.expect("check after throttling");
    started.elapsed()
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let elapsed = throttled_then_ok("Retry-After").await;
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
}

#[tokio::test]
async fn horizon_rate_limit_header_is_honoured() {
    let elapsed = throttled_then_ok("X-Rate-Limit-Retry-After-Seconds").await;
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
}

#[tokio::test]
async fn shutdown_logs_out_once() {
    let server = server().await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v5/desktop-pools",
        json!([]),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/rest/logout"))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .and(body_json(json!({"refresh_token": REFRESH})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    provider.check().await.expect("check");
    provider.shutdown().await;
    provider.shutdown().await;
}

#[tokio::test]
async fn shutdown_without_session_sends_nothing() {
    let server = server().await;
    let (provider, _) = provider(&server);
    provider.shutdown().await;
    let received = server.received_requests().await.unwrap_or_default();
    assert!(received.is_empty(), "{} requests", received.len());
}

#[tokio::test]
async fn wrong_password_is_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/login"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error_message": "Invalid user credentials",
        })))
        .mount(&server)
        .await;
    let (provider, _) = provider(&server);
    let error = provider.check().await.expect_err("rejected");
    assert_eq!(error.kind, ErrorKind::Unauthenticated);
    assert!(
        error.message.contains("horizon.password"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("Invalid user credentials"),
        "{}",
        error.message
    );
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
async fn secrets_never_logged_or_printed() {
    let server = server().await;
    mount_json(&server, "GET", "/rest/inventory/v3/farms", json!([])).await;
    Mock::given(method("GET"))
        .and(path("/rest/inventory/v5/desktop-pools"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_json(
        &server,
        "GET",
        "/rest/inventory/v5/desktop-pools",
        json!([]),
    )
    .await;
    mount_json(
        &server,
        "POST",
        "/rest/refresh",
        json!({"access_token": ACCESS_2}),
    )
    .await;
    mount_json(&server, "POST", "/rest/logout", json!({})).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (provider, _) = provider(&server);
    provider.check().await.expect("check after a 401");
    let printed = format!("{provider:?}");
    provider.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(!logs.is_empty(), "no logs captured");
    for secret in [PASSWORD, ACCESS, ACCESS_2, REFRESH] {
        assert!(!logs.contains(secret), "{secret} in logs");
        assert!(!printed.contains(secret), "{secret} in Debug output");
    }
}
