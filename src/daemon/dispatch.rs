//! Starting, queueing, cancelling and finishing runs, and firing schedules.
//!
//! The rules live here, on the loop thread (the decisions themselves are
//! pure functions in [`super::rules`]):
//! - `overlap = skip`: a run asked for while one is active is refused
//!   ([`Error::AlreadyRunning`] for a request; a logged, counted skip for a
//!   schedule);
//! - `overlap = queue`: it waits in the job's backlog and is dispatched when
//!   the active run finishes, one at a time;
//! - `overlap = allow`: it goes to the pool at once;
//! - a full pool queue refuses the run before any record is created, so a
//!   [`Error::QueueFull`] refusal never leaves a phantom run behind;
//! - a run that ends failed or timed out is retried `retries` times, each
//!   attempt a new run (`trigger = "retry"`, `attempt` counting up) after
//!   `retry_backoff` doubling per attempt up to [`rules::MAX_BACKOFF`]; after the
//!   last attempt fails, the job's `on_failure` job is started with
//!   `trigger = "on_failure"` (config validation rules out cycles).

use super::rules::{self, Admission, AfterEnd};
use super::task::RunTask;
use super::{Daemon, Error, LoopEvent, KILL_GRACE};
use crate::config::Overlap;
use crate::jobs::cancel::CancelToken;
use crate::pool::SubmitError;
use crate::state::run::{Run, RunId, RunState, Trigger};
use crate::state::Finish;
use crate::time::{self, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What a new run is, besides its job.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// What started it.
    pub trigger: Trigger,
    /// Passed to the job.
    pub args: Option<Value>,
    /// The due time, for scheduled runs.
    pub scheduled_at: Option<Timestamp>,
    /// 1 for a first attempt.
    pub attempt: u32,
    /// Overrides the job's `overlap` (catch-up runs queue behind each other).
    pub overlap: Option<Overlap>,
    /// Replays a due time missed while the daemon was down.
    pub catch_up: bool,
    /// The id the run must have (a run for any node, whose id the node
    /// that received the request chose); None: the next id.
    pub preset_id: Option<RunId>,
    /// The run that triggered it (`on_failure`, `on_success`).
    pub parent: Option<RunId>,
}

impl NewRun {
    /// A first attempt with no due time.
    pub fn new(trigger: Trigger, args: Option<Value>) -> Self {
        NewRun {
            trigger,
            args,
            scheduled_at: None,
            attempt: 1,
            overlap: None,
            catch_up: false,
            preset_id: None,
            parent: None,
        }
    }
}

/// The inputs of a run not yet finished, kept so that a retry can repeat it.
#[derive(Debug, Clone)]
pub(super) struct RunInput {
    /// The definition the run was created with.
    pub def: Arc<crate::config::JobDef>,
    /// Its args.
    pub args: Option<Value>,
    /// For `submit`: the job object as the client sent it (journaled, so
    /// that a restart can run the job again).
    pub adhoc: Option<Value>,
}

/// A retry waiting for its timer.
#[derive(Debug, Clone)]
pub(super) struct PendingRetry {
    /// The named job (None: an ad-hoc `submit` job, re-run from `def`).
    pub job: Option<String>,
    /// The definition of the failed attempt.
    pub def: Arc<crate::config::JobDef>,
    /// Its args.
    pub args: Option<Value>,
    /// The attempt number the retry will have.
    pub attempt: u32,
    /// For `submit`: the job object as sent.
    pub adhoc: Option<Value>,
}

/// Runs queued quietly by `fire_due` before workers are woken for them.
pub(super) const QUIET_WAKE_BATCH: usize = 32;

