//! Control endpoints under `/_sim/` and the `broker-sim graph` command line.

mod graph_support;

use broker_sim::graph::GraphFleet;
use graph_support::{start, Client};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn control_endpoints_work() {
    let sim = start(GraphFleet::Small).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let knobs = json!({"empty_pages": true, "latency_ms": 1});
    let response = http
        .put(format!("{base}/_sim/knobs"))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(sim.knobs().empty_pages);

    let state: Value = http
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["cloud_pcs"].as_array().unwrap().len(), 9);
    assert_eq!(state["agent_only_laptops"].as_array().unwrap().len(), 4);

    let client = Client::connect(&sim).await;
    let response = http
        .post(format!("{base}/_sim/tokens/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = client.get("v1.0/groups").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let counters: Value = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["tokens_issued"], 1);
    http.post(format!("{base}/_sim/counters/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.counters().total, 0);
}

#[test]
fn binary_prints_listening_line() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args([
            "graph",
            "--fleet",
            "sized",
            "--cloud-pcs",
            "5",
            "--laptops",
            "5",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.starts_with("graph simulator listening on http://127.0.0.1:"),
        "{line}"
    );
    let expected = "(tenant 11111111-2222-3333-4444-555555555555, client id gateway-app)";
    assert!(line.trim_end().ends_with(expected), "{line}");
}

#[test]
fn binary_rejects_public_bind() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args(["graph", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
}
