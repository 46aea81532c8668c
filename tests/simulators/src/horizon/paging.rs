//! `page` and `size` paging and the `HAS_MORE_RECORDS` header of Horizon list endpoints.
//!
//! Paging applies only when both parameters are sent; both must be positive integers and
//! `size` at most 1000. While more results exist the response carries
//! `HAS_MORE_RECORDS: TRUE` (Horizon Server REST API Pagination and Filter Guide).

use axum::http::{HeaderName, StatusCode};
use serde_json::Value;

use super::error::ApiError;
use super::filter::{self, FieldRule, Filter};
use crate::common::http::{SimRequest, SimResponse};

/// Largest `size` the server accepts.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Response header that says more pages exist.
pub const HAS_MORE_RECORDS: &str = "has_more_records";

/// The filter and page of one list request.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub filter: Option<Filter>,
    /// One-based page number and page size.
    pub page: Option<(usize, usize)>,
}

impl ListQuery {
    /// Reads `filter`, `page` and `size` from a request to a pageable, filterable endpoint.
    ///
    /// Fails with 400 when only one of `page` and `size` is sent, when either is not a
    /// positive integer, when `size` exceeds 1000, or when the filter is invalid.
    pub fn parse(request: &SimRequest, rules: &[FieldRule]) -> Result<Self, ApiError> {
        let filter = match request.query.get("filter") {
            Some(text) => Some(filter::parse(text, rules).map_err(ApiError::bad_request)?),
            None => None,
        };
        let number = |name: &str| -> Result<Option<usize>, ApiError> {
            let Some(text) = request.query.get(name) else {
                return Ok(None);
            };
            match text.trim().parse::<usize>() {
                Ok(value) if value >= 1 => Ok(Some(value)),
                _ => Err(ApiError::bad_request(format!(
                    "Invalid {name} {text}: it must be a positive integer."
                ))),
            }
        };
        let page = match (number("page")?, number("size")?) {
            (Some(_), Some(size)) if size > MAX_PAGE_SIZE => {
                return Err(ApiError::bad_request(format!(
                    "Invalid size {size}: it must be at most {MAX_PAGE_SIZE}."
                )));
            }
            (Some(page), Some(size)) => Some((page, size)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "Both page and size must be sent to page results.",
                ))
            }
        };
        Ok(Self { filter, page })
    }

    /// Filters and pages rendered objects into a 200 response.
    pub fn respond(&self, items: Vec<Value>) -> SimResponse {
        let matching: Vec<Value> = match &self.filter {
            Some(filter) => items.into_iter().filter(|v| filter.matches(v)).collect(),
            None => items,
        };
        let Some((page, size)) = self.page else {
            return SimResponse::json(StatusCode::OK, &matching);
        };
        let start = (page - 1).saturating_mul(size);
        let end = start.saturating_add(size).min(matching.len());
        let slice: &[Value] = matching.get(start..end).unwrap_or(&[]);
        let response = SimResponse::json(StatusCode::OK, &slice);
        if end < matching.len() {
            response.with_header(HeaderName::from_static(HAS_MORE_RECORDS), "TRUE")
        } else {
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method};
    use serde_json::json;

    use super::*;
    use crate::horizon::filter::ANY;

    fn request(query: &str) -> SimRequest {
        SimRequest::new(
            Method::GET,
            "/rest/inventory/v1/machines",
            Some(query),
            HeaderMap::new(),
            Bytes::new(),
        )
    }

    #[test]
    fn parameter_rules() {
        let rules: &[FieldRule] = &[("name", ANY)];
        let cases = [
            ("", true),
            ("page=1&size=10", true),
            ("page=2&size=1000", true),
            ("page=1&size=1001", false),
            ("size=10", false),
            ("page=1", false),
            ("page=0&size=10", false),
            ("page=1&size=-1", false),
            ("page=a&size=10", false),
        ];
        for (query, ok) in cases {
            assert_eq!(
                ListQuery::parse(&request(query), rules).is_ok(),
                ok,
                "{query}"
            );
        }
    }

    #[test]
    fn pages_set_has_more_records() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": i})).collect();
        let query = ListQuery {
            filter: None,
            page: Some((2, 2)),
        };
        let response = query.respond(items.clone());
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body, json!([{"id": 2}, {"id": 3}]));
        let name = HeaderName::from_static(HAS_MORE_RECORDS);
        assert_eq!(response.header(&name), Some("TRUE"));

        let last = ListQuery {
            filter: None,
            page: Some((3, 2)),
        }
        .respond(items.clone());
        assert_eq!(last.header(&name), None);
        let beyond = ListQuery {
            filter: None,
            page: Some((9, 2)),
        }
        .respond(items);
        assert_eq!(&beyond.body[..], b"[]");
    }
}
