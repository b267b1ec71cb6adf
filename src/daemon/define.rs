//! Jobs defined at run time: `jobs.put` and `jobs.delete`, the API jobs
//! the journal brings back at start, and what a reload must respect.
//!
//! Rules (see `crate::state::ApiJobs` for what the core keeps):
//! - Only while `daemon.allow_job_api` is true. While it is false, API jobs
//!   stay defined (listed, with `held`) but are not scheduled and no run of
//!   theirs starts; turning it on again schedules them again.
//! - A name is either the file's or the API's: a put or a delete of a file
//!   job is refused, and so is a reload adding a file job with an API job's
//!   name. At start there is no running config to keep, so the file wins:
//!   the API job is kept aside (logged at ERROR, shown in `status`) until
//!   it is deleted, replaced by a put, or the file's job goes.
//! - A replaced job keeps its counters, history and runs in flight, and
//!   its schedule is armed again, as a reload does to a changed job.
//! - A deleted job's running runs finish (or are killed with `cancel`), its
//!   queued runs are cancelled, and its history is forgotten with it; the
//!   runs in flight finish as orphans, still found by `runs.get`.
//! - `on_failure` of an API job may name a file job or an API job; the
//!   target must exist and no cycle may form. A job others name cannot be
//!   deleted, nor a file job removed by a reload while an API job names it.
//! - With `state_dir`, a change is journaled as it is made, and the client
//!   hears of it once it is durable (group commit: the server holds the
//!   answer until the journal thread's fdatasync covers the record), so
//!   an acknowledged change survives `kill -9` and power loss. If that
//!   write or sync fails, the client gets [`Error::NotDurable`]: the change
//!   was made in memory and is written by the rewrite of the journal from
//!   memory that follows, but it was not acknowledged. A job object too
//!   large to be a record is refused before anything changes.

use super::{Daemon, Error};
use crate::config::{parse_api_job, JobDef};
use crate::persist::{Record, Recovered};
use crate::state::{Core, JobSource};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why an API job is kept aside at start: the file defines the name.
const FILE_WINS: &str = "the config file defines a job of this name, and the file wins: \
     this API job is not scheduled until jobs.delete removes it or the file's job goes";

/// What `jobs.put` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Put {
    /// The job is new (false: it replaced an API job of that name).
    pub created: bool,
    /// The job object after the change.
    pub job: Value,
}

impl Daemon {
    /// Refuses unless `daemon.allow_job_api` is true.
    fn job_api_allowed(&self) -> Result<(), Error> {
        if self.shared.board.live.read().allow_job_api {
            Ok(())
        } else {
            Err(Error::Forbidden(JOB_API_OFF))
        }
    }

    /// `jobs.put`: defines or replaces the API job `def`, defined by the
    /// object `source` (journaled as it is).
    pub fn put_job(&mut self, def: JobDef, source: Map<String, Value>) -> Result<Put, Error> {
        self.job_api_allowed()?;
        self.check_put_against_reload(&def)?;
        let name = def.name.clone();
        {
            let core = self.shared.core.lock();
            if core.job(&name).is_some_and(|e| e.source == JobSource::File) {
                return Err(Error::FileJob(name));
            }
            check_target(&core, &def)?;
        }
        let text: Box<str> = Value::Object(source.clone()).to_string().into();
        let record = Record::Job {
            name: name.clone(),
            job: Value::Object(source),
        };
        let def = Arc::new(def);
        let created = self.record_then(&record, |core| core.put_api_job(def, text))?;
        self.arm(&name);
        log::info!(
            "job {name} {} through the API (jobs.put)",
            if created { "defined" } else { "replaced" }
        );
        let job = self
            .shared
            .core
            .lock()
            .job_json(&name, false)
            .ok_or_else(|| Error::Internal(format!("job {name} vanished after jobs.put")))?;
        // Puts alone (no run finishing) must not grow the journal forever.
        self.compact_journal_if_needed();
        Ok(Put { created, job })
    }

