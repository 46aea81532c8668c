//! Parsing of the delay a broker requests in `Retry-After` and similar headers.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Header VMware Horizon sends with 429 responses instead of `Retry-After`, in whole seconds.
pub const X_RATE_LIMIT_RETRY_AFTER_SECONDS: &str = "x-rate-limit-retry-after-seconds";

/// Parses one `Retry-After` value: whole seconds (`"120"`), fractional seconds (`"1.5"`) or
/// an HTTP-date, which is taken relative to `now`.
///
/// Returns `None` for anything else, including negative numbers. A date in the past gives
/// zero, because the broker is ready already.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    if looks_like_decimal(value) {
        let seconds: f64 = value.parse().ok()?;
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Returns the delay requested by `Retry-After`, or else by
/// `X-Rate-Limit-Retry-After-Seconds`; `None` when neither is present and valid.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    [
        http::header::RETRY_AFTER.as_str(),
        X_RATE_LIMIT_RETRY_AFTER_SECONDS,
    ]
    .into_iter()
    .filter_map(|name| headers.get(name))
    .filter_map(|value| value.to_str().ok())
    .find_map(|value| parse_retry_after(value, now))
}

/// Accepts `digits.digits` only, so that `f64` parsing cannot take `inf`, `NaN` or `1e3`.
fn looks_like_decimal(value: &str) -> bool {
    match value.split_once('.') {
        Some((whole, fraction)) => {
            !whole.is_empty()
                && !fraction.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("1", Some(Duration::from_secs(1))),
            ("120", Some(Duration::from_secs(120))),
            (" 7 ", Some(Duration::from_secs(7))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("0.25", Some(Duration::from_millis(250))),
            (
                "Sun, 06 Nov 1994 08:49:47 GMT",
                Some(Duration::from_secs(10)),
            ),
            (
                "Sunday, 06-Nov-94 08:50:37 GMT",
                Some(Duration::from_secs(60)),
            ),
            ("Sun Nov  6 08:49:39 1994", Some(Duration::from_secs(2))),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("", None),
            ("   ", None),
            ("-1", None),
            ("-1.5", None),
            ("1.", None),
            (".5", None),
            ("1e3", None),
            ("inf", None),
            ("NaN", None),
            ("soon", None),
            ("99999999999999999999999", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(value, now()),
                *expected,
                "value {value:?}"
            );
        }
    }

    #[test]
    fn header_prefers_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        headers.insert(
            X_RATE_LIMIT_RETRY_AFTER_SECONDS,
            HeaderValue::from_static("9"),
        );
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(3)));
    }

    #[test]
    fn header_falls_back_to_horizon_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-Rate-Limit-Retry-After-Seconds",
            HeaderValue::from_static("9"),
        );
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(9)));
    }

    #[test]
    fn header_skips_garbage_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("later"));
        headers.insert(
            X_RATE_LIMIT_RETRY_AFTER_SECONDS,
            HeaderValue::from_static("4"),
        );
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(4)));
    }

    #[test]
    fn header_absent_returns_none() {
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }
}
