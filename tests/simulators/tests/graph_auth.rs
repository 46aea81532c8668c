//! Token endpoint, bearer checks, expiry and request id headers of the Graph simulator.

mod graph_support;

use broker_sim::graph::{GraphFleet, GraphSimConfig, GRAPH_DEFAULT_SCOPE};
use graph_support::{request_token, start, start_with, Client};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn token_flow_returns_bearer() {
    let sim = start(GraphFleet::Small).await;
    let http = reqwest::Client::new();
    let (status, body) = request_token(&http, &sim, "sim-graph-secret").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599, "expires_in is a number");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body.get("refresh_token").is_none());
    assert_eq!(sim.counters().tokens_issued, 1);

    let client = Client::connect(&sim).await;
    let (status, _) = client
        .get("v1.0/deviceManagement/virtualEndpoint/cloudPCs")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn token_bad_secret_is_aadsts_401() {
    let sim = start(GraphFleet::Small).await;
    let http = reqwest::Client::new();
    let (status, body) = request_token(&http, &sim, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS7000215"), "{description}");
    assert!(
        !description.contains("sim-graph-secret"),
        "no secret in errors"
    );
}

#[tokio::test]
async fn token_rejects_bad_form_fields() {
    let sim = start(GraphFleet::Small).await;
    let http = reqwest::Client::new();
    let cases = [
        (
            "scope",
            "https://graph.microsoft.com/User.Read",
            "invalid_scope",
        ),
        ("client_id", "someone-else", "unauthorized_client"),
        ("grant_type", "password", "unsupported_grant_type"),
    ];
    for (field, value, expected) in cases {
        let mut form = vec![
            ("client_id", "gateway-app"),
            ("client_secret", "sim-graph-secret"),
            ("grant_type", "client_credentials"),
            ("scope", GRAPH_DEFAULT_SCOPE),
        ];
        for pair in form.iter_mut().filter(|(name, _)| *name == field) {
            pair.1 = value;
        }
        let response = http.post(sim.token_url()).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{field}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], expected, "{field}");
    }
    let wrong_tenant = format!("{}/other-tenant/oauth2/v2.0/token", sim.base_url());
    let response = http
        .post(wrong_tenant)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_token_gets_invalid_authentication_token() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    sim.expire_tokens();
    let response = client
        .http
        .get(format!("{}v1.0/groups", sim.graph_base_url()))
        .bearer_auth(&client.token)
        .header("client-request-id", "c0ffee00-0000-0000-0000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let client_request_id = response.headers()["client-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(client_request_id, "c0ffee00-0000-0000-0000-000000000001");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        client_request_id.as_str()
    );
    assert!(body["error"]["innerError"]["date"].is_string());

    let fresh = Client::connect(&sim).await;
    let (status, _) = fresh.get("v1.0/groups").await;
    assert_eq!(status, StatusCode::OK, "a new token works");
}

#[tokio::test]
async fn token_expires_after_lifetime() {
    let sim = start_with(GraphSimConfig {
        token_lifetime: Duration::from_millis(150),
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let (status, _) = client.get("v1.0/groups").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = client.get("v1.0/groups").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn missing_bearer_is_401() {
    let sim = start(GraphFleet::Small).await;
    let response = reqwest::get(format!("{}v1.0/groups", sim.graph_base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn every_response_has_request_ids() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    for path in [
        "v1.0/groups",
        "v1.0/nothing-here",
        "beta/deviceManagement/managedDevices",
    ] {
        let response = client.send(reqwest::Method::GET, path, None).await;
        assert!(response.headers().contains_key("request-id"), "{path}");
        assert!(
            response.headers().contains_key("client-request-id"),
            "{path}"
        );
    }
}
