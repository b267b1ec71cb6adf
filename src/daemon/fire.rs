//! Firing due schedules, a herd included: 100,000 jobs due at the same
//! instant (everything at the top of the hour) are queued within a
//! fraction of a second while the loop keeps answering its clients.
//!
//! - **Slices.** [`Daemon::fire_due`] takes the due timers [`FIRE_SLICE`]
//!   at a time, earliest due first, for at most [`FIRE_BUDGET`] per loop
//!   turn; the timers left stay due on the wheel (so the loop's next
//!   deadline is "now" and it does not sleep) and are taken first at the
//!   next turn, after the loop has served its connections. A job re-armed
//!   or removed meanwhile loses its left timer as it would an armed one.
//! - **One core lock per slice.** For each due schedule of a slice, under
//!   one hold of the core lock and with one look-up of the job
//!   ([`crate::state::JobSlot`]): re-arm it from the later of its due time
//!   and now (on time: no drift; after a stall: the missed slots are
//!   skipped), decide its run as [`Daemon::start_run`] does (overlap, the
//!   pool's room, a held API job, shutdown) and create the run record.
//!   Then, outside the lock: the journal records (with `state_dir`), the
//!   events for subscribers (only while someone subscribes), the log, and
//!   the slice's runs go to the pool under one hold of its queue's lock.
//! - **Workers woken late.** Every run of a turn is queued before workers
//!   are woken, but every [`super::dispatch::QUIET_WAKE_BATCH`] runs (see
//!   [`Daemon::count_quiet_dispatches`]).

use super::define::HELD_RUN;
use super::dispatch::RunInput;
use super::rules::{self, Admission};
use super::skips::Line;
use super::task::RunTask;
use super::{Daemon, Error, KILL_GRACE};
use crate::config::{JobDef, Overlap};
use crate::jobs::cancel::CancelToken;
use crate::pool::SubmitError;
use crate::schedule::timers::Due;
use crate::schedule::Fired;
use crate::state::run::{RunId, RunState, Trigger};
use crate::state::Finish;
use crate::time;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Due timers [`Daemon::fire_due`] takes off the wheel at a time.
pub const FIRE_SLICE: usize = 256;

/// How long one loop turn may spend firing due timers: once a slice ends
/// past it, the timers left wait for the next turn, after the loop has
/// served its connections. A turn's other work comes on top, so a client
/// waits at most a few of these for an answer during a herd.
pub const FIRE_BUDGET: Duration = Duration::from_millis(5);

/// What became of one due schedule under the core lock.
enum Outcome {
    /// Its run was created and counted as handed to the pool.
    Dispatch {
        due: Due,
        id: RunId,
        def: Arc<JobDef>,
    },
    /// Its run was created and waits in the job's backlog (`overlap =
    /// "queue"` behind an active run).
    Backlog {
        due: Due,
        id: RunId,
        def: Arc<JobDef>,
    },
    /// No run, for this reason.
    Refused { due: Due, error: Error },
    /// Cluster mode: the occurrence is claimed in Redis first; the run is
    /// created when the claim is won (see `daemon::cluster`).
    Claim { due: Due, overlap: Overlap },
}

impl Daemon {
    /// Starts the runs whose schedule is due at `now`, re-arming each
    /// schedule from its due time so that run time never shifts the next
    /// one; in slices, for at most [`FIRE_BUDGET`] (see the module docs).
    pub(super) fn fire_due(&mut self, now: Instant) {
        // `queue_due` has no early exit; if it ever gets one, runs queued
        // after it would wait for a wake that never comes.
        debug_assert!(self.quiet_dispatches.is_none());
        self.quiet_dispatches = Some(0);
        self.check_clock(now);
        let started = Instant::now();
        let mut due = Vec::with_capacity(FIRE_SLICE);
        let mut reserved = false;
        loop {
            if self.scheduler.due_left() && fire_held() {
                break;
            }
            let left = self.scheduler.take_due_bounded(now, FIRE_SLICE, &mut due);
            if left && !reserved {
                self.reserve_for(due.len() + self.scheduler.due_left_hint());
                reserved = true;
            }
            self.queue_due(&mut due, now);
            if !left || started.elapsed() >= FIRE_BUDGET {
                break;
            }
        }
        if let Some(n) = self.quiet_dispatches.take() {
            self.pool.wake(n);
        }
    }

