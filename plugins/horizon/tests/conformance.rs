//! The contract's conformance suite against the broker-sim Horizon simulator, on a VDI
//! desktop pool (agent delivery only) and on an RDS farm (application pools). Afterwards the
//! simulator must have recorded no call to a denied endpoint.

use std::sync::Arc;

use broker_sim::horizon::{HorizonFleet, HorizonSim, HorizonSimConfig, Knobs, RetryAfterStyle};
use serde_json::json;
use vdi_contracts::conformance::{all_machines, run_all, Fixture};
use vdi_contracts::{
    Activation, Container, Launch, MachineResult, MemoryAgentChannel, PlaceRequest, Provider,
};
use vdi_horizon::{HorizonConfig, HorizonProvider};

fn container() -> Container {
    Container {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
        display_name: Some("Epic Hyperspace".into()),
        launch: Launch {
            executable: "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe".into(),
            arguments: Some("/launch epic-hyperspace@2024.3.1".into()),
            working_directory: None,
        },
    }
}

fn provider(
    sim: &HorizonSim,
    extra: serde_json::Value,
) -> (Arc<HorizonProvider>, Arc<MemoryAgentChannel>) {
    let mut raw = json!({
        "api_base_url": sim.api_base_url(),
        "username": "svc-gateway",
        "password": "sim-password",
        "domain": "HOSP",
        "allow_plain_http_loopback": true,
        // Above the default of 10 so the suite's few hundred requests finish quickly.
        "requests_per_second": 100.0,
    });
    if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
        raw.extend(extra.clone());
    }
    let config: HorizonConfig = serde_json::from_value(raw).expect("config parses");
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider =
        HorizonProvider::new("horizon-sim", config, agent.clone()).expect("provider builds");
    (Arc::new(provider), agent)
}

async fn run_against(
    sim: &HorizonSim,
    target: &str,
    extra: serde_json::Value,
) -> Arc<HorizonProvider> {
    let (provider, agent) = provider(sim, extra);
    let fixture = Fixture {
        provider: provider.clone(),
        target: target.into(),
        container: container(),
        second_version: "2024.4.0".into(),
    };
    run_all(&fixture).await;

    // The suite accepts Accepted; once the agents report, observe shows the version.
    let ready: Vec<String> = all_machines(&fixture)
        .await
        .into_iter()
        .filter(|m| m.state.exclusion_reason().is_none())
        .map(|m| m.id)
        .take(2)
        .collect();
    let request = PlaceRequest {
        target: target.into(),
        container: container(),
        machines: ready.clone(),
        activation: Activation::Immediate,
    };
    provider.place(&request).await.expect("place");
    agent.install_all();
    let again = provider
        .place(&request)
        .await
        .expect("place after agents reported");
    assert!(
        again
            .machines
            .iter()
            .all(|m| m.result == MachineResult::Applied),
        "{again:?}"
    );
    let observed = provider
        .observe(target, "epic-hyperspace")
        .await
        .expect("observe");
    for machine in &ready {
        let version = observed
            .iter()
            .find(|o| &o.machine == machine)
            .and_then(|o| o.version.as_deref());
        assert_eq!(version, Some("2024.3.1"), "observe {machine}");
    }

    let counters = sim.counters();
    assert!(
        counters.denied.is_empty(),
        "denied calls: {:?}",
        counters.denied
    );
    if sim.knobs().error_rate == 0.0 {
        let server_errors: u64 = counters.by_status.range(500..).map(|(_, n)| n).sum();
        assert_eq!(server_errors, 0, "statuses: {:?}", counters.by_status);
    }
    provider.shutdown().await;
    provider
}

fn snapshot_messages(sim: &HorizonSim) -> Vec<String> {
    sim.snapshot()
        .sent_messages
        .into_iter()
        .map(|m| m.message)
        .collect()
}

#[tokio::test]
async fn conformance_desktop_pool() {
    let sim = HorizonSim::start(HorizonSimConfig::default())
        .await
        .expect("simulator starts");
    run_against(&sim, "EHR-IC", json!({})).await;
    // Delivery to a VDI desktop pool goes through the agent channel only.
    let gateway_pools: Vec<String> = sim
        .snapshot()
        .application_pools
        .iter()
        .filter(|a| a.name.starts_with("vdigw-"))
        .map(|a| a.name.clone())
        .collect();
    assert!(gateway_pools.is_empty(), "{gateway_pools:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn conformance_rds_farm() {
    let sim = HorizonSim::start(HorizonSimConfig::default())
        .await
        .expect("simulator starts");
    run_against(
        &sim,
        "EHR-RDS-Farm",
        json!({"page_size": 2, "send_messages": true}),
    )
    .await;
    let counters = sim.counters();
    assert!(
        !snapshot_messages(&sim).is_empty(),
        "no update notice was sent"
    );
    assert!(counters.writes > 0, "the suite made no writes");
    assert!(
        counters.route("POST /rest/inventory/v3/application-pools") > 0,
        "{:?}",
        counters.by_route
    );

    // The suite unpublished both versions at the end.
    let snapshot = sim.snapshot();
    let left: Vec<&str> = snapshot
        .application_pools
        .iter()
        .filter(|a| a.name.starts_with("vdigw-"))
        .map(|a| a.name.as_str())
        .collect();
    assert!(left.is_empty(), "application pools left: {left:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn conformance_application_desktop_pool() {
    let config = HorizonSimConfig {
        fleet: HorizonFleet::Hospital,
        ..HorizonSimConfig::default()
    };
    let sim = HorizonSim::start(config).await.expect("simulator starts");
    run_against(&sim, "Outpatient-IC", json!({"page_size": 25})).await;

    // The pool has application sessions, so publishing made an application pool on it.
    let counters = sim.counters();
    assert!(
        counters.route("POST /rest/inventory/v3/application-pools") > 0,
        "{:?}",
        counters.by_route
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn conformance_with_faults() {
    let knobs = Knobs {
        unknown_values: true,
        rate_limit_per_second: Some(40.0),
        retry_after_header: true,
        retry_after_style: RetryAfterStyle::XRateLimitRetryAfterSeconds,
        error_rate: 0.03,
        ..Knobs::default()
    };
    let config = HorizonSimConfig {
        knobs,
        ..HorizonSimConfig::default()
    };
    let sim = HorizonSim::start(config).await.expect("simulator starts");
    run_against(&sim, "EHR-RDS-Farm", json!({"requests_per_second": 30.0})).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_tokens_refresh_then_log_in() {
    let sim = HorizonSim::start(HorizonSimConfig::default())
        .await
        .expect("simulator starts");
    let (provider, _) = provider(&sim, json!({}));
    provider.check().await.expect("first check");
    assert_eq!(sim.counters().route("POST /rest/login"), 1);

    sim.expire_tokens();
    provider
        .check()
        .await
        .expect("check after the access token expired");
    assert_eq!(sim.counters().route("POST /rest/refresh"), 1);
    assert_eq!(sim.counters().route("POST /rest/login"), 1);

    sim.expire_refresh_tokens();
    provider
        .check()
        .await
        .expect("check after both tokens expired");
    assert_eq!(sim.counters().route("POST /rest/login"), 2);

    provider.shutdown().await;
    assert_eq!(sim.counters().route("POST /rest/logout"), 1);
    assert!(sim.counters().denied.is_empty());
    sim.shutdown().await;
}
