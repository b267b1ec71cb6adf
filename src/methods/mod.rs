//! The methods' handlers: one function per method, grouped by what they
//! touch.
//!
//! A request reaches [`handle`] decoded into a typed [`Call`] (by the
//! protocol layer, from a JSON-RPC line or an HTTP request alike) and is
//! answered with a result or a [`daemon::Error`]; the protocol layer turns
//! that into its wire form. Requests are answered on the request pool's
//! workers, never on the event loop. Methods split in two kinds:
//! - **queries** (`ping`, `status`, `jobs.list`, `jobs.get`, `runs.get`)
//!   read the shared state under short locks and are answered entirely on
//!   the worker;
//! - **commands** (`jobs.run`, `jobs.pause`, `jobs.resume`, `jobs.put`,
//!   `jobs.delete`, `runs.cancel`, `reload`, `shutdown`) change what the loop owns — the timer wheel, the
//!   run queue, the config. The worker checks them and hands back a
//!   [`Command`], which the loop applies ([`execute`]) in request order
//!   when the batch's answers come back.
//!
//! Waiting for a run (`jobs.run` with `wait`, `runs.cancel` of a running
//! run) never blocks anyone: the answer is parked ([`Reply::WaitRun`]) and
//! sent when the run's completion reaches the loop through its `mio::Waker`.

mod admin;
pub mod cluster;
pub use admin::reload_answer;
pub mod call;
mod debug;
mod define;
mod job_def;
mod jobs;
pub mod jobs_list;
pub mod output;
mod runs;
mod status;

use crate::auth::Gate;
use crate::daemon::{self, Board, Daemon, Error, Shared};
use crate::state::run::RunId;
use call::{Call, RunKey};
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

/// What the request handlers answer from: the daemon's shared state, and
/// what only they keep (the daemon does not know of either): the encoded
/// `jobs.list` answer of the core's current generation, and the token
/// checks with the budget of wrong tokens all clients share.
pub struct Handlers {
    /// Jobs, runs and the board.
    pub shared: Arc<Shared>,
    jobs_list: jobs_list::ListCache,
    /// The token checks of both protocols and their one wrong-token
    /// budget (see [`crate::auth`]); the request layer asks it.
    pub gate: Gate,
}

impl Handlers {
    /// The handlers of the daemon whose state is `shared`.
    pub fn new(shared: Arc<Shared>) -> Handlers {
        Handlers {
            shared,
            jobs_list: jobs_list::ListCache::default(),
            gate: Gate::default(),
        }
    }
}

/// What a worker made of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The answer (a query, or a request refused before reaching the loop).
    Answer(Result<Value, Error>),
    /// A query's answer, already serialized (large answers skip the `Value` tree).
    Encoded(Result<Box<RawValue>, Error>),
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
    /// `reload`: answer once the reload of this ticket is applied (or
    /// refused), see [`Daemon::request_reload`].
    WaitReload(u64),
    /// `subscribe`: answer `{subscribed: true}`, then stream `run.event`
    /// notifications of these jobs (None: all runs) on the connection.
    Subscribe(Option<Vec<String>>),
    /// `runs.output {follow: true}`: answer, then stream `run.output`
    /// notifications of the run on the connection until it ends.
    Follow(Box<output::Follow>),
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
        /// `delay` / `at`: the run waits, `scheduled`, until then.
        due: Option<crate::time::Timestamp>,
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
        def: Arc<crate::config::JobDef>,
        /// The job object as sent (journaled for restarts).
        source: Value,
        /// Answer with the finished run instead of its id.
        wait: bool,
        /// Passed to the job.
        args: Option<Value>,
    },
    /// `jobs.put`: a job defined at run time.
    PutJob {
        /// The validated definition (its `on_failure` target unchecked).
        def: Box<crate::config::JobDef>,
        /// The job object as sent (journaled).
        source: serde_json::Map<String, Value>,
    },
    /// `jobs.delete`.
    DeleteJob {
        /// Job name.
        name: String,
        /// Kill its running runs.
        cancel: bool,
    },
    /// `runs.cancel`.
    Cancel(RunId),
    /// `jobs.run` / `submit` with `node: "any"` and `wait`: the run was
    /// queued in Redis; answer when it ends, wherever it runs.
    WaitRemote(RunId),
    /// `subscribe {jobs?}`.
    Subscribe(Option<Vec<String>>),
    /// `runs.output {follow: true}` of a run not ended yet.
    Follow(Box<output::Follow>),
    /// `reload`.
    Reload,
    /// `shutdown`.
    Shutdown,
    /// `debug.kill_worker` (test hook).
    KillWorker,
}

