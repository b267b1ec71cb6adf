//! Run counters for Prometheus: runs by job and terminal state, and a
//! run-duration histogram per job.
//!
//! A job's counters live in its entry in [`super::Core`], allocated at its
//! first run (a job that never ran shows zeros, and a million idle jobs
//! cost nothing here), and are updated in `Core::finish`, the one place a
//! run becomes terminal, so every run is counted exactly once. `/metrics`
//! reads a [`Snapshot`]. A job that stays across a reload keeps its series,
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
use std::sync::Arc;

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

/// The counters of ad-hoc `submit` runs (a configured job's are in its
/// entry).
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    /// `None` until the first one ends.
    submitted: Option<JobMetrics>,
}

impl RunMetrics {
    /// Counts an ad-hoc `submit` run (one with no job name) that ended in
    /// `state`; `seconds` is its duration if it started.
    pub fn record_submitted(&mut self, state: RunState, seconds: Option<f64>) {
        self.submitted
            .get_or_insert_with(JobMetrics::default)
            .record(state, seconds);
    }

    /// The ad-hoc runs' counters, once one has ended.
    pub fn submitted(&self) -> Option<&JobMetrics> {
        self.submitted.as_ref()
    }
}

/// The counters `/metrics` shows, copied out of the core: every configured
/// job by name (in name order) and the counters of those that have run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    names: Vec<Arc<str>>,
    /// (index into `names`, counters), in index order.
    ran: Vec<(usize, JobMetrics)>,
    submitted: Option<JobMetrics>,
}

/// What a job that never ran shows.
const ZERO: JobMetrics = JobMetrics {
    by_state: [0; TERMINAL.len()],
    buckets: [0; DURATION_BUCKETS.len()],
    over: 0,
    sum: 0.0,
    count: 0,
};

impl Snapshot {
    /// An empty snapshot with room for `jobs` names.
    pub fn with_capacity(jobs: usize) -> Self {
        Snapshot {
            names: Vec::with_capacity(jobs),
            ..Snapshot::default()
        }
    }

    /// Adds the next job (in name order) and its counters, if it has run.
    pub fn push(&mut self, name: Arc<str>, metrics: Option<&JobMetrics>) {
        if let Some(m) = metrics {
            self.ran.push((self.names.len(), m.clone()));
        }
        self.names.push(name);
    }

    /// Sets the ad-hoc runs' counters.
    pub fn set_submitted(&mut self, submitted: Option<&JobMetrics>) {
        self.submitted = submitted.cloned();
    }

    /// Every series as its `job_name` label value and counters: the
    /// configured jobs by name (zeros for one that never ran), then ad-hoc
    /// runs under [`SUBMITTED_LABEL`] once one has ended.
    pub fn series(&self) -> impl Iterator<Item = (&str, &JobMetrics)> {
        let mut ran = self.ran.iter().peekable();
        self.names
            .iter()
            .enumerate()
            .map(move |(i, name)| match ran.next_if(|(at, _)| *at == i) {
                Some((_, m)) => (&**name, m),
                None => (&**name, &ZERO),
            })
            .chain(self.submitted.iter().map(|m| (SUBMITTED_LABEL, m)))
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
        assert_eq!(ZERO, JobMetrics::default());
    }

    #[test]
    fn a_snapshot_shows_zeros_for_jobs_that_never_ran() {
        let mut ran = JobMetrics::default();
        ran.record(RunState::Failed, Some(0.1));
        let mut s = Snapshot::with_capacity(3);
        s.push("a".into(), None);
        s.push("b".into(), Some(&ran));
        s.push("c".into(), None);
        let series: Vec<(&str, [u64; 5])> = s.series().map(|(n, m)| (n, m.by_state)).collect();
        assert_eq!(
            series,
            [("a", [0; 5]), ("b", [0, 1, 0, 0, 0]), ("c", [0; 5])]
        );
    }

    #[test]
    fn submitted_runs_never_share_a_job_named_submitted() {
        let mut m = RunMetrics::default();
        assert!(m.submitted().is_none());
        m.record_submitted(RunState::Failed, Some(0.2));
        m.record_submitted(RunState::Failed, None);
        let mut job = JobMetrics::default();
        job.record(RunState::Succeeded, Some(0.1));
        let mut s = Snapshot::default();
        s.push("submitted".into(), Some(&job));
        s.set_submitted(m.submitted());
        let series: Vec<(&str, [u64; 5])> = s.series().map(|(n, s)| (n, s.by_state)).collect();
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
    }
}
