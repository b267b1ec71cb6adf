//! Daylight-saving changes for fixed-time cron jobs, by cronie's rule.
//!
//! cronie (github.com/cronie-crond/cronie) splits jobs in two. In
//! `src/entry.c` a job whose minute or hour field starts with `*` gets the
//! `MIN_STAR` or `HR_STAR` flag; in `src/cron.c` `find_jobs` treats a job
//! with either flag as a *wildcard* job and any other as a *fixed-time*
//! job, and the main loop handles a clock that moved by less than three
//! hours (cron(8), "Daylight Saving Time and other time changes"):
//! - forward (the `medium` case, "for example because we went to DST"):
//!   wildcard jobs run for the new current minute only, and fixed-time jobs
//!   run for *each* minute that was skipped, at once: "those jobs that
//!   would have run in the interval that has been skipped will be run
//!   immediately";
//! - backward (the `negative` case, "because of DST ending"): only wildcard
//!   jobs run until the clock is back where it was, since "the fixed-time
//!   jobs probably have already run, and should not be repeated".
//!
//! tickd uses that one definition (see [`super::Schedule::is_fixed_time`],
//! which also counts a 6-field expression's seconds field) for every
//! fixed-time job. croner has its own: a job is fixed only when seconds,
//! minutes and hours each hold exactly one value, so a list such as
//! `0 1,13 * * *` was a wildcard job for it, ran twice in a repeated hour
//! and not at all in a skipped one. Wildcard jobs keep croner's walk, which
//! matches cronie's: the wall clock as it goes (no runs in a skipped hour,
//! runs in both halves of a repeated one).
//!
//! For a fixed-time job, each wall-clock time the expression matches (a
//! *slot*) becomes one due time:
//! - a slot that exists once is that instant;
//! - a slot in a repeated range (fall back) is its first instant only;
//! - a slot in a skipped range (spring forward) runs right after the gap,
//!   as cronie runs it. All the slots of one gap run then, in order, one
//!   millisecond apart (the scheduler's and the journal's resolution; due
//!   times must be distinct to be armed one after the other), followed by
//!   the slot at the gap's end if there is one. So `0,30 2 * * *` in Paris
//!   on 2026-03-29 runs for 02:00 at 03:00:00.000 and for 02:30 at
//!   03:00:00.001 (local times).

use super::cron::CronSpec;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// How far before `after` the walk starts: the slots of a gap run within
/// the second after it, so a search from inside that second must meet them
/// again to know which ones are past.
const LOOKBACK: SignedDuration = SignedDuration::from_secs(2);

/// Slots of one gap that get their own due time (1 ms apart, so all within
/// the gap's first second); further ones share the last due time and so
/// run once. Only a 6-field expression with a thousand seconds in a gap
/// gets there.
const MAX_GAP_SLOTS: i64 = 1000;

/// Slots looked at before giving up: the walk starts at most [`LOOKBACK`]
/// plus one repeated range before the answer, which holds at most a few
/// thousand slots.
const MAX_SLOTS: usize = 20_000;

/// The first due time of fixed-time `cron` in `tz` strictly after `after`.
pub(super) fn next_fixed(cron: &CronSpec, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let mut wall = tz.to_datetime(after.checked_sub(LOOKBACK).ok()?);
    // The end of the gap the previous slot fell in, and how many slots did.
    let mut gap: Option<(Timestamp, i64)> = None;
    for _ in 0..MAX_SLOTS {
        wall = next_wall_match(cron, wall)?;
        let ambiguous = tz.to_ambiguous_timestamp(wall);
        let due = match ambiguous.offset() {
            AmbiguousOffset::Gap { after: later, .. } => {
                // The instants just before and after the gap bracket its
                // end, which is the transition following the first.
                let before_gap = later.to_timestamp(wall).ok()?;
                let end = tz.following(before_gap).next()?.timestamp();
                let seen = match gap {
                    Some((e, n)) if e == end => n,
                    _ => 0,
                };
                gap = Some((end, seen + 1));
                spread(end, seen)?
            }
            // Unambiguous, or the first of a repeated time.
            _ => {
                let at = ambiguous.earlier().ok()?;
                match gap {
                    // The slot right at a gap's end runs after its slots.
                    Some((end, seen)) if end == at => spread(end, seen)?,
                    _ => at,
                }
            }
        };
        if due > after {
            return Some(due);
        }
    }
    None
}

/// The due time of the `index`-th slot run at a gap's `end`.
fn spread(end: Timestamp, index: i64) -> Option<Timestamp> {
    let step = SignedDuration::from_millis(index.min(MAX_GAP_SLOTS - 1));
    end.checked_add(step).ok()
}

/// The first wall-clock time strictly after `wall` that `cron` matches,
/// ignoring zones.
fn next_wall_match(cron: &CronSpec, wall: DateTime) -> Option<DateTime> {
    cron.next_wall_match(wall)
}
