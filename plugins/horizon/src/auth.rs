//! Horizon sessions: `POST login` for an access and a refresh token, `POST refresh` for a new
//! access token after a 401, and `POST logout` at shutdown.
//!
//! [`HorizonTokenSource`] plugs into broker-http's token cache, so one fetch is in flight at a
//! time and a 401 invalidates only the token that drew it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use broker_http::{BearerAuthenticator, BrokerClient, BrokerRequest, Token, TokenSource};
use http::header::AUTHORIZATION;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use vdi_contracts::{ErrorKind, ProviderError, ProviderResult};

use crate::model::{AccessToken, AuthTokens};

/// Obtains Horizon access tokens: with the refresh token when one is held, else by logging in.
///
/// Clones share the refresh token, so the provider keeps a clone for logout while the token
/// cache owns the original.
#[derive(Clone)]
pub struct HorizonTokenSource {
    username: String,
    password: SecretString,
    domain: String,
    /// Refresh token of the current Horizon session; `None` before login and after a failed
    /// refresh or a logout.
    refresh_token: Arc<Mutex<Option<SecretString>>>,
}

impl std::fmt::Debug for HorizonTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HorizonTokenSource")
            .field("username", &self.username)
            .field("domain", &self.domain)
            .field("password", &"[redacted]")
            .field("has_refresh_token", &self.lock().is_some())
            .finish()
    }
}

impl HorizonTokenSource {
    /// Creates a source for one service account.
    pub fn new(username: String, password: SecretString, domain: String) -> Self {
        Self {
            username,
            password,
            domain,
            refresh_token: Arc::new(Mutex::new(None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<SecretString>> {
        // The option stays valid even if a holder panicked, so a poisoned lock is usable.
        self.refresh_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns whether a Horizon session is open (a login succeeded and was not logged out).
    pub fn has_session(&self) -> bool {
        self.lock().is_some()
    }

    /// Removes and returns the refresh token, for logout.
    pub fn take_refresh_token(&self) -> Option<SecretString> {
        self.lock().take()
    }

    /// Logs in with the account and keeps the refresh token.
    async fn login(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let request = BrokerRequest::post("login")
            .unauthenticated()
            // A login creates only a session that expires on its own, so sending it twice
            // is harmless.
            .idempotent(true)
            .operation("login")
            .json(json!({
                "username": self.username,
                "password": self.password.expose_secret(),
                "domain": self.domain,
            }));
        let response = client.send(request).await.map_err(|error| {
            if matches!(
                error.kind,
                ErrorKind::Invalid | ErrorKind::Unauthenticated | ErrorKind::Forbidden
            ) {
                ProviderError::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "Horizon rejected the login of {}\\{} (check horizon.username, horizon.password and horizon.domain): {}",
                        self.domain, self.username, error.message
                    ),
                )
            } else {
                error
            }
        })?;
        let tokens: AuthTokens = response.json()?;
        let access = non_empty(tokens.access_token).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Unauthenticated,
                "the Horizon login response has no access_token",
            )
        })?;
        *self.lock() = non_empty(tokens.refresh_token);
        tracing::info!(user = %self.username, domain = %self.domain, "Logged in to Horizon.");
        Ok(bearer(access))
    }

    /// Exchanges the refresh token for a new access token.
    async fn refresh(
        &self,
        client: &BrokerClient,
        refresh_token: &SecretString,
    ) -> ProviderResult<Token> {
        let request = BrokerRequest::post("refresh")
            .unauthenticated()
            .idempotent(true)
            .operation("refresh_token")
            .json(json!({"refresh_token": refresh_token.expose_secret()}));
        let response = client.send(request).await?;
        let token: AccessToken = response.json()?;
        let access = non_empty(token.access_token).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Unauthenticated,
                "the Horizon refresh response has no access_token",
            )
        })?;
        tracing::debug!("Refreshed the Horizon access token.");
        Ok(bearer(access))
    }
}

fn non_empty(value: Option<SecretString>) -> Option<SecretString> {
    value.filter(|v| !v.expose_secret().is_empty())
}

/// Horizon gives no token lifetime (the REST session timeout is a cluster setting), so the
/// token is used until the server returns 401.
fn bearer(access: SecretString) -> Token {
    Token {
        secret: access,
        expires_at: None,
    }
}

#[async_trait]
impl TokenSource for HorizonTokenSource {
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let refresh_token = self.lock().clone();
        let Some(refresh_token) = refresh_token else {
            return self.login(client).await;
        };
        match self.refresh(client, &refresh_token).await {
            Ok(token) => Ok(token),
            Err(error) => {
                tracing::warn!(error = %error, "Refreshing the Horizon token failed; logging in again.");
                *self.lock() = None;
                self.login(client).await
            }
        }
    }
}

/// Ends the Horizon session with `POST logout`, when there is one. The request carries the
/// cached access token itself, so a 401 cannot start a new session through a fresh login. A
/// failure is logged, because the session expires on the server's timeout anyway.
pub async fn logout(
    client: &BrokerClient,
    source: &HorizonTokenSource,
    authenticator: &BearerAuthenticator<HorizonTokenSource>,
) {
    if !source.has_session() {
        return;
    }
    let access = match authenticator.cache().get(client).await {
        Ok(access) => access,
        Err(error) => {
            tracing::warn!(error = %error, "No Horizon access token for logout; the session expires on the server's timeout.");
            return;
        }
    };
    let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", access.expose_secret())) else {
        tracing::warn!("The Horizon access token is not a valid header value; skipping logout.");
        return;
    };
    value.set_sensitive(true);
    let Some(refresh_token) = source.take_refresh_token() else {
        return;
    };
    authenticator.cache().invalidate().await;
    let request = BrokerRequest::post("logout")
        .unauthenticated()
        .idempotent(true)
        .operation("logout")
        .header(AUTHORIZATION, value)
        .json(json!({"refresh_token": refresh_token.expose_secret()}));
    match client.send(request).await {
        Ok(_) => tracing::info!("Logged out of Horizon."),
        Err(error) => {
            tracing::warn!(error = %error, "Horizon logout failed; the session expires on the server's timeout.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_password_and_refresh_token() {
        let source = HorizonTokenSource::new(
            "svc-gateway".into(),
            SecretString::from("pa55-horizon"),
            "HOSP".into(),
        );
        *source.lock() = Some(SecretString::from("refresh-abc123"));
        let printed = format!("{source:?}");
        assert!(!printed.contains("pa55-horizon"), "{printed}");
        assert!(!printed.contains("refresh-abc123"), "{printed}");
        assert!(printed.contains("has_refresh_token: true"), "{printed}");
    }

    #[test]
    fn take_refresh_token_forgets_it() {
        let source = HorizonTokenSource::new("u".into(), SecretString::from("p"), "D".into());
        *source.lock() = Some(SecretString::from("r"));
        assert!(source.take_refresh_token().is_some());
        assert!(source.take_refresh_token().is_none());
    }
}
