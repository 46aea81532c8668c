//! The contract's conformance suite against the broker-sim Citrix simulator, in cloud and
//! on-premises mode. Afterwards the simulator must have recorded no call to a denied endpoint.

use std::sync::Arc;

use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Fleet};
use serde_json::json;
use vdi_citrix::{CitrixConfig, CitrixProvider};
use vdi_contracts::conformance::{run_all, Fixture};
use vdi_contracts::{Container, Launch};

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

async fn run_against(sim: &CitrixSim, config: serde_json::Value) -> broker_sim::citrix::Counters {
    let config: CitrixConfig = serde_json::from_value(config).expect("config parses");
    let provider = CitrixProvider::new("citrix-sim", config).expect("provider builds");
    let fixture = Fixture {
        provider: Arc::new(provider),
        target: "EHR Clinicians".into(),
        container: container(),
        second_version: "2024.4.0".into(),
    };
    run_all(&fixture).await;
    let counters = sim.counters();
    assert!(
        counters.denied.is_empty(),
        "denied calls: {:?}",
        counters.denied
    );
    assert!(counters.writes > 0, "the suite made no writes");
    let server_errors: u64 = counters.by_status.range(500..).map(|(_, n)| n).sum();
    assert_eq!(server_errors, 0, "statuses: {:?}", counters.by_status);
    counters
}

fn small_fleet() -> CitrixSimConfig {
    CitrixSimConfig {
        fleet: Fleet::Small,
        ..CitrixSimConfig::default()
    }
}

#[tokio::test]
async fn conformance_cloud() {
    let sim = CitrixSim::start(small_fleet())
        .await
        .expect("simulator starts");
    let config = json!({
        "mode": "cloud",
        "api_base_url": sim.api_base_url(),
        "token_url": sim.cloud_token_url(),
        "customer_id": "acme-health",
        "client_id": "gateway-client",
        "client_secret": "sim-client-secret",
        "allow_plain_http_loopback": true,
    });
    run_against(&sim, config).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn conformance_cloud_batched() {
    let sim = CitrixSim::start(small_fleet())
        .await
        .expect("simulator starts");
    // A threshold of 0 sends every tag write through `$batch`.
    let config = json!({
        "mode": "cloud",
        "api_base_url": sim.api_base_url(),
        "token_url": sim.cloud_token_url(),
        "customer_id": "acme-health",
        "client_id": "gateway-client",
        "client_secret": "sim-client-secret",
        "batch_threshold": 0,
        "batch_size": 3,
        "page_size": 3,
        "allow_plain_http_loopback": true,
    });
    let counters = run_against(&sim, config).await;
    assert!(
        counters.route("POST /cvad/manage/$batch") > 0,
        "{:?}",
        counters.by_route
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn conformance_on_premises() {
    let sim = CitrixSim::start(small_fleet())
        .await
        .expect("simulator starts");
    let config = json!({
        "mode": "on_premises",
        "api_base_url": sim.api_base_url(),
        "token_url": sim.onprem_token_url(),
        "username": "HOSP\\svc-gateway",
        "password": "sim-password",
        "allow_plain_http_loopback": true,
    });
    run_against(&sim, config).await;
    sim.shutdown().await;
}
