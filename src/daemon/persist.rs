//! The daemon's side of `state_dir`: what is written to the journal when,
//! what happens at start with what it recovered, and catch-up.
//!
//! Written (see `crate::persist` for the file format):
//! - a run's snapshot when it is queued (with its args, and for `submit`
//!   the job definition), when a worker starts it, and when it ends;
//! - a `Scheduled` record each time a schedule fires, so the next start
//!   knows how long the daemon was down;
//! - a `Pause` record when `jobs.pause` / `jobs.resume` changes a job
//!   (synced before the answer), so a pause survives restarts and crashes.
//!
//! Durability (group commit, see [`crate::persist::GroupCommit`]): records
//! are queued as they happen and the journal thread writes each loop turn's
//! at the end of the turn; when answers wait on them (every command's
//! answer does, see `server/commits.rs`) it also fdatasyncs them, one sync
//! for all, and the answers go out once it is done. A `running` record is
//! written by its worker at once (with everything queued before it). So a
//! `kill -9` loses nothing acknowledged or seen running, and a power loss
//! nothing acknowledged; other records are synced with the next group, or
//! at exit.
//!
//! At start: finished runs go back into their job's history and counters;
//! runs that were `running` become `interrupted` (the daemon died under
//! them; they are not re-run, since they may have had effects); runs that
//! were `queued` are dispatched again under their old ids, with the job's
//! definition as the config has it now (a `submit`ted run's recorded
//! definition is checked again, and refused while `allow_submit` is off:
//! such runs end `cancelled` with an error saying why). Then each
//! scheduled job counts the due times it missed while the daemon was down
//! and, per its `catch_up`, runs none, the latest one, or the latest
//! `catch_up_limit` of them.

use super::dispatch::NewRun;
use super::{Daemon, Shared};
use crate::config::{CatchUp, JobDef, Overlap};
use crate::persist::{Record, Recovered, RunRecord};
use crate::state::run::{Run, RunId, RunState, Trigger};
use crate::state::Finish;
use crate::time::{self, Timestamp};
use serde_json::Value;
use std::sync::Arc;

pub use super::state_health::{StateHealth, StateView};

/// How many missed due times are counted at most per job (a `every = "1s"`
/// job down for a year would otherwise take a while to count).
const MAX_MISSED_COUNTED: u64 = 1_000_000;

/// What an interrupted run's `error` says.
const INTERRUPTED: &str =
    "tickd stopped while this run was running (crash or kill -9); it was not re-run";

impl Shared {
    /// Appends a snapshot of run `id` to the journal (no-op without
    /// `state_dir`). `args`/`adhoc` are what a restart needs to run it again.
    pub fn journal_run(&self, id: RunId, args: Option<&Value>, adhoc: Option<&Value>) {
        if self.journal.is_none() {
            return;
        }
        let Some(run) = self.core.lock().run(id).cloned() else {
            return;
        };
        self.journal_snapshot(&run, args, adhoc);
    }

    /// Marks run `id` running; with `state_dir`, also journals it before
    /// anyone can see it. False when the run is no longer queued
    /// (cancelled before a worker got to it).
    ///
    /// The record is written to the file (with every record queued before
    /// it) while the core lock is still held, so a client that reads the
    /// run as `running` (and a `kill -9` right after) always finds it
    /// journaled as running: after the restart it is `interrupted`, never
    /// silently queued and run a second time. Locks are taken journal
    /// files first, then core.
    pub fn mark_running_journaled(&self, id: RunId) -> bool {
        let Some(journal) = &self.journal else {
            return self.core.lock().mark_running(id);
        };
        let mut writer = journal.writer();
        let mut core = self.core.lock();
        if !core.mark_running(id) {
            return false;
        }
        let Some(run) = core.run(id) else {
            return true;
        };
        let appended = writer.append_now(&Record::Run(RunRecord::from_run(run, None, None)));
        let job = run.job.clone();
        drop(core);
        drop(writer);
        if let Err(e) = appended {
            let job = job.as_deref().unwrap_or("(submitted)");
            self.write_failed(format!("could not record run {id} of job {job}: {e}"));
        }
        true
    }

    /// Appends the snapshot `run` to the journal.
    pub fn journal_finished(&self, run: &Run) {
        if self.journal.is_some() {
            self.journal_snapshot(run, None, None);
        }
    }

    fn journal_snapshot(&self, run: &Run, args: Option<&Value>, adhoc: Option<&Value>) {
        let record = Record::Run(RunRecord::from_run(run, args.cloned(), adhoc.cloned()));
        self.journal_record(&record, || {
            format!(
                "run {} of job {}",
                run.id,
                run.job.as_deref().unwrap_or("(submitted)")
            )
        });
    }

