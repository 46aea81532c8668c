//! Masking of credentials in URLs, headers, JSON and body excerpts before they reach logs,
//! `Debug` output or error messages.

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use url::Url;

/// Replacement text for a masked value.
pub const REDACTED: &str = "REDACTED";

/// Maximum length, in characters, of a body excerpt in messages and logs.
pub const EXCERPT_CHARS: usize = 200;

/// Name parts that mark a query parameter, header or JSON key as secret wherever they occur.
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "key",
    "authorization",
    "cookie",
];

/// Short names that mark a value as secret only when they are the whole name, because as
/// parts they would match ordinary words (`design`, `encode`).
const SECRET_NAMES: &[&str] = &["sig", "code", "pwd", "auth", "assertion"];

/// Returns whether a query parameter, header or JSON key with this name likely contains a
/// secret. The test ignores ASCII case.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| name.contains(part))
        || SECRET_NAMES.iter().any(|exact| name == *exact)
}

/// Returns the URL as text with the user info and the values of secret-looking query
/// parameters replaced by `REDACTED`; a fragment is dropped whole.
pub fn redact_url(url: &Url) -> String {
    let mut text = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        text.push_str(REDACTED);
        text.push('@');
    }
    if let Some(host) = url.host_str() {
        text.push_str(host);
    }
    if let Some(port) = url.port() {
        text.push(':');
        text.push_str(&port.to_string());
    }
    text.push_str(&redact_path_and_query(url.path(), url.query()));
    text
}

/// Returns a request path, which may carry a `?query`, with secret-looking query values
/// replaced by `REDACTED`.
pub fn redact_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    match path.split_once('?') {
        Some((path, query)) => redact_path_and_query(path, Some(query)),
        None => path.to_owned(),
    }
}

fn redact_path_and_query(path: &str, query: Option<&str>) -> String {
    let mut text = path.to_owned();
    let Some(query) = query else {
        return text;
    };
    text.push('?');
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(&percent_decode_str(name).decode_utf8_lossy()) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    text.push_str(&pairs.join("&"));
    text
}

/// Returns whether a header value must not be logged: `Authorization`, cookies, and any
/// header whose name looks secret (`X-Auth-Token`, `Api-Key`).
pub fn is_sensitive_header(name: &str) -> bool {
    is_secret_name(name)
}

/// Returns the headers as `name: value` lines for logs, with sensitive values masked.
pub fn redact_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_sensitive_header(name.as_str()) || value.is_sensitive() {
                REDACTED
            } else {
                value.to_str().unwrap_or("<non-UTF-8>")
            };
            format!("{name}: {shown}")
        })
        .collect()
}

/// Returns a copy of a JSON value with the values of secret-looking keys masked, at any depth.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let value = if is_secret_name(key) {
                    serde_json::Value::String(REDACTED.to_owned())
                } else {
                    redact_json(value)
                };
                (key.clone(), value)
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(redact_json).collect(),
        other => other.clone(),
    }
}

/// Returns the start of a response body for messages: JSON with secret values masked, or
/// the first [`EXCERPT_CHARS`] characters of other text.
///
/// Text that is not valid JSON (a truncated token response, for example) and mentions a
/// token, secret or password is not shown at all, because the secret values in it cannot be
/// located.
pub fn body_excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty body>".to_owned();
    }
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => redact_json(&value).to_string(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let lower = text.to_ascii_lowercase();
            if ["token", "secret", "password"]
                .iter()
                .any(|word| lower.contains(word))
            {
                return format!(
                    "<{} bytes not shown because they may contain a credential>",
                    body.len()
                );
            }
            text.into_owned()
        }
    };
    truncate_chars(&text, EXCERPT_CHARS)
}

/// Returns at most `max` characters of `text`, marking a cut with `...`.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    #[test]
    fn url_masks_secret_query_values() {
        let cases = [
            (
                "https://h/x?access_token=abc&page=2",
                "https://h/x?access_token=REDACTED&page=2",
            ),
            (
                "https://h/x?client_secret=s3&code=c0de&sig=aa",
                "https://h/x?client_secret=REDACTED&code=REDACTED&sig=REDACTED",
            ),
            (
                "https://h/x?X-Amz-Signature=ff&design=1",
                "https://h/x?X-Amz-Signature=REDACTED&design=1",
            ),
            (
                "https://h/x?apiKey=k&Password=p",
                "https://h/x?apiKey=REDACTED&Password=REDACTED",
            ),
            ("https://h:8443/a/b", "https://h:8443/a/b"),
            ("https://h/x?flag", "https://h/x?flag"),
        ];
        for (input, expected) in cases {
            let url = Url::parse(input).unwrap();
            assert_eq!(redact_url(&url), expected, "input {input}");
        }
    }

    #[test]
    fn url_masks_userinfo() {
        let url = Url::parse("https://admin:hunter2@h/x").unwrap();
        let text = redact_url(&url);
        assert_eq!(text, "https://REDACTED@h/x");
    }

    #[test]
    fn url_drops_fragment() {
        let url = Url::parse("https://h/cb#access_token=abc").unwrap();
        assert_eq!(redact_url(&url), "https://h/cb");
    }

    #[test]
    fn path_masks_query() {
        assert_eq!(
            redact_path("Machines?token=abc&limit=5"),
            "Machines?token=REDACTED&limit=5"
        );
        assert_eq!(redact_path("Machines/X%7CY"), "Machines/X%7CY");
    }

    #[test]
    fn headers_mask_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        headers.insert("x-auth-token", HeaderValue::from_static("t0k"));
        headers.insert("citrix-customerid", HeaderValue::from_static("acme"));
        let lines = redact_headers(&headers).join("\n");
        assert!(!lines.contains("abc"), "{lines}");
        assert!(!lines.contains("t0k"), "{lines}");
        assert!(lines.contains("citrix-customerid: acme"), "{lines}");
    }

    #[test]
    fn headers_mask_values_marked_sensitive() {
        let mut value = HeaderValue::from_static("opaque");
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-custom", value);
        assert_eq!(redact_headers(&headers), vec!["x-custom: REDACTED"]);
    }

    #[test]
    fn json_masks_nested_keys() {
        let value = json!({"user": "u", "nested": [{"password": "p"}], "access_token": "t"});
        let redacted = redact_json(&value);
        assert_eq!(
            redacted,
            json!({"user": "u", "nested": [{"password": "REDACTED"}], "access_token": "REDACTED"})
        );
    }

    #[test]
    fn excerpt_truncates_long_text() {
        let body = "x".repeat(500);
        let excerpt = body_excerpt(body.as_bytes());
        assert_eq!(excerpt.len(), EXCERPT_CHARS + 3);
    }

    #[test]
    fn excerpt_hides_broken_token_response() {
        let excerpt = body_excerpt(br#"{"access_token": "eyJhbGciOi"#);
        assert!(!excerpt.contains("eyJ"), "{excerpt}");
    }

    #[test]
    fn excerpt_masks_json_secrets() {
        let excerpt = body_excerpt(br#"{"access_token": "eyJhbGciOi", "expires_in": "3600"}"#);
        assert!(!excerpt.contains("eyJ"), "{excerpt}");
        assert!(excerpt.contains("expires_in"), "{excerpt}");
    }

    #[test]
    fn excerpt_names_empty_body() {
        assert_eq!(body_excerpt(b""), "<empty body>");
    }
}
