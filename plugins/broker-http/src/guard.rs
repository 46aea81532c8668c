//! The endpoint guard: a deny-list of image, reboot, power, reprovision and delete endpoints,
//! checked before every request the client sends, including requests inside batch bodies.

use std::sync::Arc;

use http::Method;
use percent_encoding::percent_decode_str;

/// Deepest nesting of batch bodies the guard inspects; a deeper request is blocked, because
/// its innermost requests would go unchecked.
pub const MAX_BODY_DEPTH: usize = 8;

/// One denied endpoint class.
#[derive(Debug, Clone)]
pub struct DenyRule {
    /// Class name reported on violation, for example `image`, `power`, `session_destructive`.
    pub class: &'static str,
    /// Methods the rule applies to; empty means every method.
    pub methods: Vec<Method>,
    /// Path pattern relative to the API base: segments separated by `/`, `*` matches one
    /// segment, `**` matches the rest, matching ignores ASCII case, the query and percent
    /// encoding; `$` is literal.
    pub pattern: String,
}

impl DenyRule {
    /// Returns whether the rule denies `method` on `path` (relative to the API base).
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        let pattern = pattern_segments(&self.pattern);
        candidate_paths(path)
            .iter()
            .any(|segments| match_segments(&pattern, segments))
    }
}

/// A request found inside a body, with its own body when it can carry further requests.
#[derive(Debug, Clone)]
pub struct InnerRequest {
    /// Method of the inner request.
    pub method: Method,
    /// Path of the inner request, relative to the API base.
    pub path: String,
    /// Body of the inner request, inspected in turn (a batch inside a batch).
    pub body: Option<serde_json::Value>,
}

/// Looks inside request bodies: returns the requests a batch body would make, or a violation
/// for a body that is itself destructive (for example a tag update with `DeleteTags`).
pub trait BodyInspector: Send + Sync + std::fmt::Debug {
    /// Returns the inner `(method, path)` pairs to check against the rules.
    ///
    /// # Errors
    /// Returns a violation when the body itself is denied.
    fn inner_requests(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<(Method, String)>, GuardViolation>;

    /// Returns the inner requests together with their bodies, so that the guard can inspect
    /// nested batches. The default wraps [`BodyInspector::inner_requests`] without bodies.
    ///
    /// # Errors
    /// Returns a violation when the body itself is denied.
    fn inner_requests_with_bodies(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<InnerRequest>, GuardViolation> {
        let pairs = self.inner_requests(method, path, body)?;
        Ok(pairs
            .into_iter()
            .map(|(method, path)| InnerRequest {
                method,
                path,
                body: None,
            })
            .collect())
    }
}

/// A request the guard blocked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint guard blocked {method} {path} ({class}): the gateway never calls {broker} image, reboot, power, reprovision or delete endpoints")]
pub struct GuardViolation {
    /// Broker name.
    pub broker: String,
    /// Denied class.
    pub class: String,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
}

/// Deny-list for one broker.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    broker: String,
    rules: Vec<DenyRule>,
    inspectors: Vec<Arc<dyn BodyInspector>>,
}

impl Guard {
    /// Creates an empty guard for `broker`.
    pub fn new(broker: impl Into<String>) -> Self {
        Self {
            broker: broker.into(),
            rules: Vec::new(),
            inspectors: Vec::new(),
        }
    }

    /// Adds a rule.
    #[must_use]
    pub fn deny(mut self, class: &'static str, methods: &[Method], pattern: &str) -> Self {
        self.rules.push(DenyRule {
            class,
            methods: methods.to_vec(),
            pattern: pattern.to_owned(),
        });
        self
    }

    /// Adds a body inspector.
    #[must_use]
    pub fn inspect_bodies(mut self, inspector: Arc<dyn BodyInspector>) -> Self {
        self.inspectors.push(inspector);
        self
    }

    /// Returns the broker name used in violations.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Returns the rules in the order they are checked.
    pub fn rules(&self) -> &[DenyRule] {
        &self.rules
    }

    /// Checks a request and, recursively, the requests inside its body.
    ///
    /// # Errors
    /// Returns the first violation found, or a `batch_depth` violation when batches nest
    /// deeper than [`MAX_BODY_DEPTH`].
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), GuardViolation> {
        self.check_at_depth(method, path, body, 0)
    }

    fn check_at_depth(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        depth: usize,
    ) -> Result<(), GuardViolation> {
        if let Some(rule) = self.rules.iter().find(|rule| rule.matches(method, path)) {
            return Err(self.violation(rule.class, method, path));
        }
        let Some(body) = body else {
            return Ok(());
        };
        if depth >= MAX_BODY_DEPTH && !self.inspectors.is_empty() {
            return Err(self.violation("batch_depth", method, path));
        }
        for inspector in &self.inspectors {
            for inner in inspector.inner_requests_with_bodies(method, path, body)? {
                self.check_at_depth(&inner.method, &inner.path, inner.body.as_ref(), depth + 1)?;
            }
        }
        Ok(())
    }

