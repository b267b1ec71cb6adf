//! Compacting the journal without stalling the loop, and what the loop
//! makes of the journal thread's reports.
//!
//! Once the journal has grown enough (or after a failed write), the loop
//! begins a compaction and hands the journal thread a snapshot of its
//! state in pieces: every run it keeps (with the args and submitted job a
//! queued run needs to run after a restart), then each job's last
//! scheduled time and pause, then the jobs defined through the API (those
//! kept aside too), in name order. At most [`SLICE`] of each
//! loop turn goes to it; the rest of the turn serves clients and timers as
//! usual. The thread encodes nothing for it twice and writes the new file
//! on its own time (see [`crate::persist::GroupCommit`] for why a snapshot
//! taken piece by piece, while records keep coming, replays to the right
//! state).

use super::Daemon;
use crate::persist::{Record, Report, RunRecord};
use crate::state::run::RunId;
use std::time::{Duration, Instant};

/// The most one loop turn spends on the snapshot.
const SLICE: Duration = Duration::from_millis(1);

/// Records per piece handed over (the slice is checked between pieces).
const PIECE: usize = 256;

/// How far the snapshot has been handed over.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The ids of the runs still to hand over (taken from the end; their
    /// order does not matter: replay keeps each run's latest record). A
    /// run gone meanwhile (pruned from the history) is skipped; a run
    /// created meanwhile is in the records queued since.
    runs: Vec<RunId>,
    /// What of the jobs is being handed over.
    phase: Phase,
    /// ... after this name (None: from the first).
    after: Option<String>,
    /// All of it was handed over: the journal thread puts the new journal
    /// in place (kept until it says so, for the figures of the log line).
    sealed: bool,
    /// Records handed over, in how many loop turns, and the most CPU time
    /// one turn spent on them (the loop's own time, whatever else the
    /// machine ran meanwhile).
    records: usize,
    turns: u32,
    longest: Duration,
}

