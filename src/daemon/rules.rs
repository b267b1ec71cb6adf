//! The decisions of dispatch as pure functions: whether a new run of a job
//! is refused, waits in the job's backlog or goes to the pool
//! ([`admit`]), and what follows the end of a run ([`after_end`]: a retry
//! after its backoff, the `on_failure` job, or nothing).
//!
//! [`super::dispatch`] applies them on the loop thread; here they take
//! plain values, so every case is tested without a pool or a clock.

use crate::config::{JobDef, Overlap};
use crate::state::run::RunState;
use std::time::Duration;

/// The longest delay between two attempts, however many retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What becomes of a new run of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Refused: a run of the job is active and `overlap = skip`.
    Overlapping,
    /// Refused: `overlap = queue` and the job's backlog is full.
    BacklogFull,
    /// Waits in the job's backlog for the active run (`overlap = queue`).
    Backlog,
    /// Refused: the pool's run queue is full.
    QueueFull,
    /// Goes to the pool now.
    Dispatch,
}

/// Decides a new run's fate from the job's overlap policy, whether a run
/// of it is active or waiting (`busy`), its backlog's length and capacity,
/// and whether the pool's queue has room.
///
/// A run that overlaps is refused (`skip`) or queued behind the active one
/// (`queue`) before the pool's room matters: only a run that would go to
/// the pool now can be refused for a full queue.
pub fn admit(
    policy: Overlap,
    busy: bool,
    backlog: usize,
    backlog_cap: usize,
    queue_room: bool,
) -> Admission {
    match (policy, busy) {
        (Overlap::Skip, true) => Admission::Overlapping,
        (Overlap::Queue, true) if backlog >= backlog_cap => Admission::BacklogFull,
        (Overlap::Queue, true) => Admission::Backlog,
        _ if !queue_room => Admission::QueueFull,
        _ => Admission::Dispatch,
    }
}

/// The wait before attempt `next_attempt` (2 = first retry): `first`,
/// doubling per attempt, capped at [`MAX_BACKOFF`].
pub fn backoff(first: Duration, next_attempt: u32) -> Duration {
    let doublings = next_attempt.saturating_sub(2).min(31);
    first
        .checked_mul(1u32 << doublings)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// What follows the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterEnd<'a> {
    /// Nothing: it succeeded or was cancelled, or it failed with no
    /// retry left and no `on_failure` job.
    Done,
    /// Run it again as attempt `attempt`, after `delay`.
    Retry {
        /// The attempt number of the retry (2 = first retry).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// The last attempt failed: start this job (`on_failure`).
    OnFailure(&'a str),
}

/// What follows a run of `def` that ended in `state` at attempt `attempt`
/// (1-based): a failure (`failed`, `timed_out`) is retried `def.retries`
/// times, then hands over to `def.on_failure`.
pub fn after_end(state: RunState, attempt: u32, def: &JobDef) -> AfterEnd<'_> {
    if !state.is_failure() {
        return AfterEnd::Done;
    }
    if attempt <= def.retries {
        let next = attempt + 1;
        return AfterEnd::Retry {
            attempt: next,
            delay: backoff(def.retry_backoff, next),
        };
    }
    match def.on_failure.as_deref() {
        Some(target) => AfterEnd::OnFailure(target),
        None => AfterEnd::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    #[test]
    fn an_idle_job_goes_to_the_pool_unless_its_queue_is_full() {
        for policy in [Overlap::Skip, Overlap::Queue, Overlap::Allow] {
            assert_eq!(admit(policy, false, 0, 4, true), Admission::Dispatch);
            assert_eq!(admit(policy, false, 0, 4, false), Admission::QueueFull);
        }
    }

    #[test]
    fn a_busy_job_follows_its_overlap_policy() {
        // skip: refused, whatever the room.
        assert_eq!(
            admit(Overlap::Skip, true, 0, 4, true),
            Admission::Overlapping
        );
        assert_eq!(
            admit(Overlap::Skip, true, 0, 4, false),
            Admission::Overlapping
        );
        // queue: waits behind the active run while the backlog has room,
        // even with the pool's queue full (it is dispatched later).
        assert_eq!(admit(Overlap::Queue, true, 3, 4, true), Admission::Backlog);
        assert_eq!(admit(Overlap::Queue, true, 0, 4, false), Admission::Backlog);
        assert_eq!(
            admit(Overlap::Queue, true, 4, 4, true),
            Admission::BacklogFull
        );
        // allow: one more in the pool, if it has room.
        assert_eq!(admit(Overlap::Allow, true, 0, 4, true), Admission::Dispatch);
        assert_eq!(
            admit(Overlap::Allow, true, 0, 4, false),
            Admission::QueueFull
        );
    }

    #[test]
    fn backoff_doubles_from_the_first_delay_and_caps_at_five_minutes() {
        let first = Duration::from_secs(1);
        let waits: Vec<u64> = (2..=12).map(|a| backoff(first, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(first, u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(3600), 2), MAX_BACKOFF);
    }

    fn job(extra: &str) -> JobDef {
        let text = format!(
            "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n{extra}\n\
             [[jobs]]\nname = \"alarm\"\ncommand = [\"true\"]\n"
        );
        let cfg = config::parse(&text, Path::new("t.toml")).expect("valid config");
        cfg.jobs[0].clone()
    }

    #[test]
    fn failures_are_retried_then_hand_over_to_on_failure() {
        let def = job("retries = 2\nretry_backoff = \"1s\"\non_failure = \"alarm\"");
        let retry = |attempt, secs| AfterEnd::Retry {
            attempt,
            delay: Duration::from_secs(secs),
        };
        assert_eq!(after_end(RunState::Failed, 1, &def), retry(2, 1));
        assert_eq!(after_end(RunState::TimedOut, 2, &def), retry(3, 2));
        assert_eq!(
            after_end(RunState::Failed, 3, &def),
            AfterEnd::OnFailure("alarm")
        );
        for state in [
            RunState::Succeeded,
            RunState::Cancelled,
            RunState::Interrupted,
        ] {
            assert_eq!(after_end(state, 1, &def), AfterEnd::Done, "{state:?}");
        }
    }

    #[test]
    fn without_retries_or_on_failure_a_failure_ends_there() {
        let def = job("");
        assert_eq!(after_end(RunState::Failed, 1, &def), AfterEnd::Done);
        let def = job("on_failure = \"alarm\"");
        assert_eq!(
            after_end(RunState::Failed, 1, &def),
            AfterEnd::OnFailure("alarm")
        );
    }
}
