//! Retries, `Retry-After`, timeouts and error classification against a mock broker.

mod common;

use std::time::{Duration, Instant};

use serde::Deserialize;
use vdi_contracts::ErrorKind;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Deserialize)]
struct Page {
    #[allow(dead_code)]
    items: Vec<u32>,
}

#[tokio::test]
async fn unavailable_then_ok_retries_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"items": []}"#))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let response = client.send(common::get("Machines")).await.unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(client.stats().retries, 1);
    assert_eq!(client.stats().attempts, 2);
}

#[tokio::test]
async fn throttled_with_retry_after_waits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let started = Instant::now();
    client.send(common::get("Machines")).await.unwrap();

    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().throttled, 1);
}

#[tokio::test]
async fn throttled_without_retry_after_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    client.send(common::get("Machines")).await.unwrap();

    assert_eq!(client.stats().retries, 2);
    assert_eq!(client.stats().throttled, 2);
}

#[tokio::test]
async fn throttling_halves_rate() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut config = common::config(&server);
    config.requests_per_second = 100.0;
    let client = common::client(config);

    client.send(common::get("Machines")).await.unwrap();

    assert!((client.rate_limiter().effective_rate() - 50.0).abs() < 1e-9);
}

#[tokio::test]
async fn retries_stop_at_max() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(4)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let error = client.send(common::get("Machines")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(
        error.message.contains("gave up after 3 retries"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let error = client.send(common::get("Machines/m1")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(!error.retryable);
}

#[tokio::test]
async fn post_timeout_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .mount(&server)
        .await;
    let mut config = common::config(&server);
    config.request_timeout = Duration::from_millis(100);
    let client = common::client(config);

    let error = client.send(common::post("Tags")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(!error.retryable);
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn get_timeout_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut config = common::config(&server);
    config.request_timeout = Duration::from_millis(100);
    let client = common::client(config);

    client.send(common::get("Machines")).await.unwrap();

    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn connect_error_is_retried_for_post() {
    // Bind and drop a listener so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = MockServer::start().await;
    let mut config = common::config(&server);
    config.base_url = format!("http://127.0.0.1:{port}/api/").parse().unwrap();
    let client = common::client(config);

    let error = client.send(common::post("Tags")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.retryable);
    assert!(
        error.message.contains("could not connect"),
        "{}",
        error.message
    );
    assert_eq!(client.stats().attempts, 4);
}

#[tokio::test]
async fn html_bad_gateway_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_string("<html><head><title>502 Bad Gateway</title></head></html>"),
        )
        .mount(&server)
        .await;
    let mut config = common::config(&server);
    config.retry.max_retries = 1;
    let client = common::client(config);

    let error = client.send(common::get("Machines")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.retryable);
    assert!(
        error.message.contains("502 Bad Gateway"),
        "{}",
        error.message
    );
    assert!(error.message.contains("GET Machines"), "{}", error.message);
}

#[tokio::test]
async fn error_names_broker_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(409).insert_header("Citrix-TransactionId", "tx-77"))
        .mount(&server)
        .await;
    let mut config = common::config(&server);
    config.request_id_header = Some("citrix-transactionid".parse().unwrap());
    let client = common::client(config);

    let error = client.send(common::get("Machines")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Conflict);
    assert!(error.message.contains("tx-77"), "{}", error.message);
}

#[tokio::test]
async fn truncated_json_is_invalid() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"items": [1, 2,"#))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let response = client.send(common::get("Machines")).await.unwrap();
    let error = response.json::<Page>().unwrap_err();

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(error.message.contains("GET Machines"), "{}", error.message);
}

#[tokio::test]
async fn path_keeps_percent_encoding() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/Machines/DOMAIN%7CPC01"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let response = client
        .send(common::get("Machines/DOMAIN%7CPC01"))
        .await
        .unwrap();

    assert_eq!(response.path, "Machines/DOMAIN%7CPC01");
}

#[tokio::test]
async fn not_modified_is_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(304))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let response = client.send(common::get("Machines")).await.unwrap();

    assert_eq!(response.status, 304);
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/api/Other"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/Other"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let error = client.send(common::get("Machines")).await.unwrap_err();

    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(!error.retryable);
}
