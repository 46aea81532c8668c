//! Token endpoints and the authentication headers every API call must carry.
//!
//! Cloud: `POST /cctrustoauth2/{customerId}/tokens/clients` with client credentials
//! (Citrix Cloud API docs). On-premises: `POST /cvad/manage/Tokens` or
//! `POST /citrix/orchestration/api/tokens` with HTTP Basic (CVAD REST API docs and the
//! official Go client). API calls send `Authorization: CwsAuth Bearer=<token>` and
//! `Citrix-CustomerId`, plus `Citrix-InstanceId` for site-scoped calls.

use std::time::Instant;

use axum::http::{header, StatusCode};
use base64::Engine;
use serde_json::json;

use super::error::ApiError;
use super::model::timestamp;
use super::server::Shared;
use crate::common::http::{accepts_json, parse_urlencoded, SimRequest, SimResponse};

/// Customer id that on-premises tokens use in `Citrix-CustomerId`.
pub(crate) const ONPREM_CUSTOMER_ID: &str = "CitrixOnPremises";

/// Where a token came from, which decides the expected `Citrix-CustomerId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Cloud,
    OnPremises,
}

/// An issued bearer token.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub kind: TokenKind,
    pub expires_at: Instant,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> SimResponse {
    SimResponse::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

impl Shared {
    fn issue_token(&self, kind: TokenKind) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let issued = IssuedToken {
            kind,
            expires_at: Instant::now() + self.config.token_lifetime,
        };
        self.lock_tokens().insert(token.clone(), issued);
        self.counters.record_token();
        token
    }

    /// Handles the Citrix Cloud client-credentials token request.
    pub(crate) fn cloud_token(&self, request: &SimRequest, customer: &str) -> SimResponse {
        let known_customer = customer.eq_ignore_ascii_case(&self.config.customer_id)
            || customer.eq_ignore_ascii_case("root");
        let form = parse_urlencoded(&String::from_utf8_lossy(&request.body));
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if field("grant_type") != Some("client_credentials") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials.",
            );
        }
        let valid = field("client_id") == Some(self.config.client_id.as_str())
            && field("client_secret") == Some(self.config.client_secret.as_str());
        if !known_customer || !valid {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client id or client secret is invalid for this customer.",
            );
        }
        let token = self.issue_token(TokenKind::Cloud);
        // Citrix Cloud sends expires_in as a string (official Go client, CCAuthResponse).
        SimResponse::json(
            StatusCode::OK,
            &json!({
                "token_type": "bearer",
                "access_token": token,
                "expires_in": self.config.token_lifetime.as_secs().to_string(),
            }),
        )
    }

    /// Handles the on-premises token request, authenticated with HTTP Basic.
    pub(crate) fn onprem_token(&self, request: &SimRequest) -> SimResponse {
        let credentials = request
            .header(header::AUTHORIZATION.as_str())
            .and_then(|value| {
                let (scheme, encoded) = value.trim().split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("basic") {
                    return None;
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                let (user, password) = text.split_once(':')?;
                Some((user.to_string(), password.to_string()))
            });
        let valid = credentials.as_ref().is_some_and(|(user, password)| {
            user.eq_ignore_ascii_case(&self.config.onprem_username)
                && *password == self.config.onprem_password
        });
        if !valid {
            return ApiError::unauthorized("The user name or password is incorrect.")
                .into_response();
        }
        let token = self.issue_token(TokenKind::OnPremises);
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.token_lifetime)
                .unwrap_or(chrono::Duration::hours(1));
        SimResponse::json(
            StatusCode::OK,
            &json!({
                "Token": token,
                "Principal": self.config.onprem_username,
                "UserId": "S-1-5-21-3623811015-3361044348-30300820-1013",
                "CustomerId": ONPREM_CUSTOMER_ID,
                "ExpiresAt": timestamp(expires),
            }),
        )
    }

    /// Checks `Accept`, the bearer token, `Citrix-CustomerId` and, for site-scoped calls,
    /// `Citrix-InstanceId`.
    ///
    /// Fails with 406, 401 (missing, unknown or expired token), 400 (missing header),
    /// 403 (customer id that does not match the token) or 404 (unknown site).
    pub(crate) fn authenticate(
        &self,
        request: &SimRequest,
        site_scoped: bool,
    ) -> Result<TokenKind, ApiError> {
        if !accepts_json(&request.headers) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                "The Accept header must allow application/json.",
            ));
        }
        let token = request
            .header(header::AUTHORIZATION.as_str())
            .and_then(parse_cws_auth)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "Missing or malformed 'Authorization: CwsAuth Bearer=' header.",
                )
            })?;
        let kind = {
            let mut tokens = self.lock_tokens();
            match tokens.get(&token) {
                None => return Err(ApiError::unauthorized("The bearer token is not valid.")),
                Some(issued) if issued.expires_at <= Instant::now() => {
                    tokens.remove(&token);
                    return Err(ApiError::unauthorized("The bearer token has expired."));
                }
                Some(issued) => issued.kind,
            }
        };

        let customer = request
            .header("citrix-customerid")
            .ok_or_else(|| ApiError::bad_request("The Citrix-CustomerId header is required."))?;
        let expected = match kind {
            TokenKind::Cloud => self.config.customer_id.as_str(),
            TokenKind::OnPremises => ONPREM_CUSTOMER_ID,
        };
        if !customer.eq_ignore_ascii_case(expected) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("Customer '{customer}' does not match the bearer token."),
            ));
        }
        if site_scoped {
            let site = request.header("citrix-instanceid").ok_or_else(|| {
                ApiError::bad_request("The Citrix-InstanceId header is required.")
            })?;
            if !site.eq_ignore_ascii_case(&self.site_id) {
                return Err(ApiError::not_found("Site", site));
            }
        }
        Ok(kind)
    }

    /// Makes every issued token expire now.
    pub(crate) fn expire_tokens(&self) {
        let now = Instant::now();
        for token in self.lock_tokens().values_mut() {
            token.expires_at = now;
        }
    }
}

/// Extracts the token from `CwsAuth Bearer=<token>`, comparing scheme and key
/// case-insensitively because Citrix documents both `CwsAuth Bearer=` and `CWSAuth bearer=`.
fn parse_cws_auth(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("CwsAuth") {
        return None;
    }
    let rest = rest.trim();
    let key = rest.get(..7)?;
    if !key.eq_ignore_ascii_case("bearer=") {
        return None;
    }
    let token = rest[7..].trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_cws_auth;

    #[test]
    fn cws_auth_variants() {
        let cases = [
            ("CwsAuth Bearer=abc", Some("abc")),
            ("CWSAuth bearer=abc", Some("abc")),
            ("cwsauth  BEARER=abc ", Some("abc")),
            ("Bearer abc", None),
            ("CwsAuth Bearer=", None),
            ("CwsAuth", None),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_cws_auth(header).as_deref(), expected, "{header}");
        }
    }
}
