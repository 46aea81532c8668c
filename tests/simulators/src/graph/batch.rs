//! JSON batching: `POST /v1.0/$batch` with up to 20 requests.
//!
//! Each request has `id`, `method`, a `url` relative to the version, and optional
//! `headers`, `body` and `dependsOn`. The batch returns 200 when it parses, with one
//! `{id, status, headers, body}` per request. A request whose dependency failed gets 424,
//! and each request is throttled on its own (Microsoft Graph "JSON batching" guide). Inner
//! requests run through the same routing, deny-list and counters as HTTP requests.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphResult};
use super::model::ApiVersion;
use super::server::{RequestIds, Shared};
use crate::common::http::{SimRequest, SimResponse};

/// Maximum number of requests in one batch.
pub const MAX_BATCH_REQUESTS: usize = 20;

#[derive(Debug, Deserialize)]
struct BatchBody {
    requests: Vec<BatchItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// Checks the batch as a whole; any error fails the batch with 400.
fn validate(items: &[BatchItem]) -> Result<(), GraphError> {
    if items.is_empty() {
        return Err(GraphError::bad_request("The batch contains no requests."));
    }
    if items.len() > MAX_BATCH_REQUESTS {
        return Err(GraphError::bad_request(format!(
            "The batch has {} requests; the limit is {MAX_BATCH_REQUESTS}.",
            items.len()
        )));
    }
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item.id.as_str()) {
            return Err(GraphError::bad_request(format!(
                "The batch contains the request id '{}' more than once.",
                item.id
            )));
        }
    }
    for item in items {
        if item.depends_on.len() > 1 {
            return Err(GraphError::bad_request(format!(
                "Request '{}' depends on more than one request.",
                item.id
            )));
        }
        if let Some(missing) = item
            .depends_on
            .iter()
            .find(|dep| !seen.contains(dep.as_str()))
        {
            return Err(GraphError::bad_request(format!(
                "Request '{}' depends on unknown request '{missing}'.",
                item.id
            )));
        }
        let has_content_type = item
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"));
        if item.body.is_some() && !has_content_type {
            return Err(GraphError::bad_request(format!(
                "Request '{}' has a body but no Content-Type header.",
                item.id
            )));
        }
    }
    Ok(())
}

impl Shared {
    /// Handles `POST /{version}/$batch`.
    pub(crate) fn batch(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        ids: &RequestIds,
    ) -> GraphResult {
        let body: BatchBody =
            serde_json::from_slice(&request.body).map_err(GraphError::invalid_body)?;
        validate(&body.requests)?;

        let mut statuses: HashMap<String, StatusCode> = HashMap::new();
        let mut responses = Vec::new();
        // Each pass runs every request whose dependency has finished; bounded by the count.
        for _ in 0..body.requests.len() {
            for item in &body.requests {
                if statuses.contains_key(&item.id) {
                    continue;
                }
                let dependency = item.depends_on.first();
                let failed_dependency = match dependency.map(|dep| statuses.get(dep)) {
                    Some(None) => continue,
                    Some(Some(status)) => !status.is_success(),
                    None => false,
                };
                let (status, value) = self.run_item(request, version, item, ids, failed_dependency);
                statuses.insert(item.id.clone(), status);
                responses.push(value);
            }
        }
        if statuses.len() < body.requests.len() {
            return Err(GraphError::bad_request(
                "The dependsOn chains of the batch form a cycle.",
            ));
        }
        Ok(SimResponse::json(
            StatusCode::OK,
            &json!({"responses": responses}),
        ))
    }

    /// Runs one inner request with the outer request's credentials, or returns 424 when
    /// its dependency failed.
    fn run_item(
        &self,
        outer: &SimRequest,
        version: ApiVersion,
        item: &BatchItem,
        ids: &RequestIds,
        failed_dependency: bool,
    ) -> (StatusCode, Value) {
        let inner_ids = RequestIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: ids.client_request_id.clone(),
        };
        let method =
            Method::from_bytes(item.method.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        let url = item.url.trim_start_matches('/');
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (url, None),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &item.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        if let Some(authorization) = outer.headers.get(axum::http::header::AUTHORIZATION) {
            headers.insert(axum::http::header::AUTHORIZATION, authorization.clone());
        }
        let body = match &item.body {
            Some(Value::String(text)) => Bytes::from(text.clone()),
            Some(value) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            None => Bytes::new(),
        };
        let full_path = format!("/{}/{path}", version.as_str());
        let inner = SimRequest::new(method, &full_path, query, headers, body);

        let relative =
            !(url.starts_with("http") || url.starts_with("v1.0/") || url.starts_with("beta/"));
        let response = if failed_dependency {
            let message = format!(
                "The request depends on request '{}', which failed.",
                item.depends_on.join(",")
            );
            let error = GraphError::new(StatusCode::FAILED_DEPENDENCY, "FailedDependency", message);
            error.render(&inner_ids.request_id, &inner_ids.client_request_id)
        } else if !relative {
            let error = GraphError::bad_request(format!(
                "Batch request urls must be relative to the version: '{}'.",
                item.url
            ));
            error.render(&inner_ids.request_id, &inner_ids.client_request_id)
        } else if self.draw() < self.knobs().batch_throttle_rate {
            let error = GraphError::too_many_requests(
                "Too many requests; retry this request after the wait.",
                Some(2),
            );
            error.render(&inner_ids.request_id, &inner_ids.client_request_id)
        } else {
            self.handle(&inner, &inner_ids, false)
        };
        self.record(&inner, response.status, false);
        (response.status, inner_value(&item.id, &response))
    }
}

/// Renders one inner response as `{id, status, headers, body}`.
fn inner_value(id: &str, response: &SimResponse) -> Value {
    let mut headers = Map::new();
    if let Some(content_type) = response.content_type {
        headers.insert("Content-Type".into(), json!(content_type));
    }
    for (name, value) in &response.headers {
        let display = match name.as_str() {
            "retry-after" => "Retry-After".to_string(),
            "location" => "Location".to_string(),
            other => other.to_string(),
        };
        headers.insert(display, json!(value));
    }
    let mut value = json!({"id": id, "status": response.status.as_u16(), "headers": headers});
    if !response.body.is_empty() {
        let body = serde_json::from_slice(&response.body).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&response.body).into_owned())
        });
        value["body"] = body;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, depends_on: &[&str]) -> BatchItem {
        BatchItem {
            id: id.into(),
            method: "GET".into(),
            url: "/groups".into(),
            headers: HashMap::new(),
            body: None,
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn validate_cases() {
        assert!(validate(&[item("1", &[]), item("2", &["1"])]).is_ok());
        assert!(
            validate(&[item("1", &[]), item("1", &[])]).is_err(),
            "duplicate id"
        );
        assert!(
            validate(&[item("1", &["9"])]).is_err(),
            "unknown dependency"
        );
        let many: Vec<BatchItem> = (0..21).map(|i| item(&i.to_string(), &[])).collect();
        assert!(validate(&many).is_err(), "over 20");
        let mut with_body = item("1", &[]);
        with_body.body = Some(json!({}));
        assert!(validate(&[with_body]).is_err(), "body without Content-Type");
    }
}
