//! Microsoft Graph quirks against a wiremock server with payloads shaped like Graph v1.0's:
//! next links followed as they are, empty pages, repeated links, 429 with and without
//! `Retry-After`, `$batch` inner 429 and 424, 401 `InvalidAuthenticationToken`, and secrets
//! kept out of `Debug` output and logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_http::BrokerRequest;
use http::Method;
use serde_json::{json, Value};
use vdi_contracts::ErrorKind;
use vdi_graph::{BatchItem, GraphClient, GraphConfig};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "wiremock-graph-s3cret~Qx";
const TOKEN_1: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.first-token";
const TOKEN_2: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.second-token";

fn config(server: &MockServer) -> GraphConfig {
    serde_json::from_value(json!({
        "tenant_id": TENANT,
        "client_id": "gateway-app",
        "client_secret": SECRET,
        "token_url": format!("{}/{TENANT}/oauth2/v2.0/token", server.uri()),
        "graph_base_url": server.uri(),
        "requests_per_second": 1000.0,
        "allow_plain_http_loopback": true,
    }))
    .expect("config parses")
}

fn client(server: &MockServer) -> GraphClient {
    let settings = config(server).build().expect("config builds");
    GraphClient::new("graph-test", settings, Vec::new()).expect("client builds")
}

/// Issues tokens in order, one per call, repeating the last.
struct Tokens(Mutex<Vec<&'static str>>);

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut tokens = self.0.lock().expect("lock");
        let token = if tokens.len() > 1 {
            tokens.remove(0)
        } else {
            tokens[0]
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }))
    }
}

async fn server_with_tokens(tokens: Vec<&'static str>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(
            "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        ))
        .respond_with(Tokens(Mutex::new(tokens)))
        .mount(&server)
        .await;
    server
}

async fn server() -> MockServer {
    server_with_tokens(vec![TOKEN_1]).await
}

fn device(id: &str) -> Value {
    json!({
        "id": id,
        "deviceName": format!("HOSP-LT-{id}"),
        "operatingSystem": "Windows",
        "complianceState": "compliant",
        "azureADDeviceId": format!("aad-{id}"),
    })
}

fn graph_error(code: &str, message: &str, request_id: &str) -> Value {
    json!({"error": {"code": code, "message": message, "innerError": {
        "date": "2024-11-05T10:00:00",
        "request-id": request_id,
        "client-request-id": request_id,
    }}})
}

fn devices_request() -> BrokerRequest {
    BrokerRequest::get("v1.0/deviceManagement/managedDevices").operation("list_devices")
}

async fn requests_to(server: &MockServer, wanted: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == wanted)
        .collect()
}

#[tokio::test]
async fn next_link_is_followed_verbatim() {
    let server = server().await;
    let devices = "/v1.0/deviceManagement/managedDevices";
    // An opaque token with characters a rebuilt query would re-encode.
    let second = format!(
        "{}{devices}?$skiptoken=RFNwdCY%2bMT0xJjI9MA%3d%3d&$top=2",
        server.uri()
    );
    let third = format!("{}{devices}?$skiptoken=page3", server.uri());
    Mock::given(method("GET"))
        .and(path(devices))
        .and(query_param("$skiptoken", "page3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [device("3")]})))
        .mount(&server)
        .await;
    // Microsoft Graph: a page can be empty while a next link is still present.
    Mock::given(method("GET"))
        .and(path(devices))
        .and(query_param("$skiptoken", "RFNwdCY+MT0xJjI9MA=="))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [], "@odata.nextLink": third})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(devices))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices",
            "value": [device("1"), device("2")],
            "@odata.nextLink": second,
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;

    let items: Vec<Value> = client(&server)
        .list("managed devices", devices_request())
        .await
        .expect("listing succeeds");

    assert_eq!(items.len(), 3);
    let sent = requests_to(&server, devices).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[1].url.query(),
        Some("$skiptoken=RFNwdCY%2bMT0xJjI9MA%3d%3d&$top=2")
    );
    for request in &sent {
        assert!(
            !request.url.query_pairs().any(|(k, _)| k == "$skip"),
            "{} uses $skip",
            request.url
        );
    }
}

