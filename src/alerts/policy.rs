//! Which ended runs make a message: a job's `notify_on`, as pure functions
//! of the run's state and the job's last outcome.
//!
//! A run's *outcome* is what a person alerted cares about: success, or a
//! failure with no retry left (a failed attempt that will be retried is
//! not an outcome yet, and a cancelled or interrupted run is none at all).
//! - `failure`: one message per failed outcome;
//! - `change`: one when the job starts failing (a failed outcome after a
//!   success, or as its first outcome) and one when it recovers (the first
//!   success after a failed outcome): a job failing every 10 s for an
//!   hour gives two messages, not 360;
//! - `always`: one per ended run, attempts and cancels included.

use crate::config::NotifyOn;
use crate::state::run::RunState;

/// A job's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A run succeeded.
    Success,
    /// A run failed or timed out with no retry left.
    Failure,
}

/// Why a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The run failed or timed out.
    Failed,
    /// The run succeeded after the job's last outcome was a failure.
    Recovered,
    /// The run succeeded (`always`).
    Succeeded,
    /// The run ended otherwise: cancelled, interrupted (`always`).
    Ended,
}

impl Event {
    /// The name in messages (`event`).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Recovered => "recovered",
            Event::Succeeded => "succeeded",
            Event::Ended => "ended",
        }
    }
}

/// The outcome of a run that ended in `state`; `retry_left` when a failed
/// one will be tried again.
pub fn outcome(state: RunState, retry_left: bool) -> Option<Outcome> {
    match state {
        RunState::Succeeded => Some(Outcome::Success),
        s if s.is_failure() && !retry_left => Some(Outcome::Failure),
        _ => None,
    }
}

/// The message, if any, for a run that ended in `state` with `now` as its
/// outcome, when the job's outcome before it was `last` (`None`: none
/// known).
pub fn decide(
    on: NotifyOn,
    state: RunState,
    now: Option<Outcome>,
    last: Option<Outcome>,
) -> Option<Event> {
    let recovered = last == Some(Outcome::Failure) && now == Some(Outcome::Success);
    match on {
        NotifyOn::Failure => (now == Some(Outcome::Failure)).then_some(Event::Failed),
        NotifyOn::Change => match now {
            Some(Outcome::Failure) if last != Some(Outcome::Failure) => Some(Event::Failed),
            Some(Outcome::Success) if recovered => Some(Event::Recovered),
            _ => None,
        },
        NotifyOn::Always => Some(match state {
            s if s.is_failure() => Event::Failed,
            RunState::Succeeded if recovered => Event::Recovered,
            RunState::Succeeded => Event::Succeeded,
            _ => Event::Ended,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::{Cancelled, Failed, Succeeded, TimedOut};

    /// The events of a sequence of runs (state, retry left) under `on`,
    /// starting with no known outcome.
    fn events(on: NotifyOn, runs: &[(RunState, bool)]) -> Vec<Option<Event>> {
        let mut last = None;
        runs.iter()
            .map(|&(state, retry_left)| {
                let now = outcome(state, retry_left);
                let event = decide(on, state, now, last);
                last = now.or(last);
                event
            })
            .collect()
    }

    #[test]
    fn change_tells_the_start_and_the_end_of_a_failure_once() {
        let runs = [
            (Failed, false),
            (TimedOut, false),
            (Failed, false),
            (Succeeded, false),
            (Succeeded, false),
            (Failed, true),
            (Succeeded, false),
            (Cancelled, false),
            (Failed, false),
        ];
        let got = events(NotifyOn::Change, &runs);
        use Event::{Failed as F, Recovered as R};
        let want = [
            Some(F),
            None,
            None,
            Some(R),
            None,
            None,
            None,
            None,
            Some(F),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn failure_tells_each_failed_outcome_and_always_every_run() {
        let runs = [(Failed, true), (Failed, false), (Succeeded, false)];
        assert_eq!(
            events(NotifyOn::Failure, &runs),
            [None, Some(Event::Failed), None]
        );
        assert_eq!(
            events(NotifyOn::Always, &runs),
            [
                Some(Event::Failed),
                Some(Event::Failed),
                Some(Event::Recovered)
            ]
        );
        assert_eq!(
            events(NotifyOn::Always, &[(Succeeded, false), (Cancelled, false)]),
            [Some(Event::Succeeded), Some(Event::Ended)]
        );
    }
}
