//! Turning a non-success response into a [`ProviderError`] with a kind and a retryable flag.

use http::StatusCode;
use vdi_contracts::{ErrorKind, ProviderError};

use crate::client::BrokerResponse;
use crate::redact::{body_excerpt, redact_path};

/// Classifies non-success responses of one broker; the retry loop reads only the result's
/// `retryable` flag and, for 429 and 503, the response's `Retry-After`.
pub trait ErrorClassifier: Send + Sync + std::fmt::Debug {
    /// Classifies a response whose status is not a success.
    fn classify(&self, response: &BrokerResponse) -> ProviderError;
}

/// Classification by status code alone: 400/422 invalid, 401 unauthenticated, 403 forbidden,
/// 404 not found, 409 conflict, 408 and 5xx unavailable (retryable), 429 rate limited
/// (retryable).
///
/// Other 4xx statuses are `invalid` and any other status (an unfollowed redirect, for
/// example) is `internal`; neither is retried.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl ErrorClassifier for DefaultClassifier {
    fn classify(&self, response: &BrokerResponse) -> ProviderError {
        let (kind, retryable) = kind_of(response.status);
        ProviderError::new(kind, describe(response, hint(response))).with_retryable(retryable)
    }
}

/// Returns the error kind and retryable flag the default classification gives a status.
pub fn kind_of(status: StatusCode) -> (ErrorKind, bool) {
    match status.as_u16() {
        400 | 422 => (ErrorKind::Invalid, false),
        401 => (ErrorKind::Unauthenticated, false),
        403 => (ErrorKind::Forbidden, false),
        404 => (ErrorKind::NotFound, false),
        409 => (ErrorKind::Conflict, false),
        408 | 500..=599 => (ErrorKind::Unavailable, true),
        429 => (ErrorKind::RateLimited, true),
        400..=499 => (ErrorKind::Invalid, false),
        _ => (ErrorKind::Internal, false),
    }
}

/// Describes a failed response for an error message: status, method, path, the broker's
/// request id when present, and the broker's error text, then `next_step`.
///
/// Providers with their own classifier may reuse this to keep messages uniform. The broker's
/// text is the `message`-like field of a JSON body, or an excerpt of any other body.
pub fn describe(response: &BrokerResponse, next_step: &str) -> String {
    let mut message = format!(
        "{} {} returned status {}",
        response.method,
        redact_path(&response.path),
        response.status
    );
    if let Some(id) = &response.request_id {
        message.push_str(&format!(" (broker request id {id})"));
    }
    message.push_str(": ");
    message.push_str(&broker_text(&response.body));
    if !next_step.is_empty() {
        message.push_str("; ");
        message.push_str(next_step);
    }
    message
}

/// Returns the broker's own error message from a JSON body, or else a body excerpt.
fn broker_text(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            "/message",
            "/Message",
            "/error/message",
            "/error_description",
            "/ErrorMessage",
            "/errorMessage",
            "/detail",
        ];
        for pointer in candidates {
            if let Some(text) = value.pointer(pointer).and_then(|v| v.as_str()) {
                return format!("{text:?}");
            }
        }
    }
    body_excerpt(body)
}

fn hint(response: &BrokerResponse) -> &'static str {
    match response.status.as_u16() {
        401 => "check the credentials configured for this broker",
        403 => "grant the service account the right for this operation",
        404 => "check that the object still exists on the broker",
        409 => "the broker's current state does not allow the change; retry after it settles",
        429 => "the broker is throttling; lower requests_per_second if this persists",
        408 | 500..=599 => "the broker is unavailable; retry later",
        300..=399 => "the broker redirected; set base_url to the final address",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    use super::*;

    fn response(status: u16, body: &'static str) -> BrokerResponse {
        BrokerResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
            request_id: None,
            method: Method::GET,
            path: "Machines/m1".to_owned(),
        }
    }

    #[test]
    fn classify_table() {
        let cases = [
            (400, ErrorKind::Invalid, false),
            (401, ErrorKind::Unauthenticated, false),
            (403, ErrorKind::Forbidden, false),
            (404, ErrorKind::NotFound, false),
            (408, ErrorKind::Unavailable, true),
            (409, ErrorKind::Conflict, false),
            (410, ErrorKind::Invalid, false),
            (422, ErrorKind::Invalid, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Unavailable, true),
            (502, ErrorKind::Unavailable, true),
            (503, ErrorKind::Unavailable, true),
            (530, ErrorKind::Unavailable, true),
            (302, ErrorKind::Internal, false),
        ];
        for (status, kind, retryable) in cases {
            let error = DefaultClassifier.classify(&response(status, ""));
            assert_eq!(error.kind, kind, "status {status}");
            assert_eq!(error.retryable, retryable, "status {status}");
        }
    }

    #[test]
    fn message_names_status_method_and_path() {
        let error = DefaultClassifier.classify(&response(404, ""));
        assert!(
            error.message.contains("GET Machines/m1"),
            "{}",
            error.message
        );
        assert!(error.message.contains("404"), "{}", error.message);
    }

    #[test]
    fn message_includes_request_id() {
        let mut response = response(500, "");
        response.request_id = Some("tx-42".to_owned());
        let error = DefaultClassifier.classify(&response);
        assert!(error.message.contains("tx-42"), "{}", error.message);
    }

    #[test]
    fn message_quotes_html_body_start() {
        let body = "<html><body>Bad gateway from the load balancer</body></html>";
        let error = DefaultClassifier.classify(&response(502, body));
        assert!(
            error.message.contains("<html><body>Bad gateway"),
            "{}",
            error.message
        );
    }

    #[test]
    fn message_truncates_long_body() {
        let body: &'static str = Box::leak("y".repeat(1_000).into_boxed_str());
        let error = DefaultClassifier.classify(&response(502, body));
        assert!(
            !error.message.contains(&"y".repeat(201)),
            "{}",
            error.message
        );
        assert!(
            error.message.contains(&"y".repeat(200)),
            "{}",
            error.message
        );
    }

    #[test]
    fn message_uses_json_error_text() {
        let body = r#"{"ErrorCode": "MachineNotFound", "Message": "Machine m1 not found"}"#;
        let error = DefaultClassifier.classify(&response(404, body));
        assert!(
            error.message.contains("Machine m1 not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn message_masks_query_secret() {
        let mut response = response(400, "");
        response.path = "token?client_secret=abc".to_owned();
        let error = DefaultClassifier.classify(&response);
        assert!(!error.message.contains("abc"), "{}", error.message);
    }
}
