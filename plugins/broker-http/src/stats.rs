//! Counters of a broker client.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one client, for benchmarks and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Attempts sent, including retries and token requests.
    pub attempts: u64,
    /// Retries after a retryable failure.
    pub retries: u64,
    /// Re-authentications after a 401.
    pub reauthentications: u64,
    /// Requests the guard blocked.
    pub guard_blocks: u64,
    /// 429 responses received.
    pub throttled: u64,
}

/// Live counters behind [`ClientStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) reauthentications: AtomicU64,
    pub(crate) guard_blocks: AtomicU64,
    pub(crate) throttled: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reauthentications: self.reauthentications.load(Ordering::Relaxed),
            guard_blocks: self.guard_blocks.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}
