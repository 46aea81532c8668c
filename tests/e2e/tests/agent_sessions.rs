//! End to end: a `when_idle` rollout to Windows 365 Business Cloud PCs and agent-only laptops
//! on the Graph simulator, with agents that report their machines' user sessions. A machine
//! with an active user, or whose agent reports no sessions, is deferred; it gets the version
//! once its agent reports it idle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker_sim::agent::{AgentFleet, AgentFleetConfig, ReportedSession};
use broker_sim::graph::{GraphSim, GraphSimConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use vdi_gateway::config::ProviderConfig;
use vdi_gateway::server;

mod support;
use support::Api;

const W365_AGENT_TOKEN: &str = "w365-test-agent-token";
const PHYSICAL_AGENT_TOKEN: &str = "physical-test-agent-token";

fn body() -> Value {
    json!({
        "container": {"id": "epic", "version": "1.0",
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": "1.0"}},
        "targets": [
            {"provider": "w365-test", "target": "Front Desk Business"},
            {"provider": "physical-test", "target": "agent-laptops"}
        ],
        "activation": "when_idle",
    })
}

fn providers(sim: &GraphSim) -> Vec<ProviderConfig> {
    let sim_config = sim.config();
    let graph = json!({
        "tenant_id": sim_config.tenant_id,
        "client_id": sim_config.client_id,
        "client_secret": sim_config.client_secret,
        "token_url": sim.token_url(),
        "graph_base_url": sim.graph_base_url(),
        "allow_plain_http_loopback": true,
        "requests_per_second": 100.0,
    });
    vec![
        ProviderConfig {
            name: "w365-test".into(),
            kind: "windows365".into(),
            environment: "test".into(),
            enabled: true,
            agent_token: Some(SecretString::from(W365_AGENT_TOKEN)),
            settings: json!({"graph": graph}),
        },
        ProviderConfig {
            name: "physical-test".into(),
            kind: "physical".into(),
            environment: "test".into(),
            enabled: true,
            agent_token: Some(SecretString::from(PHYSICAL_AGENT_TOKEN)),
            settings: json!({
                "graph": graph,
                "device_groups": [{"id": "agent-laptops", "name_prefix": "HOSP-AG-"}],
            }),
        },
    ]
}

/// Returns the placements of the assignment by machine id: (state, detail).
async fn placements(api: &Api) -> BTreeMap<String, (String, String)> {
    let body = api.get("/v1/assignments/epic/machines?limit=100").await;
    body["machines"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let machine = m["machine"].as_str().unwrap_or_default().to_owned();
            let state = m["state"].as_str().unwrap_or_default().to_owned();
            let detail = m["detail"].as_str().unwrap_or_default().to_owned();
            (machine, (state, detail))
        })
        .collect()
}

/// Waits up to 60 seconds until `done` holds for the placements, and returns them.
async fn wait_for_placements(
    api: &Api,
    goal: &str,
    done: impl Fn(&BTreeMap<String, (String, String)>) -> bool,
) -> BTreeMap<String, (String, String)> {
    let start = Instant::now();
    loop {
        let current = placements(api).await;
        if done(&current) {
            return current;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {goal}: {current:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn installed(fleet: &AgentFleet, machine: &str) -> bool {
    fleet.installed()[machine]
        .iter()
        .any(|(id, version)| id == "epic" && version == "1.0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_idle_waits_for_agent_sessions() {
    let sim = GraphSim::start(GraphSimConfig::default()).await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut config = support::gateway_config_without_providers(&format!(
        "sqlite://{}",
        directory.path().join("gw.db").display()
    ));
    config.providers = providers(&sim);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());

    let snapshot = sim.snapshot();
    let business: Vec<String> = snapshot
        .cloud_pcs
        .iter()
        .filter(|pc| pc.service_plan_type == "business")
        .map(|pc| pc.id.clone())
        .collect();
    assert_eq!(
        business.len(),
        3,
        "the small fleet has three Business Cloud PCs"
    );
    let (busy, away, idle) = (&business[0], &business[1], &business[2]);
    let w365_agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: W365_AGENT_TOKEN.into(),
        machines: business.clone(),
        poll_interval: Duration::from_millis(200),
        sessions: BTreeMap::from([
            (
                busy.clone(),
                vec![ReportedSession::active("HOSP\\frontdesk1")],
            ),
            (
                away.clone(),
                vec![ReportedSession::disconnected("HOSP\\frontdesk2")],
            ),
        ]),
        ..AgentFleetConfig::default()
    });
    let laptops = snapshot.agent_only_laptops.clone();
    let old_agent = laptops[0].clone();
    let laptop_agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: PHYSICAL_AGENT_TOKEN.into(),
        machines: laptops.clone(),
        poll_interval: Duration::from_millis(200),
        unreported_sessions: vec![old_agent.clone()],
        ..AgentFleetConfig::default()
    });
    // The physical provider lists agent-only laptops from their check-ins.
    let start = Instant::now();
    while laptop_agents.counters().reports < laptops.len() as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "laptop agents did not report"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, document) = api.put("/v1/assignments/epic", &body()).await;
    assert_eq!(status, 202, "{document}");

    let expected = business.len() + laptops.len();
    let first = wait_for_placements(&api, "the idle machines to apply", |p| {
        p.len() == expected && p.values().filter(|(state, _)| state == "applied").count() == 5
    })
    .await;
    let (state, detail) = &first[busy];
    assert_eq!(state, "deferred", "{detail}");
    assert!(detail.contains("active session"), "{detail}");
    let (state, detail) = &first[&old_agent];
    assert_eq!(state, "deferred", "{detail}");
    assert!(detail.contains("reports no sessions"), "{detail}");
    for machine in [away, idle] {
        assert!(installed(&w365_agents, machine), "{machine} installed");
    }
    assert!(
        !installed(&w365_agents, busy),
        "the busy Cloud PC kept its version"
    );
    assert!(!installed(&laptop_agents, &old_agent));
    let status = api.get("/v1/assignments/epic").await;
    assert_ne!(
        status["state"], "converged",
        "deferred machines hold the wave"
    );

    assert!(w365_agents.set_sessions(busy, Some(Vec::new())));
    assert!(laptop_agents.set_sessions(&old_agent, Some(Vec::new())));
    wait_for_placements(&api, "every machine to apply", |p| {
        p.values().all(|(state, _)| state == "applied")
    })
    .await;
    assert!(installed(&w365_agents, busy));
    assert!(installed(&laptop_agents, &old_agent));
    let start = Instant::now();
    loop {
        let status = api.get("/v1/assignments/epic").await;
        if status["state"] == "converged" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sim.counters().denied.is_empty());

    w365_agents.stop().await;
    laptop_agents.stop().await;
    gateway.stop().await;
}
