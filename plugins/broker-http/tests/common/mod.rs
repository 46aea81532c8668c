//! Helpers shared by the integration tests: a client pointed at a wiremock server on loopback.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use broker_http::{
    BrokerClient, BrokerRequest, ClientConfig, DefaultClassifier, Guard, RetryConfig,
};
use url::Url;
use wiremock::MockServer;

/// Returns settings for a client of `server` under `/api/`, with short backoffs.
pub fn config(server: &MockServer) -> ClientConfig {
    let base = Url::parse(&format!("{}/api/", server.uri())).unwrap();
    ClientConfig {
        allow_plain_http_loopback: true,
        request_timeout: Duration::from_secs(5),
        requests_per_second: f64::INFINITY,
        retry: RetryConfig {
            max_retries: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_secs(2),
            ..RetryConfig::default()
        },
        ..ClientConfig::new("test", base)
    }
}

/// Returns a client with an empty guard and the default classifier.
pub fn client(config: ClientConfig) -> BrokerClient {
    client_with_guard(config, Guard::new("test"))
}

/// Returns a client with `guard` and the default classifier.
pub fn client_with_guard(config: ClientConfig, guard: Guard) -> BrokerClient {
    BrokerClient::new(config, guard, Arc::new(DefaultClassifier)).unwrap()
}

/// Returns a GET without authentication, for tests that attach no authenticator.
pub fn get(path: &str) -> BrokerRequest {
    BrokerRequest::get(path).unauthenticated()
}

/// Returns a POST without authentication, for tests that attach no authenticator.
pub fn post(path: &str) -> BrokerRequest {
    BrokerRequest::post(path).unauthenticated()
}
