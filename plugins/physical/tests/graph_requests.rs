//! Graph requests of reconcile passes shaped like the engine's: every listing page, observe,
//! then place in batches of 100. The Graph simulator counts them on its hospital fleet. One
//! pass reads the managed devices once, and a second pass within `inventory_cache_seconds`
//! does not read them again.

use std::collections::BTreeMap;
use std::sync::Arc;

use broker_sim::graph::{GraphFleet, GraphSim, GraphSimConfig};
use chrono::Utc;
use serde_json::json;
use vdi_contracts::{Activation, Container, Launch, MemoryAgentChannel, PlaceRequest, Provider};
use vdi_physical::{PhysicalConfig, PhysicalProvider};

const MANAGED_DEVICES: &str = "GET /v1.0/devicemanagement/manageddevices";

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

async fn setup() -> (GraphSim, PhysicalProvider) {
    let config = GraphSimConfig {
        fleet: GraphFleet::Hospital,
        ..GraphSimConfig::default()
    };
    let sim = GraphSim::start(config).await.expect("simulator starts");
    let config: PhysicalConfig = serde_json::from_value(json!({
        "graph": {
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": "sim-graph-secret",
            "token_url": sim.token_url(),
            "graph_base_url": sim.graph_base_url(),
            "allow_plain_http_loopback": true,
            "requests_per_second": 1000.0,
        },
        "device_groups": [
            {"id": "intune-laptops", "name_prefix": "HOSP-LT-"},
            {"id": "agent-laptops", "name_prefix": "HOSP-AG-"},
        ],
        "page_size": 100,
    }))
    .expect("config parses");
    let agents = Arc::new(MemoryAgentChannel::default());
    for laptop in &sim.snapshot().agent_only_laptops {
        agents.check_in(
            "physical-sim",
            laptop,
            BTreeMap::new(),
            Some(Vec::new()),
            Utc::now(),
        );
    }
    let provider = PhysicalProvider::new("physical-sim", config, agents).expect("provider builds");
    (sim, provider)
}

/// Runs one pass over `target` and returns the listing's page count.
async fn pass(provider: &PhysicalProvider, target: &str, place: bool) -> usize {
    let mut machines = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    for _ in 0..1000 {
        let page = provider
            .list_machines(target, cursor.take())
            .await
            .expect("page");
        pages += 1;
        machines.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    provider
        .observe(target, &container().id)
        .await
        .expect("observe");
    if place {
        let ready: Vec<String> = machines
            .iter()
            .filter(|m| m.state.exclusion_reason().is_none())
            .map(|m| m.id.clone())
            .collect();
        for batch in ready.chunks(100) {
            let request = PlaceRequest {
                target: target.to_owned(),
                container: container(),
                machines: batch.to_vec(),
                activation: Activation::WhenIdle,
            };
            provider.place(&request).await.expect("place");
        }
    }
    pages
}

#[tokio::test]
async fn intune_pass_reads_devices_once() {
    let (sim, provider) = setup().await;
    provider.check().await.expect("check");
    let devices = sim.snapshot().managed_devices.len();
    sim.reset_counters();

    let pages = pass(&provider, "intune-laptops", false).await;
    let cold = sim.counters();
    sim.reset_counters();
    pass(&provider, "intune-laptops", false).await;
    let warm = sim.counters();

    println!(
        "Intune laptops, {pages} pages: first pass {} Graph requests, second pass {}",
        cold.total, warm.total
    );
    assert!(pages > 1, "the listing has {pages} page(s)");
    let one_read = devices.div_ceil(sim.config().page_size) as u64;
    assert_eq!(cold.route(MANAGED_DEVICES), one_read, "{cold:?}");
    assert_eq!(warm.route(MANAGED_DEVICES), 0, "{warm:?}");
}

#[tokio::test]
async fn agent_pass_reads_devices_once() {
    let (sim, provider) = setup().await;
    provider.check().await.expect("check");
    let devices = sim.snapshot().managed_devices.len();
    sim.reset_counters();

    pass(&provider, "agent-laptops", true).await;
    let cold = sim.counters();

    println!(
        "Agent laptops with placement: {} Graph requests",
        cold.total
    );
    let one_read = devices.div_ceil(sim.config().page_size) as u64;
    assert_eq!(cold.route(MANAGED_DEVICES), one_read, "{cold:?}");
    assert_eq!(cold.writes, 0, "agent delivery wrote to Graph: {cold:?}");
}
