//! Conversion between `std::time::Instant` and wheel ticks (milliseconds).
//!
//! The wheel works on plain `u64` ticks; this helper fixes an origin
//! `Instant` and converts in the direction that can never fire a timer
//! early: a deadline is rounded *up* to the next whole tick, the current time
//! is rounded *down*. So `now_tick() >= deadline_tick(d)` implies the instant
//! `d` has really passed.
//!
//! This is the wheel's own time source, monotonic only; wall-clock time
//! lives in `crate::time`.

use std::time::{Duration, Instant};

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
