//! Token fetching and re-authentication on 401 against a mock broker.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use broker_http::{
    BearerAuthenticator, BrokerClient, BrokerRequest, Token, TokenCache, TokenSource,
};
use secrecy::SecretString;
use serde::Deserialize;
use vdi_contracts::{ErrorKind, ProviderResult};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// Fetches tokens from the mock's `/api/token` endpoint with a form body.
#[derive(Debug)]
struct FormTokenSource;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[async_trait]
impl TokenSource for FormTokenSource {
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let request = BrokerRequest::post("token")
            .operation("fetch_token")
            .unauthenticated()
            .form(vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("client_secret".to_owned(), "form-secret-1".to_owned()),
            ]);
        let response: TokenResponse = client.send(request).await?.json()?;
        Ok(Token {
            secret: SecretString::from(response.access_token),
            expires_at: None,
        })
    }
}

/// Issues `token-1`, `token-2`, ... on successive calls.
struct NumberedTokens(AtomicUsize);

impl Respond for NumberedTokens {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": format!("token-{n}"),
            "expires_in": "3600",
        }))
    }
}

async fn mount_token_endpoint(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .and(body_string_contains("client_secret=form-secret-1"))
        .respond_with(NumberedTokens(AtomicUsize::new(0)))
        .mount(server)
        .await;
}

fn authenticated_client(server: &MockServer) -> BrokerClient {
    let cache = TokenCache::new(FormTokenSource, Duration::from_secs(60));
    common::client(common::config(server))
        .with_authenticator(Arc::new(BearerAuthenticator::new(cache)))
}

async fn token_fetches(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.url.path() == "/api/token")
        .count()
}

#[tokio::test]
async fn expired_token_is_replaced_once() {
    let server = MockServer::start().await;
    mount_token_endpoint(&server).await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer token-2"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = authenticated_client(&server);

    let response = client.send(BrokerRequest::get("Machines")).await.unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(client.stats().reauthentications, 1);
    assert_eq!(client.stats().retries, 0);
    assert_eq!(token_fetches(&server).await, 2);
}

#[tokio::test]
async fn second_unauthorized_fails() {
    let server = MockServer::start().await;
    mount_token_endpoint(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let client = authenticated_client(&server);

    let error = client
        .send(BrokerRequest::get("Machines"))
        .await
        .unwrap_err();

    assert_eq!(error.kind, ErrorKind::Unauthenticated);
    assert!(!error.retryable);
    assert_eq!(client.stats().reauthentications, 1);
    assert_eq!(token_fetches(&server).await, 2);
}

#[tokio::test]
async fn token_is_reused_across_requests() {
    let server = MockServer::start().await;
    mount_token_endpoint(&server).await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    let client = authenticated_client(&server);

    for _ in 0..3 {
        client.send(BrokerRequest::get("Machines")).await.unwrap();
    }

    assert_eq!(token_fetches(&server).await, 1);
}

#[tokio::test]
async fn concurrent_unauthorized_fetch_one_new_token() {
    let server = MockServer::start().await;
    mount_token_endpoint(&server).await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(50)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer token-2"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = authenticated_client(&server);
    // All five share the first fetch, send token-1 and are rejected together.
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send(BrokerRequest::get("Machines")).await })
        })
        .collect();

    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(token_fetches(&server).await, 2);
}
