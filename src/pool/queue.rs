//! The pool's task queue: bounded, many producers, many consumers, and an
//! idle worker that sleeps at once instead of spinning first.
//!
//! A general-purpose channel spins and then calls `sched_yield` a few times
//! before a receiver parks, betting that a message is about to arrive. A
//! worker that finds the queue empty here has nothing coming soon (work
//! arrives at the pace of requests and schedules), and on a small machine
//! each yield hands the core to another thread only to be rescheduled:
//! measured on the exec benchmark, four `sched_yield` calls and the context
//! switches that go with them per run. This queue is a mutex-guarded
//! `VecDeque` with a condition variable: an empty queue parks the worker
//! right away, and a push wakes one parked worker (no syscall when none is
//! parked).

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;

/// Why a push was refused; the item comes back.
#[derive(Debug)]
pub(super) enum PushError<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// [`Queue::close`] was called.
    Closed(T),
}

/// The queue was closed and is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Closed;

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded blocking queue; see the module doc.
pub(super) struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> Queue<T> {
    /// An empty queue that holds at most `capacity` items (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `item` without blocking, waking one waiting consumer.
    pub(super) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        self.try_push_quiet(item)?;
        // Outside the lock, so the woken worker does not block on it.
        self.ready.notify_one();
        Ok(())
    }

    /// `try_push` without waking anyone: see [`Queue::wake`].
    pub(super) fn try_push_quiet(&self, item: T) -> Result<(), PushError<T>> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(PushError::Closed(item));
        }
        if state.items.len() >= self.capacity {
            return Err(PushError::Full(item));
        }
        state.items.push_back(item);
        Ok(())
    }

    /// `try_push_quiet` of every item of `items`, under one hold of the
    /// lock (a herd of runs queued at once); the items refused come back.
    pub(super) fn push_quiet_all(&self, items: impl Iterator<Item = T>) -> Vec<PushError<T>> {
        let mut refused = Vec::new();
        let mut state = self.state.lock();
        for item in items {
            if state.closed {
                refused.push(PushError::Closed(item));
            } else if state.items.len() >= self.capacity {
                refused.push(PushError::Full(item));
            } else {
                state.items.push_back(item);
            }
        }
        refused
    }

    /// Wakes up to `n` sleeping consumers (fewer if fewer sleep; busy ones
    /// take queued items when they finish anyway).
    pub(super) fn wake(&self, n: usize) {
        for _ in 0..n {
            if !self.ready.notify_one() {
                break;
            }
        }
    }

    /// Takes the oldest item, sleeping while the queue is empty. After
    /// [`close`](Self::close), items already queued are still handed out;
    /// then every call returns `Err(Closed)`.
    pub(super) fn recv(&self) -> Result<T, Closed> {
        let mut state = self.state.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Ok(item);
            }
            if state.closed {
                return Err(Closed);
            }
            self.ready.wait(&mut state);
        }
    }

    /// Refuses further pushes and wakes every consumer, so that they drain
    /// what is queued and then stop.
    pub(super) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    /// Items waiting.
    pub(super) fn len(&self) -> usize {
        self.state.lock().items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_bounded_and_gives_items_back() {
        let q = Queue::new(2);
        assert!(q.try_push(1).is_ok());
        assert!(q.try_push(2).is_ok());
        assert!(matches!(q.try_push(3), Err(PushError::Full(3))));
        assert_eq!(q.len(), 2);
        assert_eq!(q.recv(), Ok(1));
        assert_eq!(q.recv(), Ok(2));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn close_drains_what_is_queued_then_stops_every_consumer() {
        let q = Arc::new(Queue::new(8));
        for i in 0..4 {
            assert!(q.try_push(i).is_ok());
        }
        q.close();
        assert!(matches!(q.try_push(9), Err(PushError::Closed(9))));
        let got: Vec<i32> = std::iter::from_fn(|| q.recv().ok()).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(q.recv(), Err(Closed));
    }

    #[test]
    fn a_quiet_push_reaches_a_sleeping_consumer_through_wake() {
        let q = Arc::new(Queue::new(4));
        let consumer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.recv())
        };
        assert!(q.try_push_quiet(7).is_ok());
        assert_eq!(q.len(), 1);
        // Woken or not yet asleep, the consumer gets the item once woken;
        // waking more than are asleep is harmless.
        q.wake(3);
        assert_eq!(consumer.join().expect("consumer"), Ok(7));
        assert!(matches!(q.try_push_quiet(1), Ok(())));
        q.close();
        assert!(matches!(q.try_push_quiet(2), Err(PushError::Closed(2))));
    }

    #[test]
    fn a_sleeping_consumer_is_woken_by_a_push_and_by_close() {
        let q = Arc::new(Queue::new(8));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || std::iter::from_fn(|| q.recv().ok()).sum::<u64>())
            })
            .collect();
        for i in 1..=100u64 {
            let mut item = i;
            // Full while the consumers catch up: retry, nothing is lost.
            while let Err(PushError::Full(back)) = q.try_push(item) {
                item = back;
                std::thread::yield_now();
            }
        }
        q.close();
        let total: u64 = consumers
            .into_iter()
            .map(|c| c.join().expect("consumer"))
            .sum();
        assert_eq!(total, 5050);
    }
}
