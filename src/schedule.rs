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
//! ## `cron`: local wall-clock time
//!
//! Cron expressions are evaluated in a time zone: the job's `tz` or else the
//! system's local zone, see [`Schedule::next_after`]. A `tz` is an IANA name
//! looked up through `jiff` (see [`time_zone`]) in the system's zone
//! database, `/usr/share/zoneinfo` or the directory in `TZDIR`: the files
//! cron and systemd read, kept current by the OS's tzdata package. Only a
//! machine without that database falls back to the copy built into the
//! binary (jiff's bundle, which costs next to no memory until it is read).
//! chrono-tz, used before, cost every process about 2 MiB of memory: its
//! tables are full of pointers that the loader relocates, and so dirties, at
//! start, whether any job has a `tz` or not.
//!
//! Parsing and matching are done by the `croner` crate (4.x), which follows
//! the OCPS rules across daylight-saving changes:
//! - spring forward: a fixed-time job (`30 2 * * *`) whose time falls in the
//!   skipped hour runs once, at the first instant after the gap; interval
//!   jobs (`*/15 * * * *`) simply have no runs in the gap;
//! - fall back: a fixed-time job runs once (at the first of the two
//!   instants); an interval job runs at every real instant that matches.
//!
//! Accepted forms: 5 fields (`min hour dom month dow`, seconds = 0), 6 fields
//! (seconds first), and the nicknames in [`NICKNAMES`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

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

/// Appended to croner's parse errors, which do not say which field is out.
const FIELD_HINT: &str = "(field ranges: [second 0-59] minute 0-59, hour 0-23, \
                          day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT)";

/// When a job runs by itself; a job without a schedule runs only by hand.
///
/// Equality compares what the user wrote (and the interval), so a reload can
/// tell whether a job's schedule changed.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Fixed interval, aligned to the Unix epoch (see the module docs).
    Every {
        /// The interval; always greater than zero.
        interval: Duration,
        /// The duration text as written in the config.
        text: String,
    },
    /// A cron expression evaluated in wall-clock time.
    Cron {
        /// The expression as written (trimmed).
        expr: String,
        /// The parsed expression, shared: a parsed `Cron` is ~5 KB (its
        /// year table), and the config, the daemon and the scheduler each
        /// hold the schedule, so clones must not copy it.
        cron: Arc<Cron>,
        /// The job's `tz`; `None` = the system's local zone. Two zones are
        /// equal when their names and their rules are.
        tz: Option<jiff::tz::TimeZone>,
    },
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
            (
                Schedule::Cron { expr, tz, .. },
                Schedule::Cron {
                    expr: other,
                    tz: other_tz,
                    ..
                },
            ) => expr == other && tz == other_tz,
            _ => false,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Schedule {
    /// The `every`/`cron` text as written, for the API's `schedule` field.
    pub fn text(&self) -> &str {
        match self {
            Schedule::Every { text, .. } => text,
            Schedule::Cron { expr, .. } => expr,
        }
    }

    /// The first due time strictly after `after`; cron expressions are
    /// evaluated in the job's `tz`, or the system's local time zone.
    ///
    /// `None` means the schedule never fires again (a cron expression with
    /// no future match, or a time beyond what chrono can represent).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron {
                cron, tz: Some(tz), ..
            } => {
                // croner evaluates in a jiff zone directly, with the same
                // rules for gaps and repeats as in a chrono one.
                let start = to_jiff(after)?.to_zoned(tz.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                from_jiff(next.timestamp()).filter(|due| *due > after)
            }
            _ => self.next_after_in(after, &Local),
        }
    }

    /// Whether this is a cron schedule for fixed times of day: no `*`
    /// (or `*/n`) in its hour, minute or seconds field, the distinction
    /// Vixie cron makes when the clock moves back (a fixed-time job that
    /// already ran is not run again; wildcard jobs run as usual).
    /// `@hourly` is a wildcard; the other nicknames are fixed.
    pub fn is_fixed_time(&self) -> bool {
        let Schedule::Cron { expr, .. } = self else {
            return false;
        };
        if expr.starts_with('@') {
            return !expr.eq_ignore_ascii_case("@hourly");
        }
        let fields: Vec<&str> = expr.split_whitespace().collect();
        // minute hour dom month dow, with seconds first when there are 6.
        let time_fields = &fields[..fields.len().saturating_sub(3)];
        !time_fields.iter().any(|f| f.starts_with('*'))
    }

    /// The same schedule evaluated in another zone (`tz` of a cron job).
    pub fn in_zone(self, zone: Option<jiff::tz::TimeZone>) -> Schedule {
        match self {
            Schedule::Cron { expr, cron, .. } => Schedule::Cron {
                expr,
                cron,
                tz: zone,
            },
            every => every,
        }
    }

    /// Like [`Schedule::next_after`], with cron evaluated in `zone`.
    ///
    /// `every` schedules ignore the zone: they are a grid on absolute time.
    pub fn next_after_in<Tz: TimeZone>(
        &self,
        after: DateTime<Utc>,
        zone: &Tz,
    ) -> Option<DateTime<Utc>> {
        let next = match self {
            Schedule::Every { interval, .. } => next_multiple(after, *interval),
            Schedule::Cron { cron, .. } => cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()
                .map(|due| due.with_timezone(&Utc)),
        };
        // croner steps from the wall-clock second; a result at or before
        // `after` would make the scheduler spin, so it is never returned.
        next.filter(|due| *due > after)
    }
}

