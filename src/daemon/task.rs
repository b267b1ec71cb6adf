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
        let book = &shared.board.outputs;
        // The run's output as it is printed: readable by `runs.output`,
        // followed clients told, and with `output_dir` written to its
        // file, here on the worker (never on the loop).
        let live = book.open(id);
        let _forget = Forget { book, id };
        // The file is made at the first output: a run that prints
        // nothing costs no file (a herd of them, no syscalls).
        let sink = parking_lot::Mutex::new(Sink::Unopened);
        let on_output = |bytes: &[u8]| {
            if live.push(bytes) {
                shared.notify(LoopEvent::Output(id));
            }
            let Some(dir) = book.dir() else { return };
            let mut sink = sink.lock();
            if let Sink::Unopened = *sink {
                *sink = match dir.create(id) {
                    Ok(file) => Sink::Open(file),
                    Err(e) => {
                        log::warn!(
                            "run {id} of job {name}: output_dir: {e}; output kept in memory only"
                        );
                        Sink::Failed
                    }
                };
            }
            if let Sink::Open(file) = &mut *sink {
                file.write(bytes);
            }
        };
        let ctx = RunContext {
            run_id: id,
            job: &self.def,
            args: self.args.as_ref(),
            cancel: &self.cancel,
            kill_grace: self.kill_grace,
            file_pool: &env.file_pool,
            on_progress: &|p| shared.core.lock().set_progress(id, p),
            on_pid: &|pid| shared.core.lock().set_pid(id, pid),
            on_output: &on_output,
        };
        let finish = jobs::execute(&ctx);
        if live.read(0, 0).end == 0 && !finish.output.is_empty() {
            // Other kinds print nothing: their summary is their output.
            on_output(finish.output.as_bytes());
        }
        if let (Sink::Unopened, Some(dir)) = (sink.into_inner(), book.dir()) {
            // Printed nothing: a file of the same id left by an earlier
            // life of the daemon must not pass for this run's.
            dir.discard(id);
        }
        live.end(finish.state);
        let output_from = kept_from(&live);
        let finished = {
            let mut core = env.shared.core.lock();
            core.set_output_from(id, output_from);
            core.finish(id, finish, true)
        };
        let Some(run) = finished else {
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

/// Forgets a run's live output when its task ends, however it ends (a
/// job that panics included).
struct Forget<'a> {
    book: &'a crate::output::Book,
    id: crate::state::run::RunId,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.book.remove(self.id);
    }
}

/// Where the run object's `output` starts in all the run printed: the
/// live tail's start, past the (at most three) bytes of a character cut
/// at the tail's start, which the text of the tail skips.
fn kept_from(live: &crate::output::Live) -> u64 {
    let head = live.read(0, 4);
    if head.from == 0 {
        return 0;
    }
    let cut = head
        .bytes
        .iter()
        .take(3)
        .take_while(|b| (**b & 0xC0) == 0x80)
        .count();
    head.from + cut as u64
}

/// Opens `daemon.output_dir` (if set) into the board's output book: at
/// start, after the privilege drop, so the directory belongs to the user
/// tickd runs as.
pub(super) fn open_output_dir(
    board: &super::Board,
    start: &crate::config::StartSettings,
) -> std::io::Result<()> {
    let Some(dir) = &start.output_dir else {
        return Ok(());
    };
    let (per_run, total) = (start.output_max_bytes_per_run, start.output_dir_max_bytes);
    let opened = crate::output::OutputDir::open(dir, per_run, total)
        .map_err(|e| std::io::Error::new(e.kind(), format!("output_dir {}: {e}", dir.display())))?;
    log::info!(
        "output_dir: {} ({} bytes kept)",
        dir.display(),
        opened.total()
    );
    board.outputs.set_dir(opened);
    Ok(())
}

/// A run's file in `output_dir`, made at its first output.
enum Sink {
    Unopened,
    Open(crate::output::FileSink),
    Failed,
}
