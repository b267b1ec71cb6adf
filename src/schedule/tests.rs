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
    // cronie's rule: lists, ranges and steps without a leading `*` are
    // fixed times too (croner alone would call these interval jobs).
    assert!(fixed("0 1,13 * * *"));
    assert!(fixed("0,30 2 * * *"));
    assert!(fixed("15 0-4/2 * * *"));
    assert!(!fixed("0,30 * * * *"));
    assert!(!fixed("* 2 * * *"));
}

fn utc(s: &str) -> Timestamp {
    crate::time::text::parse(s).expect("test timestamp")
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
        assert_eq!(due, t0 + jiff::SignedDuration::from_secs(n));
    }
    // A run that took 2.5s skips the grid points it overlapped, but the
    // phase stays on whole seconds.
    let late = due + jiff::SignedDuration::from_millis(2500);
    assert_eq!(
        s.next_after(late),
        Some(due + jiff::SignedDuration::from_secs(3))
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
    for short in ["0s", "1ns", "99ms"] {
        let err = parse_every(short).expect_err(short);
        assert_eq!(
            err,
            format!("interval \"{short}\" is too short: the minimum is 100ms")
        );
    }
    for long in ["367days", "99999999999 years"] {
        let err = parse_every(long).expect_err(long);
        assert!(
            err.contains("is too long: the maximum is 366 days"),
            "{err}"
        );
    }
    assert!(parse_every("100ms").is_ok());
    assert!(parse_every("366days").is_ok());
}

#[test]
fn five_field_cron_has_minute_resolution() {
    let s = cron("*/5 * * * *");
    let next = s.next_after_in(utc("2024-05-01T12:03:10Z"), &TimeZone::UTC);
    assert_eq!(next, Some(utc("2024-05-01T12:05:00Z")));
}

#[test]
fn six_field_cron_has_seconds_first() {
    let s = cron("*/10 * * * * *");
    let next = s.next_after_in(utc("2024-05-01T12:03:10Z"), &TimeZone::UTC);
    assert_eq!(next, Some(utc("2024-05-01T12:03:20Z")));
    let s = cron("30 0 9 * * MON");
    // 2024-05-01 is a Wednesday; next Monday is 2024-05-06.
    let next = s.next_after_in(utc("2024-05-01T12:00:00Z"), &TimeZone::UTC);
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
            cron(expr).next_after_in(after, &TimeZone::UTC),
            Some(utc(want)),
            "{expr}"
        );
    }
}

#[test]
fn cron_is_evaluated_in_the_given_zone() {
    let paris_winter = TimeZone::fixed(jiff::tz::offset(1));
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
        (
            "61 * * * *",
            "invalid cron expression \"61 * * * *\": minute field \"61\": 61 is out of range: \
             the minute field takes 0-59",
        ),
        (
            "* * * * bogus",
            "day-of-week field \"bogus\": \"BOGUS\" is not a value of the day-of-week field",
        ),
        ("0 0 * * MAR", "MAR is a month, not a day of the week"),
        ("1,,2 * * * *", "minute field \"1,,2\": empty list element"),
        ("0 0 * * L", "`L` alone names no day of the week"),
        ("0 0 30 2 *", "never matches any date"),
    ];
    for (expr, want) in cases {
        let err = parse_cron(expr).expect_err(expr);
        assert!(err.contains(want), "{expr}: {err}");
    }
}

#[test]
fn restricted_day_fields_are_ored_and_a_star_led_one_is_anded() {
    let after = utc("2026-06-01T00:00:00Z"); // a Monday
                                             // Both restricted: the 1st and 15th, and every Friday (crontab(5)).
    let or = cron("0 0 1,15 * 5").next_after_in(after, &TimeZone::UTC);
    assert_eq!(or, Some(utc("2026-06-05T00:00:00Z")));
    // `*/2` starts with `*`: odd days that are also Mondays (cronie's
    // DOM_STAR), not odd days or Mondays.
    let and = cron("0 0 */2 * 1").next_after_in(after, &TimeZone::UTC);
    assert_eq!(and, Some(utc("2026-06-15T00:00:00Z")));
    let and = cron("0 0 1-7 * */7").next_after_in(after, &TimeZone::UTC);
    assert_eq!(and, Some(utc("2026-06-07T00:00:00Z")), "the first Sunday");
    // `+` asks for both explicitly; `?` is `*`.
    let plus = cron("0 0 1-7 * +MON").next_after_in(after, &TimeZone::UTC);
    assert_eq!(plus, Some(utc("2026-07-06T00:00:00Z")));
    let any = cron("0 0 ? * MON").next_after_in(after, &TimeZone::UTC);
    assert_eq!(any, Some(utc("2026-06-08T00:00:00Z")));
}

