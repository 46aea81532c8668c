//! The broker client: one per provider instance.
//!
//! [`BrokerClient::send`] runs one logical request: guard check, limits, authentication, the
//! attempt itself, one re-authentication on 401, and retries with backoff.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;
use vdi_contracts::{ErrorKind, ProviderError, ProviderResult};

use crate::auth::Authenticator;
use crate::backoff::{Backoff, RetryBudget};
use crate::classify::ErrorClassifier;
use crate::endpoint::{check_scheme, normalise_base, resolve, Target};
use crate::guard::Guard;
use crate::limit::{ConcurrencyLimit, RateLimiter};
use crate::redact::{redact_headers, redact_url};
use crate::retry_after::retry_after;
use crate::stats::Counters;

pub use crate::config::ClientConfig;
pub use crate::request::{Body, BrokerRequest, BrokerResponse};
pub use crate::stats::ClientStats;

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    guard: Guard,
    classifier: Arc<dyn ErrorClassifier>,
    budget: RetryBudget,
    rate: RateLimiter,
    concurrency: ConcurrencyLimit,
    counters: Counters,
}

/// Client for one broker instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    inner: Arc<Inner>,
    authenticator: Option<Arc<dyn Authenticator>>,
}

/// Outcome of one attempt that did not return a success.
enum Failure {
    /// A 401 on an authenticated request that has not re-authenticated yet, with the headers
    /// that were sent.
    Unauthorized(HeaderMap),
    /// A failure the retry policy decides on by its `retryable` flag, with the delay the
    /// broker asked for, if any.
    Error(ProviderError, Option<Duration>),
    /// A failure returned without retry whatever its flag: a failed token fetch has been
    /// retried by its own request already, and a spent deadline leaves no time.
    Final(ProviderError),
}

