//! The daemon's in-memory state: jobs, their counters, and run records.
//!
//! One [`Core`] sits behind one mutex shared by the event loop and the
//! workers. Every operation on it is short (no I/O, no waiting), so the lock
//! is held for microseconds; a single lock keeps the invariants between a
//! job's counters and its runs simple to reason about.
//!
//! Invariants:
//! - a run is in `runs` from creation until it falls out of its job's
//!   history (or out of the orphan list, for runs of removed jobs);
//! - `JobEntry::active` counts the job's runs handed to the pool and not yet
//!   terminal; `backlog` holds its queued runs waiting for `overlap = queue`;
//! - a run reaches a terminal state exactly once ([`Core::finish`] refuses a
//!   second time), so counters never count a run twice.

mod api;
mod entry;
pub mod ids;
pub mod joins;
mod lock;
pub mod metrics;
mod pages;
pub mod run;
mod slot;

pub use api::{ApiJobs, Aside, HELD_REASON};
pub use entry::JobEntry;
pub use lock::{CoreGuard, CoreLock};
pub use slot::JobSlot;

use crate::config::JobDef;
use crate::time::{self, Timestamp};
use run::{Run, RunId, RunState, Trigger};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

/// Where a job's definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobSource {
    /// A `[[jobs]]` table of the config file.
    #[default]
    File,
    /// Defined at run time through the API (`jobs.put`).
    Api,
}

impl JobSource {
    /// The name on the wire (`"file"`, `"api"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobSource::File => "file",
            JobSource::Api => "api",
        }
    }
}

/// The job object's fields, borrowed from the core, in wire order.
#[derive(Debug, serde::Serialize)]
pub struct JobView<'a> {
    name: &'a str,
    kind: &'static str,
    source: JobSource,
    /// The text as written, or an array of them (see `Schedule`'s `Serialize`).
    schedule: Option<&'a crate::schedule::Schedule>,
    enabled: bool,
    paused: bool,
    running: bool,
    running_count: usize,
    queued_count: usize,
    next_run: Option<String>,
    last_run: Option<run::RunView<'a>>,
    runs_total: u64,
    failures_total: u64,
    skipped_total: u64,
    missed_total: u64,
    overlap: &'static str,
    catch_up: &'static str,
    tz: Option<&'a str>,
    timeout_ms: Option<u64>,
    /// Why an API job is not scheduled (`daemon.allow_job_api = false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<run::RunView<'a>>>,
}

impl JobView<'_> {
    /// True when the view would read differently a moment later with no
    /// change to the core: its latest run is running, so its
    /// `duration_ms` follows the clock.
    pub fn changes_with_time(&self) -> bool {
        self.last_run.as_ref().is_some_and(run::RunView::is_running)
    }
}

/// How a run ended, as the executor reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// The terminal state.
    pub state: RunState,
    /// Exit code, for exec runs that exited.
    pub exit_code: Option<i32>,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Output tail or summary.
    pub output: String,
    /// Kind-specific facts (HTTP status, rows changed, files deleted...),
    /// shown as the run object's `result`.
    pub result: Option<Value>,
}

impl Finish {
    /// A terminal state with only an error message.
    pub fn with_error(state: RunState, error: impl Into<String>) -> Self {
        Finish {
            state,
            exit_code: None,
            error: Some(error.into()),
            output: String::new(),
            result: None,
        }
    }
}

/// Jobs and runs. See the module docs for the invariants.
#[derive(Debug, Default)]
pub struct Core {
    /// By name; the key shares the name's text with nothing else, but is
    /// 16 bytes and one allocation (an `Arc<str>`).
    jobs: BTreeMap<Arc<str>, JobEntry>,
    runs: run::RunMap<Run>,
    last_id: RunId,
    /// How run ids are made: counted, or fleet ids in cluster mode.
    ids: ids::IdScheme,
    history_limit: usize,
    /// Finished runs whose job was removed by a reload, newest first.
    orphans: VecDeque<RunId>,
    /// Runs of ad-hoc jobs by terminal state, and durations, for
    /// `/metrics` (a job's own are in its [`RunLog`]).
    metrics: metrics::RunMetrics,
    /// Set when a shutdown keeps queued runs for the restart: from then on
    /// no run starts. Decided under the core lock, so a worker cannot start
    /// a run after the loop has counted the running ones and decided to exit.
    holding_queued: bool,
    /// Bumped by every mutable access through [`CoreGuard`]: equal
    /// generations mean an unchanged core.
    generation: u64,
    /// What is kept about the jobs defined at run time (`jobs.put`).
    api: ApiJobs,
    /// `after` joins: who waits for whom, and what each has gathered.
    joins: joins::Joins,
}

