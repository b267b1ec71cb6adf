//! Tests of the time module: the exact text of every timestamp tickd
//! writes, pinned against what chrono 0.4.45 wrote (`testdata/`), and the
//! RFC 3339 reader against chrono's, case by case. (Until chrono left, the
//! same properties were also checked against chrono itself, 200,000 cases
//! each; now jiff's own printer and parser are the second opinion.)

use super::text::{self, ParseError};
use super::*;
use proptest::prelude::*;

/// chrono's output, one row per instant (see the file's header).
const CHRONO_FORMATS: &str = include_str!("testdata/chrono-0.4.45.tsv");

/// Whether jiff holds the instant `secs` + `nanos` (years ±9999, less a
/// day at each end); chrono held far more.
fn in_jiff_range(secs: i64, nanos: u32) -> bool {
    let n = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    jiff::Timestamp::from_nanosecond(n).is_ok()
}

#[test]
fn every_format_matches_chronos_bytes() {
    let mut checked = 0;
    let mut out_of_range = Vec::new();
    for line in CHRONO_FORMATS.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [secs, nanos, millis, exact, imf] = cols[..] else {
            panic!("bad row {line:?}");
        };
        let secs: i64 = secs.parse().expect("secs");
        let nanos: u32 = nanos.parse().expect("nanos");
        if !in_jiff_range(secs, nanos) {
            out_of_range.push(millis);
            continue;
        }
        let t = from_unix(secs, nanos).expect("in range");
        assert_eq!(text::millis(&t), millis, "{line}");
        assert_eq!(rfc3339(&t), millis, "{line}");
        assert_eq!(text::exact(&t), exact, "{line}");
        assert_eq!(text::imf_fixdate(&t), imf, "{line}");
        // The journal's text reads back as the same instant, and the wire's
        // as the same millisecond; a year before 0 (which chrono wrote with
        // a sign but did not read) does not.
        if exact.starts_with('-') {
            assert_eq!(text::parse(exact), Err(ParseError::Invalid), "{line}");
        } else {
            assert_eq!(text::parse(exact), Ok(t), "{line}");
            let ms = unix_millis(&t);
            assert_eq!(text::parse(millis).map(|t| unix_millis(&t)), Ok(ms));
        }
        checked += 1;
    }
    assert_eq!(checked, 528);
    // 9999-12-31 and -9999-01-01 are past jiff's ends (12 rows each).
    assert_eq!(out_of_range.len(), 24, "{out_of_range:?}");
    assert!(out_of_range
        .iter()
        .all(|t| t.starts_with("9999-12-31") || t.starts_with("-9999-01-01")));
}

#[test]
fn pinned_wire_and_journal_strings() {
    let t = from_unix_millis(1_796_500_680_123).expect("valid");
    assert_eq!(rfc3339(&t), "2026-12-05T19:58:00.123Z");
    assert_eq!(json_opt(Some(&t)), "2026-12-05T19:58:00.123Z");
    assert_eq!(json_opt(None), serde_json::Value::Null);
    let whole = from_unix(1_796_500_680, 0).expect("valid");
    assert_eq!(rfc3339(&whole), "2026-12-05T19:58:00.000Z");
    assert_eq!(text::exact(&whole), "2026-12-05T19:58:00Z");
    let cases = [
        (
            120_000_000,
            "2026-12-05T19:58:00.120Z",
            "2026-12-05T19:58:00.120Z",
        ),
        (
            123_456_000,
            "2026-12-05T19:58:00.123Z",
            "2026-12-05T19:58:00.123456Z",
        ),
        (
            123_456_789,
            "2026-12-05T19:58:00.123Z",
            "2026-12-05T19:58:00.123456789Z",
        ),
        (
            999_999_999,
            "2026-12-05T19:58:00.999Z",
            "2026-12-05T19:58:00.999999999Z",
        ),
        (
            1,
            "2026-12-05T19:58:00.000Z",
            "2026-12-05T19:58:00.000000001Z",
        ),
    ];
    for (nanos, wire, journal) in cases {
        let t = from_unix(1_796_500_680, nanos).expect("valid");
        assert_eq!(rfc3339(&t), wire);
        assert_eq!(text::exact(&t), journal);
    }
}

