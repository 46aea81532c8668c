//! Classification of Citrix error responses into the contract's error kinds.

use broker_http::{BrokerResponse, ErrorClassifier};
use http::StatusCode;
use vdi_contracts::{ErrorKind, ProviderError};

/// Status Citrix Cloud returns from `/me` when the site is frozen (hibernated after
/// inactivity); citrix-daas-rest-go then activates the site, which the gateway never does.
pub const FROZEN_SITE_STATUS: u16 = 530;

/// Maximum excerpt of a non-JSON body quoted in an error message.
const EXCERPT_LEN: usize = 160;

/// Classifies Citrix responses: reads both error shapes (`ErrorResponse` with `Type`, `Detail`,
/// `Parameters`, and `ErrorData` with `ErrorMessage`, `ErrorDetails`), tolerates HTML and
/// empty bodies, and quotes `citrix-transactionid` so Citrix support can find the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CitrixClassifier;

impl ErrorClassifier for CitrixClassifier {
    fn classify(&self, response: &BrokerResponse) -> ProviderError {
        let transaction = response
            .request_id
            .as_deref()
            .or_else(|| response.header_str("citrix-transactionid"));
        status_error(
            response.method.as_str(),
            &response.path,
            response.status.as_u16(),
            &response.body,
            transaction,
        )
    }
}

/// Builds the error of a failed request from its status and body. `$batch` items use it too,
/// because their results carry a status and a body but no HTTP response.
pub fn status_error(
    method: &str,
    path: &str,
    status: u16,
    body: &[u8],
    transaction: Option<&str>,
) -> ProviderError {
    let detail = error_detail(body);
    let mut message = format!("{method} {path} returned {status}");
    if status == FROZEN_SITE_STATUS {
        message.push_str(
            ": the Citrix Cloud site is frozen (hibernated after inactivity); an administrator must activate it in Citrix Cloud before the gateway can manage it",
        );
    }
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    if let Some(id) = transaction {
        message.push_str(&format!(" (citrix-transactionid {id})"));
    }
    let (kind, retryable) = StatusCode::from_u16(status)
        .map(kind_for_status)
        .unwrap_or((ErrorKind::Invalid, false));
    ProviderError::new(kind, message).with_retryable(retryable)
}

/// Maps a status to a kind and whether the same request may succeed if repeated.
pub fn kind_for_status(status: StatusCode) -> (ErrorKind, bool) {
    match status.as_u16() {
        400 | 405 | 406 | 413 | 414 | 415 | 422 => (ErrorKind::Invalid, false),
        401 => (ErrorKind::Unauthenticated, false),
        403 => (ErrorKind::Forbidden, false),
        404 | 410 => (ErrorKind::NotFound, false),
        409 | 412 => (ErrorKind::Conflict, false),
        408 => (ErrorKind::Unavailable, true),
        429 => (ErrorKind::RateLimited, true),
        // Only an administrator's activation thaws a frozen site, so repeating is useless.
        FROZEN_SITE_STATUS => (ErrorKind::Unavailable, false),
        501 | 505 => (ErrorKind::Unavailable, false),
        500..=599 => (ErrorKind::Unavailable, true),
        _ => (ErrorKind::Invalid, false),
    }
}

/// Extracts a readable detail from an error body of either Citrix shape, or an excerpt of a
/// body that is not JSON (gateway 502s carry HTML or nothing).
pub fn error_detail(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return String::new();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => detail_from_object(&map),
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => excerpt(&other.to_string()),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            format!("non-JSON body: {}", excerpt(&text))
        }
    }
}

fn detail_from_object(map: &serde_json::Map<String, serde_json::Value>) -> String {
    let text = |key: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut parts = Vec::new();
    // OAuth token endpoints return `error` and `error_description` instead.
    let detail = text("Detail")
        .or(text("ErrorMessage"))
        .or(text("Message"))
        .or(text("error_description"))
        .or(text("error"));
    if let Some(detail) = detail {
        parts.push(detail.to_owned());
    }
    if let Some(details) = text("ErrorDetails") {
        parts.push(details.to_owned());
    }
    let parameters = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Parameters"))
        .and_then(|(_, v)| v.as_array());
    if let Some(parameters) = parameters {
        let pairs: Vec<String> = parameters.iter().filter_map(parameter_text).collect();
        if !pairs.is_empty() {
            parts.push(format!("[{}]", pairs.join(", ")));
        }
    }
    if let Some(kind) = text("Type").or(text("ErrorType")) {
        parts.push(format!("({kind})"));
    }
    if parts.is_empty() {
        return excerpt(&serde_json::Value::Object(map.clone()).to_string());
    }
    parts.join(" ")
}

