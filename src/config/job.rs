//! Stage two for one `[[jobs]]` table: the keys every kind shares
//! (name, schedule, timeout, overlap, retries, ...). Kind-specific keys are
//! in [`super::kinds`]; checks across jobs (unique names, `on_failure`
//! targets) in [`super::validate`].

use std::time::Duration;

use super::error::{JobKey, Report};
use super::kinds;
use super::raw::RawJob;
use super::suggest;
use super::values::{self, at, int_in, is_job_name, to};
use super::{CatchUp, JobDef, NotifyOn, Overlap};
use crate::schedule;

/// A job after stage two, plus what cross-job checks need: its name and
/// `on_failure` target with their places, even when the job itself is too
/// broken to build (`def` is then `None`; its errors are in the report).
pub(crate) struct Checked {
    pub def: Option<JobDef>,
    pub key: JobKey,
    pub name: Option<(String, usize)>,
    pub on_failure: Option<(String, usize)>,
    /// The `on_success` target and where it is.
    pub on_success: Option<(String, usize)>,
    /// Where `after` is (its names are in `def`, or lost with it).
    pub after_at: Option<usize>,
    /// The `concurrency` limit named and where.
    pub concurrency: Option<(String, usize)>,
    /// Where `notify` is (its names are in `def`).
    pub notify_at: Option<usize>,
}

impl Checked {
    /// Frees the copies of the name and the `on_failure` target that `def`
    /// holds too (they stay until every job is read: at a million jobs,
    /// 64 MB in small holes between the definitions).
    pub(crate) fn compact(&mut self) {
        if self.def.is_some() {
            self.key.name = None;
            if let Some((name, _)) = &mut self.name {
                *name = String::new();
            }
            if let Some((target, _)) = &mut self.on_failure {
                *target = String::new();
            }
            if let Some((target, _)) = &mut self.on_success {
                *target = String::new();
            }
        }
    }

    /// The job's name and where it is, if it has a usable one.
    pub(crate) fn name(&self) -> Option<(&str, usize)> {
        let (own, at) = self.name.as_ref()?;
        Some((self.def.as_ref().map_or(own.as_str(), |d| &d.name), *at))
    }

    /// The job's `on_failure` target and where it is.
    pub(crate) fn on_failure(&self) -> Option<(&str, usize)> {
        let (own, at) = self.on_failure.as_ref()?;
        let target = match &self.def {
            Some(def) => def.on_failure.as_deref().unwrap_or(own),
            None => own,
        };
        Some((target, *at))
    }

    /// The job's `on_success` target and where it is.
    pub(crate) fn on_success(&self) -> Option<(&str, usize)> {
        let (own, at) = self.on_success.as_ref()?;
        let target = match &self.def {
            Some(def) => def.on_success.as_deref().unwrap_or(own),
            None => own,
        };
        Some((target, *at))
    }

    /// The job's `after` list and where it is.
    pub(crate) fn after(&self) -> Option<(&[String], usize)> {
        Some((&self.def.as_ref()?.after, self.after_at?))
    }

    /// How messages name the job's `field`.
    pub(crate) fn label(&self, field: &str) -> String {
        let key = JobKey {
            index: self.key.index,
            name: self.name().map(|(n, _)| n.to_string()),
        };
        key.key(field).to_string()
    }
}