/// An instant as jiff holds it; `None` outside jiff's years -9999..=9999.
fn to_jiff(t: DateTime<Utc>) -> Option<jiff::Timestamp> {
    // A leap second shows as nanos >= 1e9; treat it as the end of the second.
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    jiff::Timestamp::new(t.timestamp(), i32::try_from(nanos).ok()?).ok()
}

/// An instant from jiff as chrono holds it.
fn from_jiff(t: jiff::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.subsec_nanosecond()).ok()?;
    DateTime::from_timestamp(t.as_second(), nanos)
}

/// Looks up a `tz` value: an IANA name (`"Europe/Paris"`, `"UTC"`),
/// matched ignoring ASCII case as jiff does, in the system's zone database
/// or, on a machine without one, the copy built into the binary.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::db().get(name).map_err(|_| {
        format!("\"{name}\" is not a known time zone name such as \"Europe/Paris\" or \"UTC\"")
    })
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The first multiple of `interval` (counted from the Unix epoch) strictly
/// after `after`. Works in i128 nanoseconds, so no interval or date chrono
/// can hold overflows.
fn next_multiple(after: DateTime<Utc>, interval: Duration) -> Option<DateTime<Utc>> {
    let step = i128::try_from(interval.as_nanos())
        .ok()
        .filter(|s| *s > 0)?;
    // A leap second shows as nanos >= 1e9; treat it as the end of the second.
    let subsec = i128::from(after.timestamp_subsec_nanos().min(999_999_999));
    let now = i128::from(after.timestamp()) * NANOS_PER_SEC + subsec;
    let next = now.div_euclid(step).checked_add(1)?.checked_mul(step)?;
    let secs = i64::try_from(next.div_euclid(NANOS_PER_SEC)).ok()?;
    let nanos = u32::try_from(next.rem_euclid(NANOS_PER_SEC)).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// Parses an `every` value: a humantime duration greater than zero.
pub fn parse_every(text: &str) -> Result<Schedule, String> {
    let trimmed = text.trim();
    let interval = humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration \"{text}\": {e} (examples: \"250ms\", \"5s\", \"1m 30s\")")
    })?;
    if interval.is_zero() {
        return Err(format!("interval \"{text}\" must be greater than zero"));
    }
    Ok(Schedule::Every {
        interval,
        text: trimmed.to_string(),
    })
}