    /// Makes room for the runs of `n` due timers in the tables that will
    /// hold them, once for a herd rather than a doubling at a time.
    fn reserve_for(&mut self, n: usize) {
        self.shared.core.lock().reserve_runs(n);
        self.cancels.reserve(n);
        self.inputs.reserve(n);
    }

    /// Queues the runs of one slice of due timers, in order (emptying it).
    fn queue_due(&mut self, due: &mut Vec<Fired>, now: Instant) {
        let mut schedules = Vec::with_capacity(due.len());
        for fired in due.drain(..) {
            match fired {
                Fired::Schedule(d) => schedules.push(d),
                Fired::Retry(token) => {
                    // The schedules due before it go first.
                    self.queue_scheduled(&mut schedules, now);
                    self.fire_retry(token);
                }
            }
        }
        self.queue_scheduled(&mut schedules, now);
    }

    /// Re-arms the schedules of `due` and queues their runs (emptying it).
    fn queue_scheduled(&mut self, due: &mut Vec<Due>, now: Instant) {
        if due.is_empty() {
            return;
        }
        let outcomes = self.admit_scheduled(due);
        self.queue_admitted(outcomes, now);
    }

    /// The part under the core lock, held once for all of `due`: re-arms
    /// each schedule, decides its run as [`Daemon::start_run`] would, and
    /// creates the run record.
    fn admit_scheduled(&mut self, due: &mut Vec<Due>) -> Vec<Outcome> {
        let stopping = self.stopping();
        // Workers only take from the queue meanwhile: the room counted
        // here can only grow, so no run admitted below finds it full.
        let mut room = {
            let s = self.pool.stats();
            s.queue_capacity
                .saturating_sub(s.queue_depth + self.gated_waiting())
        };
        let backlog_cap = self.start.queue_capacity;
        let claims = self.claims();
        let wall = time::now();
        let shared = Arc::clone(&self.shared);
        let mut core = shared.core.lock();
        let mut out = Vec::with_capacity(due.len());
        for due in due.drain(..) {
            let Some(mut slot) = core.job_slot(&due.job) else {
                continue;
            };
            let entry = slot.entry();
            let schedule = match &entry.def.schedule {
                Some(schedule) if entry.enabled => schedule,
                _ => continue,
            };
            // Re-arm from the later of the due time and now: on time this
            // is the due time (no drift); after a stall, missed slots are
            // skipped instead of fired in a burst.
            let from = due.at.max(wall);
            entry.next_run = self
                .scheduler
                .arm_shared(&due.job, schedule, from, entry.def.jitter);
            entry.last_scheduled = Some(due.at);
            if stopping {
                out.push(Outcome::Refused {
                    due,
                    error: Error::ShuttingDown,
                });
                continue;
            }
            if slot.is_held() {
                out.push(Outcome::Refused {
                    due,
                    error: Error::Forbidden(HELD_RUN),
                });
                continue;
            }
            let entry = slot.entry();
            if claims {
                let overlap = entry.def.overlap;
                out.push(Outcome::Claim { due, overlap });
                continue;
            }
            let busy = entry.active > 0 || !entry.backlog.is_empty();
            let admission = rules::admit(
                entry.def.overlap,
                busy,
                entry.backlog.len(),
                backlog_cap,
                room > 0,
            );
            let error = match admission {
                Admission::Overlapping => Error::AlreadyRunning {
                    job: due.job.to_string(),
                },
                Admission::BacklogFull => Error::BacklogFull {
                    job: due.job.to_string(),
                    capacity: backlog_cap,
                },
                Admission::QueueFull => Error::QueueFull {
                    capacity: Some(self.start.queue_capacity),
                },
                Admission::Backlog => {
                    let def = Arc::clone(&entry.def);
                    let id = slot.create_run(Trigger::Schedule, 1, Some(due.at));
                    slot.entry().backlog.push_back(id);
                    out.push(Outcome::Backlog { due, id, def });
                    continue;
                }
                Admission::Dispatch => {
                    let def = Arc::clone(&entry.def);
                    let id = slot.create_run(Trigger::Schedule, 1, Some(due.at));
                    slot.note_dispatched();
                    room -= 1;
                    out.push(Outcome::Dispatch { due, id, def });
                    continue;
                }
            };
            slot.entry().skipped_total += 1;
            out.push(Outcome::Refused { due, error });
        }
        out
    }

