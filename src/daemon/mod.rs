//! The daemon's logic on the event-loop thread: jobs, runs, schedules,
//! reload and shutdown, independent of sockets and of any protocol.
//!
//! The layers above own the sockets and the wire: they call into
//! [`Daemon`] for every command (requests that change schedules or runs;
//! queries are answered on the request pool from [`Shared`]) and every
//! timer or worker event. Its operations are typed: they return what they
//! did ([`ReloadReport`], a run id) or an [`Error`] saying, in the
//! daemon's own words, why not. Workers never call
//! into the daemon directly: they update the shared [`Core`] under its lock
//! and post a [`LoopEvent`] through [`Shared::notify`], which wakes the loop
//! through a `mio::Waker`. All decisions (what to dispatch next, whom to
//! answer) are taken here, on one thread, so they need no further locking.

mod alerting;
mod board;
mod chains;
mod cluster;
mod compaction;
pub mod counters;
mod define;
mod delayed;
pub mod dispatch;
mod error;
pub mod faults;
pub mod fire;
pub mod gates;
pub mod persist;
mod reload;
mod reload_apply;
#[cfg(test)]
mod reload_tests;
pub mod rules;
mod skips;
pub mod snapshot;
mod state_health;
pub mod task;
pub mod wake;

use crate::config::{Config, StartSettings};
use crate::jobs::cancel::CancelToken;
use crate::pool::{LostTaskHook, PoolConfig, SlicePolicy, WorkerPool};
use crate::schedule::Scheduler;
use crate::state::run::{Run, RunId, RunMap, RunState};
use crate::state::{Core, CoreLock, Finish};
use crate::time::{self, Timestamp};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use task::RunTask;

pub use board::{health_of, Board, ConfigInfo};
pub use define::{Put, JOB_API_OFF};
pub use delayed::MAX_DELAY_SECS;
pub use error::Error;
pub use reload::{diff_jobs, JobsDiff, ReloadReport};

/// How long a killed job gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How often a drain that waits only for workers to leave their tasks
/// looks again (a worker refused a run's start tells nobody).
const DRAIN_RECHECK: Duration = Duration::from_millis(10);

/// Something the loop must react to, posted from a worker (or the loop itself).
#[derive(Debug)]
pub enum LoopEvent {
    /// A run reached a terminal state; the snapshot is its final record.
    Finished(Run),
    /// A run was queued or started; posted only while someone subscribes.
    RunChanged(Run),
    /// The journal thread's news: records made durable (answers waiting
    /// on them can go), failed writes, compactions (see
    /// [`crate::persist::GroupCommit`]).
    Journal(crate::persist::Report),
    /// The reload thread has read and checked the file (see
    /// [`Daemon::on_reload_prepared`]).
    Reload(reload::Prepared),
    /// News from the cluster threads (cluster mode).
    Cluster(crate::cluster::Notice),
    /// A followed run printed something (posted once until the loop reads
    /// it, see [`crate::output::Live::push`]).
    Output(RunId),
}

/// State shared between the loop and the workers.
pub struct Shared {
    /// Jobs and runs.
    pub core: CoreLock,
    /// Everything else a query may need.
    pub board: Board,
    events: Sender<LoopEvent>,
    /// Whether a post must wake the loop, and its waker.
    wake: Arc<wake::LoopWake>,
    /// The `state_dir` journal and its thread, when one is configured.
    pub journal: Option<crate::persist::GroupCommit>,
    /// The link to Redis, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// Creates the shared state; `events` and `waker` lead to the loop.
    /// With a journal, starts its thread, which posts
    /// [`LoopEvent::Journal`].
    pub fn new(
        core: Core,
        board: Board,
        events: Sender<LoopEvent>,
        waker: Arc<mio::Waker>,
        journal: Option<crate::persist::Store>,
        cluster: Option<(crate::config::ClusterConfig, usize)>,
    ) -> std::io::Result<Self> {
        let wake = Arc::new(wake::LoopWake::new(waker));
        let journal = match journal {
            Some(store) => {
                let (tx, wake) = (events.clone(), Arc::clone(&wake));
                let report = Box::new(move |report| {
                    if tx.send(LoopEvent::Journal(report)).is_ok() {
                        wake.after_post();
                    }
                });
                Some(crate::persist::GroupCommit::start(store, report)?)
            }
            None => None,
        };
        let cluster = match cluster {
            Some((config, history)) => {
                let (tx, wake) = (events.clone(), Arc::clone(&wake));
                let notify = Box::new(move |notice| {
                    if tx.send(LoopEvent::Cluster(notice)).is_ok() {
                        wake.after_post();
                    }
                });
                let c = crate::cluster::Cluster::start(config, history, notify)
                    .map_err(std::io::Error::other)?;
                Some(c)
            }
            None => None,
        };
        Ok(Shared {
            journal,
            cluster,
            core: CoreLock::new(core),
            board,
            events,
            wake,
        })
    }

