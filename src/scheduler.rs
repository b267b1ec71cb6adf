//! Schedules as timers: which job fires when.
//!
//! Due times are computed in wall-clock time (a cron expression names
//! wall-clock minutes; `every` is aligned to the Unix epoch) and turned into
//! monotonic deadlines on the timer wheel, so the event loop can sleep
//! exactly until the next one. Each job has at most one armed schedule timer;
//! re-arming cancels the old one in O(1). Retry delays live on the same
//! wheel, as one-shot timers the daemon identifies by a token.
//!
//! `jitter` delays the timer (not the due time): a run fires somewhere in
//! `due .. due + jitter`, while its `scheduled_at` and the next due time stay
//! on the schedule's grid, so jitter never accumulates into drift.

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

/// A timer that came due.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// A job's schedule.
    Schedule(Due),
    /// A retry armed with [`Scheduler::arm_retry`], by its token.
    Retry(u64),
}

/// The armed schedules of all jobs, and pending retries.
pub struct Scheduler {
    wheel: TimerWheel<Fired>,
    clock: Clock,
    armed: HashMap<String, TimerKey>,
    retries: HashMap<u64, TimerKey>,
    next_token: u64,
    fired: Vec<(TimerKey, Fired)>,
    rng: SplitMix64,
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
            clock: Clock::with_origin(time::instant_on_millisecond_grid()),
            armed: HashMap::new(),
            retries: HashMap::new(),
            next_token: 1,
            fired: Vec::new(),
            rng: SplitMix64::seeded(),
        }
    }

    /// Arms `job` for the first due time of `schedule` strictly after
    /// `after`, replacing any timer it had; the timer fires up to `jitter`
    /// later (chosen at random). Returns the due time.
    pub fn arm(
        &mut self,
        job: &str,
        schedule: &Schedule,
        after: Timestamp,
        jitter: Duration,
    ) -> Option<Timestamp> {
        self.disarm(job);
        let at = schedule.next_after(after)?;
        let wait = (at - time::now()).to_std().unwrap_or(Duration::ZERO);
        let delay = self.rng.below(jitter);
        let deadline = self
            .clock
            .deadline_tick(on_grid(Instant::now() + wait + delay));
        let due = Due {
            job: job.to_string(),
            at,
        };
        let key = self.wheel.insert(deadline, Fired::Schedule(due));
        self.armed.insert(job.to_string(), key);
        Some(at)
    }

    /// Arms a one-shot retry timer `delay` from now; returns its token.
    pub fn arm_retry(&mut self, delay: Duration) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let deadline = self.clock.deadline_tick(Instant::now() + delay);
        let key = self.wheel.insert(deadline, Fired::Retry(token));
        self.retries.insert(token, key);
        token
    }

    /// Cancels `job`'s timer, if any.
    pub fn disarm(&mut self, job: &str) {
        if let Some(key) = self.armed.remove(job) {
            self.wheel.cancel(key);
        }
    }

    /// Cancels every timer, schedules and retries (shutdown).
    pub fn clear(&mut self) {
        let schedules = self.armed.drain().map(|(_, key)| key);
        for key in schedules.chain(self.retries.drain().map(|(_, key)| key)) {
            self.wheel.cancel(key);
        }
    }

    /// When the loop must wake up next for timers (None: nothing armed).
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .and_then(|tick| self.clock.instant_of(tick))
    }

    /// Takes every timer due at `now`, in deadline order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Fired> {
        self.fired.clear();
        let tick = self.clock.tick_floor(now);
        self.wheel.advance(tick, &mut self.fired);
        let mut due = Vec::with_capacity(self.fired.len());
        for (key, fired) in self.fired.drain(..) {
            match &fired {
                Fired::Schedule(d) => {
                    if self.armed.get(&d.job) == Some(&key) {
                        self.armed.remove(&d.job);
                    }
                }
                Fired::Retry(token) => {
                    self.retries.remove(token);
                }
            }
            due.push(fired);
        }
        due
    }

    /// Number of armed timers (schedules and retries).
    pub fn len(&self) -> usize {
        self.armed.len() + self.retries.len()
    }

    /// True when nothing is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty() && self.retries.is_empty()
    }
}

/// How far past a tick boundary a deadline may be computed and still count
/// as due at that boundary: reading the wall clock and then `Instant` to
/// convert a due time puts the result a few hundred nanoseconds after the
/// grid point it stands for. Without this, rounding up would push such a
/// deadline to the next tick, a millisecond late.
const GRID_SLACK: Duration = Duration::from_micros(20);

