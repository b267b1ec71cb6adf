//! How skipped scheduled runs are logged: a job that keeps coming due
//! while it cannot run (a long run under `overlap = "skip"`, a full queue)
//! would otherwise log a line per due time — ten a second for
//! `every = "100ms"` behind a one-minute run.
//!
//! For each job, the first skip of a streak is logged in full; while the
//! streak lasts, at most one line per [`SUMMARY_EVERY`] says how many more
//! were skipped; when a scheduled run of the job is queued again, one line
//! says how many were skipped since the last line. `skipped_total` in the
//! job object counts every skip either way. A streak's entry lives only
//! while it lasts, and [`SkipLog::forget`] drops those of removed jobs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// During a streak, at most one line per this long.
pub(super) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// One job's current streak of skipped scheduled runs.
#[derive(Debug)]
struct Streak {
    /// When its last line was logged.
    logged_at: Instant,
    /// Skips since that line.
    unlogged: u64,
}

/// What to log for a skip or for the end of a streak.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// Nothing now.
    Quiet,
    /// The skip itself (the first of a streak).
    First,
    /// The skip, with this many left unlogged since the last line.
    Summary(u64),
}

/// The streaks of every job that is skipping now.
#[derive(Debug, Default)]
pub(super) struct SkipLog {
    streaks: HashMap<String, Streak>,
}

impl SkipLog {
    /// A scheduled run of `job` was skipped at `now`: what to log.
    pub(super) fn skipped(&mut self, job: &str, now: Instant) -> Line {
        match self.streaks.get_mut(job) {
            None => {
                let streak = Streak {
                    logged_at: now,
                    unlogged: 0,
                };
                self.streaks.insert(job.to_string(), streak);
                Line::First
            }
            Some(s) if now >= s.logged_at + SUMMARY_EVERY => {
                s.logged_at = now;
                Line::Summary(std::mem::take(&mut s.unlogged))
            }
            Some(s) => {
                s.unlogged += 1;
                Line::Quiet
            }
        }
    }

    /// A scheduled run of `job` was queued: its streak ends. Returns the
    /// skips not logged yet, if any.
    pub(super) fn ran(&mut self, job: &str) -> Option<u64> {
        if self.streaks.is_empty() {
            return None;
        }
        self.streaks
            .remove(job)
            .map(|s| s.unlogged)
            .filter(|&n| n > 0)
    }

    /// Forgets the streak of `job` (removed): O(1), so a reload removing
    /// many jobs forgets each in constant time.
    pub(super) fn forget(&mut self, job: &str) {
        if !self.streaks.is_empty() {
            self.streaks.remove(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_is_one_line_then_one_a_minute_then_one_at_its_end() {
        let mut log = SkipLog::default();
        let t0 = Instant::now();
        assert_eq!(log.skipped("a", t0), Line::First);
        for i in 1..=10 {
            assert_eq!(
                log.skipped("a", t0 + Duration::from_millis(100 * i)),
                Line::Quiet
            );
        }
        assert_eq!(log.skipped("b", t0), Line::First, "streaks are per job");
        assert_eq!(log.skipped("a", t0 + SUMMARY_EVERY), Line::Summary(10));
        assert_eq!(log.skipped("a", t0 + SUMMARY_EVERY), Line::Quiet);
        assert_eq!(log.ran("a"), Some(1));
        assert_eq!(log.ran("a"), None, "the streak is over");
        assert_eq!(log.skipped("a", t0 + SUMMARY_EVERY), Line::First);
        assert_eq!(log.ran("a"), None, "nothing left unlogged");
    }

    #[test]
    fn removed_jobs_lose_their_streak() {
        let mut log = SkipLog::default();
        let t0 = Instant::now();
        log.skipped("gone", t0);
        log.skipped("kept", t0);
        log.forget("gone");
        assert_eq!(log.streaks.len(), 1);
        assert_eq!(log.skipped("gone", t0), Line::First);
    }
}