    /// The part outside the core lock: journal, events, log, and the
    /// runs to the pool, under one hold of its queue's lock.
    fn queue_admitted(&mut self, outcomes: Vec<Outcome>, now: Instant) {
        let mut tasks = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Outcome::Dispatch { due, id, def } => {
                    self.shared.journal_scheduled(&due.job, due.at);
                    self.shared.journal_run(id, None, None);
                    self.shared.publish_run_change(id);
                    let cancel = CancelToken::new();
                    self.cancels.insert(id, cancel.clone());
                    let input = RunInput {
                        def: Arc::clone(&def),
                        args: None,
                        adhoc: None,
                    };
                    self.inputs.insert(id, input);
                    if let Some(gate) = def.concurrency.as_deref() {
                        if !self.shared.board.gates.lock().admit(id, gate) {
                            log::debug!("run {id}: waits for concurrency limit {gate}");
                            self.scheduled_run_queued(&due, id);
                            continue;
                        }
                    }
                    tasks.push(RunTask {
                        id,
                        def,
                        args: None,
                        cancel,
                        kill_grace: KILL_GRACE,
                    });
                    self.scheduled_run_queued(&due, id);
                }
                Outcome::Backlog { due, id, def } => {
                    self.shared.journal_scheduled(&due.job, due.at);
                    self.shared.journal_run(id, None, None);
                    let input = RunInput {
                        def,
                        args: None,
                        adhoc: None,
                    };
                    self.inputs.insert(id, input);
                    self.shared.publish_run_change(id);
                    log::debug!(
                        "run {id} of job {} waits for the running one (overlap = queue)",
                        due.job
                    );
                    self.scheduled_run_queued(&due, id);
                }
                Outcome::Refused { due, error } => {
                    self.shared.journal_scheduled(&due.job, due.at);
                    self.scheduled_run_skipped(&due, &error, now);
                }
                Outcome::Claim { due, overlap } => {
                    self.shared.journal_scheduled(&due.job, due.at);
                    self.claim_occurrence(&due.job, due.at, overlap);
                }
            }
        }
        let queued = tasks.len();
        let refused = self.pool.submit_quiet_all(tasks);
        self.count_quiet_dispatches(queued - refused.len());
        for e in refused {
            let (task, why) = match e {
                SubmitError::Full(task) => (task, "run queue is full"),
                SubmitError::Stopped(task) => (task, "worker pool is stopping"),
            };
            log::warn!("run {}: could not be queued: {why}", task.id);
            self.finish_here(task.id, Finish::with_error(RunState::Cancelled, why), true);
        }
    }

    /// Logs a scheduled run queued, and the end of a streak of skips.
    fn scheduled_run_queued(&mut self, due: &Due, id: RunId) {
        log::debug!("job {}: scheduled run {id} queued", due.job);
        if let Some(n) = self.skips.ran(&due.job) {
            log::info!("job {}: {n} more scheduled runs were skipped", due.job);
        }
    }

    /// Logs a scheduled run skipped (a line per streak, see
    /// [`super::skips`]).
    fn scheduled_run_skipped(&mut self, due: &Due, e: &Error, now: Instant) {
        let level = if e.is_conflict() {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        match self.skips.skipped(&due.job, now) {
            Line::Quiet => {}
            Line::First => log::log!(level, "job {}: scheduled run skipped: {e}", due.job),
            Line::Summary(n) => log::log!(
                level,
                "job {}: scheduled run skipped: {e} ({n} more since the last line)",
                due.job
            ),
        }
    }
}

/// Whether the `dispatch.fire_hold` fail point holds back the due timers
/// a slice left (tests: the loop must answer while a herd is only partly
/// queued). Its `return` action holds them for as long as it is set.
fn fire_held() -> bool {
    fail::fail_point!("dispatch.fire_hold", |_| true);
    false
}
