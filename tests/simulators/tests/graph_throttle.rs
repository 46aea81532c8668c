//! Throttling: the knob rate limit with and without `Retry-After`, the per-app Intune
//! limits, and injected 503s.

mod graph_support;

use std::time::Duration;

use broker_sim::graph::{GraphFleet, GraphSimConfig, IntuneLimits, Knobs};
use graph_support::{start, start_with, win32_app, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Sends GETs until one gets 429, at most `limit` times, and returns that response.
async fn first_429(client: &Client, path: &str, limit: usize) -> Option<reqwest::Response> {
    for _ in 0..limit {
        let response = client.send(Method::GET, path, None).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Some(response);
        }
    }
    None
}

#[tokio::test]
async fn rate_limit_with_retry_after() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    sim.set_knobs(Knobs {
        rate_limit_per_second: Some(2.0),
        retry_after_header: true,
        ..Knobs::default()
    });
    let response = first_429(&client, "v1.0/groups", 10).await.expect("a 429");
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
}

#[tokio::test]
async fn rate_limit_without_retry_after() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    sim.set_knobs(Knobs {
        rate_limit_per_second: Some(2.0),
        retry_after_header: false,
        ..Knobs::default()
    });
    let response = first_429(&client, "v1.0/groups", 10).await.expect("a 429");
    assert!(!response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn intune_app_write_limit() {
    let sim = start_with(GraphSimConfig {
        intune_limits: IntuneLimits {
            app_writes: 3,
            window: Duration::from_secs(20),
            ..IntuneLimits::default()
        },
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let path = "v1.0/deviceAppManagement/mobileApps";
    for n in 0..3 {
        let (status, _) = client
            .call(Method::POST, path, Some(win32_app(&format!("app {n}"))))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let response = client
        .send(Method::POST, path, Some(win32_app("one too many")))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&seconds), "{seconds}");
    assert_eq!(sim.snapshot().mobile_apps.len(), 3);

    let (status, _) = client.get(path).await;
    assert_eq!(status, StatusCode::OK, "reads have their own limit");
    let (status, _) = client.get("v1.0/groups").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "directory calls are not Intune calls"
    );
}

#[tokio::test]
async fn intune_device_request_limit_in_batch() {
    let sim = start_with(GraphSimConfig {
        intune_limits: IntuneLimits {
            device_requests: 2,
            ..IntuneLimits::default()
        },
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let requests: Vec<Value> = (1..=3)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/deviceManagement/managedDevices"}))
        .collect();
    let (status, body) = client
        .call(
            Method::POST,
            "v1.0/$batch",
            Some(json!({"requests": requests})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<u64> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 200, 429]);
}

#[tokio::test]
async fn error_rate_gives_503() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    sim.set_knobs(Knobs {
        error_rate: 1.0,
        ..Knobs::default()
    });
    let (status, body) = client.get("v1.0/groups").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "serviceNotAvailable");
    let token = reqwest::Client::new()
        .post(sim.token_url())
        .form(&[
            ("client_id", "gateway-app"),
            ("client_secret", "sim-graph-secret"),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        StatusCode::OK,
        "token requests get no faults"
    );
}
