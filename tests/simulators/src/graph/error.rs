//! Microsoft Graph error responses:
//! `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`
//! (Microsoft Graph "Error responses" reference).

use axum::http::StatusCode;
use serde_json::json;

use crate::common::http::SimResponse;

/// An error a handler returns; the server renders it with the request's ids.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Wait in seconds for a 429 or 503, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

pub(crate) type GraphResult = Result<SimResponse, GraphError>;

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with the generic Graph code.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 with the code Entra ID directory endpoints use.
    pub fn directory_bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// 404 for a directory object, with the code and message Entra ID endpoints use.
    pub fn directory_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property \
                 objects are not present."
            ),
        )
    }

    /// 404 for an Intune or Cloud PC object.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("{kind} with id '{id}' was not found."),
        )
    }

    /// 404 for a path the simulator does not serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BadRequest",
            format!("Resource not found for the segment in '{path}'."),
        )
    }

    /// 405 for a known path with an unsupported method.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            format!("The HTTP method '{method}' is not allowed for this resource."),
        )
    }

    pub fn invalid_body(error: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid request body: {error}."))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        Self {
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
        }
    }

    /// Renders the error with the ids of the request that failed.
    pub fn render(&self, request_id: &str, client_request_id: &str) -> SimResponse {
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            },
        });
        let response = SimResponse::json(self.status, &body);
        match self.retry_after {
            Some(seconds) => {
                response.with_header(axum::http::header::RETRY_AFTER, seconds.to_string())
            }
            None => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_inner_error_ids() {
        let error =
            GraphError::unauthenticated("Lifetime validation failed, the token is expired.");
        let response = error.render("req-1", "client-1");
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
        assert_eq!(body["error"]["innerError"]["request-id"], "req-1");
        assert_eq!(body["error"]["innerError"]["client-request-id"], "client-1");
        assert!(body["error"]["innerError"]["date"].is_string());
    }

    #[test]
    fn throttled_error_carries_retry_after() {
        let response = GraphError::too_many_requests("slow down", Some(3)).render("r", "c");
        let header = response.header(&axum::http::header::RETRY_AFTER);
        assert_eq!(header, Some("3"));
    }
}
