//! Cron syntax: each field checked, and rewritten for croner.
//!
//! croner accepts more than tickd documents, and some of it silently: it
//! replaces month and day names anywhere in the expression (so
//! `0 0 * * MAR` ran on Wednesdays, MAR being read as 3) and skips empty
//! list elements (`1,,2`). Its errors do not say which field is wrong
//! (`Component error: Number out of bounds.`). So every field is checked
//! here first, against the grammar of cronie's crontab(5) plus the
//! extensions listed below, and a mistake is reported with its field and
//! what that field takes. What croner then parses is the checked
//! expression with names turned into numbers and `?` into `*`.
//!
//! A field is a comma-separated list of elements; an element is `*`, a
//! value `N`, or a range `N-M`, the first and the last optionally followed
//! by a step `/S` (`*/15`, `8-18/2`; a step after a single value is
//! refused, as cronie does). Values are numbers, or names in the two
//! fields that have them: `JAN`-`DEC` in the month field, `SUN`-`SAT` in
//! the day-of-week field (any case). Extensions, from croner (the same as
//! Quartz's):
//! - `L` in day-of-month: the month's last day; `LW`: its last weekday;
//! - `NW` in day-of-month: the weekday (Monday to Friday) nearest day N,
//!   within the month;
//! - `NL` in day-of-week: the month's last weekday N (`5L`, last Friday);
//! - `N#K` in day-of-week: the month's K-th weekday N, K 1-5 (`1#2`,
//!   second Monday);
//! - `?` as a whole day-of-month or day-of-week field: the same as `*`;
//! - `+` before the day-of-week field: the day must match both day fields.
//!
//! Day-of-month and day-of-week: when both are restricted, a day matching
//! either runs the job (OR); when either field starts with `*` (`*`,
//! `*/2`) or is `?`, a day must match both (AND). That is cronie's rule:
//! entry.c sets `DOM_STAR`/`DOW_STAR` when a field's first character is
//! `*`, and cron.c's `find_jobs` then ANDs the two fields instead of ORing
//! them. croner alone would OR `*/2` with a weekday.

/// What [`check`] makes of an expression.
#[derive(Debug, PartialEq)]
pub(super) struct Checked {
    /// The expression for croner: numbers for names, `*` for `?`.
    pub normalised: String,
    /// cronie's fixed-time job: no `*` leading the minute, hour (or
    /// seconds) field.
    pub fixed_time: bool,
    /// Whether the two day fields are ANDed (a `*`-led field or `+`).
    pub dom_and_dow: bool,
}

/// The fields, in the order of a 6-field expression.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// What the field takes, for messages.
    fn takes(self) -> &'static str {
        match self {
            Field::Second => "0-59",
            Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "0-7 (0 and 7 are Sunday) or SUN-SAT",
        }
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// What a nickname is made of: every one is fixed-time but `@hourly`
/// (cronie sets `HR_STAR` for it alone).
pub(super) fn nickname(expr: &str) -> Checked {
    // croner does not know @midnight; it is @daily under another name.
    let normalised = if expr.eq_ignore_ascii_case("@midnight") {
        "@daily".to_string()
    } else {
        expr.to_ascii_lowercase()
    };
    Checked {
        normalised,
        fixed_time: !expr.eq_ignore_ascii_case("@hourly"),
        dom_and_dow: false,
    }
}

/// Checks a 5- or 6-field expression; `Err` names the field and says what
/// is wrong with it.
pub(super) fn check(fields: &[&str]) -> Result<Checked, String> {
    let kinds: &[Field] = if fields.len() == 6 {
        &[
            Field::Second,
            Field::Minute,
            Field::Hour,
            Field::DayOfMonth,
            Field::Month,
            Field::DayOfWeek,
        ]
    } else {
        &[
            Field::Minute,
            Field::Hour,
            Field::DayOfMonth,
            Field::Month,
            Field::DayOfWeek,
        ]
    };
    let mut normalised = Vec::with_capacity(fields.len());
    for (text, kind) in fields.iter().zip(kinds) {
        let field = self::field(*kind, text)
            .map_err(|why| format!("{} field \"{}\": {why}", kind.name(), text.escape_debug()))?;
        normalised.push(field);
    }
    let time_fields = &fields[..fields.len() - 3];
    let (dom, dow) = (fields[fields.len() - 3], fields[fields.len() - 1]);
    let star = |f: &str| f.starts_with('*') || f == "?";
    Ok(Checked {
        normalised: normalised.join(" "),
        fixed_time: !time_fields.iter().any(|f| f.starts_with('*')),
        dom_and_dow: star(dom) || star(dow) || dow.starts_with('+'),
    })
}

