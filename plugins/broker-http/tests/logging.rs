//! Credentials never reach trace logs. This binary contains a single test, because tracing
//! caches per-callsite interest globally and a test running in parallel without the
//! subscriber could hide events from the one that captures them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use broker_http::{BearerAuthenticator, BrokerClient, Token, TokenCache, TokenSource};
use secrecy::SecretString;
use tracing::Level;
use vdi_contracts::ProviderResult;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FORM_SECRET: &str = "form-secret-8d1f";
const BEARER_TOKEN: &str = "bearer-token-77ab";
const QUERY_SECRET: &str = "query-secret-c3e0";

/// Log sink shared between the subscriber and the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Sends the form secret to the token endpoint and returns a fixed bearer token.
#[derive(Debug)]
struct FormTokenSource;

#[async_trait]
impl TokenSource for FormTokenSource {
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let request = common::post("token").form(vec![
            ("client_id".to_owned(), "gateway".to_owned()),
            ("client_secret".to_owned(), FORM_SECRET.to_owned()),
        ]);
        client.send(request).await?;
        Ok(Token {
            secret: SecretString::from(BEARER_TOKEN),
            expires_at: None,
        })
    }
}

#[tokio::test]
async fn secrets_stay_out_of_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/Machines"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let cache = TokenCache::new(FormTokenSource, Duration::from_secs(60));
    let client = common::client(common::config(&server))
        .with_authenticator(Arc::new(BearerAuthenticator::new(cache)));

    let request = broker_http::BrokerRequest::get("Machines").query("access_token", QUERY_SECRET);
    client.send(request).await.unwrap();

    let logs = capture.text();
    assert!(
        logs.contains("Sending attempt"),
        "no trace logs captured: {logs}"
    );
    assert!(logs.contains("Retrying"), "no retry log captured: {logs}");
    assert!(!logs.contains(FORM_SECRET), "form secret logged: {logs}");
    assert!(!logs.contains(BEARER_TOKEN), "bearer token logged: {logs}");
    assert!(!logs.contains(QUERY_SECRET), "query secret logged: {logs}");
    let received = server.received_requests().await.unwrap();
    let token_request = received
        .iter()
        .find(|r| r.url.path() == "/api/token")
        .unwrap();
    let sent_body = String::from_utf8_lossy(&token_request.body);
    assert!(
        sent_body.contains(FORM_SECRET),
        "form not sent: {sent_body}"
    );
}
