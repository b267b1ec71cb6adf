//! The hierarchical timer wheel itself (Varghese & Lauck, 1987, scheme 7).
//!
//! Invariants, with `e = elapsed`:
//! * every armed entry with `deadline <= e` is in the `overdue` list (it was
//!   inserted late and fires at the next `advance`) or in the `ready` list
//!   (it came due, but a bounded advance handed out others first; `ready`
//!   is in nondecreasing deadline order);
//! * every other armed entry sits in level `level_for(e, deadline)`, slot
//!   `slot_for(deadline, level)`. That slot lies strictly after `e`'s own slot
//!   at that level (or is `e`'s slot at level 0 only transiently inside
//!   `advance`), so slots before `e`'s are always empty and the next slot to
//!   process is found without wrap-around.
//!
//! Both hold as `e` grows because `advance` processes every slot whose start
//! is `<= now` before setting `e = now`; the location of an entry can thus be
//! recomputed from its deadline, and no level/slot is stored per entry.

use super::key::TimerKey;
use super::level::Level;
use super::math::{level_for, slot_for, slot_start, LEVELS};
use super::slab::{Slab, NIL};

/// Hierarchical timer wheel with 1 ms ticks (the unit is up to the caller:
/// the wheel only sees `u64` ticks), O(1) insert and cancel, and a
/// next-deadline query that inspects one bitmap per level.
pub struct TimerWheel<T> {
    slab: Slab<T>,
    levels: [Level; LEVELS],
    /// Head of the list of entries inserted with a deadline `<= elapsed`.
    overdue: u32,
    /// Head and tail of the list of due entries not handed out yet, in
    /// deadline order (see [`TimerWheel::advance_bounded`]).
    ready: u32,
    ready_tail: u32,
    /// How many entries `ready` holds, but for those cancelled since they
    /// came due (an upper bound, exact once `ready` is empty).
    ready_len: usize,
    elapsed: u64,
    /// Reused buffer for sorting the overdue list by deadline.
    scratch: Vec<(u64, u32)>,
}

/// Where an armed entry is linked.
enum Place {
    Overdue,
    Slot(usize, usize),
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len())
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

impl<T> TimerWheel<T> {
    /// Empty wheel at tick 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Empty wheel at tick 0 with room for `n` timers before reallocating.
    pub fn with_capacity(n: usize) -> Self {
        TimerWheel {
            slab: Slab::with_capacity(n),
            levels: [Level::EMPTY; LEVELS],
            overdue: NIL,
            ready: NIL,
            ready_tail: NIL,
            ready_len: 0,
            elapsed: 0,
            scratch: Vec::new(),
        }
    }

    /// Makes room for `n` more timers, so that arming many at once (a
    /// start) does not copy the slab each time it doubles.
    pub fn reserve(&mut self, n: usize) {
        self.slab.reserve(n);
    }

    /// Tick the wheel has been advanced to: every timer with a deadline at or
    /// before it that was armed before the last `advance` has fired.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Whether a bounded advance left due timers not handed out yet (see
    /// [`advance_bounded`](Self::advance_bounded)).
    pub fn has_ready(&self) -> bool {
        self.ready != NIL
    }

    /// At least how many due timers a bounded advance left (an upper
    /// bound: those cancelled since still count until the last is handed
    /// out), for a caller that sizes its tables before taking them.
    pub fn ready_len_hint(&self) -> usize {
        self.ready_len
    }

    /// Arms a timer firing at tick `deadline`. A deadline at or before
    /// [`elapsed`](Self::elapsed) fires at the next [`advance`](Self::advance).
    ///
    /// # Panics
    /// When `u32::MAX - 1` timers are already armed.
    pub fn insert(&mut self, deadline: u64, item: T) -> TimerKey {
        let key = self.slab.alloc(deadline, item);
        self.link(key.index, deadline);
        key
    }