    /// For tests of what reads the shared state: `core` and `board`, no
    /// journal, no loop (the poll the waker needs is returned with it;
    /// posted events are dropped).
    #[cfg(test)]
    pub fn unjournaled(core: Core, board: Board) -> (Shared, mio::Poll) {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (tx, _rx) = crossbeam_channel::unbounded();
        let shared = Shared::new(core, board, tx, waker, None, None).expect("no journal to start");
        (shared, poll)
    }

    /// Posts a queued/running snapshot of run `id` for subscribers, if any.
    /// In cluster mode, also writes it to Redis.
    pub fn publish_run_change(&self, id: RunId) {
        let subscribed = self.board.subscribers.load(Ordering::Relaxed) != 0;
        if !subscribed && self.cluster.is_none() {
            return;
        }
        let (run, skip) = {
            let core = self.core.lock();
            let run = core.run(id).cloned();
            let skip = run
                .as_ref()
                .and_then(|r| r.job.as_deref())
                .and_then(|j| core.job(j))
                .is_some_and(|e| e.def.overlap == crate::config::Overlap::Skip);
            (run, skip)
        };
        if let Some(run) = run {
            if let Some(c) = &self.cluster {
                c.record(&run, skip);
            }
            if subscribed {
                self.notify(LoopEvent::RunChanged(run));
            }
        }
    }

    /// Called by the loop just before it sleeps in `poll`; true if
    /// `pending` (asked once posts wake the loop again) says an event is
    /// already waiting on one of the loop's channels (then it must not
    /// sleep). See [`wake`].
    pub fn loop_sleeping(&self, pending: impl FnOnce() -> bool) -> bool {
        self.wake.sleeping(pending)
    }

    /// Called by the loop as soon as `poll` returns. See [`wake`].
    pub fn loop_awake(&self) {
        self.wake.awake();
    }

    /// Posts an event to the loop, and wakes it if it may be asleep.
    pub fn notify(&self, event: LoopEvent) {
        if self.events.send(event).is_err() {
            // The loop has exited (end of shutdown); nobody is left to tell.
            return;
        }
        self.wake_loop();
    }

    /// Wakes the loop if it may be asleep, after a post on a channel of
    /// its (this one, or another it drains each turn and looks at before
    /// it sleeps): call it after every send, as [`Shared::notify`] does.
    /// See [`wake`].
    pub fn wake_loop(&self) {
        self.wake.after_post();
    }

    /// Ends a run that its worker could not finish (panic, dead thread).
    pub fn fail_lost_run(&self, id: RunId, why: &str) {
        let finished = self
            .core
            .lock()
            .finish(id, Finish::with_error(RunState::Failed, why), true);
        if let Some(run) = finished {
            log::error!(
                "run {id} of job {}: {why}",
                run.job.as_deref().unwrap_or("-")
            );
            self.notify(LoopEvent::Finished(run));
        }
    }
}

/// Where shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving normally.
    Running,
    /// Draining: running jobs get until `grace_end`, then are killed.
    Draining {
        /// When running runs are cancelled.
        grace_end: Instant,
        /// Whether the kill has been sent.
        killed: bool,
    },
}

