//! Several schedules in one job, and dates it skips.
//!
//! `cron = ["0 9 * * MON-FRI", "30 10 * * SAT"]` (or `every = [...]`)
//! fires at each time any member fires: the next due time is the earliest
//! of the members' next due times, so two members that coincide give one
//! due time, never two. `skip_dates` (and `skip_dates_file`) name calendar
//! days, in the job's `tz` or else the system's local zone (the rule cron
//! uses), on which nothing fires: a due time on such a day is passed over
//! and the next due time is the first one on a day not skipped. The
//! search jumps to the start of the day after a skipped one, so an
//! `every = "1s"` job does not step through the 86,400 seconds of a
//! holiday, and each step passes at least one of the (finitely many)
//! skipped days: it ends after at most `skip.len() + 1` steps.
//!
//! A job with one schedule and no skipped dates keeps the plain
//! [`Schedule::Every`] / [`Schedule::Cron`], so the common case costs
//! nothing more; a [`ScheduleSet`] is one pointer in [`Schedule`] too.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::SignedDuration;

use super::Schedule;
use crate::time::Timestamp;

/// Schedules that fire together, minus skipped dates (see the module
/// docs); held in [`Schedule::Set`].
#[derive(Debug, PartialEq)]
pub struct ScheduleSet {
    /// Each an `Every` or a `Cron` (never a set), all of one kind; at
    /// least one.
    members: Box<[Schedule]>,
    /// Whether the config gave an array (the job object then shows one).
    listed: bool,
    /// Days on which nothing fires, sorted, without repeats.
    skip: Box<[Date]>,
    /// The zone `skip` is read in; `None` = the system's local zone.
    tz: Option<TimeZone>,
}

impl Schedule {
    /// One schedule of `members` (all `every` or all `cron`, at least
    /// one), written as an array when `listed`, that fires on none of
    /// `skip`'s days. A single unlisted member without skipped days is
    /// returned as it is.
    pub fn combine(mut members: Vec<Schedule>, listed: bool, mut skip: Vec<Date>) -> Schedule {
        skip.sort_unstable();
        skip.dedup();
        if members.len() == 1 && !listed && skip.is_empty() {
            if let Some(one) = members.pop() {
                return one;
            }
        }
        Schedule::Set(std::sync::Arc::new(ScheduleSet {
            members: members.into(),
            listed,
            skip: skip.into(),
            tz: None,
        }))
    }
}

impl ScheduleSet {
    /// The members, in the order written.
    pub fn members(&self) -> &[Schedule] {
        &self.members
    }

    /// Whether the config gave an array.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// The skipped days, sorted.
    pub fn skip(&self) -> &[Date] {
        &self.skip
    }

    /// The zone of cron members and skipped days.
    pub fn tz(&self) -> Option<&TimeZone> {
        self.tz.as_ref()
    }

    /// The same set with its cron members and skipped days in `zone`.
    pub(super) fn in_zone(&self, zone: Option<TimeZone>) -> ScheduleSet {
        ScheduleSet {
            members: self
                .members
                .iter()
                .map(|m| m.clone().in_zone(zone.clone()))
                .collect(),
            listed: self.listed,
            skip: self.skip.clone(),
            tz: zone,
        }
    }

    /// The first due time strictly after `after`, in `zone` (see the
    /// module docs); `None` when no member fires again on a day not
    /// skipped.
    pub(super) fn next_after_in(&self, mut after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        for _ in 0..=self.skip.len() {
            let next = self
                .members
                .iter()
                .filter_map(|m| m.next_after_in(after, zone))
                .min()?;
            if self.skip.is_empty() {
                return Some(next);
            }
            let day = next.to_zoned(zone.clone()).date();
            if self.skip.binary_search(&day).is_err() {
                return Some(next);
            }
            // Go on from the last instant of the skipped day.
            let tomorrow = day.tomorrow().ok()?.to_zoned(zone.clone()).ok()?;
            after = tomorrow
                .timestamp()
                .checked_sub(SignedDuration::from_nanos(1))
                .ok()?;
        }
        None
    }
}

impl fmt::Display for ScheduleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(m.text())?;
        }
        Ok(())
    }
}