    /// `jobs.delete`: removes the API job `name` (or the one of that name
    /// kept aside), answering its job object as it was. Running runs
    /// finish, unless `cancel`; queued ones are cancelled.
    pub fn delete_job(&mut self, name: &str, cancel: bool) -> Result<Value, Error> {
        self.job_api_allowed()?;
        let (in_table, paused) = {
            let core = self.shared.core.lock();
            match core.job(name) {
                Some(e) if e.source == JobSource::Api => {
                    let dependents = core.api().dependents_of(name);
                    if !dependents.is_empty() {
                        return Err(Error::HasDependents {
                            job: name.to_string(),
                            dependents,
                        });
                    }
                    (true, e.paused)
                }
                _ if core.api().aside().contains_key(name) => (false, false),
                Some(_) => return Err(Error::FileJob(name.to_string())),
                None => return Err(Error::NoSuchJob(name.to_string())),
            }
        };
        let record = Record::JobDeleted {
            name: name.to_string(),
        };
        if !in_table {
            let aside = self.record_then(&record, |core| core.take_aside(name))?;
            log::info!("job {name}: the API job kept aside is deleted (jobs.delete)");
            return Ok(aside.map_or_else(
                || json_of_aside(name, None),
                |a| json_of_aside(name, Some(&a.source)),
            ));
        }
        let job = self
            .shared
            .core
            .lock()
            .job_json(name, false)
            .unwrap_or(Value::Null);
        let backlog = self.record_then(&record, |core| core.remove_api_job(name))?;
        self.scheduler.disarm(name);
        if paused {
            // As for a job a reload removes: a job of that name put later
            // starts unpaused, after a restart too.
            self.shared.journal_pause(name, false);
        }
        self.retries.retain(|_, r| r.job.as_deref() != Some(name));
        let why = "job deleted (jobs.delete) before the run started";
        for id in backlog {
            self.cancel_if_queued(id, why);
        }
        // Queued runs first, so that no worker a killed run frees can
        // start one of them meanwhile.
        let unfinished = self.unfinished_runs_of(name);
        let mut queued = 0;
        for &id in &unfinished {
            if self.cancel_if_queued(id, why) {
                queued += 1;
            }
        }
        let mut killed = 0;
        for id in unfinished.iter().filter(|_| cancel) {
            if let Some(token) = self.cancels.get(id) {
                token.cancel_because("cancelled: job deleted (jobs.delete with cancel)");
                killed += 1;
            }
        }
        log::info!(
            "job {name} deleted (jobs.delete); {queued} queued run(s) cancelled, {killed} running run(s) {}",
            if cancel { "killed" } else { "left to finish" }
        );
        self.compact_journal_if_needed();
        Ok(job)
    }

