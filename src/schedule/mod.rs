//! Schedule maths: when is a job next due?
//!
//! A job's schedule is either `every = "DURATION"` or `cron = "EXPR"`. Both
//! are pure functions of wall-clock time: [`Schedule::next_after`] takes an
//! instant and answers the first due time strictly after it. The scheduler
//! re-arms a job by asking again with the due time it just fired for (not the
//! time the run finished), so a run's own duration never shifts later runs.
//!
//! ## `every`: aligned to the Unix epoch
//!
//! An interval schedule fires at the multiples of the interval counted from
//! 1970-01-01T00:00:00Z: `every = "5s"` fires at :00, :05, :10, ... of each
//! minute. The alternative, "start + n × interval" from whenever the daemon
//! started, has three flaws this avoids:
//! - it is unpredictable (the phase depends on the start time),
//! - it is not stable across restarts or reloads (the phase moves each time),
//! - missed runs while the daemon was down cannot be counted, because the
//!   grid of due times is not known after a restart. With epoch alignment
//!   the due times between two instants are simply the grid points between
//!   them.
//!
//! An interval is between [`MIN_EVERY`] and [`MAX_EVERY`]: a shorter one
//! would spawn runs faster than the daemon is meant to (`"1ns"` would ask
//! for a billion a second), and a longer one is a calendar period, which a
//! cron expression states exactly (`"0 0 1 1 *"`, yearly).
//!
//! ## `cron`: local wall-clock time
//!
//! Cron expressions are evaluated in a time zone: the job's `tz` or else the
//! system's local zone (jiff's [`jiff::tz::TimeZone::system`]: the `TZ`
//! environment variable, else `/etc/localtime`). A `tz` is an IANA name
//! looked up through `jiff` (see [`time_zone`]) in the system's zone
//! database, `/usr/share/zoneinfo` or the directory in `TZDIR`: the files
//! cron and systemd read, kept current by the OS's tzdata package. Only a
//! machine without that database falls back to the copy built into the
//! binary (jiff's bundle, which costs next to no memory until it is read).
//! chrono-tz, used before, cost every process about 2 MiB of memory: its
//! tables are full of pointers that the loader relocates, and so dirties, at
//! start, whether any job has a `tz` or not.
//!
//! The syntax is checked field by field in [`syntax`] (so a mistake is
//! named with its field and the allowed values), then kept as bit sets
//! ([`cron::CronSpec`], 40 bytes) that give the answers of the `croner`
//! crate (4.x), which tickd used until a million jobs made its 5.5 KB per
//! expression matter. Across daylight-saving changes tickd follows
//! cronie, not croner's own rule: see [`dst`] for the rule and why.
//!
//! Accepted forms: 5 fields (`min hour dom month dow`, seconds = 0), 6 fields
//! (seconds first), and the nicknames in [`NICKNAMES`].
//!
//! ## Several schedules, skipped days
//!
//! `every` and `cron` may each be an array, and a job may skip dates
//! (holidays): see [`set`]; a job with one schedule and no skipped dates
//! keeps the plain variants.

mod cron;
mod dst;
mod set;
mod syntax;
pub mod timers;

pub use set::{parse_date, parse_date_lines, ScheduleSet};
pub use timers::{Fired, Scheduler};

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::time::Timestamp;
use cron::CronSpec;
use jiff::tz::TimeZone;

/// The `@name` shorthands accepted in place of a cron expression.
pub const NICKNAMES: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// The shortest `every` interval.
pub const MIN_EVERY: Duration = Duration::from_millis(100);
/// The longest `every` interval: 366 days (longer periods are calendar
/// periods, for cron).
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);

/// When a job runs by itself; a job without a schedule runs only by hand.
///
/// Cheap to clone (a reference count): the config, the core and the
/// scheduler each hold a job's schedule. Equality compares what the user
/// wrote (and the interval, and the zone), so a reload can tell whether a
/// job's schedule changed.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Fixed interval, aligned to the Unix epoch (see the module docs).
    Every {
        /// The interval, [`MIN_EVERY`]..=[`MAX_EVERY`].
        interval: Duration,
        /// The duration text as written in the config.
        text: Arc<str>,
    },
    /// A cron expression evaluated in wall-clock time.
    Cron(Arc<CronSchedule>),
    /// Several schedules, or skipped dates, or both (see [`set`]).
    Set(Arc<ScheduleSet>),
    /// Once, at an instant (`at`, like `at(1)`): due once, then never.
    At(Arc<OnceAt>),
}

/// The instant of [`Schedule::At`] (behind a pointer, so that the enum
/// stays 32 bytes).
#[derive(Debug, PartialEq, Eq)]
pub struct OnceAt {
    /// The instant.
    pub at: Timestamp,
    /// The text as written in the config.
    pub text: Box<str>,
}