    /// Disarms the timer named by `key` and returns its item, or `None` if
    /// the key is stale (its timer already fired or was cancelled).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let deadline = self.slab.deadline(key)?;
        match self.place(deadline) {
            Place::Overdue => self.unlink_due(key.index),
            Place::Slot(level, slot) => self.levels[level].unlink(&mut self.slab, slot, key.index),
        }
        Some(self.slab.release(key.index).1)
    }

    /// Deadline of the armed timer named by `key`, `None` if the key is stale.
    pub fn deadline_of(&self, key: TimerKey) -> Option<u64> {
        self.slab.deadline(key)
    }

    /// Earliest tick at which [`advance`](Self::advance) could fire or
    /// cascade something; `None` when the wheel is empty.
    ///
    /// Never later than the earliest deadline (it is `elapsed` when an overdue
    /// timer waits). It may be the start of a higher-level slot that is
    /// earlier than any deadline in it; advancing to it cascades that slot,
    /// so a loop that sleeps until `next_deadline()` and advances always makes
    /// progress and reaches each timer in at most `LEVELS` wake-ups.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.overdue != NIL || self.ready != NIL {
            return Some(self.elapsed);
        }
        self.next_expiration().map(|(_, _, start)| start)
    }

    /// Advances to tick `now` and appends every timer with a deadline
    /// `<= now` to `out`, in nondecreasing deadline order (ties in any order).
    ///
    /// Time is monotonic: a `now` below [`elapsed`](Self::elapsed) does not
    /// move the wheel back, but still fires timers inserted with past
    /// deadlines.
    pub fn advance(&mut self, now: u64, out: &mut Vec<(TimerKey, T)>) {
        self.advance_bounded(now, out, usize::MAX);
    }

    /// Like [`advance`](Self::advance), but appends at most `limit` timers:
    /// the earliest due ones. The others stay armed and due (they can
    /// still be cancelled, and [`next_deadline`](Self::next_deadline) is
    /// `elapsed` while any is left); the next call hands them out first,
    /// ahead of anything that came due after them. Returns whether any
    /// due timer is left.
    pub fn advance_bounded(
        &mut self,
        now: u64,
        out: &mut Vec<(TimerKey, T)>,
        limit: usize,
    ) -> bool {
        self.collect_due(now);
        let mut taken = 0;
        while taken < limit && self.ready != NIL {
            let index = self.ready;
            if self.ready_tail == index {
                self.ready_tail = NIL;
            }
            self.slab.unlink(&mut self.ready, index);
            let key = self.slab.key_at(index);
            out.push((key, self.slab.release(index).1));
            taken += 1;
        }
        self.ready_len = if self.ready == NIL {
            0
        } else {
            self.ready_len.saturating_sub(taken)
        };
        self.ready != NIL
    }

    /// Moves every timer with a deadline `<= now` to the `ready` list, in
    /// deadline order, cascading as it goes, and sets `elapsed` to `now`.
    fn collect_due(&mut self, now: u64) {
        let now = now.max(self.elapsed);
        self.collect_overdue();
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now {
                break;
            }
            debug_assert!(start >= self.elapsed, "slot before elapsed");
            self.elapsed = start;
            let mut cursor = self.levels[level].take(slot);
            while cursor != NIL {
                let index = cursor;
                cursor = self.slab.next_of(index);
                self.slab.detach(index);
                let deadline = self.slab.deadline_at(index);
                debug_assert!(deadline >= start, "entry in a slot after its deadline");
                if level == 0 {
                    debug_assert_eq!(deadline, start, "level-0 slot holds one tick");
                    self.slab
                        .push_back(&mut self.ready, &mut self.ready_tail, index);
                    self.ready_len += 1;
                } else {
                    // Cascade: the entry now differs from `elapsed` only below `level`.
                    let lower = level_for(start, deadline);
                    debug_assert!(lower < level, "cascade must go down");
                    self.levels[lower].push(&mut self.slab, slot_for(deadline, lower), index);
                }
            }
        }
        self.elapsed = now;
    }

    /// Level, slot and start tick of the next slot to process, if any.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        // Every entry of level L is due before any slot of level L+1 starts,
        // so the first non-empty level holds the next expiration.
        let level = self.levels.iter().position(|l| !l.is_empty())?;
        let from = slot_for(self.elapsed, level);
        let slot = self.levels[level]
            .next_occupied(from)
            .expect("occupied slots never lie before elapsed's slot");
        Some((level, slot, slot_start(self.elapsed, level, slot)))
    }

    /// Where an armed entry with `deadline` is linked right now.
    fn place(&self, deadline: u64) -> Place {
        if deadline <= self.elapsed {
            Place::Overdue
        } else {
            let level = level_for(self.elapsed, deadline);
            Place::Slot(level, slot_for(deadline, level))
        }
    }

    fn link(&mut self, index: u32, deadline: u64) {
        match self.place(deadline) {
            Place::Overdue => self.slab.push_front(&mut self.overdue, index),
            Place::Slot(level, slot) => self.levels[level].push(&mut self.slab, slot, index),
        }
    }

    /// Unlinks a due entry (`deadline <= elapsed`) from the `overdue` or
    /// the `ready` list, whichever holds it.
    fn unlink_due(&mut self, index: u32) {
        if self.ready_tail == index {
            self.ready_tail = self.slab.prev_of(index);
        }
        // Only the head of a list has no predecessor, so only for a head
        // does it matter which list is named.
        let head = if self.ready == index {
            &mut self.ready
        } else {
            &mut self.overdue
        };
        self.slab.unlink(head, index);
        if self.ready == NIL {
            self.ready_len = 0;
        }
    }

    /// Moves the overdue list, sorted by deadline, into the `ready` list,
    /// merged with what it holds, so that it stays in deadline order.
    fn collect_overdue(&mut self) {
        if self.overdue == NIL {
            return;
        }
        let mut batch = std::mem::take(&mut self.scratch);
        let mut cursor = std::mem::replace(&mut self.overdue, NIL);
        while cursor != NIL {
            let index = cursor;
            cursor = self.slab.next_of(index);
            self.slab.detach(index);
            batch.push((self.slab.deadline_at(index), index));
        }
        batch.sort_unstable();
        self.ready_len += batch.len();
        // Merge: the ready entries are in order already.
        let mut rest = std::mem::replace(&mut self.ready, NIL);
        self.ready_tail = NIL;
        let mut pending = batch.iter().peekable();
        while rest != NIL || pending.peek().is_some() {
            let from_rest = match pending.peek() {
                None => true,
                Some(&&(deadline, _)) => rest != NIL && self.slab.deadline_at(rest) <= deadline,
            };
            let index = if from_rest {
                let index = rest;
                rest = self.slab.next_of(index);
                self.slab.detach(index);
                index
            } else {
                pending.next().map_or(NIL, |&(_, index)| index)
            };
            self.slab
                .push_back(&mut self.ready, &mut self.ready_tail, index);
        }
        batch.clear();
        self.scratch = batch;
    }
}
