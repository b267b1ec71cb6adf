//! Schedules as timers: which job fires when.
//!
//! Due times are computed in wall-clock time (a cron expression names
//! wall-clock minutes; `every` is aligned to the Unix epoch) and turned into
//! monotonic deadlines on the timer wheel, so the event loop can sleep
//! exactly until the next one. Each job has at most one armed timer; re-arming
//! cancels the old one in O(1).

use crate::schedule::Schedule;
use crate::time::{self, Timestamp};
use crate::timer::{Clock, TimerKey, TimerWheel};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A schedule that came due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The job's name.
    pub job: String,
    /// The wall-clock time it was due.
    pub at: Timestamp,
}

/// The armed schedules of all jobs.
pub struct Scheduler {
    wheel: TimerWheel<Due>,
    clock: Clock,
    armed: HashMap<String, TimerKey>,
    fired: Vec<(TimerKey, Due)>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// An empty scheduler whose clock starts now.
    pub fn new() -> Self {
        Scheduler {
            wheel: TimerWheel::new(),
            clock: Clock::with_origin(Instant::now()),
            armed: HashMap::new(),
            fired: Vec::new(),
        }
    }

    /// Arms `job` for the first due time of `schedule` strictly after
    /// `after`, replacing any timer it had. Returns that due time.
    pub fn arm(&mut self, job: &str, schedule: &Schedule, after: Timestamp) -> Option<Timestamp> {
        self.disarm(job);
        let at = schedule.next_after(after)?;
        let wait = (at - time::now()).to_std().unwrap_or(Duration::ZERO);
        let deadline = self.clock.deadline_tick(Instant::now() + wait);
        let key = self.wheel.insert(
            deadline,
            Due {
                job: job.to_string(),
                at,
            },
        );
        self.armed.insert(job.to_string(), key);
        Some(at)
    }

    /// Cancels `job`'s timer, if any.
    pub fn disarm(&mut self, job: &str) {
        if let Some(key) = self.armed.remove(job) {
            self.wheel.cancel(key);
        }
    }

    /// Cancels every timer (shutdown).
    pub fn clear(&mut self) {
        let jobs: Vec<String> = self.armed.keys().cloned().collect();
        for job in jobs {
            self.disarm(&job);
        }
    }

    /// When the loop must wake up next for timers (None: nothing armed).
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .and_then(|tick| self.clock.instant_of(tick))
    }

    /// Takes every schedule due at `now`, in due order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Due> {
        self.fired.clear();
        let tick = self.clock.tick_floor(now);
        self.wheel.advance(tick, &mut self.fired);
        let mut due = Vec::with_capacity(self.fired.len());
        for (key, d) in self.fired.drain(..) {
            if self.armed.get(&d.job) == Some(&key) {
                self.armed.remove(&d.job);
            }
            due.push(d);
        }
        due
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    /// True when nothing is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}
