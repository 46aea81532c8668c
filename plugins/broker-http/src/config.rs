//! Settings of a broker client and their defaults.

use std::time::Duration;

use http::HeaderName;
use url::Url;

use crate::backoff::RetryConfig;

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

impl Default for ClientConfig {
    /// Returns the defaults, which providers override per broker:
    ///
    /// - `provider` `"broker"` and `base_url` `https://broker.invalid/`: placeholders; the
    ///   reserved `.invalid` domain never resolves, so a missing base URL fails at once.
    /// - `connect_timeout` 10 s: a broker that takes longer to accept TCP and TLS is down.
    /// - `request_timeout` 60 s: large list pages on busy brokers can take tens of seconds.
    /// - `retry`: [`RetryConfig::default`].
    /// - `concurrency` 8 and `requests_per_second` 10: low enough for brokers that cap
    ///   concurrent queries per account, high enough for rollouts of a few thousand machines.
    /// - `user_agent` `vdi-broker-gateway/<crate version>`, so broker logs name the caller.
    /// - `request_id_header` none; `allow_plain_http_loopback` false.
    fn default() -> Self {
        Self {
            provider: "broker".to_owned(),
            base_url: Url::parse("https://broker.invalid/").expect("the placeholder URL parses"),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryConfig::default(),
            concurrency: 8,
            requests_per_second: 10.0,
            user_agent: format!("vdi-broker-gateway/{}", env!("CARGO_PKG_VERSION")),
            request_id_header: None,
            allow_plain_http_loopback: false,
        }
    }
}

impl ClientConfig {
    /// Creates the default settings for `provider` at `base_url`.
    pub fn new(provider: impl Into<String>, base_url: Url) -> Self {
        Self {
            provider: provider.into(),
            base_url,
            ..Self::default()
        }
    }
}
