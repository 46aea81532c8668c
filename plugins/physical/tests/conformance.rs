//! The contract's conformance suite against the broker-sim Graph simulator: on the
//! Intune-managed laptops (group and Win32 app delivery) and on the agent-only laptops
//! registered through the agent channel. Afterwards the simulator must have recorded no call
//! to a denied endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use broker_sim::graph::{GraphSim, GraphSimConfig};
use serde_json::json;
use vdi_contracts::conformance::{run_all, Fixture};
use vdi_contracts::{Container, Launch, MemoryAgentChannel, Provider};
use vdi_physical::{PhysicalConfig, PhysicalProvider};

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

fn provider(sim: &GraphSim, agent: Arc<MemoryAgentChannel>) -> Arc<PhysicalProvider> {
    let config: PhysicalConfig = serde_json::from_value(json!({
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
        "device_groups": [
            {"id": "clinical-laptops", "name": "Clinical laptops", "name_prefix": "HOSP-LT-"},
            {"id": "agent-laptops", "labels": {"fleet": "agent-only"}},
        ],
        "delivery": {"read_back_delay_ms": 150, "upload_poll_delay_ms": 50},
        // Small pages, so the suite follows cursors over several of them.
        "page_size": 2,
    }))
    .expect("config parses");
    Arc::new(PhysicalProvider::new("physical-sim", config, agent).expect("provider builds"))
}

async fn run_on(target: &str) {
    let sim = GraphSim::start(GraphSimConfig::default())
        .await
        .expect("simulator starts");
    let agent = Arc::new(MemoryAgentChannel::default());
    let labels = BTreeMap::from([("fleet".to_owned(), "agent-only".to_owned())]);
    for laptop in &sim.snapshot().agent_only_laptops {
        agent.register("physical-sim", laptop, labels.clone());
    }
    let provider = provider(&sim, agent.clone());
    let fixture = Fixture {
        provider: provider.clone(),
        target: target.into(),
        container: container(),
        second_version: "2024.4.0".into(),
    };

    run_all(&fixture).await;

    let denied = sim.counters().denied;
    assert!(denied.is_empty(), "denied calls: {denied:?}");
    assert_eq!(provider.describe().kind, "physical");
}

#[tokio::test]
async fn intune_laptops_pass_the_suite() {
    run_on("clinical-laptops").await;
}

#[tokio::test]
async fn agent_laptops_pass_the_suite() {
    run_on("agent-laptops").await;
}