/// Parses a `cron` value: 5 fields, 6 fields (seconds first) or a nickname.
///
/// The field count is checked here rather than left to croner, so the user
/// gets a message about fields instead of about a parser detail, and so the
/// optional 7th (year) field croner knows is not accepted silently.
pub fn parse_cron(text: &str) -> Result<Schedule, String> {
    let expr = text.trim();
    if expr.is_empty() {
        return Err("empty cron expression".to_string());
    }
    if expr.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(expr)) {
            return Err(format!(
                "unknown cron nickname \"{expr}\"; expected one of {}",
                NICKNAMES.join(" ")
            ));
        }
    } else {
        let fields = expr.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(format!(
                "cron expression \"{expr}\" has {fields} fields; expected 5 \
                 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            ));
        }
    }
    // croner does not know @midnight; it is @daily under another name.
    let for_croner = if expr.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        expr
    };
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(for_croner)
        .map_err(|e| format!("invalid cron expression \"{expr}\": {e} {FIELD_HINT}"))?;
    // An expression like "0 0 30 2 *" parses but can never fire; say so now
    // rather than leave a job that silently never runs.
    let probe = DateTime::from_timestamp(0, 0).map(|t| t.with_timezone(&Utc));
    if let Some(probe) = probe {
        if cron.find_next_occurrence(&probe, false).is_err() {
            return Err(format!("cron expression \"{expr}\" never matches any date"));
        }
    }
    Ok(Schedule::Cron {
        expr: expr.to_string(),
        cron: Arc::new(cron),
        tz: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_time_cron_has_no_wildcard_in_its_time_fields() {
        let fixed = |e: &str| parse_cron(e).expect("cron").is_fixed_time();
        assert!(fixed("0 3 * * *"));
        assert!(fixed("30 0 3 * * 1-5"));
        assert!(fixed("@daily"));
        assert!(!fixed("*/5 * * * *"));
        assert!(!fixed("0 * * * *"));
        assert!(!fixed("*/10 0 3 * * *"));
        assert!(!fixed("@hourly"));
        assert!(!parse_every("1h").expect("every").is_fixed_time());
    }
    use chrono::{FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn cron(expr: &str) -> Schedule {
        parse_cron(expr).expect("valid cron")
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = parse_every("5s").expect("valid");
        let next = s.next_after(utc("2024-05-01T12:00:03.700Z"));
        assert_eq!(next, Some(utc("2024-05-01T12:00:05Z")));
        // Exactly on a grid point: strictly after means the next one.
        let next = s.next_after(utc("2024-05-01T12:00:05Z"));
        assert_eq!(next, Some(utc("2024-05-01T12:00:10Z")));
    }

    #[test]
    fn every_does_not_drift_over_many_steps() {
        let s = parse_every("1s").expect("valid");
        let t0 = utc("2024-05-01T12:00:00Z");
        let mut due = t0;
        for n in 1..=10_000i64 {
            // Re-arm from the due time, however late the run finished.
            due = s.next_after(due).expect("next");
            assert_eq!(due, t0 + chrono::TimeDelta::seconds(n));
        }
        // A run that took 2.5s skips the grid points it overlapped, but the
        // phase stays on whole seconds.
        let late = due + chrono::TimeDelta::milliseconds(2500);
        assert_eq!(
            s.next_after(late),
            Some(due + chrono::TimeDelta::seconds(3))
        );
    }

    #[test]
    fn every_handles_sub_second_and_odd_intervals() {
        let s = parse_every("250ms").expect("valid");
        let next = s.next_after(utc("2024-05-01T12:00:00.1Z"));
        assert_eq!(next, Some(utc("2024-05-01T12:00:00.25Z")));
        let s = parse_every("1m 30s").expect("valid");
        // 90s grid from the epoch: 12:00:00 is a multiple (43200 / 90 = 480).
        let next = s.next_after(utc("2024-05-01T12:00:00Z"));
        assert_eq!(next, Some(utc("2024-05-01T12:01:30Z")));
        assert_eq!(s.text(), "1m 30s");
    }

    #[test]
    fn every_before_the_epoch() {
        let s = parse_every("7s").expect("valid");
        let next = s.next_after(utc("1969-12-31T23:59:50Z"));
        assert_eq!(next, Some(utc("1969-12-31T23:59:53Z")));
    }

    #[test]
    fn bad_every_values_are_explained() {
        let err = parse_every("5x").expect_err("invalid");
        assert!(err.contains("invalid duration \"5x\""), "{err}");
        let err = parse_every("0s").expect_err("zero");
        assert!(err.contains("greater than zero"), "{err}");
    }

    #[test]
    fn five_field_cron_has_minute_resolution() {
        let s = cron("*/5 * * * *");
        let next = s.next_after_in(utc("2024-05-01T12:03:10Z"), &Utc);
        assert_eq!(next, Some(utc("2024-05-01T12:05:00Z")));
    }

    #[test]
    fn six_field_cron_has_seconds_first() {
        let s = cron("*/10 * * * * *");
        let next = s.next_after_in(utc("2024-05-01T12:03:10Z"), &Utc);
        assert_eq!(next, Some(utc("2024-05-01T12:03:20Z")));
        let s = cron("30 0 9 * * MON");
        // 2024-05-01 is a Wednesday; next Monday is 2024-05-06.
        let next = s.next_after_in(utc("2024-05-01T12:00:00Z"), &Utc);
        assert_eq!(next, Some(utc("2024-05-06T09:00:30Z")));
    }

    #[test]
    fn nicknames() {
        let after = utc("2024-05-01T12:34:56Z");
        let cases = [
            ("@hourly", "2024-05-01T13:00:00Z"),
            ("@daily", "2024-05-02T00:00:00Z"),
            ("@midnight", "2024-05-02T00:00:00Z"),
            ("@weekly", "2024-05-05T00:00:00Z"),
            ("@monthly", "2024-06-01T00:00:00Z"),
            ("@yearly", "2025-01-01T00:00:00Z"),
            ("@annually", "2025-01-01T00:00:00Z"),
            ("@HOURLY", "2024-05-01T13:00:00Z"),
        ];
        for (expr, want) in cases {
            assert_eq!(
                cron(expr).next_after_in(after, &Utc),
                Some(utc(want)),
                "{expr}"
            );
        }
    }

    #[test]
    fn cron_is_evaluated_in_the_given_zone() {
        let paris_winter = FixedOffset::east_opt(3600).expect("offset");
        let s = cron("0 9 * * *");
        let next = s.next_after_in(utc("2024-01-10T07:00:00Z"), &paris_winter);
        assert_eq!(next, Some(utc("2024-01-10T08:00:00Z")));
    }

    #[test]
    fn bad_cron_expressions_are_readable() {
        let cases = [
            ("", "empty cron expression"),
            ("* * *", "has 3 fields; expected 5"),
            ("0 0 0 1 1 * 2030", "has 7 fields"),
            ("@reboot", "unknown cron nickname \"@reboot\""),
            ("61 * * * *", "invalid cron expression \"61 * * * *\""),
            ("* * * * bogus", "invalid cron expression"),
            ("0 0 30 2 *", "never matches"),
        ];
        for (expr, want) in cases {
            let err = parse_cron(expr).expect_err(expr);
            assert!(err.contains(want), "{expr}: {err}");
        }
    }

    #[test]
    fn equality_compares_the_text() {
        assert_eq!(cron("@daily"), cron(" @daily "));
        assert_ne!(cron("@daily"), cron("0 0 * * *"));
        assert_ne!(parse_every("5s").ok(), parse_every("6s").ok());
        assert_ne!(parse_every("60s").ok(), parse_cron("* * * * *").ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn next_after_is_strictly_increasing(
            start in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
            pick in 0usize..6,
        ) {
            let exprs = ["*/7 * * * * *", "*/5 * * * *", "0 9 * * 1-5", "@hourly"];
            let s = match pick {
                4 => parse_every("1500ms"),
                5 => parse_every("1h 1s"),
                i => parse_cron(exprs[i]),
            }
            .expect("valid");
            let mut t = DateTime::from_timestamp(start, nanos).expect("in range");
            for _ in 0..5 {
                let next = s.next_after_in(t, &Utc).expect("has a next run");
                proptest::prop_assert!(next > t);
                t = next;
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn next_after_in_a_job_tz_is_strictly_increasing(
            start in 0i64..4_000_000_000,
            pick in 0usize..4,
        ) {
            let exprs = ["*/7 * * * * *", "30 2 * * *", "0 * * * *", "@daily"];
            let s = cron_in(exprs[pick], "America/New_York");
            let mut t = DateTime::from_timestamp(start, 0).expect("in range");
            for _ in 0..5 {
                let next = s.next_after(t).expect("has a next run");
                proptest::prop_assert!(next > t);
                t = next;
            }
        }
    }

    /// A toy time zone with daylight saving, shaped like Central Europe in
    /// 2024: UTC+1, and UTC+2 from 2024-03-31T01:00Z (02:00 local jumps to
    /// 03:00) until 2024-10-27T01:00Z (03:00 local falls back to 02:00).
    #[derive(Clone, Copy, Debug)]
    struct ToyDst;

    #[derive(Clone, Copy, Debug)]
    struct ToyOffset(FixedOffset);

    impl Offset for ToyOffset {
        fn fix(&self) -> FixedOffset {
            self.0
        }
    }

    fn hours(h: i32) -> FixedOffset {
        FixedOffset::east_opt(h * 3600).expect("offset")
    }

    fn summer_start() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 3, 31)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .expect("date")
    }

    fn summer_end() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 10, 27)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .expect("date")
    }

    impl TimeZone for ToyDst {
        type Offset = ToyOffset;

        fn from_offset(_: &ToyOffset) -> Self {
            ToyDst
        }

        fn offset_from_local_date(&self, _: &NaiveDate) -> LocalResult<ToyOffset> {
            unimplemented!("not needed by the tests")
        }

        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ToyOffset> {
            // Try both offsets; keep those that map back to the same local time.
            let fits = |h: i32| {
                let utc = *local - hours(h);
                (self.offset_from_utc_datetime(&utc).0 == hours(h)).then_some(ToyOffset(hours(h)))
            };
            match (fits(1), fits(2)) {
                (Some(a), Some(b)) => LocalResult::Ambiguous(b, a),
                (Some(a), None) | (None, Some(a)) => LocalResult::Single(a),
                (None, None) => LocalResult::None,
            }
        }

        fn offset_from_utc_date(&self, _: &NaiveDate) -> ToyOffset {
            unimplemented!("not needed by the tests")
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ToyOffset {
            if *utc >= summer_start() && *utc < summer_end() {
                ToyOffset(hours(2))
            } else {
                ToyOffset(hours(1))
            }
        }
    }

    #[test]
    fn toy_zone_has_a_gap_and_a_repeat() {
        let gap = NaiveDate::from_ymd_opt(2024, 3, 31)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("date");
        assert!(matches!(
            ToyDst.from_local_datetime(&gap),
            LocalResult::None
        ));
        let repeat = NaiveDate::from_ymd_opt(2024, 10, 27)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("date");
        assert!(matches!(
            ToyDst.from_local_datetime(&repeat),
            LocalResult::Ambiguous(..)
        ));
    }

    #[test]
    fn dst_spring_forward_runs_a_skipped_fixed_time_once_after_the_gap() {
        let s = cron("30 2 * * *");
        let before = utc("2024-03-30T23:00:00Z");
        // 02:30 local does not exist on 03-31: run at 03:00 local = 01:00Z.
        let first = s.next_after_in(before, &ToyDst).expect("next");
        assert_eq!(first, utc("2024-03-31T01:00:00Z"));
        // Then the normal 02:30 CEST next day (= 00:30Z).
        let second = s.next_after_in(first, &ToyDst).expect("next");
        assert_eq!(second, utc("2024-04-01T00:30:00Z"));
    }

    #[test]
    fn dst_spring_forward_interval_jobs_skip_the_gap() {
        let s = cron("*/30 * * * *");
        let mut t = utc("2024-03-31T00:15:00Z"); // 01:15 local
        let mut seen = Vec::new();
        for _ in 0..3 {
            t = s.next_after_in(t, &ToyDst).expect("next");
            seen.push(t);
        }
        // 01:30 CET, then 03:00 CEST, 03:30 CEST: no invented runs.
        let want = [
            "2024-03-31T00:30:00Z",
            "2024-03-31T01:00:00Z",
            "2024-03-31T01:30:00Z",
        ];
        assert_eq!(seen, want.map(utc).to_vec());
    }

    #[test]
    fn dst_fall_back_runs_a_fixed_time_once() {
        let s = cron("30 2 * * *");
        let before = utc("2024-10-26T22:00:00Z"); // 00:00 CEST
        let first = s.next_after_in(before, &ToyDst).expect("next");
        assert_eq!(first, utc("2024-10-27T00:30:00Z")); // first 02:30 (CEST)
        let second = s.next_after_in(first, &ToyDst).expect("next");
        assert_eq!(second, utc("2024-10-28T01:30:00Z")); // 02:30 CET next day
    }

    #[test]
    fn dst_fall_back_interval_jobs_run_in_both_halves() {
        let s = cron("0 * * * *");
        let mut t = utc("2024-10-26T23:30:00Z"); // 01:30 CEST
        let mut seen = Vec::new();
        for _ in 0..3 {
            t = s.next_after_in(t, &ToyDst).expect("next");
            seen.push(t);
        }
        // 02:00 CEST, 02:00 CET (the repeat), 03:00 CET: one hour apart each.
        let want = [
            "2024-10-27T00:00:00Z",
            "2024-10-27T01:00:00Z",
            "2024-10-27T02:00:00Z",
        ];
        assert_eq!(seen, want.map(utc).to_vec());
    }

    /// A cron schedule with a real IANA zone, as a job's `tz` gives it.
    fn cron_in(expr: &str, zone: &str) -> Schedule {
        let tz = time_zone(zone).expect("zone");
        cron(expr).in_zone(Some(tz))
    }

    #[test]
    fn job_tz_spring_forward_runs_the_skipped_time_once_after_the_gap() {
        // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        let s = cron_in("30 2 * * *", "Europe/Paris");
        let first = s.next_after(utc("2026-03-28T23:00:00Z")).expect("next");
        assert_eq!(first, utc("2026-03-29T01:00:00Z")); // 03:00 CEST, right after the gap
        let second = s.next_after(first).expect("next");
        assert_eq!(second, utc("2026-03-30T00:30:00Z")); // 02:30 CEST next day
    }

    #[test]
    fn job_tz_fall_back_runs_the_repeated_time_once() {
        // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30
        // happens at 05:30Z and again at 06:30Z.
        let s = cron_in("30 1 * * *", "America/New_York");
        let first = s.next_after(utc("2026-11-01T04:00:00Z")).expect("next");
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        let second = s.next_after(first).expect("next");
        assert_eq!(second, utc("2026-11-02T06:30:00Z")); // not 06:30Z the same day
    }

    #[test]
    fn job_tz_interval_jobs_skip_the_gap_and_run_in_both_halves_of_the_repeat() {
        // Paris, 2026-03-29: no 02:xx local; 01:30 CET, then 03:00 CEST.
        let s = cron_in("*/30 * * * *", "Europe/Paris");
        let spring = s.next_after(utc("2026-03-29T00:15:00Z")).expect("next");
        assert_eq!(spring, utc("2026-03-29T00:30:00Z")); // 01:30 CET
        let spring = s.next_after(spring).expect("next");
        assert_eq!(spring, utc("2026-03-29T01:00:00Z")); // 03:00 CEST
                                                         // New York, 2026-11-01: 01:00 local happens as EDT (05:00Z) and
                                                         // again as EST (06:00Z); an hourly job runs at both.
        let s = cron_in("0 * * * *", "America/New_York");
        let mut t = utc("2026-11-01T04:30:00Z"); // 00:30 EDT
        let mut seen = Vec::new();
        for _ in 0..3 {
            t = s.next_after(t).expect("next");
            seen.push(t);
        }
        let want = [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST, the repeat
            "2026-11-01T07:00:00Z", // 02:00 EST
        ];
        assert_eq!(seen, want.map(utc).to_vec());
    }

    #[test]
    fn time_zone_names_come_from_the_database_and_unknown_ones_are_refused() {
        let paris = time_zone("europe/paris").expect("case does not matter");
        assert_eq!(paris.iana_name(), Some("Europe/Paris"));
        assert_eq!(time_zone("UTC").ok(), Some(jiff::tz::TimeZone::UTC));
        let err = time_zone("Mars/Olympus").expect_err("unknown");
        assert!(
            err.contains("\"Mars/Olympus\" is not a known time zone"),
            "{err}"
        );
        assert!(time_zone("").is_err());
        assert!(time_zone("../../etc/passwd").is_err());
    }

    #[test]
    fn job_tz_overrides_the_local_zone_and_is_part_of_equality() {
        let tokyo = cron_in("0 9 * * *", "Asia/Tokyo");
        let next = tokyo.next_after(utc("2026-06-01T00:30:00Z")).expect("next");
        assert_eq!(next, utc("2026-06-02T00:00:00Z")); // 09:00 JST
        assert_ne!(tokyo, cron_in("0 9 * * *", "Europe/Paris"));
        assert_eq!(tokyo, cron_in("0 9 * * *", "Asia/Tokyo"));
    }
}
