//! `jobs.list`, `jobs.get`, `jobs.run`, `jobs.pause`, `jobs.resume`.

use crate::daemon::{Daemon, Reply};
use crate::protocol::rpc::Params;
use crate::protocol::RpcError;
use crate::state::run::Trigger;
use serde_json::{json, Value};

/// `jobs.list` → every job object, sorted by name.
pub fn list(d: &mut Daemon, p: &Params) -> Result<Value, RpcError> {
    p.only(&[])?;
    Ok(d.shared.core.lock().jobs_json())
}

/// `jobs.get {name}` → the job object with its `history`.
pub fn get(d: &mut Daemon, p: &Params) -> Result<Value, RpcError> {
    p.only(&["name"])?;
    let name = p.str("name")?;
    d.shared
        .core
        .lock()
        .job_json(name, true)
        .ok_or_else(|| RpcError::no_job(name))
}

/// `jobs.run {name, wait?, args?}` → `{run_id}`, or the finished run with `wait`.
pub fn run(d: &mut Daemon, p: &Params) -> Reply {
    let parsed = (|| {
        p.only(&["name", "wait", "args"])?;
        let name = p.str("name")?;
        let wait = p.bool_or("wait", false)?;
        let args = p.opt_object("args")?.map(|o| Value::Object(o.clone()));
        Ok::<_, RpcError>((name, wait, args))
    })();
    let (name, wait, args) = match parsed {
        Ok(v) => v,
        Err(e) => return Reply::Now(Err(e)),
    };
    match d.start_run(name, Trigger::Manual, args, None) {
        Ok(id) if wait => Reply::WaitRun(id),
        Ok(id) => Reply::Now(Ok(json!({ "run_id": id.to_string() }))),
        Err(e) => Reply::Now(Err(e)),
    }
}

/// `jobs.pause {name}` / `jobs.resume {name}` → `{name, enabled}`.
pub fn set_enabled(d: &mut Daemon, p: &Params, enabled: bool) -> Result<Value, RpcError> {
    p.only(&["name"])?;
    let name = p.str("name")?;
    d.set_enabled(name, enabled)?;
    let next_run = d
        .shared
        .core
        .lock()
        .job_json(name, false)
        .map(|j| j["next_run"].clone());
    Ok(json!({ "name": name, "enabled": enabled, "next_run": next_run }))
}
