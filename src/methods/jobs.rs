//! `jobs.get` (a query; `jobs.list` is in `jobs_list`); `jobs.run`,
//! `jobs.pause`, `jobs.resume` (commands).

use super::call::{JobsRun, Submit};
use super::{encode, Command, Reply};
use crate::daemon::dispatch::NewRun;
use crate::daemon::{Daemon, Error, Shared};
use crate::state::run::{RunId, Trigger};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Arc;

/// `jobs.get {name, next?}` → the job object with its `history`, its
/// `definition` (what it runs, see [`super::job_def`]), and its
/// `upstream` and `downstream` jobs (`{job, via}`: `after`, `on_success`,
/// `on_failure`); with
/// `next: N`, also `next_runs`: the next N due times of its schedule from
/// now (like `systemd-analyze calendar --iterations=N`), whether or not
/// the job is paused.
pub fn get(shared: &Shared, name: &str, next: Option<u64>) -> Result<Box<RawValue>, Error> {
    let next = match next {
        None => None,
        Some(n @ 1..=super::call::MAX_NEXT_RUNS) => Some(n),
        Some(_) => {
            return Err(Error::Invalid {
                param: "next",
                what: format!("must be between 1 and {}", super::call::MAX_NEXT_RUNS),
            })
        }
    };
    let (encoded, schedule, links, definition) = {
        let core = shared.core.lock();
        let view = core
            .job_view(name, true)
            .ok_or_else(|| Error::NoSuchJob(name.to_string()))?;
        let def = core.job(name).map(|e| Arc::clone(&e.def));
        let schedule = next.and(def.as_ref()).and_then(|d| d.schedule.clone());
        (
            encode(&view)?,
            schedule,
            core.links_of(name).unwrap_or_default(),
            def,
        )
    };
    // Cluster mode: the job's newest run across the fleet.
    let last = super::cluster::last_run_from_cluster(shared, name);
    let mut job: Value =
        serde_json::from_str(encoded.get()).map_err(|e| Error::Internal(e.to_string()))?;
    // The jobs whose runs can start this one, and those its runs start.
    let pairs = |list: Vec<(String, &str)>| {
        Value::from(
            list.into_iter()
                .map(|(job, via)| json!({"job": job, "via": via}))
                .collect::<Vec<_>>(),
        )
    };
    job["upstream"] = pairs(links.0);
    job["downstream"] = pairs(links.1);
    if let Some(def) = definition {
        job["definition"] = super::job_def::definition(&def);
    }
    if let Some(last) = last {
        job["last_run"] = last;
    }
    if let Some(n) = next {
        job["next_runs"] = Value::from(next_runs(schedule.as_ref(), n));
    }
    encode(&job)
}

/// The next `n` due times of `schedule` after now, as RFC 3339 (fewer if
/// it stops firing; none without a schedule).
fn next_runs(schedule: Option<&crate::schedule::Schedule>, n: u64) -> Vec<String> {
    let Some(schedule) = schedule else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = crate::time::now();
    for _ in 0..n {
        match schedule.next_after(at) {
            Some(t) => {
                out.push(crate::time::rfc3339(&t));
                at = t;
            }
            None => break,
        }
    }
    out
}

/// `jobs.run {name, wait?, args?, delay? | at?}`: the command.
pub fn run(p: JobsRun) -> Result<Command, Error> {
    let due = due_time(p.delay.as_deref(), p.at.as_deref())?;
    Ok(Command::Run {
        name: p.name,
        wait: p.wait.unwrap_or(false),
        args: p.args.map(Value::Object),
        due,
    })
}

