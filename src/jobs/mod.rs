//! Job kinds and the one trait they share.
//!
//! A worker hands a [`RunContext`] to [`execute`], which picks the executor
//! for the job's kind. Every executor turns whatever happens (bad input, a
//! missing program, a time-out, a cancel) into a [`Finish`]; none returns an
//! error or panics on purpose, so every run ends with a record.

pub mod cancel;
pub mod exec;
mod file_prune;
mod http;
/// A blocking HTTP agent with one time limit for the whole exchange (as
/// http runs use), following no redirect, for the notification webhooks.
pub(crate) use http::webhook_agent;
pub mod output;
mod sql;

use crate::config::{JobDef, JobKind};
use crate::state::run::RunId;
use crate::state::Finish;
use cancel::CancelToken;
use serde_json::Value;
use std::time::Duration;

/// Everything an executor may need about the run it executes.
pub struct RunContext<'a> {
    /// The run's id (passed to exec jobs as TICKD_RUN_ID).
    pub run_id: RunId,
    /// The job definition the run started with.
    pub job: &'a JobDef,
    /// `args` given to jobs.run, if any.
    pub args: Option<&'a Value>,
    /// Set by runs.cancel and shutdown.
    pub cancel: &'a CancelToken,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Threads for data-parallel work (`file.prune` walks), apart from the
    /// job workers; sized by `daemon.file_threads`.
    pub file_pool: &'a rayon::ThreadPool,
    /// Reports progress in 0.0..=1.0.
    pub on_progress: &'a (dyn Fn(f64) + Sync),
    /// Reports the pid of a child process.
    pub on_pid: &'a (dyn Fn(u32) + Sync),
    /// Takes output as the job prints it (exec: stdout and stderr, merged
    /// in the order read), on the worker thread (see `crate::output`).
    pub on_output: &'a (dyn Fn(&[u8]) + Sync),
}

/// A kind of job: how to execute one run of it.
pub trait Executor {
    /// Executes the run to its end.
    fn execute(&self, ctx: &RunContext<'_>) -> Finish;
}

/// Executes a run with the executor of its job's kind.
pub fn execute(ctx: &RunContext<'_>) -> Finish {
    match &*ctx.job.kind {
        JobKind::Exec(spec) => exec::ExecJob(spec).execute(ctx),
        JobKind::Http(spec) => http::HttpJob(spec).execute(ctx),
        JobKind::Sql(spec) => sql::SqlJob(spec).execute(ctx),
        JobKind::FilePrune(spec) => file_prune::FilePruneJob(spec).execute(ctx),
    }
}