/// The instant a timer for `at` is armed at: `at` minus [`GRID_SLACK`], so
/// that a due time on the clock's millisecond grid maps to its own tick.
fn on_grid(at: Instant) -> Instant {
    at.checked_sub(GRID_SLACK).unwrap_or(at)
}

/// A tiny PRNG for jitter: uniform enough to spread runs, no crate needed,
/// and never a security concern.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded from the clock and the pid, so daemons on many hosts started
    /// by the same config do not jitter in lockstep.
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform duration in `0..max` at millisecond resolution (zero when
    /// `max` is below a millisecond).
    fn below(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next() % ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::parse_every;

    #[test]
    fn jitter_stays_below_its_bound_and_spreads() {
        let mut rng = SplitMix64(7);
        let max = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..1000).map(|_| rng.below(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        // Spread: both halves of the range are hit.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(750)));
        assert_eq!(rng.below(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn jitter_delays_the_timer_not_the_due_time() {
        let mut s = Scheduler::new();
        let every = parse_every("1h").expect("schedule");
        let now = time::now();
        let at = s
            .arm("j", &every, now, Duration::from_secs(600))
            .expect("armed");
        assert_eq!(Some(at), every.next_after(now));
        let start = Instant::now();
        let until_due = (at - now).to_std().expect("future");
        // Step the wheel a second at a time: the timer fires no earlier
        // than the due time and no later than due + jitter.
        let fired_after = (0..=700u64)
            .map(|secs| {
                until_due.saturating_sub(Duration::from_secs(50)) + Duration::from_secs(secs)
            })
            .find(|offset| !s.take_due(start + *offset).is_empty())
            .expect("fired within due + jitter");
        assert!(fired_after + Duration::from_millis(50) >= until_due);
        assert!(fired_after <= until_due + Duration::from_secs(601));
    }

    /// How far after `at` (wall clock) the scheduler's wake-up for it lies,
    /// in µs, for a fresh scheduler armed for a 1 s grid.
    fn wake_after_due_us() -> i64 {
        let mut s = Scheduler::new();
        let every = parse_every("1s").expect("schedule");
        let at = s
            .arm("j", &every, time::now(), Duration::ZERO)
            .expect("armed");
        // Follow the wake-ups as the loop would (the wheel may first wake
        // it to cascade a coarser slot): the timer never fires before the
        // wake-up the wheel asked for, and fires at its last one.
        let mut wake = s.next_wakeup().expect("armed");
        loop {
            let before = wake
                .checked_sub(Duration::from_micros(1))
                .expect("after origin");
            assert!(s.take_due(before).is_empty());
            if !s.take_due(wake).is_empty() {
                break;
            }
            wake = s.next_wakeup().expect("still armed");
        }
        let wall_now = time::now();
        let inst_now = Instant::now();
        let ahead =
            chrono::Duration::from_std(wake.saturating_duration_since(inst_now)).expect("small");
        time::micros_between(&at, &(wall_now + ahead))
    }

    #[test]
    fn a_due_time_on_the_millisecond_grid_wakes_the_loop_at_its_own_tick() {
        // Rounded up to an unaligned millisecond tick, the wake-up would be
        // anywhere up to 1 ms after the due time; aligned, it is the due
        // time itself, give or take the two clock reads. A try preempted
        // between its clock reads can miss, so most of five must hit.
        let tries: Vec<i64> = (0..5).map(|_| wake_after_due_us()).collect();
        let on_time = tries.iter().filter(|us| us.abs() < 50).count();
        assert!(on_time >= 3, "wake-ups after the due time (µs): {tries:?}");
    }

    #[test]
    fn retries_fire_once_and_clear_cancels_everything() {
        let mut s = Scheduler::new();
        let token = s.arm_retry(Duration::ZERO);
        let every = parse_every("1h").expect("schedule");
        s.arm("j", &every, time::now(), Duration::ZERO);
        assert_eq!(s.len(), 2);
        let fired = s.take_due(Instant::now() + Duration::from_millis(5));
        assert_eq!(fired, vec![Fired::Retry(token)]);
        assert_eq!(s.len(), 1);
        s.arm_retry(Duration::from_secs(5));
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.next_wakeup(), None);
    }
}
