//! The contract's conformance suite against the Portal simulator, with the provider linked
//! directly (the gateway's tests run the same suite through the plugin ABI).

use std::sync::Arc;

use vdi_plugin_sdk::contracts::conformance::{run_all, Fixture};
use vdigw_example_rest::plugin::{sample_container, sim_settings};
use vdigw_example_rest::sim::PortalSim;
use vdigw_example_rest::{PortalConfig, PortalProvider};

#[tokio::test]
async fn conformance_direct() {
    let sim = PortalSim::start().await.expect("simulator starts");
    let config: PortalConfig = serde_json::from_value(sim_settings(&sim)).expect("config parses");
    let provider = PortalProvider::new("portal-sim", config).expect("provider builds");
    let fixture = Fixture {
        provider: Arc::new(provider),
        target: "Clinicians".into(),
        container: sample_container(),
        second_version: "2024.4.0".into(),
    };
    run_all(&fixture).await;
    let counters = sim.counters();
    assert!(counters.writes > 0, "the suite made no writes");
    assert!(
        counters.unknown.is_empty(),
        "calls outside the API: {:?}",
        counters.unknown
    );
    sim.shutdown();
}
