//! The endpoint guard: a deny-list of image, reboot, power, reprovision and delete endpoints,
//! checked before every request the client sends, including requests inside batch bodies.

use std::sync::Arc;

use http::Method;

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

    /// Checks a request and, recursively, the requests inside its body.
    ///
    /// # Errors
    /// Returns the first violation found.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), GuardViolation> {
        let _ = (method, path, body, &self.broker, &self.rules, &self.inspectors);
        unimplemented!()
    }
}
