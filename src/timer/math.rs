//! Tick and slot arithmetic of the hierarchical wheel, kept as tiny pure
//! functions so that the tricky bit manipulation can be tested exhaustively
//! on its own, away from the linked-list bookkeeping.
//!
//! Level `L` has 64 slots; one slot of level `L` spans `64^L` ticks, so
//! level `L` as a whole spans `64^(L+1)` ticks. Eleven levels cover
//! `64^11 = 2^66 > 2^64` ticks, i.e. every `u64` deadline, so no overflow
//! list is needed.

/// Bits of a tick consumed by one level (64 slots per level).
pub(crate) const SLOT_BITS: u32 = 6;
/// Slots per level.
pub(crate) const SLOTS: usize = 1 << SLOT_BITS;
/// Mask selecting a slot index out of a shifted tick.
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
/// Number of levels: the smallest count with `SLOT_BITS * LEVELS >= 64`.
pub(crate) const LEVELS: usize = 64_usize.div_ceil(SLOT_BITS as usize);

/// Level at which an entry with `deadline` is stored while the wheel is at
/// `elapsed`: the level owning the highest bit in which the two ticks differ.
///
/// Requires `deadline >= elapsed`; equal ticks map to level 0.
#[inline]
pub(crate) fn level_for(elapsed: u64, deadline: u64) -> usize {
    debug_assert!(deadline >= elapsed, "level_for on a past deadline");
    // OR-ing the slot mask makes "no differing bit" land on level 0.
    let masked = (elapsed ^ deadline) | SLOT_MASK;
    let highest = 63 - masked.leading_zeros();
    (highest / SLOT_BITS) as usize
}

/// Slot index of `deadline` within `level`.
#[inline]
pub(crate) fn slot_for(deadline: u64, level: usize) -> usize {
    debug_assert!(level < LEVELS);
    ((deadline >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize
}

/// Number of ticks covered by one slot of `level` (`64^level`).
#[inline]
pub(crate) fn slot_span(level: usize) -> u64 {
    debug_assert!(level < LEVELS);
    1u64 << (SLOT_BITS * level as u32)
}

/// First tick of the window of `level` that contains `elapsed`: the tick with
/// all bits owned by this level and the levels below cleared.
#[inline]
pub(crate) fn level_start(elapsed: u64, level: usize) -> u64 {
    let bits = SLOT_BITS * (level as u32 + 1);
    if bits >= 64 {
        // The top level spans the whole u64 range.
        0
    } else {
        elapsed & !((1u64 << bits) - 1)
    }
}

/// First tick of `slot` in the window of `level` that contains `elapsed`.
#[inline]
pub(crate) fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    debug_assert!(slot < SLOTS);
    // Cannot overflow: for the top level only slots < 16 can be occupied.
    level_start(elapsed, level) + slot as u64 * slot_span(level)
}

/// Next occupied slot of a level bitmap at or after `from` (no wrap-around:
/// slots below `from` are ignored because, by the wheel invariant, they are
/// empty). Returns `None` when no such slot exists.
#[inline]
pub(crate) fn next_occupied(occupied: u64, from: usize) -> Option<usize> {
    debug_assert!(from < SLOTS);
    let rest = occupied >> from;
    if rest == 0 {
        None
    } else {
        Some(from + rest.trailing_zeros() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_cover_u64() {
        assert_eq!(LEVELS, 11);
        assert!(SLOT_BITS as usize * LEVELS >= 64);
        assert!(SLOT_BITS as usize * (LEVELS - 1) < 64);
    }

    #[test]
    fn level_for_small_offsets() {
        for e in 0..200u64 {
            for d in e..e + 300 {
                let l = level_for(e, d);
                // Same 64-block <=> level 0.
                assert_eq!(l == 0, e / 64 == d / 64, "e={e} d={d}");
                if l == 1 {
                    assert_eq!(e / 4096, d / 4096);
                }
            }
        }
    }

    #[test]
    fn level_for_every_bit() {
        for bit in 0..64u32 {
            let d = 1u64 << bit;
            assert_eq!(level_for(0, d), (bit / SLOT_BITS) as usize, "bit {bit}");
        }
        assert_eq!(level_for(0, u64::MAX), LEVELS - 1);
        assert_eq!(level_for(u64::MAX, u64::MAX), 0);
        assert_eq!(level_for(5, 5), 0);
    }

    #[test]
    fn slot_for_and_starts_agree() {
        let samples = [
            0u64,
            1,
            63,
            64,
            4095,
            4096,
            123_456_789,
            1 << 40,
            (1 << 40) + 77,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &e in &samples {
            for &d in &samples {
                if d < e {
                    continue;
                }
                let l = level_for(e, d);
                let s = slot_for(d, l);
                let start = slot_start(e, l, s);
                // The slot holding d starts at or before d and ends after it.
                assert!(start <= d, "e={e} d={d}");
                assert!(d - start < slot_span(l), "e={e} d={d}");
                // ... and is strictly after the slot holding e (or equal at level 0).
                if l > 0 {
                    assert!(s > slot_for(e, l), "e={e} d={d}");
                    assert!(start > e);
                }
            }
        }
    }

    #[test]
    fn top_level_start_is_zero() {
        assert_eq!(level_start(u64::MAX, LEVELS - 1), 0);
        assert_eq!(level_start(u64::MAX, 0), u64::MAX - 63);
        assert_eq!(slot_start(0, LEVELS - 1, 15), 15 << 60);
        assert_eq!(slot_for(u64::MAX, LEVELS - 1), 15);
    }

    #[test]
    fn next_occupied_finds_first_at_or_after() {
        assert_eq!(next_occupied(0, 0), None);
        assert_eq!(next_occupied(1, 0), Some(0));
        assert_eq!(next_occupied(1, 1), None);
        assert_eq!(next_occupied(1 << 63, 5), Some(63));
        for from in 0..SLOTS {
            for bit in 0..SLOTS {
                let want = (bit >= from).then_some(bit);
                assert_eq!(next_occupied(1u64 << bit, from), want);
            }
        }
    }
}
