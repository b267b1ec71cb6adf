//! The loop's half of a reload: asking the reload thread for one, and
//! applying its [`Plan`] a slice at a time.
//!
//! A reload goes through three phases ([`Phase`]):
//! - **reading**: the reload thread reads, parses, validates and diffs the
//!   file and checks it against the API jobs ([`super::reload::prepare`]);
//!   the loop goes on serving. API jobs put meanwhile are noted, and
//!   checked again when the plan comes back (a put may have taken a name
//!   the file adds after the thread looked), before anything is applied;
//! - **applying**: from the moment the loop takes an accepted plan, a
//!   `jobs.put` of a name the new file defines is refused (the file's, as
//!   if already in force), and so is an `on_failure` naming a job it
//!   removes. Each loop turn applies one slice of the plan (removals, then
//!   additions and changes in the file's order) of at most [`SLICE`] of
//!   work, and the loop serves sockets and timers between slices: a pending
//!   slice makes the poll's timeout zero ([`Daemon::reload_deadline`]);
//! - **done**: with the last slice the settings are swapped, the
//!   generation is bumped, "config reloaded" is logged, and the result
//!   goes to whoever asked ([`Daemon::take_reloads_done`]). The old
//!   definitions are freed on the reload thread.
//!
//! One reload runs at a time. A reload asked for while one is in flight
//! is coalesced: one more runs after it (it reads the file again, which
//! may have changed since the first read), and every request that came in
//! meanwhile is answered with that second one's result. A shutdown
//! abandons a reload in flight (its askers get [`Error::ShuttingDown`]);
//! one half applied stays half applied, which the exit makes moot: the
//! generation is not bumped and nothing of a file's jobs is journaled.

use super::reload::{self, FileJobs, Plan, Prepared};
use super::{Daemon, Error, LoopEvent, ReloadReport, Shared};
use crate::notify::ReloadGuard;
use crate::time;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most work one loop turn gives a reload's plan: well under the
/// 50 ms a request may wait on the loop, and long enough that a million
/// changes take few turns.
pub(super) const SLICE: Duration = Duration::from_millis(8);

/// Changes applied between two looks at the clock.
const CLOCK_EVERY: usize = 64;

/// While the `reload.slice` fail point holds the apply: how soon the loop
/// looks again.
const HELD_RECHECK: Duration = Duration::from_millis(10);

/// Work for the reload thread.
pub(super) enum Work {
    /// Prepare the reload `ticket` of the file at `path` against the
    /// running file's definitions.
    Prepare {
        ticket: u64,
        path: std::path::PathBuf,
        running: Arc<FileJobs>,
    },
    /// Drop this (a reload's old definitions and names), then give freed
    /// memory back to the system.
    Free(Box<dyn Send>),
}

/// Where the reload in flight stands.
enum Phase {
    /// None in flight.
    Idle,
    /// The reload thread has the file.
    Reading { ticket: u64, _systemd: ReloadGuard },
    /// The loop applies its plan.
    Applying(Box<Applying>),
}

/// A plan being applied.
struct Applying {
    ticket: u64,
    plan: Box<Plan>,
    /// Removals done.
    removed: usize,
    /// Additions and changes done.
    upserted: usize,
    /// Slices applied so far, and the longest one's wall and CPU time
    /// (logged with "config reloaded": what the loop gave the reload).
    slices: u32,
    longest: (Duration, Duration),
    _systemd: ReloadGuard,
}

/// The reloads of a daemon: the one in flight, the one asked for after it,
/// and those finished that the server has not taken yet.
pub(super) struct Reloads {
    thread: Sender<Work>,
    last_ticket: u64,
    phase: Phase,
    /// A reload asked for while one is in flight: its ticket.
    again: Option<u64>,
    /// API jobs put since the reload in flight was handed to the thread.
    touched: Vec<String>,
    /// Finished reloads (ticket, result), for the server to answer.
    done: Vec<(u64, Result<ReloadReport, Error>)>,
    /// The `reload.slice` fail point held the last slice.
    held: bool,
}

