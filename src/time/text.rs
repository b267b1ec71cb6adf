//! Timestamps as text, both ways: RFC 3339 for the wire and the journal,
//! IMF-fixdate for HTTP's `Date`.
//!
//! Written by hand, byte for byte as chrono 0.4 wrote them before tickd
//! moved to jiff (`testdata/chrono-0.4.45.tsv` holds chrono's own output,
//! and the tests compare), because clients and journals already hold these
//! exact strings:
//! - [`millis`], the wire: `2026-12-05T19:58:00.123Z`, always three
//!   fractional digits and `Z` (chrono's `SecondsFormat::Millis`);
//! - [`exact`], the journal: every digit of precision that is there, in
//!   groups of three (none, 3, 6 or 9 digits: chrono's
//!   `SecondsFormat::AutoSi`), so a run reads back exactly as it was saved;
//! - [`imf_fixdate`]: `Sun, 06 Nov 1994 08:49:37 GMT`;
//! - [`parse`] reads what chrono's `DateTime::parse_from_rfc3339` read, with
//!   the same error messages (see its docs for the two differences).
//!
//! jiff's own printer differs (it trims trailing zeros: `.12` where the
//! wire has `.120`), and formatting into a stack buffer spares the
//! allocation and the `fmt` machinery on the hot path: a run's JSON has up
//! to four timestamps.

use super::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use std::fmt;

/// The longest text written: `Sun, 31 Dec -9999 23:59:59 GMT` is 30
/// bytes, `-9999-12-31T23:59:59.999999999Z` 31.
const CAPACITY: usize = 31;

/// A formatted timestamp, held on the stack (no allocation).
#[derive(Clone, Copy)]
pub struct Text {
    buf: [u8; CAPACITY],
    len: u8,
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written, so this cannot fail.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Text of `parts` one after the other (at most [`CAPACITY`] bytes in
    /// all, which every caller stays within; more is cut).
    fn of(parts: &[&[u8]]) -> Text {
        let mut buf = [0; CAPACITY];
        let mut len = 0;
        for part in parts {
            let end = (len + part.len()).min(CAPACITY);
            buf[len..end].copy_from_slice(&part[..end - len]);
            len = end;
        }
        // `len` is at most CAPACITY (31).
        Text {
            buf,
            len: len as u8,
        }
    }
}

/// `value`'s last `N` decimal digits, zero-padded.
fn digits<const N: usize>(mut value: u32) -> [u8; N] {
    let mut out = [b'0'; N];
    for slot in out.iter_mut().rev() {
        // `value % 10` is below 10, so the cast keeps it.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out
}

/// A year as chrono wrote it: four digits from 0 to 9999, else with its
/// sign (`-0001`; jiff's years end at ±9999). Returns the sign's bytes.
fn year(year: i16) -> (&'static [u8], [u8; 4]) {
    let sign: &[u8] = if year < 0 { b"-" } else { b"" };
    (sign, digits(u32::from(year.unsigned_abs())))
}

/// A two-digit field (month, day, hour, ...), never negative.
fn two(value: i8) -> [u8; 2] {
    digits(u32::from(value.unsigned_abs()))
}

/// `-MM-DDTHH:MM:SS`, what follows the year.
fn month_to_second(dt: &DateTime) -> [u8; 15] {
    let [m, d, h, min, s] = [dt.month(), dt.day(), dt.hour(), dt.minute(), dt.second()].map(two);
    [
        b'-', m[0], m[1], b'-', d[0], d[1], b'T', h[0], h[1], b':', min[0], min[1], b':', s[0],
        s[1],
    ]
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The wall time of `t` in UTC; its sub-second part is 0..1e9 also before
/// 1970 (unlike `Timestamp::subsec_nanosecond`, negative there).
fn utc(t: &Timestamp) -> DateTime {
    Offset::UTC.to_datetime(*t)
}

/// Nanoseconds into the second, from a civil time (never negative).
fn nanos(dt: &DateTime) -> u32 {
    u32::try_from(dt.subsec_nanosecond()).unwrap_or(0)
}

/// The wire's form: `2026-12-05T19:58:00.123Z` (milliseconds, truncated).
pub fn millis(t: &Timestamp) -> Text {
    let dt = utc(t);
    let (sign, y) = year(dt.year());
    let ms = digits::<3>(nanos(&dt) / 1_000_000);
    Text::of(&[sign, &y, &month_to_second(&dt), b".", &ms, b"Z"])
}

/// The journal's form: every digit there is, in groups of three.
/// `...:00Z`, `...:00.120Z`, `...:00.123456Z`, `...:00.123456789Z`.
pub fn exact(t: &Timestamp) -> Text {
    let dt = utc(t);
    let (sign, y) = year(dt.year());
    let body = month_to_second(&dt);
    let nano = nanos(&dt);
    let fraction = digits::<9>(nano);
    let shown = if nano == 0 {
        0
    } else if nano.is_multiple_of(1_000_000) {
        3
    } else if nano.is_multiple_of(1_000) {
        6
    } else {
        9
    };
    let dot: &[u8] = if shown == 0 { b"" } else { b"." };
    Text::of(&[sign, &y, &body, dot, &fraction[..shown], b"Z"])
}

const WEEKDAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// An IMF-fixdate (RFC 9110 section 5.6.7), the only form of HTTP date a
/// sender may generate: `Sun, 06 Nov 1994 08:49:37 GMT`. The names are the
/// English ones the format requires, whatever the locale.
pub fn imf_fixdate(t: &Timestamp) -> Text {
    let dt = utc(t);
    let weekday = usize::from(dt.weekday().to_sunday_zero_offset().unsigned_abs());
    let month = usize::from(dt.month().unsigned_abs());
    let day = two(dt.day());
    let (sign, y) = year(dt.year());
    // The clock part (`HH:MM:SS`) of the RFC 3339 body.
    let body = month_to_second(&dt);
    Text::of(&[
        WEEKDAYS[weekday % 7],
        b", ",
        &day,
        b" ",
        MONTHS[(month + 11) % 12],
        b" ",
        sign,
        &y,
        b" ",
        &body[7..],
        b" GMT",
    ])
}

/// Why [`parse`] refused a text; the messages are chrono's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A field has a value out of its range (month 13, Feb 30, `+24:00`).
    OutOfRange,
    /// A character that does not belong where it is.
    Invalid,
    /// The text ends early.
    TooShort,
    /// Something follows the offset.
    TooLong,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::OutOfRange => "input is out of range",
            ParseError::Invalid => "input contains invalid characters",
            ParseError::TooShort => "premature end of input",
            ParseError::TooLong => "trailing input",
        })
    }
}

