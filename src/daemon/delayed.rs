//! Runs asked for later: `jobs.run {name, delay}` / `{name, at}`. Such a
//! run is created at once, in the state `scheduled` with `scheduled_at`
//! its due time (so `runs.list`, `runs.get` and `runs.cancel` see it, and
//! with `state_dir` it is journaled), and a timer on the wheel starts it
//! then, under its id, by the job's rules at that moment (`overlap`, the
//! pool's room). A restart with `state_dir` arms it again; one due while
//! the daemon was down starts at once.

use super::dispatch::NewRun;
use super::{Daemon, Error, LoopEvent};
use crate::state::run::{RunId, RunState, Trigger};
use crate::state::Finish;
use crate::time::{self, Timestamp};
use serde_json::Value;

/// The longest delay (and the farthest `at`) accepted.
pub const MAX_DELAY_SECS: i64 = 366 * 24 * 3600;

/// A run waiting for its timer.
#[derive(Debug, Clone)]
pub(super) struct Delayed {
    /// The run.
    pub id: RunId,
    /// Its args.
    pub args: Option<Value>,
}

impl Daemon {
    /// `jobs.run {name, delay | at}`: creates the run, `scheduled` until
    /// `due`, and arms its timer.
    pub fn schedule_run(
        &mut self,
        name: &str,
        args: Option<Value>,
        due: Timestamp,
    ) -> Result<RunId, Error> {
        if self.stopping() {
            return Err(Error::ShuttingDown);
        }
        let id = {
            let mut core = self.shared.core.lock();
            if core.is_held(name) {
                return Err(Error::Forbidden(super::define::HELD_RUN));
            }
            if core.job(name).is_none() {
                return Err(Error::NoSuchJob(name.to_string()));
            }
            let id = core.create_run(Some(name), Trigger::Manual, 1, Some(due));
            core.set_scheduled(id);
            id
        };
        self.shared.journal_run(id, args.as_ref(), None);
        self.shared.publish_run_change(id);
        self.arm_delayed(id, args, due);
        log::info!("job {name}: run {id} scheduled for {}", time::rfc3339(&due));
        Ok(id)
    }

    /// Arms the timer of a scheduled run (at once if `due` is past).
    pub(super) fn arm_delayed(&mut self, id: RunId, args: Option<Value>, due: Timestamp) {
        let ms = time::millis_between(&time::now(), &due);
        let token = self
            .scheduler
            .arm_retry(std::time::Duration::from_millis(ms));
        self.delayed.insert(token, Delayed { id, args });
    }

    /// A scheduled run's timer fired: it starts under its id, or, if its
    /// job's rules refuse it now, ends `cancelled` saying why. Cancelled
    /// meanwhile: nothing.
    pub(super) fn start_delayed(&mut self, delayed: Delayed) {
        let Delayed { id, args } = delayed;
        let (job, due) = {
            let core = self.shared.core.lock();
            match core.run(id) {
                Some(r) if r.state == RunState::Scheduled => (r.job.clone(), r.scheduled_at),
                _ => return,
            }
        };
        let Some(job) = job else {
            return;
        };
        let new = NewRun {
            scheduled_at: due,
            preset_id: Some(id),
            ..NewRun::new(Trigger::Manual, args)
        };
        if let Err(e) = self.start_run(&job, new) {
            let why = format!("not started at its time: {e}");
            log::warn!("job {job}: scheduled run {id} {why}");
            let done = self.shared.core.lock().finish(
                id,
                Finish::with_error(RunState::Cancelled, why),
                false,
            );
            if let Some(run) = done {
                self.shared.notify(LoopEvent::Finished(run));
            }
        }
    }
}