#[test]
fn day_extensions_mean_what_the_docs_say() {
    let after = utc("2026-06-01T00:00:00Z");
    let next = |expr: &str| cron(expr).next_after_in(after, &TimeZone::UTC);
    assert_eq!(next("0 0 L * *"), Some(utc("2026-06-30T00:00:00Z")));
    // 2026-10-31 is a Saturday: the last weekday is Friday the 30th.
    assert_eq!(next("0 0 LW 10 *"), Some(utc("2026-10-30T00:00:00Z")));
    // 2026-08-15 is a Saturday: the nearest weekday is Friday the 14th.
    assert_eq!(next("0 0 15W 8 *"), Some(utc("2026-08-14T00:00:00Z")));
    assert_eq!(next("0 0 * * 5L"), Some(utc("2026-06-26T00:00:00Z")));
    assert_eq!(next("0 0 * * MON#2"), Some(utc("2026-06-08T00:00:00Z")));
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
        let mut t = crate::time::from_unix(start, nanos).expect("in range");
        for _ in 0..5 {
            let next = s.next_after_in(t, &TimeZone::UTC).expect("has a next run");
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
        let mut t = crate::time::from_unix(start, 0).expect("in range");
        for _ in 0..5 {
            let next = s.next_after(t).expect("has a next run");
            proptest::prop_assert!(next > t);
            t = next;
        }
    }
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

/// Every due time of `expr` in `zone` from `from` (exclusive) up to `to`
/// (inclusive), UTC, as RFC 3339 with milliseconds.
fn runs_between(expr: &str, zone: &str, from: &str, to: &str) -> Vec<String> {
    let s = cron_in(expr, zone);
    let (mut t, end) = (utc(from), utc(to));
    let mut seen = Vec::new();
    while let Some(next) = s.next_after(t).filter(|n| *n <= end) {
        seen.push(crate::time::rfc3339(&next));
        t = next;
    }
    seen
}

#[test]
fn dst_fall_back_runs_each_fixed_time_of_a_list_once() {
    // New York, 2026-11-01: 01:00-01:59 happens as EDT (05:xxZ) and again
    // as EST (06:xxZ). The case: 01:00 ran twice.
    let day = ("2026-11-01T04:00:00Z", "2026-11-02T04:59:59Z");
    assert_eq!(
        runs_between("0 1,13 * * *", "America/New_York", day.0, day.1),
        ["2026-11-01T05:00:00.000Z", "2026-11-01T18:00:00.000Z"]
    );
    // Paris, 2026-10-25: 02:00-02:59 happens as CEST (00:xxZ) and CET
    // (01:xxZ): exactly twice, not four times.
    let day = ("2026-10-24T22:00:00Z", "2026-10-25T22:59:59Z");
    assert_eq!(
        runs_between("0,30 2 * * *", "Europe/Paris", day.0, day.1),
        ["2026-10-25T00:00:00.000Z", "2026-10-25T00:30:00.000Z"]
    );
    // The same with seconds, a range and a step.
    assert_eq!(
        runs_between("0 0,30 2 * * *", "Europe/Paris", day.0, day.1),
        ["2026-10-25T00:00:00.000Z", "2026-10-25T00:30:00.000Z"]
    );
    assert_eq!(
        runs_between("0 1-3 * * *", "Europe/Paris", day.0, day.1),
        [
            "2026-10-24T23:00:00.000Z", // 01:00 CEST
            "2026-10-25T00:00:00.000Z", // 02:00 CEST, not again at 02:00 CET
            "2026-10-25T02:00:00.000Z", // 03:00 CET
        ]
    );
    assert_eq!(
        runs_between(
            "30 1-5/2 * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            "2026-11-01T12:00:00Z"
        ),
        [
            "2026-11-01T05:30:00.000Z", // 01:30 EDT, once
            "2026-11-01T08:30:00.000Z", // 03:30 EST
            "2026-11-01T10:30:00.000Z", // 05:30 EST
        ]
    );
}

#[test]
fn dst_spring_forward_runs_each_skipped_fixed_time_right_after_the_gap() {
    // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z). Both
    // skipped slots run at once after the jump, in order, 1 ms apart.
    let day = ("2026-03-28T23:00:00Z", "2026-03-29T21:59:59Z");
    assert_eq!(
        runs_between("0,30 2 * * *", "Europe/Paris", day.0, day.1),
        ["2026-03-29T01:00:00.000Z", "2026-03-29T01:00:00.001Z"]
    );
    // A range through the gap: 02:00 (skipped) and 03:00 (the gap's end)
    // both run right after the jump; 01:00 as usual.
    assert_eq!(
        runs_between("0 1-3 * * *", "Europe/Paris", day.0, day.1),
        [
            "2026-03-29T00:00:00.000Z",
            "2026-03-29T01:00:00.000Z",
            "2026-03-29T01:00:00.001Z",
        ]
    );
    // A step: 00:15, 02:15 (skipped: after the jump), 04:15.
    assert_eq!(
        runs_between("15 0-4/2 * * *", "Europe/Paris", day.0, day.1),
        [
            "2026-03-28T23:15:00.000Z",
            "2026-03-29T01:00:00.000Z",
            "2026-03-29T02:15:00.000Z",
        ]
    );
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    assert_eq!(
        runs_between(
            "0 1,2,13 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            "2026-03-09T03:59:59Z"
        ),
        [
            "2026-03-08T06:00:00.000Z", // 01:00 EST
            "2026-03-08T07:00:00.000Z", // 02:00, run at 03:00 EDT
            "2026-03-08T17:00:00.000Z", // 13:00 EDT
        ]
    );
}

#[test]
fn dst_wildcard_lists_follow_the_wall_clock() {
    // `0,30 * * * *` has `*` in its hour: it runs in both halves of a
    // repeated hour and not at all in a skipped one (cronie's wildcard jobs).
    assert_eq!(
        runs_between(
            "0,30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            "2026-11-01T07:00:00Z"
        ),
        [
            "2026-11-01T05:00:00.000Z",
            "2026-11-01T05:30:00.000Z",
            "2026-11-01T06:00:00.000Z",
            "2026-11-01T06:30:00.000Z",
            "2026-11-01T07:00:00.000Z",
        ]
    );
    assert_eq!(
        runs_between(
            "0,30 * * * *",
            "Europe/Paris",
            "2026-03-29T00:15:00Z",
            "2026-03-29T01:30:00Z"
        ),
        [
            "2026-03-29T00:30:00.000Z", // 01:30 CET
            "2026-03-29T01:00:00.000Z", // 03:00 CEST
            "2026-03-29T01:30:00.000Z",
        ]
    );
}

#[test]
fn a_search_from_inside_the_gap_runs_sees_which_are_past() {
    // Asked from between the two runs of a gap (a restart then, or the
    // scheduler re-arming), the next is the second one, not a repeat.
    let s = cron_in("0,30 2 * * *", "Europe/Paris");
    let next = s.next_after(utc("2026-03-29T01:00:00.000Z")).expect("next");
    assert_eq!(next, utc("2026-03-29T01:00:00.001Z"));
    let next = s
        .next_after(utc("2026-03-29T01:00:00.0005Z"))
        .expect("next");
    assert_eq!(next, utc("2026-03-29T01:00:00.001Z"));
    let next = s.next_after(utc("2026-03-29T01:00:00.001Z")).expect("next");
    assert_eq!(next, utc("2026-03-30T00:00:00Z"));
}
