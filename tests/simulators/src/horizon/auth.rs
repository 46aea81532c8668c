//! `POST /rest/login`, `/rest/refresh` and `/rest/logout`, and the bearer check of every
//! other call.
//!
//! Login takes `{username, password, domain}` and returns `{access_token, refresh_token}`.
//! Refresh takes `{refresh_token}` and returns a new `{access_token}` without rotating the
//! refresh token. Logout takes `{refresh_token}` and ends both (Horizon Server REST API
//! 2111). Expired or unknown access tokens get 401; an expired or unknown refresh token
//! gets 400, so the client must log in again.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::{header, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

/// Issued tokens of one simulator.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    /// Access token to its expiry and the refresh token it came with.
    access: HashMap<String, (Instant, String)>,
    /// Refresh token to its expiry.
    refresh: HashMap<String, Instant>,
}

#[derive(Debug, Deserialize)]
struct AuthLogin {
    username: Option<String>,
    password: Option<String>,
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefreshToken {
    refresh_token: Option<String>,
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Shared {
    fn issue_access(&self, refresh: &str) -> String {
        let token = new_token();
        let expires = Instant::now() + self.config.access_token_lifetime;
        self.lock_tokens()
            .access
            .insert(token.clone(), (expires, refresh.to_string()));
        self.counters.record_token();
        token
    }

    /// Handles `POST /rest/login`.
    pub(crate) fn login(&self, request: &SimRequest) -> ApiResult {
        let body: AuthLogin =
            serde_json::from_slice(&request.body).map_err(ApiError::invalid_body)?;
        let (Some(username), Some(password), Some(domain)) =
            (body.username, body.password, body.domain)
        else {
            return Err(ApiError::bad_request(
                "username, password and domain are required.",
            ));
        };
        if username.contains('@') {
            return Err(ApiError::bad_request(
                "UPN user names are not supported; send the user name and the domain separately.",
            ));
        }
        let valid = username.eq_ignore_ascii_case(&self.config.username)
            && domain.eq_ignore_ascii_case(&self.config.domain)
            && password == self.config.password;
        if !valid {
            return Err(ApiError::unauthorized(
                "Invalid user name, password or domain.",
            ));
        }
        let refresh = new_token();
        let refresh_expires = Instant::now() + self.config.refresh_token_lifetime;
        self.lock_tokens()
            .refresh
            .insert(refresh.clone(), refresh_expires);
        let access = self.issue_access(&refresh);
        Ok(SimResponse::json(
            StatusCode::OK,
            &json!({"access_token": access, "refresh_token": refresh}),
        ))
    }

    fn refresh_token_of(&self, request: &SimRequest) -> Result<String, ApiError> {
        let body: RefreshToken =
            serde_json::from_slice(&request.body).map_err(ApiError::invalid_body)?;
        body.refresh_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::bad_request("refresh_token is required."))
    }

    /// Handles `POST /rest/refresh`.
    pub(crate) fn refresh(&self, request: &SimRequest) -> ApiResult {
        let refresh = self.refresh_token_of(request)?;
        let valid = {
            let mut tokens = self.lock_tokens();
            match tokens.refresh.get(&refresh) {
                Some(expires) if *expires > Instant::now() => true,
                Some(_) => {
                    tokens.refresh.remove(&refresh);
                    false
                }
                None => false,
            }
        };
        if !valid {
            return Err(ApiError::bad_request(
                "The refresh token is invalid or expired; log in again.",
            ));
        }
        let access = self.issue_access(&refresh);
        Ok(SimResponse::json(
            StatusCode::OK,
            &json!({"access_token": access}),
        ))
    }

    /// Handles `POST /rest/logout`: ends the refresh token and every access token issued
    /// with it.
    pub(crate) fn logout(&self, request: &SimRequest) -> ApiResult {
        let refresh = self.refresh_token_of(request)?;
        let mut tokens = self.lock_tokens();
        if tokens.refresh.remove(&refresh).is_none() {
            return Err(ApiError::bad_request("The refresh token is invalid."));
        }
        tokens.access.retain(|_, (_, owner)| *owner != refresh);
        Ok(SimResponse::empty(StatusCode::OK))
    }

    /// Checks the `Authorization: Bearer` access token.
    ///
    /// Fails with 401 when the header is missing or malformed, or the token is unknown,
    /// expired or logged out.
    pub(crate) fn authenticate(&self, request: &SimRequest) -> Result<(), ApiError> {
        let token = request
            .header(header::AUTHORIZATION.as_str())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("Missing or malformed 'Authorization: Bearer' header.")
            })?;
        let mut tokens = self.lock_tokens();
        match tokens.access.get(&token) {
            None => Err(ApiError::unauthorized("The access token is not valid.")),
            Some((expires, _)) if *expires <= Instant::now() => {
                tokens.access.remove(&token);
                Err(ApiError::unauthorized("The access token has expired."))
            }
            Some(_) => Ok(()),
        }
    }

    /// Makes every access token expire now, and every refresh token too when
    /// `refresh_too` is set.
    pub(crate) fn expire_tokens(&self, refresh_too: bool) {
        let now = Instant::now();
        let mut tokens = self.lock_tokens();
        for (expires, _) in tokens.access.values_mut() {
            *expires = now;
        }
        if refresh_too {
            for expires in tokens.refresh.values_mut() {
                *expires = now;
            }
        }
    }
}