/// The parts of a snapshot after the runs, each in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Each job's last scheduled time and pause.
    Marks,
    /// The jobs defined through the API, in the job table...
    Api,
    /// ... and kept aside.
    Aside,
    /// All handed over.
    Done,
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Daemon {
    /// Begins a compaction when the journal has grown enough or writes
    /// failed (called after runs finish, and when a failed write is
    /// retried; cheap when there is nothing to do).
    pub(super) fn compact_journal_if_needed(&mut self) {
        let Some(journal) = &self.shared.journal else {
            return;
        };
        if self.snapshot.is_some() {
            return;
        }
        let began = thread_cpu();
        let health = &self.shared.board.state;
        if health.retry_at().is_some_and(|at| at > Instant::now()) {
            // Writes are failing: wait for the retry instead of trying
            // (and logging) on every finished run.
            return;
        }
        if !journal.needs_compaction() {
            if health.retry_at().is_some() {
                // What failed needs no rewrite (a record too large, a
                // directory sync): the journal takes appends.
                journal.request_sync();
                health.recovered("the journal takes appends");
            }
            return;
        }
        if !journal.begin_compaction() {
            // The journal thread is still putting the last one in place.
            return;
        }
        let runs: Vec<RunId> = self.shared.core.lock().all_runs().map(|r| r.id).collect();
        // Writes stay failing (in `status`) until it is in place.
        health.postpone_retry();
        // The pieces start next turn.
        self.snapshot = Some(Snapshot {
            runs,
            phase: Phase::Marks,
            after: None,
            sealed: false,
            records: 0,
            turns: 1,
            longest: thread_cpu().saturating_sub(began),
        });
    }

    /// When the loop must not sleep: while a snapshot is being handed over.
    pub(super) fn compaction_deadline(&self) -> Option<Instant> {
        self.snapshot
            .as_ref()
            .filter(|s| !s.sealed)
            .map(|_| Instant::now())
    }

    /// Hands over the next pieces of the snapshot (called every loop turn
    /// while a compaction is on).
    pub(super) fn continue_compaction(&mut self) {
        if self.snapshot.as_ref().is_some_and(|s| !s.sealed) {
            self.hand_over((Instant::now(), thread_cpu()));
        }
    }

    /// Hands over pieces of the snapshot for at most [`SLICE`] from
    /// `began` (the time, and the loop's CPU time), or all that is left;
    /// seals it once all is handed over.
    fn hand_over(&mut self, (began, began_cpu): (Instant, Duration)) {
        let Some(mut snapshot) = self.snapshot.take() else {
            return;
        };
        let Some(journal) = &self.shared.journal else {
            return;
        };
        let mut records = Vec::with_capacity(PIECE + 1);
        snapshot.turns += 1;
        loop {
            records.clear();
            self.snapshot_piece(&mut snapshot, &mut records);
            if records.is_empty() {
                journal.seal_compaction();
                snapshot.sealed = true;
            } else {
                snapshot.records += records.len();
                match journal.append_snapshot(&records) {
                    Ok(true) => {}
                    // The compaction failed; its report says why.
                    Ok(false) => return,
                    Err(e) => self
                        .shared
                        .write_failed(format!("journal compaction: a record was left out: {e}")),
                }
            }
            if snapshot.sealed || began.elapsed() >= SLICE {
                let cpu = thread_cpu().saturating_sub(began_cpu);
                snapshot.longest = snapshot.longest.max(cpu);
                self.snapshot = Some(snapshot);
                return;
            }
        }
    }

    /// The next piece of the snapshot (empty once all is handed over).
    fn snapshot_piece(&self, snapshot: &mut Snapshot, out: &mut Vec<Record>) {
        let core = self.shared.core.lock();
        while out.len() < PIECE {
            let Some(id) = snapshot.runs.pop() else {
                break;
            };
            let Some(run) = core.run(id) else {
                continue;
            };
            let (args, adhoc) = match self.inputs.get(&id) {
                Some(i) if !run.state.is_terminal() => (i.args.clone(), i.adhoc.clone()),
                _ => (None, None),
            };
            out.push(Record::Run(RunRecord::from_run(run, args, adhoc)));
        }
        while out.len() < PIECE && snapshot.phase != Phase::Done {
            let room = PIECE - out.len();
            let after = snapshot.after.as_deref();
            let mut last = None;
            match snapshot.phase {
                Phase::Marks => {
                    for (name, scheduled, paused) in core.job_marks_after(after).take(room) {
                        if let Some(at) = scheduled {
                            out.push(Record::Scheduled {
                                job: name.to_string(),
                                at,
                            });
                        }
                        if paused {
                            out.push(Record::Pause {
                                job: name.to_string(),
                                paused: true,
                            });
                        }
                        last = Some(name);
                    }
                }
                Phase::Api | Phase::Aside => {
                    let aside = snapshot.phase == Phase::Aside;
                    for (name, source) in core.api().sources_after(aside, after).take(room) {
                        out.extend(super::define::api_job_record(name, source));
                        last = Some(name);
                    }
                }
                Phase::Done => {}
            }
            match last {
                Some(name) => snapshot.after = Some(name.to_string()),
                None => {
                    snapshot.after = None;
                    snapshot.phase = match snapshot.phase {
                        Phase::Marks => Phase::Api,
                        Phase::Api => Phase::Aside,
                        Phase::Aside | Phase::Done => Phase::Done,
                    };
                }
            }
        }
    }

    /// While journal writes are failing, retries them when it is time.
    pub(super) fn retry_journal(&mut self, now: Instant) {
        if self
            .shared
            .board
            .state
            .retry_at()
            .is_some_and(|at| at <= now)
        {
            self.compact_journal_if_needed();
        }
    }

    /// Takes a report of the journal thread (the server answers the
    /// requests waiting on it): failures are counted and retried,
    /// compactions logged.
    pub fn on_journal(&mut self, report: &Report) {
        let health = &self.shared.board.state;
        match report {
            Report::Durable(_) => {}
            Report::Failed { upto, error } => self.shared.write_failed(format!(
                "could not make the journal durable (records up to #{upto}): {error}"
            )),
            Report::Compacted { from, to } => {
                let loop_side = match self.snapshot.take() {
                    Some(s) => format!(
                        "; the loop handed over {} records in {} turns, at most {} µs of CPU a turn",
                        s.records,
                        s.turns,
                        s.longest.as_micros()
                    ),
                    None => String::new(),
                };
                log::info!("state_dir: journal compacted from {from} to {to} bytes{loop_side}");
                health.recovered("the journal was rewritten from memory");
            }
            Report::CompactionFailed { error, .. } => {
                self.snapshot = None;
                self.shared.write_failed(error.clone());
            }
        }
    }
}