    /// Appends `record` to the journal (no-op without `state_dir`); `what`
    /// names it in the error if it cannot be recorded. It is written and
    /// made durable with the loop turn's group (see
    /// [`crate::persist::GroupCommit`]); the server holds the answer of
    /// the command that appended it until then.
    pub fn journal_record(&self, record: &Record, what: impl FnOnce() -> String) {
        let Some(journal) = &self.journal else {
            return;
        };
        if let Err(e) = journal.append(record) {
            self.write_failed(format!("could not record {}: {e}", what()));
        }
    }

    /// Appends that `job`'s schedule fired for `at`.
    pub fn journal_scheduled(&self, job: &str, at: Timestamp) {
        if self.journal.is_none() {
            return;
        }
        let record = Record::Scheduled {
            job: job.to_string(),
            at,
        };
        self.journal_record(&record, || format!("the schedule of job {job}"));
    }

    /// Records that `job` was paused or resumed; the answer of the command
    /// waits for it to be durable, so the pause outlives a restart, a
    /// `kill -9` and a power loss.
    pub fn journal_pause(&self, job: &str, paused: bool) {
        let record = Record::Pause {
            job: job.to_string(),
            paused,
        };
        let what = if paused { "pause" } else { "resume" };
        self.journal_record(&record, || format!("the {what} of job {job}"));
    }

    /// The journal position an answer given now must wait for: the last
    /// record appended, if it is not known durable yet (None without
    /// `state_dir`, or when everything appended is durable).
    pub fn journal_wait(&self) -> Option<crate::persist::Lsn> {
        let journal = self.journal.as_ref()?;
        let appended = journal.appended();
        (appended > journal.durable()).then_some(appended)
    }

    /// Asks the journal thread to write and sync everything appended so far
    /// (never waits): at the end of a loop turn that holds `answers`
    /// answers until it is done.
    pub fn sync_journal(&self, answers: u64) {
        if let Some(journal) = &self.journal {
            journal.request_sync_for(answers);
        }
    }

    /// Asks the journal thread to write everything appended so far, without
    /// a sync (never waits): at the end of a loop turn that holds no
    /// answer, so that its records survive a `kill -9`.
    pub fn write_journal(&self) {
        if let Some(journal) = &self.journal {
            journal.request_write();
        }
    }

    /// Writes and syncs everything appended so far, and waits for it: at
    /// start, before any client is served.
    pub fn sync_journal_now(&self) {
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.sync_blocking() {
                self.write_failed(format!("could not sync the journal: {e}"));
            }
        }
    }

    /// At exit: writes and syncs what is left and stops the journal thread.
    pub fn close_journal(&self) {
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.close() {
                log::error!("state_dir: at exit: could not sync the journal: {e}");
            }
        }
    }

    /// Counts (and logs, unless it is one of a flood) a failed journal
    /// write; the loop retries.
    pub(super) fn write_failed(&self, message: String) {
        self.board.state.record(message);
    }
}

impl Daemon {
    /// Logs a pause or resume, saying what an operator could not guess:
    /// without `state_dir` a pause ends with the process, and a resumed
    /// job whose file says `enabled = false` stays unscheduled.
    pub(super) fn log_pause(&self, name: &str, paused: bool) {
        let file_enabled = self
            .shared
            .core
            .lock()
            .job(name)
            .is_some_and(|e| e.def.enabled);
        match (paused, self.shared.journal.is_some(), file_enabled) {
            (true, true, _) => log::info!("job {name} paused (kept in state_dir across restarts)"),
            (true, false, _) => log::warn!(
                "job {name} paused until tickd stops: without daemon.state_dir a pause is not persistent, and a restart schedules the job again"
            ),
            (false, _, true) => log::info!("job {name} resumed"),
            (false, _, false) => log::info!(
                "job {name} resumed (no longer paused), but its config sets enabled = false: it stays unscheduled"
            ),
        }
    }

    /// On resume: the due times a job missed while paused are not made up,
    /// not even by the catch-up of a later restart, which counts from the
    /// last due time recorded. So the resume counts as one (in memory and
    /// in the journal).
    pub(super) fn skip_paused_due_times(&self, name: &str) {
        let now = time::now();
        let scheduled = match self.shared.core.lock().job_mut(name) {
            Some(entry) if entry.def.schedule.is_some() => {
                entry.last_scheduled = Some(now);
                true
            }
            _ => false,
        };
        if scheduled {
            self.shared.journal_scheduled(name, now);
        }
    }

