//! Wall-clock time: tickd's one clock ([`now`], in `wall.rs`) and its
//! timestamps as the wire shows them.
//!
//! Every timestamp tickd reports (run times, `next_run`, `loaded_at`) is an
//! RFC 3339 UTC string with milliseconds, so that clients in any language can
//! parse and compare them without knowing the daemon's zone.

pub mod text;
mod wall;

#[cfg(test)]
mod tests;

pub use wall::{instant_on_millisecond_grid, jump_wall_clock, now, MAX_WALL_OFFSET_MS};

use chrono::{DateTime, Utc};

/// A point in wall-clock time, UTC.
pub type Timestamp = DateTime<Utc>;

/// The instant `secs` (Unix seconds, rounded down) plus `nanos` into that
/// second; `None` out of range.
pub fn from_unix(secs: i64, nanos: u32) -> Option<Timestamp> {
    DateTime::from_timestamp(secs, nanos)
}

/// The instant `ms` milliseconds after the Unix epoch; `None` out of range.
pub fn from_unix_millis(ms: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_millis(ms)
}

/// Unix seconds of `t`, rounded down (also before 1970).
pub fn unix_second(t: &Timestamp) -> i64 {
    t.timestamp()
}

/// Unix milliseconds of `t`, rounded down (also before 1970).
pub fn unix_millis(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The instant as jiff holds it (the formatters work on jiff's civil time).
fn to_jiff(t: &Timestamp) -> jiff::Timestamp {
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    jiff::Timestamp::from_nanosecond(nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The instant from jiff.
fn from_jiff(t: jiff::Timestamp) -> Option<Timestamp> {
    let nanos = t.as_nanosecond();
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    from_unix(secs, subsec)
}

/// Formats a timestamp the way the protocol promises: `2026-11-23T09:20:00.123Z`.
pub fn rfc3339(t: &Timestamp) -> String {
    text::millis(t).as_str().to_owned()
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
