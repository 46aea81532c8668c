//! Maintenance windows and freezes: whether an assignment may change machines now.
//!
//! A window rule is read in its own time zone on the local wall clock, so a rule of 01:00 to
//! 05:00 means those local hours on every day, including the days daylight-saving time starts
//! or ends (the interval is then an hour shorter or longer in absolute time). An end at or
//! before the start crosses midnight: the interval runs from the start on a listed day to the
//! end on the next day.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday as ChronoWeekday};
use chrono_tz::Tz;
use vdi_contracts::{Weekday, Window, WindowRule};

/// Checks a window: the time zone is known, each rule has days and `HH:MM` times.
///
/// # Errors
/// Returns a message naming the invalid field and the fix.
pub fn validate(window: &Window) -> Result<(), String> {
    Tz::from_str(&window.timezone).map_err(|_| {
        format!(
            "window.timezone {:?} is not an IANA time zone; use a name such as America/Chicago",
            window.timezone
        )
    })?;
    if window.allow.is_empty() {
        return Err("window.allow is empty; give at least one {days, start, end} rule".into());
    }
    for (index, rule) in window.allow.iter().enumerate() {
        if rule.days.is_empty() {
            return Err(format!(
                "window.allow[{index}].days is empty; list days such as [\"sat\", \"sun\"]"
            ));
        }
        parse_time(&rule.start).map_err(|e| format!("window.allow[{index}].start: {e}"))?;
        parse_time(&rule.end).map_err(|e| format!("window.allow[{index}].end: {e}"))?;
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{text:?} is not a 24-hour HH:MM time such as 01:30"))
}

fn weekday(day: Weekday) -> ChronoWeekday {
    match day {
        Weekday::Mon => ChronoWeekday::Mon,
        Weekday::Tue => ChronoWeekday::Tue,
        Weekday::Wed => ChronoWeekday::Wed,
        Weekday::Thu => ChronoWeekday::Thu,
        Weekday::Fri => ChronoWeekday::Fri,
        Weekday::Sat => ChronoWeekday::Sat,
        Weekday::Sun => ChronoWeekday::Sun,
    }
}

fn rule_contains(rule: &WindowRule, day: ChronoWeekday, time: NaiveTime) -> bool {
    let (Ok(start), Ok(end)) = (parse_time(&rule.start), parse_time(&rule.end)) else {
        return false;
    };
    let listed = |d: ChronoWeekday| rule.days.iter().any(|r| weekday(*r) == d);
    if start < end {
        return listed(day) && time >= start && time < end;
    }
    // Crosses midnight (or spans a whole day when start equals end).
    (listed(day) && time >= start) || (listed(day.pred()) && time < end)
}

/// Returns whether `now` falls inside the window.
pub fn is_open(window: &Window, now: DateTime<Utc>) -> bool {
    let Ok(zone) = Tz::from_str(&window.timezone) else {
        return false;
    };
    let local = now.with_timezone(&zone);
    let day = local.weekday();
    let time = local.time();
    window
        .allow
        .iter()
        .any(|rule| rule_contains(rule, day, time))
}

/// Returns when the window next opens after `now`, to the minute, looking up to eight days
/// ahead; `None` when it never opens.
pub fn next_opening(window: &Window, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if is_open(window, now) {
        return Some(now);
    }
    let mut probe = now + Duration::minutes(1);
    let limit = now + Duration::days(8);
    while probe < limit {
        if is_open(window, probe) {
            return Some(probe);
        }
        probe += Duration::minutes(1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(timezone: &str, days: &[Weekday], start: &str, end: &str) -> Window {
        Window {
            timezone: timezone.into(),
            allow: vec![WindowRule {
                days: days.to_vec(),
                start: start.into(),
                end: end.into(),
            }],
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn inside_local_hours() {
        // Saturday 2026-12-05 02:00 in Chicago is 08:00 UTC (CST, UTC-6).
        let w = window("America/Chicago", &[Weekday::Sat], "01:00", "05:00");
        assert!(is_open(&w, at("2026-12-05T08:00:00Z")));
        assert!(!is_open(&w, at("2026-12-05T12:00:00Z")));
    }

    #[test]
    fn end_is_exclusive() {
        let w = window("UTC", &[Weekday::Sat], "01:00", "05:00");
        assert!(!is_open(&w, at("2026-12-05T05:00:00Z")));
        assert!(is_open(&w, at("2026-12-05T04:59:00Z")));
    }

    #[test]
    fn crossing_midnight_continues_next_day() {
        // Friday 22:00 to 04:00: Saturday 03:00 is inside, Saturday 22:00 is not.
        let w = window("UTC", &[Weekday::Fri], "22:00", "04:00");
        assert!(is_open(&w, at("2026-12-04T23:00:00Z")));
        assert!(is_open(&w, at("2026-12-05T03:00:00Z")));
        assert!(!is_open(&w, at("2026-12-05T22:00:00Z")));
    }

    #[test]
    fn spring_forward_keeps_local_hours() {
        // US DST starts Sunday 2026-03-08 at 02:00 local; 03:30 CDT is 08:30 UTC.
        let w = window("America/Chicago", &[Weekday::Sun], "01:00", "05:00");
        assert!(is_open(&w, at("2026-03-08T08:30:00Z")));
        // 05:30 CDT is 10:30 UTC: outside.
        assert!(!is_open(&w, at("2026-03-08T10:30:00Z")));
    }

    #[test]
    fn fall_back_keeps_local_hours() {
        // US DST ends Sunday 2026-11-01 at 02:00 local; 04:30 CST is 10:30 UTC.
        let w = window("America/Chicago", &[Weekday::Sun], "01:00", "05:00");
        assert!(is_open(&w, at("2026-11-01T10:30:00Z")));
        assert!(!is_open(&w, at("2026-11-01T11:30:00Z")));
    }

    #[test]
    fn next_opening_finds_the_start() {
        let w = window("UTC", &[Weekday::Sat], "01:00", "05:00");
        let next = next_opening(&w, at("2026-12-04T10:00:00Z")).unwrap();
        assert_eq!(next, at("2026-12-05T01:00:00Z"));
    }

    #[test]
    fn unknown_zone_is_rejected() {
        let w = window("Mars/Olympus", &[Weekday::Sat], "01:00", "05:00");
        assert!(validate(&w).unwrap_err().contains("Mars/Olympus"));
    }

    #[test]
    fn bad_time_is_rejected() {
        let w = window("UTC", &[Weekday::Sat], "25:00", "05:00");
        assert!(validate(&w).unwrap_err().contains("HH:MM"));
    }
}