impl Core {
    /// An empty state keeping `history_limit` finished runs per job.
    pub fn new(history_limit: usize) -> Self {
        Core {
            history_limit,
            ..Core::default()
        }
    }

    /// Makes run ids fleet ids (cluster mode), from the next run on.
    pub fn set_id_scheme(&mut self, scheme: ids::IdScheme) {
        self.ids = scheme;
    }

    /// The change counter: see [`CoreLock`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changes the history bound (reload); trims on each job's next finish.
    pub fn set_history_limit(&mut self, n: usize) {
        self.history_limit = n;
    }

    /// A job by name.
    pub fn job(&self, name: &str) -> Option<&JobEntry> {
        self.jobs.get(name)
    }

    /// A job by name, mutable.
    pub fn job_mut(&mut self, name: &str) -> Option<&mut JobEntry> {
        self.jobs.get_mut(name)
    }

    /// Every job, mutable, in name order.
    pub fn jobs_mut(&mut self) -> impl Iterator<Item = (&Arc<str>, &mut JobEntry)> {
        self.jobs.iter_mut()
    }

    /// Every job's definition, in name order.
    pub fn defs(&self) -> impl Iterator<Item = &Arc<JobDef>> {
        self.jobs.values().map(|e| &e.def)
    }

    /// Names of all jobs, sorted.
    pub fn job_names(&self) -> Vec<String> {
        self.jobs.keys().map(|k| k.to_string()).collect()
    }

    /// How many jobs are configured (or submitted and still known).
    pub fn jobs_len(&self) -> usize {
        self.jobs.len()
    }

    /// Adds a job, or replaces its definition keeping its counters and history.
    pub fn upsert_job(&mut self, def: Arc<JobDef>) {
        match self.jobs.get_mut(def.name.as_str()) {
            Some(entry) => {
                if !entry.def.after.is_empty() || !def.after.is_empty() {
                    self.joins.unlink(&entry.def);
                    self.joins.link(&def);
                }
                entry.enabled = def.enabled && !entry.paused;
                entry.def = def;
            }
            None => {
                self.joins.link(&def);
                self.jobs
                    .insert(Arc::from(def.name.as_str()), JobEntry::new(def));
            }
        }
    }

    /// The jobs linked to `name` both ways (`upstream`, `downstream`), as
    /// `(job, via)` pairs; None for an unknown job.
    pub fn links_of(&self, name: &str) -> Option<(joins::Links, joins::Links)> {
        self.jobs.get(name).map(|e| self.joins.links_of(&e.def))
    }

    /// Run `id` of `job` succeeded: the `after` joins it completes (see
    /// [`joins::Joins::succeeded`]).
    pub fn join_succeeded(&mut self, job: &str, id: RunId) -> Vec<joins::Ready> {
        let jobs = &self.jobs;
        self.joins
            .succeeded(job, id, |j| jobs.get(j).map(|e| e.def.after.clone()))
    }

    /// [`Core::upsert_job`] for many jobs at once. Into an empty core (a
    /// start) the map is built in one pass from the sorted names, so its
    /// nodes are full: a third less memory than one insert at a time.
    pub fn add_jobs(&mut self, defs: impl IntoIterator<Item = Arc<JobDef>>) {
        if !self.jobs.is_empty() {
            for def in defs {
                self.upsert_job(def);
            }
            return;
        }
        let joins = &mut self.joins;
        self.jobs = defs
            .into_iter()
            .map(|def| {
                joins.link(&def);
                (Arc::from(def.name.as_str()), JobEntry::new(def))
            })
            .collect();
    }

    /// Pauses (`true`) or resumes a job; `None` for an unknown job, else
    /// whether that changed anything. A resumed job is scheduled only if
    /// its file enables it: a pause never overrides `enabled = false`.
    pub fn set_paused(&mut self, name: &str, paused: bool) -> Option<bool> {
        let entry = self.jobs.get_mut(name)?;
        let changed = entry.paused != paused;
        entry.paused = paused;
        entry.enabled = api::effective_enabled(entry, self.api.held());
        Some(changed)
    }