impl Daemon {
    /// Starts a run of the job `name`, following its overlap policy.
    pub fn start_run(&mut self, name: &str, new: NewRun) -> Result<RunId, Error> {
        let NewRun {
            trigger,
            args,
            scheduled_at,
            attempt,
            overlap,
            catch_up,
            preset_id,
            parent,
        } = new;
        if self.stopping() {
            return Err(Error::ShuttingDown);
        }
        let queue_room = {
            let s = self.pool.stats();
            s.queue_depth + self.gated_waiting() < s.queue_capacity
        };
        let backlog_cap = self.start.queue_capacity;
        let mut core = self.shared.core.lock();
        if core.is_held(name) {
            return Err(Error::Forbidden(super::define::HELD_RUN));
        }
        let entry = core
            .job_mut(name)
            .ok_or_else(|| Error::NoSuchJob(name.to_string()))?;
        let def = Arc::clone(&entry.def);
        let busy = entry.active > 0 || !entry.backlog.is_empty();
        let admission = rules::admit(
            overlap.unwrap_or(def.overlap),
            busy,
            entry.backlog.len(),
            backlog_cap,
            queue_room,
        );
        let refusal = match admission {
            Admission::Overlapping => Some(Error::AlreadyRunning {
                job: name.to_string(),
            }),
            Admission::BacklogFull => Some(Error::BacklogFull {
                job: name.to_string(),
                capacity: backlog_cap,
            }),
            Admission::QueueFull => Some(Error::QueueFull {
                capacity: Some(self.start.queue_capacity),
            }),
            Admission::Backlog | Admission::Dispatch => None,
        };
        if let Some(refusal) = refusal {
            if trigger == Trigger::Schedule {
                entry.skipped_total += 1;
            }
            return Err(refusal);
        }
        let id = match preset_id {
            Some(id) => core.create_run_as(id, Some(name), trigger, attempt, scheduled_at),
            None => core.create_run(Some(name), trigger, attempt, scheduled_at),
        };
        if catch_up {
            core.mark_catch_up(id);
        }
        if let Some(parent) = parent {
            core.set_parent(id, parent);
        }
        if admission == Admission::Backlog {
            if let Some(entry) = core.job_mut(name) {
                entry.backlog.push_back(id);
            }
            drop(core);
            self.shared.journal_run(id, args.as_ref(), None);
            let input = RunInput {
                def,
                args,
                adhoc: None,
            };
            self.inputs.insert(id, input);
            self.shared.publish_run_change(id);
            log::debug!("run {id} of job {name} waits for the running one (overlap = queue)");
        } else {
            drop(core);
            self.shared.journal_run(id, args.as_ref(), None);
            self.dispatch(id, def, args, None);
        }
        Ok(id)
    }

    /// Starts a run of an ad-hoc job (`submit`): no name, no overlap rule.
    pub fn start_adhoc(
        &mut self,
        def: Arc<crate::config::JobDef>,
        new: NewRun,
        adhoc: Option<Value>,
    ) -> Result<RunId, Error> {
        if self.stopping() {
            return Err(Error::ShuttingDown);
        }
        let s = self.pool.stats();
        if s.queue_depth + self.gated_waiting() >= s.queue_capacity {
            return Err(Error::QueueFull {
                capacity: Some(s.queue_capacity),
            });
        }
        let id = {
            let mut core = self.shared.core.lock();
            match new.preset_id {
                Some(id) => core.create_run_as(id, None, new.trigger, new.attempt, None),
                None => core.create_run(None, new.trigger, new.attempt, new.scheduled_at),
            }
        };
        self.shared
            .journal_run(id, new.args.as_ref(), adhoc.as_ref());
        self.dispatch(id, def, new.args, adhoc);
        Ok(id)
    }

    /// Hands a queued run to the pool.
    fn dispatch(
        &mut self,
        id: RunId,
        def: Arc<crate::config::JobDef>,
        args: Option<Value>,
        adhoc: Option<Value>,
    ) {
        let cancel = CancelToken::new();
        self.shared.core.lock().note_dispatched(id);
        self.shared.publish_run_change(id);
        self.cancels.insert(id, cancel.clone());
        let input = RunInput {
            def: Arc::clone(&def),
            args: args.clone(),
            adhoc,
        };
        self.inputs.insert(id, input);
        if let Some(gate) = def.concurrency.as_deref() {
            if !self.shared.board.gates.lock().admit(id, gate) {
                log::debug!("run {id}: waits for concurrency limit {gate}");
                return;
            }
        }
        self.submit_task(id, def, args, cancel);
    }