/// A parsed cron expression with its zone (see [`Schedule::Cron`]).
#[derive(Debug)]
pub struct CronSchedule {
    /// The expression as written (trimmed).
    expr: Box<str>,
    /// Its tables, 40 bytes (see [`cron`]).
    spec: CronSpec,
    /// The job's `tz`; `None` = the system's local zone. Two zones are
    /// equal when their names and their rules are.
    tz: Option<TimeZone>,
    /// Whether it runs at fixed times of day (cronie's definition, see
    /// [`Schedule::is_fixed_time`]).
    fixed_time: bool,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Schedule::Every { interval, text },
                Schedule::Every {
                    interval: other_interval,
                    text: other_text,
                },
            ) => interval == other_interval && text == other_text,
            (Schedule::Cron(a), Schedule::Cron(b)) => a.expr == b.expr && a.tz == b.tz,
            (Schedule::Set(a), Schedule::Set(b)) => Arc::ptr_eq(a, b) || a == b,
            (Schedule::At(a), Schedule::At(b)) => a.at == b.at,
            _ => false,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Set(set) => set.fmt(f),
            _ => f.write_str(self.text()),
        }
    }
}

/// The job object's `schedule`: the text as written, or an array of them
/// when the config gave an array.
impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Schedule::Set(set) if set.listed() => {
                s.collect_seq(set.members().iter().map(Schedule::text))
            }
            _ => s.serialize_str(self.text()),
        }
    }
}

impl Schedule {
    /// The `every`/`cron` text as written (of a set: its first member's),
    /// for the API's `schedule` field (see the `Serialize` impl).
    pub fn text(&self) -> &str {
        match self {
            Schedule::Every { text, .. } => text,
            Schedule::Cron(c) => &c.expr,
            Schedule::Set(set) => set.members().first().map_or("", Schedule::text),
            Schedule::At(once) => &once.text,
        }
    }

    /// Whether this is a cron schedule (a set: of cron expressions).
    pub fn is_cron(&self) -> bool {
        match self {
            Schedule::Cron(_) => true,
            Schedule::Every { .. } | Schedule::At(_) => false,
            Schedule::Set(set) => set.members().iter().any(Schedule::is_cron),
        }
    }

    /// The zone of a cron schedule with a `tz` (or of a set's skipped days).
    pub fn tz(&self) -> Option<&TimeZone> {
        match self {
            Schedule::Cron(c) => c.tz.as_ref(),
            Schedule::Every { .. } | Schedule::At(_) => None,
            Schedule::Set(set) => set.tz(),
        }
    }

    /// The first due time strictly after `after`; cron expressions are
    /// evaluated in the job's `tz`, or the system's local time zone.
    ///
    /// `None` means the schedule never fires again (a cron expression with
    /// no future match, or a time beyond what a [`Timestamp`] holds).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron(c) => match &c.tz {
                Some(tz) => self.next_after_in(after, tz),
                None => self.next_after_in(after, &TimeZone::system()),
            },
            Schedule::Every { interval, .. } => next_multiple(after, *interval),
            Schedule::At(once) => (once.at > after).then_some(once.at),
            Schedule::Set(set) => match set.tz() {
                Some(tz) => set.next_after_in(after, tz),
                // Intervals without skipped days use no zone.
                None if set.skip().is_empty() && !self.is_cron() => {
                    set.next_after_in(after, &TimeZone::UTC)
                }
                None => set.next_after_in(after, &TimeZone::system()),
            },
        }
    }

    /// Whether this is a cron schedule for fixed times of day, as cronie
    /// defines it: its minute and hour fields (and seconds field, when it
    /// has one) do not start with `*`. `0 1,13 * * *` and `0 9-17 * * *`
    /// are fixed-time; `*/5 * * * *` and `0 * * * *` are not. `@hourly` is
    /// not; the other nicknames are. This one definition decides both what
    /// a daylight-saving change does (see [`dst`]) and what a clock step
    /// back does (the scheduler's `REPEAT_GUARD`).
    pub fn is_fixed_time(&self) -> bool {
        match self {
            Schedule::Cron(c) => c.fixed_time,
            // One instant: a clock stepped back over it runs it once only.
            Schedule::At(_) => true,
            Schedule::Every { .. } => false,
            Schedule::Set(set) => set.members().iter().all(Schedule::is_fixed_time),
        }
    }

    /// The same schedule evaluated in another zone (`tz` of a cron job).
    pub fn in_zone(self, zone: Option<TimeZone>) -> Schedule {
        match self {
            Schedule::Cron(c) if c.tz != zone => Schedule::Cron(Arc::new(CronSchedule {
                expr: c.expr.clone(),
                spec: c.spec,
                tz: zone,
                fixed_time: c.fixed_time,
            })),
            Schedule::Set(set) if set.tz() != zone.as_ref() => {
                Schedule::Set(Arc::new(set.in_zone(zone)))
            }
            other => other,
        }
    }

    /// Like [`Schedule::next_after`], with cron evaluated in `zone`.
    ///
    /// `every` schedules ignore the zone: they are a grid on absolute time.
    pub fn next_after_in(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let next = match self {
            Schedule::Every { interval, .. } => next_multiple(after, *interval),
            Schedule::Cron(c) => {
                if c.fixed_time {
                    dst::next_fixed(&c.spec, zone, after)
                } else {
                    // A wildcard job follows the wall clock as it goes
                    // (croner's walk for what it calls interval jobs).
                    c.spec.next_in_zone(after, zone)
                }
            }
            Schedule::Set(set) => set.next_after_in(after, zone),
            Schedule::At(once) => (once.at > after).then_some(once.at),
        };
        // The search steps from the wall-clock second; a result at or
        // before `after` would make the scheduler spin, so it is never
        // returned.
        next.filter(|due| *due > after)
    }
}

