//! JSON-RPC methods: one function per method, grouped by what they touch.
//!
//! Requests are answered on the request pool's workers ([`handle`]), never
//! on the event loop. Methods split in two kinds:
//! - **queries** (`ping`, `status`, `jobs.list`, `jobs.get`, `runs.get`)
//!   read the shared state under short locks and are answered entirely on
//!   the worker;
//! - **commands** (`jobs.run`, `jobs.pause`, `jobs.resume`, `runs.cancel`,
//!   `reload`, `shutdown`) change what the loop owns — the timer wheel, the
//!   run queue, the config. The worker decodes and validates their params
//!   and hands back a [`Command`], which the loop applies ([`execute`]) in
//!   request order when the batch's answers come back.
//!
//! Waiting for a run (`jobs.run` with `wait`, `runs.cancel` of a running
//! run) never blocks anyone: the answer is parked ([`Reply::WaitRun`]) and
//! sent when the run's completion reaches the loop through its `mio::Waker`.

mod admin;
pub mod auth;
mod debug;
mod jobs;
mod runs;
mod status;

use crate::daemon::{self, Daemon, Shared};
use crate::protocol::rpc::Request;
use crate::protocol::{ErrorCode, RpcError};
use crate::state::run::RunId;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

/// What the request handlers answer from: the daemon's shared state, and
/// what only they keep (the daemon does not know of either): the encoded
/// `jobs.list` answer of the core's current generation, and the budget of
/// wrong tokens all clients share.
pub struct Handlers {
    /// Jobs, runs and the board.
    pub shared: Arc<Shared>,
    jobs_list: jobs::ListCache,
    wrong_tokens: auth::WrongTokenBudget,
}

impl Handlers {
    /// The handlers of the daemon whose state is `shared`.
    pub fn new(shared: Arc<Shared>) -> Handlers {
        Handlers {
            shared,
            jobs_list: jobs::ListCache::default(),
            wrong_tokens: auth::WrongTokenBudget::default(),
        }
    }
}

/// What a worker made of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The answer (a query, or a request refused before reaching the loop).
    Answer(Result<Value, RpcError>),
    /// A query's answer, already serialized (large answers skip the `Value` tree).
    Encoded(Result<Box<RawValue>, RpcError>),
    /// A validated command for the loop to apply.
    Command(Command),
}

/// What a command answers: now, or when a run finishes.
#[derive(Debug)]
pub enum Reply {
    /// The answer is known.
    Now(Result<Value, daemon::Error>),
    /// Answer with the run's final record once it is terminal.
    WaitRun(RunId),
    /// `subscribe`: answer `{subscribed: true}`, then stream `run.event`
    /// notifications of these jobs (None: all runs) on the connection.
    Subscribe(Option<Vec<String>>),
}

/// A change only the event loop may make.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `jobs.run`.
    Run {
        /// Job name.
        name: String,
        /// Answer with the finished run instead of its id.
        wait: bool,
        /// Passed to the job.
        args: Option<Value>,
    },
    /// `jobs.pause` (false) or `jobs.resume` (true).
    SetEnabled {
        /// Job name.
        name: String,
        /// The new state.
        enabled: bool,
    },
    /// `submit`: a run of an ad-hoc job.
    Submit {
        /// The validated definition.
        def: std::sync::Arc<crate::config::JobDef>,
        /// The job object as sent (journaled for restarts).
        source: Value,
        /// Answer with the finished run instead of its id.
        wait: bool,
        /// Passed to the job.
        args: Option<Value>,
    },
    /// `runs.cancel`.
    Cancel(RunId),
    /// `subscribe {jobs?}`.
    Subscribe(Option<Vec<String>>),
    /// `reload`.
    Reload,
    /// `shutdown`.
    Shutdown,
    /// `debug.kill_worker` (test hook).
    KillWorker,
}

/// Answers one request on a worker thread.
pub fn handle(h: &Handlers, req: &Request) -> Outcome {
    let shared: &Shared = &h.shared;
    let p = &req.params;
    let command = |r: Result<Command, RpcError>| match r {
        Ok(c) => Outcome::Command(c),
        Err(e) => Outcome::Answer(Err(e)),
    };
    match &*req.method {
        "ping" => Outcome::Answer(p.only(&[]).map(|()| Value::from("pong"))),
        "status" => Outcome::Encoded(status::status(shared, p)),
        "jobs.list" => Outcome::Encoded(jobs::list(shared, &h.jobs_list, p)),
        "jobs.get" => Outcome::Encoded(jobs::get(shared, p)),
        "runs.get" => Outcome::Answer(runs::get(shared, p)),
        "runs.list" => Outcome::Encoded(runs::list(shared, p)),
        "jobs.run" => command(jobs::run(p)),
        "submit" => command(jobs::submit(shared, p)),
        "jobs.pause" => command(jobs::set_enabled(p, false)),
        "jobs.resume" => command(jobs::set_enabled(p, true)),
        "runs.cancel" => command(runs::cancel(p)),
        "subscribe" => command(runs::subscribe(shared, p)),
        "reload" => command(p.only(&[]).map(|()| Command::Reload)),
        "shutdown" => command(p.only(&[]).map(|()| Command::Shutdown)),
        "debug.kill_worker" if shared.board.debug_hooks => {
            command(p.only(&[]).map(|()| Command::KillWorker))
        }
        "debug.failpoint" if shared.board.debug_hooks => Outcome::Answer(debug::failpoint(p)),
        "debug.clock_jump" if shared.board.debug_hooks => Outcome::Answer(debug::clock_jump(p)),
        other => Outcome::Answer(Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {other}"),
        ))),
    }
}

/// Applies a command on the event loop.
pub fn execute(d: &mut Daemon, cmd: Command) -> Reply {
    match cmd {
        Command::Run { name, wait, args } => jobs::execute_run(d, &name, wait, args),
        Command::Submit {
            def,
            source,
            wait,
            args,
        } => jobs::execute_submit(d, def, source, wait, args),
        Command::SetEnabled { name, enabled } => {
            Reply::Now(jobs::execute_set_enabled(d, &name, enabled))
        }
        Command::Cancel(id) => match d.cancel_run(id) {
            Ok(()) => Reply::WaitRun(id),
            Err(e) => Reply::Now(Err(e)),
        },
        Command::Subscribe(jobs) => Reply::Subscribe(jobs),
        Command::Reload => Reply::Now(admin::reload(d)),
        Command::Shutdown => Reply::Now(Ok(admin::shutdown(d))),
        Command::KillWorker => Reply::Now(admin::kill_worker(d)),
    }
}

/// Serializes a query's answer straight to JSON text (no `Value` tree): the
/// path of the common, larger answers (`status`, `jobs.*`, `runs.list`).
pub(crate) fn encode<T: serde::Serialize>(
    v: &T,
) -> Result<Box<serde_json::value::RawValue>, RpcError> {
    serde_json::value::to_raw_value(v).map_err(|e| {
        RpcError::new(
            crate::protocol::ErrorCode::Internal,
            format!("internal error: {e}"),
        )
    })
}
