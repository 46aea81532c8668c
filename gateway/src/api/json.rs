//! A JSON body extractor whose rejections use the API's error shape: 415 for another content
//! type, 413 over the size limit, 400 with serde's message (line and column) otherwise.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body; an empty body decodes as `{}` when `T` allows it.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Body size limit, stored as a request extension by the router.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(1024 * 1024, |l| l.0);
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        if bytes.is_empty() {
            return serde_json::from_str("{}").map(ApiJson).map_err(|e| {
                ApiError::invalid(format!("request body is empty and must be JSON: {e}"))
            });
        }
        match content_type.as_deref() {
            Some(value) if is_json(value) => {}
            Some(other) => return Err(ApiError::media_type(other)),
            None => return Err(ApiError::media_type("none")),
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5 && essence.to_ascii_lowercase().ends_with("+json"))
}