/// Looks up a `tz` value: an IANA name (`"Europe/Paris"`, `"UTC"`),
/// matched ignoring ASCII case as jiff does, in the system's zone database
/// or, on a machine without one, the copy built into the binary.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db().get(name).map_err(|_| {
        format!(
            "\"{}\" is not a known time zone name such as \"Europe/Paris\" or \"UTC\"",
            name.escape_debug()
        )
    })
}

/// The first multiple of `interval` (counted from the Unix epoch) strictly
/// after `after`; `None` past the end of [`Timestamp`]'s range. Works in
/// i128 nanoseconds, so no interval or date overflows.
fn next_multiple(after: Timestamp, interval: Duration) -> Option<Timestamp> {
    let step = i128::try_from(interval.as_nanos())
        .ok()
        .filter(|s| *s > 0)?;
    let now = after.as_nanosecond();
    let next = now.div_euclid(step).checked_add(1)?.checked_mul(step)?;
    Timestamp::from_nanosecond(next).ok()
}

/// `at`: one instant, RFC 3339 with its offset
/// (`2026-12-24T18:00:00+01:00`, or `Z`).
pub fn parse_at(text: &str) -> Result<Schedule, String> {
    let at = crate::time::text::parse(text.trim()).map_err(|e| {
        format!("\"{text}\" is not a date and time with its offset ({e}); e.g. \"2026-12-24T18:00:00+01:00\"")
    })?;
    Ok(Schedule::At(Arc::new(OnceAt {
        at,
        text: text.trim().into(),
    })))
}

/// Parses an `every` value: a humantime duration from [`MIN_EVERY`] to
/// [`MAX_EVERY`].
pub fn parse_every(text: &str) -> Result<Schedule, String> {
    let trimmed = text.trim();
    let shown = text.escape_debug();
    let interval = humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration \"{shown}\": {e} (examples: \"250ms\", \"5s\", \"1m 30s\")")
    })?;
    if interval < MIN_EVERY {
        return Err(format!(
            "interval \"{shown}\" is too short: the minimum is 100ms"
        ));
    }
    if interval > MAX_EVERY {
        return Err(format!(
            "interval \"{shown}\" is too long: the maximum is 366 days; for longer or \
             calendar periods use cron (\"0 0 1 1 *\" runs once a year)"
        ));
    }
    Ok(Schedule::Every {
        interval,
        text: Arc::from(trimmed),
    })
}

/// Parses a `cron` value: 5 fields, 6 fields (seconds first) or a nickname.
///
/// The fields are checked here (see [`syntax`]) rather than left to
/// croner, so a mistake is named with its field and the values that field
/// takes, and so croner only ever sees what tickd documents.
pub fn parse_cron(text: &str) -> Result<Schedule, String> {
    let expr = text.trim();
    let shown = expr.escape_debug();
    if expr.is_empty() {
        return Err("empty cron expression".to_string());
    }
    let checked = if expr.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(expr)) {
            return Err(format!(
                "unknown cron nickname \"{shown}\"; expected one of {}",
                NICKNAMES.join(" ")
            ));
        }
        syntax::nickname(expr)
    } else {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 && fields.len() != 6 {
            return Err(format!(
                "cron expression \"{shown}\" has {} fields; expected 5 \
                 (minute hour day-of-month month day-of-week) or 6 (seconds first)",
                fields.len()
            ));
        }
        syntax::check(&fields)
            .map_err(|message| format!("invalid cron expression \"{shown}\": {message}"))?
    };
    let spec = CronSpec::parse(&checked.normalised, checked.dom_and_dow)
        .map_err(|e| format!("invalid cron expression \"{shown}\": {e}"))?;
    // An expression like "0 0 30 2 *" is well formed but can never fire;
    // say so now rather than leave a job that silently never runs.
    if !spec.matches_some_date() {
        return Err(format!(
            "cron expression \"{shown}\" never matches any date: no month it allows has \
             a day that its day-of-month and day-of-week fields allow (February has no 30th)"
        ));
    }
    Ok(Schedule::Cron(Arc::new(CronSchedule {
        expr: expr.into(),
        spec,
        tz: None,
        fixed_time: checked.fixed_time,
    })))
}
