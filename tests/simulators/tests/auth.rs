//! Token endpoints, required headers and token expiry.

mod support;

use std::time::Duration;

use broker_sim::citrix::{CitrixSim, CitrixSimConfig};
use reqwest::StatusCode;
use serde_json::Value;
use support::{cloud_token, start, Client};

#[tokio::test]
async fn cloud_token_expires_in_is_string() {
    let sim = start(Default::default()).await;
    let http = reqwest::Client::new();
    let response = http
        .post(sim.cloud_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway-client"),
            ("client_secret", "sim-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], "3600");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(sim.counters().tokens_issued, 1);
}

#[tokio::test]
async fn cloud_token_bad_secret_401() {
    let sim = start(Default::default()).await;
    let response = reqwest::Client::new()
        .post(sim.cloud_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway-client"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    assert_eq!(sim.counters().tokens_issued, 0);
    assert_eq!(sim.counters().total, 1);
}

#[tokio::test]
async fn onprem_token_both_paths() {
    let sim = start(Default::default()).await;
    let http = reqwest::Client::new();
    let urls = [
        sim.onprem_token_url(),
        format!("{}/citrix/orchestration/api/tokens", sim.base_url()),
    ];
    for url in urls {
        let response = http
            .post(&url)
            .basic_auth("HOSP\\svc-gateway", Some("sim-password"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["CustomerId"], "CitrixOnPremises");
        assert!(body["ExpiresAt"].as_str().unwrap().contains('T'));
        let token = body["Token"].as_str().unwrap();

        let me = http
            .get(format!("{}me", sim.api_base_url()))
            .header("Authorization", format!("CWSAuth bearer={token}"))
            .header("Citrix-CustomerId", "CitrixOnPremises")
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["Customers"][0]["Id"], "CitrixOnPremises");
    }
    let wrong = http
        .post(sim.onprem_token_url())
        .basic_auth("HOSP\\svc-gateway", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn me_returns_site_and_sites_detail() {
    let sim = start(Default::default()).await;
    let client = Client::cloud(&sim).await;
    assert_eq!(client.site, sim.site_id());
    let (status, site) = client.get(&format!("Sites/{}", client.site)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(site["ProductVersion"].is_string());
    assert!(site["OrchestationApiVersion"].is_string());
}

#[tokio::test]
async fn missing_headers_rejected() {
    let sim = start(Default::default()).await;
    let client = Client::cloud(&sim).await;
    let url = format!("{}DeliveryGroups", sim.api_base_url());
    let auth = format!("CwsAuth Bearer={}", client.token);
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, StatusCode);
    let cases: [Case; 6] = [
        (
            "no auth",
            vec![("Citrix-CustomerId", client.customer.clone())],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "plain bearer",
            vec![
                ("Authorization", format!("Bearer {}", client.token)),
                ("Citrix-CustomerId", client.customer.clone()),
                ("Citrix-InstanceId", client.site.clone()),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no instance id",
            vec![
                ("Authorization", auth.clone()),
                ("Citrix-CustomerId", client.customer.clone()),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            "no customer id",
            vec![
                ("Authorization", auth.clone()),
                ("Citrix-InstanceId", client.site.clone()),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong customer",
            vec![
                ("Authorization", auth.clone()),
                ("Citrix-CustomerId", "other".to_string()),
                ("Citrix-InstanceId", client.site.clone()),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "html only",
            vec![
                ("Authorization", auth.clone()),
                ("Citrix-CustomerId", client.customer.clone()),
                ("Citrix-InstanceId", client.site.clone()),
                ("Accept", "text/html".to_string()),
            ],
            StatusCode::NOT_ACCEPTABLE,
        ),
    ];
    for (name, headers, expected) in cases {
        let mut request = client.http.get(&url);
        for (key, value) in headers {
            request = request.header(key, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{name}");
        assert!(
            response.headers().contains_key("citrix-transactionid"),
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["Type"]
                .as_str()
                .unwrap()
                .starts_with("https://errors-api.cloud.com/cvad/"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn token_expiry_gives_401() {
    let sim = CitrixSim::start(CitrixSimConfig {
        token_lifetime: Duration::from_millis(300),
        ..CitrixSimConfig::default()
    })
    .await
    .unwrap();
    let client = Client::cloud(&sim).await;
    let (status, _) = client.get("DeliveryGroups").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = client.get("DeliveryGroups").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["Detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn expire_tokens_forces_401() {
    let sim = start(Default::default()).await;
    let mut client = Client::cloud(&sim).await;
    sim.expire_tokens();
    let (status, _) = client.get("Machines").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    client.token = cloud_token(&client.http, &sim).await;
    let (status, _) = client.get("Machines").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn transaction_id_echoed_or_generated() {
    let sim = start(Default::default()).await;
    let client = Client::cloud(&sim).await;
    let echoed = client
        .request(reqwest::Method::GET, "DeliveryGroups")
        .header("Citrix-TransactionId", "txn-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["citrix-transactionid"], "txn-123");
    let generated = client
        .send(reqwest::Method::GET, "DeliveryGroups", None)
        .await;
    let value = generated.headers()["citrix-transactionid"]
        .to_str()
        .unwrap();
    assert_eq!(value.len(), 36);
}

#[tokio::test]
async fn routing_is_case_insensitive() {
    let sim = start(Default::default()).await;
    let client = Client::cloud(&sim).await;
    for path in ["deliverygroups", "DELIVERYGROUPS", "DeliveryGroups", "Me"] {
        let (status, _) = client.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, body) = client.get("NoSuchThing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["Type"].is_string());
}
