//! Hierarchical timer wheel for `tickd`'s scheduler.
//!
//! The daemon arms one timer per scheduled job run and per timeout, and most
//! timeouts are cancelled before they fire; a binary heap makes that pattern
//! pay O(log n) (or leak cancelled entries until they pop). This wheel gives
//! O(1) insert and cancel, and [`TimerWheel::next_deadline`] tells the event
//! loop how long it may sleep, so an idle daemon never busy-ticks.
//!
//! See `README.md` in this folder for the design (levels, bitmaps, cascade,
//! complexity, memory per entry). [`Clock`] maps `std::time::Instant` to the
//! wheel's millisecond ticks.
//!
//! Typical loop:
//! ```
//! # use tickd::timer::{Clock, TimerWheel};
//! let clock = Clock::new();
//! let mut wheel = TimerWheel::new();
//! wheel.insert(clock.now_tick() + 5, "job");
//! let mut fired = Vec::new();
//! while !wheel.is_empty() {
//!     let _sleep = wheel.next_deadline().map(|t| clock.duration_until(t));
//!     // ... poll(fds, _sleep) ...; here we just pretend time passed:
//!     let now = wheel.next_deadline().unwrap_or(0).max(clock.now_tick());
//!     wheel.advance(now, &mut fired);
//! }
//! assert_eq!(fired.len(), 1);
//! ```

mod clock;
mod key;
mod level;
mod math;
mod slab;
mod wheel;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use clock::Clock;
pub use key::TimerKey;
pub use wheel::TimerWheel;

/// Number of wheel levels (64 slots each); enough to cover every `u64` tick.
pub const LEVELS: usize = math::LEVELS;

/// Bytes of slab storage per armed timer carrying payload `T`, excluding the
/// `Vec`'s spare capacity. 32 for a `u64` payload.
pub const fn entry_size<T>() -> usize {
    slab::entry_size::<T>()
}