/// Answers one request on a worker thread.
pub fn handle(h: &Handlers, call: Call<'_>) -> Outcome {
    let shared: &Shared = &h.shared;
    let command = |r: Result<Command, Error>| match r {
        Ok(c) => Outcome::Command(c),
        Err(e) => Outcome::Answer(Err(e)),
    };
    match call {
        Call::Ping => Outcome::Answer(Ok(Value::from("pong"))),
        Call::Status => Outcome::Encoded(status::status(shared)),
        Call::JobsList(p) => Outcome::Encoded(jobs_list::list(shared, &h.jobs_list, p)),
        Call::JobsGet(p) => Outcome::Encoded(jobs::get(shared, p.name, p.next)),
        Call::RunsGet(p) => Outcome::Answer(runs::get(shared, p.run_id)),
        Call::RunsList(p) => Outcome::Encoded(runs::list(shared, p)),
        Call::JobsRun(p) if p.node == Some(call::Node::Any) => {
            if p.delay.is_some() || p.at.is_some() {
                return Outcome::Answer(Err(Error::Invalid {
                    param: "node",
                    what: "\"any\" does not take delay or at yet".into(),
                }));
            }
            let wait = p.wait.unwrap_or(false);
            cluster::run_any(shared, Some(&p.name), None, p.args, wait)
        }
        Call::JobsRun(p) => match jobs::run(p) {
            Ok(c) => Outcome::Command(c),
            Err(e) => Outcome::Answer(Err(e)),
        },
        Call::Submit(p) if p.node == Some(call::Node::Any) => {
            let wait = p.wait.unwrap_or(false);
            cluster::run_any(shared, None, Some(p.job.source), p.args, wait)
        }
        Call::Submit(p) => Outcome::Command(jobs::submit(*p)),
        Call::JobsPut(p) => Outcome::Command(define::put(*p)),
        Call::JobsDelete(p) => Outcome::Command(define::delete(p)),
        Call::JobsPause(p) => Outcome::Command(jobs::set_enabled(p.name, false)),
        Call::JobsResume(p) => Outcome::Command(jobs::set_enabled(p.name, true)),
        Call::RunsCancel(p) => command(match p.run_id {
            RunKey::Id(id) => Ok(Command::Cancel(id)),
            RunKey::Unknown(id) => Err(Error::NoSuchRun(id)),
        }),
        Call::Subscribe(p) => command(runs::subscribe(shared, p)),
        Call::RunsOutput(p) => output::runs_output(shared, p),
        Call::Reload => Outcome::Command(Command::Reload),
        Call::Shutdown => Outcome::Command(Command::Shutdown),
        Call::Upgrade => Outcome::Answer(admin::upgrade()),
        Call::KillWorker => Outcome::Command(Command::KillWorker),
        Call::Failpoint(p) => Outcome::Answer(debug::failpoint(p)),
        Call::ClockJump(p) => Outcome::Answer(debug::clock_jump(p)),
    }
}

/// Refuses `submit` unless `daemon.allow_submit` (checked before its
/// params are, so a refused client learns nothing about them).
pub fn submit_allowed(board: &Board) -> Result<(), Error> {
    if board.live.read().allow_submit {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "submit is disabled (set daemon.allow_submit = true to allow it)",
        ))
    }
}

/// Refuses `jobs.put` and `jobs.delete` unless `daemon.allow_job_api`
/// (checked before their params are).
pub fn job_api_allowed(board: &Board) -> Result<(), Error> {
    if board.live.read().allow_job_api {
        Ok(())
    } else {
        Err(Error::Forbidden(daemon::JOB_API_OFF))
    }
}

/// Applies a command on the event loop.
pub fn execute(d: &mut Daemon, cmd: Command) -> Reply {
    match cmd {
        Command::Run {
            name,
            wait,
            args,
            due,
        } => jobs::execute_run(d, &name, wait, args, due),
        Command::Submit {
            def,
            source,
            wait,
            args,
        } => jobs::execute_submit(d, def, source, wait, args),
        Command::SetEnabled { name, enabled } => {
            Reply::Now(jobs::execute_set_enabled(d, &name, enabled))
        }
        Command::PutJob { def, source } => Reply::Now(define::execute_put(d, *def, source)),
        Command::DeleteJob { name, cancel } => Reply::Now(define::execute_delete(d, &name, cancel)),
        Command::Cancel(id) => match d.cancel_run(id) {
            Ok(()) => Reply::WaitRun(id),
            Err(e) => Reply::Now(Err(e)),
        },
        Command::WaitRemote(id) => wait_remote(d, id),
        Command::Subscribe(jobs) => Reply::Subscribe(jobs),
        Command::Follow(f) => Reply::Follow(f),
        Command::Reload => admin::reload(d),
        Command::Shutdown => Reply::Now(Ok(admin::shutdown(d))),
        Command::KillWorker => Reply::Now(admin::kill_worker(d)),
    }
}

/// Parks the answer to a run for any node until it ends: ended here
/// already, it is answered now; else the cluster watches its record.
fn wait_remote(d: &mut Daemon, id: RunId) -> Reply {
    let done = d
        .shared
        .core
        .lock()
        .run(id)
        .filter(|r| r.state.is_terminal())
        .map(|r| r.to_json());
    if let Some(run) = done {
        return Reply::Now(Ok(run));
    }
    if let Some(c) = &d.shared.cluster {
        c.watch(id);
    }
    Reply::WaitRun(id)
}

/// Serializes a query's answer straight to JSON text (no `Value` tree): the
/// path of the common, larger answers (`status`, `jobs.*`, `runs.list`).
pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Box<RawValue>, Error> {
    serde_json::value::to_raw_value(v).map_err(|e| Error::Internal(e.to_string()))
}
