//! Conversion between `std::time::Instant` and wheel ticks (milliseconds).
//!
//! The wheel works on plain `u64` ticks; this helper fixes an origin
//! `Instant` and converts in the direction that can never fire a timer
//! early: a deadline is rounded *up* to the next whole tick, the current time
//! is rounded *down*. So `now_tick() >= deadline_tick(d)` implies the instant
//! `d` has really passed.
//!
//! It also holds tickd's one source of wall-clock time, [`wall_now`]: the
//! system clock plus an offset that only the `debug.clock_jump` test hook
//! moves, so tests can jump the wall clock the way `date -s` or an NTP step
//! does, without root and without touching the machine's clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds added to the system clock by [`jump_wall_clock`].
static WALL_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The largest offset [`jump_wall_clock`] can build up, either way: 100
/// years, far inside what chrono's dates can hold.
pub const MAX_WALL_OFFSET_MS: i64 = 100 * 366 * 24 * 3600 * 1000;

/// The current wall-clock time (UTC), as the daemon sees it.
pub fn wall_now() -> chrono::DateTime<chrono::Utc> {
    shifted(chrono::Utc::now(), WALL_OFFSET_MS.load(Ordering::Relaxed))
}

/// `now` moved by `offset_ms`; `now` itself if that leaves chrono's range.
fn shifted(now: chrono::DateTime<chrono::Utc>, offset_ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::TimeDelta::try_milliseconds(offset_ms)
        .and_then(|d| now.checked_add_signed(d))
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

/// Milliseconds since a fixed origin `Instant`, the wheel's time base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Clock whose tick 0 is now.
    pub fn new() -> Self {
        Self::with_origin(Instant::now())
    }

    /// Clock whose tick 0 is `origin`.
    pub fn with_origin(origin: Instant) -> Self {
        Clock { origin }
    }

    /// The instant of tick 0.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Current tick, rounded down (a partly elapsed millisecond does not count).
    pub fn now_tick(&self) -> u64 {
        self.tick_floor(Instant::now())
    }

    /// Tick of `at`, rounded down; instants before the origin map to 0.
    pub fn tick_floor(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Tick at which a timer due at `at` may fire, rounded up so it never
    /// fires early; instants before the origin map to 0.
    pub fn deadline_tick(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        let whole = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            whole.saturating_add(1)
        } else {
            whole
        }
    }

    /// Tick for a timer due `after` from now (rounded up).
    pub fn deadline_after(&self, after: Duration) -> u64 {
        match Instant::now().checked_add(after) {
            Some(at) => self.deadline_tick(at),
            None => u64::MAX,
        }
    }

    /// Instant at which `tick` begins, or `None` if it is not representable
    /// (ticks centuries ahead on some platforms).
    pub fn instant_of(&self, tick: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_millis(tick))
    }

    /// How long to sleep until `tick` starts: zero when it has passed. Never
    /// overflows, so it can feed a poll timeout directly.
    pub fn duration_until(&self, tick: u64) -> Duration {
        self.duration_until_from(Instant::now(), tick)
    }

    /// [`duration_until`](Self::duration_until) measured from `now` instead
    /// of the current instant (deterministic, for tests and batching).
    pub fn duration_until_from(&self, now: Instant, tick: u64) -> Duration {
        Duration::from_millis(tick).saturating_sub(now.saturating_duration_since(self.origin))
    }
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
        let now = chrono::Utc::now();
        for offset in [MAX_WALL_OFFSET_MS, -MAX_WALL_OFFSET_MS, i64::MAX, i64::MIN] {
            let _ = shifted(now, offset);
        }
        assert_eq!(shifted(now, i64::MAX), now, "out of range: unchanged");
        assert!(shifted(now, MAX_WALL_OFFSET_MS) > now);
    }

    #[test]
    fn rounding_directions() {
        let o = Instant::now();
        let c = Clock::with_origin(o);
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        assert_eq!(c.deadline_tick(o), 0);
        assert_eq!(c.tick_floor(o), 0);
        assert_eq!(c.deadline_tick(o + ms(7)), 7);
        assert_eq!(c.tick_floor(o + ms(7)), 7);
        assert_eq!(c.deadline_tick(o + ms(7) + us(1)), 8);
        assert_eq!(c.tick_floor(o + ms(7) + us(999)), 7);
        assert_eq!(c.deadline_tick(o + Duration::from_nanos(1)), 1);
    }

    #[test]
    fn before_origin_is_zero() {
        let o = Instant::now() + Duration::from_secs(10);
        let c = Clock::with_origin(o);
        assert_eq!(c.now_tick(), 0);
        assert_eq!(c.deadline_tick(Instant::now()), 0);
    }

    #[test]
    fn instant_round_trip_and_sleep() {
        let o = Instant::now();
        let c = Clock::with_origin(o);
        let at = c.instant_of(1234).expect("small tick is representable");
        assert_eq!(at, o + Duration::from_millis(1234));
        assert_eq!(c.deadline_tick(at), 1234);
        assert_eq!(c.tick_floor(at), 1234);
        let now = o + Duration::from_micros(1_500);
        assert_eq!(c.duration_until_from(now, 3), Duration::from_micros(1_500));
        assert_eq!(c.duration_until_from(now, 1), Duration::ZERO);
        assert_eq!(
            c.duration_until_from(now, u64::MAX),
            Duration::from_millis(u64::MAX) - Duration::from_micros(1_500)
        );
    }

    #[test]
    fn deadline_after_never_early() {
        let c = Clock::new();
        let t = c.deadline_after(Duration::from_millis(5));
        assert!(t >= 5);
        assert!(c.now_tick() < t);
        assert_eq!(c.deadline_after(Duration::MAX), u64::MAX);
    }
}
