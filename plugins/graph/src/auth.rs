//! Client-credentials tokens from the Microsoft identity platform.
//!
//! [`GraphTokenSource`] plugs into broker-http's token cache, which refreshes ahead of expiry
//! with one fetch in flight. The broker client re-authenticates once when Graph returns 401
//! (`InvalidAuthenticationToken` after expiry).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use broker_http::{BrokerClient, BrokerRequest, Token, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;
use vdi_contracts::{ErrorKind, ProviderError, ProviderResult};

use crate::config::{GraphSettings, GRAPH_SCOPE};

/// Fetches Graph tokens with the client credentials grant.
#[derive(Clone)]
pub struct GraphTokenSource {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    clock_skew: Duration,
}

impl std::fmt::Debug for GraphTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphTokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// Token endpoint response (identity platform v2.0). There is no refresh token.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    token_type: Option<String>,
    /// Lifetime in seconds; the identity platform sends a number, some proxies a string.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl GraphTokenSource {
    /// Creates a source from validated settings.
    pub fn new(settings: &GraphSettings) -> Self {
        Self {
            token_url: settings.token_url.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            clock_skew: settings.clock_skew,
        }
    }

    /// Returns the expiry of a token issued now for `expires_in` seconds, shortened by the
    /// clock skew. A lifetime of less than twice the skew is halved instead.
    fn expiry(&self, expires_in: u64) -> Instant {
        let lifetime = Duration::from_secs(expires_in);
        let usable = if lifetime > self.clock_skew * 2 {
            lifetime - self.clock_skew
        } else {
            lifetime / 2
        };
        Instant::now() + usable
    }
}

#[async_trait]
impl TokenSource for GraphTokenSource {
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let request = BrokerRequest::post("")
            .absolute(self.token_url.clone())
            .unauthenticated()
            // A token request creates nothing, so sending it again is harmless.
            .idempotent(true)
            .operation("fetch_token")
            .form(vec![
                ("client_id".into(), self.client_id.clone()),
                ("scope".into(), GRAPH_SCOPE.into()),
                (
                    "client_secret".into(),
                    self.client_secret.expose_secret().to_owned(),
                ),
                ("grant_type".into(), "client_credentials".into()),
            ]);
        let response = client.send(request).await.map_err(|error| {
            if matches!(
                error.kind,
                ErrorKind::Invalid | ErrorKind::Unauthenticated | ErrorKind::Forbidden
            ) {
                ProviderError::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "the identity platform rejected the client credentials of app {} \
                         (check graph.tenant_id, graph.client_id and the client secret): {}",
                        self.client_id, error.message
                    ),
                )
                .with_retryable(false)
            } else {
                error
            }
        })?;
        let body: TokenResponse = response.json()?;
        if let Some(kind) = &body.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(ProviderError::invalid(format!(
                    "the token endpoint returned token_type {kind:?}; Graph needs Bearer tokens"
                )));
            }
        }
        let expires_in = match &body.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(Token {
            secret: body.access_token,
            expires_at: expires_in.map(|seconds| self.expiry(seconds)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(skew: u64) -> GraphTokenSource {
        GraphTokenSource {
            token_url: Url::parse("https://login.example.invalid/t/oauth2/v2.0/token")
                .expect("url"),
            client_id: "gateway-app".into(),
            client_secret: SecretString::from("unit-secret-xyz"),
            clock_skew: Duration::from_secs(skew),
        }
    }

    #[test]
    fn expiry_subtracts_skew() {
        let before = Instant::now();
        let expiry = source(60).expiry(3599);
        let lifetime = expiry - before;
        assert!(lifetime >= Duration::from_secs(3539));
        assert!(lifetime < Duration::from_secs(3540));
    }

    #[test]
    fn short_lifetime_keeps_half() {
        let before = Instant::now();
        let lifetime = source(60).expiry(100) - before;
        assert!(lifetime >= Duration::from_secs(50));
        assert!(lifetime < Duration::from_secs(51));
    }

    #[test]
    fn debug_hides_secret() {
        assert!(!format!("{:?}", source(60)).contains("unit-secret-xyz"));
    }
}