    /// The runs of job `name` not yet finished, oldest first.
    fn unfinished_runs_of(&self, name: &str) -> Vec<crate::state::run::RunId> {
        let core = self.shared.core.lock();
        let mut ids: Vec<_> = self
            .inputs
            .keys()
            .copied()
            .filter(|id| {
                core.run(*id)
                    .is_some_and(|r| r.job.as_deref() == Some(name) && !r.state.is_terminal())
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// With `state_dir`: appends `record`, then applies `change`. The
    /// journal thread writes and syncs the record with the loop turn's
    /// group, and the server holds the answer until then (a snapshot of a
    /// compaction is taken between loop turns, never between the record
    /// and the change). A record too large to be one is refused before
    /// anything changes. Without `state_dir`: just the change.
    fn record_then<T>(
        &self,
        record: &Record,
        change: impl FnOnce(&mut Core) -> T,
    ) -> Result<T, Error> {
        if let Some(journal) = &self.shared.journal {
            if let Err(e) = journal.append(record) {
                // Too large to be a record: the job's fault, not the disk's.
                return Err(Error::BadJob(format!(
                    "job: cannot be recorded in state_dir: {e}"
                )));
            }
        }
        Ok(change(&mut self.shared.core.lock()))
    }

    /// At start: sets whether API jobs are held, and puts back the API
    /// jobs recovered from the journal (before the runs, so their history
    /// finds them). Returns the names of those in the job table, whose
    /// schedules the caller arms.
    pub(super) fn start_api_jobs(&mut self, recovered: Option<&Recovered>) -> Vec<String> {
        let allowed = self.shared.board.live.read().allow_job_api;
        let mut core = self.shared.core.lock();
        core.set_api_held(!allowed);
        let Some(recovered) = recovered else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for (name, job) in &recovered.api_jobs {
            let source: Box<str> = job.to_string().into();
            let def = match job {
                Value::Object(map) => parse_api_job(map),
                _ => Err("not a job object".to_string()),
            };
            match def {
                Ok(def) if def.name == *name && core.job(name).is_none() => {
                    core.put_api_job(Arc::new(def), source);
                    names.push(name.clone());
                }
                Ok(def) if def.name == *name => {
                    log::error!(
                        "job {name} is defined both in the config file and through the API \
                         (jobs.put, kept in state_dir): the file's job is used; the API job is \
                         kept aside, not scheduled, until `jobs.delete {{\"name\": \"{name}\"}}` \
                         removes it or the file's job goes (see status.api_jobs)"
                    );
                    core.set_aside(name, source, FILE_WINS.to_string());
                }
                Ok(_) | Err(_) => {
                    let why = def
                        .err()
                        .unwrap_or_else(|| "recorded under another name".into());
                    log::error!(
                        "job {name} (defined through the API) no longer passes the rules: {why}; \
                         kept aside, not scheduled, until jobs.put replaces it or jobs.delete \
                         removes it (see status.api_jobs)"
                    );
                    core.set_aside(name, source, format!("no longer valid: {why}"));
                }
            }
        }
        for name in &names {
            let target = core.job(name).and_then(|e| e.def.on_failure.clone());
            if let Some(target) = target.filter(|t| core.job(t).is_none()) {
                log::warn!("job {name}: on_failure names job {target}, which does not exist now");
            }
        }
        if !recovered.api_jobs.is_empty() {
            log::info!(
                "state_dir: {} job(s) defined through the API restored{}",
                names.len(),
                if allowed {
                    ""
                } else {
                    "; not scheduled while daemon.allow_job_api is false"
                }
            );
        }
        names
    }

    /// After a reload's jobs are applied: lets in the API jobs kept aside
    /// whose file job it removed (`removed`: those of them), and holds or releases API jobs per the
    /// new `allow_job_api`.
    pub(super) fn reload_api_jobs(&mut self, removed: &[String], allowed: bool) {
        for name in removed {
            let Some(aside) = self.shared.core.lock().take_aside(name) else {
                continue;
            };
            let def = serde_json::from_str::<Map<String, Value>>(&aside.source)
                .map_err(|e| e.to_string())
                .and_then(|map| parse_api_job(&map))
                .and_then(|def| {
                    check_target(&self.shared.core.lock(), &def).map_err(|e| e.to_string())?;
                    Ok(def)
                });
            match def {
                Ok(def) => {
                    self.shared
                        .core
                        .lock()
                        .put_api_job(Arc::new(def), aside.source);
                    self.arm(name);
                    log::warn!(
                        "job {name}: the config file no longer defines it, so the API job of \
                         that name, kept aside since start, takes its place"
                    );
                }
                Err(why) => {
                    log::error!("job {name}: the API job kept aside still cannot be used: {why}");
                    self.shared.core.lock().set_aside(
                        name,
                        aside.source,
                        format!("no longer valid: {why}"),
                    );
                }
            }
        }
        let changed = self.shared.core.lock().set_api_held(!allowed);
        if changed.is_empty() {
            return;
        }
        let mut cancelled = 0;
        for name in &changed {
            self.arm(name);
            if !allowed {
                for id in self.unfinished_runs_of(name) {
                    if self.cancel_if_queued(
                        id,
                        "daemon.allow_job_api turned off before the run started",
                    ) {
                        cancelled += 1;
                    }
                }
            }
        }
        if allowed {
            log::info!(
                "daemon.allow_job_api turned on: {} job(s) defined through the API are scheduled again",
                changed.len()
            );
        } else {
            log::warn!(
                "daemon.allow_job_api turned off: {} job(s) defined through the API are kept but not \
                 scheduled ({cancelled} queued run(s) cancelled; running runs finish)",
                changed.len()
            );
        }
    }
}

/// Refused while `daemon.allow_job_api` is false.
pub const JOB_API_OFF: &str =
    "jobs defined at run time are disabled (set daemon.allow_job_api = true to allow jobs.put and jobs.delete)";

/// Refuses a run of an API job while `daemon.allow_job_api` is false.
pub(super) const HELD_RUN: &str =
    "this job is defined through the API, and daemon.allow_job_api is \
     false: it is kept but no run of it starts (set daemon.allow_job_api = true)";

/// The record of the API job `name` defined by the job object `source`
/// (compact JSON), for journal compaction.
pub(super) fn api_job_record(name: &str, source: &str) -> Option<Record> {
    match serde_json::from_str::<Value>(source) {
        Ok(job) => Some(Record::Job {
            name: name.to_string(),
            job,
        }),
        Err(e) => {
            log::error!("job {name}: its definition does not read back ({e}); not compacted");
            None
        }
    }
}

/// Checks `def.on_failure` against the jobs in `core`: the target exists
/// (or is `def` itself) and following targets from `def` never comes back.
fn check_target(core: &Core, def: &JobDef) -> Result<(), Error> {
    let Some(target) = &def.on_failure else {
        return Ok(());
    };
    if *target != def.name && core.job(target).is_none() {
        return Err(Error::BadJob(format!(
            "job.on_failure: names job \"{target}\", which does not exist"
        )));
    }
    let mut path = vec![def.name.as_str()];
    let mut next = Some(target.as_str());
    while let Some(step) = next {
        if step == def.name {
            path.push(step);
            return Err(Error::BadJob(format!(
                "job.on_failure: forms a cycle: {}",
                path.join(" -> ")
            )));
        }
        if path.contains(&step) {
            break; // a loop further on (none can exist), not through `def`
        }
        path.push(step);
        next = core.job(step).and_then(|e| e.def.on_failure.as_deref());
    }
    Ok(())
}

/// The job object of an API job kept aside: what its definition says,
/// with no counters (it never ran as itself), or just its name and source
/// when the definition does not pass the rules.
fn json_of_aside(name: &str, source: Option<&str>) -> Value {
    let def = source
        .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
        .and_then(|map| parse_api_job(&map).ok());
    let Some(def) = def else {
        return serde_json::json!({"name": name, "source": "api"});
    };
    let mut core = Core::new(0);
    core.put_api_job(Arc::new(def), "{}".into());
    core.job_json(name, false)
        .unwrap_or_else(|| serde_json::json!({"name": name, "source": "api"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn core_of(text: &str) -> Core {
        let mut core = Core::new(10);
        let config = crate::config::parse(text, Path::new("t.toml")).expect("config");
        for def in config.jobs {
            core.upsert_job(Arc::new(def));
        }
        core
    }

    fn api(name: &str, on_failure: Option<&str>) -> JobDef {
        let mut map = Map::new();
        map.insert("name".into(), name.into());
        map.insert("command".into(), serde_json::json!(["true"]));
        let mut def = parse_api_job(&map).expect("valid");
        def.on_failure = on_failure.map(str::to_string);
        def
    }

    #[test]
    fn on_failure_must_name_a_job_and_form_no_cycle() {
        let mut core = core_of("[[jobs]]\nname = \"f\"\ncommand = [\"true\"]");
        assert_eq!(check_target(&core, &api("a", Some("f"))), Ok(()));
        assert_eq!(
            check_target(&core, &api("a", Some("nope"))),
            Err(Error::BadJob(
                "job.on_failure: names job \"nope\", which does not exist".into()
            ))
        );
        assert_eq!(
            check_target(&core, &api("a", Some("a"))),
            Err(Error::BadJob(
                "job.on_failure: forms a cycle: a -> a".into()
            ))
        );
        core.put_api_job(Arc::new(api("b", Some("a"))), "{}".into());
        core.put_api_job(Arc::new(api("c", Some("b"))), "{}".into());
        assert_eq!(
            check_target(&core, &api("a", Some("c"))),
            Err(Error::BadJob(
                "job.on_failure: forms a cycle: a -> c -> b -> a".into()
            ))
        );
        assert_eq!(check_target(&core, &api("a", Some("f"))), Ok(()));
        assert_eq!(check_target(&core, &api("d", Some("c"))), Ok(()));
    }

    #[test]
    fn an_aside_job_answers_its_definition_or_just_its_name() {
        let v = json_of_aside("x", Some(r#"{"name":"x","command":["true"],"every":"1m"}"#));
        assert_eq!(v["name"], "x");
        assert_eq!(v["source"], "api");
        assert_eq!(v["schedule"], "1m");
        assert_eq!(v["runs_total"], 0);
        let v = json_of_aside("y", Some(r#"{"name":"y","command":[]}"#));
        assert_eq!(v, serde_json::json!({"name": "y", "source": "api"}));
    }
}
