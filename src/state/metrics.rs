//! Run counters for Prometheus: runs by job and terminal state, and a
//! run-duration histogram per job.
//!
//! They live beside the run records in [`super::Core`] and are updated in
//! `Core::finish`, the one place a run becomes terminal, so every run is
//! counted exactly once. A job that stays across a reload keeps its series,
//! so its counters never go backwards. A job removed by a reload loses them
//! (Prometheus sees the series end), so renaming jobs over and over does not
//! grow memory or cardinality; if the job comes back, its counters start
//! again from zero, which Prometheus reads as a counter reset, as it does
//! for every series at each start of the daemon.

use super::run::RunState;
use std::collections::BTreeMap;

/// Upper bounds (seconds) of the duration histogram's buckets: from a
/// quick command to an hour-long backup.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0,
];

/// The terminal states, in the order of [`JobMetrics::by_state`].
pub const TERMINAL: [RunState; 5] = [
    RunState::Succeeded,
    RunState::Failed,
    RunState::TimedOut,
    RunState::Cancelled,
    RunState::Interrupted,
];

/// One job's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMetrics {
    /// Runs ended in each of [`TERMINAL`].
    pub by_state: [u64; TERMINAL.len()],
    /// Runs that started, per bucket of [`DURATION_BUCKETS`] (not cumulative).
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Started runs slower than the last bucket.
    pub over: u64,
    /// Total seconds of started runs.
    pub sum: f64,
    /// Started runs.
    pub count: u64,
}

impl JobMetrics {
    /// Cumulative bucket counts, as the exposition format wants them.
    pub fn cumulative(&self) -> [u64; DURATION_BUCKETS.len()] {
        let mut out = self.buckets;
        let mut total = 0;
        for b in &mut out {
            total += *b;
            *b = total;
        }
        out
    }
}

/// Counters of every configured job (and ad-hoc runs), by name.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    jobs: BTreeMap<String, JobMetrics>,
}

impl RunMetrics {
    /// Makes sure `job` has (zero) series, so a configured job shows up
    /// before its first run.
    pub fn declare(&mut self, job: &str) {
        if !self.jobs.contains_key(job) {
            self.jobs.insert(job.to_string(), JobMetrics::default());
        }
    }

    /// Counts a run of `job` that ended in `state`; `seconds` is its
    /// duration if it started.
    pub fn record(&mut self, job: &str, state: RunState, seconds: Option<f64>) {
        self.declare(job);
        let Some(m) = self.jobs.get_mut(job) else {
            return;
        };
        if let Some(i) = TERMINAL.iter().position(|&s| s == state) {
            m.by_state[i] += 1;
        }
        if let Some(secs) = seconds {
            match DURATION_BUCKETS.iter().position(|&le| secs <= le) {
                Some(i) => m.buckets[i] += 1,
                None => m.over += 1,
            }
            m.sum += secs;
            m.count += 1;
        }
    }

    /// Drops `job`'s series (the job was removed by a reload).
    pub fn forget(&mut self, job: &str) {
        self.jobs.remove(job);
    }

    /// Every job's counters, by name.
    pub fn jobs(&self) -> &BTreeMap<String, JobMetrics> {
        &self.jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_land_in_their_state_and_bucket() {
        let mut m = RunMetrics::default();
        m.declare("idle");
        m.record("a", RunState::Succeeded, Some(0.003));
        m.record("a", RunState::Failed, Some(2.0));
        m.record("a", RunState::Cancelled, None);
        m.record("a", RunState::TimedOut, Some(7200.0));
        let a = &m.jobs()["a"];
        assert_eq!(a.by_state, [1, 1, 1, 1, 0]);
        assert_eq!(a.count, 3);
        assert_eq!(a.over, 1);
        let cum = a.cumulative();
        assert_eq!(cum[0], 1);
        assert_eq!(cum[DURATION_BUCKETS.len() - 1], 2);
        assert!((a.sum - 7202.003).abs() < 1e-9);
        assert_eq!(m.jobs()["idle"], JobMetrics::default());
    }

    #[test]
    fn a_forgotten_job_loses_its_series_and_starts_again_from_zero() {
        let mut m = RunMetrics::default();
        m.record("gone", RunState::Succeeded, Some(0.1));
        m.record("kept", RunState::Failed, Some(0.1));
        m.forget("gone");
        assert!(!m.jobs().contains_key("gone"));
        assert_eq!(m.jobs()["kept"].by_state, [0, 1, 0, 0, 0]);
        m.declare("gone");
        assert_eq!(m.jobs()["gone"], JobMetrics::default());
    }
}
