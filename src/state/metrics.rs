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
//!
//! Runs of ad-hoc `submit`ted jobs are counted apart from every configured
//! job, under [`SUBMITTED_LABEL`], a value no job name can take: a job
//! that happens to be called `submitted` keeps its own series, and a reload
//! that removes it leaves the ad-hoc counters alone.

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
}

impl JobMetrics {
    /// Counts one run that ended in `state`, lasting `seconds` if it started.
    fn record(&mut self, state: RunState, seconds: Option<f64>) {
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

/// Counters of every configured job, by name, and of ad-hoc runs.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    jobs: BTreeMap<String, JobMetrics>,
    /// Ad-hoc `submit` runs; `None` until the first one ends.
    submitted: Option<JobMetrics>,
    /// Every run counted since the start, of any job (removed since or
    /// not) and ad-hoc: what `/metrics` shows without per-job series, kept
    /// as runs end so that showing it costs nothing at any job count.
    total: JobMetrics,
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
        self.total.record(state, seconds);
        self.declare(job);
        if let Some(m) = self.jobs.get_mut(job) {
            m.record(state, seconds);
        }
    }

    /// Counts an ad-hoc `submit` run (one with no job name) that ended in
    /// `state`; `seconds` is its duration if it started.
    pub fn record_submitted(&mut self, state: RunState, seconds: Option<f64>) {
        self.total.record(state, seconds);
        self.submitted
            .get_or_insert_with(JobMetrics::default)
            .record(state, seconds);
    }

    /// Drops `job`'s series (the job was removed by a reload).
    pub fn forget(&mut self, job: &str) {
        self.jobs.remove(job);
    }

    /// Every job's counters, by name.
    pub fn jobs(&self) -> &BTreeMap<String, JobMetrics> {
        &self.jobs
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

    /// Every series as its `job_name` label value and counters: the
    /// configured jobs by name, then ad-hoc runs under [`SUBMITTED_LABEL`]
    /// once one has ended.
    pub fn series(&self) -> impl Iterator<Item = (&str, &JobMetrics)> {
        self.jobs
            .iter()
            .map(|(name, m)| (name.as_str(), m))
            .chain(self.submitted.iter().map(|m| (SUBMITTED_LABEL, m)))
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

    #[test]
    fn submitted_runs_never_share_a_job_named_submitted() {
        let mut m = RunMetrics::default();
        assert_eq!(m.series().count(), 0);
        m.declare("submitted");
        m.record("submitted", RunState::Succeeded, Some(0.1));
        m.record_submitted(RunState::Failed, Some(0.2));
        m.record_submitted(RunState::Failed, None);
        let series: Vec<(&str, [u64; 5])> = m.series().map(|(n, s)| (n, s.by_state)).collect();
        assert_eq!(
            series,
            [
                ("submitted", [1, 0, 0, 0, 0]),
                (SUBMITTED_LABEL, [0, 2, 0, 0, 0])
            ]
        );
        // Outside the characters of a job name (config::values::is_job_name).
        assert!(!SUBMITTED_LABEL
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
        // A reload removing the job leaves the ad-hoc series alone.
        m.forget("submitted");
        let names: Vec<&str> = m.series().map(|(n, _)| n).collect();
        assert_eq!(names, [SUBMITTED_LABEL]);
        // The total keeps every run, the removed job's included.
        assert_eq!(m.total().by_state, [1, 2, 0, 0, 0]);
        assert_eq!(m.total().count, 2);
    }
}
