//! `jobs.put`, `jobs.delete` (commands): jobs defined at run time. The
//! rules are the daemon's (`daemon::define`); here the params become a
//! command, and the daemon's answer the wire's.

use super::call::{JobsDelete, JobsPut};
use super::Command;
use crate::daemon::{Daemon, Error};
use serde_json::{Map, Value};

/// `jobs.put {job}` (allowed, and the job checked by the config file's
/// rules, as it was decoded): the command.
pub fn put(p: JobsPut) -> Command {
    Command::PutJob {
        def: Box::new(p.job.def),
        source: p.job.source,
    }
}

/// `jobs.delete {name, cancel?}`: the command.
pub fn delete(p: JobsDelete) -> Command {
    Command::DeleteJob {
        name: p.name,
        cancel: p.cancel.unwrap_or(false),
    }
}

/// Applies `jobs.put`: the job object plus `created` and `persistent`
/// (whether it outlives a restart: only with `state_dir`).
pub fn execute_put(
    d: &mut Daemon,
    def: crate::config::JobDef,
    source: Map<String, Value>,
) -> Result<Value, Error> {
    let name = def.name.clone();
    let kept = d
        .shared
        .cluster
        .is_some()
        .then(|| Value::Object(source.clone()));
    let put = d.put_job(def, source)?;
    // Cluster mode: every node gets it through Redis.
    if let (Some(c), Some(job)) = (&d.shared.cluster, kept) {
        c.put_job(&name, job);
    }
    let mut job = put.job;
    add(&mut job, "created", put.created);
    add(&mut job, "persistent", d.shared.journal.is_some());
    Ok(job)
}

/// Applies `jobs.delete`: the removed job object (as it was) plus
/// `persistent` (whether the deletion outlives a restart).
pub fn execute_delete(d: &mut Daemon, name: &str, cancel: bool) -> Result<Value, Error> {
    let mut job = d.delete_job(name, cancel)?;
    if let Some(c) = &d.shared.cluster {
        c.delete_job(name);
    }
    add(&mut job, "persistent", d.shared.journal.is_some());
    Ok(job)
}

/// Adds `key: value` to the job object `job`.
fn add(job: &mut Value, key: &str, value: bool) {
    if let Value::Object(map) = job {
        map.insert(key.into(), Value::Bool(value));
    }
}
