//! tickd's one source of wall-clock time.
//!
//! [`now`] is the system clock plus an offset that only the
//! `debug.clock_jump` test hook ([`jump_wall_clock`]) moves, so tests can
//! step the wall clock the way `date -s` or an NTP step does, without root
//! and without touching the machine's clock. Monotonic time (the timer
//! wheel's ticks, `timer::Clock`) is not affected by the offset.
//!
//! [`instant_on_millisecond_grid`] ties the two clocks together for the
//! scheduler: an `Instant` at which the wall clock read a whole millisecond.

use super::Timestamp;
use jiff::SignedDuration;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds added to the system clock by [`jump_wall_clock`].
static WALL_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The largest offset [`jump_wall_clock`] can build up, either way: 100
/// years, far inside the range of dates a [`Timestamp`] holds.
pub const MAX_WALL_OFFSET_MS: i64 = 100 * 366 * 24 * 3600 * 1000;

/// The current wall-clock time (UTC), as the daemon sees it: the system
/// clock moved by the test offset. No allocation, no lock.
pub fn now() -> Timestamp {
    shifted(Timestamp::now(), WALL_OFFSET_MS.load(Ordering::Relaxed))
}

/// `now` moved by `offset_ms`; `now` itself if that leaves the range.
fn shifted(now: Timestamp, offset_ms: i64) -> Timestamp {
    if offset_ms == 0 {
        return now;
    }
    now.checked_add(SignedDuration::from_millis(offset_ms))
        .unwrap_or(now)
}

/// Test hook: moves the daemon's wall clock by `ms` (negative: back), as a
/// clock step would; monotonic time is not affected. The total offset is
/// kept within ±[`MAX_WALL_OFFSET_MS`], so no input can push the clock out
/// of range. Returns the offset now in force.
pub fn jump_wall_clock(ms: i64) -> i64 {
    let step = |offset: i64| Some(clamped_offset(offset, ms));
    let previous = WALL_OFFSET_MS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, step)
        .unwrap_or_else(|offset| offset);
    clamped_offset(previous, ms)
}

/// The offset after a jump of `ms` from `offset`, within the bound.
fn clamped_offset(offset: i64, ms: i64) -> i64 {
    offset
        .saturating_add(ms)
        .clamp(-MAX_WALL_OFFSET_MS, MAX_WALL_OFFSET_MS)
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
/// to a millisecond late, as without the alignment. (The test offset is in
/// whole milliseconds, so the system clock serves.)
pub fn instant_on_millisecond_grid() -> Instant {
    let mut best: Option<(Duration, Instant)> = None;
    for _ in 0..5 {
        let before = Instant::now();
        let wall = Timestamp::now();
        let after = Instant::now();
        let gap = after.saturating_duration_since(before);
        // Nanoseconds past the last whole millisecond (also before 1970).
        let past_ms = wall.subsec_nanosecond().rem_euclid(1_000_000);
        let into_ms = Duration::from_nanos(u64::from(past_ms.unsigned_abs()));
        let origin = after.checked_sub(into_ms).unwrap_or(after);
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, origin));
        }
    }
    best.map_or_else(Instant::now, |(_, origin)| origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_jump_offsets_are_bounded_and_never_panic() {
        assert_eq!(clamped_offset(0, 5_000), 5_000);
        assert_eq!(clamped_offset(5_000, -7_000), -2_000);
        assert_eq!(clamped_offset(0, i64::MAX), MAX_WALL_OFFSET_MS);
        assert_eq!(
            clamped_offset(MAX_WALL_OFFSET_MS, i64::MAX),
            MAX_WALL_OFFSET_MS
        );
        assert_eq!(clamped_offset(0, i64::MIN), -MAX_WALL_OFFSET_MS);
        let now = Timestamp::now();
        for offset in [MAX_WALL_OFFSET_MS, -MAX_WALL_OFFSET_MS, i64::MAX, i64::MIN] {
            let _ = shifted(now, offset);
        }
        assert_eq!(shifted(now, i64::MAX), now, "out of range: unchanged");
        assert!(shifted(now, MAX_WALL_OFFSET_MS) > now);
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
}