/// The loop-side daemon.
pub struct Daemon {
    /// Shared with the workers.
    pub shared: Arc<Shared>,
    pub(crate) pool: WorkerPool<RunTask>,
    pub(crate) scheduler: Scheduler,
    /// The settings fixed at start (a reload that changes one only warns).
    /// The live ones are on the board ([`Board::live`]), and the jobs'
    /// definitions in the core, so a job's parsed schedule is held once.
    pub start: StartSettings,
    /// Shutdown state.
    pub phase: Phase,
    /// Cancel handles of runs handed to the pool.
    cancels: RunMap<CancelToken>,
    /// Definition and args of every run not yet finished (for backlog
    /// dispatch and retries).
    inputs: RunMap<dispatch::RunInput>,
    /// Retries waiting for their timer, by timer token.
    retries: HashMap<u64, dispatch::PendingRetry>,
    /// Runs asked for later (`jobs.run {delay | at}`), by timer token.
    delayed: HashMap<u64, delayed::Delayed>,
    /// While timers are being fired: runs queued without waking a worker
    /// yet (see [`WorkerPool::submit_quiet`]), woken together at the end.
    quiet_dispatches: Option<usize>,
    /// A journal compaction whose snapshot is being handed over.
    snapshot: Option<compaction::Snapshot>,
    /// Streaks of skipped scheduled runs, for the log.
    skips: skips::SkipLog,
    /// Runs for any node taken from Redis and run here: their Stream
    /// entry, acknowledged when the run ends.
    work: RunMap<String>,
    /// Cluster mode, `on_redis_down = "pause"`: occurrences missed while
    /// Redis was unreachable, by job, claimed under the job's `catch_up`
    /// when it returns.
    missed: HashMap<Arc<str>, Vec<i64>>,
    /// The running file's job definitions, by name (what a reload diffs
    /// against, off the loop).
    file_jobs: Arc<reload::FileJobs>,
    /// The reload in flight, and those asked for or finished.
    reloads: reload_apply::Reloads,
    /// `[[notify]]` sinks and the delivery thread.
    alerts: crate::alerts::Notifier,
}

