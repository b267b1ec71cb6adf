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
//!
//! ## Wall-clock jumps
//!
//! A deadline on the wheel is monotonic, so it goes stale when the wall
//! clock is stepped (`date -s`, an NTP step, a VM resumed, a suspend). On
//! every wake-up [`Scheduler::check_clock`] compares how far wall time and
//! monotonic time moved since the last check; when they disagree by more
//! than [`JUMP_THRESHOLD`], every schedule is re-armed:
//! - `every` (an interval, so monotonic time): re-armed for the first grid
//!   point after the new wall time that is no sooner, in monotonic time,
//!   than the deadline it had: so never less than one interval after the
//!   previous run, and less than two; no burst of the slots jumped over, no
//!   stall as long as the jump back;
//! - `cron` (names wall-clock times): re-armed for its next match after
//!   the new wall time, so it fires at the wall time it names (never early
//!   after a jump back, never an hour late after a jump forward); a due time
//!   that a forward jump passed fires once, at once (the slot did come due),
//!   and the slots after it are skipped. After a jump back of less than
//!   [`REPEAT_GUARD`], a fixed-time schedule does not fire the slots it
//!   already passed again; a wildcard one (`*/5 * * * *`) fires on the new
//!   wall time at once, as in Vixie cron and cronie. A longer jump back is
//!   taken as the new time. Fixed-time is cronie's definition, the same
//!   one daylight-saving changes use ([`Schedule::is_fixed_time`]: no
//!   minute, hour or seconds field starting with `*`, so `0 1,13 * * *` is
//!   fixed).
//!
//! While a cron schedule is armed the loop wakes at least every
//! [`WALL_CHECK`] to look, since its own deadline may be hours away.

use super::Schedule;
use crate::rng::SplitMix64;
use crate::time::{self, Timestamp};
use crate::timer::{Clock, TimerKey, TimerWheel};
use jiff::SignedDuration;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A schedule that came due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The job's name.
    pub job: Arc<str>,
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

/// A wall-clock step at least this large re-arms every schedule.
pub const JUMP_THRESHOLD: Duration = Duration::from_secs(1);
/// While a cron schedule is armed, the loop checks the wall clock at least
/// this often.
pub const WALL_CHECK: Duration = Duration::from_secs(60);

/// A fixed-time cron slot at most this far after the wall time a clock
/// step back lands on is not fired again once it has (Vixie cron's rule).
pub const REPEAT_GUARD: SignedDuration = SignedDuration::from_hours(3);

/// One job's armed schedule: the payload of its timer on the wheel, so
/// that a job costs one wheel entry and one name-to-key entry.
struct Armed {
    job: Arc<str>,
    /// The due time it is armed for.
    at: Timestamp,
    /// The wall time it was armed after: the previous due time once the
    /// schedule has fired (or the start).
    floor: Timestamp,
    /// The monotonic instant `at` stood for when armed, without jitter.
    deadline: Instant,
    schedule: Schedule,
    jitter: Duration,
}

impl Armed {
    /// A schedule armed for `at`, after `floor` (`deadline` is set when it
    /// goes on the wheel).
    fn new(
        job: Arc<str>,
        at: Timestamp,
        floor: Timestamp,
        schedule: &Schedule,
        jitter: Duration,
    ) -> Self {
        Armed {
            job,
            at,
            floor,
            deadline: Instant::now(),
            schedule: schedule.clone(),
            jitter,
        }
    }
}

/// What a timer on the wheel is.
enum Timer {
    Schedule(Armed),
    Retry(u64),
}

/// A wall-clock jump [`Scheduler::check_clock`] noticed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockJump {
    /// How far the wall clock moved beyond monotonic time (negative: back).
    pub skew: SignedDuration,
    /// Each re-armed job and its new due time.
    pub rearmed: Vec<(String, Timestamp)>,
}

