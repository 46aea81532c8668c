//! Retry policy: decorrelated-jitter backoff per request and a retry budget shared by a client.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

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

impl Default for RetryConfig {
    /// Returns the defaults used by every provider unless its config overrides them:
    ///
    /// - `max_retries` 4: with jitter growing about threefold per step, the fourth retry comes
    ///   several seconds after the first failure, which rides out a broker restart or a
    ///   load-balancer failover without making an operator wait minutes for a real outage.
    /// - `base` 100 ms: long enough for a broker that dropped a connection to accept the next
    ///   one, short enough that a single lost packet costs little.
    /// - `cap` 20 s: throttling brokers typically send `Retry-After` values of a few seconds to
    ///   tens of seconds (an estimate). A longer wait is better left to the engine's next
    ///   reconcile.
    /// - `deadline` 120 s: an operation that has not succeeded in two minutes is reported as
    ///   failed so the engine can decide; token lifetimes (one hour and more) stay well above.
    /// - `budget_ratio` 0.2: during an outage every request fails, so retries may add at most
    ///   20% to the recent request rate (plus a small floor) instead of multiplying it.
    fn default() -> Self {
        Self {
            max_retries: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(20),
            deadline: Duration::from_secs(120),
            budget_ratio: 0.2,
        }
    }
}

/// Backoff of one request: decorrelated jitter, `min(cap, random(base ..= previous * 3))`.
///
/// Each delay depends on the previous one, so concurrent clients that failed together spread
/// out instead of retrying in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    previous: Duration,
}

impl Backoff {
    /// Creates the backoff state for one request.
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            base: config.base,
            cap: config.cap,
            previous: config.base,
        }
    }

    /// Returns the next delay, drawn from the thread-local random generator.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// Returns the next delay, drawn from `rng`.
    pub fn next_delay_with(&mut self, rng: &mut impl Rng) -> Duration {
        let low = self.base.min(self.cap);
        let high = self.previous.saturating_mul(3).min(self.cap).max(low);
        let delay = if high > low {
            Duration::from_secs_f64(rng.random_range(low.as_secs_f64()..=high.as_secs_f64()))
        } else {
            low
        };
        self.previous = delay;
        delay
    }
}

/// Number of slots the budget window is divided into; old slots expire one at a time.
const BUDGET_SLOTS: usize = 10;

/// Retry budget shared by all requests of a client.
///
/// Every logical request deposits one unit; every retry withdraws one. Within the sliding
/// `window`, retries may reach `floor + ratio * requests`. The floor lets a quiet client
/// retry at all; the ratio keeps retries from multiplying the load on a broker that is down.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor: u64,
    slot_length: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    start: Instant,
    /// Index of the newest slot since `start`.
    current: u64,
    requests: [u64; BUDGET_SLOTS],
    retries: [u64; BUDGET_SLOTS],
}

impl RetryBudget {
    /// Window the budget counts over by default.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

    /// Retries per window always allowed by default, one per second on average.
    pub const DEFAULT_FLOOR: u64 = 10;

    /// Creates a budget allowing `floor + ratio * requests` retries per `window`.
    ///
    /// A negative or non-finite `ratio` counts as 0, so only the floor remains.
    pub fn new(ratio: f64, floor: u64, window: Duration) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        let slot_length = (window / BUDGET_SLOTS as u32).max(Duration::from_millis(1));
        Self {
            ratio,
            floor,
            slot_length,
            state: Mutex::new(BudgetState {
                start: Instant::now(),
                current: 0,
                requests: [0; BUDGET_SLOTS],
                retries: [0; BUDGET_SLOTS],
            }),
        }
    }

    /// Creates the budget of a client from its retry policy, with the default window and floor.
    pub fn from_config(config: &RetryConfig) -> Self {
        Self::new(
            config.budget_ratio,
            Self::DEFAULT_FLOOR,
            Self::DEFAULT_WINDOW,
        )
    }

    /// Records one logical request.
    pub fn deposit(&self) {
        let mut state = self.lock_rotated();
        let slot = state.slot();
        state.requests[slot] += 1;
    }

    /// Takes one retry from the budget; returns false when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        let mut state = self.lock_rotated();
        let requests: u64 = state.requests.iter().sum();
        let retries: u64 = state.retries.iter().sum();
        // Truncation is intended: a fraction of a retry is not a retry.
        let allowed = self.floor + (self.ratio * requests as f64) as u64;
        if retries >= allowed {
            return false;
        }
        let slot = state.slot();
        state.retries[slot] += 1;
        true
    }

    /// Locks the state after clearing the slots that fell out of the window.
    fn lock_rotated(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = state.start.elapsed();
        let now_slot = (elapsed.as_nanos() / self.slot_length.as_nanos()) as u64;
        let expired = now_slot
            .saturating_sub(state.current)
            .min(BUDGET_SLOTS as u64);
        for step in 1..=expired {
            let slot = ((state.current + step) % BUDGET_SLOTS as u64) as usize;
            state.requests[slot] = 0;
            state.retries[slot] = 0;
        }
        state.current = state.current.max(now_slot);
        state
    }
}

impl BudgetState {
    fn slot(&self) -> usize {
        (self.current % BUDGET_SLOTS as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn config(base_ms: u64, cap_ms: u64) -> RetryConfig {
        RetryConfig {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            ..RetryConfig::default()
        }
    }

    #[test]
    fn jitter_stays_within_base_and_triple_previous() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(&config(100, 60_000));
        let mut previous = Duration::from_millis(100);
        for _ in 0..200 {
            let delay = backoff.next_delay_with(&mut rng);
            assert!(delay >= Duration::from_millis(100), "{delay:?} below base");
            assert!(delay <= previous * 3, "{delay:?} above 3 x {previous:?}");
            previous = delay;
        }
    }

    #[test]
    fn jitter_never_exceeds_cap() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut backoff = Backoff::new(&config(100, 1_000));
        for _ in 0..200 {
            assert!(backoff.next_delay_with(&mut rng) <= Duration::from_millis(1_000));
        }
    }

    #[test]
    fn jitter_grows_from_base() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut backoff = Backoff::new(&config(100, 60_000));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay_with(&mut rng)).collect();
        assert!(delays.iter().any(|d| *d > Duration::from_millis(300)));
    }

    #[test]
    fn jitter_with_cap_below_base_returns_cap() {
        let mut backoff = Backoff::new(&config(500, 200));
        assert_eq!(backoff.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn defaults_match_documentation() {
        let config = RetryConfig::default();
        assert_eq!(config.max_retries, 4);
        assert_eq!(config.base, Duration::from_millis(100));
        assert_eq!(config.cap, Duration::from_secs(20));
        assert_eq!(config.deadline, Duration::from_secs(120));
        assert!((config.budget_ratio - 0.2).abs() < f64::EPSILON);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_floor_without_requests() {
        let budget = RetryBudget::new(0.2, 3, Duration::from_secs(10));
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn budget_grows_with_requests() {
        let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10));
        for _ in 0..10 {
            budget.deposit();
        }
        let granted = (0..20).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_refills_after_window() {
        let budget = RetryBudget::new(0.0, 1, Duration::from_secs(10));
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());

        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn budget_forgets_old_requests() {
        let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10));
        for _ in 0..5 {
            budget.deposit();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn budget_ignores_invalid_ratio() {
        let budget = RetryBudget::new(f64::NAN, 1, Duration::from_secs(10));
        budget.deposit();
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }
}
