//! A run: one execution (or attempt) of a job, from queued to a final state.
//!
//! Run records are what operators look at to learn what happened, so every
//! run that was accepted ends in exactly one terminal state with an error
//! message when it did not succeed; none is left `running` forever.

use crate::time::{self, Timestamp};
use serde_json::Value;

/// Run ids are unique for the daemon's life; shown as strings on the wire.
pub type RunId = u64;

/// A map keyed by run id, hashed with [`IdHasher`].
pub type RunMap<V> = std::collections::HashMap<RunId, V, IdHash>;

/// Builds [`IdHasher`]s.
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// The hasher of maps keyed by run id: one multiplication (Fibonacci
/// hashing) instead of SipHash, which a map of every run in memory pays
/// for on every insert and look-up (a herd of 100,000 runs queued at once
/// makes several per run). Run ids are the daemon's own sequence, never a
/// client's choice, so there is no flooding of one bucket to defend
/// against.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u64` keys; a plain fold for anything else.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // The high bits (which hashbrown uses for its tags) depend on
        // every bit of the id, and consecutive ids spread out.
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Asked for later (`jobs.run {delay | at}`): waiting for its time.
    Scheduled,
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker is executing it.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error (non-zero exit, spawn failure, panic...).
    Failed,
    /// Killed because it ran past its `timeout`.
    TimedOut,
    /// Cancelled by `runs.cancel` or by shutdown.
    Cancelled,
    /// Was running when the daemon crashed.
    Interrupted,
}

impl RunState {
    /// Every state, in life order.
    pub const ALL: [RunState; 8] = [
        RunState::Scheduled,
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Interrupted,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the run can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunState::Scheduled | RunState::Queued | RunState::Running
        )
    }

    /// True for the outcomes counted as failures (and, later, retried).
    pub fn is_failure(self) -> bool {
        matches!(self, RunState::Failed | RunState::TimedOut)
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The job's schedule came due.
    Schedule,
    /// `jobs.run` (or the HTTP/CLI equivalent).
    Manual,
    /// An ad-hoc job from `submit`.
    Submit,
    /// A retry after a failed attempt.
    Retry,
    /// Another job's `on_failure`.
    OnFailure,
    /// Another job's `on_success`.
    OnSuccess,
    /// Every job of its `after` succeeded (a join).
    After,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 7] = [
        Trigger::Schedule,
        Trigger::Manual,
        Trigger::Submit,
        Trigger::Retry,
        Trigger::OnFailure,
        Trigger::OnSuccess,
        Trigger::After,
    ];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Submit => "submit",
            Trigger::Retry => "retry",
            Trigger::OnFailure => "on_failure",
            Trigger::OnSuccess => "on_success",
            Trigger::After => "after",
        }
    }
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Unique id.
    pub id: RunId,
    /// The job's name (None for ad-hoc submitted jobs).
    pub job: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// Current state.
    pub state: RunState,
    /// 1 for the first attempt, counting up with retries.
    pub attempt: u32,
    /// When it was accepted.
    pub queued_at: Timestamp,
    /// When a worker started it.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// The program's exit status, for exec jobs that exited.
    pub exit_code: Option<i32>,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// The tail of the output (exec) or a summary (other kinds).
    pub output: String,
    /// Last progress the job reported, 0.0..=1.0.
    pub progress: Option<f64>,
    /// For scheduled runs, the time it was due.
    pub scheduled_at: Option<Timestamp>,
    /// The child's pid while an exec run is running.
    pub pid: Option<u32>,
    /// Kind-specific facts about how it ended (see `Finish::result`).
    pub result: Option<Value>,
    /// A scheduled run replaying a due time missed while the daemon was
    /// down (`catch_up`).
    pub catch_up: bool,
    /// The run that triggered this one (`on_failure`, `on_success`; for
    /// `after`, the upstream run that completed the join).
    pub parent_run_id: Option<RunId>,
    /// The offset of `output`'s first byte in everything the run printed
    /// (more than 0 when only the tail is kept; not journaled: 0 after a
    /// restart). See `runs.output`.
    pub output_from: u64,
}

impl Run {
    /// A fresh queued run.
    pub fn queued(id: RunId, job: Option<String>, trigger: Trigger, attempt: u32) -> Self {
        Run {
            id,
            job,
            trigger,
            state: RunState::Queued,
            attempt,
            queued_at: time::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
            output: String::new(),
            progress: None,
            scheduled_at: None,
            pid: None,
            result: None,
            catch_up: false,
            parent_run_id: None,
            output_from: 0,
        }
    }

    /// Milliseconds from start to finish (or until now while running).
    pub fn duration_ms(&self) -> Option<u64> {
        let start = self.started_at.as_ref()?;
        let end = self.finished_at.unwrap_or_else(time::now);
        Some(time::millis_between(start, &end))
    }