/// The armed schedules of all jobs, and pending retries.
pub struct Scheduler {
    wheel: TimerWheel<Timer>,
    clock: Clock,
    /// Each armed job's timer.
    armed: HashMap<Arc<str>, TimerKey>,
    /// How many of `armed` are cron schedules (the loop's wall-clock check
    /// is needed only while one is), kept so `next_wakeup` need not scan.
    cron_armed: usize,
    retries: HashMap<u64, TimerKey>,
    next_token: u64,
    fired: Vec<(TimerKey, Timer)>,
    rng: SplitMix64,
    /// Wall and monotonic time at the last clock check.
    reference: (Timestamp, Instant),
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
            cron_armed: 0,
            retries: HashMap::new(),
            next_token: 1,
            fired: Vec::new(),
            rng: SplitMix64::seeded(),
            reference: (time::now(), Instant::now()),
        }
    }

    /// Makes room for `n` more armed schedules (a start arms every job at
    /// once; growing a table of a million one doubling at a time costs
    /// more than arming them).
    pub fn reserve(&mut self, n: usize) {
        self.armed.reserve(n);
        self.wheel.reserve(n);
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
        self.arm_at(job, schedule, after, jitter, (time::now(), Instant::now()))
    }

    /// [`Scheduler::arm`] with the current wall and monotonic time given
    /// (deterministic, for tests).
    pub fn arm_at(
        &mut self,
        job: &str,
        schedule: &Schedule,
        after: Timestamp,
        jitter: Duration,
        now: (Timestamp, Instant),
    ) -> Option<Timestamp> {
        self.arm_name(Arc::from(job), schedule, after, jitter, now)
    }

    /// [`Scheduler::arm`] with the job's name shared with its caller (the
    /// core's key), rather than copied.
    pub fn arm_shared(
        &mut self,
        job: &Arc<str>,
        schedule: &Schedule,
        after: Timestamp,
        jitter: Duration,
    ) -> Option<Timestamp> {
        let now = (time::now(), Instant::now());
        self.arm_name(Arc::clone(job), schedule, after, jitter, now)
    }

    fn arm_name(
        &mut self,
        job: Arc<str>,
        schedule: &Schedule,
        after: Timestamp,
        jitter: Duration,
        now: (Timestamp, Instant),
    ) -> Option<Timestamp> {
        let at = schedule.next_after(after);
        let Scheduler {
            wheel,
            armed: table,
            rng,
            clock,
            cron_armed,
            ..
        } = self;
        let mut place = |name: &Arc<str>, at: Timestamp| {
            let armed = Armed::new(Arc::clone(name), at, after, schedule, jitter);
            place(wheel, rng, clock, cron_armed, armed, now)
        };
        // One look-up of the table for both the old timer and the new one:
        // at a million jobs each is a cache miss.
        match table.entry(job) {
            Entry::Occupied(mut slot) => {
                let old = *slot.get();
                match at {
                    Some(at) => *slot.get_mut() = place(slot.key(), at),
                    None => {
                        slot.remove();
                    }
                }
                if let Some(Timer::Schedule(old)) = self.wheel.cancel(old) {
                    self.forget(&old);
                }
            }
            Entry::Vacant(slot) => {
                if let Some(at) = at {
                    let key = place(slot.key(), at);
                    slot.insert(key);
                }
            }
        }
        at
    }

    /// Puts `armed`'s timer on the wheel and in the table, as seen at
    /// `now`, replacing any timer the job had.
    fn insert_schedule(&mut self, armed: Armed, now: (Timestamp, Instant)) {
        let job = Arc::clone(&armed.job);
        let key = place(
            &mut self.wheel,
            &mut self.rng,
            &self.clock,
            &mut self.cron_armed,
            armed,
            now,
        );
        if let Some(old) = self.armed.insert(job, key) {
            // Callers take the old one out first; keep the count right anyway.
            if let Some(Timer::Schedule(old)) = self.wheel.cancel(old) {
                self.forget(&old);
            }
        }
    }

    /// Takes `job`'s armed schedule off the wheel and out of the table.
    fn take_armed(&mut self, job: &str) -> Option<Armed> {
        let key = self.armed.remove(job)?;
        match self.wheel.cancel(key)? {
            Timer::Schedule(armed) => {
                self.forget(&armed);
                Some(armed)
            }
            Timer::Retry(_) => None,
        }
    }

    /// Counts `armed` out of `cron_armed`, as it leaves the table.
    fn forget(&mut self, armed: &Armed) {
        if armed.schedule.is_cron() {
            self.cron_armed = self.cron_armed.saturating_sub(1);
        }
    }

    /// How many cron schedules are armed.
    pub fn cron_armed(&self) -> usize {
        self.cron_armed
    }

    /// Compares how far wall and monotonic time moved since the last check
    /// and, after a jump of at least [`JUMP_THRESHOLD`], re-arms every
    /// schedule (see the module docs). Cheap: call it on every wake-up.
    pub fn check_clock(&mut self, now: (Timestamp, Instant)) -> Option<ClockJump> {
        let (wall, mono) = now;
        let (ref_wall, ref_mono) = self.reference;
        self.reference = now;
        let mono_elapsed = SignedDuration::try_from(mono.saturating_duration_since(ref_mono))
            .unwrap_or(SignedDuration::MAX);
        let skew = ref_wall.duration_until(wall).saturating_sub(mono_elapsed);
        if skew.unsigned_abs() < JUMP_THRESHOLD {
            return None;
        }
        let mut jobs: Vec<Arc<str>> = self.armed.keys().cloned().collect();
        jobs.sort_unstable();
        let mut rearmed = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Some(old) = self.take_armed(&job) else {
                continue;
            };
            if let Some(at) = rearmed_due(&old, now) {
                rearmed.push((job.to_string(), at));
                self.insert_schedule(Armed { at, ..old }, now);
            }
        }
        Some(ClockJump { skew, rearmed })
    }

    /// Arms a one-shot retry timer `delay` from now; returns its token.
    pub fn arm_retry(&mut self, delay: Duration) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let deadline = self.clock.deadline_tick(Instant::now() + delay);
        let key = self.wheel.insert(deadline, Timer::Retry(token));
        self.retries.insert(token, key);
        token
    }

    /// Cancels `job`'s timer, if any.
    pub fn disarm(&mut self, job: &str) {
        self.take_armed(job);
    }

    /// Cancels every timer, schedules and retries (shutdown).
    pub fn clear(&mut self) {
        self.cron_armed = 0;
        let schedules = self.armed.drain().map(|(_, key)| key);
        for key in schedules.chain(self.retries.drain().map(|(_, key)| key)) {
            self.wheel.cancel(key);
        }
    }

    /// When the loop must wake up next for timers (None: nothing armed);
    /// with a cron schedule armed, no later than [`WALL_CHECK`] after the
    /// last clock check.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let timer = self
            .wheel
            .next_deadline()
            .and_then(|tick| self.clock.instant_of(tick));
        let check = (self.cron_armed > 0).then(|| self.reference.1 + WALL_CHECK);
        [timer, check].into_iter().flatten().min()
    }

    /// Takes every timer due at `now`, in deadline order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Fired> {
        let mut due = Vec::new();
        self.take_due_bounded(now, usize::MAX, &mut due);
        due
    }

    /// Appends to `due` at most `limit` of the timers due at `now`, the
    /// earliest first (see [`TimerWheel::advance_bounded`]); returns
    /// whether others are left. Those stay armed and due: the next call
    /// takes them before anything due later, [`Scheduler::next_wakeup`]
    /// says "now" meanwhile, and re-arming or disarming a job whose timer
    /// is left replaces it as usual.
    pub fn take_due_bounded(&mut self, now: Instant, limit: usize, due: &mut Vec<Fired>) -> bool {
        let mut taken = std::mem::take(&mut self.fired);
        taken.clear();
        let tick = self.clock.tick_floor(now);
        let left = self.wheel.advance_bounded(tick, &mut taken, limit);
        due.reserve(taken.len());
        for (key, timer) in taken.drain(..) {
            match timer {
                Timer::Schedule(armed) => {
                    // The table names this timer (a replaced one was
                    // cancelled): one look-up takes it out.
                    match self.armed.remove(&armed.job) {
                        Some(k) if k == key => self.forget(&armed),
                        Some(other) => {
                            self.armed.insert(Arc::clone(&armed.job), other);
                        }
                        None => {}
                    }
                    due.push(Fired::Schedule(Due {
                        job: armed.job,
                        at: armed.at,
                    }));
                }
                Timer::Retry(token) => {
                    self.retries.remove(&token);
                    due.push(Fired::Retry(token));
                }
            }
        }
        self.fired = taken;
        left
    }

    /// Whether a bounded take left due timers behind (see
    /// [`Scheduler::take_due_bounded`]).
    pub fn due_left(&self) -> bool {
        self.wheel.has_ready()
    }

    /// At least how many due timers are left (an upper bound; see
    /// [`TimerWheel::ready_len_hint`]).
    pub fn due_left_hint(&self) -> usize {
        self.wheel.ready_len_hint()
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

/// The due time a schedule is re-armed for after a wall-clock jump, the
/// clock now reading `(wall, mono)` (see the module docs).
fn rearmed_due(old: &Armed, (wall, mono): (Timestamp, Instant)) -> Option<Timestamp> {
    let schedule = &old.schedule;
    if schedule.is_cron() {
        // A cron slot a forward jump passed fires once, now.
        if old.at <= wall {
            return Some(old.at);
        }
        // A fixed-time slot the schedule already passed is not fired again
        // after a step back of less than REPEAT_GUARD.
        if schedule.is_fixed_time()
            && old.floor > wall
            && wall.duration_until(old.floor) < REPEAT_GUARD
        {
            return schedule.next_after(old.floor);
        }
        return schedule.next_after(wall);
    }
    // An interval is monotonic time: the grid point after the new wall
    // time that is no sooner (monotonic) than the deadline armed before
    // the jump, hence at least one interval after the previous one.
    let remaining = old.deadline.saturating_duration_since(mono);
    let from = SignedDuration::try_from(remaining)
        .ok()
        .filter(|d| !d.is_zero())
        .and_then(|d| wall.checked_add(d - SignedDuration::from_nanos(1)).ok())
        .unwrap_or(wall);
    schedule.next_after(from)
}

/// Puts `armed`'s timer on the wheel, as seen at `(wall, mono)` (its
/// `deadline` is computed here), counting it in `cron_armed`; the caller
/// puts the key in the table.
fn place(
    wheel: &mut TimerWheel<Timer>,
    rng: &mut SplitMix64,
    clock: &Clock,
    cron_armed: &mut usize,
    mut armed: Armed,
    (wall, mono): (Timestamp, Instant),
) -> TimerKey {
    let wait = Duration::try_from(wall.duration_until(armed.at)).unwrap_or(Duration::ZERO);
    let delay = rng.below(armed.jitter);
    armed.deadline = mono + wait;
    let tick = clock.deadline_tick(on_grid(armed.deadline + delay));
    if armed.schedule.is_cron() {
        *cron_armed += 1;
    }
    wheel.insert(tick, Timer::Schedule(armed))
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

#[cfg(test)]
mod tests;