impl BrokerClient {
    /// Builds a client.
    ///
    /// # Errors
    /// Fails when the base URL uses plain http on a non-loopback host, or the TLS stack
    /// cannot be built. The message names the URL and the fix. Also fails when the base URL
    /// has a query, `concurrency` is 0 or `requests_per_second` is not positive.
    pub fn new(
        config: ClientConfig,
        guard: Guard,
        classifier: Arc<dyn ErrorClassifier>,
    ) -> ProviderResult<Self> {
        let mut config = config;
        check_scheme(
            &config.base_url,
            config.allow_plain_http_loopback,
            "base_url",
        )?;
        config.base_url = normalise_base(config.base_url)?;
        if config.concurrency == 0 {
            return Err(ProviderError::invalid(format!(
                "concurrency of provider {} is 0; set it to 1 or more",
                config.provider
            )));
        }
        if config.requests_per_second.is_nan() || config.requests_per_second <= 0.0 {
            return Err(ProviderError::invalid(format!(
                "requests_per_second of provider {} is {}; set a positive number",
                config.provider, config.requests_per_second
            )));
        }

        // Redirects are not followed: a redirect could lead to plain http or to an endpoint
        // the guard never saw, so a 3xx other than 304 reaches the classifier instead.
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                ProviderError::internal(format!(
                    "building the HTTP client for provider {} failed ({error}); check the TLS \
                     setup of this host",
                    config.provider
                ))
            })?;

        let inner = Inner {
            budget: RetryBudget::from_config(&config.retry),
            rate: RateLimiter::new(
                config.requests_per_second,
                config.concurrency,
                RateLimiter::DEFAULT_COOLDOWN,
            ),
            concurrency: ConcurrencyLimit::new(config.concurrency),
            counters: Counters::default(),
            config,
            http,
            guard,
            classifier,
        };
        Ok(Self {
            inner: Arc::new(inner),
            authenticator: None,
        })
    }

    /// Attaches the authenticator used for requests with `authenticated = true`.
    #[must_use]
    pub fn with_authenticator(self, authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            inner: self.inner,
            authenticator: Some(authenticator),
        }
    }

    /// Returns the base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.config.base_url
    }

    /// Returns the settings, with the base URL as normalised by [`BrokerClient::new`].
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Returns the endpoint guard.
    pub fn guard(&self) -> &Guard {
        &self.inner.guard
    }

    /// Returns the rate limiter, for example to read its effective rate.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate
    }

    /// Sends a request: guard check, rate and concurrency limits, authentication, retries with
    /// decorrelated jitter and `Retry-After`, one re-authentication on 401.
    ///
    /// # Errors
    /// Returns the classifier's error for a non-success status once retries are exhausted or
    /// the error is not retryable; `guard_violation` without sending when the guard denies
    /// the request (or a request inside its body); `unavailable` on transport failures.
    pub async fn send(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        let span = tracing::info_span!(
            "broker_request",
            provider = %self.inner.config.provider,
            op = request.operation,
            method = %request.method,
            path = %request.display_target(),
        );
        self.send_logical(request).instrument(span).await
    }

    /// Returns the client's counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.counters.snapshot()
    }

    async fn send_logical(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        let inner = &*self.inner;
        let target = resolve(
            &inner.config.base_url,
            &request,
            inner.config.allow_plain_http_loopback,
        )?;
        self.check_guard(&request, &target)?;
        let body = request.body.as_ref().map(Body::encode);

        inner.budget.deposit();
        let started = Instant::now();
        let retry = &inner.config.retry;
        let mut backoff = Backoff::new(retry);
        let mut retries = 0u32;
        let mut reauthenticated = false;

        loop {
            let attempt = self.attempt(&request, &target, body.as_ref(), started, !reauthenticated);
            let failure = match attempt.await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let (error, requested_delay) = match failure {
                Failure::Unauthorized(sent) => {
                    reauthenticated = true;
                    Counters::bump(&inner.counters.reauthentications);
                    tracing::info!(
                        "Broker rejected the credentials; fetching new ones and sending again."
                    );
                    if let Some(authenticator) = &self.authenticator {
                        authenticator.invalidate_rejected(&sent).await;
                    }
                    continue;
                }
                Failure::Error(error, delay) => (error, delay),
                Failure::Final(error) => {
                    return Err(with_attempt_summary(error, retries, started.elapsed()));
                }
            };

            let Some(delay) =
                self.retry_delay(&error, requested_delay, retries, started, &mut backoff)
            else {
                return Err(with_attempt_summary(error, retries, started.elapsed()));
            };
            retries += 1;
            Counters::bump(&inner.counters.retries);
            tracing::info!(
                attempt = %format_args!("{retries}/{}", retry.max_retries),
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "Retrying after a retryable failure."
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Checks the request and its body with the guard, counting and logging a block.
    fn check_guard(&self, request: &BrokerRequest, target: &Target) -> ProviderResult<()> {
        let json = request.body.as_ref().and_then(Body::as_json);
        let Err(violation) =
            self.inner
                .guard
                .check(&request.method, &target.guard_path, json.as_ref())
        else {
            return Ok(());
        };
        Counters::bump(&self.inner.counters.guard_blocks);
        tracing::error!(
            class = %violation.class,
            blocked_method = %violation.method,
            blocked_path = %violation.path,
            "Endpoint guard blocked a request before it was sent; a provider tried to call a denied endpoint."
        );
        Err(
            ProviderError::new(ErrorKind::GuardViolation, violation.to_string())
                .with_retryable(false),
        )
    }

    /// Sends one attempt and turns anything but a success into a [`Failure`]; a 401 becomes
    /// [`Failure::Unauthorized`] only while `may_reauthenticate`.
    async fn attempt(
        &self,
        request: &BrokerRequest,
        target: &Target,
        body: Option<&(String, Bytes)>,
        started: Instant,
        may_reauthenticate: bool,
    ) -> Result<BrokerResponse, Failure> {
        let inner = &*self.inner;
        let mut headers = request.headers.clone();
        if let Some((content_type, _)) = body {
            let value = HeaderValue::from_str(content_type).map_err(|_| {
                Failure::Final(ProviderError::invalid(format!(
                    "content type {content_type:?} of {} is not a valid header value",
                    request.operation
                )))
            })?;
            headers.insert(CONTENT_TYPE, value);
        }
        if request.authenticated {
            self.authorize(&mut headers).await.map_err(Failure::Final)?;
        }

        // Authorization comes first because a token fetch is itself a request that needs a
        // rate token and a concurrency slot.
        inner.rate.acquire().await;
        let permit = inner.concurrency.acquire().await;
        let remaining = inner
            .config
            .retry
            .deadline
            .saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(Failure::Final(ProviderError::unavailable(format!(
                "{} {} did not complete within the deadline of {:?}",
                request.method,
                request.display_target(),
                inner.config.retry.deadline
            ))));
        }

        let mut builder = inner
            .http
            .request(request.method.clone(), target.url.clone())
            .headers(headers.clone())
            .timeout(inner.config.request_timeout.min(remaining));
        if let Some((_, bytes)) = body {
            builder = builder.body(bytes.clone());
        }
        Counters::bump(&inner.counters.attempts);
        tracing::trace!(
            url = %redact_url(&target.url),
            headers = ?redact_headers(&headers),
            body_bytes = body.map_or(0, |(_, bytes)| bytes.len()),
            "Sending attempt."
        );
        let result = async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        }
        .await;
        drop(permit);

        let (status, response_headers, bytes) =
            result.map_err(|error| Failure::Error(self.transport_error(request, error), None))?;
        let response = BrokerResponse {
            request_id: self.request_id(&response_headers),
            status,
            headers: response_headers,
            body: bytes,
            method: request.method.clone(),
            path: target.display_path.clone(),
        };
        tracing::debug!(status = status.as_u16(), request_id = ?response.request_id, "Broker responded.");

        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED && request.authenticated && may_reauthenticate {
            return Err(Failure::Unauthorized(headers));
        }
        self.classify_failure(&response)
    }

    /// Classifies a failed response, slowing the rate limiter on 429.
    fn classify_failure(&self, response: &BrokerResponse) -> Result<BrokerResponse, Failure> {
        let inner = &*self.inner;
        let error = inner.classifier.classify(response);
        let throttling = matches!(
            response.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            Counters::bump(&inner.counters.throttled);
            inner.rate.throttled();
        }
        let delay = if throttling {
            retry_after(&response.headers, SystemTime::now())
        } else {
            None
        };
        Err(Failure::Error(error, delay))
    }

    async fn authorize(&self, headers: &mut HeaderMap) -> ProviderResult<()> {
        let Some(authenticator) = &self.authenticator else {
            return Err(ProviderError::internal(format!(
                "request to provider {} needs authentication but the client has no \
                 authenticator; call with_authenticator, or mark the request unauthenticated()",
                self.inner.config.provider
            )));
        };
        authenticator.authorize(self, headers).await
    }

    /// Maps a transport failure: connect errors are always retryable, because nothing reached
    /// the broker; anything else only for idempotent requests.
    fn transport_error(&self, request: &BrokerRequest, error: reqwest::Error) -> ProviderError {
        let connect = error.is_connect();
        let what = if connect {
            "could not connect"
        } else if error.is_timeout() {
            "timed out"
        } else {
            "failed in transport"
        };
        let mut message = format!(
            "{} {} to provider {} {what}",
            request.method,
            request.display_target(),
            self.inner.config.provider
        );
        let retryable = connect || request.idempotent;
        if !retryable {
            message.push_str(
                "; the request is not idempotent and the broker may have applied it, so check \
                 its state before sending it again",
            );
        }
        // without_url keeps secret query values out of the error chain.
        ProviderError::unavailable(message)
            .with_retryable(retryable)
            .with_source(error.without_url())
    }

    /// Returns how long to wait before the next retry, or `None` to give up.
    fn retry_delay(
        &self,
        error: &ProviderError,
        requested: Option<Duration>,
        retries: u32,
        started: Instant,
        backoff: &mut Backoff,
    ) -> Option<Duration> {
        let retry = &self.inner.config.retry;
        if !error.retryable || retries >= retry.max_retries {
            return None;
        }
        let delay = requested
            .unwrap_or_else(|| backoff.next_delay())
            .min(retry.cap);
        if started.elapsed() + delay >= retry.deadline {
            return None;
        }
        if !self.inner.budget.try_withdraw() {
            tracing::warn!(
                error = %error,
                "Retry budget spent; failing without retry so a struggling broker gets less load."
            );
            return None;
        }
        Some(delay)
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.inner.config.request_id_header.as_ref()?;
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

/// Appends how many retries were made and for how long, when there were any.
fn with_attempt_summary(
    mut error: ProviderError,
    retries: u32,
    elapsed: Duration,
) -> ProviderError {
    if retries > 0 {
        error.message = format!(
            "{} (gave up after {retries} retries in {:.1} s)",
            error.message,
            elapsed.as_secs_f64()
        );
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::DefaultClassifier;

    fn config(base: &str) -> ClientConfig {
        ClientConfig::new("test", Url::parse(base).unwrap())
    }

    fn build(config: ClientConfig) -> ProviderResult<BrokerClient> {
        BrokerClient::new(config, Guard::new("test"), Arc::new(DefaultClassifier))
    }

    #[test]
    fn new_rejects_plain_http_remote() {
        let error = build(config("http://broker.example/api/")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(
            error.message.contains("http://broker.example/api/"),
            "{}",
            error.message
        );
        assert!(error.message.contains("https://"), "{}", error.message);
    }

    #[test]
    fn new_rejects_plain_http_loopback_without_flag() {
        let error = build(config("http://127.0.0.1:9/")).unwrap_err();
        assert!(
            error.message.contains("allow_plain_http_loopback"),
            "{}",
            error.message
        );
    }

    #[test]
    fn new_accepts_plain_http_loopback_with_flag() {
        let mut config = config("http://127.0.0.1:9/api");
        config.allow_plain_http_loopback = true;
        let client = build(config).unwrap();
        assert_eq!(client.base_url().as_str(), "http://127.0.0.1:9/api/");
    }

    #[test]
    fn new_rejects_zero_concurrency() {
        let mut config = config("https://h/");
        config.concurrency = 0;
        let error = build(config).unwrap_err();
        assert!(error.message.contains("concurrency"), "{}", error.message);
    }

    #[test]
    fn new_rejects_nonpositive_rate() {
        for rate in [0.0, -1.0, f64::NAN] {
            let mut config = config("https://h/");
            config.requests_per_second = rate;
            assert!(build(config).is_err(), "rate {rate}");
        }
    }

    #[test]
    fn stats_start_at_zero() {
        let client = build(config("https://h/")).unwrap();
        assert_eq!(client.stats(), ClientStats::default());
    }

    #[test]
    fn summary_added_only_after_retries() {
        let error = with_attempt_summary(ProviderError::unavailable("down"), 0, Duration::ZERO);
        assert_eq!(error.message, "down");
        let error = with_attempt_summary(
            ProviderError::unavailable("down"),
            2,
            Duration::from_secs(3),
        );
        assert_eq!(error.message, "down (gave up after 2 retries in 3.0 s)");
    }

    #[tokio::test]
    async fn authenticated_request_without_authenticator_fails() {
        let mut config = config("http://127.0.0.1:9/");
        config.allow_plain_http_loopback = true;
        let client = build(config).unwrap();
        let error = client.send(BrokerRequest::get("x")).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(
            error.message.contains("with_authenticator"),
            "{}",
            error.message
        );
    }
}