    /// Puts recovered runs back (see the module docs) and returns the runs
    /// to dispatch again, oldest first.
    pub(super) fn restore(
        &mut self,
        recovered: &Recovered,
    ) -> Vec<(RunId, Option<Value>, Option<Value>)> {
        let mut requeue = Vec::new();
        let mut interrupted = Vec::new();
        let mut rearm = Vec::new();
        let mut core = self.shared.core.lock();
        core.reserve_ids_through(recovered.max_run_id);
        for (job, at) in &recovered.last_scheduled {
            if let Some(entry) = core.job_mut(job) {
                entry.last_scheduled = Some(*at);
            }
        }
        // Pauses of jobs the config no longer has are dropped for good,
        // so a job of that name added later does not start out paused.
        let stale_pauses: Vec<&String> = recovered
            .paused
            .iter()
            .filter(|job| core.set_paused(job, true).is_none())
            .collect();
        for record in &recovered.runs {
            let mut run = record.to_run();
            match run.state {
                RunState::Running => {
                    run.state = RunState::Interrupted;
                    run.finished_at = Some(time::now());
                    run.error = Some(INTERRUPTED.to_string());
                    log::warn!(
                        "run {} of job {}: {INTERRUPTED}",
                        run.id,
                        run.job.as_deref().unwrap_or("(submitted)")
                    );
                    interrupted.push(run.clone());
                    core.restore_run(run);
                }
                RunState::Queued => {
                    requeue.push((run.id, record.args.clone(), record.adhoc.clone()));
                    core.restore_run(run);
                }
                RunState::Scheduled => {
                    let due = run.scheduled_at.unwrap_or_else(time::now);
                    rearm.push((run.id, record.args.clone(), due));
                    core.restore_run(run);
                }
                _ => core.restore_run(run),
            }
        }
        drop(core);
        for run in &interrupted {
            self.shared.journal_finished(run);
        }
        // Runs asked for later wait for their time again (one due while
        // the daemon was down starts at once).
        for (id, args, due) in rearm {
            self.arm_delayed(id, args, due);
        }
        for job in stale_pauses {
            log::info!("job {job} was paused but is no longer in the config; its pause is dropped");
            self.shared.journal_pause(job, false);
        }
        if !recovered.paused.is_empty() {
            log::info!(
                "state_dir: {} job(s) still paused: {}",
                recovered.paused.len(),
                recovered
                    .paused
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        log::info!(
            "state_dir: recovered {} runs ({} queued again, {} interrupted)",
            recovered.runs.len(),
            requeue.len(),
            interrupted.len()
        );
        requeue
    }

    /// Dispatches a run recovered in the `queued` state.
    pub(super) fn requeue(&mut self, id: RunId, args: Option<Value>, adhoc: Option<Value>) {
        let job = self.shared.core.lock().run(id).and_then(|r| r.job.clone());
        let def: Result<Arc<JobDef>, String> = match (&job, &adhoc) {
            (Some(name), _) if self.shared.core.lock().is_held(name) => Err(format!(
                "job {name} is defined through the API, and daemon.allow_job_api is false now: not run"
            )),
            (Some(name), _) => self
                .shared
                .core
                .lock()
                .job(name)
                .map(|e| Arc::clone(&e.def))
                .ok_or_else(|| format!("job {name} is no longer in the config")),
            // A submitted run is checked as `submit` would check it now:
            // one accepted while it was allowed does not run once it is
            // not (and a journal is never a way around `allow_submit`).
            (None, Some(_)) if !self.shared.board.live.read().allow_submit => Err(
                "submitted before the restart, but submit is disabled now (daemon.allow_submit = false): not run"
                    .to_string(),
            ),
            (None, Some(Value::Object(obj))) => crate::config::parse_adhoc_job(obj)
                .map(Arc::new)
                .map_err(|e| format!("submitted job no longer valid: {e}")),
            (None, _) => Err("submitted job definition was not recorded".to_string()),
        };
        let def = def.and_then(|def| self.adopt_in_cluster(id).map(|()| def));
        match def {
            Ok(def) => {
                log::info!(
                    "run {id} of job {}: queued before the restart; running it now",
                    job.as_deref().unwrap_or("(submitted)")
                );
                self.dispatch_recovered(id, def, args, adhoc);
            }
            Err(why) => {
                log::warn!("run {id}: recovered as queued but cannot run: {why}");
                self.finish_here(id, Finish::with_error(RunState::Cancelled, why), false);
            }
        }
    }

    /// Counts the due times each scheduled job missed while the daemon was
    /// down, and starts catch-up runs per its `catch_up`.
    pub(super) fn catch_up(&mut self, now: Timestamp) {
        let jobs: Vec<Arc<JobDef>> = {
            let core = self.shared.core.lock();
            core.job_names()
                .iter()
                .filter_map(|n| core.job(n))
                .filter(|e| e.enabled && e.last_scheduled.is_some())
                .map(|e| Arc::clone(&e.def))
                .collect()
        };
        for def in jobs {
            let last = self
                .shared
                .core
                .lock()
                .job(&def.name)
                .and_then(|e| e.last_scheduled);
            let (Some(schedule), Some(last)) = (&def.schedule, last) else {
                continue;
            };
            let keep = match def.catch_up {
                CatchUp::None => 0,
                CatchUp::Once => 1,
                CatchUp::All => def.catch_up_limit as usize,
            };
            let (count, latest) = missed_between(schedule, last, now, keep.max(1));
            let Some(newest) = latest.last().copied() else {
                continue;
            };
            let replay = &latest[latest.len().saturating_sub(keep)..];
            if let Some(entry) = self.shared.core.lock().job_mut(&def.name) {
                entry.missed_total += count;
                // Counted once: a second restart does not miss them again.
                entry.last_scheduled = Some(newest);
            }
            self.shared.journal_scheduled(&def.name, newest);
            log::warn!(
                "job {}: {count} scheduled run(s) missed while tickd was down (catch_up = {}; running {})",
                def.name,
                def.catch_up.as_str(),
                replay.len()
            );
            // One line per job however many are refused: with a large
            // catch_up_limit a full backlog refuses thousands in a row.
            let mut refused = 0usize;
            let mut first_refusal = None;
            for &at in replay {
                if self.claims() {
                    // Claimed like any occurrence: one another node already
                    // ran (or a later one) is not replayed.
                    let job: std::sync::Arc<str> = std::sync::Arc::from(def.name.as_str());
                    self.claim_occurrence(&job, at, def.overlap);
                    continue;
                }
                let new = NewRun {
                    scheduled_at: Some(at),
                    overlap: Some(Overlap::Queue),
                    catch_up: true,
                    ..NewRun::new(Trigger::Schedule, None)
                };
                if let Err(e) = self.start_run(&def.name, new) {
                    refused += 1;
                    first_refusal.get_or_insert_with(|| e.to_string());
                }
            }
            if let Some(why) = first_refusal {
                let prefix = format!("job {}: ", def.name);
                log::warn!(
                    "job {}: {refused} of {} catch-up run(s) not started: {}",
                    def.name,
                    replay.len(),
                    why.strip_prefix(&prefix).unwrap_or(&why)
                );
            }
        }
    }
}

/// How many due times of `schedule` fall in `(last, now]`, and the latest
/// `keep` of them, oldest first.
pub fn missed_between(
    schedule: &crate::schedule::Schedule,
    last: Timestamp,
    now: Timestamp,
    keep: usize,
) -> (u64, Vec<Timestamp>) {
    let mut count = 0u64;
    let mut latest = std::collections::VecDeque::with_capacity(keep.min(1024));
    let mut t = last;
    while count < MAX_MISSED_COUNTED {
        let Some(next) = schedule.next_after(t) else {
            break;
        };
        if next > now {
            break;
        }
        count += 1;
        if keep > 0 {
            if latest.len() == keep {
                latest.pop_front();
            }
            latest.push_back(next);
        }
        t = next;
    }
    (count, latest.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{parse_cron, parse_every};

    fn utc(s: &str) -> Timestamp {
        crate::time::text::parse(s).expect("timestamp")
    }

    #[test]
    fn missed_due_times_are_counted_and_the_latest_kept() {
        let every = parse_every("1m").expect("every");
        let last = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-01T00:10:30Z");
        let (count, kept) = missed_between(&every, last, now, 3);
        assert_eq!(count, 10);
        let want = [
            "2026-01-01T00:08:00Z",
            "2026-01-01T00:09:00Z",
            "2026-01-01T00:10:00Z",
        ];
        assert_eq!(kept, want.map(utc).to_vec());
        let (count, kept) = missed_between(&every, last, now, 0);
        assert_eq!((count, kept.len()), (10, 0));
        let (count, _) = missed_between(&every, now, now, 5);
        assert_eq!(count, 0);
    }

    #[test]
    fn cron_downtime_counts_cron_matches() {
        let daily = parse_cron("0 3 * * *").expect("cron");
        let last = utc("2026-01-01T03:00:00Z");
        let now = utc("2026-01-04T12:00:00Z");
        let (count, kept) = missed_between(&daily, last, now, 1);
        assert_eq!(count, 3);
        assert_eq!(kept.len(), 1);
        assert!(kept[0] > utc("2026-01-03T12:00:00Z"));
    }

    #[test]
    fn counting_is_bounded() {
        let every = parse_every("100ms").expect("every");
        let last = utc("2020-01-01T00:00:00Z");
        let now = utc("2026-01-01T00:00:00Z");
        let (count, kept) = missed_between(&every, last, now, 2);
        assert_eq!(count, MAX_MISSED_COUNTED);
        assert_eq!(kept.len(), 2);
    }
}