impl Reloads {
    /// Starts the reload thread, which posts to the loop through `shared`.
    pub(super) fn start(shared: &Arc<Shared>) -> std::io::Result<Reloads> {
        let (tx, rx) = crossbeam_channel::unbounded::<Work>();
        let shared = Arc::downgrade(shared);
        std::thread::Builder::new()
            .name("tickd-reload".into())
            .spawn(move || {
                for work in rx {
                    match work {
                        Work::Prepare {
                            ticket,
                            path,
                            running,
                        } => {
                            let Some(shared) = shared.upgrade() else {
                                return;
                            };
                            let outcome = reload::prepare(&shared, &path, &running);
                            drop(running);
                            fail::fail_point!("reload.prepared");
                            shared.notify(LoopEvent::Reload(Prepared { ticket, outcome }));
                        }
                        Work::Free(old) => {
                            drop(old);
                            crate::sys::ffi::release_free_heap();
                        }
                    }
                }
            })?;
        Ok(Reloads {
            thread: tx,
            last_ticket: 0,
            phase: Phase::Idle,
            again: None,
            touched: Vec::new(),
            done: Vec::new(),
            held: false,
        })
    }

    /// Hands `what` to the reload thread to drop (or drops it here if the
    /// thread is gone).
    pub(super) fn free_later(&self, what: Box<dyn Send>) {
        let _ = self.thread.send(Work::Free(what));
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The `reload.slice` fail point: `None` to apply a slice as usual;
/// `return` holds the apply (no change this turn), `return(N)` allows at
/// most N changes this turn.
fn slice_limit() -> Option<usize> {
    fail::fail_point!("reload.slice", |arg: Option<String>| Some(
        arg.and_then(|a| a.parse().ok()).unwrap_or(0)
    ));
    None
}

impl Daemon {
    /// Asks for a reload of the config file (SIGHUP, the `reload` method):
    /// returns the ticket its result will carry in
    /// [`Daemon::take_reloads_done`]. Coalesced with one already asked
    /// for after the reload in flight (see the module docs).
    pub fn request_reload(&mut self) -> u64 {
        let r = &mut self.reloads;
        if self.phase != super::Phase::Running {
            r.last_ticket += 1;
            r.done.push((r.last_ticket, Err(Error::ShuttingDown)));
            return r.last_ticket;
        }
        if matches!(r.phase, Phase::Idle) {
            r.last_ticket += 1;
            let ticket = r.last_ticket;
            self.dispatch_reload(ticket);
            return ticket;
        }
        if let Some(ticket) = r.again {
            log::info!("reload: one is in flight and another is asked for after it; coalesced");
            return ticket;
        }
        r.last_ticket += 1;
        r.again = Some(r.last_ticket);
        log::info!("reload: one is in flight; another runs after it");
        r.last_ticket
    }

    /// Hands reload `ticket` to the reload thread.
    fn dispatch_reload(&mut self, ticket: u64) {
        let path = self.shared.board.info.read().path.clone();
        let r = &mut self.reloads;
        r.touched.clear();
        r.phase = Phase::Reading {
            ticket,
            _systemd: crate::notify::reloading(),
        };
        let work = Work::Prepare {
            ticket,
            path,
            running: Arc::clone(&self.file_jobs),
        };
        if r.thread.send(work).is_err() {
            self.finish_reload(ticket, Err("the reload thread is gone".into()));
        }
    }

    /// `jobs.put` of `def` notes it while a reload is being read, and is
    /// refused while one is applied if the new file defines its name, or
    /// removes the job its `on_failure` names.
    pub(super) fn check_put_against_reload(
        &mut self,
        def: &crate::config::JobDef,
    ) -> Result<(), Error> {
        match &self.reloads.phase {
            Phase::Idle => Ok(()),
            Phase::Reading { .. } => {
                self.reloads.touched.push(def.name.clone());
                Ok(())
            }
            Phase::Applying(a) if a.plan.defines(&def.name) => {
                Err(Error::FileJob(def.name.clone()))
            }
            Phase::Applying(a) => match &def.on_failure {
                Some(t) if a.plan.removes(t) => Err(Error::BadJob(format!(
                    "job.on_failure: names job \"{t}\", which the reload being applied removes"
                ))),
                _ => Ok(()),
            },
        }
    }

    /// The reload thread's answer: an accepted plan starts being applied
    /// (once the API jobs put since the thread looked are checked against
    /// it too), a refused file is reported.
    pub fn on_reload_prepared(&mut self, prepared: Prepared) {
        let current = match self.reloads.phase {
            Phase::Reading { ticket, .. } => ticket == prepared.ticket,
            _ => false,
        };
        if !current {
            // Abandoned by a shutdown: nobody waits for it.
            self.reloads.free_later(Box::new(prepared.outcome));
            return;
        }
        let plan = match prepared.outcome.and_then(|plan| {
            self.recheck_touched(&plan)?;
            Ok(plan)
        }) {
            Ok(plan) => plan,
            Err(msg) => {
                self.finish_reload(prepared.ticket, Err(msg));
                return;
            }
        };
        for w in &plan.config.warnings {
            log::warn!("{w}");
        }
        for key in self.start.needs_restart(&plan.config.daemon.start) {
            log::warn!("reload: daemon.{key} changed; it takes effect only after a restart");
        }
        // A changed limit takes effect for the next start; a raised one
        // starts waiting runs now.
        let waiting = {
            let mut gates = self.shared.board.gates.lock();
            gates.set_limits(plan.config.concurrency.clone());
            gates.with_waiting()
        };
        for gate in waiting {
            self.start_waiting(&gate);
        }
        self.alerts.set_sinks(&plan.config.notify);
        let running = self.shared.cluster.as_ref().map(|c| &c.config);
        if running != plan.config.cluster.as_ref() {
            log::warn!("reload: [cluster] changed; it takes effect only after a restart");
        }
        let systemd = match std::mem::replace(&mut self.reloads.phase, Phase::Idle) {
            Phase::Reading { _systemd, .. } => _systemd,
            _ => crate::notify::reloading(),
        };
        self.reloads.phase = Phase::Applying(Box::new(Applying {
            ticket: prepared.ticket,
            plan,
            removed: 0,
            upserted: 0,
            slices: 0,
            longest: (Duration::ZERO, Duration::ZERO),
            _systemd: systemd,
        }));
    }

    /// The API jobs put while the file was read, checked against the plan
    /// as the thread checked those it saw: O(puts meanwhile).
    fn recheck_touched(&mut self, plan: &Plan) -> Result<(), String> {
        let touched = std::mem::take(&mut self.reloads.touched);
        let core = self.shared.core.lock();
        let file = &plan.config.path;
        let mut problems = Vec::new();
        for name in &touched {
            if plan.defines(name) && reload::is_api_job(&core, name) {
                problems.push(reload::adds_api_name(file, name));
            }
            let target = core.job(name).and_then(|e| e.def.on_failure.as_deref());
            if let Some(t) = target.filter(|t| plan.removes(t)) {
                problems.extend(reload::removes_a_target(&core, file, t));
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// When the loop must turn again for a reload: now while a plan is
    /// being applied (soon, while the fail point holds it).
    pub(super) fn reload_deadline(&self) -> Option<Instant> {
        match self.reloads.phase {
            Phase::Applying(_) if self.reloads.held => Some(Instant::now() + HELD_RECHECK),
            Phase::Applying(_) => Some(Instant::now()),
            _ => None,
        }
    }

    /// Applies one slice of the plan being applied, if any (each loop
    /// turn); the last one finishes the reload.
    pub(super) fn continue_reload(&mut self) {
        if !matches!(self.reloads.phase, Phase::Applying(_)) {
            return;
        }
        let limit = slice_limit();
        self.reloads.held = limit == Some(0);
        if self.reloads.held {
            return;
        }
        let Phase::Applying(mut a) = std::mem::replace(&mut self.reloads.phase, Phase::Idle) else {
            return;
        };
        let began = Instant::now();
        let cpu = thread_cpu();
        let mut n = 0usize;
        let mut more = || {
            n += 1;
            if limit.is_some_and(|max| n > max) {
                return false;
            }
            !n.is_multiple_of(CLOCK_EVERY) || began.elapsed() < SLICE
        };
        while a.removed < a.plan.diff.removed.len() && more() {
            self.remove_file_job(&a.plan.diff.removed[a.removed]);
            a.removed += 1;
        }
        while a.removed == a.plan.diff.removed.len() && a.upserted < a.plan.upserts.len() && more()
        {
            let def = Arc::clone(&a.plan.upserts[a.upserted]);
            let name = def.name.clone();
            self.shared.core.lock().upsert_job(def);
            self.arm(&name);
            a.upserted += 1;
        }
        a.slices += 1;
        let took = (began.elapsed(), thread_cpu().saturating_sub(cpu));
        a.longest = (a.longest.0.max(took.0), a.longest.1.max(took.1));
        if a.removed < a.plan.diff.removed.len() || a.upserted < a.plan.upserts.len() {
            self.reloads.phase = Phase::Applying(a);
            return;
        }
        self.finish_applying(*a);
    }

    /// Removes the file job `name` (one change of a plan).
    fn remove_file_job(&mut self, name: &str) {
        self.scheduler.disarm(name);
        let (paused, backlog) = {
            let mut core = self.shared.core.lock();
            let paused = core.job(name).is_some_and(|e| e.paused);
            (paused, core.remove_job(name))
        };
        // A removed job's pause goes with it (a job of that name added
        // later starts unpaused, after a restart too).
        if paused {
            self.shared.journal_pause(name, false);
        }
        for id in backlog {
            self.cancel_if_queued(id, "job removed by reload");
        }
        self.skips.forget(name);
    }

    /// The last slice is applied: the settings and the generation follow.
    fn finish_applying(&mut self, a: Applying) {
        let Applying {
            ticket,
            plan,
            slices,
            longest,
            _systemd: mut systemd,
            ..
        } = a;
        let Plan {
            config,
            diff,
            sorted,
            upserts,
        } = *plan;
        // API jobs kept aside whose file job went: only those few are looked
        // at, not every removed name.
        let freed: Vec<String> = {
            let core = self.shared.core.lock();
            let aside = core.api().aside();
            if aside.is_empty() {
                Vec::new()
            } else {
                aside
                    .keys()
                    .filter(|n| diff.removed.binary_search(n).is_ok())
                    .cloned()
                    .collect()
            }
        };
        let live = config.daemon.live;
        self.reload_api_jobs(&freed, live.allow_job_api);
        self.shared.core.lock().set_history_limit(live.history);
        crate::logging::set_level(&live.log_level);
        reload::log_auth_change(&self.shared.board.live.read(), &live, &config.path);
        reload::log_tls_change(&self.shared.board.live.read(), &live, &config.path);
        // Published before the generation, so whoever sees the new
        // generation sees the new settings; the old version is freed here
        // (or by the last reader that still holds it).
        drop(self.shared.board.live.swap(Arc::new(live)));
        let generation = {
            let mut info = self.shared.board.info.write();
            info.generation += 1;
            info.loaded_at = time::now();
            info.last_reload_error = None;
            info.generation
        };
        systemd.set_generation(generation);
        self.publish();
        // The old definitions (and the changed and removed ones among them)
        // are freed on the reload thread, not here.
        let old = std::mem::replace(&mut self.file_jobs, Arc::new(sorted));
        self.reloads.free_later(Box::new((old, upserts)));
        log::info!(
            "config reloaded (generation {generation}): {} added, {} removed, {} changed; \
             applied in {slices} slice(s) of the loop, the longest {:.1} ms ({:.1} ms of CPU)",
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len(),
            longest.0.as_secs_f64() * 1e3,
            longest.1.as_secs_f64() * 1e3,
        );
        let report = ReloadReport {
            generation,
            added: diff.added,
            removed: diff.removed,
            changed: diff.changed,
        };
        self.reloads.done.push((ticket, Ok(report)));
        self.next_reload();
    }

    /// Ends reload `ticket` without applying it: rejected (`msg`).
    fn finish_reload(&mut self, ticket: u64, outcome: Result<(), String>) {
        self.reloads.phase = Phase::Idle;
        if let Err(msg) = outcome {
            let mut info = self.shared.board.info.write();
            log::error!(
                "reload rejected; keeping config generation {}: {msg}",
                info.generation
            );
            info.last_reload_error = Some(msg.clone());
            self.reloads
                .done
                .push((ticket, Err(Error::ReloadRejected(msg))));
        }
        self.next_reload();
    }

    /// Starts the reload asked for during the last one, if any.
    fn next_reload(&mut self) {
        self.reloads.phase = Phase::Idle;
        if let Some(ticket) = self.reloads.again.take() {
            self.dispatch_reload(ticket);
        }
    }

    /// Shutdown: the reload in flight, and the one asked for after it, are
    /// dropped; whoever asked hears [`Error::ShuttingDown`].
    pub(super) fn abandon_reloads(&mut self) {
        let r = &mut self.reloads;
        let ticket = match std::mem::replace(&mut r.phase, Phase::Idle) {
            Phase::Idle => None,
            Phase::Reading { ticket, .. } => {
                log::warn!("shutting down: the reload being read is abandoned");
                Some(ticket)
            }
            Phase::Applying(a) => {
                log::warn!(
                    "shutting down: the reload being applied is abandoned after {} of {} changes",
                    a.removed + a.upserted,
                    a.plan.diff.removed.len() + a.plan.upserts.len()
                );
                let ticket = a.ticket;
                r.free_later(Box::new(a.plan));
                Some(ticket)
            }
        };
        for t in ticket.into_iter().chain(r.again.take()) {
            r.done.push((t, Err(Error::ShuttingDown)));
        }
    }

    /// The reloads finished since the last call, by ticket, for the server
    /// to answer (and to take the new limits from).
    pub fn take_reloads_done(&mut self) -> Vec<(u64, Result<ReloadReport, Error>)> {
        std::mem::take(&mut self.reloads.done)
    }

    /// Frees `what` on the reload thread (a large report the loop is done
    /// with).
    pub fn free_later(&self, what: Box<dyn Send>) {
        self.reloads.free_later(what);
    }

    /// Runs a whole reload on the calling thread (the unit tests): the
    /// same preparation and slices as the loop's, back to back.
    #[cfg(test)]
    pub fn reload(&mut self) -> Result<ReloadReport, Error> {
        let path = self.shared.board.info.read().path.clone();
        self.reloads.last_ticket += 1;
        let ticket = self.reloads.last_ticket;
        self.reloads.phase = Phase::Reading {
            ticket,
            _systemd: crate::notify::reloading(),
        };
        let outcome = reload::prepare(&self.shared, &path, &self.file_jobs);
        self.on_reload_prepared(Prepared { ticket, outcome });
        while matches!(self.reloads.phase, Phase::Applying(_)) {
            self.continue_reload();
        }
        let done = self.take_reloads_done();
        let (_, result) = done
            .into_iter()
            .find(|(t, _)| *t == ticket)
            .expect("the reload finished");
        result
    }
}
