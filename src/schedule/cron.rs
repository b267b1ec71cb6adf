//! A parsed cron expression in 40 bytes, and the search for its matches.
//!
//! tickd used croner's `Cron` for this: about 5.5 KB per expression (a byte
//! per possible value of every field, years 1 to 5000 included), which at a
//! million jobs is most of the daemon's memory. [`CronSpec`] keeps the same
//! tables as bit sets: one bit per second, minute, hour, day of month and
//! month, and per weekday the bits of `*`, `#1`-`#5` and `L`.
//!
//! It reads the expression [`super::syntax`] has checked and normalised
//! (numbers only, `?` as `*`, the nicknames as croner spells them) and
//! gives exactly croner 4's answers, quirks included, so that no schedule
//! changes meaning:
//! - `L` and `LW` in the day-of-month field switch a mode for the whole
//!   field (so `L,LW` means `LW`), while `NW` marks its own day;
//! - a day-of-month or day-of-week field that is exactly `*` (a star
//!   field) leaves the decision to the other one; two restricted fields
//!   are ORed unless `dom_and_dow` (a `*`-led field such as `*/2`, or `+`);
//! - a bare `*` inside a list (`*,5`) is refused;
//! - no match at or after the year 5000 ([`YEAR_LIMIT`]).
//!
//! Two searches are offered: [`CronSpec::next_wall_match`] on the wall
//! clock alone (for the daylight-saving rules of fixed-time jobs in
//! [`super::dst`]), and [`CronSpec::next_in_zone`], croner's walk of the
//! wall clock in a time zone, which wildcard jobs follow (no run in a
//! skipped hour, a run in each half of a repeated one). The unit tests
//! compare both with croner itself on random expressions and instants.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// No match is looked for at or after this year (croner's limit).
pub const YEAR_LIMIT: i16 = 5000;

/// `flags`: `L` in the day-of-month field (croner's LAST feature).
const DOM_LAST: u8 = 1;
/// `flags`: `LW` in the day-of-month field (LAST and CLOSEST_WEEKDAY).
const DOM_CLOSEST: u8 = 1 << 1;
/// `flags`: the day-of-month field is exactly `*`.
const STAR_DOM: u8 = 1 << 2;
/// `flags`: the day-of-week field is exactly `*`.
const STAR_DOW: u8 = 1 << 3;
/// `flags`: a day must match both day fields.
const DOM_AND_DOW: u8 = 1 << 4;

/// `nth[weekday]`: the bit of `#K` is `1 << (K - 1)`; `L` (the month's last
/// such weekday) is this one.
const NTH_LAST: u8 = 1 << 5;

/// A cron expression's tables (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CronSpec {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Days of the month, bit 1 to bit 31.
    days: u32,
    /// Days `NW` names (the weekday nearest day N), bit 1 to bit 31.
    days_w: u32,
    /// Months, bit 1 to bit 12.
    months: u16,
    /// Weekdays matched on every week, bit 0 (Sunday) to bit 6.
    weekdays: u8,
    /// Per weekday (Sunday first): `#1`..`#5` and `L`.
    nth: [u8; 7],
    flags: u8,
}

/// Croner's spelling of the nicknames (seconds first).
fn nickname(expr: &str) -> Option<&'static str> {
    Some(match expr {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        _ => return None,
    })
}

/// One field being read: its bits and what croner's `CronComponent` would
/// remember of it.
struct Field {
    min: u32,
    max: u32,
    bits: u64,
}

impl Field {
    fn new(min: u32, max: u32) -> Field {
        Field { min, max, bits: 0 }
    }

    fn set(&mut self, value: u32) -> Result<(), String> {
        if value < self.min || value > self.max {
            return Err(format!("{value} is out of range"));
        }
        self.bits |= 1 << value;
        Ok(())
    }

    /// `A-B/S`, `*/S`, `A-B`, `N`: the values an element stands for, as
    /// croner reads them; `mark` sets each.
    fn element(
        &mut self,
        part: &str,
        mut mark: impl FnMut(&mut Field, u32) -> Result<(), String>,
    ) -> Result<(), String> {
        let number = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("\"{s}\" is not a number"))
        };
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, number(step)?),
            None => (part, 1),
        };
        if step == 0 {
            return Err("a step cannot be zero".to_string());
        }
        let (start, end) = if range == "*" && part.contains('/') {
            (self.min, self.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a)?, number(b)?)
        } else if part.contains('/') {
            return Err("a step needs a range or `*` before it".to_string());
        } else {
            let n = number(range)?;
            (n, n)
        };
        if start > end || start < self.min || end > self.max {
            return Err(format!("{part} is out of range"));
        }
        let mut v = start;
        while v <= end {
            mark(self, v)?;
            v += step;
        }
        Ok(())
    }
}

