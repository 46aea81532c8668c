//! The broker client: one per provider instance.
//!
//! SKELETON: signatures agreed between the broker-http and provider authors; bodies to be
//! written.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;
use vdi_contracts::ProviderResult;

use crate::auth::Authenticator;
use crate::backoff::RetryConfig;
use crate::classify::ErrorClassifier;
use crate::guard::Guard;

/// Settings of one broker client. Every field has a documented default in `Default`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Provider name, used in logs and error messages.
    pub provider: String,
    /// Base URL that relative request paths are joined to (keep a trailing slash).
    pub base_url: Url,
    /// TCP and TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt, headers and body.
    pub request_timeout: Duration,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Sustained requests per second at most (token bucket; burst = concurrency).
    pub requests_per_second: f64,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Response header holding the broker's request id (for example `citrix-transactionid`).
    pub request_id_header: Option<HeaderName>,
    /// Allow `http://` base and absolute URLs when the host is a loopback address.
    pub allow_plain_http_loopback: bool,
}

/// Request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// JSON body, sent with `Content-Type: application/json; charset=utf-8`.
    Json(serde_json::Value),
    /// Form body (`application/x-www-form-urlencoded`); values are treated as secrets in logs.
    Form(Vec<(String, String)>),
    /// Raw bytes with their content type.
    Raw { content_type: String, bytes: Bytes },
}

/// One logical request; the client may send it several times (retries, re-authentication).
#[derive(Debug, Clone)]
pub struct BrokerRequest {
    /// HTTP method.
    pub method: Method,
    /// Path relative to the base URL, segments already percent-encoded; may carry a query.
    pub path: String,
    /// Absolute URL that replaces `base_url + path` (token endpoints, `@odata.nextLink`).
    pub absolute_url: Option<Url>,
    /// Query parameters appended to the URL.
    pub query: Vec<(String, String)>,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Option<Body>,
    /// Whether sending twice is harmless; timeouts are retried only for idempotent requests.
    /// Defaults to true for GET, HEAD, PUT, DELETE and false for POST and PATCH.
    pub idempotent: bool,
    /// Whether the client's authenticator adds credentials (false for token endpoints).
    pub authenticated: bool,
    /// Short operation name for logs and errors, for example `list_machines`.
    pub operation: &'static str,
}

impl BrokerRequest {
    /// Creates a request with the method's default idempotency, authenticated.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Self {
            method,
            path: path.into(),
            absolute_url: None,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            authenticated: true,
            operation: "request",
        }
    }

    /// Creates a GET request.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// Creates a POST request.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// Creates a DELETE request.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Creates a PATCH request.
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// Sets the operation name used in logs and errors.
    #[must_use]
    pub fn operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Appends a query parameter.
    #[must_use]
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body.
    #[must_use]
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: http::HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Overrides idempotency.
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sends without the client's authenticator.
    #[must_use]
    pub fn unauthenticated(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// Sends to an absolute URL instead of `base_url + path`.
    #[must_use]
    pub fn absolute(mut self, url: Url) -> Self {
        self.absolute_url = Some(url);
        self
    }
}

/// A response with a success status (2xx, or 3xx that reqwest did not follow, such as 304).
#[derive(Debug, Clone)]
pub struct BrokerResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
    /// Broker request id from `ClientConfig::request_id_header`.
    pub request_id: Option<String>,
    /// Method and path that were sent, for messages and audit (no query secrets).
    pub method: Method,
    /// Path relative to the base URL, or the absolute URL's path.
    pub path: String,
}

impl BrokerResponse {
    /// Decodes the body as JSON.
    ///
    /// # Errors
    /// Returns an `invalid` error naming the method, path and serde's message, with the start
    /// of the body (so truncated or HTML bodies are recognisable).
    pub fn json<T: DeserializeOwned>(&self) -> ProviderResult<T> {
        unimplemented!()
    }

    /// Returns a header as a string, if present and valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Counters of one client, for benchmarks and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Attempts sent, including retries and token requests.
    pub attempts: u64,
    /// Retries after a retryable failure.
    pub retries: u64,
    /// Re-authentications after a 401.
    pub reauthentications: u64,
    /// Requests the guard blocked.
    pub guard_blocks: u64,
    /// 429 responses received.
    pub throttled: u64,
}

/// Client for one broker instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    inner: Arc<()>,
}

impl BrokerClient {
    /// Builds a client.
    ///
    /// # Errors
    /// Fails when the base URL uses plain http on a non-loopback host, or the TLS stack
    /// cannot be built; the message names the URL and the fix.
    pub fn new(
        config: ClientConfig,
        guard: Guard,
        classifier: Arc<dyn ErrorClassifier>,
    ) -> ProviderResult<Self> {
        let _ = (config, guard, classifier);
        unimplemented!()
    }

    /// Attaches the authenticator used for requests with `authenticated = true`.
    #[must_use]
    pub fn with_authenticator(self, authenticator: Arc<dyn Authenticator>) -> Self {
        let _ = authenticator;
        unimplemented!()
    }

    /// Returns the base URL.
    pub fn base_url(&self) -> &Url {
        unimplemented!()
    }

    /// Sends a request: guard check, rate and concurrency limits, authentication, retries with
    /// decorrelated jitter and `Retry-After`, one re-authentication on 401.
    ///
    /// # Errors
    /// Returns the classifier's error for a non-success status once retries are exhausted or
    /// the error is not retryable; `guard_violation` without sending when the guard denies
    /// the request (or a request inside its body); `unavailable` on transport failures.
    pub async fn send(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        let _ = request;
        unimplemented!()
    }

    /// Returns the client's counters.
    pub fn stats(&self) -> ClientStats {
        unimplemented!()
    }
}