    /// The run object of the protocol, ready to serialize without building
    /// a `Value` tree (what `jobs.list` and `jobs.get` do for many runs).
    pub fn view(&self) -> RunView<'_> {
        RunView {
            run_id: self.id.to_string(),
            job: self.job.as_deref(),
            trigger: self.trigger.as_str(),
            state: self.state.as_str(),
            attempt: self.attempt,
            queued_at: time::rfc3339(&self.queued_at),
            started_at: self.started_at.as_ref().map(time::rfc3339),
            finished_at: self.finished_at.as_ref().map(time::rfc3339),
            duration_ms: self.duration_ms(),
            exit_code: self.exit_code,
            error: self.error.as_deref(),
            output: &self.output,
            progress: self.progress,
            scheduled_at: self.scheduled_at.as_ref().map(time::rfc3339),
            pid: self.pid,
            result: self.result.as_ref(),
            catch_up: self.catch_up,
            lateness_us: self.lateness_us(),
            pickup_us: self
                .started_at
                .as_ref()
                .map(|s| time::micros_between(&self.queued_at, s)),
            node: node_name(),
            parent_run_id: self.parent_run_id.map(|p| p.to_string()),
        }
    }

    /// For a scheduled run that has started: how long after its due time,
    /// in microseconds (`started_at - scheduled_at` at full resolution; the
    /// wire's timestamps only show milliseconds).
    pub fn lateness_us(&self) -> Option<i64> {
        let due = self.scheduled_at.as_ref()?;
        let started = self.started_at.as_ref()?;
        Some(time::micros_between(due, started))
    }

    /// The run object of the protocol as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }
}

/// The run object's fields, borrowed from a [`Run`], in wire order.
#[derive(Debug, serde::Serialize)]
pub struct RunView<'a> {
    run_id: String,
    job: Option<&'a str>,
    trigger: &'static str,
    state: &'static str,
    attempt: u32,
    queued_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    duration_ms: Option<u64>,
    exit_code: Option<i32>,
    error: Option<&'a str>,
    output: &'a str,
    progress: Option<f64>,
    scheduled_at: Option<String>,
    pid: Option<u32>,
    result: Option<&'a Value>,
    catch_up: bool,
    /// Extra field: `started_at - scheduled_at` in µs (scheduled runs).
    lateness_us: Option<i64>,
    /// Extra field: `started_at - queued_at` in µs, the wait for a worker.
    pickup_us: Option<i64>,
    /// The run that triggered this one (`on_failure`, `on_success`).
    parent_run_id: Option<String>,
    /// In cluster mode: the node that runs it (this one: a run kept in
    /// this node's memory is its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'static str>,
}

/// This node's name in cluster mode (set once, at start).
static NODE: std::sync::OnceLock<Box<str>> = std::sync::OnceLock::new();

/// Sets this node's name, shown as `node` on its runs (cluster mode).
pub fn set_node_name(name: &str) {
    let _ = NODE.set(name.into());
}

/// This node's name in cluster mode.
pub fn node_name() -> Option<&'static str> {
    NODE.get().map(|n| &**n)
}

impl RunView<'_> {
    /// Started and not finished: its `duration_ms` follows the clock.
    pub fn is_running(&self) -> bool {
        self.started_at.is_some() && self.finished_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in [
            "queued",
            "running",
            "succeeded",
            "failed",
            "timed_out",
            "cancelled",
            "interrupted",
        ] {
            assert_eq!(RunState::parse(s).map(RunState::as_str), Some(s));
        }
        assert_eq!(RunState::parse("bogus"), None);
    }

    #[test]
    fn run_object_has_the_contract_fields() {
        let r = Run::queued(42, Some("j".into()), Trigger::Manual, 1);
        let v = r.to_json();
        for key in [
            "run_id",
            "job",
            "trigger",
            "state",
            "attempt",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "exit_code",
            "error",
            "output",
            "progress",
            "scheduled_at",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["run_id"], "42");
        assert_eq!(v["state"], "queued");
        assert_eq!(v["trigger"], "manual");
    }

    #[test]
    fn lateness_and_pickup_are_in_microseconds() {
        let mut r = Run::queued(1, Some("j".into()), Trigger::Schedule, 1);
        let due = r.queued_at - jiff::SignedDuration::from_micros(300);
        r.scheduled_at = Some(due);
        assert_eq!(r.to_json()["lateness_us"], Value::Null, "not started yet");
        r.started_at = Some(r.queued_at + jiff::SignedDuration::from_micros(1_200));
        let v = r.to_json();
        assert_eq!(v["lateness_us"], 1_500);
        assert_eq!(v["pickup_us"], 1_200);
        r.scheduled_at = None;
        assert_eq!(
            r.to_json()["lateness_us"],
            Value::Null,
            "manual runs have none"
        );
    }
}
