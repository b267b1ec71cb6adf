//! `runs.get` and `runs.list` (queries), `runs.cancel` and `subscribe`
//! (commands).
//!
//! `runs.list` never builds an answer larger than `daemon.max_output_bytes`
//! (a `limit` of 10,000 runs with 64 KiB of output each would be 640 MB):
//! past that it stops and refuses ([`Error::AnswerTooLarge`]), saying how
//! many of the newest runs would fit, so the client can ask for fewer.

use super::call::{RunKey, RunsList, Subscribe};
use super::Command;
use crate::daemon::{Error, Shared};
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::Write;

/// `runs.list` answers at most this many runs unless `limit` says fewer.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
/// The largest `limit` accepted.
pub const MAX_LIST_LIMIT: u64 = 10_000;

/// `runs.get {run_id}` → the run object.
pub fn get(shared: &Shared, key: RunKey) -> Result<Value, Error> {
    let id = match key {
        RunKey::Id(id) => id,
        RunKey::Unknown(id) => return Err(Error::NoSuchRun(id)),
    };
    let local = shared.core.lock().run(id).map(|r| r.to_json());
    local
        .or_else(|| super::cluster::run_from_cluster(shared, id))
        .ok_or_else(|| Error::NoSuchRun(id.to_string()))
}

/// `runs.list {job?, state?, limit?, before?}` → run objects, newest
/// first; with `before`, only runs older than that run (which need not
/// be kept any more): the next page back through the history.
pub fn list(shared: &Shared, p: RunsList<'_>) -> Result<Box<RawValue>, Error> {
    let job = p.job;
    let state = p.state.map(|s| s.0);
    let before = match p.before {
        None => None,
        Some(RunKey::Id(id)) => Some(id),
        Some(RunKey::Unknown(_)) => {
            return Err(Error::Invalid {
                param: "before",
                what: "must be a run id (the `run_id` of a run object)".into(),
            })
        }
    };
    let limit = match p.limit {
        None => DEFAULT_LIST_LIMIT,
        Some(0) => {
            return Err(Error::Invalid {
                param: "limit",
                what: "must be at least 1".into(),
            })
        }
        Some(n) => n.min(MAX_LIST_LIMIT),
    };
    let cap = shared.board.live.read().max_output_bytes;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let fleet = state.map(|s| s.as_str());
    if let Some(runs) = super::cluster::runs_from_cluster(shared, job, fleet, before, limit) {
        return encode_records(&runs, cap);
    }
    let core = shared.core.lock();
    if let Some(name) = job {
        if core.job(name).is_none() && !core.has_runs_of(name) {
            return Err(Error::NoSuchJob(name.to_string()));
        }
    }
    let runs = core.runs_before(job, state, before, limit);
    let mut text = Capped::new(cap);
    text.out.push(b'[');
    for (i, run) in runs.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"," };
        let written = text
            .write_all(sep)
            .map_err(serde_json::Error::io)
            .and_then(|()| serde_json::to_writer(&mut text, &run.view()));
        if written.is_err() {
            return Err(Error::AnswerTooLarge { cap, fit: i });
        }
    }
    if text.write_all(b"]").is_err() {
        return Err(Error::AnswerTooLarge {
            cap,
            fit: runs.len().saturating_sub(1),
        });
    }
    drop(core);
    text.into_raw()
}

/// `runs.list`'s answer from stored run records (cluster mode), under
/// the same output cap as from memory.
fn encode_records(runs: &[String], cap: usize) -> Result<Box<RawValue>, Error> {
    let mut text = Capped::new(cap);
    text.out.push(b'[');
    for (i, run) in runs.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b"," };
        if text
            .write_all(sep)
            .and_then(|()| text.write_all(run.as_bytes()))
            .is_err()
        {
            return Err(Error::AnswerTooLarge { cap, fit: i });
        }
    }
    if text.write_all(b"]").is_err() {
        return Err(Error::AnswerTooLarge {
            cap,
            fit: runs.len().saturating_sub(1),
        });
    }
    text.into_raw()
}

/// A buffer that refuses to grow past `cap` bytes: a list answer is
/// encoded into one, so that it stops at `max_output_bytes` instead of
/// building an answer the connection could not take.
pub(super) struct Capped {
    /// The bytes so far.
    pub out: Vec<u8>,
    cap: usize,
}

impl Capped {
    /// An empty buffer that takes up to `cap` bytes.
    pub fn new(cap: usize) -> Capped {
        Capped {
            out: Vec::new(),
            cap,
        }
    }

    /// The bytes, JSON text, as the answer.
    pub fn into_raw(self) -> Result<Box<RawValue>, Error> {
        String::from_utf8(self.out)
            .map_err(|e| e.to_string())
            .and_then(|s| RawValue::from_string(s).map_err(|e| e.to_string()))
            .map_err(Error::Internal)
    }
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

/// `subscribe {jobs?: [names]}`: the command; every name must be a job.
pub fn subscribe(shared: &Shared, p: Subscribe) -> Result<Command, Error> {
    let Some(names) = p.jobs else {
        return Ok(Command::Subscribe(None));
    };
    let core = shared.core.lock();
    if let Some(unknown) = names.0.iter().find(|n| core.job(n).is_none()) {
        return Err(Error::NoSuchJob(unknown.clone()));
    }
    Ok(Command::Subscribe(Some(names.0)))
}
