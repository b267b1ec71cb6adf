//! A job as the core tracks it: [`JobEntry`], kept small because a daemon
//! may hold a million, and the [`RunLog`] it gets at its first run.

use super::metrics;
use super::run::RunId;
use super::JobSource;
use crate::config::JobDef;
use crate::time::Timestamp;
use std::collections::VecDeque;
use std::sync::Arc;

/// A job as the daemon tracks it.
///
/// Kept small, since a daemon may hold a million: what only a job that has
/// run needs (its history, counters and `/metrics` series) is in a
/// [`RunLog`] allocated at its first run.
#[derive(Debug)]
pub struct JobEntry {
    /// The current definition; runs in flight keep the one they started with.
    pub def: Arc<JobDef>,
    /// Where the definition comes from.
    pub source: JobSource,
    /// Whether the schedule runs: the file enables the job and it is not
    /// paused (kept equal to `def.enabled && !paused` by the core). False:
    /// not scheduled, still runnable by hand.
    pub enabled: bool,
    /// Paused by `jobs.pause`: an overlay on the file's `enabled`, lifted
    /// only by `jobs.resume` (kept across reloads, and across restarts
    /// with `state_dir`).
    pub paused: bool,
    /// Runs handed to the pool and not yet finished.
    pub active: usize,
    /// Runs a worker is executing now.
    pub running: usize,
    /// Queued runs held back by `overlap = queue`, oldest first.
    pub backlog: VecDeque<RunId>,
    /// History and counters, from the job's first run on.
    pub(super) log: Option<Box<RunLog>>,
    /// Scheduled runs skipped (overlap = skip, queue full, shutting down).
    pub skipped_total: u64,
    /// When the schedule fires next (None: no schedule, paused, or stopping).
    pub next_run: Option<Timestamp>,
    /// The due time the schedule last fired for (kept across restarts with
    /// `state_dir`, so downtime can be measured).
    pub last_scheduled: Option<Timestamp>,
    /// Scheduled runs that were due while the daemon was down.
    pub missed_total: u64,
}

/// What a job that has run keeps: its runs, counters and `/metrics` series.
#[derive(Debug, Default)]
pub(super) struct RunLog {
    /// Finished runs, newest first, at most `history` of them.
    pub(super) history: VecDeque<RunId>,
    /// The newest run of the job, whatever its state.
    pub(super) latest: Option<RunId>,
    /// Runs that reached a terminal state.
    pub(super) runs_total: u64,
    /// Runs that ended failed or timed out.
    pub(super) failures_total: u64,
    /// The `/metrics` series (this process's runs only, unlike the totals,
    /// which count the runs restored from `state_dir` too).
    pub(super) metrics: metrics::JobMetrics,
}

impl JobEntry {
    /// A new entry for a job definition.
    pub fn new(def: Arc<JobDef>) -> Self {
        JobEntry {
            enabled: def.enabled,
            source: JobSource::File,
            paused: false,
            def,
            active: 0,
            running: 0,
            backlog: VecDeque::new(),
            log: None,
            skipped_total: 0,
            next_run: None,
            last_scheduled: None,
            missed_total: 0,
        }
    }

    /// Finished runs, newest first, at most `history` of them.
    pub fn history(&self) -> impl Iterator<Item = RunId> + '_ {
        self.log.iter().flat_map(|l| l.history.iter().copied())
    }

    /// The newest run of the job, whatever its state.
    pub fn latest(&self) -> Option<RunId> {
        self.log.as_ref().and_then(|l| l.latest)
    }

    /// Runs that reached a terminal state.
    pub fn runs_total(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.runs_total)
    }

    /// Runs that ended failed or timed out.
    pub fn failures_total(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.failures_total)
    }

    /// The job's `/metrics` counters, if it has run.
    pub fn metrics(&self) -> Option<&metrics::JobMetrics> {
        self.log.as_ref().map(|l| &l.metrics)
    }

    pub(super) fn log_mut(&mut self) -> &mut RunLog {
        self.log.get_or_insert_with(Box::default)
    }
}
