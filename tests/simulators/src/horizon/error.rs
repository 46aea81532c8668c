//! Horizon error responses in the three body shapes clients must handle.
//!
//! Most Horizon Server errors carry `{"status", "timestamp", "error_message"}`. Validation
//! errors list `errors[].error_message`, and a proxy in front of the server may return
//! plain text. The `horizon_error_style` knob picks the shape.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::http::SimResponse;
use crate::common::HorizonErrorStyle;

/// An error a handler returns; the server renders it in the configured style.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub(crate) type ApiResult = Result<SimResponse, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{kind} {id} not found."))
    }

    pub fn invalid_body(error: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid request body: {error}."))
    }

    /// Renders the error in `style`.
    pub fn render(&self, style: HorizonErrorStyle) -> SimResponse {
        let status_name = self
            .status
            .canonical_reason()
            .unwrap_or("ERROR")
            .to_uppercase()
            .replace(' ', "_");
        let timestamp = chrono::Utc::now().timestamp_millis();
        match style {
            HorizonErrorStyle::ErrorMessage => SimResponse::json(
                self.status,
                &json!({
                    "status": status_name,
                    "timestamp": timestamp,
                    "error_message": self.message,
                }),
            ),
            HorizonErrorStyle::ErrorsArray => SimResponse::json(
                self.status,
                &json!({
                    "status": status_name,
                    "timestamp": timestamp,
                    "errors": [{
                        "error_key": format!("rest.{}", status_name.to_lowercase()),
                        "error_message": self.message,
                    }],
                }),
            ),
            HorizonErrorStyle::PlainText => {
                let mut response = SimResponse::empty(self.status);
                response.content_type = Some("text/plain; charset=utf-8");
                response.body = self.message.clone().into();
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_styles() {
        let error = ApiError::bad_request("size must be at most 1000.");
        let body: serde_json::Value =
            serde_json::from_slice(&error.render(HorizonErrorStyle::ErrorMessage).body).unwrap();
        assert_eq!(body["error_message"], "size must be at most 1000.");
        assert_eq!(body["status"], "BAD_REQUEST");

        let body: serde_json::Value =
            serde_json::from_slice(&error.render(HorizonErrorStyle::ErrorsArray).body).unwrap();
        assert_eq!(
            body["errors"][0]["error_message"],
            "size must be at most 1000."
        );

        let plain = error.render(HorizonErrorStyle::PlainText);
        assert_eq!(&plain.body[..], b"size must be at most 1000.");
        assert_eq!(plain.content_type, Some("text/plain; charset=utf-8"));
    }
}
