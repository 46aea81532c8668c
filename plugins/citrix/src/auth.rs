//! Citrix authentication: Citrix Cloud client credentials or on-premises basic auth for the
//! token, and the headers every Orchestration API call carries (`Authorization`,
//! `Citrix-CustomerId`, `Citrix-InstanceId`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use broker_http::{
    Authenticator, Body, BrokerClient, BrokerRequest, Token, TokenCache, TokenSource,
};
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;
use url::Url;
use vdi_contracts::{ErrorKind, ProviderError, ProviderResult};

use crate::config::Credentials;
use crate::model::Me;

/// How long before expiry a new token is fetched. Cloud tokens last about an hour and cannot
/// be refreshed, so a new one is requested five minutes ahead.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// Header carrying the Citrix Cloud customer id (`CitrixOnPremises` on premises).
pub static CUSTOMER_ID_HEADER: HeaderName = HeaderName::from_static("citrix-customerid");

/// Header carrying the site id.
pub static INSTANCE_ID_HEADER: HeaderName = HeaderName::from_static("citrix-instanceid");

/// Obtains tokens from Citrix Cloud or from an on-premises Delivery Controller.
pub struct CitrixTokenSource {
    token_url: Url,
    credentials: Credentials,
}

impl std::fmt::Debug for CitrixTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials has its own masking Debug.
        f.debug_struct("CitrixTokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl CitrixTokenSource {
    /// Creates a source for the token endpoint and credentials of one mode.
    pub fn new(token_url: Url, credentials: Credentials) -> Self {
        Self {
            token_url,
            credentials,
        }
    }

    fn request(&self) -> BrokerRequest {
        let mut request = BrokerRequest::post("")
            .absolute(self.token_url.clone())
            .unauthenticated()
            // A token request creates nothing, so sending it twice is harmless.
            .idempotent(true)
            .operation("fetch_token")
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        match &self.credentials {
            Credentials::Client { id, secret } => {
                request.body = Some(Body::Form(vec![
                    ("grant_type".into(), "client_credentials".into()),
                    ("client_id".into(), id.clone()),
                    ("client_secret".into(), secret.expose_secret().to_owned()),
                ]));
            }
            Credentials::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {encoded}")) {
                    value.set_sensitive(true);
                    request.headers.insert(AUTHORIZATION, value);
                }
            }
        }
        request
    }
}

#[async_trait]
impl TokenSource for CitrixTokenSource {
    async fn fetch(&self, client: &BrokerClient) -> ProviderResult<Token> {
        let response = client.send(self.request()).await.map_err(|error| {
            if matches!(
                error.kind,
                ErrorKind::Invalid | ErrorKind::Unauthenticated | ErrorKind::Forbidden
            ) {
                let rejected_by = match self.credentials {
                    Credentials::Client { .. } => "Citrix Cloud rejected the API client credentials (check citrix.client_id and citrix.client_secret)",
                    Credentials::Basic { .. } => "the Delivery Controller rejected the account (check citrix.username and citrix.password)",
                };
                ProviderError::new(ErrorKind::Unauthenticated, format!("{rejected_by}: {}", error.message))
            } else {
                error
            }
        })?;
        let body: serde_json::Value = response.json()?;
        parse_token(&body, Instant::now(), chrono::Utc::now())
    }
}

/// Finds a key of a JSON object, ignoring ASCII case.
fn field<'a>(body: &'a serde_json::Value, keys: &[&str]) -> Option<&'a serde_json::Value> {
    let object = body.as_object()?;
    keys.iter().find_map(|key| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Reads a token response of either endpoint: cloud `access_token` + `expires_in`, or
/// on-premises `Token` + `ExpiresAt`.
fn parse_token(
    body: &serde_json::Value,
    now: Instant,
    wall_now: chrono::DateTime<chrono::Utc>,
) -> ProviderResult<Token> {
    let secret = field(body, &["access_token", "Token"])
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Unauthenticated,
                "the Citrix token response has no access_token or Token field",
            )
        })?;
    let expires_at = if let Some(seconds) = field(body, &["expires_in", "expiresIn"]) {
        // citrix-daas-rest-go declares expires_in as a string; the OAuth standard sends a number.
        let seconds = match seconds {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| {
            ProviderError::invalid(format!(
                "the Citrix token response has an unreadable expires_in {seconds}"
            ))
        })?;
        Some(now + Duration::from_secs_f64(seconds))
    } else if let Some(at) = field(body, &["ExpiresAt"]).and_then(|v| v.as_str()) {
        let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
            ProviderError::invalid(format!(
                "the Citrix token response has ExpiresAt {at:?}: {e}"
            ))
        })?;
        let remaining = (at.with_timezone(&chrono::Utc) - wall_now)
            .to_std()
            .unwrap_or_default();
        Some(now + remaining)
    } else {
        // No expiry given: the token is used until the server returns 401.
        None
    };
    Ok(Token {
        secret: SecretString::from(secret.to_owned()),
        expires_at,
    })
}

