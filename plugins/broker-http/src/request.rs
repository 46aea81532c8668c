//! The request and response types a provider exchanges with [`crate::BrokerClient`], with
//! `Debug` output that never shows credentials.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;
use vdi_contracts::{ProviderError, ProviderResult};

use crate::redact::{body_excerpt, redact_headers, redact_json, redact_path, redact_url, REDACTED};

/// Request body.
#[derive(Clone)]
pub enum Body {
    /// JSON body, sent with `Content-Type: application/json; charset=utf-8`.
    Json(serde_json::Value),
    /// Form body (`application/x-www-form-urlencoded`); values are treated as secrets in logs.
    Form(Vec<(String, String)>),
    /// Raw bytes with their content type.
    Raw { content_type: String, bytes: Bytes },
}

impl Body {
    /// Returns the content type and the encoded bytes sent on the wire.
    pub fn encode(&self) -> (String, Bytes) {
        match self {
            Body::Json(value) => (
                "application/json; charset=utf-8".to_owned(),
                Bytes::from(value.to_string()),
            ),
            Body::Form(pairs) => {
                let text = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                (
                    "application/x-www-form-urlencoded".to_owned(),
                    Bytes::from(text),
                )
            }
            Body::Raw {
                content_type,
                bytes,
            } => (content_type.clone(), bytes.clone()),
        }
    }

    /// Returns the body as JSON for the endpoint guard: the JSON value itself, or a raw body
    /// with a JSON content type that parses.
    pub fn as_json(&self) -> Option<serde_json::Value> {
        match self {
            Body::Json(value) => Some(value.clone()),
            Body::Raw {
                content_type,
                bytes,
            } if content_type.to_ascii_lowercase().contains("json") => {
                serde_json::from_slice(bytes).ok()
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Body {
    /// Shows JSON with secret-looking keys masked, form field names with every value masked,
    /// and only the length of raw bodies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Json(value) => f.debug_tuple("Json").field(&redact_json(value)).finish(),
            Body::Form(pairs) => {
                let names: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(name, _)| (name.as_str(), REDACTED))
                    .collect();
                f.debug_tuple("Form").field(&names).finish()
            }
            Body::Raw {
                content_type,
                bytes,
            } => f
                .debug_struct("Raw")
                .field("content_type", content_type)
                .field("len", &bytes.len())
                .finish(),
        }
    }
}

/// One logical request; the client may send it several times (retries, re-authentication).
#[derive(Clone)]
pub struct BrokerRequest {
    /// HTTP method.
    pub method: Method,
    /// Path relative to the base URL, segments already percent-encoded; may carry a query.
    pub path: String,
    /// Absolute URL that replaces `base_url + path` (token endpoints, `@odata.nextLink`).
    pub absolute_url: Option<Url>,
    /// Query parameters appended to the URL.
    pub query: Vec<(String, String)>,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Option<Body>,
    /// Whether sending twice is harmless; timeouts are retried only for idempotent requests.
    /// Defaults to true for GET, HEAD, PUT, DELETE and false for POST and PATCH.
    pub idempotent: bool,
    /// Whether the client's authenticator adds credentials (false for token endpoints).
    pub authenticated: bool,
    /// Short operation name for logs and errors, for example `list_machines`.
    pub operation: &'static str,
}

impl BrokerRequest {
    /// Creates a request with the method's default idempotency, authenticated.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Self {
            method,
            path: path.into(),
            absolute_url: None,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            authenticated: true,
            operation: "request",
        }
    }

    /// Creates a GET request.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// Creates a POST request.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// Creates a DELETE request.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Creates a PATCH request.
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// Sets the operation name used in logs and errors.
    #[must_use]
    pub fn operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Appends a query parameter.
    #[must_use]
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body.
    #[must_use]
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    /// Sets a form body; its values never appear in logs or `Debug` output.
    #[must_use]
    pub fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Some(Body::Form(fields));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: http::HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Overrides idempotency.
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sends without the client's authenticator.
    #[must_use]
    pub fn unauthenticated(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// Sends to an absolute URL instead of `base_url + path`.
    #[must_use]
    pub fn absolute(mut self, url: Url) -> Self {
        self.absolute_url = Some(url);
        self
    }

    /// Returns the path or absolute URL for logs, with secret query values masked.
    pub fn display_target(&self) -> String {
        match &self.absolute_url {
            Some(url) => redact_url(url),
            None => redact_path(&self.path),
        }
    }
}