#[test]
fn before_1970_and_leap_days() {
    let t = from_unix(-1, 999_000_000).expect("valid");
    assert_eq!(rfc3339(&t), "1969-12-31T23:59:59.999Z");
    assert_eq!(unix_millis(&t), -1);
    assert_eq!(unix_second(&t), -1);
    assert_eq!(from_unix_millis(-1), Some(t));
    let t = from_unix_millis(-2_208_988_800_001).expect("valid");
    assert_eq!(rfc3339(&t), "1899-12-31T23:59:59.999Z");
    assert_eq!(text::imf_fixdate(&t), "Sun, 31 Dec 1899 23:59:59 GMT");
    for (text_in, unix) in [
        ("2024-02-29T12:00:00Z", 1_709_208_000),
        ("2000-02-29T00:00:00Z", 951_782_400),
    ] {
        let t = text::parse(text_in).expect("a leap day");
        assert_eq!(unix_second(&t), unix);
        assert_eq!(text::exact(&t), text_in);
    }
    for no_such_day in [
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
    ] {
        assert_eq!(text::parse(no_such_day), Err(ParseError::OutOfRange));
    }
}

#[test]
fn the_ends_of_the_range() {
    let (max, min) = (Timestamp::MAX, Timestamp::MIN);
    assert_eq!(rfc3339(&max), "9999-12-30T22:00:00.999Z");
    assert_eq!(text::exact(&max), "9999-12-30T22:00:00.999999999Z");
    assert_eq!(text::imf_fixdate(&max), "Thu, 30 Dec 9999 22:00:00 GMT");
    assert_eq!(rfc3339(&min), "-9999-01-02T01:59:59.000Z");
    assert_eq!(text::exact(&min), "-9999-01-02T01:59:59Z");
    assert_eq!(text::parse("9999-12-30T22:00:00.999999999Z"), Ok(max));
    // Past jiff's end (chrono took it): out of range, never a wrong instant.
    assert_eq!(
        text::parse("9999-12-31T23:59:59Z"),
        Err(ParseError::OutOfRange)
    );
    assert_eq!(
        text::parse("9999-12-30T22:00:00.999999999-00:01"),
        Err(ParseError::OutOfRange)
    );
}

/// An instant as (Unix seconds, nanoseconds), or an error message.
type Parsed = Result<(i64, u32), &'static str>;

