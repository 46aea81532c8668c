//! Authentication: a token cache with single-flight refresh-ahead, and the authenticator trait
//! the client calls before every authenticated attempt.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::HeaderMap;
use secrecy::SecretString;
use vdi_contracts::ProviderResult;

use crate::client::BrokerClient;

/// A bearer credential and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token itself; never logged.
    pub secret: SecretString,
    /// Expiry, when the issuer said; `None` means "until the broker answers 401".
    pub expires_at: Option<Instant>,
}

/// Obtains a new token from the broker's token endpoint (sent with `unauthenticated()`).
#[async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// Requests a new token.
    ///
    /// # Errors
    /// `unauthenticated` when the credentials are rejected, or a transport error.
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token>;
}

/// Adds credentials to outgoing requests.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Adds the credential headers (for example `Authorization`) to an attempt.
    ///
    /// # Errors
    /// Fails when no token can be obtained.
    async fn authorize(&self, client: &BrokerClient, headers: &mut HeaderMap) -> ProviderResult<()>;

    /// Drops the credential that drew a 401, so the next `authorize` obtains a new one.
    /// The client calls this at most once per logical request.
    async fn invalidate(&self);
}

/// Caches a token from a [`TokenSource`]: one fetch in flight at a time, refreshed
/// `refresh_ahead` before expiry.
#[derive(Debug)]
pub struct TokenCache<S> {
    source: S,
    refresh_ahead: Duration,
}

impl<S: TokenSource> TokenCache<S> {
    /// Creates a cache; `refresh_ahead` is how long before expiry a new token is fetched.
    pub fn new(source: S, refresh_ahead: Duration) -> Self {
        Self {
            source,
            refresh_ahead,
        }
    }

    /// Returns a valid token, fetching one when none is cached or it expires within
    /// `refresh_ahead`. Concurrent callers share one fetch.
    ///
    /// # Errors
    /// Returns the source's error.
    pub async fn get(&self, client: &BrokerClient) -> ProviderResult<SecretString> {
        let _ = (client, &self.source, self.refresh_ahead);
        unimplemented!()
    }

    /// Drops the cached token, unless it was already replaced by a newer one.
    pub async fn invalidate(&self) {
        unimplemented!()
    }
}
