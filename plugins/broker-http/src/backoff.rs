//! SKELETON: to be written.

use std::time::Duration;

/// Retry policy: decorrelated jitter between `base` and `cap`, at most `max_retries` retries
/// and `deadline` in all per request, and a shared budget of retries.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Retries per request at most.
    pub max_retries: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest single backoff (and longest `Retry-After` honoured).
    pub cap: Duration,
    /// Total time a request may take with its retries.
    pub deadline: Duration,
    /// Retries allowed as a fraction of recent requests, across the client.
    pub budget_ratio: f64,
}
