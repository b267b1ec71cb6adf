//! A run as the worker pool sees it: mark running, execute, record the end.

use super::{LoopEvent, Shared};
use crate::config::JobDef;
use crate::jobs::{self, cancel::CancelToken, RunContext};
use crate::pool::Task;
use crate::state::run::{RunId, RunState};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// One run handed to a worker.
pub struct RunTask {
    /// The run's id (its record is in the shared core).
    pub id: RunId,
    /// The definition the run was started with.
    pub def: Arc<JobDef>,
    /// `args` of jobs.run, passed to the job.
    pub args: Option<Value>,
    /// Fired by runs.cancel and by shutdown.
    pub cancel: CancelToken,
    /// Time between SIGTERM and SIGKILL when killing.
    pub kill_grace: Duration,
}

/// What every run needs, given to the job pool once (see
/// [`crate::pool::Task::Env`]).
pub struct RunEnv {
    /// Where the records live and how to tell the loop.
    pub shared: Arc<Shared>,
    /// Threads for data-parallel work of `file.*` jobs.
    pub file_pool: rayon::ThreadPool,
}

impl Task for RunTask {
    fn id(&self) -> u64 {
        self.id
    }

    type Env = RunEnv;

    fn run(self, env: &RunEnv) {
        let id = self.id;
        let name = self.def.name.as_str();
        // Shutting down with state_dir: the run stays queued in the journal
        // and runs after the restart. The decision is the core's (see
        // `Core::hold_queued_runs`), taken under its lock in
        // `mark_running_journaled`, not here from the board's stopping flag:
        // a worker that read the flag as false could otherwise start the run
        // after the loop had counted none running and decided to exit.
        // Fail point `run.before_start`: `sleep(ms)` widens the window
        // between taking the run off the queue and starting it, where a
        // shutdown can begin.
        fail::fail_point!("run.before_start");
        if !env.shared.mark_running_journaled(id) {
            if env.shared.core.lock().holds_queued_runs() {
                log::debug!("run {id} of job {name} left queued for the restart");
            } else {
                log::debug!("run {id} of job {name} was cancelled before it started");
            }
            return;
        }
        log::debug!("run {id} of job {name} started");
        env.shared.publish_run_change(id);
        // Fail point `run.mid_job`: `panic` (a job that panics while
        // running) or `sleep(ms)` (a slow worker).
        fail::fail_point!("run.mid_job");
        let shared = &env.shared;
        let ctx = RunContext {
            run_id: id,
            job: &self.def,
            args: self.args.as_ref(),
            cancel: &self.cancel,
            kill_grace: self.kill_grace,
            file_pool: &env.file_pool,
            on_progress: &|p| shared.core.lock().set_progress(id, p),
            on_pid: &|pid| shared.core.lock().set_pid(id, pid),
        };
        let finish = jobs::execute(&ctx);
        let Some(run) = env.shared.core.lock().finish(id, finish, true) else {
            return;
        };
        let ms = run.duration_ms().unwrap_or(0);
        match run.state {
            RunState::Succeeded => log::info!("run {id} of job {name} succeeded in {ms} ms"),
            RunState::Cancelled => log::info!("run {id} of job {name} cancelled after {ms} ms"),
            state => log::warn!(
                "run {id} of job {name} {} after {ms} ms: {}",
                state.as_str(),
                run.error.as_deref().unwrap_or("no error message")
            ),
        }
        env.shared.notify(LoopEvent::Finished(run));
    }
}