/// The site the provider manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteInfo {
    /// Site id, sent as `Citrix-InstanceId`.
    pub id: String,
    /// Site name, when known.
    pub name: Option<String>,
}

/// Adds the Citrix headers to every authenticated request, discovering the site id once
/// through `GET me` unless it is configured.
#[derive(Debug)]
pub struct CitrixAuthenticator {
    tokens: TokenCache<CitrixTokenSource>,
    customer_id: String,
    site: OnceCell<SiteInfo>,
}

impl CitrixAuthenticator {
    /// Creates an authenticator; `site_id` skips discovery.
    pub fn new(source: CitrixTokenSource, customer_id: String, site_id: Option<String>) -> Self {
        let site = match site_id {
            Some(id) => OnceCell::new_with(Some(SiteInfo { id, name: None })),
            None => OnceCell::new(),
        };
        Self {
            tokens: TokenCache::new(source, REFRESH_AHEAD),
            customer_id,
            site,
        }
    }

    /// Returns the site, discovering it on first use.
    ///
    /// # Errors
    /// Fails when no token can be obtained, the site is frozen, or `me` lists no site.
    pub async fn site(&self, client: &BrokerClient) -> ProviderResult<SiteInfo> {
        self.site
            .get_or_try_init(|| async {
                let me = self.fetch_me(client).await?;
                let site = first_site(&me)?;
                tracing::info!(site_id = %site.id, site_name = ?site.name, "discovered Citrix site");
                Ok(site)
            })
            .await
            .cloned()
    }

    /// Calls `GET me` with a token and the customer id, re-authenticating once on 401.
    ///
    /// # Errors
    /// Fails when no token can be obtained, the site is frozen (530) or the call fails.
    pub async fn fetch_me(&self, client: &BrokerClient) -> ProviderResult<Me> {
        match self.try_fetch_me(client).await {
            Err(error) if error.kind == ErrorKind::Unauthenticated => {
                // `me` is sent unauthenticated(), so the client's own re-authentication on 401
                // does not apply; this does the same once.
                tracing::warn!(error = %error, "Citrix rejected the token on GET me; fetching a new one");
                self.tokens.invalidate().await;
                self.try_fetch_me(client).await
            }
            other => other,
        }
    }

    async fn try_fetch_me(&self, client: &BrokerClient) -> ProviderResult<Me> {
        let token = self.tokens.get(client).await?;
        // Sent without the authenticator, which needs the site id that `me` returns.
        let mut request = BrokerRequest::get("me")
            .unauthenticated()
            .operation("get_me");
        self.insert_common(&mut request.headers, &token)?;
        let response = client.send(request).await?;
        response.json()
    }

    fn insert_common(&self, headers: &mut HeaderMap, token: &SecretString) -> ProviderResult<()> {
        let mut authorization =
            HeaderValue::from_str(&format!("CwsAuth Bearer={}", token.expose_secret())).map_err(
                |_| {
                    ProviderError::new(
                        ErrorKind::Unauthenticated,
                        "the Citrix token contains characters not allowed in a header",
                    )
                },
            )?;
        authorization.set_sensitive(true);
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(
            CUSTOMER_ID_HEADER.clone(),
            header_value("customer id", &self.customer_id)?,
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(())
    }
}

fn header_value(label: &str, value: &str) -> ProviderResult<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| {
        ProviderError::invalid(format!(
            "the Citrix {label} {value:?} is not a valid header value"
        ))
    })
}

/// Picks `Customers[0].Sites[0]`, the site citrix-daas-rest-go uses.
fn first_site(me: &Me) -> ProviderResult<SiteInfo> {
    me.customers
        .iter()
        .flat_map(|customer| customer.sites.iter())
        .find_map(|site| {
            site.id.clone().filter(|id| !id.is_empty()).map(|id| SiteInfo {
                id,
                name: site.name.clone(),
            })
        })
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Forbidden,
                "GET me lists no Citrix site for this API client; grant it access to a site or set citrix.site_id",
            )
        })
}

