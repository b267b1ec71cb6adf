//! Wall-clock time: tickd's one clock ([`now`], in `wall.rs`) and its
//! timestamps as the wire shows them.
//!
//! Every timestamp tickd reports (run times, `next_run`, `loaded_at`) is an
//! RFC 3339 UTC string with milliseconds, so that clients in any language can
//! parse and compare them without knowing the daemon's zone; `text.rs`
//! writes it (and the journal's and HTTP's forms) and reads it back.
//!
//! The one time library is jiff: [`Timestamp`] is `jiff::Timestamp`, spans
//! between instants are `jiff::SignedDuration` (`a.duration_until(b)`; note
//! that `b - a` is a calendar `Span`), and zones are `jiff::tz::TimeZone`
//! (the system's zone database, see `crate::schedule`).

pub mod text;
mod wall;

#[cfg(test)]
mod tests;

pub use wall::{instant_on_millisecond_grid, jump_wall_clock, now, MAX_WALL_OFFSET_MS};

/// A point in wall-clock time, UTC: jiff's, to the nanosecond, years
/// -9999 to 9999 (less a day at each end).
pub type Timestamp = jiff::Timestamp;

/// The instant `secs` (Unix seconds, rounded down) plus `nanos` (below one
/// second) into that second; `None` out of range.
pub fn from_unix(secs: i64, nanos: u32) -> Option<Timestamp> {
    if nanos >= 1_000_000_000 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(secs) * 1_000_000_000 + i128::from(nanos)).ok()
}

/// The instant `ms` milliseconds after the Unix epoch; `None` out of range.
pub fn from_unix_millis(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// Unix seconds of `t`, rounded down also before 1970 (jiff's `as_second`
/// rounds toward zero).
pub fn unix_second(t: &Timestamp) -> i64 {
    let secs = t.as_second();
    if t.subsec_nanosecond() < 0 {
        secs - 1
    } else {
        secs
    }
}

/// Unix milliseconds of `t`, rounded down also before 1970.
pub fn unix_millis(t: &Timestamp) -> i64 {
    let ms = t.as_millisecond();
    if t.subsec_nanosecond() % 1_000_000 < 0 {
        ms - 1
    } else {
        ms
    }
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

/// Microseconds from `from` to `to` (rounded toward zero); negative when
/// `to` is earlier.
pub fn micros_between(from: &Timestamp, to: &Timestamp) -> i64 {
    i64::try_from(from.duration_until(*to).as_micros()).unwrap_or(i64::MAX)
}

/// Milliseconds from `from` to `to` (rounded toward zero), never negative.
pub fn millis_between(from: &Timestamp, to: &Timestamp) -> u64 {
    u64::try_from(from.duration_until(*to).as_millis()).unwrap_or(0)
}