/// The due time of `delay` or `at` (at most one), within a year.
fn due_time(
    delay: Option<&str>,
    at: Option<&str>,
) -> Result<Option<crate::time::Timestamp>, Error> {
    use crate::daemon::MAX_DELAY_SECS;
    let now = crate::time::now();
    let due = match (delay, at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Error::Invalid {
                param: "at",
                what: "give delay or at, not both".into(),
            })
        }
        (Some(d), None) => {
            let d = humantime::parse_duration(d.trim()).map_err(|e| Error::Invalid {
                param: "delay",
                what: format!("\"{d}\" is not a duration ({e}); e.g. \"90s\", \"10m\""),
            })?;
            let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
            now.checked_add(d).map_err(|_| Error::Invalid {
                param: "delay",
                what: "too long".into(),
            })?
        }
        (None, Some(a)) => {
            let t = crate::time::text::parse(a.trim()).map_err(|e| Error::Invalid {
                param: "at",
                what: format!("\"{a}\" is not a date and time with its offset ({e})"),
            })?;
            if t < now {
                return Err(Error::Invalid {
                    param: "at",
                    what: format!("{a} is in the past"),
                });
            }
            t
        }
    };
    if due.as_second() - now.as_second() > MAX_DELAY_SECS {
        return Err(Error::Invalid {
            param: if delay.is_some() { "delay" } else { "at" },
            what: "at most a year (366 days) ahead".into(),
        });
    }
    Ok(Some(due))
}

/// `submit {job, wait?, args?}` (allowed, and the job checked by the
/// config file's rules, as it was decoded): the command.
pub fn submit(p: Submit) -> Command {
    Command::Submit {
        def: Arc::new(p.job.def),
        source: Value::Object(p.job.source),
        wait: p.wait.unwrap_or(false),
        args: p.args.map(Value::Object),
    }
}

/// Applies `submit` on the loop.
pub fn execute_submit(
    d: &mut Daemon,
    def: Arc<crate::config::JobDef>,
    source: Value,
    wait: bool,
    args: Option<Value>,
) -> Reply {
    let started = d.start_adhoc(def, NewRun::new(Trigger::Submit, args), Some(source));
    accepted(started, wait)
}

/// The answer to an accepted (or refused) run request. With `state_dir`
/// the server holds it until the run's record is durable (group commit),
/// so that a crash after the answer cannot lose the run.
fn accepted(started: Result<RunId, Error>, wait: bool) -> Reply {
    match started {
        Ok(id) if wait => Reply::WaitRun(id),
        Ok(id) => Reply::Now(Ok(json!({ "run_id": id.to_string() }))),
        Err(e) => Reply::Now(Err(e)),
    }
}

/// `jobs.pause {name}` / `jobs.resume {name}`: the command.
pub fn set_enabled(name: &str, enabled: bool) -> Command {
    Command::SetEnabled {
        name: name.to_string(),
        enabled,
    }
}

/// Applies `jobs.run`: `{run_id}`, or the finished run with `wait`; with
/// a due time (`delay`, `at`), the run waits `scheduled` until then.
pub fn execute_run(
    d: &mut Daemon,
    name: &str,
    wait: bool,
    args: Option<Value>,
    due: Option<crate::time::Timestamp>,
) -> Reply {
    let started = match due {
        Some(due) => d.schedule_run(name, args, due),
        None => d.start_run(name, NewRun::new(Trigger::Manual, args)),
    };
    accepted(started, wait)
}

/// Applies `jobs.pause` / `jobs.resume` (`enabled` false / true):
/// `{name, enabled, paused, persistent, next_run}`.
///
/// `enabled` is the effective state, whether the schedule runs: the file
/// enables the job and it is not paused. So `jobs.resume` of a job whose
/// file says `enabled = false` answers `enabled: false, paused: false`:
/// the pause is lifted, the file's word stands. `persistent` says whether
/// the pause outlives a restart (only with `state_dir`).
pub fn execute_set_enabled(d: &mut Daemon, name: &str, enabled: bool) -> Result<Value, Error> {
    d.set_paused(name, !enabled)?;
    let core = d.shared.core.lock();
    let job = core
        .job(name)
        .ok_or_else(|| Error::NoSuchJob(name.to_string()))?;
    let next_run = job.next_run.as_ref().map(crate::time::rfc3339);
    Ok(json!({
        "name": name,
        "enabled": job.enabled,
        "paused": job.paused,
        "persistent": d.shared.journal.is_some(),
        "next_run": next_run,
    }))
}
