//! Citrix `ErrorResponse` bodies.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::http::SimResponse;

/// Prefix of the `Type` URI of Citrix Orchestration errors.
const ERROR_TYPE_PREFIX: &str = "https://errors-api.cloud.com/cvad/";

/// An error response, rendered as a Citrix `ErrorResponse {Type, Detail, Parameters}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub name: &'static str,
    pub detail: String,
    pub parameters: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            name,
            detail: detail.into(),
            parameters: Vec::new(),
        }
    }

    /// Adds a `{Name, Value}` entry to `Parameters`.
    pub fn with_parameter(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parameters.push((name.to_string(), value.into()));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", detail)
    }

    pub fn not_found(kind: &str, name_or_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ObjectNotFound",
            format!("{kind} '{name_or_id}' was not found."),
        )
        .with_parameter("ObjectType", kind)
        .with_parameter("ObjectName", name_or_id)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    pub fn conflict(kind: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "ObjectAlreadyExists",
            format!("{kind} '{name}' already exists."),
        )
        .with_parameter("ObjectType", kind)
        .with_parameter("ObjectName", name)
    }

    pub fn invalid_body(error: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("The request body is invalid: {error}."))
    }

    /// Renders the error as a response.
    pub fn into_response(self) -> SimResponse {
        let mut body = json!({
            "Type": format!("{ERROR_TYPE_PREFIX}{}", self.name),
            "Detail": self.detail,
        });
        if !self.parameters.is_empty() {
            body["Parameters"] = self
                .parameters
                .into_iter()
                .map(|(name, value)| json!({"Name": name, "Value": value}))
                .collect();
        }
        SimResponse::json(self.status, &body)
    }
}

impl From<ApiError> for SimResponse {
    fn from(error: ApiError) -> Self {
        error.into_response()
    }
}
