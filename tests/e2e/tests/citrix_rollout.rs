//! End to end: a control plane drives the gateway's HTTP API, and the gateway changes the
//! Citrix simulator: publish, roll out, update, roll back, remove.

use std::time::{Duration, Instant};

use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Fleet};
use serde_json::{json, Value};
use vdi_gateway::server;

mod support;
use support::{gateway_config, Api};

fn body(version: &str, activation: &str) -> Value {
    json!({
        "container": {
            "id": "epic-hyperspace", "version": version, "display_name": "Epic Hyperspace",
            "launch": {"executable": "C:\\Player\\player.exe", "arguments": format!("/launch epic/{version}")}
        },
        "targets": [
            {"provider": "citrix-test", "target": "EHR Clinicians"},
            {"provider": "citrix-test", "target": "Lab Systems"}
        ],
        "activation": activation,
        "rollout": {"waves": [30, 100]}
    })
}

async fn wait_for(api: &Api, id: &str, goal: &str) -> Value {
    let start = Instant::now();
    loop {
        let status = api.get(&format!("/v1/assignments/{id}")).await;
        if status["state"] == goal {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "assignment {id} did not reach {goal}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gateway_tags(sim: &CitrixSim) -> Vec<(String, Vec<String>)> {
    sim.snapshot()
        .machines
        .into_iter()
        .map(|m| {
            let tags = m
                .tags
                .into_iter()
                .filter(|t| t.starts_with("vdigw"))
                .collect();
            (m.id, tags)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_update_rollback_remove() {
    let sim = CitrixSim::start(CitrixSimConfig {
        fleet: Fleet::Small,
        ..CitrixSimConfig::default()
    })
    .await
    .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let config = gateway_config(
        &sim,
        &format!("sqlite://{}", directory.path().join("gw.db").display()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());

    let (status, document) = api
        .put("/v1/assignments/ehr", &body("1.0", "immediate"))
        .await;
    assert_eq!(status, 202, "{document}");
    let converged = wait_for(&api, "ehr", "converged").await;
    assert_eq!(converged["progress"]["applied"], 10, "{converged:#}");
    assert_eq!(converged["progress"]["excluded"], 4, "{converged:#}");

    let snapshot = sim.snapshot();
    let excluded: Vec<_> = snapshot
        .machines
        .iter()
        .filter(|m| {
            m.in_maintenance_mode
                || m.draining_until_shutdown
                || m.will_shutdown_after_use
                || m.registration != "Registered"
        })
        .collect();
    assert_eq!(excluded.len(), 4);
    for machine in &excluded {
        assert!(
            !machine.tags.iter().any(|t| t.starts_with("vdigw")),
            "excluded machine {} was tagged",
            machine.name
        );
    }
    let groups = snapshot
        .application_groups
        .iter()
        .filter(|g| g.restrict_to_tag.is_some())
        .count();
    assert_eq!(
        groups, 2,
        "one application group per version and delivery group"
    );

    let (status, _) = api
        .put("/v1/assignments/ehr", &body("2.0", "immediate"))
        .await;
    assert_eq!(status, 202);
    wait_for(&api, "ehr", "converged").await;
    for (machine, tags) in gateway_tags(&sim) {
        assert!(
            tags.len() <= 1,
            "machine {machine} has several versions: {tags:?}"
        );
    }

    let (status, _) = api.post("/v1/assignments/ehr/rollback", &json!({})).await;
    assert_eq!(status, 202);
    let rolled = wait_for(&api, "ehr", "rolled_back").await;
    assert_eq!(rolled["container"]["version"], "1.0");
    let versions: Vec<String> = gateway_tags(&sim)
        .into_iter()
        .flat_map(|(_, t)| t)
        .collect();
    assert_eq!(versions.len(), 10);
    assert!(versions.iter().all(|t| t.ends_with("@1.0")), "{versions:?}");

    let audit = api.get("/v1/audit?assignment=ehr").await;
    let records = audit["records"].as_array().unwrap();
    assert!(
        records.len() >= 30,
        "every tag write is audited: {}",
        records.len()
    );
    assert!(records
        .iter()
        .all(|r| r["actor"] == "test-control-plane" || r["actor"] == "engine"));

    let (status, _) = api.delete("/v1/assignments/ehr").await;
    assert_eq!(status, 202);
    wait_for(&api, "ehr", "removed").await;
    let after = sim.snapshot();
    assert!(
        gateway_tags(&sim).iter().all(|(_, t)| t.is_empty()),
        "tags left after removal"
    );
    assert!(
        after.application_groups.iter().all(|g| g
            .restrict_to_tag
            .as_deref()
            .is_none_or(|t| !t.starts_with("vdigw"))),
        "gateway application groups left after removal"
    );
    assert!(
        after.applications.iter().any(|a| a.name == "EHR Client"),
        "an application the gateway does not own was removed"
    );
    assert!(
        sim.counters().denied.is_empty(),
        "denied calls: {:?}",
        sim.counters().denied
    );

    gateway.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_idle_defers_until_logoff() {
    let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let config = gateway_config(
        &sim,
        &format!("sqlite://{}", directory.path().join("gw.db").display()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());

    api.put("/v1/assignments/ehr", &body("1.0", "when_idle"))
        .await;
    // Two machines have an active session; one of them falls in the first wave (30%) and
    // holds it while its user works.
    let start = Instant::now();
    loop {
        let status = api.get("/v1/assignments/ehr").await;
        if status["progress"]["deferred"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no machine was deferred: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let held = api.get("/v1/assignments/ehr").await;
    assert_eq!(
        held["state"], "rolling_out",
        "the deferred machine holds the wave: {held:#}"
    );
    assert_eq!(held["current_wave"], 0, "{held:#}");
    let with_sessions: Vec<String> = sim
        .snapshot()
        .machines
        .iter()
        .filter(|m| m.sessions.iter().any(|s| s.state != "Disconnected"))
        .map(|m| m.id.clone())
        .collect();
    sim.end_sessions(&with_sessions);
    let converged = wait_for(&api, "ehr", "converged").await;
    assert_eq!(converged["progress"]["applied"], 10);
    assert_eq!(converged["progress"]["deferred"], 0);
    gateway.stop().await;
    sim.shutdown().await;
}