    /// Hands run `id` to the pool (it is counted against its concurrency
    /// limit, if any, already).
    fn submit_task(
        &mut self,
        id: RunId,
        def: Arc<crate::config::JobDef>,
        args: Option<Value>,
        cancel: CancelToken,
    ) {
        let task = RunTask {
            id,
            def,
            args,
            cancel,
            kill_grace: KILL_GRACE,
        };
        let queued = if self.quiet_dispatches.is_some() {
            self.pool
                .submit_quiet(task)
                .map(|()| self.count_quiet_dispatches(1))
        } else {
            self.pool.submit(task)
        };
        if let Err(e) = queued {
            let why = match e {
                SubmitError::Full(_) => "run queue is full",
                SubmitError::Stopped(_) => "worker pool is stopping",
            };
            log::warn!("run {id}: could not be queued: {why}");
            self.finish_here(id, Finish::with_error(RunState::Cancelled, why), true);
        }
    }

    /// Runs waiting for a concurrency limit (they count against
    /// `queue_capacity`).
    pub(super) fn gated_waiting(&self) -> usize {
        self.shared.board.gates.lock().waiting_total()
    }

    /// Starts the runs waiting for `gate` that fit under its limit now.
    pub(super) fn start_waiting(&mut self, gate: &str) {
        loop {
            let Some(id) = self.shared.board.gates.lock().next(gate) else {
                return;
            };
            let (Some(input), Some(cancel)) = (self.inputs.get(&id), self.cancels.get(&id)) else {
                // Gone meanwhile (cancelled): its place is free again.
                self.shared.board.gates.lock().finished(id);
                continue;
            };
            let (def, args, cancel) = (Arc::clone(&input.def), input.args.clone(), cancel.clone());
            self.submit_task(id, def, args, cancel);
        }
    }

    /// Counts `queued` runs `fire_due` queued without waking a worker;
    /// wakes them every [`QUIET_WAKE_BATCH`] runs, so that a long burst
    /// (hundreds of runs due at once, each journaled with `state_dir`)
    /// does not hold the first ones back until the last is queued.
    pub(super) fn count_quiet_dispatches(&mut self, queued: usize) {
        if let Some(n) = self.quiet_dispatches.as_mut() {
            *n += queued;
            if *n >= QUIET_WAKE_BATCH {
                self.pool.wake(*n);
                *n = 0;
            }
        }
    }

    /// Dispatches a run recovered from the journal as queued: into its
    /// job's backlog when `overlap = queue` and one is already active.
    pub(super) fn dispatch_recovered(
        &mut self,
        id: RunId,
        def: Arc<crate::config::JobDef>,
        args: Option<Value>,
        adhoc: Option<Value>,
    ) {
        let queue_behind = {
            let mut core = self.shared.core.lock();
            match core.run(id).and_then(|r| r.job.clone()) {
                Some(name) => match core.job_mut(&name) {
                    Some(entry) if def.overlap == Overlap::Queue && entry.active > 0 => {
                        entry.backlog.push_back(id);
                        true
                    }
                    _ => false,
                },
                None => false,
            }
        };
        if queue_behind {
            self.inputs.insert(id, RunInput { def, args, adhoc });
        } else {
            self.dispatch(id, def, args, adhoc);
        }
    }

    /// Finishes a run from the loop thread and posts the usual event.
    pub(super) fn finish_here(&mut self, id: RunId, finish: Finish, dispatched: bool) {
        let done = self.shared.core.lock().finish(id, finish, dispatched);
        if let Some(run) = done {
            self.shared.notify(LoopEvent::Finished(run));
        }
    }

