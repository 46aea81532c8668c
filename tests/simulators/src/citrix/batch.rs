//! `POST /$batch`: runs each inner request through the same routing, so counters and the
//! deny-list see every one.

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::auth::ONPREM_CUSTOMER_ID;
use super::error::ApiError;
use super::paging::JsonBody;
use super::routes::ApiResult;
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

/// Response headers copied into each `BatchResponseItemModel`.
const ITEM_HEADERS: [&str; 3] = ["location", "retry-after", "citrix-transactionid"];

impl Shared {
    /// Runs a `BatchRequestModel` and returns a `BatchResponseModel` with one item per
    /// request, each with its own status code.
    pub(crate) fn batch(&self, request: &SimRequest) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let items = body
            .array("Items")?
            .ok_or_else(|| ApiError::bad_request("Items is required."))?
            .clone();
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let item = JsonBody::from_value(item)?;
            let reference = item.string("Reference")?.unwrap_or_default();
            let response = match self.inner_request(request, &item) {
                Ok(inner) => self.handle(&inner, false),
                Err(error) => error.into_response(),
            };
            results.push(batch_item(&reference, &response));
        }
        Ok(SimResponse::json(
            StatusCode::OK,
            &json!({"Items": results}),
        ))
    }

    /// Builds the request of one `BatchRequestItemModel`. It inherits the outer request's
    /// headers, then applies its own `Headers`.
    fn inner_request(&self, outer: &SimRequest, item: &JsonBody) -> Result<SimRequest, ApiError> {
        let method = item.string("Method")?.unwrap_or_else(|| "GET".to_string());
        let method = Method::from_bytes(method.to_uppercase().as_bytes())
            .map_err(|_| ApiError::bad_request(format!("Unknown method '{method}'.")))?;
        let relative = item
            .string("RelativeUrl")?
            .ok_or_else(|| ApiError::bad_request("RelativeUrl is required."))?;
        let (path, query) = match relative.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (relative.as_str(), None),
        };
        let api_path = self.strip_batch_prefix(path)?;
        if api_path
            .split('/')
            .next()
            .is_some_and(|first| first.eq_ignore_ascii_case("$batch"))
        {
            return Err(ApiError::bad_request(
                "A batch cannot contain another batch.",
            ));
        }

        let mut headers = outer.headers.clone();
        headers.remove(header::CONTENT_LENGTH);
        for entry in item.array("Headers")?.cloned().unwrap_or_default() {
            let entry = JsonBody::from_value(entry)?;
            let (Some(name), Some(value)) = (entry.string("Name")?, entry.string("Value")?) else {
                continue;
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ApiError::bad_request(format!("Invalid header name '{name}'.")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| ApiError::bad_request("Invalid header value."))?;
            headers.insert(name, value);
        }
        let body = match item.get("Body") {
            None => Vec::new(),
            Some(Value::String(text)) => text.clone().into_bytes(),
            Some(other) => serde_json::to_vec(other).unwrap_or_default(),
        };
        Ok(SimRequest::new(
            method,
            &format!("/cvad/manage/{api_path}"),
            query,
            headers,
            body.into(),
        ))
    }

    /// Removes `v1/{customerId}/{siteId}/` from a batch `RelativeUrl`, checking the ids.
    fn strip_batch_prefix<'a>(&self, path: &'a str) -> Result<&'a str, ApiError> {
        let path = path.trim_start_matches('/');
        let mut parts = path.splitn(4, '/');
        let version = parts.next().unwrap_or("");
        let is_version = version.len() > 1
            && version.starts_with(['v', 'V'])
            && version[1..].chars().all(|c| c.is_ascii_digit());
        if !is_version {
            return Err(ApiError::bad_request(format!(
                "RelativeUrl '{path}' must start with a version, for example v1/{{customerId}}/{{siteId}}/."
            )));
        }
        let (Some(customer), Some(site), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiError::bad_request(format!(
                "RelativeUrl '{path}' must be v1/{{customerId}}/{{siteId}}/<path>."
            )));
        };
        let customer_ok = customer.eq_ignore_ascii_case(&self.config.customer_id)
            || customer.eq_ignore_ascii_case(ONPREM_CUSTOMER_ID);
        if !customer_ok {
            return Err(ApiError::not_found("Customer", customer));
        }
        if !site.eq_ignore_ascii_case(&self.site_id) {
            return Err(ApiError::not_found("Site", site));
        }
        Ok(rest)
    }
}

/// Renders one `BatchResponseItemModel`.
fn batch_item(reference: &str, response: &SimResponse) -> Value {
    let headers: Vec<Value> = response
        .headers
        .iter()
        .filter(|(name, _)| ITEM_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| json!({"Name": name.as_str(), "Value": value}))
        .collect();
    let body =
        (!response.body.is_empty()).then(|| String::from_utf8_lossy(&response.body).into_owned());
    json!({
        "Reference": reference,
        "Code": response.status.as_u16(),
        "Headers": headers,
        "Body": body,
    })
}