#[tokio::test]
async fn repeated_next_link_is_an_error() {
    let server = server().await;
    let devices = "/v1.0/deviceManagement/managedDevices";
    let link = format!("{}{devices}?$skiptoken=loop", server.uri());
    Mock::given(method("GET"))
        .and(path(devices))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [device("1")], "@odata.nextLink": link})),
        )
        .mount(&server)
        .await;

    let error = client(&server)
        .list::<Value>("managed devices", devices_request())
        .await
        .expect_err("a loop must stop");

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(error.message.contains("twice"), "{}", error.message);
    assert!(requests_to(&server, devices).await.len() <= 3);
}

#[tokio::test]
async fn next_link_to_other_host_is_refused() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [],
            "@odata.nextLink": "http://127.0.0.2:9/v1.0/deviceManagement/managedDevices?$skiptoken=x",
        })))
        .mount(&server)
        .await;

    let error = client(&server)
        .list::<Value>("managed devices", devices_request())
        .await
        .expect_err("other host");

    assert_eq!(error.kind, ErrorKind::Invalid);
}

/// Returns 429 `times` times, then the page.
struct ThrottleThen {
    times: Mutex<u32>,
    retry_after: Option<&'static str>,
}

impl Respond for ThrottleThen {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut times = self.times.lock().expect("lock");
        if *times == 0 {
            return ResponseTemplate::new(200).set_body_json(json!({"value": [device("1")]}));
        }
        *times -= 1;
        let mut response = ResponseTemplate::new(429).set_body_json(graph_error(
            "TooManyRequests",
            "Too many requests.",
            "9f1b0000-0000-4000-8000-000000000429",
        ));
        if let Some(value) = self.retry_after {
            response = response.insert_header("Retry-After", value);
        }
        response
    }
}

async fn throttled_listing(retry_after: Option<&'static str>) -> (Duration, u64) {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .respond_with(ThrottleThen {
            times: Mutex::new(2),
            retry_after,
        })
        .mount(&server)
        .await;
    let client = client(&server);
    let started = Instant::now();
    let items: Vec<Value> = client
        .list("managed devices", devices_request())
        .await
        .expect("succeeds after throttling");
    assert_eq!(items.len(), 1);
    (started.elapsed(), client.stats().throttled)
}

#[tokio::test]
async fn throttling_with_retry_after_waits() {
    let (elapsed, throttled) = throttled_listing(Some("1")).await;
    assert_eq!(throttled, 2);
    assert!(elapsed >= Duration::from_secs(2), "waited only {elapsed:?}");
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off() {
    let (elapsed, throttled) = throttled_listing(None).await;
    assert_eq!(throttled, 2);
    assert!(elapsed < Duration::from_secs(10), "waited {elapsed:?}");
}

/// Returns an inner 429 and a dependent 424 to the first `$batch`, and 204s to the second.
struct BatchRounds(Mutex<u32>);

impl Respond for BatchRounds {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("batch body");
        let ids: Vec<String> = body["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect();
        let mut round = self.0.lock().expect("lock");
        *round += 1;
        let responses: Vec<Value> = ids
            .iter()
            .map(|id| match (*round, id.as_str()) {
                (1, "add") => json!({"id": id, "status": 429,
                    "headers": {"Retry-After": "1", "Content-Type": "application/json"},
                    "body": graph_error("TooManyRequests", "Too many requests.", "req-429")}),
                (1, "check") => json!({"id": id, "status": 424,
                    "body": graph_error("FailedDependency", "Dependency failed.", "req-424")}),
                (_, "read") => json!({"id": id, "status": 200, "body": {"value": []}}),
                _ => json!({"id": id, "status": 204}),
            })
            .collect();
        // Graph returns inner responses in any order.
        let responses: Vec<Value> = responses.into_iter().rev().collect();
        ResponseTemplate::new(200).set_body_json(json!({ "responses": responses }))
    }
}

#[tokio::test]
async fn batch_retries_inner_429_and_424() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(BatchRounds(Mutex::new(0)))
        .mount(&server)
        .await;
    let items = vec![
        BatchItem::new("read", Method::GET, "/groups?$select=id"),
        BatchItem::new("add", Method::POST, "/groups/g1/members/$ref")
            .json(json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/d1"})),
        BatchItem::new("check", Method::GET, "/groups/g1/members").after("add"),
    ];

    let started = Instant::now();
    let responses = client(&server)
        .batch("v1.0", items)
        .await
        .expect("batch succeeds");

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    assert_eq!(responses["read"].status, 200);
    assert_eq!(responses["add"].status, 204);
    assert_eq!(responses["check"].status, 204);
    let sent = requests_to(&server, "/v1.0/$batch").await;
    assert_eq!(sent.len(), 2);
    let second: Value = serde_json::from_slice(&sent[1].body).expect("json");
    let ids: Vec<&str> = second["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec!["add", "check"]);
    assert_eq!(second["requests"][1]["dependsOn"], json!(["add"]));
    assert_eq!(
        second["requests"][0]["headers"]["Content-Type"],
        "application/json"
    );
}

#[tokio::test]
async fn batch_is_split_at_twenty() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(BatchRounds(Mutex::new(10)))
        .mount(&server)
        .await;
    let items: Vec<BatchItem> = (0..25)
        .map(|i| BatchItem::new(format!("g{i}"), Method::GET, format!("/groups/g{i}")))
        .collect();

    let responses = client(&server).batch("v1.0", items).await.expect("batch");

    assert_eq!(responses.len(), 25);
    let sent = requests_to(&server, "/v1.0/$batch").await;
    let sizes: Vec<usize> = sent
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            body["requests"].as_array().expect("requests").len()
        })
        .collect();
    assert_eq!(sizes, vec![20, 5]);
}

