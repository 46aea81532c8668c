//! Turning a non-success response into a [`ProviderError`] with a kind and a retryable flag.

use vdi_contracts::ProviderError;

use crate::client::BrokerResponse;

/// Classifies non-success responses of one broker; the retry loop reads only the result's
/// `retryable` flag and, for 429 and 503, the response's `Retry-After`.
pub trait ErrorClassifier: Send + Sync + std::fmt::Debug {
    /// Classifies a response whose status is not a success.
    fn classify(&self, response: &BrokerResponse) -> ProviderError;
}

/// Classification by status code alone: 400/422 invalid, 401 unauthenticated, 403 forbidden,
/// 404 not found, 409 conflict, 408 and 5xx unavailable (retryable), 429 rate limited
/// (retryable).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;
