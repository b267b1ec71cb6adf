//! Wall-clock timestamps as the wire shows them.
//!
//! Every timestamp tickd reports (run times, `next_run`, `loaded_at`) is an
//! RFC 3339 UTC string with milliseconds, so that clients in any language can
//! parse and compare them without knowing the daemon's zone.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::{Duration, Instant};

/// A point in wall-clock time, UTC.
pub type Timestamp = DateTime<Utc>;

/// The current wall-clock time (see [`crate::timer::wall_now`]).
pub fn now() -> Timestamp {
    crate::timer::wall_now()
}

/// Formats a timestamp the way the protocol promises: `2026-11-23T09:20:00.123Z`.
pub fn rfc3339(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats an optional timestamp as a JSON string or `null`.
pub fn json_opt(t: Option<&Timestamp>) -> serde_json::Value {
    match t {
        Some(t) => serde_json::Value::String(rfc3339(t)),
        None => serde_json::Value::Null,
    }
}

/// An `Instant` at which the wall clock read a whole millisecond.
///
/// The scheduler counts its timer ticks (milliseconds) from this origin, so
/// that a due time on the wall clock's millisecond grid (every `every` and
/// cron due time is) falls exactly on a tick boundary: the tick is reached
/// at the due instant, not up to a millisecond later. The two clocks are
/// read in turn a few times and the closest pair is kept; the `Instant` is
/// read after the wall clock, so the origin errs late (timers fire a few
/// nanoseconds late, never early). A wall-clock step of a fraction of a
/// millisecond later puts due times off the grid again; they then fire up
/// to a millisecond late, as without the alignment.
pub fn instant_on_millisecond_grid() -> Instant {
    let mut best: Option<(Duration, Instant)> = None;
    for _ in 0..5 {
        let before = Instant::now();
        let wall = Utc::now();
        let after = Instant::now();
        let gap = after.saturating_duration_since(before);
        let into_ms = Duration::from_nanos(u64::from(wall.timestamp_subsec_nanos() % 1_000_000));
        let origin = after.checked_sub(into_ms).unwrap_or(after);
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, origin));
        }
    }
    best.map_or_else(Instant::now, |(_, origin)| origin)
}

/// Microseconds from `from` to `to`; negative when `to` is earlier.
pub fn micros_between(from: &Timestamp, to: &Timestamp) -> i64 {
    (*to - *from).num_microseconds().unwrap_or(i64::MAX)
}

/// Milliseconds from `from` to `to`, never negative.
pub fn millis_between(from: &Timestamp, to: &Timestamp) -> u64 {
    u64::try_from((*to - *from).num_milliseconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_utc_with_millis() {
        let t = Utc
            .timestamp_millis_opt(1_763_889_600_123)
            .single()
            .expect("valid timestamp");
        assert_eq!(rfc3339(&t), "2025-11-23T09:20:00.123Z");
    }

    #[test]
    fn micros_between_keeps_sub_millisecond_differences_and_sign() {
        let a = now();
        let b = a + chrono::Duration::microseconds(1_250);
        assert_eq!(micros_between(&a, &b), 1_250);
        assert_eq!(micros_between(&b, &a), -1_250);
    }

    #[test]
    fn the_grid_origin_is_recent_and_not_in_the_future() {
        let before = Instant::now();
        let origin = instant_on_millisecond_grid();
        let after = Instant::now();
        assert!(origin <= after);
        // At most one millisecond (plus the sampling) before the call.
        assert!(origin + Duration::from_millis(1) >= before);
    }

    #[test]
    fn millis_between_clamps_negative_to_zero() {
        let a = now();
        let b = a + chrono::Duration::milliseconds(250);
        assert_eq!(millis_between(&a, &b), 250);
        assert_eq!(millis_between(&b, &a), 0);
    }
}
