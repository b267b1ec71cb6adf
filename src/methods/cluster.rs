//! Cluster mode's side of the methods (docs/cluster.md): runs for any
//! node (`jobs.run` / `submit` with `node: "any"`, queued in Redis from
//! the request thread), runs read from Redis (`runs.get`, `runs.list`,
//! `jobs.get`'s `last_run`) while the link is up, and the `cluster`
//! object of `status` and `GET /cluster`.

use super::{Command, Outcome};
use crate::cluster::feed::WorkItem;
use crate::cluster::Cluster;
use crate::daemon::{Error, Shared};
use crate::state::run::RunId;
use serde_json::{json, Map, Value};

/// The cluster, if in cluster mode, for a request asking `node: "any"`.
fn cluster_for_any(shared: &Shared) -> Result<&Cluster, Error> {
    let c = shared.cluster.as_deref().ok_or_else(|| Error::Invalid {
        param: "node",
        what: "\"any\" needs cluster mode (a [cluster] table in the config)".into(),
    })?;
    if !c.is_up() {
        let why = c
            .link
            .last_error
            .lock()
            .clone()
            .unwrap_or_else(|| "not connected yet".into());
        return Err(Error::ClusterDown(why));
    }
    Ok(c)
}

/// `jobs.run {name, node: "any", wait?, args?}` / `submit {..., node:
/// "any"}`: the run's record and its entry go to Redis now, on this
/// request thread; any node that has the job takes it. With `wait`, the
/// loop parks the answer until the run ends, wherever it runs.
pub fn run_any(
    shared: &Shared,
    job: Option<&str>,
    adhoc: Option<Map<String, Value>>,
    args: Option<Map<String, Value>>,
    wait: bool,
) -> Outcome {
    let c = match cluster_for_any(shared) {
        Ok(c) => c,
        Err(e) => return Outcome::Answer(Err(e)),
    };
    let id = shared.core.lock().take_run_id();
    let trigger = if adhoc.is_some() { "submit" } else { "manual" };
    let record = json!({
        "run_id": id.to_string(),
        "job": job,
        "trigger": trigger,
        "state": "queued",
        "attempt": 1,
        "queued_at": crate::time::rfc3339(&crate::time::now()),
        "started_at": null,
        "finished_at": null,
        "exit_code": null,
        "error": null,
        "output": "",
        "node": null,
        "origin": c.config.node,
    });
    let item = WorkItem {
        run_id: id,
        job: job.map(str::to_string),
        args: args.map(Value::Object),
        adhoc: adhoc.map(Value::Object),
        origin: c.config.node.clone(),
        hops: 0,
        record: record.to_string(),
        stream_id: String::new(),
    };
    if let Err(why) = c.enqueue(&item) {
        return Outcome::Answer(Err(Error::ClusterDown(why)));
    }
    if wait {
        Outcome::Command(Command::WaitRemote(id))
    } else {
        Outcome::Answer(Ok(json!({ "run_id": id.to_string(), "node": "any" })))
    }
}

/// `runs.get` of a run this node does not keep: its record in Redis.
pub fn run_from_cluster(shared: &Shared, id: RunId) -> Option<Value> {
    let c = shared.cluster.as_deref().filter(|c| c.is_up())?;
    match c.reads.run(id) {
        Ok(record) => record.and_then(|r| serde_json::from_str(&r).ok()),
        Err(e) => {
            log::debug!("runs.get {id}: Redis: {e}");
            None
        }
    }
}

/// `runs.list` from Redis (every node's runs), while the link is up;
/// None: answer from this node's memory.
pub fn runs_from_cluster(
    shared: &Shared,
    job: Option<&str>,
    state: Option<&str>,
    before: Option<RunId>,
    limit: usize,
) -> Option<Vec<String>> {
    let c = shared.cluster.as_deref().filter(|c| c.is_up())?;
    match c.reads.runs_before(job, state, before, limit) {
        Ok(runs) => Some(runs),
        Err(e) => {
            log::debug!("runs.list: Redis: {e}; answering from this node");
            None
        }
    }
}

/// The newest run of `job` across the fleet, as stored in Redis.
pub fn last_run_from_cluster(shared: &Shared, job: &str) -> Option<Value> {
    let c = shared.cluster.as_deref().filter(|c| c.is_up())?;
    c.reads
        .last_run(job)
        .ok()
        .flatten()
        .and_then(|r| serde_json::from_str(&r).ok())
}
