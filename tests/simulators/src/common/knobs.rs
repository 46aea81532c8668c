//! Fault and latency knobs that tests turn at run time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fault injection and latency settings of a simulator.
///
/// Rates are probabilities in `0.0..=1.0` drawn per API request. Token requests, requests
/// inside a batch and control endpoints never get injected faults. The default turns every
/// fault off and adds no latency. In JSON the latency is `latency_ms`, and a missing field
/// keeps its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knobs {
    /// Delay before answering every API request (control endpoints excluded).
    #[serde(rename = "latency_ms", with = "duration_ms")]
    pub latency: Duration,
    /// Token-bucket rate limit in requests per second, with a burst of one second;
    /// requests over it get 429.
    pub rate_limit_per_second: Option<f64>,
    /// Whether a 429 carries a `Retry-After` header in whole seconds.
    pub retry_after_header: bool,
    /// Probability of a 503 with a JSON error body.
    pub error_rate: f64,
    /// Probability of a 502 with an HTML body and no transaction id header.
    pub html_502_rate: f64,
    /// Probability of a 502 with an empty body and no transaction id header.
    pub empty_502_rate: f64,
    /// Probability that a 200 response carries only the first half of its JSON body.
    pub truncate_rate: f64,
    /// Injects undocumented enum values and fields into returned objects.
    pub unknown_values: bool,
    /// Makes the site look frozen: `GET /me` returns 530.
    pub frozen: bool,
    /// Final status of asynchronous jobs.
    pub job_outcome: JobOutcome,
    /// Machine ids (or names) whose per-machine tag POST fails with 500.
    pub fail_tag_machines: Vec<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            rate_limit_per_second: None,
            retry_after_header: false,
            error_rate: 0.0,
            html_502_rate: 0.0,
            empty_502_rate: 0.0,
            truncate_rate: 0.0,
            unknown_values: false,
            frozen: false,
            job_outcome: JobOutcome::Complete,
            fail_tag_machines: Vec::new(),
        }
    }
}

/// Final status that simulated asynchronous jobs report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JobOutcome {
    /// The job applies its change and ends `Complete`.
    #[default]
    Complete,
    /// The job applies its change and ends `CompleteWithWarning`.
    CompleteWithWarning,
    /// The job changes nothing and ends `Failed` with an error string and details.
    Failed,
}

impl JobOutcome {
    /// Returns the job status name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Complete => "Complete",
            JobOutcome::CompleteWithWarning => "CompleteWithWarning",
            JobOutcome::Failed => "Failed",
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_partial_json_keeps_defaults() {
        let knobs: Knobs = serde_json::from_str(r#"{"latency_ms": 25, "frozen": true}"#).unwrap();
        assert_eq!(knobs.latency, Duration::from_millis(25));
        assert!(knobs.frozen);
        assert_eq!(knobs.error_rate, 0.0);
        assert_eq!(knobs.job_outcome, JobOutcome::Complete);
    }

    #[test]
    fn knobs_round_trip() {
        let knobs = Knobs {
            job_outcome: JobOutcome::Failed,
            rate_limit_per_second: Some(5.0),
            ..Knobs::default()
        };
        let text = serde_json::to_string(&knobs).unwrap();
        let back: Knobs = serde_json::from_str(&text).unwrap();
        assert_eq!(back, knobs);
    }
}
