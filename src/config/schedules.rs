//! A job's schedule keys: `every` or `cron` (a string, or an array of
//! them), `skip_dates` and `skip_dates_file`, into one [`Schedule`].
//!
//! `skip_dates_file` is read here, at load, so every reload (and
//! `tickd check`) reads it again: editing it and sending SIGHUP applies it.
//! A relative path is taken against the directory tickd was started in,
//! like the daemon's paths. The job's `tz` is applied later, with the rest
//! of the job ([`Schedule::in_zone`]).

use super::error::{JobKey, Report};
use super::raw::{RawJob, Texts};
use super::values::at;
use crate::schedule::{self, Schedule};
use toml::Spanned;

/// `every` or `cron` (not both), or neither for a manual-only job, with
/// the job's skipped dates.
pub(crate) fn check(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<Schedule> {
    if let Some(once) = &j.once_at {
        if j.every.is_some() || j.cron.is_some() {
            let message = "set only one of every, cron and at (at runs the job once)";
            r.error(at(once), key.key("at"), message);
            return None;
        }
        if let Some(v) = &j.skip_dates {
            r.error(at(v), key.key("skip_dates"), NO_SCHEDULE);
        }
        return schedule::parse_at(once.get_ref())
            .map_err(|message| r.error(at(once), key.key("at"), message))
            .ok();
    }
    let (texts, field, parse): (_, _, Parse) = match (&j.every, &j.cron) {
        (Some(_), Some(cron)) => {
            let message = "set only one of every and cron (or neither, for a manual-only job)";
            r.error(at(cron), key.key("cron"), message);
            return None;
        }
        (Some(every), None) => (every, "every", schedule::parse_every),
        (None, Some(cron)) => (cron, "cron", schedule::parse_cron),
        (None, None) => {
            if let Some(v) = &j.skip_dates {
                r.error(at(v), key.key("skip_dates"), NO_SCHEDULE);
            }
            if let Some(v) = &j.skip_dates_file {
                r.error(at(v), key.key("skip_dates_file"), NO_SCHEDULE);
            }
            return None;
        }
    };
    let members = members(r, texts, key.key(field), parse);
    let skip = skip_dates(r, j, key);
    Some(Schedule::combine(members?, texts.get_ref().listed, skip?))
}

/// `parse_every` or `parse_cron`.
type Parse = fn(&str) -> Result<Schedule, String>;

const NO_SCHEDULE: &str = "only applies to a job with every or cron";

/// Each text of `every` / `cron`, parsed; `None` after reporting.
fn members(
    r: &mut Report<'_>,
    texts: &Spanned<Texts>,
    key: impl std::fmt::Display + Copy,
    parse: Parse,
) -> Option<Vec<Schedule>> {
    let items = &texts.get_ref().items;
    if items.is_empty() {
        r.error(at(texts), key, "empty array; give at least one schedule");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for text in items {
        match parse(text) {
            Ok(s) => out.push(s),
            Err(message) => r.error(at(texts), key, message),
        }
    }
    (out.len() == items.len()).then_some(out)
}

/// `skip_dates` and the dates of `skip_dates_file`; `None` after
/// reporting.
fn skip_dates(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<Vec<jiff::civil::Date>> {
    let mut out = Vec::new();
    let mut ok = true;
    if let Some(v) = &j.skip_dates {
        for text in v.get_ref() {
            match schedule::parse_date(text) {
                Ok(date) => out.push(date),
                Err(message) => {
                    r.error(at(v), key.key("skip_dates"), message);
                    ok = false;
                }
            }
        }
    }
    if let Some(v) = &j.skip_dates_file {
        let path = super::daemon::absolute(std::path::Path::new(v.get_ref()));
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                schedule::parse_date_lines(&text).map_err(|e| format!("{}: {e}", path.display()))
            });
        match read {
            Ok(dates) => out.extend(dates),
            Err(message) => {
                r.error(at(v), key.key("skip_dates_file"), message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
