//! End to end: the gateway delivers to Horizon through application pools (RDS farm) and the
//! agent channel (VDI pool), with an agent fleet polling the gateway like real agents.

use std::time::{Duration, Instant};

use broker_sim::agent::{AgentFleet, AgentFleetConfig};
use broker_sim::horizon::{HorizonSim, HorizonSimConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use vdi_gateway::config::ProviderConfig;
use vdi_gateway::server;

mod support;
use support::Api;

const AGENT_TOKEN: &str = "horizon-test-agent-token";

fn body(version: &str) -> Value {
    json!({
        "container": {"id": "epic", "version": version, "display_name": "Epic",
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": version}},
        "targets": [
            {"provider": "horizon-test", "target": "EHR-IC"},
            {"provider": "horizon-test", "target": "EHR-RDS-Farm"}
        ],
        "activation": "immediate",
    })
}

async fn wait_for(api: &Api, goal: &str) -> Value {
    let start = Instant::now();
    loop {
        let status = api.get("/v1/assignments/epic").await;
        if status["state"] == goal {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not reach {goal}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn installed(agents: &AgentFleet, version: &str) -> usize {
    agents
        .installed()
        .values()
        .filter(|containers| {
            containers
                .iter()
                .any(|(id, v)| id == "epic" && v == version)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn horizon_pool_and_farm_converge() {
    let sim = HorizonSim::start(HorizonSimConfig::default())
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut config = support::gateway_config_without_providers(&format!(
        "sqlite://{}",
        directory.path().join("gw.db").display()
    ));
    let sim_config = sim.config();
    config.providers.push(ProviderConfig {
        name: "horizon-test".into(),
        kind: "horizon".into(),
        environment: "test".into(),
        enabled: true,
        agent_token: Some(SecretString::from(AGENT_TOKEN)),
        settings: json!({
            "api_base_url": sim.api_base_url(),
            "username": sim_config.username,
            "password": sim_config.password,
            "domain": sim_config.domain,
            "allow_plain_http_loopback": true,
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());
    let snapshot = sim.snapshot();
    let machines: Vec<String> = snapshot
        .machines
        .iter()
        .map(|m| m.id.clone())
        .chain(snapshot.rds_servers.iter().map(|r| r.id.clone()))
        .collect();
    let agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: AGENT_TOKEN.into(),
        machines,
        poll_interval: Duration::from_millis(200),
        ..AgentFleetConfig::default()
    });

    let (status, document) = api.put("/v1/assignments/epic", &body("1.0")).await;
    assert_eq!(status, 202, "{document}");
    let converged = wait_for(&api, "converged").await;
    let applied = converged["progress"]["applied"].as_u64().unwrap();
    let excluded = converged["progress"]["excluded"].as_u64().unwrap();
    assert_eq!(
        applied + excluded,
        converged["progress"]["total"].as_u64().unwrap()
    );
    assert_eq!(
        excluded, 2,
        "the maintenance and unreachable VDI machines: {converged:#}"
    );
    assert_eq!(
        installed(&agents, "1.0") as u64,
        applied,
        "agents installed what the gateway reports"
    );
    let pools = sim.snapshot().application_pools;
    assert!(
        pools.iter().any(|p| p.name.starts_with("vdigw")),
        "the farm got an application pool: {pools:?}"
    );

    api.put("/v1/assignments/epic", &body("2.0")).await;
    wait_for(&api, "converged").await;
    let (status, _) = api.post("/v1/assignments/epic/rollback", &json!({})).await;
    assert_eq!(status, 202);
    wait_for(&api, "rolled_back").await;
    assert_eq!(installed(&agents, "1.0") as u64, applied);
    assert_eq!(installed(&agents, "2.0"), 0);

    let (status, _) = api.delete("/v1/assignments/epic").await;
    assert_eq!(status, 202);
    wait_for(&api, "removed").await;
    let start = Instant::now();
    while installed(&agents, "1.0") > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "agents kept the container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !sim.snapshot()
            .application_pools
            .iter()
            .any(|p| p.name.starts_with("vdigw")),
        "the gateway's application pools were deleted"
    );
    assert!(
        sim.counters().denied.is_empty(),
        "{:?}",
        sim.counters().denied
    );
    agents.stop().await;
    gateway.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_install_failures_count_as_failed() {
    let sim = HorizonSim::start(HorizonSimConfig::default())
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut config = support::gateway_config_without_providers(&format!(
        "sqlite://{}",
        directory.path().join("gw.db").display()
    ));
    let sim_config = sim.config();
    config.providers.push(ProviderConfig {
        name: "horizon-test".into(),
        kind: "horizon".into(),
        environment: "test".into(),
        enabled: true,
        agent_token: Some(SecretString::from(AGENT_TOKEN)),
        settings: json!({
            "api_base_url": sim.api_base_url(),
            "username": sim_config.username,
            "password": sim_config.password,
            "domain": sim_config.domain,
            "allow_plain_http_loopback": true,
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());
    let machines: Vec<String> = sim
        .snapshot()
        .machines
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let failing: Vec<String> = machines.iter().take(3).cloned().collect();
    let agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: AGENT_TOKEN.into(),
        machines,
        fail_machines: failing.clone(),
        poll_interval: Duration::from_millis(200),
        ..AgentFleetConfig::default()
    });

    let mut assignment = body("1.0");
    assignment["targets"] = json!([{"provider": "horizon-test", "target": "EHR-IC"}]);
    let (status, document) = api.put("/v1/assignments/epic", &assignment).await;
    assert_eq!(status, 202, "{document}");

    // The budget of 0% failures stops the rollout once an agent reports a failed install.
    let start = Instant::now();
    let stopped = loop {
        let status = api.get("/v1/assignments/epic").await;
        if status["progress"]["failed"].as_u64().unwrap_or(0) > 0
            && status["state"] != "rolling_out"
        {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "failed installs were not counted: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(stopped["state"], "converged", "{stopped:#}");
    let listed = api.get("/v1/assignments/epic/machines").await;
    let failed: Vec<&Value> = listed["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "{listed:#}");
    for machine in failed {
        assert!(
            failing.iter().any(|f| machine["machine"] == *f),
            "only agents that fail report failures: {machine}"
        );
        let detail = machine["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("the machine reported"), "{detail}");
    }
    agents.stop().await;
    gateway.stop().await;
    sim.shutdown().await;
}
