//! Classification of Horizon error responses, and checks of bulk responses that return HTTP 200
//! with a status per item.

use broker_http::classify::kind_of;
use broker_http::redact::body_excerpt;
use broker_http::{BrokerResponse, ErrorClassifier};
use vdi_contracts::{ErrorKind, ProviderError};

use crate::model::{BulkEntitlementResponse, BulkItemResponse};

/// Maximum characters of broker error text quoted in one message.
const DETAIL_LEN: usize = 300;

/// Classifies Horizon responses by status, quoting the body's `error_message`, the per-item
/// `error_messages`, or the start of a plain-text body.
#[derive(Debug, Clone, Copy, Default)]
pub struct HorizonClassifier;

impl ErrorClassifier for HorizonClassifier {
    fn classify(&self, response: &BrokerResponse) -> ProviderError {
        let status = response.status.as_u16();
        let path = response.path.split('?').next().unwrap_or_default();
        let mut message = format!("{} {path} returned {status}", response.method);
        let detail = error_detail(&response.body);
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(&detail);
        }

        // Horizon Server REST API 2111 returns 400 or 500 for a rejected or expired refresh
        // token. Retrying cannot help, so the token source logs in again at once instead.
        if path.trim_matches('/').eq_ignore_ascii_case("refresh") {
            message.push_str("; the refresh token was rejected, so the gateway logs in again");
            return ProviderError::new(ErrorKind::Unauthenticated, message).with_retryable(false);
        }

        let (kind, retryable) = kind_of(response.status);
        let hint = match status {
            401 => "; check horizon.username, horizon.password and horizon.domain",
            403 => "; grant the service account's Horizon role the privilege for this operation",
            404 => "; check that the object still exists on the Connection Server",
            409 => "; the Connection Server's state does not allow this now, or Cloud Pod Architecture is not initialised",
            429 => "; the Connection Server is throttling; lower horizon.requests_per_second if this persists",
            500..=599 => "; the Connection Server is unavailable; retry later",
            _ => "",
        };
        message.push_str(hint);
        ProviderError::new(kind, message).with_retryable(retryable)
    }
}

/// Extracts the broker's error text: `error_message` (Horizon's `APIError`), then the
/// `error_messages` of bulk items, then an excerpt of a body that is not JSON.
pub fn error_detail(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return String::new();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return shorten(&body_excerpt(body));
    };
    let mut texts = Vec::new();
    collect_messages(&value, &mut texts, 0);
    if texts.is_empty() {
        return shorten(&body_excerpt(body));
    }
    shorten(&texts.join("; "))
}

/// Gathers `error_message` strings and `error_messages` arrays, a few levels deep, so both a
/// single error object and a list of bulk items are read.
fn collect_messages(value: &serde_json::Value, texts: &mut Vec<String>, depth: usize) {
    if depth > 4 {
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            if let Some(text) = map.get("error_message").and_then(|v| v.as_str()) {
                texts.push(text.trim().to_owned());
            }
            if let Some(items) = map.get("error_messages").and_then(|v| v.as_array()) {
                texts.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_owned));
            }
            if let Some(errors) = map.get("errors") {
                collect_messages(errors, texts, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_messages(item, texts, depth + 1);
            }
        }
        serde_json::Value::String(text) => texts.push(text.clone()),
        _ => {}
    }
}

fn shorten(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= DETAIL_LEN {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(DETAIL_LEN).collect();
    format!("{cut}...")
}

fn is_success(status: Option<u16>) -> bool {
    status.is_none_or(|code| (200..300).contains(&code))
}

fn messages_text(messages: &[String]) -> String {
    if messages.is_empty() {
        "no error message".to_owned()
    } else {
        messages.join("; ")
    }
}

/// A failed item of a bulk action that returned HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    /// Id of the item (a session, machine or user or group SID).
    pub id: String,
    /// Status and messages of the item.
    pub message: String,
}

/// Returns the failed items of a bulk action response (`BulkItemResponseInfo` list). An item
/// without a status counts as failed only when it carries error messages.
pub fn bulk_failures(items: &[BulkItemResponse]) -> Vec<ItemFailure> {
    items
        .iter()
        .filter(|item| {
            !is_success(item.status_code)
                || (item.status_code.is_none() && !item.error_messages.is_empty())
        })
        .map(|item| ItemFailure {
            id: item.id.clone().unwrap_or_else(|| "<no id>".to_owned()),
            message: format!(
                "status {}: {}",
                item.status_code
                    .map_or("unknown".to_owned(), |s| s.to_string()),
                messages_text(&item.error_messages)
            ),
        })
        .collect()
}

