//! `runs.get` (a query) and `runs.cancel` (a command).

use super::Command;
use crate::daemon::Shared;
use crate::protocol::rpc::Params;
use crate::protocol::RpcError;
use crate::state::run::{parse_run_id, RunId};
use serde_json::Value;

fn run_id(p: &Params) -> Result<RunId, RpcError> {
    p.only(&["run_id"])?;
    let raw = p
        .get("run_id")
        .ok_or_else(|| RpcError::param("run_id", "is required"))?;
    match parse_run_id(raw) {
        Some(id) => Ok(id),
        None if raw.is_string() => Err(RpcError::no_run(raw.as_str().unwrap_or_default())),
        None => Err(RpcError::param("run_id", "must be a string")),
    }
}

/// `runs.get {run_id}` → the run object.
pub fn get(shared: &Shared, p: &Params) -> Result<Value, RpcError> {
    let id = run_id(p)?;
    shared
        .core
        .lock()
        .run(id)
        .map(|r| r.to_json())
        .ok_or_else(|| RpcError::no_run(&id.to_string()))
}

/// Validates `runs.cancel {run_id}`.
pub fn cancel(p: &Params) -> Result<Command, RpcError> {
    run_id(p).map(Command::Cancel)
}
