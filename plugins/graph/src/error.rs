//! The Graph error shape and the classification of failed Graph and identity platform
//! responses into the contract's error kinds.
//!
//! Microsoft Graph v1.0 returns `{"error":{"code","message","innerError":{"request-id",
//! "client-request-id","date"}}}`; the identity platform's token endpoint returns
//! `{"error":"invalid_client","error_description":"AADSTS..."}`. Both are parsed here, and every
//! classified failure is logged with its `request-id`.

use broker_http::classify::kind_of;
use broker_http::redact::{body_excerpt, redact_path};
use broker_http::{BrokerResponse, ErrorClassifier};
use vdi_contracts::{ErrorKind, ProviderError};

/// Maximum characters of Graph error text quoted in a message.
const DETAIL_LEN: usize = 300;

/// A failed Graph response, attached as the `source` of the [`ProviderError`] so callers can
/// branch on the status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Graph error {status} {code}: {message}")]
pub struct GraphError {
    /// HTTP status.
    pub status: u16,
    /// Graph `error.code`, or the identity platform's `error`.
    pub code: String,
    /// Graph `error.message`, or the identity platform's `error_description`.
    pub message: String,
    /// `request-id` from `innerError` or the response header.
    pub request_id: Option<String>,
    /// `client-request-id` from `innerError` or the response header.
    pub client_request_id: Option<String>,
}