/// What chrono 0.4.45's `DateTime::parse_from_rfc3339` made of each text:
/// the instant (Unix seconds, nanoseconds) in UTC, or its error message.
/// Leap seconds are the one documented difference (see `text::parse`).
const CHRONO_PARSES: [(&str, Parsed); 61] = [
    ("2026-12-05T19:58:00.123Z", Ok((1796500680, 123000000))),
    ("2026-12-05T19:58:00Z", Ok((1796500680, 0))),
    ("2026-12-05T19:58:00.1Z", Ok((1796500680, 100000000))),
    ("2026-12-05T19:58:00.12Z", Ok((1796500680, 120000000))),
    ("2026-12-05T19:58:00.123456Z", Ok((1796500680, 123456000))),
    (
        "2026-12-05T19:58:00.123456789Z",
        Ok((1796500680, 123456789)),
    ),
    (
        "2026-12-05T19:58:00.1234567891234Z",
        Ok((1796500680, 123456789)),
    ),
    ("2026-12-05T19:58:00.000000000000001Z", Ok((1796500680, 0))),
    (
        "2026-12-05T19:58:00.Z",
        Err("input contains invalid characters"),
    ),
    ("2026-12-05T19:58:00.", Err("premature end of input")),
    ("2026-12-05t19:58:00.5z", Ok((1796500680, 500000000))),
    ("2026-12-05 19:58:00.5Z", Ok((1796500680, 500000000))),
    ("2026-12-05T19:58:00+01:00", Ok((1796497080, 0))),
    ("2026-12-05T19:58:00.250-05:30", Ok((1796520480, 250000000))),
    ("2026-12-05T19:58:00\u{2212}01:00", Ok((1796504280, 0))),
    ("2026-12-05T19:58:00+23:59", Ok((1796414340, 0))),
    ("2026-12-05T19:58:00+24:00", Err("input is out of range")),
    ("2026-12-05T19:58:00+99:00", Err("input is out of range")),
    ("2026-12-05T19:58:00+01:60", Err("input is out of range")),
    (
        "2026-12-05T19:58:00+0100",
        Err("input contains invalid characters"),
    ),
    ("2026-12-05T19:58:00+01", Err("premature end of input")),
    ("2026-12-05T19:58:00-00:00", Ok((1796500680, 0))),
    ("2026-12-05T19:58:00", Err("premature end of input")),
    ("2026-12-05T19:58:00ZZ", Err("trailing input")),
    ("2026-12-05T19:58:00Z ", Err("trailing input")),
    (
        " 2026-12-05T19:58:00Z",
        Err("input contains invalid characters"),
    ),
    ("2026-12-05T24:00:00Z", Err("input is out of range")),
    ("2026-12-05T23:60:00Z", Err("input is out of range")),
    ("2026-02-29T00:00:00Z", Err("input is out of range")),
    ("2024-02-29T00:00:00Z", Ok((1709164800, 0))),
    ("2000-02-29T12:00:00Z", Ok((951825600, 0))),
    ("1900-02-29T12:00:00Z", Err("input is out of range")),
    ("2100-02-28T23:59:59.999Z", Ok((4107542399, 999000000))),
    ("2026-04-31T00:00:00Z", Err("input is out of range")),
    ("2026-13-01T00:00:00Z", Err("input is out of range")),
    ("2026-00-01T00:00:00Z", Err("input is out of range")),
    ("2026-01-00T00:00:00Z", Err("input is out of range")),
    ("1969-12-31T23:59:59.999Z", Ok((-1, 999000000))),
    ("1969-12-31T23:59:59.999999999Z", Ok((-1, 999999999))),
    ("1970-01-01T00:00:00Z", Ok((0, 0))),
    ("1900-01-01T00:00:00Z", Ok((-2208988800, 0))),
    ("0000-01-01T00:00:00Z", Ok((-62167219200, 0))),
    ("0000-01-01T00:00:00+01:00", Ok((-62167222800, 0))),
    ("0000-01-01T00:00:00-01:00", Ok((-62167215600, 0))),
    (
        "9999-12-30T22:00:00.999999999Z",
        Ok((253402207200, 999999999)),
    ),
    (
        "+2026-12-05T19:58:00Z",
        Err("input contains invalid characters"),
    ),
    (
        "-0001-01-01T00:00:00Z",
        Err("input contains invalid characters"),
    ),
    ("20261205T195800Z", Err("premature end of input")),
    (
        "2026-12-5T19:58:00Z",
        Err("input contains invalid characters"),
    ),
    (
        "2026-12-05T9:58:00Z",
        Err("input contains invalid characters"),
    ),
    ("2026-12-05T19:58Z", Err("premature end of input")),
    (
        "2026-12-05X19:58:00Z",
        Err("input contains invalid characters"),
    ),
    (
        "2026-12-05T19:58:00,123Z",
        Err("input contains invalid characters"),
    ),
    (
        "2026-12-05T19:58:00.123 Z",
        Err("input contains invalid characters"),
    ),
    (
        "2026-12-05T19:58:00.123UTC",
        Err("input contains invalid characters"),
    ),
    (
        "2026-12-05T19:58:00.123GMT",
        Err("input contains invalid characters"),
    ),
    ("2026-12-05T19:58:00.123Z[UTC]", Err("trailing input")),
    ("2026-12-05T19:58:00+01:0", Err("premature end of input")),
    (
        "2026-12-05T19:58:00+01:0x",
        Err("input contains invalid characters"),
    ),
    ("", Err("premature end of input")),
    ("2026", Err("premature end of input")),
];

#[test]
fn the_reader_accepts_and_refuses_what_chrono_did() {
    for (input, want) in CHRONO_PARSES {
        let got = text::parse(input)
            .map(|t| {
                let nanos = t.as_nanosecond().rem_euclid(1_000_000_000);
                (unix_second(&t), u32::try_from(nanos).expect("below 1e9"))
            })
            .map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_string), "{input:?}");
    }
}

#[test]
fn a_leap_second_reads_as_the_end_of_the_second_before() {
    // chrono kept 23:59:60 as a 61st second; jiff has none. No clock
    // reading shows one, so tickd never wrote one.
    let t = text::parse("2016-12-31T23:59:60.5Z").expect("accepted");
    assert_eq!(text::exact(&t), "2016-12-31T23:59:59.999999999Z");
    assert_eq!(text::parse("2016-12-31T23:59:60Z"), Ok(t));
    assert!(t < text::parse("2017-01-01T00:00:00Z").expect("valid"));
    assert_eq!(
        text::parse("2016-12-31T23:59:61Z"),
        Err(ParseError::OutOfRange)
    );
}

#[test]
fn formats_utc_with_millis() {
    let t = from_unix_millis(1_763_889_600_123).expect("valid timestamp");
    assert_eq!(rfc3339(&t), "2025-11-23T09:20:00.123Z");
}

