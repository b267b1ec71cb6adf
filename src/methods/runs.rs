//! `runs.get` and `runs.list` (queries), `runs.cancel` and `subscribe`
//! (commands).
//!
//! `runs.list` never builds an answer larger than `daemon.max_output_bytes`
//! (a `limit` of 10,000 runs with 64 KiB of output each would be 640 MB):
//! past that it stops and refuses with `-32602`, saying how many of the
//! newest runs would fit, so the client can ask for fewer.

use super::Command;
use crate::daemon::Shared;
use crate::protocol::rpc::Params;
use crate::protocol::{ErrorCode, RpcError};
use crate::state::run::{parse_run_id, RunId, RunState};
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::Write;

/// `runs.list` answers at most this many runs unless `limit` says fewer.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
/// The largest `limit` accepted.
pub const MAX_LIST_LIMIT: u64 = 10_000;

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

/// `runs.list {job?, state?, limit?}` → run objects, newest first.
pub fn list(shared: &Shared, p: &Params) -> Result<Box<RawValue>, RpcError> {
    p.only(&["job", "state", "limit"])?;
    let job = p.opt_str("job")?;
    let state = match p.opt_str("state")? {
        None => None,
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            RpcError::param(
                "state",
                "must be one of queued, running, succeeded, failed, timed_out, cancelled, interrupted",
            )
        })?),
    };
    let limit = match p.opt_u64("limit")? {
        None => DEFAULT_LIST_LIMIT,
        Some(0) => return Err(RpcError::param("limit", "must be at least 1")),
        Some(n) => n.min(MAX_LIST_LIMIT),
    };
    let cap = shared.board.live.read().max_output_bytes;
    let core = shared.core.lock();
    if let Some(name) = job {
        if core.job(name).is_none() && !core.has_runs_of(name) {
            return Err(RpcError::no_job(name));
        }
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let runs = core.runs_newest_first(job, state, limit);
    let mut text = Capped {
        out: Vec::new(),
        cap,
    };
    text.out.push(b'[');
    for (i, run) in runs.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"," };
        let written = text
            .write_all(sep)
            .map_err(serde_json::Error::io)
            .and_then(|()| serde_json::to_writer(&mut text, &run.view()));
        if written.is_err() {
            return Err(too_large(cap, i));
        }
    }
    if text.write_all(b"]").is_err() {
        return Err(too_large(cap, runs.len().saturating_sub(1)));
    }
    drop(core);
    String::from_utf8(text.out)
        .map_err(|e| e.to_string())
        .and_then(|s| RawValue::from_string(s).map_err(|e| e.to_string()))
        .map_err(|e| RpcError::new(ErrorCode::Internal, format!("internal error: {e}")))
}

/// A buffer that refuses to grow past `cap` bytes.
struct Capped {
    out: Vec<u8>,
    cap: usize,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.cap {
            return Err(std::io::Error::other("answer larger than max_output_bytes"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `-32602` refusal of a `runs.list` whose answer would pass `cap`
/// bytes, when only the newest `fit` runs would fit.
fn too_large(cap: usize, fit: usize) -> RpcError {
    let hint = if fit == 0 {
        "even the newest run alone does not fit; get it with `runs.get`, or raise \
         daemon.max_output_bytes"
            .to_string()
    } else {
        format!("ask for fewer runs (`limit` of at most {fit})")
    };
    let mut e = RpcError::param(
        "limit",
        format!("the answer would be larger than max_output_bytes ({cap} bytes); {hint}"),
    );
    e.data = Some(serde_json::json!({ "max_output_bytes": cap, "runs_that_fit": fit }));
    e
}

/// Validates `subscribe {jobs?: [names]}`; every name must be a job.
pub fn subscribe(shared: &Shared, p: &Params) -> Result<Command, RpcError> {
    p.only(&["jobs"])?;
    let Some(raw) = p.get("jobs") else {
        return Ok(Command::Subscribe(None));
    };
    let not_names = || RpcError::param("jobs", "must be an array of job names");
    let names = raw
        .as_array()
        .ok_or_else(not_names)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(not_names))
        .collect::<Result<Vec<String>, RpcError>>()?;
    let core = shared.core.lock();
    if let Some(unknown) = names.iter().find(|n| core.job(n).is_none()) {
        return Err(RpcError::no_job(unknown));
    }
    Ok(Command::Subscribe(Some(names)))
}
