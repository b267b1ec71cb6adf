//! Run counters for Prometheus: runs by job and terminal state, and a
//! run-duration histogram per job.
//!
//! A job's counters live in its entry in [`super::Core`], allocated at its
//! first run (a job that never ran shows zeros, and a million idle jobs
//! cost nothing here), and are updated in `Core::finish`, the one place a
//! run becomes terminal, so every run is counted exactly once. `/metrics`
//! copies them a slice of jobs at a time ([`super::Core::metrics_slice`]).
//! A job that stays across a reload keeps its series,
//! so its counters never go backwards. A job removed by a reload loses them
//! (Prometheus sees the series end), so renaming jobs over and over does not
//! grow memory or cardinality; if the job comes back, its counters start
//! again from zero, which Prometheus reads as a counter reset, as it does
//! for every series at each start of the daemon.
//!
//! Runs of ad-hoc `submit`ted jobs are counted apart from every configured
//! job, under [`SUBMITTED_LABEL`], a value no job name can take: a job
//! that happens to be called `submitted` keeps its own series, and a reload
//! that removes it leaves the ad-hoc counters alone.

use super::run::RunState;

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

/// The `job_name` label value of ad-hoc `submit` runs. Parentheses are
/// outside the characters of a job name (`[A-Za-z0-9_.-]`), so no
/// configured job can share these series; logs and `tickd ctl watch` name
/// such runs the same way.
pub const SUBMITTED_LABEL: &str = "(submitted)";

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
    /// When a run of the job last succeeded (Unix seconds, with fractions).
    pub last_success: Option<f64>,
}

impl JobMetrics {
    /// Counts one run that ended in `state`, lasting `seconds` if it started.
    pub(super) fn record(&mut self, state: RunState, seconds: Option<f64>) {
        if let Some(i) = TERMINAL.iter().position(|&s| s == state) {
            self.by_state[i] += 1;
        }
        if let Some(secs) = seconds {
            match DURATION_BUCKETS.iter().position(|&le| secs <= le) {
                Some(i) => self.buckets[i] += 1,
                None => self.over += 1,
            }
            self.sum += secs;
            self.count += 1;
        }
    }

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

/// The counters of ad-hoc `submit` runs and of all runs together (a
/// configured job's own are in its entry).
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    /// Ad-hoc `submit` runs; `None` until the first one ends.
    submitted: Option<JobMetrics>,
    /// Every run counted since the start, of any job (removed since or
    /// not) and ad-hoc: what `/metrics` shows without per-job series, kept
    /// as runs end so that showing it costs nothing at any job count.
    total: JobMetrics,
}

impl RunMetrics {
    /// Counts a run of a configured job (its own series are counted by
    /// the caller) that ended in `state`; `seconds` is its duration if it
    /// started.
    pub fn record(&mut self, state: RunState, seconds: Option<f64>) {
        self.total.record(state, seconds);
    }

    /// Counts an ad-hoc `submit` run (one with no job name) that ended in
    /// `state`; `seconds` is its duration if it started.
    pub fn record_submitted(&mut self, state: RunState, seconds: Option<f64>) {
        self.total.record(state, seconds);
        self.submitted
            .get_or_insert_with(JobMetrics::default)
            .record(state, seconds);
    }

    /// Every run counted since the start, whatever its job: never goes
    /// backwards (a job's removal leaves its runs in it).
    pub fn total(&self) -> &JobMetrics {
        &self.total
    }

    /// The counters of ad-hoc `submit` runs, once one has ended.
    pub fn submitted(&self) -> Option<&JobMetrics> {
        self.submitted.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_land_in_their_state_and_bucket() {
        let mut a = JobMetrics::default();
        a.record(RunState::Succeeded, Some(0.003));
        a.record(RunState::Failed, Some(2.0));
        a.record(RunState::Cancelled, None);
        a.record(RunState::TimedOut, Some(7200.0));
        assert_eq!(a.by_state, [1, 1, 1, 1, 0]);
        assert_eq!(a.count, 3);
        assert_eq!(a.over, 1);
        let cum = a.cumulative();
        assert_eq!(cum[0], 1);
        assert_eq!(cum[DURATION_BUCKETS.len() - 1], 2);
        assert!((a.sum - 7202.003).abs() < 1e-9);
    }

    #[test]
    fn the_total_counts_every_run_and_submitted_runs_apart() {
        let mut m = RunMetrics::default();
        assert!(m.submitted().is_none());
        m.record(RunState::Succeeded, Some(0.1));
        m.record_submitted(RunState::Failed, Some(0.2));
        m.record_submitted(RunState::Failed, None);
        assert_eq!(m.submitted().map(|s| s.by_state), Some([0, 2, 0, 0, 0]));
        assert_eq!(m.total().by_state, [1, 2, 0, 0, 0]);
        assert_eq!(m.total().count, 2);
        // Outside the characters of a job name (config::values::is_job_name).
        assert!(!SUBMITTED_LABEL
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    }
}
