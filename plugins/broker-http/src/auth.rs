//! Authentication: a token cache with single-flight refresh-ahead, and the authenticator trait
//! the client calls before every authenticated attempt.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use vdi_contracts::{ProviderError, ProviderResult};

use crate::client::BrokerClient;

/// A bearer credential and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token itself; never logged.
    pub secret: SecretString,
    /// Expiry, when the issuer gave one. `None` means "until the broker returns 401".
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
    async fn authorize(&self, client: &BrokerClient, headers: &mut HeaderMap)
        -> ProviderResult<()>;

    /// Drops the credential that drew a 401, so the next `authorize` obtains a new one.
    /// The client calls this, through the default [`Authenticator::invalidate_rejected`], at
    /// most once per logical request.
    async fn invalidate(&self);

    /// Drops the credential that drew a 401, given the headers of the rejected attempt.
    ///
    /// The client calls this (at most once per logical request) instead of
    /// [`Authenticator::invalidate`]. The default calls `invalidate`; implementations that
    /// can tell which credential was sent override it, so that many requests rejected
    /// together with one old token do not each discard the replacement.
    async fn invalidate_rejected(&self, rejected: &HeaderMap) {
        let _ = rejected;
        self.invalidate().await;
    }
}

/// Caches a token from a [`TokenSource`]: one fetch in flight at a time, refreshed
/// `refresh_ahead` before expiry.
///
/// The cache's lock is held while the source fetches, so a source must send its requests
/// `unauthenticated()`: an authenticated request would wait for the same lock forever.
#[derive(Debug)]
pub struct TokenCache<S> {
    source: S,
    refresh_ahead: Duration,
    /// Held across the fetch itself, which is what makes concurrent callers share one fetch.
    state: tokio::sync::Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    token: Option<CachedToken>,
    /// Incremented on every fetch; identifies the cached token for `invalidate_if`.
    generation: u64,
}

#[derive(Debug)]
struct CachedToken {
    token: Token,
    /// When a refresh is due; `None` for tokens without expiry.
    refresh_at: Option<tokio::time::Instant>,
}

impl CachedToken {
    /// Schedules the refresh `refresh_ahead` before expiry, but no earlier than halfway
    /// through the token's life, so a token issued for less than `refresh_ahead` is not
    /// fetched again on every request.
    fn new(token: Token, refresh_ahead: Duration) -> Self {
        let refresh_at = token.expires_at.map(|expires_at| {
            let expires_at = tokio::time::Instant::from_std(expires_at);
            let lifetime = expires_at.saturating_duration_since(tokio::time::Instant::now());
            expires_at - refresh_ahead.min(lifetime / 2)
        });
        Self { token, refresh_at }
    }

    fn needs_refresh(&self, now: tokio::time::Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }

    fn expired(&self, now: tokio::time::Instant) -> bool {
        self.token
            .expires_at
            .is_some_and(|at| now >= tokio::time::Instant::from_std(at))
    }
}

impl<S: TokenSource> TokenCache<S> {
    /// Creates a cache; `refresh_ahead` is how long before expiry a new token is fetched.
    pub fn new(source: S, refresh_ahead: Duration) -> Self {
        Self {
            source,
            refresh_ahead,
            state: tokio::sync::Mutex::new(CacheState::default()),
        }
    }

    /// Returns a valid token, fetching one when none is cached or it expires within
    /// `refresh_ahead`. Concurrent callers share one fetch.
    ///
    /// # Errors
    /// Returns the source's error.
    pub async fn get(&self, client: &BrokerClient) -> ProviderResult<SecretString> {
        Ok(self.get_with_generation(client).await?.0)
    }

    /// Returns a valid token and its generation, for a later [`TokenCache::invalidate_if`].
    ///
    /// When a refresh ahead of expiry fails, the cached token is returned while it is still
    /// valid, and the failure is logged as a warning.
    ///
    /// # Errors
    /// Returns the source's error when no unexpired token is cached.
    pub async fn get_with_generation(
        &self,
        client: &BrokerClient,
    ) -> ProviderResult<(SecretString, u64)> {
        let mut state = self.state.lock().await;
        let now = tokio::time::Instant::now();
        if let Some(cached) = &state.token {
            if !cached.needs_refresh(now) {
                return Ok((cached.token.secret.clone(), state.generation));
            }
        }

        match self.source.fetch(client).await {
            Ok(token) => {
                state.generation += 1;
                let secret = token.secret.clone();
                state.token = Some(CachedToken::new(token, self.refresh_ahead));
                Ok((secret, state.generation))
            }
            Err(error) => match &state.token {
                Some(cached) if !cached.expired(tokio::time::Instant::now()) => {
                    tracing::warn!(
                        source = ?self.source,
                        error = %error,
                        "Refreshing the token ahead of expiry failed; using the cached token until it expires."
                    );
                    Ok((cached.token.secret.clone(), state.generation))
                }
                _ => Err(error),
            },
        }
    }

