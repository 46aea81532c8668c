//! Request and response types and HTTP helpers shared by the simulators.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::Serialize;

/// An API request after its path and query have been decoded.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// HTTP method.
    pub method: Method,
    /// Path as received, without the query.
    pub path: String,
    /// Percent-decoded path segments, original case.
    pub segments: Vec<String>,
    /// The same segments in lower case, for case-insensitive routing.
    pub lower: Vec<String>,
    /// Query parameters keyed by lower-case name, values percent-decoded.
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl SimRequest {
    /// Builds a request from its parts, decoding the path segments and the query.
    pub fn new(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let segments: Vec<String> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
            .collect();
        let lower = segments.iter().map(|s| s.to_lowercase()).collect();
        let query = query
            .map(parse_urlencoded)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key.to_lowercase(), value))
            .collect();
        Self {
            method,
            path: path.to_string(),
            segments,
            lower,
            query,
            headers,
            body,
        }
    }

    /// Returns a header value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Returns whether the query parameter `name` is `true` (case-insensitive).
    pub fn query_flag(&self, name: &str) -> bool {
        self.query
            .get(name)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }

    /// Returns whether the method changes state (anything but GET and HEAD).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET && self.method != Method::HEAD
    }
}

/// Parses `application/x-www-form-urlencoded` text into ordered key/value pairs.
pub fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form_component(key), decode_form_component(value))
        })
        .collect()
}

fn decode_form_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// A response built by a simulator before it becomes an axum response.
#[derive(Debug, Clone)]
pub struct SimResponse {
    /// Status code.
    pub status: StatusCode,
    /// Extra headers, for example `Location` or `Retry-After`.
    pub headers: Vec<(HeaderName, String)>,
    /// Value of the `Content-Type` header, if the body has one.
    pub content_type: Option<&'static str>,
    /// Response body.
    pub body: Bytes,
    /// Whether to leave out the transaction id header, as injected gateway 502s do.
    pub omit_transaction_id: bool,
}

impl SimResponse {
    /// Builds a response with a JSON body.
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Self {
            status,
            headers: Vec::new(),
            content_type: Some("application/json; charset=utf-8"),
            body: Bytes::from(body),
            omit_transaction_id: false,
        }
    }

    /// Builds a response with no body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: Bytes::new(),
            omit_transaction_id: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Returns the value of an extra header, if set.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl IntoResponse for SimResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        match self.content_type {
            Some(content_type) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            None => {
                headers.remove(header::CONTENT_TYPE);
            }
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// Token bucket that allows `rate` requests per second with a burst of one second.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Creates a full bucket.
    pub fn new(rate: f64) -> Self {
        let rate = rate.max(0.001);
        Self {
            rate,
            tokens: rate.max(1.0),
            last: Instant::now(),
        }
    }

    /// Returns the configured rate in requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes one token, or returns the seconds until one is available.
    pub fn try_take(&mut self) -> Result<(), f64> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.rate)
        }
    }
}

/// Returns `true` when the `Accept` header is absent or allows `application/json`.
pub fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or("").trim().to_lowercase();
        media.is_empty()
            || media == "*/*"
            || media == "application/*"
            || media == "application/json"
            || media.ends_with("+json")
    })
}

/// HTML body of an injected gateway 502, shaped like a reverse proxy error page.
pub const HTML_502_BODY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n\
<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_decodes_segments() {
        let request = SimRequest::new(
            Method::GET,
            "/cvad/manage/Machines/HOSP%7CEHR-VDA-0001",
            Some("limit=5&continuationToken=a%2Bb"),
            HeaderMap::new(),
            Bytes::new(),
        );
        assert_eq!(request.segments[3], "HOSP|EHR-VDA-0001");
        assert_eq!(request.lower[2], "machines");
        assert_eq!(request.query.get("continuationtoken").unwrap(), "a+b");
    }

    #[test]
    fn form_decoding_handles_plus_and_percent() {
        let pairs = parse_urlencoded("client_secret=a%26b+c&grant_type=client_credentials");
        assert_eq!(pairs[0], ("client_secret".into(), "a&b c".into()));
        assert_eq!(pairs[1].1, "client_credentials");
    }

    #[test]
    fn accept_header_cases() {
        let cases = [
            ("application/json", true),
            ("text/html, */*;q=0.1", true),
            ("application/*", true),
            ("text/html", false),
            ("application/xml", false),
        ];
        for (accept, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(accepts_json(&headers), expected, "Accept: {accept}");
        }
    }

    #[test]
    fn bucket_limits_burst() {
        let mut bucket = TokenBucket::new(2.0);
        assert!(bucket.try_take().is_ok());
        assert!(bucket.try_take().is_ok());
        let wait = bucket.try_take().unwrap_err();
        assert!(wait > 0.0 && wait <= 0.5, "wait {wait}");
    }
}
