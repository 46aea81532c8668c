//! The contract's conformance suite against the broker-sim Graph simulator, on the Cloud PCs
//! of the Enterprise provisioning policy and of the Business one. Afterwards the simulator must
//! have recorded no call to a denied endpoint.

use std::sync::Arc;

use broker_sim::graph::{GraphSim, GraphSimConfig};
use serde_json::json;
use vdi_contracts::conformance::{run_all, Fixture};
use vdi_contracts::{Container, Launch, MemoryAgentChannel, Provider};
use vdi_windows365::{Windows365Config, Windows365Provider};

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

fn provider(sim: &GraphSim) -> (Arc<Windows365Provider>, Arc<MemoryAgentChannel>) {
    let config: Windows365Config = serde_json::from_value(json!({
        "graph": {
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": "sim-graph-secret",
            "token_url": sim.token_url(),
            "graph_base_url": sim.graph_base_url(),
            "allow_plain_http_loopback": true,
            // Above the default of 5 so the suite's few hundred requests finish quickly.
            "requests_per_second": 200.0,
        },
        "delivery": {"read_back_delay_ms": 150, "upload_poll_delay_ms": 50},
        // Small pages, so the suite follows cursors over several of them.
        "page_size": 2,
    }))
    .expect("config parses");
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider =
        Windows365Provider::new("w365-sim", config, agent.clone()).expect("provider builds");
    (Arc::new(provider), agent)
}

async fn policy_target(sim: &GraphSim, name: &str) -> String {
    let snapshot = sim.snapshot();
    let policy = snapshot
        .provisioning_policies
        .iter()
        .find(|p| p.display_name == name)
        .unwrap_or_else(|| panic!("simulator has no policy {name}"));
    format!("policy:{}", policy.id)
}

#[tokio::test]
async fn enterprise_policy_passes_the_suite() {
    let sim = GraphSim::start(GraphSimConfig::default())
        .await
        .expect("simulator starts");
    let (provider, _agent) = provider(&sim);
    let fixture = Fixture {
        provider: provider.clone(),
        target: policy_target(&sim, "Clinicians Enterprise").await,
        container: container(),
        second_version: "2024.4.0".into(),
    };

    run_all(&fixture).await;

    let denied = sim.counters().denied;
    assert!(denied.is_empty(), "denied calls: {denied:?}");
}

#[tokio::test]
async fn business_policy_passes_the_suite() {
    let sim = GraphSim::start(GraphSimConfig::default())
        .await
        .expect("simulator starts");
    let (provider, agent) = provider(&sim);
    let fixture = Fixture {
        provider: provider.clone(),
        target: policy_target(&sim, "Front Desk Business").await,
        container: container(),
        second_version: "2024.4.0".into(),
    };

    run_all(&fixture).await;
    agent.install_all();

    let denied = sim.counters().denied;
    assert!(denied.is_empty(), "denied calls: {denied:?}");
    let describe = provider.describe();
    assert_eq!(describe.kind, "windows365");
}
