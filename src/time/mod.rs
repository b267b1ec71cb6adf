//! Wall-clock time: tickd's one clock ([`now`], in `wall.rs`) and its
//! timestamps as the wire shows them.
//!
//! Every timestamp tickd reports (run times, `next_run`, `loaded_at`) is an
//! RFC 3339 UTC string with milliseconds, so that clients in any language can
//! parse and compare them without knowing the daemon's zone.

mod wall;

pub use wall::{instant_on_millisecond_grid, jump_wall_clock, now, MAX_WALL_OFFSET_MS};

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in wall-clock time, UTC.
pub type Timestamp = DateTime<Utc>;

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
    fn millis_between_clamps_negative_to_zero() {
        let a = now();
        let b = a + chrono::Duration::milliseconds(250);
        assert_eq!(millis_between(&a, &b), 250);
        assert_eq!(millis_between(&b, &a), 0);
    }
}
