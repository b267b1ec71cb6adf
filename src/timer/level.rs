//! One level of the wheel: 64 slot lists plus a bitmap of non-empty slots.
//!
//! The bitmap is what makes "next occupied slot" a couple of bit operations
//! instead of a scan over 64 list heads.

use super::math::{next_occupied, SLOTS};
use super::slab::{Slab, NIL};

/// 64 list heads (slab indices) and the `occupied` bitmap mirroring them:
/// bit `s` is set exactly when `heads[s] != NIL`.
pub(crate) struct Level {
    occupied: u64,
    heads: [u32; SLOTS],
}

impl Level {
    pub(crate) const EMPTY: Level = Level {
        occupied: 0,
        heads: [NIL; SLOTS],
    };

    /// Links entry `index` into `slot`.
    #[inline]
    pub(crate) fn push<T>(&mut self, slab: &mut Slab<T>, slot: usize, index: u32) {
        slab.push_front(&mut self.heads[slot], index);
        self.occupied |= 1u64 << slot;
    }

    /// Unlinks entry `index` from `slot`.
    #[inline]
    pub(crate) fn unlink<T>(&mut self, slab: &mut Slab<T>, slot: usize, index: u32) {
        debug_assert!(
            self.occupied & (1u64 << slot) != 0,
            "unlink from empty slot"
        );
        slab.unlink(&mut self.heads[slot], index);
        if self.heads[slot] == NIL {
            self.occupied &= !(1u64 << slot);
        }
    }

    /// Empties `slot`, returning the head of its former list (links intact).
    #[inline]
    pub(crate) fn take(&mut self, slot: usize) -> u32 {
        self.occupied &= !(1u64 << slot);
        std::mem::replace(&mut self.heads[slot], NIL)
    }

    /// First occupied slot at or after `from`.
    #[inline]
    pub(crate) fn next_occupied(&self, from: usize) -> Option<usize> {
        next_occupied(self.occupied, from)
    }

    /// True when no slot of this level holds an entry.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.occupied == 0
    }
}