/// Returns the SIDs an entitlement change failed for, from its bulk response.
///
/// Each pool's `details` carry one result per SID. A pool that failed as a whole without
/// details fails every SID of `requested`.
pub fn entitlement_failures(
    responses: &[BulkEntitlementResponse],
    requested: &[String],
) -> Vec<ItemFailure> {
    let mut failures = Vec::new();
    for response in responses {
        let mut detail_failed = false;
        for detail in &response.details {
            let failed = !is_success(detail.status_code)
                || (detail.status_code.is_none() && !detail.error_messages.is_empty());
            if failed {
                detail_failed = true;
                failures.push(ItemFailure {
                    id: detail
                        .ad_user_or_group_id
                        .clone()
                        .unwrap_or_else(|| "<no SID>".to_owned()),
                    message: format!(
                        "status {}: {}",
                        detail
                            .status_code
                            .map_or("unknown".to_owned(), |s| s.to_string()),
                        messages_text(&detail.error_messages)
                    ),
                });
            }
        }
        if !is_success(response.status_code) && !detail_failed {
            let message = format!(
                "status {} for pool {}: {}",
                response.status_code.unwrap_or_default(),
                response.id.as_deref().unwrap_or("<no id>"),
                messages_text(&response.error_messages)
            );
            failures.extend(requested.iter().map(|sid| ItemFailure {
                id: sid.clone(),
                message: message.clone(),
            }));
        }
    }
    failures
}

/// Builds the error of an entitlement change that failed for some SIDs.
pub fn entitlement_error(action: &str, pool: &str, failures: &[ItemFailure]) -> ProviderError {
    let listed: Vec<String> = failures
        .iter()
        .map(|f| format!("{} ({})", f.id, f.message))
        .collect();
    ProviderError::new(
        ErrorKind::Conflict,
        format!(
            "Horizon answered 200 to {action} on application pool {pool} but rejected SID {}; check that each SID still exists in Active Directory",
            listed.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use broker_http::BrokerResponse;
    use http::{HeaderMap, Method, StatusCode};
    use serde_json::json;

    use super::*;

    fn response(status: u16, path: &str, body: &str) -> BrokerResponse {
        BrokerResponse {
            status: StatusCode::from_u16(status).expect("valid status"),
            headers: HeaderMap::new(),
            body: body.to_owned().into_bytes().into(),
            request_id: None,
            method: Method::GET,
            path: path.to_owned(),
        }
    }

    #[test]
    fn error_message_is_quoted() {
        let body = r#"{"error_message": "Desktop pool with id p9 not found"}"#;
        let error = HorizonClassifier.classify(&response(404, "inventory/v5/desktop-pools", body));
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(
            error.message.contains("Desktop pool with id p9 not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn item_error_messages_are_quoted() {
        let body = r#"[{"id": "s1", "status_code": 400, "error_messages": ["Session not found"]}]"#;
        let error = HorizonClassifier.classify(&response(400, "x", body));
        assert!(
            error.message.contains("Session not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn plain_text_is_quoted() {
        let error = HorizonClassifier.classify(&response(502, "x", "Bad Gateway from proxy"));
        assert!(error.retryable);
        assert!(
            error.message.contains("Bad Gateway from proxy"),
            "{}",
            error.message
        );
    }

    #[test]
    fn rejected_refresh_is_final() {
        for status in [400, 401, 500] {
            let error = HorizonClassifier.classify(&response(status, "refresh", "{}"));
            assert_eq!(error.kind, ErrorKind::Unauthenticated, "status {status}");
            assert!(!error.retryable, "status {status}");
        }
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
            (503, ErrorKind::Unavailable, true),
        ];
        for (status, kind, retryable) in cases {
            let error = HorizonClassifier.classify(&response(status, "x", ""));
            assert_eq!(error.kind, kind, "status {status}");
            assert_eq!(error.retryable, retryable, "status {status}");
        }
    }

    #[test]
    fn bulk_failures_keep_failed_items() {
        let items: Vec<BulkItemResponse> = serde_json::from_value(json!([
            {"id": "s1", "status_code": 200, "error_messages": [], "timestamp": 1},
            {"id": "s2", "status_code": 404, "error_messages": ["Session s2 not found"]},
            {"id": "s3", "error_messages": ["no status"]},
            {"id": "s4"},
        ]))
        .expect("parses");
        let failures = bulk_failures(&items);
        let ids: Vec<&str> = failures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["s2", "s3"]);
        assert!(failures[0].message.contains("Session s2 not found"));
    }

    #[test]
    fn entitlement_failures_name_the_sid() {
        let responses: Vec<BulkEntitlementResponse> = serde_json::from_value(json!([{
            "id": "ap1", "status_code": 200, "error_messages": [],
            "details": [
                {"ad_user_or_group_id": "S-1-5-21-1-1001", "status_code": 200},
                {"ad_user_or_group_id": "S-1-5-21-1-1002", "status_code": 400,
                 "error_messages": ["User or group not found"]},
            ],
        }]))
        .expect("parses");
        let requested = vec!["S-1-5-21-1-1001".to_owned(), "S-1-5-21-1-1002".to_owned()];
        let failures = entitlement_failures(&responses, &requested);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].id, "S-1-5-21-1-1002");
        let error = entitlement_error("add entitlements", "ap1", &failures);
        assert!(
            error.message.contains("S-1-5-21-1-1002"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("User or group not found"),
            "{}",
            error.message
        );
    }

    #[test]
    fn failed_pool_without_details_fails_every_sid() {
        let responses: Vec<BulkEntitlementResponse> = serde_json::from_value(json!([{
            "id": "ap1", "status_code": 404, "error_messages": ["Application pool not found"],
        }]))
        .expect("parses");
        let requested = vec!["S-1".to_owned(), "S-2".to_owned()];
        let failures = entitlement_failures(&responses, &requested);
        let ids: Vec<&str> = failures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["S-1", "S-2"]);
    }
}
