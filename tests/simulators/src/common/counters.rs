//! Call counters that tests read to check what a client did.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Counts of the API requests a simulator received since start or the last reset.
///
/// Control endpoints under `/_sim/` are not counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Number of API requests, including token requests, denied and failed ones, and each
    /// request inside a `$batch` body.
    pub total: u64,
    /// Number of requests that arrived over HTTP: `total` without the requests inside batch
    /// bodies. This is what latency and connection limits apply to.
    pub http_requests: u64,
    /// Requests per route, keyed `"METHOD /lower-case/path"` with object names and ids
    /// replaced by `{id}`, for example `"POST /cvad/manage/machines/{id}/tags/{id}"`.
    pub by_route: BTreeMap<String, u64>,
    /// Number of requests with a method other than GET or HEAD.
    pub writes: u64,
    /// Requests per response status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Calls to endpoints on the deny-list, in arrival order.
    pub denied: Vec<DeniedCall>,
    /// Number of access tokens issued.
    pub tokens_issued: u64,
}

impl Counters {
    /// Returns how many requests went to `route` (a `by_route` key).
    pub fn route(&self, route: &str) -> u64 {
        self.by_route.get(route).copied().unwrap_or(0)
    }
}

/// One call to a deny-listed endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedCall {
    /// HTTP method of the call.
    pub method: String,
    /// Request path as received, without the query.
    pub path: String,
    /// Deny-list class, for example `reboot` or `image_provisioning`.
    pub class: String,
}

/// Thread-safe owner of a [`Counters`] value.
#[derive(Debug, Default)]
pub struct CounterSet {
    inner: Mutex<Counters>,
}

impl CounterSet {
    /// Records one finished request; `outer` is false for a request inside a batch body.
    pub fn record(&self, method: &str, route: String, status: u16, outer: bool) {
        let mut counters = self.lock();
        counters.total += 1;
        if outer {
            counters.http_requests += 1;
        }
        *counters.by_route.entry(route).or_insert(0) += 1;
        *counters.by_status.entry(status).or_insert(0) += 1;
        if method != "GET" && method != "HEAD" {
            counters.writes += 1;
        }
    }

    /// Records a call to a deny-listed endpoint.
    pub fn record_denied(&self, call: DeniedCall) {
        self.lock().denied.push(call);
    }

    /// Records an issued access token.
    pub fn record_token(&self) {
        self.lock().tokens_issued += 1;
    }

    /// Returns a copy of the counters.
    pub fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        *self.lock() = Counters::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while counting leaves plain numbers behind, so a poisoned lock is usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_writes_and_status() {
        let set = CounterSet::default();
        set.record("GET", "GET /a".into(), 200, true);
        set.record("POST", "POST /a".into(), 404, false);
        let counters = set.snapshot();
        assert_eq!(counters.total, 2);
        assert_eq!(
            counters.http_requests, 1,
            "the batched request came in no HTTP request"
        );
        assert_eq!(counters.writes, 1);
        assert_eq!(counters.by_status.get(&404), Some(&1));
        assert_eq!(counters.route("GET /a"), 1);
    }

    #[test]
    fn reset_clears_everything() {
        let set = CounterSet::default();
        set.record("GET", "GET /a".into(), 200, true);
        set.record_token();
        set.reset();
        assert_eq!(set.snapshot(), Counters::default());
    }
}