/// One field, rewritten for croner.
fn field(kind: Field, text: &str) -> Result<String, String> {
    let (plus, body) = match text.strip_prefix('+') {
        Some(rest) if kind == Field::DayOfWeek => ("+", rest),
        Some(_) => return Err("`+` only goes before the day-of-week field".to_string()),
        None => ("", text),
    };
    if body == "?" {
        return match kind {
            Field::DayOfMonth | Field::DayOfWeek if plus.is_empty() => Ok("*".to_string()),
            Field::DayOfMonth | Field::DayOfWeek => Err("`+?` means nothing".to_string()),
            _ => Err("`?` is only allowed as a whole day-of-month or day-of-week field".into()),
        };
    }
    if body.is_empty() {
        return Err("`+` must be followed by the days of the week".to_string());
    }
    let mut out = Vec::new();
    for element in body.split(',') {
        if element.is_empty() {
            return Err(
                "empty list element (two commas in a row, or a comma at an end)".to_string(),
            );
        }
        out.push(self::element(kind, element)?);
    }
    Ok(format!("{plus}{}", out.join(",")))
}

/// One list element, rewritten for croner.
fn element(kind: Field, text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    if MONTHS.contains(&upper.as_str()) || DAYS.contains(&upper.as_str()) {
        // A lone name, before its letters are taken for L or W.
        return value(kind, &upper).map(|v| v.to_string());
    }
    if let Some(special) = special(kind, &upper)? {
        return Ok(special);
    }
    if upper.contains(['L', 'W', '#', '?']) && !is_name(kind, &upper) {
        let what = if kind == Field::DayOfWeek && upper.contains('W') {
            "`W` goes in the day-of-month field (15W: the weekday nearest the 15th)"
        } else if kind == Field::DayOfMonth && upper.contains('#') {
            "`#` goes in the day-of-week field (1#2: the second Monday)"
        } else if matches!(kind, Field::DayOfMonth | Field::DayOfWeek) && upper.contains('?') {
            "`?` must be the whole field"
        } else if matches!(kind, Field::DayOfMonth | Field::DayOfWeek) {
            "`L`, `W` and `#` do not combine with ranges, steps or each other this way"
        } else {
            "`L`, `W`, `#` and `?` are only allowed in the day-of-month and day-of-week fields"
        };
        return Err(what.to_string());
    }
    let (base, step) = match upper.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (upper.as_str(), None),
    };
    if let Some(step) = step {
        let (lo, hi) = kind.range();
        match step.parse::<u32>() {
            Ok(s) if (1..=hi - lo + 1).contains(&s) => {}
            _ => {
                return Err(format!(
                    "step \"{}\" must be a number from 1 to {}",
                    step.escape_debug(),
                    hi - lo + 1
                ))
            }
        }
    }
    let base = if base == "*" {
        "*".to_string()
    } else if let Some((a, b)) = base.split_once('-') {
        let a = value(kind, a)?;
        let mut b = value(kind, b)?;
        // cronie: a weekday range ending on Sunday counts it as 7 (FRI-SUN).
        if kind == Field::DayOfWeek && b == 0 && a > 0 {
            b = 7;
        }
        if a > b {
            return Err(format!(
                "range {a}-{b} runs backwards; write the smaller value first"
            ));
        }
        format!("{a}-{b}")
    } else {
        let v = value(kind, base)?;
        if step.is_some() {
            let (_, hi) = kind.range();
            return Err(format!(
                "a step needs a range or `*` before it: write {v}-{hi}/S or */S"
            ));
        }
        v.to_string()
    };
    Ok(match step {
        Some(step) => format!("{base}/{step}"),
        None => base,
    })
}