impl CronSpec {
    /// Reads an expression [`super::syntax`] has normalised: 5 fields, 6
    /// (seconds first) or a nickname; `dom_and_dow` as it decided.
    pub fn parse(normalised: &str, dom_and_dow: bool) -> Result<CronSpec, String> {
        let expanded;
        let text = match nickname(normalised) {
            Some(n) => n,
            None => normalised,
        };
        let mut parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() == 5 {
            expanded = ["0"];
            parts.insert(0, expanded[0]);
        }
        if parts.len() != 6 {
            return Err(format!("{} fields; expected 5 or 6", parts.len()));
        }
        let mut flags = if dom_and_dow { DOM_AND_DOW } else { 0 };
        let mut dow_text = parts[5];
        if let Some(rest) = dow_text.strip_prefix('+') {
            flags |= DOM_AND_DOW;
            dow_text = rest;
        }
        if parts[3] == "*" {
            flags |= STAR_DOM;
        }
        if dow_text == "*" {
            flags |= STAR_DOW;
        }
        let seconds = plain(parts[0], 0, 59)?;
        let minutes = plain(parts[1], 0, 59)?;
        let hours = plain(parts[2], 0, 23)?;
        let months = plain(parts[4], 1, 12)?;

        // Day of month: numbers, `L`, `LW`, `NW`.
        let mut days = Field::new(1, 31);
        let mut days_w = 0u32;
        if parts[3] == "*" {
            days.bits = all(1, 31);
        } else {
            for part in parts[3].split(',').filter(|p| !p.is_empty()) {
                if part.contains('/') || part.contains('-') {
                    days.element(part, |f, v| f.set(v))?;
                } else if let Some(day) = part.strip_suffix('W') {
                    if day == "L" {
                        flags |= DOM_LAST | DOM_CLOSEST;
                    } else {
                        let d = day.parse::<u32>().map_err(|_| format!("bad day {part}"))?;
                        if !(1..=31).contains(&d) {
                            return Err(format!("{part} is out of range"));
                        }
                        days_w |= 1 << d;
                    }
                } else if part == "L" {
                    flags |= DOM_LAST;
                } else {
                    days.element(part, |f, v| f.set(v))?;
                }
            }
        }

        // Day of week: numbers (7 is Sunday), `N#K`, `NL`.
        let mut weekdays = 0u8;
        let mut nth = [0u8; 7];
        if dow_text == "*" {
            weekdays = 0x7f;
        } else {
            for part in dow_text.split(',').filter(|p| !p.is_empty()) {
                let (body, bit) = if let Some((day, k)) = part.split_once('#') {
                    let k = k.parse::<u32>().map_err(|_| format!("bad #{k}"))?;
                    if !(1..=5).contains(&k) {
                        return Err(format!("#{k} is out of range"));
                    }
                    (day, Some(1u8 << (k - 1)))
                } else if let Some(day) = part.strip_suffix('L').filter(|_| !part.contains('/')) {
                    (day, Some(NTH_LAST))
                } else {
                    (part, None)
                };
                let mut f = Field::new(0, 7);
                f.element(body, |f, v| f.set(v))?;
                for d in 0..=7u32 {
                    if f.bits & (1 << d) != 0 {
                        let d = (d % 7) as usize;
                        match bit {
                            Some(b) => nth[d] |= b,
                            None => weekdays |= 1 << d,
                        }
                    }
                }
            }
        }
        Ok(CronSpec {
            seconds,
            minutes,
            hours: hours as u32,
            days: days.bits as u32,
            days_w,
            months: months as u16,
            weekdays,
            nth,
            flags,
        })
    }