    /// Bookkeeping after a run ended: forget its cancel handle and dispatch
    /// the next backlog run of its job.
    pub(super) fn on_run_finished(&mut self, run: &Run) {
        self.cancels.remove(&run.id);
        let input = self.inputs.remove(&run.id);
        self.notify_run_ended(run, input.as_ref().map(|i| &i.def));
        let freed = self.shared.board.gates.lock().finished(run.id);
        if let Some(gate) = freed {
            self.start_waiting(&gate);
        }
        if self.stopping() {
            return;
        }
        if let Some(input) = input {
            if run.state == RunState::Succeeded {
                self.after_success(run, &input.def);
            }
            self.after_failure(run, input);
        }
        let Some(name) = run.job.as_deref() else {
            return;
        };
        let next = {
            let mut core = self.shared.core.lock();
            match core.job_mut(name) {
                Some(entry) if entry.active == 0 => entry
                    .backlog
                    .pop_front()
                    .map(|id| (id, Arc::clone(&entry.def))),
                _ => None,
            }
        };
        if let Some((id, def)) = next {
            let (args, adhoc) = self
                .inputs
                .remove(&id)
                .map_or((None, None), |i| (i.args, i.adhoc));
            self.dispatch(id, def, args, adhoc);
        }
    }

    /// A failed or timed-out run: arm its retry, or after the last attempt
    /// start the `on_failure` job.
    fn after_failure(&mut self, run: &Run, input: RunInput) {
        let def = input.def;
        let what = run.job.as_deref().unwrap_or("(submitted)");
        match rules::after_end(run.state, run.attempt, &def) {
            AfterEnd::Done => {}
            AfterEnd::Retry { attempt, delay } => {
                log::info!(
                    "job {what}: run {} {}; attempt {attempt} of {} in {}",
                    run.id,
                    run.state.as_str(),
                    def.retries + 1,
                    humantime::format_duration(delay)
                );
                let token = self.scheduler.arm_retry(delay);
                let retry = PendingRetry {
                    job: run.job.clone(),
                    def,
                    args: input.args,
                    attempt,
                    adhoc: input.adhoc,
                };
                self.retries.insert(token, retry);
            }
            AfterEnd::OnFailure(target) => {
                let args = serde_json::json!({
                    "job": run.job,
                    "run_id": run.id.to_string(),
                    "state": run.state.as_str(),
                    "error": run.error,
                });
                let new = NewRun {
                    parent: Some(run.id),
                    ..NewRun::new(Trigger::OnFailure, Some(args))
                };
                match self.start_run(target, new) {
                    Ok(id) => log::info!(
                        "job {what}: run {} {}; started on_failure job {target} as run {id}",
                        run.id,
                        run.state.as_str()
                    ),
                    Err(e) => log::warn!(
                        "job {what}: run {} {}; on_failure job {target} not started: {e}",
                        run.id,
                        run.state.as_str(),
                    ),
                }
            }
        }
    }

    /// A retry's timer fired: start the next attempt.
    pub(super) fn fire_retry(&mut self, token: u64) {
        if let Some(delayed) = self.delayed.remove(&token) {
            return self.start_delayed(delayed);
        }
        let Some(retry) = self.retries.remove(&token) else {
            return;
        };
        let new = NewRun {
            attempt: retry.attempt,
            ..NewRun::new(Trigger::Retry, retry.args)
        };
        let what = retry.job.clone().unwrap_or_else(|| "(submitted)".into());
        let started = match &retry.job {
            Some(name) => self.start_run(name, new),
            None => self.start_adhoc(retry.def, new, retry.adhoc),
        };
        match started {
            Ok(id) => log::debug!("job {what}: attempt {} is run {id}", retry.attempt),
            Err(e) => log::warn!("job {what}: attempt {} not started: {e}", retry.attempt),
        }
    }