    /// Drops the cached token, whichever it is, once any fetch in progress has finished.
    ///
    /// Without a generation this cannot tell whether the token that failed was already
    /// replaced, so callers that know the rejected token use [`TokenCache::invalidate_if`] or
    /// [`TokenCache::invalidate_secret`], which keep a newer token.
    pub async fn invalidate(&self) {
        self.state.lock().await.token = None;
    }

    /// Drops the cached token if it is still the one of `generation`; returns whether it did.
    pub async fn invalidate_if(&self, generation: u64) -> bool {
        let mut state = self.state.lock().await;
        if state.generation != generation || state.token.is_none() {
            return false;
        }
        state.token = None;
        true
    }

    /// Drops the cached token if its secret equals `secret`; returns whether it did.
    pub async fn invalidate_secret(&self, secret: &str) -> bool {
        let mut state = self.state.lock().await;
        let matches = state
            .token
            .as_ref()
            .is_some_and(|cached| cached.token.secret.expose_secret() == secret);
        if matches {
            state.token = None;
        }
        matches
    }
}

/// Authenticator that sends a cached token in one header, as `<prefix><token>`.
///
/// The default is `Authorization: Bearer <token>`; Citrix Cloud, for example, expects
/// `Authorization: CWSAuth Bearer=<token>`, set with [`BearerAuthenticator::with_header`].
#[derive(Debug)]
pub struct BearerAuthenticator<S> {
    cache: TokenCache<S>,
    header: HeaderName,
    prefix: String,
}

impl<S: TokenSource> BearerAuthenticator<S> {
    /// Creates an authenticator sending `Authorization: Bearer <token>`.
    pub fn new(cache: TokenCache<S>) -> Self {
        Self {
            cache,
            header: AUTHORIZATION,
            prefix: "Bearer ".to_owned(),
        }
    }

    /// Sets the header and the text that precedes the token in its value.
    #[must_use]
    pub fn with_header(mut self, header: HeaderName, prefix: impl Into<String>) -> Self {
        self.header = header;
        self.prefix = prefix.into();
        self
    }

    /// Returns the token cache.
    pub fn cache(&self) -> &TokenCache<S> {
        &self.cache
    }
}