    /// The names of the paused jobs.
    pub fn paused_jobs(&self) -> impl Iterator<Item = &str> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.paused)
            .map(|(name, _)| &**name)
    }

    /// The run counters of `/metrics` that are not a job's: ad-hoc runs
    /// and the total of every run.
    pub fn metrics(&self) -> &metrics::RunMetrics {
        &self.metrics
    }

    /// The `/metrics` counters of up to `max` jobs after the name `after`,
    /// in name order (zeros for a job that never ran), and whether more
    /// jobs follow.
    pub fn metrics_slice(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<(String, metrics::JobMetrics)>, bool) {
        let start = after.map_or(Unbounded, Excluded);
        let mut jobs = self.jobs.range::<str, _>((start, Unbounded));
        let taken = jobs
            .by_ref()
            .take(max)
            .map(|(name, e)| (name.to_string(), e.metrics().cloned().unwrap_or_default()))
            .collect();
        (taken, jobs.next().is_some())
    }

    /// Removes a job. Its finished runs and its `/metrics` series are
    /// forgotten; its queued backlog is returned so the caller can cancel
    /// it; runs in flight finish as orphans (not counted in the metrics).
    pub fn remove_job(&mut self, name: &str) -> Vec<RunId> {
        let Some(entry) = self.jobs.remove(name) else {
            return Vec::new();
        };
        self.joins.unlink(&entry.def);
        for id in entry.history() {
            self.runs.remove(&id);
        }
        entry.backlog.into_iter().collect()
    }

    /// Creates a queued run and returns its id.
    pub fn create_run(
        &mut self,
        job: Option<&str>,
        trigger: Trigger,
        attempt: u32,
        scheduled_at: Option<Timestamp>,
    ) -> RunId {
        let id = ids::take(self.ids, &mut self.last_id);
        let mut run = Run::queued(id, job.map(str::to_string), trigger, attempt);
        run.scheduled_at = scheduled_at;
        self.runs.insert(id, run);
        if let Some(entry) = job.and_then(|j| self.jobs.get_mut(j)) {
            entry.log_mut().latest = Some(id);
        }
        id
    }

    /// Creates a queued run under a given id (a run for any node, whose
    /// id another node chose; fleet ids never collide) and returns it.
    pub fn create_run_as(
        &mut self,
        id: RunId,
        job: Option<&str>,
        trigger: Trigger,
        attempt: u32,
        scheduled_at: Option<Timestamp>,
    ) -> RunId {
        self.last_id = self.last_id.max(id);
        let mut run = Run::queued(id, job.map(str::to_string), trigger, attempt);
        run.scheduled_at = scheduled_at;
        self.runs.insert(id, run);
        if let Some(entry) = job.and_then(|j| self.jobs.get_mut(j)) {
            entry.log_mut().latest = Some(id);
        }
        id
    }

    /// Takes the next run id without creating a run (a run for any node:
    /// the node that takes it creates the run under this id).
    pub fn take_run_id(&mut self) -> RunId {
        ids::take(self.ids, &mut self.last_id)
    }

    /// A run by id.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    /// Makes run `id` (just created) wait for its time: `scheduled`.
    pub fn set_scheduled(&mut self, id: RunId) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.state = RunState::Scheduled;
        }
    }

    /// Notes which run triggered run `id`.
    pub fn set_parent(&mut self, id: RunId, parent: RunId) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.parent_run_id = Some(parent);
        }
    }

    /// Marks a run as a catch-up of a missed due time.
    pub fn mark_catch_up(&mut self, id: RunId) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.catch_up = true;
        }
    }

    /// Up to `limit` runs, newest (highest id) first, optionally only those
    /// of job `job` and in state `state`. Runs of ad-hoc jobs have no job.
    pub fn runs_newest_first(
        &self,
        job: Option<&str>,
        state: Option<RunState>,
        limit: usize,
    ) -> Vec<&Run> {
        self.runs_before(job, state, None, limit)
    }

    /// Whether any kept run belongs to `job` (a removed job's runs stay
    /// visible until they fall out of the history).
    pub fn has_runs_of(&self, job: &str) -> bool {
        self.runs.values().any(|r| r.job.as_deref() == Some(job))
    }

    /// Stops runs from starting: [`Core::mark_running`] refuses from now
    /// on and queued runs stay queued (a shutdown that keeps them for the
    /// restart).
    pub fn hold_queued_runs(&mut self) {
        self.holding_queued = true;
    }

    /// Whether [`Core::hold_queued_runs`] was called.
    pub fn holds_queued_runs(&self) -> bool {
        self.holding_queued
    }

    /// Marks a queued run as running. Returns false (and changes nothing)
    /// when the run was cancelled while it waited, or when queued runs are
    /// held for a restart.
    pub fn mark_running(&mut self, id: RunId) -> bool {
        if self.holding_queued {
            return false;
        }
        let Some(run) = self.runs.get_mut(&id) else {
            return false;
        };
        if run.state != RunState::Queued {
            return false;
        }
        run.state = RunState::Running;
        run.started_at = Some(time::now());
        if let Some(entry) = run.job.as_deref().and_then(|j| self.jobs.get_mut(j)) {
            entry.running += 1;
        }
        true
    }

    /// Records the child's pid of a running exec run.
    pub fn set_pid(&mut self, id: RunId, pid: u32) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.pid = Some(pid);
        }
    }

    /// Records progress reported by a running job.
    pub fn set_progress(&mut self, id: RunId, progress: f64) {
        if let Some(run) = self.runs.get_mut(&id) {
            if run.state == RunState::Running {
                run.progress = Some(progress.clamp(0.0, 1.0));
            }
        }
    }

    /// Where run `id`'s kept output starts in all it printed (set by its
    /// worker just before it finishes the run).
    pub fn set_output_from(&mut self, id: RunId, from: u64) {
        if let Some(run) = self.runs.get_mut(&id) {
            run.output_from = from;
        }
    }

    /// Counts a dispatched run in its job's `active`.
    pub fn note_dispatched(&mut self, id: RunId) {
        if let Some(entry) = self.job_of_mut(id) {
            entry.active += 1;
        }
    }

    /// Moves a run to a terminal state, updates its job's counters and
    /// history, and returns a snapshot of the final record. Returns None if
    /// the run is unknown or already terminal (it is never finished twice).
    pub fn finish(&mut self, id: RunId, finish: Finish, dispatched: bool) -> Option<Run> {
        let run = self.runs.get_mut(&id)?;
        if run.state.is_terminal() {
            return None;
        }
        let was_running = run.state == RunState::Running;
        run.state = finish.state;
        run.finished_at = Some(time::now());
        run.exit_code = finish.exit_code;
        run.error = finish.error;
        run.output = finish.output;
        run.result = finish.result;
        run.pid = None;
        let snapshot = run.clone();
        let seconds = snapshot.duration_ms().map(|ms| ms as f64 / 1000.0);
        // A run of a job a reload removed finishes uncounted: its series
        // went with the job (see `remove_job`).
        match snapshot.job.as_deref() {
            None => self.metrics.record_submitted(finish.state, seconds),
            Some(job) if self.jobs.contains_key(job) => self.metrics.record(finish.state, seconds),
            Some(_) => {}
        }
        let limit = self.history_limit;
        let evicted: Vec<RunId> = match snapshot.job.as_deref().and_then(|j| self.jobs.get_mut(j)) {
            Some(entry) => {
                if dispatched {
                    entry.active = entry.active.saturating_sub(1);
                }
                if was_running {
                    entry.running = entry.running.saturating_sub(1);
                }
                entry.backlog.retain(|&r| r != id);
                let log = entry.log_mut();
                log.metrics.record(finish.state, seconds);
                if finish.state == RunState::Succeeded {
                    // The run's own end, as its record shows it (and as a
                    // restart reads it back from the journal).
                    log.metrics.last_success = snapshot
                        .finished_at
                        .map(|t| t.as_millisecond() as f64 / 1000.0);
                }
                log.runs_total += 1;
                if finish.state.is_failure() {
                    log.failures_total += 1;
                }
                log.history.push_front(id);
                let excess = log.history.len().saturating_sub(limit);
                (0..excess).filter_map(|_| log.history.pop_back()).collect()
            }
            None => {
                self.orphans.push_front(id);
                let excess = self.orphans.len().saturating_sub(limit);
                (0..excess)
                    .filter_map(|_| self.orphans.pop_back())
                    .collect()
            }
        };
        for old in evicted {
            self.runs.remove(&old);
        }
        Some(snapshot)
    }

    fn job_of_mut(&mut self, id: RunId) -> Option<&mut JobEntry> {
        let name = self.runs.get(&id)?.job.as_deref()?;
        self.jobs.get_mut(name)
    }

    /// All runs not yet terminal, oldest first.
    pub fn unfinished_runs(&self) -> Vec<RunId> {
        let mut ids: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| !r.state.is_terminal())
            .map(|r| r.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The job object of the protocol; with `history`, also its finished runs.
    pub fn job_view(&self, name: &str, with_history: bool) -> Option<JobView<'_>> {
        let entry = self.jobs.get(name)?;
        let def = &entry.def;
        Some(JobView {
            name: &def.name,
            kind: def.kind.name(),
            source: entry.source,
            schedule: def.schedule.as_ref(),
            enabled: entry.enabled,
            paused: entry.paused,
            running: entry.running > 0,
            running_count: entry.running,
            queued_count: entry.backlog.len() + entry.active.saturating_sub(entry.running),
            next_run: entry.next_run.as_ref().map(time::rfc3339),
            last_run: entry
                .latest()
                .and_then(|id| self.runs.get(&id))
                .map(Run::view),
            runs_total: entry.runs_total(),
            failures_total: entry.failures_total(),
            skipped_total: entry.skipped_total,
            missed_total: entry.missed_total,
            overlap: def.overlap.as_str(),
            catch_up: def.catch_up.as_str(),
            tz: def.tz.as_deref(),
            timeout_ms: def
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            held: (self.api.held() && entry.source == JobSource::Api).then_some(HELD_REASON),
            history: with_history.then(|| {
                entry
                    .history()
                    .filter_map(|id| self.runs.get(&id))
                    .map(Run::view)
                    .collect()
            }),
        })
    }

    /// The job object as a JSON value.
    pub fn job_json(&self, name: &str, with_history: bool) -> Option<Value> {
        self.job_view(name, with_history)
            .and_then(|v| serde_json::to_value(v).ok())
    }

    /// Every job object, sorted by name.
    pub fn job_views(&self) -> Vec<JobView<'_>> {
        self.jobs
            .keys()
            .filter_map(|name| self.job_view(name, false))
            .collect()
    }

    /// Every run record, in no particular order (journal compaction).
    pub fn all_runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// Every job's name and the due time its schedule last fired for.
    pub fn last_scheduled(&self) -> impl Iterator<Item = (&str, Timestamp)> {
        self.jobs
            .iter()
            .filter_map(|(name, e)| e.last_scheduled.map(|at| (&**name, at)))
    }

    /// The jobs named after `after` (all of them for None), in name order,
    /// with what the journal keeps of each: the due time its schedule last
    /// fired for, and whether it is paused (journal compaction, a piece at
    /// a time).
    pub fn job_marks_after<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, Option<Timestamp>, bool)> + 'a {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.jobs
            .range::<str, _>((from, Bound::Unbounded))
            .map(|(name, e)| (&**name, e.last_scheduled, e.paused))
    }

    /// Puts back a run recovered from the journal. Call in ascending id
    /// order. A terminal run joins its job's history (or the orphans) and
    /// its counters; a queued one waits for the caller to dispatch it.
    pub fn restore_run(&mut self, run: Run) {
        let id = run.id;
        self.last_id = self.last_id.max(id);
        let terminal = run.state.is_terminal();
        let failure = run.state.is_failure();
        let job = run.job.clone();
        // The journal's successes tell when the job last succeeded, so the
        // metric does not start over at a restart.
        let succeeded_at = (run.state == RunState::Succeeded)
            .then_some(run.finished_at)
            .flatten()
            .map(|t| t.as_millisecond() as f64 / 1000.0);
        self.runs.insert(id, run);
        if !terminal {
            if let Some(entry) = job.as_deref().and_then(|j| self.jobs.get_mut(j)) {
                entry.log_mut().latest = Some(id);
            }
            return;
        }
        let limit = self.history_limit;
        let list = match job.as_deref().and_then(|j| self.jobs.get_mut(j)) {
            Some(entry) => {
                let log = entry.log_mut();
                log.runs_total += 1;
                if failure {
                    log.failures_total += 1;
                }
                if let Some(at) = succeeded_at {
                    let last = &mut log.metrics.last_success;
                    *last = Some(last.map_or(at, |l: f64| l.max(at)));
                }
                log.latest = Some(id);
                &mut log.history
            }
            None => &mut self.orphans,
        };
        list.push_front(id);
        let evicted: Vec<RunId> = (0..list.len().saturating_sub(limit))
            .filter_map(|_| list.pop_back())
            .collect();
        for old in evicted {
            self.runs.remove(&old);
        }
    }

    /// Makes new run ids start after `id` (ids of forgotten runs are never
    /// reused across restarts).
    pub fn reserve_ids_through(&mut self, id: RunId) {
        self.last_id = self.last_id.max(id);
    }

    /// Number of run records held in memory (for tests and status).
    pub fn runs_len(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests;
