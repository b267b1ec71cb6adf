//! The bounded queue between the loop and the delivery thread, and the
//! counters of what became of each message.
//!
//! The loop pushes and never waits: the lock is held for a push, which is
//! O(1) (a full queue drops its oldest message, counted as `dropped`).
//! The delivery thread takes fresh messages first, in order, then retries
//! whose time has come, and sleeps on a condition variable until the next
//! one is due or something is pushed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::message::Message;
use crate::config::NotifySink;

/// Most messages waiting (fresh and retries together). A message is a few
/// short strings and at most 2 KiB of output: about 4 KiB, so the queue
/// holds at most about 4 MiB.
pub const CAPACITY: usize = 1000;

/// The `result` label values of `tickd_notifications_total`, in the order
/// of [`Counters::snapshot`]'s arrays.
pub const RESULTS: [&str; 3] = ["sent", "failed", "dropped"];

/// What became of a message, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered.
    Sent,
    /// Every attempt failed.
    Failed,
    /// Dropped: the queue was full, or the daemon stopped first.
    Dropped,
}

/// Messages per sink and [`Fate`], since the start; shared with `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Counters(Arc<Mutex<BTreeMap<String, [u64; 3]>>>);

impl Counters {
    /// Counts one message of `sink`.
    pub fn add(&self, sink: &str, fate: Fate) {
        let mut map = self.0.lock();
        let counts = match map.get_mut(sink) {
            Some(c) => c,
            None => map.entry(sink.to_string()).or_default(),
        };
        counts[fate as usize] += 1;
    }

    /// Makes every sink of `names` show, at zero until it has counts.
    pub fn know<'a>(&self, names: impl IntoIterator<Item = &'a String>) {
        let mut map = self.0.lock();
        for name in names {
            if !map.contains_key(name) {
                map.insert(name.clone(), [0; 3]);
            }
        }
    }

    /// Every sink's counts by name, as `status` shows them:
    /// `{"ops": {"sent": 3, "failed": 0, "dropped": 0}}`.
    pub fn view(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let map = self.0.lock();
        map.iter()
            .map(|(sink, counts)| (sink.clone(), RESULTS.into_iter().zip(*counts).collect()))
            .collect()
    }

    /// Every sink's counts, by name, in [`RESULTS`] order.
    pub fn snapshot(&self) -> Vec<(String, [u64; 3])> {
        self.0.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// One delivery to do.
pub(super) struct Item {
    pub sink: Arc<NotifySink>,
    pub message: Arc<Message>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Not before then (a retry).
    pub due: Instant,
}

struct State {
    fresh: VecDeque<Item>,
    retries: Vec<Item>,
    closing: bool,
    /// Drops not yet logged, and when a drop was last logged.
    unlogged_drops: u64,
    drop_logged: Option<Instant>,
}

/// The queue (see the module docs).
pub(super) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    pub counters: Counters,
}

/// At most one log line per this long about drops (and, on the delivery
/// thread, about one sink's failures).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

impl Queue {
    pub fn new(counters: Counters) -> Queue {
        Queue {
            state: Mutex::new(State {
                fresh: VecDeque::new(),
                retries: Vec::new(),
                closing: false,
                unlogged_drops: 0,
                drop_logged: None,
            }),
            ready: Condvar::new(),
            counters,
        }
    }

    /// Queues a first attempt (from the loop: never waits).
    pub fn push(&self, item: Item) {
        self.put(item, false);
    }

    /// Queues a retry (from the delivery thread); dropped once closing.
    pub fn retry(&self, item: Item) {
        self.put(item, true);
    }

    fn put(&self, item: Item, retry: bool) {
        let mut s = self.state.lock();
        if s.closing && retry {
            drop(s);
            self.counters.add(&item.sink.name, Fate::Dropped);
            return;
        }
        if s.fresh.len() + s.retries.len() >= CAPACITY {
            // The oldest goes: a fresh message before any retry.
            let oldest = match s.fresh.pop_front() {
                Some(old) => Some(old),
                None => {
                    let first = (0..s.retries.len()).min_by_key(|i| s.retries[*i].due);
                    first.map(|i| s.retries.swap_remove(i))
                }
            };
            if let Some(old) = oldest {
                self.counters.add(&old.sink.name, Fate::Dropped);
                s.unlogged_drops += 1;
            }
            let now = Instant::now();
            if s.drop_logged.is_none_or(|t| now >= t + LOG_EVERY) {
                log::warn!(
                    "notifications: queue full ({CAPACITY}); {} oldest message(s) dropped",
                    s.unlogged_drops
                );
                s.unlogged_drops = 0;
                s.drop_logged = Some(now);
            }
        }
        if retry {
            s.retries.push(item);
        } else {
            s.fresh.push_back(item);
        }
        drop(s);
        self.ready.notify_one();
    }

    /// The next delivery to do, waiting for one; `None` once closing and
    /// no fresh message is left.
    pub fn take(&self) -> Option<Item> {
        let mut s = self.state.lock();
        loop {
            if let Some(item) = s.fresh.pop_front() {
                return Some(item);
            }
            if s.closing {
                return None;
            }
            let now = Instant::now();
            let next = (0..s.retries.len()).min_by_key(|i| s.retries[*i].due);
            match next {
                Some(i) if s.retries[i].due <= now => return Some(s.retries.swap_remove(i)),
                Some(i) => {
                    let due = s.retries[i].due;
                    self.ready.wait_until(&mut s, due);
                }
                None => self.ready.wait(&mut s),
            }
        }
    }

    /// Whether [`Queue::close`] was called.
    pub fn closing(&self) -> bool {
        self.state.lock().closing
    }

    /// Stops taking retries: fresh messages are still handed out, then
    /// [`Queue::take`] gives `None`. Waiting retries are counted dropped.
    pub fn close(&self) {
        let retries = {
            let mut s = self.state.lock();
            s.closing = true;
            std::mem::take(&mut s.retries)
        };
        for item in retries {
            self.counters.add(&item.sink.name, Fate::Dropped);
        }
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkKind;
    use crate::state::run::{Run, Trigger};

    fn item(sink: &Arc<NotifySink>, run: u64) -> Item {
        let run = Run::queued(run, Some("j".into()), Trigger::Manual, 1);
        Item {
            sink: Arc::clone(sink),
            message: Arc::new(Message::new("j", &run, super::super::policy::Event::Failed)),
            attempt: 1,
            due: Instant::now(),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_it() {
        let sink = Arc::new(NotifySink {
            name: "ops".into(),
            kind: SinkKind::Exec {
                command: vec!["true".into()],
                format: crate::config::Format::Json,
                to: Vec::new(),
                from: None,
            },
            link_base: None,
            timeout: Duration::from_secs(1),
        });
        let counters = Counters::default();
        let q = Queue::new(counters.clone());
        for run in 0..=CAPACITY as u64 {
            q.push(item(&sink, run));
        }
        assert_eq!(counters.snapshot(), [("ops".to_string(), [0, 0, 1])]);
        assert_eq!(q.take().map(|i| i.message.run_id.clone()), Some("1".into()));
        q.close();
        let mut left = 1;
        while q.take().is_some() {
            left += 1;
        }
        assert_eq!(left, CAPACITY, "fresh messages still go out once closing");
        q.retry(item(&sink, 7));
        assert_eq!(counters.snapshot(), [("ops".to_string(), [0, 0, 2])]);
    }
}