#[async_trait]
impl<S: TokenSource> Authenticator for BearerAuthenticator<S> {
    async fn authorize(
        &self,
        client: &BrokerClient,
        headers: &mut HeaderMap,
    ) -> ProviderResult<()> {
        let secret = self.cache.get(client).await?;
        let text = format!("{}{}", self.prefix, secret.expose_secret());
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ProviderError::invalid(format!(
                "the token from {:?} contains characters not allowed in the {} header; \
                 check what the token endpoint returns",
                self.cache.source, self.header
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(self.header.clone(), value);
        Ok(())
    }

    async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn invalidate_rejected(&self, rejected: &HeaderMap) {
        let sent = rejected
            .get(&self.header)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix(self.prefix.as_str()));
        match sent {
            Some(secret) => {
                self.cache.invalidate_secret(secret).await;
            }
            None => self.cache.invalidate().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::client::ClientConfig;
    use crate::{DefaultClassifier, Guard};

    /// Issues `token-1`, `token-2`, ... after a short delay, living `lifetime` each.
    #[derive(Debug)]
    struct CountingSource {
        fetches: AtomicUsize,
        lifetime: Option<Duration>,
        fail_after: Option<usize>,
    }

    impl CountingSource {
        fn new(lifetime: Option<Duration>) -> Self {
            Self {
                fetches: AtomicUsize::new(0),
                lifetime,
                fail_after: None,
            }
        }
    }

    #[async_trait]
    impl TokenSource for CountingSource {
        async fn fetch(&self, _client: &BrokerClient) -> ProviderResult<Token> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.fail_after.is_some_and(|limit| n > limit) {
                return Err(ProviderError::unavailable("token endpoint down"));
            }
            Ok(Token {
                secret: SecretString::from(format!("token-{n}")),
                expires_at: self.lifetime.map(|lifetime| Instant::now() + lifetime),
            })
        }
    }

    fn client() -> BrokerClient {
        let config = ClientConfig::new("test", "https://broker.invalid/".parse().unwrap());
        BrokerClient::new(config, Guard::new("test"), Arc::new(DefaultClassifier)).unwrap()
    }

    fn fetches(cache: &TokenCache<CountingSource>) -> usize {
        cache.source.fetches.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_gets_share_one_fetch() {
        let cache = Arc::new(TokenCache::new(
            CountingSource::new(None),
            Duration::from_secs(60),
        ));
        let client = client();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let client = client.clone();
                tokio::spawn(async move { cache.get(&client).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().expose_secret(), "token-1");
        }
        assert_eq!(fetches(&cache), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn near_expiry_token_is_refetched() {
        let cache = TokenCache::new(
            CountingSource::new(Some(Duration::from_secs(600))),
            Duration::from_secs(60),
        );
        let client = client();
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-1");

        tokio::time::advance(Duration::from_secs(500)).await;
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-1");

        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-2");
        assert_eq!(fetches(&cache), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_token_is_not_refetched_every_time() {
        let cache = TokenCache::new(
            CountingSource::new(Some(Duration::from_secs(30))),
            Duration::from_secs(60),
        );
        let client = client();
        cache.get(&client).await.unwrap();
        cache.get(&client).await.unwrap();
        assert_eq!(fetches(&cache), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_refresh_keeps_valid_token() {
        let mut source = CountingSource::new(Some(Duration::from_secs(600)));
        source.fail_after = Some(1);
        let cache = TokenCache::new(source, Duration::from_secs(60));
        let client = client();
        cache.get(&client).await.unwrap();

        tokio::time::advance(Duration::from_secs(560)).await;
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-1");

        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache.get(&client).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_then_get_refetches() {
        let cache = TokenCache::new(CountingSource::new(None), Duration::from_secs(60));
        let client = client();
        cache.get(&client).await.unwrap();
        cache.invalidate().await;
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_if_ignores_old_generation() {
        let cache = TokenCache::new(CountingSource::new(None), Duration::from_secs(60));
        let client = client();
        let (_, first) = cache.get_with_generation(&client).await.unwrap();
        assert!(cache.invalidate_if(first).await);
        let (_, second) = cache.get_with_generation(&client).await.unwrap();

        assert!(!cache.invalidate_if(first).await);
        assert_eq!(cache.get(&client).await.unwrap().expose_secret(), "token-2");
        assert!(cache.invalidate_if(second).await);
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_old_token_keeps_new_one() {
        let auth = BearerAuthenticator::new(TokenCache::new(
            CountingSource::new(None),
            Duration::from_secs(60),
        ));
        let client = client();
        let mut first = HeaderMap::new();
        auth.authorize(&client, &mut first).await.unwrap();
        auth.invalidate_rejected(&first).await;

        let mut second = HeaderMap::new();
        auth.authorize(&client, &mut second).await.unwrap();
        // A second request rejected with the first token must not drop token-2.
        auth.invalidate_rejected(&first).await;

        let mut third = HeaderMap::new();
        auth.authorize(&client, &mut third).await.unwrap();
        assert_eq!(third, second);
        assert_eq!(fetches(&auth.cache), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bearer_sets_sensitive_header() {
        let auth = BearerAuthenticator::new(TokenCache::new(
            CountingSource::new(None),
            Duration::from_secs(60),
        ))
        .with_header(AUTHORIZATION, "CWSAuth Bearer=");
        let mut headers = HeaderMap::new();
        auth.authorize(&client(), &mut headers).await.unwrap();
        let value = headers.get(AUTHORIZATION).unwrap();
        assert_eq!(value.to_str().unwrap(), "CWSAuth Bearer=token-1");
        assert!(value.is_sensitive());
    }

    #[test]
    fn token_debug_hides_secret() {
        let token = Token {
            secret: SecretString::from("hunter2-secret"),
            expires_at: None,
        };
        let text = format!("{token:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