    /// Whether a day matches the two day fields (croner's `day_match`);
    /// `weekday` is `day`'s, 0 = Sunday.
    fn day_match(&self, year: i16, month: u8, day: u8, weekday: u8) -> bool {
        let len = days_in_month(year, month);
        let mut dom = self.days & (1 << day) != 0;
        if !dom && self.flags & DOM_LAST != 0 {
            dom = if self.flags & DOM_CLOSEST != 0 {
                // The weekday of the month's last day decides its last weekday.
                let last = (weekday + (len - day) % 7) % 7;
                let last_weekday = match last {
                    6 => len - 1,
                    0 => len - 2,
                    _ => len,
                };
                day == last_weekday
            } else {
                day == len
            };
        }
        if !dom && self.days_w != 0 {
            dom = self.closest_weekday(len, day, weekday);
        }
        let w = usize::from(weekday);
        let mut dow = self.nth[w] & (1 << ((day - 1) / 7)) != 0;
        if !dow && self.nth[w] & NTH_LAST != 0 && day + 7 > len {
            dow = true;
        }
        dow = dow || self.weekdays & (1 << weekday) != 0;
        let (star_dom, star_dow) = (self.flags & STAR_DOM != 0, self.flags & STAR_DOW != 0);
        if (dom && star_dow) || (dow && star_dom) {
            true
        } else if !star_dom && !star_dow {
            if self.flags & DOM_AND_DOW != 0 {
                dom && dow
            } else {
                dom || dow
            }
        } else {
            false
        }
    }

    /// Whether an `NW` day of the pattern lands on `day` (croner's
    /// `closest_weekday`).
    fn closest_weekday(&self, len: u8, day: u8, weekday: u8) -> bool {
        let first = day.saturating_sub(2).max(1);
        let last = (day + 2).min(len);
        (first..=last).any(|p| {
            if self.days_w & (1 << p) == 0 {
                return false;
            }
            let wd = (i32::from(weekday) + i32::from(p) - i32::from(day)).rem_euclid(7);
            let target = match wd {
                6 if p > 1 => p - 1,
                6 => p + 2,
                0 if p < len => p + 1,
                0 => p - 2,
                _ => p,
            };
            target == day
        })
    }

    /// The first wall-clock time at or after `from` (whole seconds) that
    /// matches, before the year `limit`.
    fn next_civil(&self, from: DateTime, limit: i16) -> Option<DateTime> {
        let (mut y, mut mo, mut d) = (from.year(), from.month() as u8, from.day() as u8);
        let (mut h, mut mi, mut s) = (from.hour() as u8, from.minute() as u8, from.second() as u8);
        let mut wd = from.weekday().to_sunday_zero_offset() as u8;
        loop {
            if y >= limit {
                return None;
            }
            if self.months & (1 << mo) == 0 {
                // On to the first day of the next month.
                let len = days_in_month(y, mo);
                wd = (wd + (len - d + 1) % 7) % 7;
                (d, h, mi, s) = (1, 0, 0, 0);
                if mo == 12 {
                    (y, mo) = (y + 1, 1);
                } else {
                    mo += 1;
                }
                continue;
            }
            if self.day_match(y, mo, d, wd) {
                if let Some((hh, mm, ss)) = self.next_time(h, mi, s) {
                    return DateTime::new(y, mo as i8, d as i8, hh as i8, mm as i8, ss as i8, 0)
                        .ok();
                }
            }
            // On to the next day.
            (h, mi, s) = (0, 0, 0);
            wd = (wd + 1) % 7;
            if d < days_in_month(y, mo) {
                d += 1;
            } else if mo == 12 {
                (y, mo, d) = (y + 1, 1, 1);
            } else {
                (mo, d) = (mo + 1, 1);
            }
        }
    }

    /// The first time of day at or after `h:m:s` that matches.
    fn next_time(&self, h: u8, m: u8, s: u8) -> Option<(u8, u8, u8)> {
        let mut hour = next_bit(u64::from(self.hours), h)?;
        loop {
            let (m0, s0) = if hour == h { (m, s) } else { (0, 0) };
            let mut minute = next_bit(self.minutes, m0);
            while let Some(mm) = minute {
                let from = if hour == h && mm == m { s0 } else { 0 };
                if let Some(ss) = next_bit(self.seconds, from) {
                    return Some((hour, mm, ss));
                }
                minute = next_bit(self.minutes, mm + 1);
            }
            hour = next_bit(u64::from(self.hours), hour + 1)?;
        }
    }

    /// Whether any date matches at all: the calendar repeats every 400
    /// years, so a search over 401 of them settles it.
    pub fn matches_some_date(&self) -> bool {
        let start = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
        self.next_civil(start, 2401).is_some()
    }

    /// The first wall-clock time strictly after `wall`'s second that
    /// matches, the zone left aside (croner walking in UTC).
    pub fn next_wall_match(&self, wall: DateTime) -> Option<DateTime> {
        let from = truncate(wall)
            .checked_add(SignedDuration::from_secs(1))
            .ok()?;
        self.next_civil(from, YEAR_LIMIT)
    }