    fn violation(&self, class: &str, method: &Method, path: &str) -> GuardViolation {
        GuardViolation {
            broker: self.broker.clone(),
            class: class.to_owned(),
            method: method.to_string(),
            path: path.to_owned(),
        }
    }
}

/// Splits a pattern into lower-case, percent-decoded segments; `*` and `**` stay wildcards.
fn pattern_segments(pattern: &str) -> Vec<String> {
    pattern
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment {
            "*" | "**" => segment.to_owned(),
            _ => decode(segment).to_ascii_lowercase(),
        })
        .collect()
}

/// Returns the normalised segment lists a path may mean to a broker.
///
/// Segments are decoded one by one, and also after decoding the whole path, because a server
/// may treat an encoded `%2F` as a separator. Both readings are checked, so a rule matching
/// either one blocks the request.
fn candidate_paths(path: &str) -> Vec<Vec<String>> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let per_segment = normalise(path.split('/').map(decode));
    let decoded = decode(path);
    let whole = normalise(decoded.split('/').map(str::to_owned));
    if whole == per_segment {
        vec![per_segment]
    } else {
        vec![per_segment, whole]
    }
}

/// Lower-cases segments, drops empty and `.` segments and applies `..`, as URL resolution does.
fn normalise(segments: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for segment in segments {
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment.to_ascii_lowercase()),
        }
    }
    out
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn match_segments(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                (first == "*" || first == segment) && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn guard() -> Guard {
        Guard::new("testbroker")
            .deny("power", &[Method::POST], "Machines/*/$reboot")
            .deny("image", &[], "Images/**")
            .deny("delete", &[Method::DELETE], "Machines/*")
    }

    #[test]
    fn check_table() {
        let cases: &[(Method, &str, Option<&str>)] = &[
            (Method::POST, "Machines/m1/$reboot", Some("power")),
            (Method::POST, "machines/M1/$REBOOT", Some("power")),
            (Method::POST, "Machines/m1/%24reboot", Some("power")),
            (Method::POST, "Machines/m1/%24Reboot/", Some("power")),
            (
                Method::POST,
                "/Machines/m1/$reboot?async=true",
                Some("power"),
            ),
            (Method::POST, "Machines/DOM%7CPC1/$reboot", Some("power")),
            (Method::POST, "Machines/DOM|PC1/$reboot", Some("power")),
            (Method::POST, "Machines//m1/$reboot", Some("power")),
            (Method::POST, "Machines/x/../m1/$reboot", Some("power")),
            (Method::POST, "Machines/m1%2F%24reboot", Some("power")),
            (Method::GET, "Machines/m1/$reboot", None),
            (Method::POST, "Machines/m1/reboot", None),
            (Method::POST, "Machines/m1", None),
            (Method::POST, "Machines/m1/$reboot/extra", None),
            (Method::GET, "Images", Some("image")),
            (Method::PATCH, "images/a/b/c", Some("image")),
            (Method::GET, "ImagesX", None),
            (Method::DELETE, "Machines/m1", Some("delete")),
            (Method::DELETE, "Machines/DOM%7CPC1", Some("delete")),
            (Method::DELETE, "Machines", None),
            (Method::DELETE, "Tags/t1", None),
        ];
        let guard = guard();
        for (method, path, expected) in cases {
            let result = guard.check(method, path, None);
            let class = result.as_ref().err().map(|v| v.class.as_str());
            assert_eq!(class, *expected, "{method} {path}");
        }
    }

    #[test]
    fn pattern_with_encoding_matches_plain_path() {
        let guard = Guard::new("b").deny("power", &[], "Machines/*/%24shutdown");
        assert!(guard
            .check(&Method::POST, "Machines/m/$shutdown", None)
            .is_err());
    }

    #[test]
    fn violation_names_broker_method_and_path() {
        let violation = guard()
            .check(&Method::POST, "Machines/m1/$reboot", None)
            .unwrap_err();
        assert_eq!(violation.broker, "testbroker");
        assert_eq!(violation.method, "POST");
        assert_eq!(violation.path, "Machines/m1/$reboot");
        let message = violation.to_string();
        assert!(
            message.contains("POST Machines/m1/$reboot (power)"),
            "{message}"
        );
    }

    #[test]
    fn rules_returns_in_order() {
        let classes: Vec<&str> = guard().rules().iter().map(|r| r.class).collect();
        assert_eq!(classes, vec!["power", "image", "delete"]);
    }

    /// Reads `{"requests": [{"method", "path", "body"?}]}` from bodies sent to `$batch`.
    #[derive(Debug)]
    struct BatchInspector;

    impl BodyInspector for BatchInspector {
        fn inner_requests(
            &self,
            method: &Method,
            path: &str,
            body: &serde_json::Value,
        ) -> Result<Vec<(Method, String)>, GuardViolation> {
            Ok(self
                .inner_requests_with_bodies(method, path, body)?
                .into_iter()
                .map(|inner| (inner.method, inner.path))
                .collect())
        }

        fn inner_requests_with_bodies(
            &self,
            _method: &Method,
            path: &str,
            body: &serde_json::Value,
        ) -> Result<Vec<InnerRequest>, GuardViolation> {
            if !path.ends_with("$batch") {
                return Ok(Vec::new());
            }
            let requests = body["requests"].as_array().cloned().unwrap_or_default();
            Ok(requests
                .iter()
                .map(|request| InnerRequest {
                    method: request["method"].as_str().unwrap().parse().unwrap(),
                    path: request["path"].as_str().unwrap().to_owned(),
                    body: request.get("body").cloned(),
                })
                .collect())
        }
    }

    /// Rejects any body with `"DeleteTags"`, and reports pairs only through the required
    /// method, to exercise the default `inner_requests_with_bodies`.
    #[derive(Debug)]
    struct TagInspector;

    impl BodyInspector for TagInspector {
        fn inner_requests(
            &self,
            method: &Method,
            path: &str,
            body: &serde_json::Value,
        ) -> Result<Vec<(Method, String)>, GuardViolation> {
            if body.get("DeleteTags").is_some() {
                return Err(GuardViolation {
                    broker: "testbroker".to_owned(),
                    class: "tag_delete".to_owned(),
                    method: method.to_string(),
                    path: path.to_owned(),
                });
            }
            Ok(Vec::new())
        }
    }

    fn batch(requests: serde_json::Value) -> serde_json::Value {
        json!({ "requests": requests })
    }

    #[test]
    fn batch_with_denied_request_blocks() {
        let guard = guard().inspect_bodies(Arc::new(BatchInspector));
        let body = batch(json!([
            {"method": "GET", "path": "Machines/m1"},
            {"method": "POST", "path": "Machines/m2/$reboot"},
        ]));
        let violation = guard
            .check(&Method::POST, "$batch", Some(&body))
            .unwrap_err();
        assert_eq!(violation.class, "power");
        assert_eq!(violation.path, "Machines/m2/$reboot");
    }

    #[test]
    fn batch_with_allowed_requests_passes() {
        let guard = guard().inspect_bodies(Arc::new(BatchInspector));
        let body = batch(json!([{"method": "GET", "path": "Machines/m1"}]));
        assert!(guard.check(&Method::POST, "$batch", Some(&body)).is_ok());
    }

    #[test]
    fn nested_batch_with_denied_request_blocks() {
        let guard = guard().inspect_bodies(Arc::new(BatchInspector));
        let inner = batch(json!([{"method": "DELETE", "path": "Machines/m9"}]));
        let body = batch(json!([{"method": "POST", "path": "$batch", "body": inner}]));
        let violation = guard
            .check(&Method::POST, "$batch", Some(&body))
            .unwrap_err();
        assert_eq!(violation.class, "delete");
    }

    #[test]
    fn batch_nesting_beyond_limit_blocks() {
        let guard = guard().inspect_bodies(Arc::new(BatchInspector));
        let mut body = batch(json!([{"method": "GET", "path": "Machines/m1"}]));
        for _ in 0..MAX_BODY_DEPTH + 1 {
            body = batch(json!([{"method": "POST", "path": "$batch", "body": body}]));
        }
        let violation = guard
            .check(&Method::POST, "$batch", Some(&body))
            .unwrap_err();
        assert_eq!(violation.class, "batch_depth");
    }

    #[test]
    fn inspector_violation_blocks() {
        let guard = guard().inspect_bodies(Arc::new(TagInspector));
        let body = json!({"DeleteTags": ["t1"]});
        let violation = guard
            .check(&Method::PATCH, "Machines/m1", Some(&body))
            .unwrap_err();
        assert_eq!(violation.class, "tag_delete");
    }

    #[test]
    fn inspector_inside_batch_blocks() {
        let guard = guard()
            .inspect_bodies(Arc::new(BatchInspector))
            .inspect_bodies(Arc::new(TagInspector));
        let body = batch(json!([
            {"method": "PATCH", "path": "Machines/m1", "body": {"DeleteTags": ["t"]}},
        ]));
        let violation = guard
            .check(&Method::POST, "$batch", Some(&body))
            .unwrap_err();
        assert_eq!(violation.class, "tag_delete");
    }

    #[test]
    fn empty_guard_allows_everything() {
        let guard = Guard::new("b");
        assert!(guard
            .check(&Method::DELETE, "anything/at/all", None)
            .is_ok());
    }
}