impl std::error::Error for ParseError {}

/// Reads an RFC 3339 timestamp, accepting exactly what chrono 0.4's
/// `DateTime::parse_from_rfc3339` accepted and checking in its order (so a
/// bad text gets the same message): `YYYY-MM-DD`, then `T`, `t` or a
/// space, `HH:MM:SS`, an optional `.` and one or more digits (those past
/// nine ignored), then `Z`, `z` or an offset `±HH:MM` below 24 hours (the
/// minus may be U+2212), and nothing after.
///
/// Two differences, in texts tickd never writes: a leap second (`:60`),
/// which jiff cannot hold, reads as the last nanosecond of the second
/// before it (chrono kept it as a 61st second; a clock reading never shows
/// one); and an instant outside jiff's range (years ±9999, less a day at
/// each end) is out of range rather than accepted.
pub fn parse(s: &str) -> Result<Timestamp, ParseError> {
    use ParseError::{Invalid, OutOfRange, TooLong, TooShort};
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(TooShort);
    }
    let digit = |i: usize| match b[i] {
        d @ b'0'..=b'9' => Ok(d - b'0'),
        _ => Err(Invalid),
    };
    let two = |i: usize| Ok::<i8, ParseError>((digit(i)? * 10 + digit(i + 1)?) as i8);
    let sep = |i: usize, c: u8| if b[i] == c { Ok(()) } else { Err(Invalid) };
    let mut year = 0i16;
    for i in 0..4 {
        year = year * 10 + i16::from(digit(i)?);
    }
    sep(4, b'-')?;
    let month = two(5)?;
    sep(7, b'-')?;
    let day = two(8)?;
    let date = jiff::civil::Date::new(year, month, day).map_err(|_| OutOfRange)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(Invalid);
    }
    let hour = two(11)?;
    sep(13, b':')?;
    let minute = two(14)?;
    sep(16, b':')?;
    let mut second = two(17)?;
    let mut rest = &b[19..];
    let mut nano = 0i32;
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(if fraction.is_empty() {
                TooShort
            } else {
                Invalid
            });
        }
        for i in 0..9 {
            let d = fraction
                .get(i)
                .filter(|_| i < digits)
                .map_or(0, |d| d - b'0');
            nano = nano * 10 + i32::from(d);
        }
        rest = &fraction[digits..];
    }
    if second == 60 {
        // A leap second (see above).
        second = 59;
        nano = 999_999_999;
    }
    if hour >= 24 || minute >= 60 || second >= 60 {
        return Err(OutOfRange);
    }
    let (offset, rest) = offset(rest)?;
    if !rest.is_empty() {
        return Err(TooLong);
    }
    if offset.unsigned_abs() >= 86_400 {
        return Err(OutOfRange);
    }
    let time = jiff::civil::Time::new(hour, minute, second, nano).map_err(|_| OutOfRange)?;
    let offset = Offset::from_seconds(offset).map_err(|_| OutOfRange)?;
    offset
        .to_timestamp(date.to_datetime(time))
        .map_err(|_| OutOfRange)
}

/// An offset in seconds east of UTC, and what follows it: `Z`, `z`, or
/// `±HH:MM` with minutes below 60 (hours are checked by the caller).
fn offset(s: &[u8]) -> Result<(i32, &[u8]), ParseError> {
    use ParseError::{Invalid, OutOfRange, TooShort};
    let (negative, s) = match s {
        [b'Z' | b'z', rest @ ..] => return Ok((0, rest)),
        [b'+', rest @ ..] => (false, rest),
        [b'-', rest @ ..] => (true, rest),
        // U+2212 MINUS SIGN, in UTF-8.
        [0xE2, 0x88, 0x92, rest @ ..] => (true, rest),
        [] => return Err(TooShort),
        _ => return Err(Invalid),
    };
    let hours = match s {
        [h1 @ b'0'..=b'9', h2 @ b'0'..=b'9', ..] => i32::from((h1 - b'0') * 10 + (h2 - b'0')),
        [_, _, ..] => return Err(Invalid),
        _ => return Err(TooShort),
    };
    let s = match &s[2..] {
        [b':', rest @ ..] => rest,
        [] => return Err(TooShort),
        _ => return Err(Invalid),
    };
    let minutes = match s {
        [m1 @ b'0'..=b'5', m2 @ b'0'..=b'9', ..] => i32::from((m1 - b'0') * 10 + (m2 - b'0')),
        [b'6'..=b'9', b'0'..=b'9', ..] => return Err(OutOfRange),
        [_, _, ..] => return Err(Invalid),
        _ => return Err(TooShort),
    };
    let seconds = hours * 3600 + minutes * 60;
    Ok((if negative { -seconds } else { seconds }, &s[2..]))
}