impl fmt::Debug for BrokerRequest {
    /// Masks secret query values, sensitive headers and form values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(name, value)| {
                let shown = if crate::redact::is_secret_name(name) {
                    REDACTED
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("BrokerRequest")
            .field("method", &self.method)
            .field("path", &redact_path(&self.path))
            .field("absolute_url", &self.absolute_url.as_ref().map(redact_url))
            .field("query", &query)
            .field("headers", &redact_headers(&self.headers))
            .field("body", &self.body)
            .field("idempotent", &self.idempotent)
            .field("authenticated", &self.authenticated)
            .field("operation", &self.operation)
            .finish()
    }
}

/// A response with a success status (2xx, or 3xx that reqwest did not follow, such as 304).
#[derive(Clone)]
pub struct BrokerResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
    /// Broker request id from `ClientConfig::request_id_header`.
    pub request_id: Option<String>,
    /// Method and path that were sent, for messages and audit (no query secrets).
    pub method: Method,
    /// Path relative to the base URL, or the absolute URL's path.
    pub path: String,
}

impl BrokerResponse {
    /// Decodes the body as JSON.
    ///
    /// # Errors
    /// Returns an `invalid` error naming the method, path and serde's message, with the start
    /// of the body (so truncated or HTML bodies are recognisable).
    pub fn json<T: DeserializeOwned>(&self) -> ProviderResult<T> {
        serde_json::from_slice(&self.body).map_err(|error| {
            ProviderError::invalid(format!(
                "{} {} returned a body that is not the expected JSON ({error}); body starts \
                 with {}",
                self.method,
                redact_path(&self.path),
                body_excerpt(&self.body)
            ))
        })
    }

    /// Returns a header as a string, if present and valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl fmt::Debug for BrokerResponse {
    /// Shows the body's length only, because token responses carry credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerResponse")
            .field("status", &self.status)
            .field("method", &self.method)
            .field("path", &redact_path(&self.path))
            .field("request_id", &self.request_id)
            .field("headers", &redact_headers(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde::Deserialize;
    use serde_json::json;
    use vdi_contracts::ErrorKind;

    use super::*;

    #[test]
    fn request_debug_masks_form_values() {
        let request = BrokerRequest::post("token").form(vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_secret".to_owned(), "s3cr3t-value".to_owned()),
        ]);
        let text = format!("{request:?}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("client_credentials"), "{text}");
        assert!(text.contains("client_secret"), "{text}");
    }

    #[test]
    fn request_debug_masks_headers_and_query() {
        let request = BrokerRequest::get("Machines?access_token=t0k")
            .query("api_key", "k3y")
            .header(
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer b3arer"),
            );
        let text = format!("{request:?}");
        for secret in ["t0k", "k3y", "b3arer"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn request_debug_masks_json_password() {
        let request =
            BrokerRequest::post("login").json(json!({"username": "u", "password": "pw1"}));
        let text = format!("{request:?}");
        assert!(!text.contains("pw1"), "{text}");
    }

    #[test]
    fn default_idempotency_by_method() {
        assert!(BrokerRequest::get("x").idempotent);
        assert!(BrokerRequest::delete("x").idempotent);
        assert!(!BrokerRequest::post("x").idempotent);
        assert!(!BrokerRequest::patch("x").idempotent);
    }

    #[test]
    fn form_encodes_reserved_characters() {
        let body = Body::Form(vec![("a b".to_owned(), "x&y=z".to_owned())]);
        let (content_type, bytes) = body.encode();
        assert_eq!(content_type, "application/x-www-form-urlencoded");
        assert_eq!(&bytes[..], b"a+b=x%26y%3Dz");
    }

    #[test]
    fn raw_json_is_inspected() {
        let body = Body::Raw {
            content_type: "application/JSON".to_owned(),
            bytes: Bytes::from_static(b"{\"a\":1}"),
        };
        assert_eq!(body.as_json(), Some(json!({"a": 1})));
    }

    fn response(body: &'static str) -> BrokerResponse {
        BrokerResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
            request_id: None,
            method: Method::GET,
            path: "Machines".to_owned(),
        }
    }

    #[derive(Debug, Deserialize)]
    struct Page {
        #[allow(dead_code)]
        items: Vec<u32>,
    }

    #[test]
    fn json_error_names_method_path_and_body() {
        let error = response(r#"{"items": [1, 2"#).json::<Page>().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(error.message.contains("GET Machines"), "{}", error.message);
        assert!(error.message.contains("EOF"), "{}", error.message);
        assert!(
            error.message.contains(r#"{"items": [1, 2"#),
            "{}",
            error.message
        );
    }

    #[test]
    fn json_decodes_valid_body() {
        let page: Page = response(r#"{"items": [1]}"#).json().unwrap();
        assert_eq!(page.items, vec![1]);
    }

    #[test]
    fn response_debug_hides_body() {
        let text = format!("{:?}", response(r#"{"access_token": "abc123"}"#));
        assert!(!text.contains("abc123"), "{text}");
    }
}
