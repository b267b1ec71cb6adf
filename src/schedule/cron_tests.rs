//! [`CronSpec`] against croner 4, the matcher it replaces: on random
//! expressions (through tickd's own syntax check, as a config gives them)
//! and random instants, every answer must be croner's.

use super::*;
use crate::rng::SplitMix64;
use crate::schedule::syntax;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};

/// A random element of a field, as a user could write it.
fn element(rng: &mut SplitMix64, lo: u64, hi: u64, kind: usize) -> String {
    let v = |rng: &mut SplitMix64| lo + rng.below_u64(hi - lo + 1);
    match rng.below_u64(12) {
        0 => "*".into(),
        1 => format!("*/{}", 1 + rng.below_u64(hi - lo + 1)),
        2 | 3 => {
            let (a, b) = (v(rng), v(rng));
            format!("{}-{}", a.min(b), a.max(b))
        }
        4 => {
            let (a, b) = (v(rng), v(rng));
            format!("{}-{}/{}", a.min(b), a.max(b), 1 + rng.below_u64(7))
        }
        // Day-of-month extensions.
        5 if kind == 3 => ["L", "LW", "15W", "1W", "31W", "30W"][rng.below_u64(6) as usize].into(),
        6 if kind == 3 => format!("{}W", v(rng)),
        // Day-of-week extensions.
        5 if kind == 5 => format!("{}#{}", v(rng), 1 + rng.below_u64(5)),
        6 if kind == 5 => format!("{}L", v(rng)),
        7 if kind == 5 => {
            ["SUN", "MON-FRI", "SAT-SUN", "7", "5-7"][rng.below_u64(5) as usize].into()
        }
        _ => v(rng).to_string(),
    }
}

/// A random expression: 5 or 6 fields of lists of elements, now and then
/// `?`, `+` or a nickname.
fn expression(rng: &mut SplitMix64) -> String {
    if rng.below_u64(30) == 0 {
        let nicknames = [
            "@yearly",
            "@monthly",
            "@weekly",
            "@daily",
            "@hourly",
            "@midnight",
        ];
        return nicknames[rng.below_u64(nicknames.len() as u64) as usize].into();
    }
    let ranges = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let six = rng.below_u64(3) == 0;
    let mut fields = Vec::new();
    for (kind, (lo, hi)) in ranges.into_iter().enumerate() {
        if kind == 0 && !six {
            continue;
        }
        // Mostly plain fields, so that matches are frequent enough.
        let field = if rng.below_u64(3) == 0 {
            "*".to_string()
        } else if (kind == 3 || kind == 5) && rng.below_u64(8) == 0 {
            "?".to_string()
        } else {
            let n = 1 + rng.below_u64(3);
            let list: Vec<String> = (0..n).map(|_| element(rng, lo, hi, kind)).collect();
            list.join(",")
        };
        let field = if kind == 5 && rng.below_u64(8) == 0 {
            format!("+{field}")
        } else {
            field
        };
        fields.push(field);
    }
    fields.join(" ")
}

/// Both parses of `expr`, or `None` when tickd's syntax check refuses it.
fn both(expr: &str) -> Option<(Result<CronSpec, String>, Result<Cron, String>)> {
    let checked = if expr.starts_with('@') {
        syntax::nickname(expr)
    } else {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        syntax::check(&fields).ok()?
    };
    let ours = CronSpec::parse(&checked.normalised, checked.dom_and_dow);
    let theirs = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(checked.dom_and_dow)
        .build()
        .parse(&checked.normalised)
        .map_err(|e| e.to_string());
    Some((ours, theirs))
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
];

/// A random instant: anywhere from 1970 to 2400, or within a few hours of
/// a daylight-saving change of `tz`, with a random fraction of a second.
fn instant(rng: &mut SplitMix64, tz: &TimeZone) -> Timestamp {
    let year_secs = 365 * 86_400;
    let base = (rng.below_u64(430 * year_secs)) as i64;
    let mut t = Timestamp::from_second(base).expect("in range");
    if rng.below_u64(2) == 0 {
        if let Some(change) = tz.following(t).next() {
            let shift = rng.below_u64(6 * 3600) as i64 - 3 * 3600;
            t = change.timestamp() + SignedDuration::from_secs(shift);
        }
    }
    let nanos = match rng.below_u64(3) {
        0 => 0,
        1 => rng.below_u64(1_000_000_000) as i64,
        _ => 999_999_999,
    };
    t + SignedDuration::from_nanos(nanos)
}