    /// croner's `find_next_occurrence(after, false)` in `tz` for a
    /// wildcard (interval) job: the wall clock walked as it goes, so a time
    /// in a skipped range never runs and one in a repeated range runs in
    /// each half. When `after` lies in the first half of a repeated range,
    /// the second half (which the wall-clock walk has already passed) is
    /// walked too, from its start, and the nearer answer wins.
    pub fn next_in_zone(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let in_fold = self.walk(after, tz, false)?;
        if fold_of(after, tz) != Some(Fold::Earlier) {
            return Some(in_fold);
        }
        let edge = later_fold_edge(after, tz)?;
        if in_fold < edge {
            return Some(in_fold);
        }
        let in_other = self.walk(edge, tz, true)?;
        Some(in_other.min(in_fold))
    }

    /// One walk of the wall clock in `tz` from `origin` (see
    /// [`CronSpec::next_in_zone`]).
    fn walk(&self, origin: Timestamp, tz: &TimeZone, inclusive: bool) -> Option<Timestamp> {
        let mut wall = truncate(tz.to_datetime(origin));
        let second = SignedDuration::from_secs(1);
        if !inclusive {
            wall = wall.checked_add(second).ok()?;
        }
        // An instant more than a second before `origin` is behind it.
        let behind = |t: Timestamp| t.checked_add(second).is_ok_and(|t| t <= origin);
        loop {
            wall = self.next_civil(wall, YEAR_LIMIT)?;
            let ambiguous = tz.to_ambiguous_timestamp(wall);
            match ambiguous.offset() {
                AmbiguousOffset::Unambiguous { .. } => return ambiguous.unambiguous().ok(),
                AmbiguousOffset::Fold { .. } => {
                    let earlier = ambiguous.earlier().ok()?;
                    if !behind(earlier) {
                        return Some(earlier);
                    }
                    let later = ambiguous.later().ok()?;
                    if !behind(later) {
                        return Some(later);
                    }
                }
                AmbiguousOffset::Gap { .. } => {}
            }
            wall = wall.checked_add(second).ok()?;
        }
    }
}

/// The half of a repeated wall-clock range an instant is in.
#[derive(Debug, PartialEq)]
enum Fold {
    Earlier,
    Later,
}

/// Which half of a repeated range `t` is in, if its wall-clock second is
/// repeated.
fn fold_of(t: Timestamp, tz: &TimeZone) -> Option<Fold> {
    let ambiguous = tz.to_ambiguous_timestamp(truncate(tz.to_datetime(t)));
    match ambiguous.offset() {
        AmbiguousOffset::Fold { .. } => {
            let later = ambiguous.later().ok()?;
            Some(if t < later {
                Fold::Earlier
            } else {
                Fold::Later
            })
        }
        _ => None,
    }
}

/// The first instant a whole number of seconds after `origin` (in the
/// first half of a repeated range) that is no longer in that half, found
/// by bisection over a day as croner does.
fn later_fold_edge(origin: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    const DAY: i64 = 86_400;
    let at = |k: i64| origin.checked_add(SignedDuration::from_secs(k)).ok();
    let inside = |k: i64| at(k).map(|t| fold_of(t, tz) == Some(Fold::Earlier));
    if inside(DAY)? {
        return None;
    }
    let (mut inside_k, mut outside_k) = (0, DAY);
    while outside_k - inside_k > 1 {
        let middle = inside_k + (outside_k - inside_k) / 2;
        if inside(middle)? {
            inside_k = middle;
        } else {
            outside_k = middle;
        }
    }
    at(outside_k)
}

/// `dt` without its fraction of a second.
fn truncate(dt: DateTime) -> DateTime {
    dt.with().subsec_nanosecond(0).build().unwrap_or(dt)
}

/// Reads a field of plain values (seconds, minutes, hours, months).
fn plain(text: &str, min: u32, max: u32) -> Result<u64, String> {
    if text == "*" {
        return Ok(all(min, max));
    }
    let mut f = Field::new(min, max);
    for part in text.split(',').filter(|p| !p.is_empty()) {
        f.element(part, |f, v| f.set(v))?;
    }
    Ok(f.bits)
}

/// Bits `min..=max`.
fn all(min: u32, max: u32) -> u64 {
    (min..=max).fold(0, |bits, v| bits | 1 << v)
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u8) -> Option<u8> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros() as u8)
}

fn days_in_month(year: i16, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