#[test]
fn micros_between_keeps_sub_millisecond_differences_and_sign() {
    let a = now();
    let b = a + jiff::SignedDuration::from_micros(1_250);
    assert_eq!(micros_between(&a, &b), 1_250);
    assert_eq!(micros_between(&b, &a), -1_250);
}

#[test]
fn millis_between_clamps_negative_to_zero() {
    let a = now();
    let b = a + jiff::SignedDuration::from_millis(250);
    assert_eq!(millis_between(&a, &b), 250);
    assert_eq!(millis_between(&b, &a), 0);
}

#[test]
fn unix_seconds_and_millis_round_down_before_1970() {
    let t = from_unix(-1, 500_000_000).expect("valid");
    assert_eq!((t.as_second(), unix_second(&t)), (0, -1));
    assert_eq!(unix_millis(&t), -500);
    let t = from_unix(-2, 999_500_000).expect("valid");
    assert_eq!((unix_second(&t), unix_millis(&t)), (-2, -1001));
    let t = from_unix(5, 999_999_999).expect("valid");
    assert_eq!((unix_second(&t), unix_millis(&t)), (5, 5999));
    assert_eq!(from_unix(0, 1_000_000_000), None);
}

// ---- second opinion: jiff's own printer and parser ------------------------

/// Instants jiff holds, at nanosecond, microsecond and millisecond grain.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let secs = -377_705_030_400i64..253_402_207_200;
    (secs, 0u32..1_000_000_000, 0u8..4).prop_map(|(s, n, grain)| {
        let n = match grain {
            0 => 0,
            1 => n / 1_000_000 * 1_000_000,
            2 => n / 1_000 * 1_000,
            _ => n,
        };
        from_unix(s, n).expect("in range")
    })
}

/// Texts close to RFC 3339, valid or a little off, field by field.
const RFC3339_LIKE: &str = "[0-9]{4}-(0[1-9]|1[0-2]|[0-9]{2})-(0[1-9]|[12][0-9]|3[01]|[0-9]{2})\
    [Tt X]([01][0-9]|2[0-3]|[0-9]{2}):([0-5][0-9]|[0-9]{2}):([0-5][0-9]|60|[0-9]{2})\
    (\\.[0-9]{0,12})?(Z|z|[+\u{2212}-]([01][0-9]|2[0-4]|[0-9]{0,2}):?([0-5][0-9]|[0-9]{0,2})|[a-z ]|)[Z ]?";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn formats_agree_with_jiff(t in any_instant()) {
        let dt = jiff::tz::Offset::UTC.to_datetime(t);
        if dt.year() >= 0 {
            // jiff writes years before 0 with six digits; chrono used four.
            prop_assert_eq!(text::millis(&t).to_string(), format!("{t:.3}"));
            let imf = dt.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
            prop_assert_eq!(text::imf_fixdate(&t).to_string(), imf);
            // The journal's text is jiff's, with the fraction padded to a
            // group of three digits.
            let exact = text::exact(&t).to_string();
            let jiffs = t.to_string();
            let fraction = exact.split_once('.').map_or(0, |(_, f)| f.len() - 1);
            prop_assert!([0, 3, 6, 9].contains(&fraction), "{}", exact);
            prop_assert_eq!(exact.trim_end_matches('Z').trim_end_matches('0'),
                jiffs.trim_end_matches('Z').trim_end_matches('0'));
            prop_assert_eq!(text::parse(&exact), Ok(t));
        }
        prop_assert_eq!(exact_instant(&text::exact(&t)), Some(t));
    }

    #[test]
    fn what_the_reader_accepts_jiff_reads_the_same(s in RFC3339_LIKE) {
        let leap = s.get(17..19) == Some("60");
        let long_fraction = s.get(19..).is_some_and(|f| {
            f.starts_with('.') && f[1..].bytes().take_while(u8::is_ascii_digit).count() > 9
        });
        if let (Ok(ours), false, false) = (text::parse(&s), leap, long_fraction) {
            let jiffs: Result<Timestamp, _> = s.replace('\u{2212}', "-").parse();
            prop_assert_eq!(jiffs.ok(), Some(ours), "{}", s);
        }
    }

    #[test]
    fn the_reader_never_panics(s in "\\PC{0,40}") {
        let _ = text::parse(&s);
    }
}

/// The instant of a journal text, read by jiff's parser (a second reader).
fn exact_instant(s: &str) -> Option<Timestamp> {
    match s.strip_prefix('-') {
        // A year before 0, which jiff writes as `-00YYYY`.
        Some(negative) => format!("-00{negative}").parse().ok(),
        None => s.parse().ok(),
    }
}
