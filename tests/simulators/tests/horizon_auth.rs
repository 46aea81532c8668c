//! Horizon login, bearer tokens, refresh, logout and token expiry.

mod horizon_support;

use std::time::Duration;

use broker_sim::horizon::{HorizonFleet, HorizonSimConfig};
use horizon_support::{login, start, start_with, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn login_returns_both_tokens() {
    let sim = start(HorizonFleet::Small).await;
    let (status, body) = login(&reqwest::Client::new(), &sim, "sim-password").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert!(body["refresh_token"].as_str().unwrap().len() > 20);
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(sim.counters().tokens_issued, 1);
    assert_eq!(sim.counters().route("POST /rest/login"), 1);
}

#[tokio::test]
async fn login_rejects_bad_credentials() {
    let sim = start(HorizonFleet::Small).await;
    let http = reqwest::Client::new();
    let (status, body) = login(&http, &sim, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error_message"].is_string(), "{body}");

    let url = format!("{}login", sim.api_base_url());
    let cases = [
        json!({"username": "svc-gateway", "password": "sim-password"}),
        json!({"username": "svc-gateway@hosp.example.org", "password": "sim-password",
               "domain": "HOSP"}),
    ];
    for body in cases {
        let response = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let response = http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.counters().tokens_issued, 0);
}

#[tokio::test]
async fn login_ignores_case_of_user_and_domain() {
    let sim = start(HorizonFleet::Small).await;
    let response = reqwest::Client::new()
        .post(format!("{}login", sim.api_base_url()))
        .json(&json!({"username": "SVC-Gateway", "password": "sim-password", "domain": "hosp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_requires_bearer_token() {
    let sim = start(HorizonFleet::Small).await;
    let http = reqwest::Client::new();
    let url = format!("{}inventory/v1/machines", sim.api_base_url());
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error_message"].is_string());
    let unknown = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.counters().by_status.get(&401), Some(&2));
}

#[tokio::test]
async fn expired_access_token_refreshes() {
    let sim = start(HorizonFleet::Small).await;
    let mut client = Client::login(&sim).await;
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::OK);

    sim.expire_tokens();
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = client
        .http
        .post(format!("{}refresh", client.api))
        .json(&json!({"refresh_token": client.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none(),
        "refresh tokens are not rotated"
    );
    client.access = body["access_token"].as_str().unwrap().to_string();
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.counters().tokens_issued, 2);
}

#[tokio::test]
async fn expired_refresh_token_needs_login() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    sim.expire_refresh_tokens();
    let response = client
        .http
        .post(format!("{}refresh", client.api))
        .json(&json!({"refresh_token": client.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let again = Client::login(&sim).await;
    let (status, _) = again.get("inventory/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn access_token_lifetime_applies() {
    let sim = start_with(HorizonSimConfig {
        access_token_lifetime: Duration::from_millis(150),
        ..HorizonSimConfig::default()
    })
    .await;
    let client = Client::login(&sim).await;
    let (status, _) = client.get("inventory/v1/farms").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _) = client.get("inventory/v1/farms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_both_tokens() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let body = json!({"refresh_token": client.refresh});
    let response = client
        .http
        .post(format!("{}logout", client.api))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refresh = client
        .http
        .post(format!("{}refresh", client.api))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), StatusCode::BAD_REQUEST);
    let (status, _) = client.call(Method::POST, "logout", Some(body)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a second logout has no session"
    );
}