#[async_trait]
impl Authenticator for CitrixAuthenticator {
    async fn authorize(
        &self,
        client: &BrokerClient,
        headers: &mut HeaderMap,
    ) -> ProviderResult<()> {
        let site = self.site(client).await?;
        let token = self.tokens.get(client).await?;
        self.insert_common(headers, &token)?;
        headers.insert(
            INSTANCE_ID_HEADER.clone(),
            header_value("site id", &site.id)?,
        );
        Ok(())
    }

    async fn invalidate(&self) {
        self.tokens.invalidate().await;
    }

    /// Drops the token only if it is the one that drew the 401, so requests rejected together
    /// with an old token do not each discard its replacement.
    async fn invalidate_rejected(&self, rejected: &HeaderMap) {
        match rejected_token(rejected) {
            Some(secret) => {
                self.tokens.invalidate_secret(&secret).await;
            }
            None => self.tokens.invalidate().await,
        }
    }
}

/// Extracts the token from a sent `Authorization: CwsAuth Bearer=<token>` header.
fn rejected_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("CwsAuth") {
        return None;
    }
    let (key, token) = rest.trim().split_once('=')?;
    key.eq_ignore_ascii_case("Bearer").then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: serde_json::Value) -> ProviderResult<Token> {
        parse_token(&body, Instant::now(), chrono::Utc::now())
    }

    #[test]
    fn expires_in_as_number() {
        let token = parse(json!({"access_token": "t", "expires_in": 3600})).expect("parses");
        let remaining = token.expires_at.expect("expiry") - Instant::now();
        assert!(remaining > Duration::from_secs(3590), "{remaining:?}");
    }

    #[test]
    fn expires_in_as_string() {
        let token = parse(json!({"access_token": "t", "expires_in": "3600"})).expect("parses");
        let remaining = token.expires_at.expect("expiry") - Instant::now();
        assert!(remaining > Duration::from_secs(3590), "{remaining:?}");
    }

    #[test]
    fn unreadable_expires_in_is_invalid() {
        let error = parse(json!({"access_token": "t", "expires_in": "soon"})).expect_err("fails");
        assert_eq!(error.kind, ErrorKind::Invalid);
    }

    #[test]
    fn on_premises_token_with_expiry() {
        let at = (chrono::Utc::now() + chrono::Duration::minutes(60)).to_rfc3339();
        let token = parse(json!({"Token": "t", "ExpiresAt": at, "Principal": "HOSP\\svc"}))
            .expect("parses");
        assert_eq!(token.secret.expose_secret(), "t");
        assert!(token.expires_at.is_some());
    }

    #[test]
    fn on_premises_token_without_expiry() {
        let token = parse(json!({"token": "t"})).expect("parses");
        assert!(token.expires_at.is_none());
    }

    #[test]
    fn missing_token_is_unauthenticated() {
        let error = parse(json!({"error": "invalid_client"})).expect_err("fails");
        assert_eq!(error.kind, ErrorKind::Unauthenticated);
    }

    #[test]
    fn first_site_is_used() {
        let me: Me = serde_json::from_value(json!({
            "UserId": "u", "Customers": [{"Id": "acme", "Sites": [{"Id": "s1", "Name": "Main"}]}]
        }))
        .expect("parses");
        assert_eq!(
            first_site(&me).expect("site"),
            SiteInfo {
                id: "s1".into(),
                name: Some("Main".into())
            }
        );
    }

    #[test]
    fn no_site_is_forbidden() {
        let me: Me = serde_json::from_value(json!({"Customers": []})).expect("parses");
        assert_eq!(
            first_site(&me).expect_err("no site").kind,
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn rejected_token_is_read_back() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("CwsAuth Bearer=abc.def="),
        );
        assert_eq!(rejected_token(&headers).as_deref(), Some("abc.def="));
    }

    #[test]
    fn token_source_debug_masks_secret() {
        let source = CitrixTokenSource::new(
            Url::parse("https://api.cloud.com/cctrustoauth2/acme/tokens/clients").expect("url"),
            Credentials::Client {
                id: "gateway-client".into(),
                secret: SecretString::from("very-secret-value"),
            },
        );
        let printed = format!("{source:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
    }
}
