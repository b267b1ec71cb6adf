//! The handle returned by [`TimerWheel::insert`](super::TimerWheel::insert).

/// Generational handle to an armed timer.
///
/// It names a slab index together with the generation that index had when
/// the timer was armed, so a key that outlived its timer (fired or
/// cancelled) is recognised as stale and can never cancel a newer timer that
/// happens to reuse the same index. Generations are 32 bits and wrap, so a
/// stale key is only misread after 2^32 reuses of the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl TimerKey {
    /// Slab index of the timer; unique among armed timers, reused afterwards.
    /// Useful as a compact id in logs.
    pub fn index(self) -> u32 {
        self.index
    }
}