impl Daemon {
    /// Builds the daemon: starts the worker pool and arms every schedule.
    pub fn start(
        config: Config,
        events: Sender<LoopEvent>,
        waker: Arc<mio::Waker>,
        debug_hooks: bool,
    ) -> std::io::Result<Daemon> {
        let history = config.daemon.live.history;
        let core = Core::new(history);
        let board = Board::new(config.path.clone(), config.daemon.live, debug_hooks);
        task::open_output_dir(&board, &config.daemon.start)?;
        faults::configure_from_env();
        let (journal, recovered) = match &config.daemon.start.state_dir {
            Some(dir) => {
                let (store, recovered) = crate::persist::Store::open(dir)?;
                log::info!(
                    "state_dir: {} ({} bytes of journal)",
                    dir.display(),
                    store.journal_len()
                );
                (Some(store), Some(recovered))
            }
            None => (None, None),
        };
        let watchdog =
            crate::notify::Watchdog::from_env(Arc::clone(&waker), board.live.read().min_workers);
        let cluster = config.cluster.clone().map(|c| (c, history));
        let shared = Arc::new(Shared::new(core, board, events, waker, journal, cluster)?);
        if let Some(c) = &shared.cluster {
            crate::state::run::set_node_name(&c.config.node);
            let scheme = crate::state::ids::IdScheme::Fleet(c.node_index);
            shared.core.lock().set_id_scheme(scheme);
        }
        let hook_shared = Arc::clone(&shared);
        let lost: LostTaskHook = Arc::new(move |id, why| hook_shared.fail_lost_run(id, why));
        // The rayon pool of `file.*` jobs (`daemon.file_threads` threads),
        // so a big tree walk never occupies the request workers or the job
        // workers.
        let file_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.daemon.start.file_threads)
            .thread_name(|i| format!("tickd-file-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let env = Arc::new(task::RunEnv {
            shared: Arc::clone(&shared),
            file_pool,
        });
        let pool = WorkerPool::start_watched(
            PoolConfig {
                workers: config.daemon.start.workers,
                queue_capacity: config.daemon.start.queue_capacity,
                name: "tickd-worker".into(),
                slice: SlicePolicy::ShortWhileIdle,
                placement: crate::pool::Placement::Anywhere,
            },
            lost,
            watchdog,
            env,
        )?;
        // Set once, right here; a second set cannot happen.
        let _ = shared.board.job_pool.set(pool.probe());
        let reloads = reload_apply::Reloads::start(&shared)?;
        let alerts =
            crate::alerts::Notifier::start(&config.notify, shared.board.notifications.clone())?;
        let mut daemon = Daemon {
            shared,
            pool,
            scheduler: Scheduler::new(),
            start: config.daemon.start,
            phase: Phase::Running,
            cancels: RunMap::default(),
            inputs: RunMap::default(),
            retries: HashMap::new(),
            delayed: HashMap::new(),
            quiet_dispatches: None,
            snapshot: None,
            skips: skips::SkipLog::default(),
            work: RunMap::default(),
            missed: HashMap::new(),
            file_jobs: Arc::default(),
            reloads,
            alerts,
        };
        daemon
            .shared
            .board
            .gates
            .lock()
            .set_limits(config.concurrency.clone());
        let jobs: Vec<_> = config.jobs.into_iter().map(Arc::new).collect();
        let files = jobs.len();
        daemon.shared.core.lock().add_jobs(jobs);
        // In name order, from the core's map: no sort (before any API job).
        daemon.file_jobs = Arc::new(daemon.shared.core.lock().defs().cloned().collect());
        // Due times up to now are catch-up's; the schedules are armed for
        // the ones after it, so no due time is both missed and fired.
        let started_at = time::now();
        let api_jobs = daemon.start_api_jobs(recovered.as_ref());
        let requeue = match &recovered {
            Some(recovered) => daemon.restore(recovered),
            None => Vec::new(),
        };
        // Every job in the core: the file's and the API's (a held API job
        // is not enabled, so it is not armed).
        daemon.scheduler.reserve(files + api_jobs.len());
        daemon.arm_all_after(started_at);
        if recovered.is_some() {
            daemon.catch_up(started_at);
            for (id, args, adhoc) in requeue {
                daemon.requeue(id, args, adhoc);
            }
            daemon.shared.sync_journal_now();
        }
        daemon.load_cluster_api_jobs();
        daemon.publish();
        Ok(daemon)
    }

    /// Arms every job's schedule for its first due time after `after`:
    /// [`Daemon::arm_after`] for all jobs, in one pass over them in name
    /// order instead of a look-up of each (a start of a million jobs).
    fn arm_all_after(&mut self, after: Timestamp) {
        let mut core = self.shared.core.lock();
        for (name, entry) in core.jobs_mut() {
            entry.next_run = match (&entry.def.schedule, entry.enabled) {
                (Some(schedule), true) => {
                    self.scheduler
                        .arm_shared(name, schedule, after, entry.def.jitter)
                }
                _ => None,
            };
        }
    }

    /// The board request workers read.
    pub fn board(&self) -> &Board {
        &self.shared.board
    }

    /// Whether the daemon is shutting down.
    pub fn stopping(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Test hook: makes a worker thread die; refused when the run queue
    /// has no room for the poison message.
    pub fn kill_one_worker(&self) -> Result<(), Error> {
        if self.pool.kill_one_worker() {
            Ok(())
        } else {
            Err(Error::QueueFull { capacity: None })
        }
    }

    /// The earliest instant at which [`Daemon::on_timers`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = [
            self.scheduler.next_wakeup(),
            self.shared.board.state.retry_at(),
            self.compaction_deadline(),
            self.reload_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = match self.phase {
            Phase::Draining {
                grace_end,
                killed: false,
            } => Some(timer.map_or(grace_end, |t| t.min(grace_end))),
            _ => timer,
        };
        if self.stopping() && self.runs_done() {
            // Only a worker leaving a task may be left, and that sends no
            // event: look again soon. (Not only while one is seen busy: it
            // may have left between the drain's look and this one, and
            // then nothing would wake the loop again.)
            let soon = Instant::now() + DRAIN_RECHECK;
            return Some(timer.map_or(soon, |t| t.min(soon)));
        }
        timer
    }

    /// Bookkeeping for a finished run (the server answers its waiters).
    pub fn on_finished(&mut self, run: &Run) {
        self.shared.journal_finished(run);
        self.cluster_finished(run);
        self.on_run_finished(run);
        self.compact_journal_if_needed();
        self.publish();
    }

    /// Publishes loop-owned numbers on the board for request workers.
    pub fn publish(&self) {
        let b = &self.shared.board;
        b.timers_armed
            .store(self.scheduler.len(), Ordering::Relaxed);
        b.stopping.store(self.stopping(), Ordering::Relaxed);
    }

    /// Fires due schedules and, while draining, the end of the grace period.
    pub fn on_timers(&mut self, now: Instant) {
        crate::notify::loop_turned();
        self.fire_due(now);
        self.continue_reload();
        self.retry_journal(now);
        self.continue_compaction();
        if let Phase::Draining {
            grace_end,
            killed: false,
        } = self.phase
        {
            if now >= grace_end {
                self.kill_running("shutdown grace period ended");
                self.phase = Phase::Draining {
                    grace_end,
                    killed: true,
                };
            }
        }
    }

    /// Starts the drain: no more schedules, queued runs cancelled (or, with
    /// `state_dir`, kept queued for the restart), running runs given
    /// `shutdown_grace`. A second call kills running runs now.
    pub fn begin_shutdown(&mut self) {
        match self.phase {
            Phase::Running => {
                // Before STOPPING=1: the abandoned reload's guard sends
                // its READY=1 first.
                self.abandon_reloads();
                crate::notify::stopping();
                let grace = self.shared.board.live.read().shutdown_grace;
                log::info!(
                    "shutting down: waiting up to {} for running jobs",
                    humantime::format_duration(grace)
                );
                self.scheduler.clear();
                let ids = {
                    let mut core = self.shared.core.lock();
                    if self.keeps_queued_runs() {
                        core.hold_queued_runs();
                    }
                    core.unfinished_runs()
                };
                if self.keeps_queued_runs() {
                    // They are in the journal as queued: the next start
                    // runs them under their ids. Workers leave them alone.
                    let queued = ids.len().saturating_sub(self.running_count());
                    if queued > 0 {
                        log::warn!(
                            "shutdown: {queued} queued run(s) kept in state_dir; they run after the restart"
                        );
                    }
                } else {
                    let mut cancelled = 0;
                    for id in ids {
                        if self.cancel_if_queued(id, "daemon shutting down before the run started")
                        {
                            cancelled += 1;
                        }
                    }
                    if cancelled > 0 {
                        log::warn!("shutdown: {cancelled} queued run(s) cancelled");
                    }
                }
                self.phase = Phase::Draining {
                    grace_end: Instant::now() + grace,
                    killed: false,
                };
                self.publish();
            }
            Phase::Draining { grace_end, killed } => {
                if !killed {
                    log::warn!("second shutdown request: killing running jobs now");
                    self.kill_running("daemon shutting down (second request)");
                    self.phase = Phase::Draining {
                        grace_end,
                        killed: true,
                    };
                }
            }
        }
    }

    /// True once no run is running, nor queued unless queued runs are kept
    /// for the restart (with `state_dir`), and no worker is inside a task
    /// (one may be between taking a run off the queue and being refused
    /// its start).
    pub fn drained(&self) -> bool {
        self.runs_done() && self.pool.stats().busy == 0
    }

    /// The run half of [`Daemon::drained`].
    fn runs_done(&self) -> bool {
        if self.keeps_queued_runs() {
            self.running_count() == 0
        } else {
            self.shared.core.lock().unfinished_runs().is_empty()
        }
    }

    /// Whether a graceful stop keeps queued runs (in the journal) instead
    /// of cancelling them: with `state_dir`, they run after the restart.
    pub fn keeps_queued_runs(&self) -> bool {
        self.shared.journal.is_some()
    }

    /// Runs in the `running` state.
    fn running_count(&self) -> usize {
        let core = self.shared.core.lock();
        core.unfinished_runs()
            .into_iter()
            .filter(|id| core.run(*id).is_some_and(|r| r.state == RunState::Running))
            .count()
    }

    /// Stops the pool; called once the loop is about to exit.
    pub fn stop_pool(self) {
        if !self.pool.shutdown(KILL_GRACE + Duration::from_secs(1)) {
            log::warn!("some worker threads did not stop in time");
        }
        self.alerts.stop(alerting::NOTIFY_FLUSH);
        self.shared.close_journal();
        if let Some(c) = &self.shared.cluster {
            c.stop();
        }
    }

    fn kill_running(&mut self, why: &str) {
        let mut n = 0;
        for (id, token) in &self.cancels {
            if !token.is_cancelled() {
                log::warn!("run {id}: killing: {why}");
                token.cancel_because(&format!("killed: {why}"));
                n += 1;
            }
        }
        if n > 0 {
            log::warn!("{n} running run(s) killed: {why}");
        }
    }
}

#[cfg(test)]
mod tests;