    /// Cancels a run that has not started yet. Returns false if it had.
    ///
    /// The state is checked and the run finished under one hold of the core
    /// lock, the one a worker takes to mark the run running: either the
    /// worker finds it cancelled and leaves it, or it started first and is
    /// left here, its cancel handle kept, for the caller to kill.
    pub(super) fn cancel_if_queued(&mut self, id: RunId, why: &str) -> bool {
        let done = {
            let mut core = self.shared.core.lock();
            let Some(run) = core.run(id) else {
                return false;
            };
            // A scheduled run (`jobs.run {delay | at}`) is neither in the
            // pool nor in a backlog; its timer finds it ended.
            let scheduled = run.state == RunState::Scheduled;
            if run.state != RunState::Queued && !scheduled {
                return false;
            }
            let in_backlog = run
                .job
                .as_deref()
                .and_then(|j| core.job(j))
                .is_some_and(|e| e.backlog.contains(&id));
            core.finish(
                id,
                Finish::with_error(RunState::Cancelled, why),
                !in_backlog && !scheduled,
            )
        };
        self.inputs.remove(&id);
        self.cancels.remove(&id);
        if let Some(run) = done {
            self.shared.notify(LoopEvent::Finished(run));
        }
        true
    }

    /// `runs.cancel`: drops a queued run at once; a running one (or one
    /// that started meanwhile) is killed. Either way the run ends soon; the
    /// caller waits for its end.
    pub fn cancel_run(&mut self, id: RunId) -> Result<(), Error> {
        let state = self
            .shared
            .core
            .lock()
            .run(id)
            .map(|r| r.state)
            .ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        match state {
            RunState::Queued | RunState::Scheduled
                if self.cancel_if_queued(id, "cancelled by request") => {}
            RunState::Queued | RunState::Running => {
                if let Some(token) = self.cancels.get(&id) {
                    log::info!("run {id}: cancel requested");
                    token.cancel_because("cancelled by request");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Arms (or disarms) the schedule of `name` from its current definition.
    pub(super) fn arm(&mut self, name: &str) {
        self.arm_after(name, time::now());
    }

    /// Like [`Daemon::arm`], for the first due time after `after`.
    pub(super) fn arm_after(&mut self, name: &str, after: Timestamp) {
        let mut core = self.shared.core.lock();
        let Some(entry) = core.job_mut(name) else {
            self.scheduler.disarm(name);
            return;
        };
        entry.next_run = match (&entry.def.schedule, entry.enabled) {
            (Some(schedule), true) if !matches!(self.phase, super::Phase::Draining { .. }) => {
                self.scheduler.arm(name, schedule, after, entry.def.jitter)
            }
            _ => {
                self.scheduler.disarm(name);
                None
            }
        };
    }

    /// Pauses (`true`) or resumes a job's schedule; with `state_dir` the
    /// change is journaled and synced before this returns (see
    /// [`super::persist`]).
    pub fn set_paused(&mut self, name: &str, paused: bool) -> Result<(), Error> {
        let changed = self
            .shared
            .core
            .lock()
            .set_paused(name, paused)
            .ok_or_else(|| Error::NoSuchJob(name.to_string()))?;
        self.arm(name);
        if changed {
            if !paused {
                self.skip_paused_due_times(name);
            }
            self.shared.journal_pause(name, paused);
        }
        self.log_pause(name, paused);
        Ok(())
    }

    /// Re-arms the schedules after a wall-clock jump (see
    /// [`crate::schedule::timers`]) and updates each job's `next_run`.
    pub(super) fn check_clock(&mut self, now: Instant) {
        let Some(jump) = self.scheduler.check_clock((time::now(), now)) else {
            return;
        };
        let ms = jump.skew.as_millis();
        let direction = if ms < 0 { "back" } else { "forward" };
        log::warn!(
            "wall clock jumped {direction} by {} ms; {} schedule(s) re-armed",
            ms.unsigned_abs(),
            jump.rearmed.len()
        );
        let mut core = self.shared.core.lock();
        for (job, at) in jump.rearmed {
            if let Some(entry) = core.job_mut(&job) {
                entry.next_run = Some(at);
            }
        }
    }
}
