//! Fault knobs, latency, the `/_sim/` control endpoints, concurrency and the binary.

mod support;

use std::time::{Duration, Instant};

use broker_sim::citrix::{Counters, Fleet, Knobs, Snapshot};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{start, Client};

#[tokio::test]
async fn rate_limit_with_retry_after() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    for with_header in [true, false] {
        sim.set_knobs(Knobs {
            rate_limit_per_second: Some(2.0),
            retry_after_header: with_header,
            ..Knobs::default()
        });
        let mut limited = None;
        for _ in 0..10 {
            let response = client.send(Method::GET, "DeliveryGroups", None).await;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(response);
                break;
            }
        }
        let response = limited.expect("a 429 within 10 requests");
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(retry_after.is_some(), with_header);
        if let Some(seconds) = retry_after {
            assert!(seconds.parse::<u64>().unwrap() >= 1);
        }
        let body: Value = response.json().await.unwrap();
        assert!(body["Type"].as_str().unwrap().ends_with("TooManyRequests"));
    }
    assert!(sim.counters().by_status.get(&429).copied().unwrap_or(0) >= 2);
}

#[tokio::test]
async fn frozen_site_me_530() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    sim.set_knobs(Knobs {
        frozen: true,
        ..Knobs::default()
    });
    let (status, _) = client.get("me").await;
    assert_eq!(status.as_u16(), 530);
    let (status, _) = client.get("DeliveryGroups").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn html_and_empty_502() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let cases = [
        (
            Knobs {
                html_502_rate: 1.0,
                ..Knobs::default()
            },
            true,
        ),
        (
            Knobs {
                empty_502_rate: 1.0,
                ..Knobs::default()
            },
            false,
        ),
    ];
    for (knobs, html) in cases {
        sim.set_knobs(knobs);
        let response = client.send(Method::GET, "Machines", None).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(!response.headers().contains_key("citrix-transactionid"));
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.text().await.unwrap();
        if html {
            assert_eq!(content_type.as_deref(), Some("text/html"));
            assert!(body.contains("502 Bad Gateway"));
        } else {
            assert!(body.is_empty());
        }
    }
}

#[tokio::test]
async fn error_rate_503_and_truncation() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    sim.set_knobs(Knobs {
        error_rate: 1.0,
        ..Knobs::default()
    });
    let (status, body) = client.get("Machines").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["Detail"].is_string());

    sim.set_knobs(Knobs {
        truncate_rate: 1.0,
        ..Knobs::default()
    });
    let response = client.send(Method::GET, "Machines", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.starts_with('{'));
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn latency_applies_to_api_only() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    sim.set_knobs(Knobs {
        latency: Duration::from_millis(150),
        ..Knobs::default()
    });
    let started = Instant::now();
    client.get("DeliveryGroups").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    reqwest::get(format!("{}/_sim/counters", sim.base_url()))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn control_endpoints() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    client.get("Machines").await;
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:c"})))
        .await;

    let counters: Counters = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.route("GET /cvad/manage/machines"), 1);
    assert_eq!(counters.route("POST /cvad/manage/tags"), 1);
    assert_eq!(counters.route("POST /cctrustoauth2/{id}/tokens/clients"), 1);
    assert_eq!(counters.writes, 2);
    assert_eq!(counters.tokens_issued, 1);
    assert_eq!(counters.total, 4);

    let reset = http
        .post(format!("{base}/_sim/counters/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.counters().total, 0);

    let state: Snapshot = http
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state.machines.len(), 14);
    assert!(state.tags.iter().any(|t| t.name == "gw:c"));

    let knobs = http
        .put(format!("{base}/_sim/knobs"))
        .json(&json!({"frozen": true, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(knobs.status(), StatusCode::OK);
    assert!(sim.knobs().frozen);
    assert_eq!(sim.knobs().latency, Duration::from_millis(5));

    let ended: Value = http
        .post(format!("{base}/_sim/sessions/end"))
        .json(&json!({"machines": ["HOSP\\EHR-VDA-0001"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], 1);
    let ended: Value = http
        .post(format!("{base}/_sim/sessions/end"))
        .json(&json!({"machines": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], 2);
    assert_eq!(sim.counters().total, 0, "control calls are not counted");
}

#[tokio::test]
async fn concurrent_tagging_is_consistent() {
    let sim = start(Fleet::Hospital).await;
    let client = std::sync::Arc::new(Client::cloud(&sim).await);
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:bulk"})))
        .await;
    let mut tasks = Vec::new();
    for number in 1..=100 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("Machines/HOSP|EHR-VDA-{number:04}/Tags/gw:bulk");
            client.call(Method::POST, &path, None).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(sim.snapshot().machines_with_tag("gw:bulk").len(), 100);
    let (_, tag) = client.get("Tags/gw:bulk").await;
    assert_eq!(tag["NumMachines"], 100);
}

#[tokio::test]
async fn session_churn_changes_sessions() {
    let sim = start(Fleet::Hospital).await;
    let before: Vec<usize> = sim
        .snapshot()
        .machines
        .iter()
        .map(|m| m.sessions.len())
        .collect();
    sim.set_session_churn(200.0);
    tokio::time::sleep(Duration::from_millis(350)).await;
    sim.set_session_churn(0.0);
    let after: Vec<usize> = sim
        .snapshot()
        .machines
        .iter()
        .map(|m| m.sessions.len())
        .collect();
    assert_ne!(before, after);
}

#[tokio::test]
async fn unknown_values_injected() {
    let sim = start(Fleet::Small).await;
    let client = Client::cloud(&sim).await;
    sim.set_knobs(Knobs {
        unknown_values: true,
        ..Knobs::default()
    });
    let machines = client.get_all("Machines", 100).await;
    assert!(machines
        .iter()
        .any(|m| m["RegistrationState"] == "FutureRegistrationValue"));
    assert!(machines
        .iter()
        .all(|m| m.get("ZzUndocumentedField").is_some()));
}

#[tokio::test]
async fn shutdown_frees_port() {
    let sim = start(Fleet::Small).await;
    let addr = sim.addr();
    sim.shutdown().await;
    let result = reqwest::get(format!("http://{addr}/_sim/counters")).await;
    assert!(result.is_err());
}

#[test]
fn binary_rejects_non_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args(["citrix", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
}

#[test]
fn binary_prints_listening_line() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args([
            "citrix",
            "--fleet",
            "sized",
            "--machines",
            "20",
            "--groups",
            "2",
            "--seed",
            "3",
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
    let prefix = "citrix simulator listening on http://127.0.0.1:";
    assert!(line.starts_with(prefix), "{line}");
    assert!(
        line.trim_end()
            .ends_with("(customer acme-health, client id gateway-client)"),
        "{line}"
    );
}
