//! Paging with `limit` and an opaque `continuationToken`, and case-insensitive JSON bodies.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::model::collection;
use crate::common::http::{SimRequest, SimResponse};

/// Page size when the request has no `limit`, as the Citrix paging guide describes.
pub const DEFAULT_LIMIT: usize = 250;
/// Largest `limit` accepted; larger values get 400, as the Citrix paging guide describes.
pub const MAX_LIMIT: usize = 1000;

const TOKEN_PREFIX: &str = "offset:";

fn encode_token(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str, total: usize) -> Result<usize, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidContinuationToken",
            format!("The continuation token '{token}' is not valid for this query."),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let offset: usize = text
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    // A collection that shrank since the previous page (sessions ended) answers an empty
    // last page, as a server keeping a cursor would, instead of rejecting the token.
    Ok(offset.min(total))
}

/// Returns the `limit` of a request, or fails with 400 when it is not in `1..=1000`.
fn limit(request: &SimRequest) -> Result<usize, ApiError> {
    let Some(text) = request.query.get("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("limit must be an integer from 1 to {MAX_LIMIT}, got '{text}'."),
        )
        .with_parameter("ParameterName", "limit")),
    }
}

/// Renders one page of `items` as a collection, honouring `limit` and `continuationToken`.
pub(crate) fn page<T>(
    items: &[T],
    request: &SimRequest,
    mut render: impl FnMut(&T) -> Value,
) -> Result<SimResponse, ApiError> {
    let limit = limit(request)?;
    let start = match request.query.get("continuationtoken") {
        Some(token) if !token.is_empty() => decode_token(token, items.len())?,
        _ => 0,
    };
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| encode_token(end));
    let rendered = items[start..end].iter().map(&mut render).collect();
    Ok(SimResponse::json(
        StatusCode::OK,
        &collection(rendered, next, items.len()),
    ))
}

/// Renders all `items` as a single-page collection.
pub(crate) fn all(items: Vec<Value>) -> SimResponse {
    let total = items.len();
    SimResponse::json(StatusCode::OK, &collection(items, None, total))
}

/// A JSON object body read with case-insensitive keys, as the Citrix service accepts.
#[derive(Debug, Default)]
pub(crate) struct JsonBody(Map<String, Value>);

impl JsonBody {
    /// Parses a request body; an empty body is an empty object.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        Self::from_value(serde_json::from_slice(body).map_err(ApiError::invalid_body)?)
    }

    /// Wraps a JSON value that must be an object.
    pub fn from_value(value: Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(ApiError::invalid_body("expected a JSON object")),
        }
    }

    /// Returns the value of a key, compared case-insensitively; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
            .filter(|value| !value.is_null())
    }

    /// Returns whether the key is present, even with a `null` value.
    pub fn has(&self, key: &str) -> bool {
        self.0.keys().any(|name| name.eq_ignore_ascii_case(key))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ApiError::invalid_body(format!("{key} must be a string"))),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(ApiError::invalid_body(format!("{key} must be a boolean"))),
        }
    }

    /// Returns an array, or `None` when absent.
    pub fn array(&self, key: &str) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::invalid_body(format!("{key} must be an array"))),
        }
    }

    /// Returns an array of strings, or `None` when absent.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid_body(format!("{key} must hold strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Returns a nested object, or `None` when absent.
    pub fn object(&self, key: &str) -> Result<Option<JsonBody>, ApiError> {
        self.get(key).cloned().map(Self::from_value).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let token = encode_token(250);
        assert_eq!(decode_token(&token, 300).unwrap(), 250);
    }

    #[test]
    fn token_rejects_garbage() {
        assert!(decode_token("not-a-token!", 10).is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("page:3"), 10).is_err());
    }

    #[test]
    fn token_past_shrunk_collection_ends() {
        assert_eq!(decode_token(&encode_token(11), 10).unwrap(), 10);
    }

    #[test]
    fn body_keys_are_case_insensitive() {
        let body = JsonBody::parse(br#"{"name":"x","ENABLED":true,"Description":null}"#).unwrap();
        assert_eq!(body.string("Name").unwrap().as_deref(), Some("x"));
        assert_eq!(body.boolean("Enabled").unwrap(), Some(true));
        assert!(body.get("Description").is_none());
        assert!(body.has("description"));
    }
}
