//! Server-driven paging with `@odata.nextLink` and an opaque `$skiptoken`.
//!
//! A client must follow the whole `@odata.nextLink` URL until it is absent and accept
//! pages with no items (Microsoft Graph "Paging" guide). `$top` sets the page size up to
//! a per-resource maximum, and `@odata.count` appears on the first page only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::GraphError;
use crate::common::http::SimRequest;

/// Largest `$top` of Intune and Cloud PC lists; larger values are clamped to it.
pub const MAX_INTUNE_PAGE_SIZE: usize = 1000;
/// Largest `$top` of Entra ID directory lists; larger values get 400.
pub const MAX_DIRECTORY_PAGE_SIZE: usize = 999;

/// Characters kept as they are in re-encoded query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$');

/// Decoded contents of a `$skiptoken`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageToken {
    /// Index of the first item of the page.
    #[serde(rename = "o")]
    pub offset: usize,
    /// Whether the empty page before this one was already served.
    #[serde(rename = "e")]
    pub empty_served: bool,
}

impl PageToken {
    /// Encodes the token as an opaque `$skiptoken` value.
    pub fn encode(self) -> String {
        let text = serde_json::to_vec(&self).unwrap_or_default();
        format!("RFNwYWdl{}", URL_SAFE_NO_PAD.encode(text))
    }

    /// Decodes a `$skiptoken` value.
    ///
    /// Fails with 400 when the value is not one the simulator issued.
    pub fn decode(text: &str) -> Result<Self, GraphError> {
        let invalid = || GraphError::bad_request(format!("Invalid $skiptoken value '{text}'."));
        let body = text.strip_prefix("RFNwYWdl").ok_or_else(invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

/// How one list resource pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRules {
    /// Page size without `$top`.
    pub default_size: usize,
    /// Largest `$top`.
    pub max_size: usize,
    /// Whether a larger `$top` gets 400 instead of being clamped.
    pub reject_oversized: bool,
    /// Whether to serve an empty page with a next link before every page with items.
    pub empty_pages: bool,
}

/// Returns the page size and token of a list request.
///
/// Fails with 400 on an invalid `$top` or `$skiptoken`.
pub(crate) fn page_request(
    request: &SimRequest,
    rules: PageRules,
) -> Result<(usize, PageToken), GraphError> {
    let size = match request.query.get("$top") {
        None => rules.default_size,
        Some(text) => {
            let top: usize = text.parse().ok().filter(|top| *top > 0).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid $top value '{text}'; expected a positive integer."
                ))
            })?;
            if top > rules.max_size && rules.reject_oversized {
                return Err(GraphError::directory_bad_request(format!(
                    "Invalid page size specified: '{top}'. Must be between 1 and {} inclusive.",
                    rules.max_size
                )));
            }
            top.min(rules.max_size)
        }
    };
    let token = match request.query.get("$skiptoken") {
        Some(text) => PageToken::decode(text)?,
        None => PageToken::default(),
    };
    Ok((size.max(1), token))
}

/// Builds one page of `items` as a Graph collection body.
///
/// `base_url` is the simulator's `http://host:port`; `context` is the `@odata.context`
/// value; `count` is set when the request has `$count=true`.
pub(crate) fn page_body(
    items: Vec<Map<String, Value>>,
    request: &SimRequest,
    base_url: &str,
    context: &str,
    rules: PageRules,
    count: bool,
) -> Result<Value, GraphError> {
    let (size, token) = page_request(request, rules)?;
    let total = items.len();
    let first_page = !request.query.contains_key("$skiptoken");
    let has_items = token.offset < total;

    let (page, next) = if rules.empty_pages && has_items && !token.empty_served {
        let next = PageToken {
            offset: token.offset,
            empty_served: true,
        };
        (Vec::new(), Some(next))
    } else {
        let end = (token.offset + size).min(total);
        let page: Vec<Value> = items
            .into_iter()
            .skip(token.offset)
            .take(end.saturating_sub(token.offset))
            .map(Value::Object)
            .collect();
        let next = (end < total).then_some(PageToken {
            offset: end,
            empty_served: false,
        });
        (page, next)
    };

    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if count && first_page {
        body.insert("@odata.count".into(), json!(total));
    }
    if let Some(next) = next {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(request, base_url, next)),
        );
    }
    body.insert("value".into(), Value::Array(page));
    Ok(Value::Object(body))
}

/// Returns the absolute next link: the request path with its query options (without
/// `$skiptoken` and `$count`) and the new `$skiptoken`.
fn next_link(request: &SimRequest, base_url: &str, token: PageToken) -> String {
    let mut keys: Vec<&String> = request
        .query
        .keys()
        .filter(|key| !matches!(key.as_str(), "$skiptoken" | "$count"))
        .collect();
    keys.sort();
    let mut link = format!("{base_url}{}?", request.path);
    for key in keys {
        let value = utf8_percent_encode(&request.query[key], QUERY_VALUE);
        link.push_str(&format!("{key}={value}&"));
    }
    link.push_str("$skiptoken=");
    link.push_str(&token.encode());
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let token = PageToken {
            offset: 150,
            empty_served: true,
        };
        assert_eq!(PageToken::decode(&token.encode()).unwrap(), token);
    }

    #[test]
    fn foreign_token_is_rejected() {
        assert!(PageToken::decode("X'123").is_err());
        assert!(PageToken::decode("RFNwYWdl!!").is_err());
    }
}
