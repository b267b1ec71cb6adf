//! JSON-RPC methods: one function per method, grouped by what they touch.
//!
//! [`handle`] maps a method name to its handler. Handlers run on the event
//! loop thread and only touch in-memory state under short locks, so each
//! answers in microseconds; the one thing that takes time — waiting for a run
//! to finish (`jobs.run` with `wait`, `runs.cancel` of a running run) — is
//! answered later, when the worker's completion reaches the loop through its
//! `mio::Waker` ([`Reply::WaitRun`]).

mod admin;
mod jobs;
mod runs;
mod status;

use crate::daemon::{Daemon, Reply};
use crate::protocol::rpc::Request;
use crate::protocol::{ErrorCode, RpcError};

/// Whether a request came with the rights it needs (used by later auth).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The connection's serial number, for logs.
    pub conn: u64,
}

/// Answers one request.
pub fn handle(d: &mut Daemon, req: &Request, _caller: Caller) -> Reply {
    let p = &req.params;
    match req.method.as_str() {
        "ping" => Reply::Now(p.only(&[]).map(|()| "pong".into())),
        "status" => Reply::Now(status::status(d, p)),
        "jobs.list" => Reply::Now(jobs::list(d, p)),
        "jobs.get" => Reply::Now(jobs::get(d, p)),
        "jobs.run" => jobs::run(d, p),
        "jobs.pause" => Reply::Now(jobs::set_enabled(d, p, false)),
        "jobs.resume" => Reply::Now(jobs::set_enabled(d, p, true)),
        "runs.get" => Reply::Now(runs::get(d, p)),
        "runs.cancel" => runs::cancel(d, p),
        "reload" => Reply::Now(admin::reload(d, p)),
        "shutdown" => Reply::Now(admin::shutdown(d, p)),
        "debug.kill_worker" if d.debug_hooks => Reply::Now(admin::kill_worker(d, p)),
        other => Reply::Now(Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {other}"),
        ))),
    }
}