/// Validates one job table.
pub(crate) fn validate(r: &mut Report<'_>, j: RawJob) -> Checked {
    let table_at = j.at;
    let index = j.key.index;
    let (name, name_at) = match &j.name {
        None if j.is_bad("name") => (None, table_at),
        None => {
            let key = format!("jobs[{index}].name");
            r.error(table_at, &key, "missing; every job needs a name");
            (None, table_at)
        }
        Some(v) => {
            if !is_job_name(v.get_ref()) {
                let message = format!(
                    "\"{}\" is not a valid job name; use 1 to 64 characters of A-Z a-z 0-9 _ . -",
                    v.get_ref().escape_debug()
                );
                r.error(at(v), format!("jobs[{index}].name"), message);
            }
            (Some(v.get_ref().clone()), at(v))
        }
    };
    let key = JobKey { index, name };

    let schedule = super::schedules::check(r, &j, &key);
    let timeout = j
        .timeout
        .as_ref()
        .map(|v| values::duration(r, Some(v), key.key("timeout"), Duration::ZERO, true));
    let overlap = match values::choice(
        r,
        j.overlap.as_ref(),
        key.key("overlap"),
        &["skip", "queue", "allow"],
        "skip",
    ) {
        "queue" => Overlap::Queue,
        "allow" => Overlap::Allow,
        _ => Overlap::Skip,
    };
    let catch_up = match values::choice(
        r,
        j.catch_up.as_ref(),
        key.key("catch_up"),
        &["none", "once", "all"],
        "none",
    ) {
        "once" => CatchUp::Once,
        "all" => CatchUp::All,
        _ => CatchUp::None,
    };
    let on_failure = values::optional_text(r, j.on_failure.as_ref(), key.key("on_failure"));
    let on_success = values::optional_text(r, j.on_success.as_ref(), key.key("on_success"));
    let after = after_list(r, &j, &key, schedule.is_some());
    let concurrency = values::optional_text(r, j.concurrency.as_ref(), key.key("concurrency"));
    let tz = time_zone(r, &j, &key);
    let retries = int_in(r, j.retries.as_ref(), key.key("retries"), 0..=100, 0);
    let retry_backoff = values::duration(
        r,
        j.retry_backoff.as_ref(),
        key.key("retry_backoff"),
        Duration::from_secs(1),
        true,
    );
    let jitter = values::duration(
        r,
        j.jitter.as_ref(),
        key.key("jitter"),
        Duration::ZERO,
        false,
    );
    let catch_up_limit = int_in(
        r,
        j.catch_up_limit.as_ref(),
        key.key("catch_up_limit"),
        0..=100_000,
        10,
    );
    let kind = kinds::validate(r, &j, &key, table_at);
    let notify = notify_list(r, &j, &key);
    let notify_on = match values::choice(
        r,
        j.notify_on.as_ref(),
        key.key("notify_on"),
        &["failure", "change", "always"],
        "failure",
    ) {
        "change" => NotifyOn::Change,
        "always" => NotifyOn::Always,
        _ => NotifyOn::Failure,
    };

    let failure_target = on_failure.clone().zip(j.on_failure.as_ref().map(at));
    let success_target = on_success.clone().zip(j.on_success.as_ref().map(at));
    // The database's spelling of the name (it matches ignoring case).
    let tz_name = tz
        .as_ref()
        .zip(j.tz.as_ref())
        .map(|(zone, written)| zone.iana_name().unwrap_or(written.get_ref()).to_string());
    let def = kind.map(|kind| JobDef {
        name: key.name.clone().unwrap_or_default(),
        kind: std::sync::Arc::new(kind),
        schedule: schedule.map(|s| s.in_zone(tz)),
        timeout,
        overlap,
        enabled: j.enabled.as_ref().is_none_or(|v| *v.get_ref()),
        retries: to(retries),
        retry_backoff,
        jitter,
        on_failure,
        on_success,
        after,
        concurrency: concurrency.clone(),
        catch_up,
        catch_up_limit: to(catch_up_limit),
        tz: tz_name,
        notify,
        notify_on,
    });
    Checked {
        name: key.name.clone().map(|name| (name, name_at)),
        on_failure: failure_target,
        on_success: success_target,
        after_at: j.after.as_ref().map(at),
        concurrency: concurrency.zip(j.concurrency.as_ref().map(at)),
        notify_at: j.notify.as_ref().map(at),
        def,
        key,
    }
}

/// `after`: job names, none twice, on a job without a schedule (whether
/// they exist is checked across jobs).
fn after_list(r: &mut Report<'_>, j: &RawJob, key: &JobKey, scheduled: bool) -> Vec<String> {
    let Some(v) = &j.after else {
        return Vec::new();
    };
    let names = v.get_ref();
    let k = key.key("after");
    if names.is_empty() {
        r.error(at(v), k, "must name at least one job");
        return Vec::new();
    }
    if scheduled {
        r.error(
            at(v),
            k,
            "a job with `after` runs when the jobs it names have succeeded: remove `every` / `cron`, or `after`",
        );
    }
    for (i, name) in names.iter().enumerate() {
        if !is_job_name(name) {
            r.error(
                at(v),
                k,
                format!("\"{}\" is not a job name", name.escape_debug()),
            );
        } else if names[..i].contains(name) {
            r.error(at(v), k, format!("names \"{name}\" twice"));
        }
    }
    names.clone()
}

/// `notify`: sink names, none twice (whether they exist is checked across
/// the file).
fn notify_list(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Vec<String> {
    let Some(v) = &j.notify else {
        return Vec::new();
    };
    let names = v.get_ref();
    for (i, name) in names.iter().enumerate() {
        if !is_job_name(name) {
            let message = format!("\"{}\" is not a sink name", name.escape_debug());
            r.error(at(v), key.key("notify"), message);
        } else if names[..i].contains(name) {
            r.error(at(v), key.key("notify"), format!("names \"{name}\" twice"));
        }
    }
    names.clone()
}

/// `tz`: an IANA zone name, only meaningful with `cron` or skipped dates.
fn time_zone(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<jiff::tz::TimeZone> {
    let v = j.tz.as_ref()?;
    let zone = match schedule::time_zone(v.get_ref()) {
        Ok(zone) => zone,
        Err(message) => {
            let message = match suggest::zone(v.get_ref()) {
                Some(near) => format!(
                    "\"{}\" is not a known time zone name; did you mean {near}?",
                    v.get_ref().escape_debug()
                ),
                None => message,
            };
            r.error(at(v), key.key("tz"), message);
            return None;
        }
    };
    if j.cron.is_none() && j.skip_dates.is_none() && j.skip_dates_file.is_none() {
        r.error(
            at(v),
            key.key("tz"),
            "only applies to a cron schedule or skipped dates",
        );
    }
    Some(zone)
}