/// Returns 401 `InvalidAuthenticationToken` to the first token and the page to the second.
struct ExpiredThenOk;

impl Respond for ExpiredThenOk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth == format!("Bearer {TOKEN_2}") {
            return ResponseTemplate::new(200).set_body_json(json!({"value": [device("1")]}));
        }
        ResponseTemplate::new(401)
            .insert_header("request-id", "5d0c0000-0000-4000-8000-000000000401")
            .set_body_json(graph_error(
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                "5d0c0000-0000-4000-8000-000000000401",
            ))
    }
}

#[tokio::test]
async fn expired_token_reauthenticates_once() {
    let server = server_with_tokens(vec![TOKEN_1, TOKEN_2]).await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .respond_with(ExpiredThenOk)
        .mount(&server)
        .await;
    let client = client(&server);

    let items: Vec<Value> = client
        .list("managed devices", devices_request())
        .await
        .expect("succeeds after re-authentication");

    assert_eq!(items.len(), 1);
    assert_eq!(client.stats().reauthentications, 1);
    let token_path = format!("/{TENANT}/oauth2/v2.0/token");
    assert_eq!(requests_to(&server, &token_path).await.len(), 2);
}

#[tokio::test]
async fn persistent_401_fails_after_one_reauthentication() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceManagement/managedDevices"))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_1}").as_str(),
        ))
        .respond_with(ExpiredThenOk)
        .mount(&server)
        .await;

    let error = client(&server)
        .list::<Value>("managed devices", devices_request())
        .await
        .expect_err("second 401 fails");

    assert_eq!(error.kind, ErrorKind::Unauthenticated);
    let token_path = format!("/{TENANT}/oauth2/v2.0/token");
    assert_eq!(requests_to(&server, &token_path).await.len(), 2);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failures_log_request_id_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(graph_error(
            "Request_ResourceNotFound",
            "Resource 'missing' does not exist or one of its queried reference-property objects are not present.",
            "7a7a0000-0000-4000-8000-000000000404",
        )))
        .mount(&server)
        .await;
    let client = client(&server);

    let error = client
        .send(BrokerRequest::get("v1.0/groups/missing"))
        .await
        .expect_err("404");

    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error
        .message
        .contains("7a7a0000-0000-4000-8000-000000000404"));
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        logs.contains("7a7a0000-0000-4000-8000-000000000404"),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "secret in logs");
    assert!(!logs.contains(TOKEN_1), "token in logs");
    assert!(!format!("{client:?}").contains(SECRET));
    assert!(!format!("{client:?}").contains(TOKEN_1));
}

#[tokio::test]
async fn rejected_secret_is_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
            "error_codes": [7000215],
        })))
        .mount(&server)
        .await;

    let error = client(&server)
        .send(BrokerRequest::get("v1.0/groups"))
        .await
        .expect_err("bad secret");

    assert_eq!(error.kind, ErrorKind::Unauthenticated);
    assert!(!error.retryable);
    assert!(!error.message.contains(SECRET));
}
