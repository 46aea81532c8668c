//! The error every provider returns, with a kind and a retryable flag.
//!
//! The shared retry layer and the engine read only [`ProviderError::retryable`] and
//! [`ProviderError::kind`]; providers classify broker responses into these.

use serde::{Deserialize, Serialize};

use crate::model::{BrokerWrite, ProviderErrorBody};

/// Class of a provider failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The target, machine or object does not exist.
    NotFound,
    /// Credentials were missing, wrong or expired and re-authentication failed.
    Unauthenticated,
    /// Authenticated, but the account lacks the right.
    Forbidden,
    /// The broker throttled the gateway.
    RateLimited,
    /// The broker could not be reached or returned a server error.
    Unavailable,
    /// The broker refused the change because of its current state.
    Conflict,
    /// The request or the broker's response was malformed.
    Invalid,
    /// The endpoint guard blocked a request to a denied endpoint; never retried.
    GuardViolation,
    /// A bug or an unexpected state in the gateway or plugin.
    Internal,
}

impl ErrorKind {
    /// Returns the snake_case name used in logs and envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::GuardViolation => "guard_violation",
            ErrorKind::Internal => "internal",
        }
    }

    /// Returns whether errors of this kind are retryable unless the provider sets the flag otherwise.
    pub fn default_retryable(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider operation.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    /// Class of failure.
    pub kind: ErrorKind,
    /// Message naming the failed operation, the value and the next step.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
    /// Underlying cause.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// Broker writes the call made before it failed, so the audit trail keeps them; empty for
    /// most errors.
    pub writes: Vec<BrokerWrite>,
}

impl ProviderError {
    /// Creates an error of `kind` with the kind's default retryable flag.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable: kind.default_retryable(),
            source: None,
            writes: Vec::new(),
        }
    }

    /// Attaches the broker writes made before the failure.
    #[must_use]
    pub fn with_writes(mut self, writes: Vec<BrokerWrite>) -> Self {
        self.writes = writes;
        self
    }

    /// Sets the retryable flag.
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Creates a `not_found` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Creates an `invalid` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// Creates an `internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Creates an `unavailable` error, retryable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Returns the serializable form, with the source chain folded into the message.
    pub fn to_body(&self) -> ProviderErrorBody {
        let mut message = self.message.clone();
        let mut cause = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(error) = cause {
            message.push_str(": ");
            message.push_str(&error.to_string());
            cause = error.source();
        }
        ProviderErrorBody {
            kind: self.kind,
            message,
            retryable: self.retryable,
            writes: self.writes.clone(),
        }
    }
}

impl From<ProviderErrorBody> for ProviderError {
    fn from(body: ProviderErrorBody) -> Self {
        Self {
            kind: body.kind,
            message: body.message,
            retryable: body.retryable,
            source: None,
            writes: body.writes,
        }
    }
}

/// Result alias for provider operations.
pub type ProviderResult<T> = Result<T, ProviderError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_is_retryable_by_default() {
        assert!(ProviderError::new(ErrorKind::RateLimited, "slow down").retryable);
    }

    #[test]
    fn guard_violation_is_never_retryable_by_default() {
        assert!(!ProviderError::new(ErrorKind::GuardViolation, "denied").retryable);
    }

    #[test]
    fn body_folds_source_chain() {
        let io = std::io::Error::other("connection reset");
        let error = ProviderError::unavailable("GET /Machines failed").with_source(io);
        assert_eq!(
            error.to_body().message,
            "GET /Machines failed: connection reset"
        );
    }
}
