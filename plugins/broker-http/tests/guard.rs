//! The endpoint guard stops denied requests before anything reaches the broker.

mod common;

use std::sync::Arc;

use broker_http::{BodyInspector, Guard, GuardViolation, InnerRequest};
use http::Method;
use serde_json::json;
use url::Url;
use vdi_contracts::ErrorKind;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Reads `{"requests": [{"method", "url"}]}` bodies sent to `$batch`.
#[derive(Debug)]
struct BatchInspector;

impl BodyInspector for BatchInspector {
    fn inner_requests(
        &self,
        _method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        if !path.ends_with("$batch") {
            return Ok(Vec::new());
        }
        let requests = body["requests"].as_array().cloned().unwrap_or_default();
        Ok(requests
            .iter()
            .map(|request| {
                let method = request["method"].as_str().unwrap_or("GET");
                let url = request["url"].as_str().unwrap_or_default();
                (method.parse().unwrap(), url.to_owned())
            })
            .collect())
    }
}

fn guard() -> Guard {
    Guard::new("test")
        .deny("power", &[Method::POST], "Machines/*/$reboot")
        .deny("image", &[], "Images/**")
        .inspect_bodies(Arc::new(BatchInspector))
}

async fn server_expecting_nothing() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn denied_path_never_reaches_broker() {
    let server = server_expecting_nothing().await;
    let client = common::client_with_guard(common::config(&server), guard());

    let error = client
        .send(common::post("Machines/DOM%7CPC1/%24Reboot"))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::GuardViolation);
    assert!(!error.retryable);
    assert!(error.message.contains("power"), "{}", error.message);
    assert_eq!(client.stats().guard_blocks, 1);
    assert_eq!(client.stats().attempts, 0);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn denied_absolute_url_never_reaches_broker() {
    let server = server_expecting_nothing().await;
    let client = common::client_with_guard(common::config(&server), guard());
    let url = Url::parse(&format!("{}/api/Images/img-1", server.uri())).unwrap();

    let error = client
        .send(common::get("").absolute(url))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::GuardViolation);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn denied_request_inside_batch_never_reaches_broker() {
    let server = server_expecting_nothing().await;
    let client = common::client_with_guard(common::config(&server), guard());
    let body = json!({"requests": [
        {"method": "GET", "url": "Machines/m1"},
        {"method": "POST", "url": "Machines/m1/$reboot"},
    ]});

    let error = client
        .send(common::post("$batch").json(body))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::GuardViolation);
    assert!(
        error.message.contains("Machines/m1/$reboot"),
        "{}",
        error.message
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn path_escaping_base_is_rejected() {
    let server = server_expecting_nothing().await;
    let client = common::client_with_guard(common::config(&server), guard());

    let error = client
        .send(common::get("Machines/../../Images/img-1"))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn allowed_request_is_sent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client_with_guard(common::config(&server), guard());

    client.send(common::get("Machines/m1")).await.unwrap();

    assert_eq!(client.stats().guard_blocks, 0);
}

#[tokio::test]
async fn plain_http_remote_base_is_rejected() {
    let mut config = common::config(&MockServer::start().await);
    config.base_url = Url::parse("http://broker.example/api/").unwrap();

    let error =
        broker_http::BrokerClient::new(config, guard(), Arc::new(broker_http::DefaultClassifier))
            .unwrap_err();

    assert!(
        error.message.contains("http://broker.example/api/"),
        "{}",
        error.message
    );
}

/// Keeps the import of `InnerRequest` honest: a nested batch reported with bodies is checked.
#[derive(Debug)]
struct NestedInspector;

impl BodyInspector for NestedInspector {
    fn inner_requests(
        &self,
        _method: &Method,
        _path: &str,
        _body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation> {
        Ok(Vec::new())
    }

    fn inner_requests_with_bodies(
        &self,
        _method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<InnerRequest>, GuardViolation> {
        if !path.ends_with("$batch") {
            return Ok(Vec::new());
        }
        Ok(vec![InnerRequest {
            method: Method::POST,
            path: body["inner_path"].as_str().unwrap_or_default().to_owned(),
            body: body.get("inner_body").cloned(),
        }])
    }
}

#[tokio::test]
async fn denied_request_in_nested_batch_never_reaches_broker() {
    let server = server_expecting_nothing().await;
    let guard = Guard::new("test")
        .deny("image", &[], "Images/**")
        .inspect_bodies(Arc::new(NestedInspector));
    let client = common::client_with_guard(common::config(&server), guard);
    let body = json!({
        "inner_path": "$batch",
        "inner_body": {"inner_path": "Images/img-1/$publish"},
    });

    let error = client
        .send(common::post("$batch").json(body))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::GuardViolation);
    assert!(server.received_requests().await.unwrap().is_empty());
}