#[test]
fn parses_and_refuses_as_croner_does() {
    let mut rng = SplitMix64::from_seed(16);
    let mut compared = 0;
    for _ in 0..8_000 {
        let expr = expression(&mut rng);
        let Some((ours, theirs)) = both(&expr) else {
            continue;
        };
        compared += 1;
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{expr}: {ours:?} vs {theirs:?}"
        );
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            let probe = jiff::Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
            let croner_matches = theirs.find_next_occurrence(&probe, false).is_ok();
            assert_eq!(ours.matches_some_date(), croner_matches, "{expr}");
        }
    }
    assert!(
        compared > 2_000,
        "only {compared} expressions got through the syntax check"
    );
}

#[test]
fn wall_clock_matches_are_croners() {
    let mut rng = SplitMix64::from_seed(1);
    for _ in 0..1_500 {
        let expr = expression(&mut rng);
        let Some((Ok(ours), Ok(theirs))) = both(&expr) else {
            continue;
        };
        for _ in 0..5 {
            let t = instant(&mut rng, &TimeZone::UTC);
            let wall = TimeZone::UTC.to_datetime(t);
            let want = theirs
                .find_next_occurrence(&wall.to_zoned(TimeZone::UTC).expect("utc"), false)
                .ok()
                .map(|z| z.datetime());
            assert_eq!(ours.next_wall_match(wall), want, "{expr} after {wall}");
        }
    }
}

#[test]
fn zoned_walks_are_croners_for_wildcard_jobs() {
    let mut rng = SplitMix64::from_seed(2);
    let zones: Vec<TimeZone> = ZONES
        .iter()
        .map(|z| jiff::tz::db().get(z).expect("zone"))
        .collect();
    let mut compared = 0;
    while compared < 1_500 {
        let expr = expression(&mut rng);
        let Some((Ok(ours), Ok(theirs))) = both(&expr) else {
            continue;
        };
        // tickd walks in a zone only for wildcard jobs, which croner
        // always calls interval jobs (their time fields start with `*`).
        if theirs.determine_job_type() != JobType::IntervalWildcard {
            continue;
        }
        for tz in &zones {
            let t = instant(&mut rng, tz);
            let want = theirs
                .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                .ok()
                .map(|z| z.timestamp());
            let name = tz.iana_name().unwrap_or("?");
            assert_eq!(ours.next_in_zone(t, tz), want, "{expr} in {name} after {t}");
            compared += 1;
        }
    }
}

#[test]
fn every_step_of_a_dst_day_is_croners() {
    // Each minute around the changes of 2026 in two zones, for wildcard
    // expressions with minute and second resolution.
    let exprs = [
        "*/7 * * * * *",
        "0 */20 * * * *",
        "0,30 * * * *",
        "*/15 1-3 * * *",
    ];
    for zone in ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"] {
        let tz = jiff::tz::db().get(zone).expect("zone");
        let year = Timestamp::from_second(1_767_225_600).expect("2026"); // 2026-01-01
        for change in tz.following(year).take(2) {
            for expr in exprs {
                let (Ok(ours), Ok(theirs)) = both(expr).expect("valid") else {
                    panic!("{expr} parses");
                };
                let mut t = change.timestamp() - SignedDuration::from_hours(3);
                let end = change.timestamp() + SignedDuration::from_hours(3);
                while t < end {
                    let want = theirs
                        .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                        .ok()
                        .map(|z| z.timestamp());
                    assert_eq!(
                        ours.next_in_zone(t, &tz),
                        want,
                        "{expr} in {zone} after {t}"
                    );
                    t += SignedDuration::from_secs(97);
                }
            }
        }
    }
}

#[test]
fn croners_quirks_are_kept() {
    let spec = |e: &str, and: bool| CronSpec::parse(e, and);
    // A bare `*` inside a list is refused, as croner refuses it.
    assert!(spec("*,5 * * * *", false).is_err());
    assert!(spec("*/5,7 * * * *", false).is_ok());
    // `L,LW` switches the field to `LW`: 2026-10-31 is a Saturday.
    let lw = spec("0 0 L,LW 10 *", false).expect("valid");
    let from = jiff::civil::date(2026, 10, 1).at(0, 0, 0, 0);
    assert_eq!(
        lw.next_wall_match(from),
        Some(jiff::civil::date(2026, 10, 30).at(0, 0, 0, 0))
    );
    // 7 is Sunday.
    let sunday = spec("0 0 * * 7", false).expect("valid");
    assert_eq!(sunday, spec("0 0 * * 0", false).expect("valid"));
}

#[test]
fn a_table_is_40_bytes() {
    assert!(std::mem::size_of::<CronSpec>() <= 40);
}
