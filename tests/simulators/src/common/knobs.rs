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
    /// Whether a 429 carries its wait in whole seconds, in the header that
    /// `retry_after_style` names.
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
    /// Header that carries the wait of a 429 when `retry_after_header` is on.
    pub retry_after_style: RetryAfterStyle,
    /// Body shape of Horizon error responses.
    pub horizon_error_style: HorizonErrorStyle,
    /// Object ids (sessions, machines, application or desktop pools) whose items in Horizon
    /// bulk requests fail with a per-item 500 while the request itself returns 200.
    pub fail_bulk_items: Vec<String>,
    /// Makes Graph lists return an empty page with an `@odata.nextLink` before every page
    /// that has items, as Microsoft Graph may do.
    pub empty_pages: bool,
    /// Probability that a request inside a Graph `$batch` gets its own 429 with a
    /// `Retry-After` header while the batch itself returns 200.
    pub batch_throttle_rate: f64,
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
            retry_after_style: RetryAfterStyle::RetryAfter,
            horizon_error_style: HorizonErrorStyle::ErrorMessage,
            fail_bulk_items: Vec::new(),
            empty_pages: false,
            batch_throttle_rate: 0.0,
        }
    }
}

/// Header name of the wait in seconds that a 429 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterStyle {
    /// The standard `Retry-After` header (RFC 9110).
    #[default]
    RetryAfter,
    /// `X-Rate-Limit-Retry-After-Seconds`, which some Horizon clients read.
    XRateLimitRetryAfterSeconds,
}

impl RetryAfterStyle {
    /// Returns the header name in lower case.
    pub fn header_name(self) -> &'static str {
        match self {
            RetryAfterStyle::RetryAfter => "retry-after",
            RetryAfterStyle::XRateLimitRetryAfterSeconds => "x-rate-limit-retry-after-seconds",
        }
    }
}

/// Body shape of Horizon error responses; clients must read all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HorizonErrorStyle {
    /// `{"status", "timestamp", "error_message"}`, the shape most Horizon errors have.
    #[default]
    ErrorMessage,
    /// `{"status", "timestamp", "errors": [{"error_key", "error_message"}]}`, the shape of
    /// validation errors.
    ErrorsArray,
    /// The message as `text/plain`, as a proxy in front of the server may return it.
    PlainText,
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
        assert_eq!(knobs.horizon_error_style, HorizonErrorStyle::ErrorMessage);
        assert_eq!(knobs.retry_after_style, RetryAfterStyle::RetryAfter);
    }

    #[test]
    fn knobs_horizon_fields_parse() {
        let text = r#"{"horizon_error_style": "plain_text",
            "retry_after_style": "x_rate_limit_retry_after_seconds"}"#;
        let knobs: Knobs = serde_json::from_str(text).unwrap();
        assert_eq!(knobs.horizon_error_style, HorizonErrorStyle::PlainText);
        assert_eq!(
            knobs.retry_after_style.header_name(),
            "x-rate-limit-retry-after-seconds"
        );
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