impl GraphError {
    /// Parses a Graph or identity platform error body; unknown shapes keep an excerpt.
    pub fn parse(status: u16, body: &[u8], header_request_id: Option<&str>) -> Self {
        let value = serde_json::from_slice::<serde_json::Value>(body).ok();
        let error = value.as_ref().and_then(|v| v.get("error"));
        let (code, message, inner) = match error {
            Some(serde_json::Value::Object(map)) => (
                text(map.get("code")),
                text(map.get("message")),
                map.get("innerError").or_else(|| map.get("innererror")),
            ),
            Some(serde_json::Value::String(code)) => (
                code.clone(),
                text(value.as_ref().and_then(|v| v.get("error_description"))),
                None,
            ),
            _ => (String::new(), shorten(&body_excerpt(body)), None),
        };
        let inner_text = |key: &str| {
            inner
                .and_then(|i| i.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            status,
            code,
            message: shorten(&message),
            request_id: inner_text("request-id").or_else(|| header_request_id.map(str::to_owned)),
            client_request_id: inner_text("client-request-id"),
        }
    }

    /// Returns the [`GraphError`] attached to a provider error, if any.
    pub fn of(error: &ProviderError) -> Option<&GraphError> {
        error.source.as_deref()?.downcast_ref::<GraphError>()
    }

    /// Returns whether this is the response to adding a member that is already in the group.
    ///
    /// Microsoft Graph v1.0 `POST /groups/{id}/members/$ref` returns 400 `Request_BadRequest`
    /// "One or more added object references already exist". The code alone is generic, so
    /// the message is the only way to tell.
    pub fn is_already_member(&self) -> bool {
        self.status == 400 && self.message.to_ascii_lowercase().contains("already exist")
    }
}

fn text(value: Option<&serde_json::Value>) -> String {
    value
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn shorten(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= DETAIL_LEN {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(DETAIL_LEN).collect();
    format!("{cut}...")
}

/// Classifies Graph and token endpoint responses by status and error code.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphClassifier;

impl ErrorClassifier for GraphClassifier {
    fn classify(&self, response: &BrokerResponse) -> ProviderError {
        let status = response.status.as_u16();
        let graph = GraphError::parse(status, &response.body, response.request_id.as_deref());
        let path = redact_path(response.path.split('?').next().unwrap_or_default());
        tracing::warn!(
            status,
            code = %graph.code,
            broker_request_id = graph.request_id.as_deref().unwrap_or("none"),
            client_request_id = graph.client_request_id.as_deref().unwrap_or("none"),
            method = %response.method,
            path = %path,
            "Graph request failed."
        );
        let (kind, retryable) = classify_status(status, &graph.code);
        let mut message = format!("{} {path} returned {status}", response.method);
        if let Some(id) = &graph.request_id {
            message.push_str(&format!(" (request-id {id})"));
        }
        if !graph.code.is_empty() {
            message.push_str(&format!(" {}", graph.code));
        }
        if !graph.message.is_empty() {
            message.push_str(&format!(": {}", graph.message));
        }
        message.push_str(hint(status, &graph.code));
        ProviderError::new(kind, message)
            .with_retryable(retryable)
            .with_source(graph)
    }
}

/// Returns the kind and retryable flag of a Graph status and code.
pub fn classify_status(status: u16, code: &str) -> (ErrorKind, bool) {
    match (status, code) {
        // Identity platform: a wrong secret or client id is `invalid_client` with 400 or 401.
        (400 | 401, "invalid_client" | "unauthorized_client" | "invalid_grant") => {
            (ErrorKind::Unauthenticated, false)
        }
        (_, "activityLimitReached" | "TooManyRequests") => (ErrorKind::RateLimited, true),
        // Graph: 412 is a failed precondition on a changed object, 423 a locked resource that
        // frees itself.
        (412, _) => (ErrorKind::Conflict, false),
        (423, _) => (ErrorKind::Conflict, true),
        // Graph v1.0 returns 405 when a beta-only path is called on v1.0.
        (405, _) => (ErrorKind::Invalid, false),
        _ => kind_of(http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY)),
    }
}

fn hint(status: u16, code: &str) -> &'static str {
    match (status, code) {
        (400 | 401, "invalid_client") => {
            "; check graph.client_id and the client secret of the app registration"
        }
        (401, _) => "; the token was rejected after a fresh one was fetched; check the tenant",
        (403, _) => {
            "; grant the app registration the Graph application permission for this call \
             (and an Intune licence for Intune calls), then admin-consent it"
        }
        (404, _) => "; check that the object still exists",
        (429, _) => "; Graph is throttling; lower graph.requests_per_second if this persists",
        (500..=599, _) => "; Graph is unavailable; retry later",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_error_shape() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist.","innerError":{"date":"2024-11-05T10:00:00","request-id":"4b9e0c1a-aaaa-bbbb-cccc-000000000001","client-request-id":"4b9e0c1a-aaaa-bbbb-cccc-000000000002"}}}"#;
        let error = GraphError::parse(404, body, None);
        assert_eq!(error.code, "Request_ResourceNotFound");
        assert_eq!(
            error.request_id.as_deref(),
            Some("4b9e0c1a-aaaa-bbbb-cccc-000000000001")
        );
        assert_eq!(
            error.client_request_id.as_deref(),
            Some("4b9e0c1a-aaaa-bbbb-cccc-000000000002")
        );
    }

    #[test]
    fn parses_identity_platform_error() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let error = GraphError::parse(401, body, Some("hdr-id"));
        assert_eq!(error.code, "invalid_client");
        assert_eq!(error.request_id.as_deref(), Some("hdr-id"));
        assert_eq!(
            classify_status(401, &error.code),
            (ErrorKind::Unauthenticated, false)
        );
    }

    #[test]
    fn already_member_is_recognised() {
        let body = br#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#;
        assert!(GraphError::parse(400, body, None).is_already_member());
        let other =
            br#"{"error":{"code":"Request_BadRequest","message":"Invalid object identifier."}}"#;
        assert!(!GraphError::parse(400, other, None).is_already_member());
    }

    #[test]
    fn status_table() {
        let cases = [
            (429, "", ErrorKind::RateLimited, true),
            (503, "serviceNotAvailable", ErrorKind::Unavailable, true),
            (423, "resourceLocked", ErrorKind::Conflict, true),
            (412, "", ErrorKind::Conflict, false),
            (405, "", ErrorKind::Invalid, false),
            (
                403,
                "Authorization_RequestDenied",
                ErrorKind::Forbidden,
                false,
            ),
        ];
        for (status, code, kind, retryable) in cases {
            assert_eq!(
                classify_status(status, code),
                (kind, retryable),
                "{status} {code}"
            );
        }
    }
}
