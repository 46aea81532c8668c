//! Sliding-window per-app limits of the Intune services.
//!
//! Intune counts requests per app in 20-second windows: devices (`managedDevices`) allow
//! 2000 requests and 200 writes, applications (`mobileApps`) 1000 requests and 100 writes
//! (Microsoft Graph throttling limits, Intune service limits). Requests over a limit get
//! 429 with `Retry-After`. Cloud PC paths share the device limits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::IntuneLimits;

/// Intune service a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntuneService {
    Devices,
    Apps,
}

impl IntuneService {
    /// Returns the service of a path given as lower-case segments after the version.
    pub fn of(segments: &[&str]) -> Option<Self> {
        match segments {
            ["devicemanagement", "manageddevices", ..]
            | ["devicemanagement", "virtualendpoint", ..] => Some(IntuneService::Devices),
            ["deviceappmanagement", "mobileapps", ..] => Some(IntuneService::Apps),
            _ => None,
        }
    }
}

/// Arrival times of recent requests in one window.
#[derive(Debug, Default)]
struct Window {
    arrivals: VecDeque<Instant>,
}

impl Window {
    /// Drops arrivals older than `length` and returns the wait until one more fits under
    /// `limit`, or `None` when it fits now.
    fn wait(&mut self, now: Instant, length: Duration, limit: usize) -> Option<Duration> {
        while self
            .arrivals
            .front()
            .is_some_and(|arrival| *arrival + length <= now)
        {
            self.arrivals.pop_front();
        }
        if self.arrivals.len() < limit {
            return None;
        }
        let oldest = self.arrivals.front().copied().unwrap_or(now);
        Some((oldest + length).saturating_duration_since(now))
    }
}

/// The windows of one simulator.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    device_requests: Window,
    device_writes: Window,
    app_requests: Window,
    app_writes: Window,
}

impl Throttle {
    /// Counts one request, or returns the whole seconds to wait when it is over a limit.
    /// A rejected request is not counted.
    pub fn admit(
        &mut self,
        limits: &IntuneLimits,
        service: IntuneService,
        write: bool,
        now: Instant,
    ) -> Result<(), u64> {
        if !limits.enabled {
            return Ok(());
        }
        let (requests, writes, request_limit, write_limit) = match service {
            IntuneService::Devices => (
                &mut self.device_requests,
                &mut self.device_writes,
                limits.device_requests,
                limits.device_writes,
            ),
            IntuneService::Apps => (
                &mut self.app_requests,
                &mut self.app_writes,
                limits.app_requests,
                limits.app_writes,
            ),
        };
        let mut wait = requests.wait(now, limits.window, request_limit);
        if write {
            wait = wait.max(writes.wait(now, limits.window, write_limit));
        }
        if let Some(wait) = wait {
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        requests.arrivals.push_back(now);
        if write {
            writes.arrivals.push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_writes_limited_per_window() {
        let limits = IntuneLimits {
            app_writes: 2,
            ..IntuneLimits::default()
        };
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert!(throttle
            .admit(&limits, IntuneService::Apps, true, start)
            .is_ok());
        assert!(throttle
            .admit(&limits, IntuneService::Apps, true, start)
            .is_ok());
        let wait = throttle
            .admit(&limits, IntuneService::Apps, true, start)
            .unwrap_err();
        assert_eq!(wait, 20);
        assert!(
            throttle
                .admit(&limits, IntuneService::Apps, false, start)
                .is_ok(),
            "reads still fit"
        );
        let later = start + Duration::from_secs(20);
        assert!(throttle
            .admit(&limits, IntuneService::Apps, true, later)
            .is_ok());
    }

    #[test]
    fn service_of_paths() {
        assert_eq!(
            IntuneService::of(&["devicemanagement", "manageddevices"]),
            Some(IntuneService::Devices)
        );
        assert_eq!(
            IntuneService::of(&["deviceappmanagement", "mobileapps", "x"]),
            Some(IntuneService::Apps)
        );
        assert_eq!(IntuneService::of(&["groups"]), None);
    }
}