fn parameter_text(parameter: &serde_json::Value) -> Option<String> {
    let object = parameter.as_object()?;
    let field = |key: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    };
    Some(format!(
        "{}={}",
        field("Name")?,
        field("Value").unwrap_or_default()
    ))
}

fn excerpt(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= EXCERPT_LEN {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(EXCERPT_LEN).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;

    fn response(status: u16, body: &str, transaction: Option<&str>) -> BrokerResponse {
        let mut headers = HeaderMap::new();
        if let Some(id) = transaction {
            headers.insert(
                "citrix-transactionid",
                HeaderValue::from_str(id).expect("ascii"),
            );
        }
        BrokerResponse {
            status: StatusCode::from_u16(status).expect("valid status"),
            headers,
            body: Bytes::from(body.to_owned()),
            request_id: transaction.map(str::to_owned),
            method: Method::GET,
            path: "DeliveryGroups/EHR%20Clinicians".into(),
        }
    }

    #[test]
    fn error_response_shape() {
        let body = r#"{"Type":"https://errors-api.cloud.com/orchestration/NotFound",
                       "Detail":"Delivery group not found",
                       "Parameters":[{"Name":"nameOrId","Value":"EHR Clinicians"}]}"#;
        let error = CitrixClassifier.classify(&response(404, body, Some("tx-1")));
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(
            error.message.contains("Delivery group not found"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("nameOrId=EHR Clinicians"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("citrix-transactionid tx-1"),
            "{}",
            error.message
        );
    }

    #[test]
    fn error_data_shape_lowercase_keys() {
        let body = r#"{"errorMessage":"Name already in use","sdkErrorId":"x"}"#;
        let error = CitrixClassifier.classify(&response(409, body, None));
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert!(
            error.message.contains("Name already in use"),
            "{}",
            error.message
        );
    }

    #[test]
    fn html_bad_gateway_is_retryable() {
        let body = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        let error = CitrixClassifier.classify(&response(502, body, None));
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(error.retryable);
        assert!(error.message.contains("non-JSON body"), "{}", error.message);
    }

    #[test]
    fn empty_bad_gateway_is_retryable() {
        let error = CitrixClassifier.classify(&response(502, "", None));
        assert!(error.retryable);
        assert_eq!(
            error.message,
            "GET DeliveryGroups/EHR%20Clinicians returned 502"
        );
    }

    #[test]
    fn frozen_site_is_explained() {
        let error = CitrixClassifier.classify(&response(530, "", Some("tx-9")));
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(!error.retryable);
        assert!(error.message.contains("frozen"), "{}", error.message);
        assert!(
            error.message.contains("activate it in Citrix Cloud"),
            "{}",
            error.message
        );
    }

    #[test]
    fn kinds_per_status() {
        let cases = [
            (400, ErrorKind::Invalid, false),
            (401, ErrorKind::Unauthenticated, false),
            (403, ErrorKind::Forbidden, false),
            (404, ErrorKind::NotFound, false),
            (409, ErrorKind::Conflict, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Unavailable, true),
            (503, ErrorKind::Unavailable, true),
            (504, ErrorKind::Unavailable, true),
        ];
        for (status, kind, retryable) in cases {
            let error = CitrixClassifier.classify(&response(status, "{}", None));
            assert_eq!(error.kind, kind, "status {status}");
            assert_eq!(error.retryable, retryable, "status {status}");
        }
    }

    #[test]
    fn long_html_is_cut() {
        let body = format!("<html>{}</html>", "x".repeat(1000));
        let detail = error_detail(body.as_bytes());
        assert!(detail.len() < 200, "{detail}");
    }
}
