//! Graph requests of reconcile passes shaped like the engine's: every listing page, observe,
//! then place in batches of 100. The Graph simulator counts them on its hospital fleet. One
//! pass reads the inventory once, and a second pass within `inventory_cache_seconds` does not
//! read it again.

use std::sync::Arc;

use broker_sim::graph::{Counters, GraphFleet, GraphSim, GraphSimConfig};
use serde_json::json;
use vdi_contracts::{Activation, Container, Launch, MemoryAgentChannel, PlaceRequest, Provider};
use vdi_windows365::{Windows365Config, Windows365Provider};

const PAGE_SIZE: usize = 50;

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

async fn hospital() -> GraphSim {
    let config = GraphSimConfig {
        fleet: GraphFleet::Hospital,
        ..GraphSimConfig::default()
    };
    GraphSim::start(config).await.expect("simulator starts")
}

fn provider(sim: &GraphSim) -> Windows365Provider {
    let config: Windows365Config = serde_json::from_value(json!({
        "graph": {
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": "sim-graph-secret",
            "token_url": sim.token_url(),
            "graph_base_url": sim.graph_base_url(),
            "allow_plain_http_loopback": true,
            "requests_per_second": 1000.0,
        },
        "page_size": PAGE_SIZE,
    }))
    .expect("config parses");
    let agents = Arc::new(MemoryAgentChannel::default());
    Windows365Provider::new("w365-sim", config, agents).expect("provider builds")
}

/// Runs one pass over `target` and returns the listing's page count.
async fn pass(provider: &Windows365Provider, target: &str, place: bool) -> usize {
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
                activation: Activation::Immediate,
            };
            provider.place(&request).await.expect("place");
        }
    }
    pages
}

async fn policy_target(sim: &GraphSim, name: &str) -> String {
    let snapshot = sim.snapshot();
    let policy = snapshot
        .provisioning_policies
        .iter()
        .find(|p| p.display_name == name)
        .unwrap_or_else(|| panic!("no policy {name}"));
    format!("policy:{}", policy.id)
}

/// Returns the Graph pages one read of `items` objects takes.
fn graph_pages(sim: &GraphSim, items: usize) -> u64 {
    items.div_ceil(sim.config().page_size).max(1) as u64
}

fn inventory_reads(counters: &Counters) -> [u64; 3] {
    [
        counters.route("GET /v1.0/devicemanagement/virtualendpoint/cloudpcs"),
        counters.route("GET /beta/devicemanagement/virtualendpoint/cloudpcs"),
        counters.route("GET /v1.0/devicemanagement/manageddevices"),
    ]
}

#[tokio::test]
async fn enterprise_pass_reads_inventory_once() {
    let sim = hospital().await;
    let provider = provider(&sim);
    provider.check().await.expect("check");
    let target = policy_target(&sim, "Clinicians Enterprise").await;
    let snapshot = sim.snapshot();
    sim.reset_counters();

    let pages = pass(&provider, &target, false).await;
    let cold = sim.counters();
    sim.reset_counters();
    pass(&provider, &target, false).await;
    let warm = sim.counters();

    println!(
        "Enterprise policy, {pages} pages: first pass {} Graph requests, second pass {}",
        cold.total, warm.total
    );
    assert!(pages > 1, "the listing has {pages} page(s)");
    let pcs = graph_pages(&sim, snapshot.cloud_pcs.len());
    let devices = graph_pages(&sim, snapshot.managed_devices.len());
    assert_eq!(inventory_reads(&cold), [pcs, pcs, devices], "{cold:?}");
    assert_eq!(inventory_reads(&warm), [0, 0, 0], "{warm:?}");
}

#[tokio::test]
async fn business_pass_reads_inventory_once() {
    let sim = hospital().await;
    let provider = provider(&sim);
    provider.check().await.expect("check");
    let target = policy_target(&sim, "Front Desk Business").await;
    let snapshot = sim.snapshot();
    sim.reset_counters();

    pass(&provider, &target, true).await;
    let cold = sim.counters();

    println!(
        "Business policy with placement: {} Graph requests",
        cold.total
    );
    let pcs = graph_pages(&sim, snapshot.cloud_pcs.len());
    let devices = graph_pages(&sim, snapshot.managed_devices.len());
    assert_eq!(inventory_reads(&cold), [pcs, pcs, devices], "{cold:?}");
    assert_eq!(cold.writes, 0, "agent delivery wrote to Graph: {cold:?}");
}