/// Parses a skipped date: `YYYY-MM-DD`, a real day.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let t = text.trim();
    let b = t.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let bad = || {
        format!(
            "\"{}\" is not a date; write YYYY-MM-DD, such as \"2026-12-25\"",
            text.escape_debug()
        )
    };
    if !shaped {
        return Err(bad());
    }
    t.parse::<Date>().map_err(|_| bad())
}

/// Reads a `skip_dates_file`: one `YYYY-MM-DD` a line; blank lines and
/// `#` comments (whole lines or after a date) are ignored. `Err` names
/// the line.
pub fn parse_date_lines(text: &str) -> Result<Vec<Date>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split_once('#').map_or(line, |(date, _)| date).trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse_date(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{parse_cron, parse_every};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn a_single_schedule_stays_plain_and_the_enum_does_not_grow() {
        let one = Schedule::combine(vec![parse_every("1s").unwrap()], false, Vec::new());
        assert!(matches!(one, Schedule::Every { .. }));
        assert!(std::mem::size_of::<Schedule>() <= 32);
    }

    #[test]
    fn coinciding_members_give_one_due_time() {
        let set = Schedule::combine(
            vec![parse_every("1s").unwrap(), parse_every("2s").unwrap()],
            true,
            Vec::new(),
        );
        let mut at = ts("2026-01-01T00:00:00Z");
        for expect in 1..=4 {
            at = set.next_after(at).expect("next");
            assert_eq!(
                at,
                ts("2026-01-01T00:00:00Z") + SignedDuration::from_secs(expect)
            );
        }
        let utc = Some(TimeZone::UTC);
        let crons = Schedule::combine(
            vec![
                parse_cron("0 9 * * MON-FRI").unwrap(),
                parse_cron("30 10 * * SAT").unwrap(),
                parse_cron("0 9 * * MON").unwrap(),
            ],
            true,
            Vec::new(),
        )
        .in_zone(utc);
        // 2026-01-02 is a Friday.
        let mut at = ts("2026-01-02T00:00:00Z");
        let mut got = Vec::new();
        for _ in 0..3 {
            at = crons.next_after(at).expect("next");
            got.push(at);
        }
        let want = [
            "2026-01-02T09:00:00Z",
            "2026-01-03T10:30:00Z",
            "2026-01-05T09:00:00Z",
        ];
        assert_eq!(got, want.map(ts));
    }

    #[test]
    fn skipped_days_are_passed_over_in_the_zone() {
        let days = vec![
            parse_date("2026-12-25").unwrap(),
            parse_date("2026-12-26").unwrap(),
        ];
        let paris = crate::schedule::time_zone("Europe/Paris").ok();
        let set = Schedule::combine(vec![parse_every("1h").unwrap()], false, days).in_zone(paris);
        // 23:00Z on the 24th is midnight of the 25th in Paris.
        let next = set.next_after(ts("2026-12-24T21:30:00Z")).expect("next");
        assert_eq!(next, ts("2026-12-24T22:00:00Z"));
        let next = set.next_after(next).expect("next");
        assert_eq!(
            next,
            ts("2026-12-26T23:00:00Z"),
            "the 27th's midnight, Paris"
        );
        let every_second = Schedule::combine(
            vec![parse_every("1s").unwrap()],
            false,
            vec![parse_date("2026-12-25").unwrap()],
        )
        .in_zone(Some(TimeZone::UTC));
        let next = every_second
            .next_after(ts("2026-12-24T23:59:59Z"))
            .expect("next");
        assert_eq!(next, ts("2026-12-26T00:00:00Z"));
    }

    #[test]
    fn dates_are_checked_and_files_allow_comments() {
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026-2-3").is_err());
        assert!(parse_date("26-12-25x").is_err());
        let dates = parse_date_lines("# holidays\n\n2026-12-25  # xmas\n2027-01-01\n").unwrap();
        assert_eq!(dates.len(), 2);
        let err = parse_date_lines("2026-12-25\nnope\n").unwrap_err();
        assert!(err.starts_with("line 2: \"nope\" is not a date"), "{err}");
    }
}
