//! Slab of timer entries with intrusive (index-based) doubly linked lists.
//!
//! Entries live in one `Vec`; a free list threads through vacant entries so
//! allocation and release are O(1). Armed entries carry `prev`/`next` slab
//! indices, which lets the wheel keep one list per slot and unlink any entry
//! in O(1) without `unsafe` pointers.

use super::key::TimerKey;

/// "No entry" marker for list links and the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// One slab cell: either an armed timer or a link in the free list.
enum Entry<T> {
    Armed {
        generation: u32,
        prev: u32,
        next: u32,
        deadline: u64,
        item: T,
    },
    Free {
        generation: u32,
        next_free: u32,
    },
}

/// Size in bytes of one slab cell for payload `T` (reported in the README).
pub(crate) const fn entry_size<T>() -> usize {
    std::mem::size_of::<Entry<T>>()
}

/// Storage for all armed timers of one wheel.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Slab {
            entries: Vec::with_capacity(n),
            free_head: NIL,
            len: 0,
        }
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores a new, unlinked entry and returns its key.
    ///
    /// # Panics
    /// When more than `u32::MAX - 1` timers are armed at once.
    pub(crate) fn alloc(&mut self, deadline: u64, item: T) -> TimerKey {
        self.len += 1;
        if self.free_head != NIL {
            let index = self.free_head;
            let cell = &mut self.entries[index as usize];
            let (generation, next_free) = match *cell {
                Entry::Free {
                    generation,
                    next_free,
                } => (generation, next_free),
                Entry::Armed { .. } => unreachable!("free list points at an armed entry"),
            };
            self.free_head = next_free;
            *cell = Entry::Armed {
                generation,
                prev: NIL,
                next: NIL,
                deadline,
                item,
            };
            TimerKey { index, generation }
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel holds at most u32::MAX - 1 timers");
            self.entries.push(Entry::Armed {
                generation: 0,
                prev: NIL,
                next: NIL,
                deadline,
                item,
            });
            TimerKey {
                index,
                generation: 0,
            }
        }
    }

    /// Releases an armed (already unlinked) entry, returning its payload.
    pub(crate) fn release(&mut self, index: u32) -> (u64, T) {
        let cell = &mut self.entries[index as usize];
        let generation = match cell {
            Entry::Armed { generation, .. } => generation.wrapping_add(1),
            Entry::Free { .. } => unreachable!("release of a free entry"),
        };
        let old = std::mem::replace(
            cell,
            Entry::Free {
                generation,
                next_free: self.free_head,
            },
        );
        self.free_head = index;
        self.len -= 1;
        match old {
            Entry::Armed { deadline, item, .. } => (deadline, item),
            Entry::Free { .. } => unreachable!("checked above"),
        }
    }

    /// Deadline of the armed entry named by `key`, or `None` if the key is stale.
    pub(crate) fn deadline(&self, key: TimerKey) -> Option<u64> {
        match self.entries.get(key.index as usize)? {
            Entry::Armed {
                generation,
                deadline,
                ..
            } if *generation == key.generation => Some(*deadline),
            _ => None,
        }
    }

    /// Deadline of an entry known to be armed.
    pub(crate) fn deadline_at(&self, index: u32) -> u64 {
        match &self.entries[index as usize] {
            Entry::Armed { deadline, .. } => *deadline,
            Entry::Free { .. } => unreachable!("deadline of a free entry"),
        }
    }

    /// Key (index + current generation) of an entry known to be armed.
    pub(crate) fn key_at(&self, index: u32) -> TimerKey {
        match &self.entries[index as usize] {
            Entry::Armed { generation, .. } => TimerKey {
                index,
                generation: *generation,
            },
            Entry::Free { .. } => unreachable!("key of a free entry"),
        }
    }

    fn links_mut(&mut self, index: u32) -> (&mut u32, &mut u32) {
        match &mut self.entries[index as usize] {
            Entry::Armed { prev, next, .. } => (prev, next),
            Entry::Free { .. } => unreachable!("list operation on a free entry"),
        }
    }

    /// Successor of an armed entry in its list.
    pub(crate) fn next_of(&self, index: u32) -> u32 {
        match &self.entries[index as usize] {
            Entry::Armed { next, .. } => *next,
            Entry::Free { .. } => unreachable!("next of a free entry"),
        }
    }

    /// Predecessor of an armed entry in its list.
    pub(crate) fn prev_of(&self, index: u32) -> u32 {
        match &self.entries[index as usize] {
            Entry::Armed { prev, .. } => *prev,
            Entry::Free { .. } => unreachable!("prev of a free entry"),
        }
    }

    /// Appends an unlinked armed entry at the back of the list headed by
    /// `head` whose last entry is `tail`.
    pub(crate) fn push_back(&mut self, head: &mut u32, tail: &mut u32, index: u32) {
        let old = *tail;
        {
            let (prev, next) = self.links_mut(index);
            debug_assert!(*prev == NIL && *next == NIL, "entry already linked");
            *prev = old;
            *next = NIL;
        }
        if old == NIL {
            *head = index;
        } else {
            *self.links_mut(old).1 = index;
        }
        *tail = index;
    }

    /// Pushes an unlinked armed entry at the front of the list headed by `head`.
    pub(crate) fn push_front(&mut self, head: &mut u32, index: u32) {
        let old = *head;
        {
            let (prev, next) = self.links_mut(index);
            debug_assert!(*prev == NIL && *next == NIL, "entry already linked");
            *prev = NIL;
            *next = old;
        }
        if old != NIL {
            *self.links_mut(old).0 = index;
        }
        *head = index;
    }

    /// Unlinks an armed entry from the list headed by `head`.
    pub(crate) fn unlink(&mut self, head: &mut u32, index: u32) {
        let (prev, next) = {
            let (p, n) = self.links_mut(index);
            let pair = (*p, *n);
            *p = NIL;
            *n = NIL;
            pair
        };
        if prev == NIL {
            debug_assert_eq!(*head, index, "list head mismatch");
            *head = next;
        } else {
            *self.links_mut(prev).1 = next;
        }
        if next != NIL {
            *self.links_mut(next).0 = prev;
        }
    }

    /// Clears the links of an entry taken out of a list wholesale.
    pub(crate) fn detach(&mut self, index: u32) {
        let (p, n) = self.links_mut(index);
        *p = NIL;
        *n = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_size_for_u64_payload() {
        assert_eq!(entry_size::<u64>(), 32);
        assert_eq!(entry_size::<()>(), 24);
    }

    #[test]
    fn alloc_release_reuses_with_new_generation() {
        let mut s = Slab::with_capacity(2);
        let a = s.alloc(10, 'a');
        assert_eq!(s.deadline(a), Some(10));
        assert_eq!(s.release(a.index), (10, 'a'));
        assert_eq!(s.deadline(a), None);
        let b = s.alloc(20, 'b');
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert_eq!(s.deadline(a), None);
        assert_eq!(s.deadline(b), Some(20));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn list_push_unlink() {
        let mut s = Slab::with_capacity(4);
        let mut head = NIL;
        let k: Vec<u32> = (0..4).map(|i| s.alloc(i, ()).index).collect();
        for &i in &k {
            s.push_front(&mut head, i);
        }
        // List is 3,2,1,0; unlink middle, head and tail.
        s.unlink(&mut head, k[1]);
        s.unlink(&mut head, k[3]);
        assert_eq!(head, k[2]);
        assert_eq!(s.next_of(k[2]), k[0]);
        s.unlink(&mut head, k[0]);
        assert_eq!(s.next_of(k[2]), NIL);
        s.unlink(&mut head, k[2]);
        assert_eq!(head, NIL);
    }
}
