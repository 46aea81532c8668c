//! The identity platform token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client
//! credentials grant) and the bearer check of every Graph call.
//!
//! A token request is a form with `client_id`, `client_secret`,
//! `grant_type=client_credentials` and `scope=https://graph.microsoft.com/.default`, and
//! returns `{token_type, expires_in, ext_expires_in, access_token}` without a refresh token
//! (Microsoft identity platform client credentials flow). Failures return the identity
//! platform error body `{error, error_description, error_codes, timestamp, trace_id,
//! correlation_id}` with an `AADSTS` code.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::{header, StatusCode};
use serde_json::json;

use super::error::GraphError;
use super::server::Shared;
use crate::common::http::{parse_urlencoded, SimRequest, SimResponse};

/// The only scope the client credentials flow accepts for Graph.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Issued access tokens and their expiry.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    access: HashMap<String, Instant>,
}

/// Builds an identity platform error response.
fn aadsts(
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
    request_id: &str,
) -> SimResponse {
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {request_id} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": request_id,
        "correlation_id": request_id,
    });
    SimResponse::json(status, &body)
}

impl Shared {
    /// Handles `POST /{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token(
        &self,
        request: &SimRequest,
        tenant: &str,
        request_id: &str,
    ) -> SimResponse {
        if !tenant.eq_ignore_ascii_case(&self.config.tenant_id) {
            let description = format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.");
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                &description,
                request_id,
            );
        }
        let form: HashMap<String, String> =
            parse_urlencoded(std::str::from_utf8(&request.body).unwrap_or(""))
                .into_iter()
                .collect();
        let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let Some(grant_type) = field("grant_type") else {
            let description =
                "The request body must contain the following parameter: 'grant_type'.";
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                description,
                request_id,
            );
        };
        if grant_type != "client_credentials" {
            let description = format!("The provided value for the input parameter 'grant_type' is not valid: '{grant_type}'. This simulator supports only client_credentials.");
            return aadsts(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &description,
                request_id,
            );
        }
        let Some(client_id) = field("client_id") else {
            let description = "The request body must contain the following parameter: 'client_id'.";
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                description,
                request_id,
            );
        };
        if client_id != self.config.client_id {
            let description = format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'.");
            return aadsts(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &description,
                request_id,
            );
        }
        if field("scope") != Some(GRAPH_DEFAULT_SCOPE) {
            let description = format!("The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier; expected '{GRAPH_DEFAULT_SCOPE}'.");
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &description,
                request_id,
            );
        }
        if field("client_secret") != Some(self.config.client_secret.as_str()) {
            let description = format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.");
            return aadsts(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &description,
                request_id,
            );
        }

        let token = format!(
            "{}.{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let lifetime = self.config.token_lifetime;
        self.lock_tokens()
            .access
            .insert(token.clone(), Instant::now() + lifetime);
        self.counters.record_token();
        let seconds = lifetime.as_secs();
        SimResponse::json(
            StatusCode::OK,
            &json!({
                "token_type": "Bearer",
                "expires_in": seconds,
                "ext_expires_in": seconds,
                "access_token": token,
            }),
        )
    }

    /// Checks the `Authorization: Bearer` access token of a Graph call.
    ///
    /// Fails with 401 `InvalidAuthenticationToken` when the header is missing or
    /// malformed, or the token is unknown or expired.
    pub(crate) fn authenticate(&self, request: &SimRequest) -> Result<(), GraphError> {
        let token = request
            .header(header::AUTHORIZATION.as_str())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| GraphError::unauthenticated("Access token is empty."))?;
        let tokens = self.lock_tokens();
        match tokens.access.get(&token) {
            None => Err(GraphError::unauthenticated(
                "Access token validation failure. Invalid audience or signature.",
            )),
            Some(expires) if *expires <= Instant::now() => Err(GraphError::unauthenticated(
                "Lifetime validation failed, the token is expired.",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Makes every access token expire now.
    pub(crate) fn expire_tokens(&self) {
        let now = Instant::now();
        for expires in self.lock_tokens().access.values_mut() {
            *expires = now;
        }
    }
}
