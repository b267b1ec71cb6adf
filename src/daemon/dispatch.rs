//! Starting, queueing, cancelling and finishing runs, and firing schedules.
//!
//! The rules live here, on the loop thread:
//! - `overlap = skip`: a run asked for while one is active is refused
//!   (-32004 for a request; a logged, counted skip for a schedule);
//! - `overlap = queue`: it waits in the job's backlog and is dispatched when
//!   the active run finishes, one at a time;
//! - `overlap = allow`: it goes to the pool at once;
//! - a full pool queue refuses the run before any record is created, so an
//!   "overloaded" answer never leaves a phantom run behind.

use super::task::RunTask;
use super::{Daemon, LoopEvent, KILL_GRACE};
use crate::config::Overlap;
use crate::jobs::cancel::CancelToken;
use crate::pool::SubmitError;
use crate::protocol::{ErrorCode, RpcError};
use crate::state::run::{Run, RunId, RunState, Trigger};
use crate::state::Finish;
use crate::time::{self, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

impl Daemon {
    /// Starts a run of the job `name`, following its overlap policy.
    pub fn start_run(
        &mut self,
        name: &str,
        trigger: Trigger,
        args: Option<Value>,
        scheduled_at: Option<Timestamp>,
    ) -> Result<RunId, RpcError> {
        if self.stopping() {
            return Err(RpcError::new(
                ErrorCode::Overloaded,
                "daemon is shutting down; no new runs",
            ));
        }
        let queue_room = {
            let s = self.pool.stats();
            s.queue_depth < s.queue_capacity
        };
        let backlog_cap = self.config.daemon.queue_capacity;
        let mut core = self.shared.core.lock();
        let entry = core.job_mut(name).ok_or_else(|| RpcError::no_job(name))?;
        let def = Arc::clone(&entry.def);
        let busy = entry.active > 0 || !entry.backlog.is_empty();
        match (def.overlap, busy) {
            (Overlap::Skip, true) => {
                if trigger == Trigger::Schedule {
                    entry.skipped_total += 1;
                }
                Err(RpcError::new(
                    ErrorCode::Conflict,
                    format!("job {name} is already running (overlap = skip)"),
                ))
            }
            (Overlap::Queue, true) => {
                if entry.backlog.len() >= backlog_cap {
                    if trigger == Trigger::Schedule {
                        entry.skipped_total += 1;
                    }
                    return Err(RpcError::new(
                        ErrorCode::Overloaded,
                        format!("job {name}: backlog full ({backlog_cap} runs waiting)"),
                    ));
                }
                let id = core.create_run(Some(name), trigger, 1, scheduled_at);
                if let Some(entry) = core.job_mut(name) {
                    entry.backlog.push_back(id);
                }
                self.backlog_args.insert(id, args);
                log::debug!("run {id} of job {name} waits for the running one (overlap = queue)");
                Ok(id)
            }
            _ => {
                if !queue_room {
                    if trigger == Trigger::Schedule {
                        entry.skipped_total += 1;
                    }
                    return Err(RpcError::new(
                        ErrorCode::Overloaded,
                        format!(
                            "run queue is full ({} runs waiting)",
                            self.config.daemon.queue_capacity
                        ),
                    ));
                }
                let id = core.create_run(Some(name), trigger, 1, scheduled_at);
                drop(core);
                self.dispatch(id, def, args);
                Ok(id)
            }
        }
    }

    /// Hands a queued run to the pool.
    fn dispatch(&mut self, id: RunId, def: Arc<crate::config::JobDef>, args: Option<Value>) {
        let cancel = CancelToken::new();
        self.shared.core.lock().note_dispatched(id);
        self.cancels.insert(id, cancel.clone());
        let task = RunTask {
            id,
            def,
            args,
            cancel,
            shared: Arc::clone(&self.shared),
            kill_grace: KILL_GRACE,
            file_pool: Arc::clone(&self.file_pool),
        };
        if let Err(e) = self.pool.submit(task) {
            let why = match e {
                SubmitError::Full(_) => "run queue is full",
                SubmitError::Stopped(_) => "worker pool is stopping",
            };
            log::warn!("run {id}: could not be queued: {why}");
            self.finish_here(id, Finish::with_error(RunState::Cancelled, why), true);
        }
    }

    /// Finishes a run from the loop thread and posts the usual event.
    fn finish_here(&mut self, id: RunId, finish: Finish, dispatched: bool) {
        let done = self.shared.core.lock().finish(id, finish, dispatched);
        if let Some(run) = done {
            self.shared.notify(LoopEvent::Finished(run));
        }
    }

    /// Bookkeeping after a run ended: forget its cancel handle and dispatch
    /// the next backlog run of its job.
    pub(super) fn on_run_finished(&mut self, run: &Run) {
        self.cancels.remove(&run.id);
        self.backlog_args.remove(&run.id);
        let Some(name) = run.job.as_deref() else {
            return;
        };
        if self.stopping() {
            return;
        }
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
            let args = self.backlog_args.remove(&id).flatten();
            self.dispatch(id, def, args);
        }
    }

    /// Cancels a run that has not started yet. Returns false if it had.
    pub(super) fn cancel_if_queued(&mut self, id: RunId, why: &str) -> bool {
        let (queued, in_backlog) = {
            let core = self.shared.core.lock();
            let Some(run) = core.run(id) else {
                return false;
            };
            let in_backlog = run
                .job
                .as_deref()
                .and_then(|j| core.job(j))
                .is_some_and(|e| e.backlog.contains(&id));
            (run.state == RunState::Queued, in_backlog)
        };
        if !queued {
            return false;
        }
        self.backlog_args.remove(&id);
        self.cancels.remove(&id);
        self.finish_here(
            id,
            Finish::with_error(RunState::Cancelled, why),
            !in_backlog,
        );
        true
    }

    /// `runs.cancel`: drops a queued run at once; kills a running one and
    /// answers when it has ended.
    pub fn cancel_run(&mut self, id: RunId) -> Result<super::Reply, RpcError> {
        let state = self
            .shared
            .core
            .lock()
            .run(id)
            .map(|r| r.state)
            .ok_or_else(|| RpcError::no_run(&id.to_string()))?;
        match state {
            RunState::Queued => {
                self.cancel_if_queued(id, "cancelled by request");
                Ok(super::Reply::WaitRun(id))
            }
            RunState::Running => {
                if let Some(token) = self.cancels.get(&id) {
                    log::info!("run {id}: cancel requested");
                    token.cancel_because("cancelled by request");
                }
                Ok(super::Reply::WaitRun(id))
            }
            _ => Ok(super::Reply::WaitRun(id)),
        }
    }

    /// Arms (or disarms) the schedule of `name` from its current definition.
    pub(super) fn arm(&mut self, name: &str) {
        let mut core = self.shared.core.lock();
        let Some(entry) = core.job_mut(name) else {
            self.scheduler.disarm(name);
            return;
        };
        entry.next_run = match (&entry.def.schedule, entry.enabled) {
            (Some(schedule), true) if !matches!(self.phase, super::Phase::Draining { .. }) => {
                self.scheduler.arm(name, schedule, time::now())
            }
            _ => {
                self.scheduler.disarm(name);
                None
            }
        };
    }

    /// Pauses or resumes a job's schedule.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), RpcError> {
        {
            let mut core = self.shared.core.lock();
            let entry = core.job_mut(name).ok_or_else(|| RpcError::no_job(name))?;
            entry.enabled = enabled;
        }
        self.arm(name);
        log::info!("job {name} {}", if enabled { "resumed" } else { "paused" });
        Ok(())
    }

    /// Starts the runs whose schedule is due at `now`, re-arming each
    /// schedule from its due time so that run time never shifts the next one.
    pub(super) fn fire_due(&mut self, now: Instant) {
        for due in self.scheduler.take_due(now) {
            let schedule = {
                let core = self.shared.core.lock();
                match core.job(&due.job) {
                    Some(e) if e.enabled => e.def.schedule.clone(),
                    _ => None,
                }
            };
            let Some(schedule) = schedule else {
                continue;
            };
            // Re-arm from the later of the due time and now: on time this is
            // the due time (no drift); after a stall, missed slots are skipped
            // instead of fired in a burst.
            let from = due.at.max(time::now());
            let next = self.scheduler.arm(&due.job, &schedule, from);
            if let Some(entry) = self.shared.core.lock().job_mut(&due.job) {
                entry.next_run = next;
            }
            match self.start_run(&due.job, Trigger::Schedule, None, Some(due.at)) {
                Ok(id) => log::debug!("job {}: scheduled run {id} queued", due.job),
                Err(e) if e.code == ErrorCode::Conflict => {
                    log::info!("job {}: scheduled run skipped: {}", due.job, e.message)
                }
                Err(e) => log::warn!("job {}: scheduled run skipped: {}", due.job, e.message),
            }
        }
    }
}
