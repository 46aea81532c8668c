//! `agent_first` against the Graph simulator: an Enterprise Cloud PC that Intune delivered to
//! moves to its agent once the agent checks in, and leaves the container's Intune group.

use std::collections::BTreeMap;
use std::sync::Arc;

use broker_sim::graph::{GraphSim, GraphSimConfig};
use chrono::Utc;
use serde_json::json;
use vdi_contracts::{
    Activation, Container, Launch, MachineResult, MemoryAgentChannel, PlaceRequest, Provider,
};
use vdi_windows365::{Windows365Config, Windows365Provider};

fn container(version: &str) -> Container {
    Container {
        id: "epic".into(),
        version: version.into(),
        display_name: None,
        launch: Launch {
            executable: "C:\\Player\\player.exe".into(),
            arguments: Some(format!("/launch epic@{version}")),
            working_directory: None,
        },
    }
}

fn provider(sim: &GraphSim) -> (Windows365Provider, Arc<MemoryAgentChannel>) {
    let config: Windows365Config = serde_json::from_value(json!({
        "graph": {
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": "sim-graph-secret",
            "token_url": sim.token_url(),
            "graph_base_url": sim.graph_base_url(),
            "allow_plain_http_loopback": true,
            "requests_per_second": 200.0,
        },
        "delivery": {"read_back_delay_ms": 100, "upload_poll_delay_ms": 50},
        "agent_first": true,
    }))
    .expect("config parses");
    let agent = Arc::new(MemoryAgentChannel::default());
    let provider = Windows365Provider::new("w365-first", config, agent.clone()).expect("builds");
    (provider, agent)
}

fn place(target: &str, version: &str, machine: &str) -> PlaceRequest {
    PlaceRequest {
        target: target.to_owned(),
        container: container(version),
        machines: vec![machine.to_owned()],
        activation: Activation::Immediate,
    }
}

fn members(sim: &GraphSim, group: &str) -> usize {
    sim.snapshot()
        .group(group)
        .map_or(0, |group| group.members.len())
}

#[tokio::test]
async fn agent_takes_over_from_intune() {
    let sim = GraphSim::start(GraphSimConfig::default())
        .await
        .expect("simulator starts");
    let (provider, agent) = provider(&sim);
    let snapshot = sim.snapshot();
    let policy = snapshot
        .provisioning_policies
        .iter()
        .find(|p| p.display_name == "Clinicians Enterprise")
        .expect("enterprise policy");
    let target = format!("policy:{}", policy.id);
    let pc = snapshot
        .cloud_pcs
        .iter()
        .find(|pc| pc.provisioning_policy_id == policy.id && pc.status == "provisioned")
        .expect("a provisioned Enterprise Cloud PC")
        .id
        .clone();

    // No agent yet: Intune delivers 1.0 through the group.
    provider
        .publish(&target, &container("1.0"))
        .await
        .expect("publish 1.0");
    let first = provider
        .place(&place(&target, "1.0", &pc))
        .await
        .expect("place 1.0");
    assert!(
        matches!(
            first.machines[0].result,
            MachineResult::Applied | MachineResult::Accepted
        ),
        "{:?}",
        first.machines[0].result
    );
    assert_eq!(members(&sim, "vdigw-epic-1.0"), 1);
    assert_eq!(agent.desired("w365-first", &pc, "epic"), None);

    // The agent checks in; 2.0 goes to it, and the Cloud PC leaves the 1.0 group.
    agent.check_in(
        "w365-first",
        &pc,
        BTreeMap::new(),
        Some(Vec::new()),
        Utc::now(),
    );
    provider
        .publish(&target, &container("2.0"))
        .await
        .expect("publish 2.0");
    let second = provider
        .place(&place(&target, "2.0", &pc))
        .await
        .expect("place 2.0");
    assert_eq!(second.machines[0].result, MachineResult::Accepted);
    let desired = agent.desired("w365-first", &pc, "epic");
    assert_eq!(desired.map(|c| c.version), Some("2.0".to_owned()));
    assert_eq!(members(&sim, "vdigw-epic-1.0"), 0, "left the Intune group");
    assert_eq!(
        members(&sim, "vdigw-epic-2.0"),
        0,
        "2.0 goes through the agent"
    );

    agent.install_all();
    let observed = provider.observe(&target, "epic").await.expect("observe");
    let version = observed
        .iter()
        .find(|o| o.machine == pc)
        .and_then(|o| o.version.clone());
    assert_eq!(version.as_deref(), Some("2.0"));
    assert!(sim.counters().denied.is_empty());
}
