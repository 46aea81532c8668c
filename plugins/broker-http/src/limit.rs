//! Per-client limits: requests in flight (a semaphore) and sustained request rate (a token
//! bucket that halves its rate for a while after the broker throttles).
//!
//! The bucket is hand-written rather than built on `governor`: a governor quota is fixed
//! when the limiter is built, so halving the rate after a 429 would mean replacing the limiter
//! and losing its state. It also reads its own clock, while this bucket uses tokio's, so that
//! tests can run with paused time.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limit on requests in flight, shared by clones of a client.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    semaphore: Arc<Semaphore>,
}

impl ConcurrencyLimit {
    /// Creates a limit of `max_in_flight` requests; 0 is raised to 1.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Waits for a free slot; the slot is released when the permit drops.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        // Nothing closes this private semaphore, so acquiring cannot fail.
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the concurrency semaphore is never closed")
    }

    /// Returns the number of free slots.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// Token-bucket rate limiter that slows down after the broker throttles.
///
/// Callers reserve a token and sleep until it is theirs, so waiting callers are served in
/// order of arrival. After [`RateLimiter::throttled`], the refill rate is halved for the
/// cool-down period and then restored.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    cooldown: Duration,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Tokens available; negative when callers have reserved tokens still to be refilled.
    tokens: f64,
    refilled_at: Instant,
    slow_until: Option<Instant>,
}

impl RateLimiter {
    /// How long the rate stays halved after a 429 by default: long enough for the broker's
    /// throttling window (typically a minute or less) to reset.
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

    /// Creates a limiter of `requests_per_second` with bursts of `burst` requests.
    ///
    /// An infinite rate disables limiting. `burst` below 1 is raised to 1.
    pub fn new(requests_per_second: f64, burst: usize, cooldown: Duration) -> Self {
        let burst = burst.max(1) as f64;
        Self {
            rate: requests_per_second,
            burst,
            cooldown,
            state: Mutex::new(BucketState {
                tokens: burst,
                refilled_at: Instant::now(),
                slow_until: None,
            }),
        }
    }

    /// Waits until the caller may send one request.
    pub async fn acquire(&self) {
        if let Some(wait) = self.reserve() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one token and returns how long to wait before it may be used, if at all.
    pub fn reserve(&self) -> Option<Duration> {
        if self.rate.is_infinite() {
            return None;
        }
        let now = Instant::now();
        let mut state = self.lock();
        let rate = self.refill(&mut state, now);
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            return None;
        }
        Some(Duration::from_secs_f64(-state.tokens / rate))
    }

    /// Halves the rate for the cool-down period after a 429 from the broker.
    ///
    /// A 429 during the cool-down restarts it but does not halve again, because requests
    /// already in flight when the broker started throttling each bring back their own 429.
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        self.refill(&mut state, now);
        state.slow_until = Some(now + self.cooldown);
    }

    /// Returns the current sustained rate in requests per second.
    pub fn effective_rate(&self) -> f64 {
        let state = self.lock();
        self.rate_at(&state, Instant::now())
    }

    fn rate_at(&self, state: &BucketState, now: Instant) -> f64 {
        match state.slow_until {
            Some(until) if now < until => self.rate / 2.0,
            _ => self.rate,
        }
    }

    /// Adds the tokens earned since the last refill and returns the rate in force now.
    fn refill(&self, state: &mut BucketState, now: Instant) -> f64 {
        let rate = self.rate_at(state, now);
        let elapsed = now.saturating_duration_since(state.refilled_at);
        state.tokens = (state.tokens + elapsed.as_secs_f64() * rate).min(self.burst);
        state.refilled_at = now;
        if state.slow_until.is_some_and(|until| now >= until) {
            state.slow_until = None;
        }
        rate
    }

    fn lock(&self) -> MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts how many `acquire` calls complete within `window`, started back to back.
    async fn granted_within(limiter: &RateLimiter, window: Duration, max_calls: usize) -> usize {
        let start = Instant::now();
        let mut granted = 0;
        for _ in 0..max_calls {
            limiter.acquire().await;
            if start.elapsed() > window {
                break;
            }
            granted += 1;
        }
        granted
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_immediately() {
        let limiter = RateLimiter::new(1.0, 5, RateLimiter::DEFAULT_COOLDOWN);
        for _ in 0..5 {
            assert_eq!(limiter.reserve(), None);
        }
        assert!(limiter.reserve().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_spaces_requests_at_rate() {
        let limiter = RateLimiter::new(10.0, 1, RateLimiter::DEFAULT_COOLDOWN);
        // One from the burst, then ten per second.
        let granted = granted_within(&limiter, Duration::from_millis(1_050), 100).await;
        assert_eq!(granted, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_queues_reservations_in_order() {
        let limiter = RateLimiter::new(2.0, 1, RateLimiter::DEFAULT_COOLDOWN);
        assert_eq!(limiter.reserve(), None);
        assert_eq!(limiter.reserve(), Some(Duration::from_millis(500)));
        assert_eq!(limiter.reserve(), Some(Duration::from_millis(1000)));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_halves_rate() {
        let limiter = RateLimiter::new(10.0, 1, Duration::from_secs(30));
        limiter.throttled();
        assert!((limiter.effective_rate() - 5.0).abs() < 1e-9);
        let granted = granted_within(&limiter, Duration::from_millis(1_050), 100).await;
        assert_eq!(granted, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_twice_halves_once() {
        let limiter = RateLimiter::new(10.0, 1, Duration::from_secs(30));
        limiter.throttled();
        limiter.throttled();
        assert!((limiter.effective_rate() - 5.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_restores_after_cooldown() {
        let limiter = RateLimiter::new(10.0, 1, Duration::from_secs(30));
        limiter.throttled();
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!((limiter.effective_rate() - 10.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn infinite_rate_never_waits() {
        let limiter = RateLimiter::new(f64::INFINITY, 1, RateLimiter::DEFAULT_COOLDOWN);
        for _ in 0..1_000 {
            assert_eq!(limiter.reserve(), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_blocks_when_full() {
        let limit = ConcurrencyLimit::new(2);
        let first = limit.acquire().await;
        let _second = limit.acquire().await;
        assert_eq!(limit.available(), 0);

        let waiting = tokio::time::timeout(Duration::from_secs(1), limit.acquire()).await;
        assert!(waiting.is_err(), "a third permit was granted");

        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), limit.acquire()).await;
        assert!(third.is_ok(), "no permit after one was released");
    }

    #[test]
    fn concurrency_zero_becomes_one() {
        assert_eq!(ConcurrencyLimit::new(0).available(), 1);
    }
}