/// The day-field extensions (`L`, `LW`, `NW`, `NL`, `N#K`), rewritten, or
/// `None` when `upper` is not one.
fn special(kind: Field, upper: &str) -> Result<Option<String>, String> {
    match kind {
        Field::DayOfMonth => {
            if upper == "L" || upper == "LW" {
                return Ok(Some(upper.to_string()));
            }
            if let Some(day) = upper.strip_suffix('W') {
                if !day.is_empty() && day.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(Some(format!("{}W", value(kind, day)?)));
                }
            }
            Ok(None)
        }
        Field::DayOfWeek => {
            if upper == "L" {
                return Err("`L` alone names no day of the week: write 5L for the last \
                            Friday of the month, or put L in the day-of-month field for \
                            the month's last day"
                    .to_string());
            }
            if let Some((day, nth)) = upper.split_once('#') {
                let day = value(kind, day)?;
                return match nth.parse::<u32>() {
                    Ok(n) if (1..=5).contains(&n) => Ok(Some(format!("{day}#{n}"))),
                    _ => Err(format!(
                        "\"#{}\" must be #1 to #5 (the first to the fifth such weekday of the month)",
                        nth.escape_debug()
                    )),
                };
            }
            if let Some(day) = upper.strip_suffix('L') {
                if !day.is_empty() && !day.contains(['-', '/', ',']) {
                    return Ok(Some(format!("{}L", value(kind, day)?)));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Whether `upper` is a name of this field (whose letters may include L,
/// W...: JUL, WED).
fn is_name(kind: Field, upper: &str) -> bool {
    let names: &[&str] = match kind {
        Field::Month => &MONTHS,
        Field::DayOfWeek => &DAYS,
        _ => &[],
    };
    upper
        .split(['-', '/'])
        .all(|part| names.contains(&part) || part.bytes().all(|b| b.is_ascii_digit()))
}

/// One value of the field: a number in its range, or one of its names.
fn value(kind: Field, text: &str) -> Result<u32, String> {
    let (lo, hi) = kind.range();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "{text} is out of range: the {} field takes {}",
                kind.name(),
                kind.takes()
            )),
        };
    }
    let month = MONTHS.iter().position(|m| *m == text);
    let day = DAYS.iter().position(|d| *d == text);
    match (kind, month, day) {
        (Field::Month, Some(m), _) => Ok(m as u32 + 1),
        (Field::DayOfWeek, _, Some(d)) => Ok(d as u32),
        (Field::Month, None, Some(_)) => Err(format!(
            "{text} is a day of the week, not a month; months are {}",
            kind.takes()
        )),
        (Field::DayOfWeek, Some(_), None) => Err(format!(
            "{text} is a month, not a day of the week; days are {}",
            kind.takes()
        )),
        (_, Some(_), _) | (_, _, Some(_)) => Err(format!(
            "{text} is a name, but the {} field takes numbers {}",
            kind.name(),
            kind.takes()
        )),
        _ if text.is_empty() => Err(format!(
            "a value is missing; the {} field takes {}",
            kind.name(),
            kind.takes()
        )),
        _ => Err(format!(
            "\"{}\" is not a value of the {} field, which takes {}",
            text.escape_debug(),
            kind.name(),
            kind.takes()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(expr: &str) -> Checked {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        check(&fields).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err(expr: &str) -> String {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        match check(&fields) {
            Ok(c) => panic!("{expr}: accepted as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn names_become_numbers_only_in_their_own_field() {
        assert_eq!(
            ok("0 0 * JAN,mar-MAY MON-fri").normalised,
            "0 0 * 1,3-5 1-5"
        );
        assert_eq!(ok("0 0 * * FRI-SUN").normalised, "0 0 * * 5-7");
        assert_eq!(ok("0 0 * * 5-0").normalised, "0 0 * * 5-7");
        assert_eq!(ok("0 0 * JUL WED").normalised, "0 0 * 7 3");
        assert!(err("0 0 * * JUL").contains("JUL is a month"));
        assert_eq!(
            err("0 0 * * MAR"),
            "day-of-week field \"MAR\": MAR is a month, not a day of the week; \
             days are 0-7 (0 and 7 are Sunday) or SUN-SAT"
        );
        assert_eq!(
            err("0 0 * MON *"),
            "month field \"MON\": MON is a day of the week, not a month; months are 1-12 or JAN-DEC"
        );
        assert!(err("0 MON * * *").starts_with("hour field \"MON\": MON is a name"));
    }

    #[test]
    fn out_of_range_values_name_the_field_and_its_range() {
        assert_eq!(
            err("61 * * * *"),
            "minute field \"61\": 61 is out of range: the minute field takes 0-59"
        );
        assert_eq!(
            err("0 24 * * *"),
            "hour field \"24\": 24 is out of range: the hour field takes 0-23"
        );
        assert_eq!(
            err("0 0 0 * *"),
            "day-of-month field \"0\": 0 is out of range: the day-of-month field takes 1-31"
        );
        assert!(err("0 0 * 13 *").contains("the month field takes 1-12 or JAN-DEC"));
        assert!(err("0 0 * * 8").contains("the day-of-week field takes 0-7"));
        assert!(err("60 0 0 * * *").starts_with("second field \"60\""));
        assert!(err("0 0 * * 1-9").contains("9 is out of range"));
    }

    #[test]
    fn malformed_lists_ranges_and_steps_are_refused() {
        assert!(err("1,,2 * * * *").contains("empty list element"));
        assert!(err("1, * * * *").contains("empty list element"));
        assert!(err(",1 * * * *").contains("empty list element"));
        assert!(err("*/0 * * * *").contains("step \"0\" must be a number from 1 to 60"));
        assert!(err("*/61 * * * *").contains("from 1 to 60"));
        assert!(err("5/10 * * * *").contains("a step needs a range or `*`"));
        assert!(err("30-10 * * * *").contains("runs backwards"));
        assert!(err("1- * * * *").contains("a value is missing"));
        assert!(err("x * * * *").contains("\"X\" is not a value of the minute field"));
        assert!(err("0 0 * * +").contains("`+` must be followed"));
        assert!(err("+0 0 * * *").contains("`+` only goes before the day-of-week field"));
    }

    #[test]
    fn day_extensions_are_accepted_where_they_mean_something() {
        assert_eq!(ok("0 0 L * *").normalised, "0 0 L * *");
        assert_eq!(ok("0 0 LW * *").normalised, "0 0 LW * *");
        assert_eq!(ok("0 0 15W * *").normalised, "0 0 15W * *");
        assert_eq!(ok("0 0 * * 5L").normalised, "0 0 * * 5L");
        assert_eq!(ok("0 0 * * FRIL").normalised, "0 0 * * 5L");
        assert_eq!(ok("0 0 * * MON#2").normalised, "0 0 * * 1#2");
        assert_eq!(ok("0 0 ? * 1").normalised, "0 0 * * 1");
        assert_eq!(ok("0 0 1 * +MON").normalised, "0 0 1 * +1");
        let l = err("0 0 * * L");
        assert!(
            l.starts_with("day-of-week field \"L\": `L` alone names no day"),
            "{l}"
        );
        assert!(err("0 0 * * 1#6").contains("#1 to #5"));
        assert!(err("0 0 * * 1W").contains("`W` goes in the day-of-month field"));
        assert!(err("0 0 1#2 * *").contains("`#` goes in the day-of-week field"));
        assert!(err("0 L * * *").contains("only allowed in the day-of-month and day-of-week"));
        assert!(err("0 0 1? * *").contains("`?` must be the whole field"));
        assert!(err("0 ? * * *").contains("`?` is only allowed"));
        assert!(err("0 0 32W * *").contains("32 is out of range"));
    }

    #[test]
    fn fixed_time_and_the_day_rule_follow_cronie() {
        assert!(ok("0 1,13 * * *").fixed_time);
        assert!(ok("0,30 2 * * *").fixed_time);
        assert!(ok("0 9-17/2 * * *").fixed_time);
        assert!(ok("30 0 3 * * *").fixed_time);
        assert!(!ok("*/5 * * * *").fixed_time);
        assert!(!ok("0 * * * *").fixed_time);
        assert!(!ok("* 3 * * *").fixed_time);
        assert!(!ok("*/10 0 3 * * *").fixed_time);
        assert!(nickname("@daily").fixed_time && !nickname("@hourly").fixed_time);
        // Both day fields restricted: OR. Either led by `*`: AND.
        assert!(!ok("0 0 1,15 * 5").dom_and_dow);
        assert!(ok("0 0 */2 * 1").dom_and_dow);
        assert!(ok("0 0 1 * */2").dom_and_dow);
        assert!(ok("0 0 ? * 1").dom_and_dow);
        assert!(ok("0 0 1 * +1").dom_and_dow);
    }
}
