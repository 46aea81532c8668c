//! End to end: rollout safety against the Citrix simulator through the HTTP API: plans write
//! nothing, a wave that fails past its budget rolls back by itself, a maintenance window that
//! opens during the test starts the rollout, and the event stream resumes without gaps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Knobs};
use futures::StreamExt;
use serde_json::{json, Value};
use vdi_gateway::engine::ManualClock;
use vdi_gateway::server;

mod support;
use support::{gateway_config, Api, TOKEN};

fn body(version: &str) -> Value {
    json!({
        "container": {"id": "epic", "version": version,
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": version}},
        "targets": [{"provider": "citrix-test", "target": "EHR Clinicians"}],
        "activation": "immediate",
    })
}

async fn start(
    sim: &CitrixSim,
    clock: Option<Arc<ManualClock>>,
) -> (server::RunningGateway, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let config = gateway_config(
        sim,
        &format!("sqlite://{}", directory.path().join("gw.db").display()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = match clock {
        Some(clock) => server::start_on_with_clock(&config, listener, clock)
            .await
            .unwrap(),
        None => server::start_on(&config, listener).await.unwrap(),
    };
    (gateway, directory)
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
            "{id} did not reach {goal}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing() {
    let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();
    let (gateway, _dir) = start(&sim, None).await;
    let api = Api::new(&gateway.base_url());
    sim.reset_counters();

    let mut request = body("1.0");
    request["assignment_id"] = json!("ehr");
    request["rollout"] = json!({"waves": [50, 100], "pause_seconds": 60});
    let (status, plan) = api.post("/v1/plan", &request).await;
    assert_eq!(status, 200, "{plan:#}");
    let target = &plan["targets"][0];
    assert_eq!(target["total"], 10);
    assert_eq!(target["affected"].as_array().unwrap().len(), 6);
    assert_eq!(target["excluded"].as_array().unwrap().len(), 4);
    let operations: Vec<&str> = target["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "create_tag",
            "create_application_group",
            "create_application",
            "add_machine_tag"
        ]
    );
    assert!(
        plan["estimated_seconds"].as_f64().unwrap() >= 60.0,
        "the pause between waves counts"
    );

    let counters = sim.counters();
    let writes: Vec<&String> = counters
        .by_route
        .keys()
        .filter(|route| !route.starts_with("GET ") && !route.contains("/tokens/"))
        .collect();
    assert!(
        writes.is_empty(),
        "the plan wrote to the broker: {writes:?}"
    );
    let missing = api.get("/v1/assignments").await;
    assert_eq!(
        missing["assignments"].as_array().unwrap().len(),
        0,
        "a plan stores nothing"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wave_rolls_back_by_itself() {
    let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();
    let (gateway, _dir) = start(&sim, None).await;
    let api = Api::new(&gateway.base_url());

    api.put("/v1/assignments/ehr", &body("1.0")).await;
    wait_for(&api, "ehr", "converged").await;

    let ready: Vec<String> = sim
        .snapshot()
        .machines
        .iter()
        .map(|m| m.id.clone())
        .collect();
    sim.set_knobs(Knobs {
        fail_tag_machines: ready,
        ..Knobs::default()
    });
    let mut update = body("2.0");
    update["rollout"] =
        json!({"waves": [50, 100], "max_failure_percent": 10, "auto_rollback": true});
    let (status, _) = api.put("/v1/assignments/ehr", &update).await;
    assert_eq!(status, 202);
    let rolled = wait_for(&api, "ehr", "rolled_back").await;
    assert_eq!(rolled["container"]["version"], "1.0");
    assert!(
        rolled["detail"]
            .as_str()
            .unwrap()
            .contains("over the budget"),
        "the rollback says why: {rolled:#}"
    );
    let machines = api.get("/v1/assignments/ehr/machines?state=applied").await;
    assert_eq!(machines["machines"].as_array().unwrap().len(), 6);
    for machine in sim.snapshot().machines {
        assert!(
            !machine.tags.iter().any(|t| t.ends_with("@2.0")),
            "{} kept version 2.0",
            machine.name
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_opens_during_test() {
    let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();
    // Friday 2026-12-04 12:00 in Chicago; the window opens Saturday 01:00 local (07:00 UTC).
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let clock = Arc::new(ManualClock::new(at("2026-12-04T18:00:00Z")));
    let (gateway, _dir) = start(&sim, Some(clock.clone())).await;
    let api = Api::new(&gateway.base_url());
    sim.reset_counters();

    let mut request = body("1.0");
    request["window"] = json!({"timezone": "America/Chicago",
                               "allow": [{"days": ["sat"], "start": "01:00", "end": "05:00"}]});
    api.put("/v1/assignments/ehr", &request).await;
    let waiting = wait_for(&api, "ehr", "waiting_for_window").await;
    assert!(
        waiting["detail"]
            .as_str()
            .unwrap()
            .contains("2026-12-05T07:00:00"),
        "{waiting:#}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counters = sim.counters();
    assert_eq!(
        counters.writes, counters.tokens_issued,
        "only token requests before the window opens: {:?}",
        counters.by_route
    );

    clock.set(at("2026-12-05T07:30:00Z"));
    let converged = wait_for(&api, "ehr", "converged").await;
    assert_eq!(converged["progress"]["applied"], 6);
    gateway.stop().await;
}

/// Reads SSE events from a response until `count` arrived; returns their ids.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<i64> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} events arrived",
            ids.len()
        );
        let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await
        else {
            panic!("the event stream ended after {} events", ids.len());
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id:")) {
                ids.push(id.trim().parse().unwrap());
            }
        }
    }
    ids.truncate(count);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_without_gaps() {
    let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();
    let (gateway, _dir) = start(&sim, None).await;
    let api = Api::new(&gateway.base_url());
    api.put("/v1/assignments/ehr", &body("1.0")).await;
    wait_for(&api, "ehr", "converged").await;

    let http = reqwest::Client::new();
    let url = format!("{}/v1/events", gateway.base_url());
    let first = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let head = read_events(first, 5).await;

    // The client went away after five events; more happen while it is gone.
    api.put("/v1/assignments/ehr", &body("2.0")).await;
    wait_for(&api, "ehr", "converged").await;

    let last = head.last().copied().unwrap();
    let resumed = http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .unwrap();
    let tail = read_events(resumed, 10).await;
    let mut all = head.clone();
    all.extend(&tail);
    for pair in all.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "events {all:?} have a gap or a repeat"
        );
    }
    gateway.stop().await;
}
