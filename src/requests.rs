//! Request batches: how requests (JSON-RPC lines or HTTP requests) travel
//! from the event loop to the request pool and their answers come back.
//!
//! The loop never decodes JSON. Per turn, it takes every connection's
//! complete lines as one [`ConnBatch`] (the bytes, moved, not copied, in the
//! common case) and hands all of the turn's batches to a request worker as
//! one [`RequestTask`]: one channel send and one worker wake-up per turn,
//! however many requests it carries. The worker frames, decodes, answers
//! and encodes every line (into the connection's spare buffer, see
//! [`BatchAnswer::tail`]), then posts the answers back with one send on
//! the request pool's own channel to the loop ([`ToLoop`]) and at most one
//! `mio::Waker` wake-up (none while the loop is awake; see
//! [`crate::daemon::wake`]). JSON-RPC lines,
//! JSON-RPC 2.0 batches (a line holding an array of requests) included,
//! are answered in `lines`; HTTP requests in `route`. What travels
//! between the loop and a worker, and the limits, are in `batch`, which
//! both answerers use.
//!
//! Answers stay in request order because a connection has at most one
//! batch in flight: the loop buffers further input until the batch's answers
//! are back (and stops reading from a client that keeps sending meanwhile).
//!
//! **Output budget.** A batch carries what its connection may still leave
//! unread ([`ConnBatch::out_budget`]: `max_output_bytes` minus the answers
//! not yet sent when it was cut). The worker looks at it before building
//! each answer ([`OutputBudget`]): once the answers built exceed it, it
//! builds no more and hands the requests left back unread
//! ([`BatchAnswer::rest`]). The loop then writes what was built and drops
//! a client that still leaves more than `max_output_bytes` unread, or cuts
//! the rest as a new batch. So what one connection makes the daemon hold
//! is bounded by its input, `max_output_bytes` and one answer being built,
//! however many requests it pipelines.
//!
//! Authentication is per connection for JSON-RPC (every decision is
//! [`crate::auth`]'s; the answerers render its verdicts): the batch says whether
//! the connection is authenticated under the token in force when the batch
//! was cut (the loop decides that against the current config, so a reload
//! that turns auth on or changes the token takes effect on the next batch
//! of every connection), the worker answers `auth` and refuses other
//! methods (but `ping`) until then, and the answer says which token the
//! connection authenticated with. The batch also carries the connection's
//! grant (its token's role as the loop judged it, see `grant`), by which
//! each request is allowed or refused `-32003`. A wrong token's answer comes back as
//! [`Segment::Delayed`]; the batch ends there and the bytes after it come
//! back unread ([`BatchAnswer::rest`]), so nothing more of that connection
//! is checked or answered until the loop releases the delayed answer.

mod batch;
mod grant;
mod lines;
mod output;
mod route;
mod stream;

pub use batch::{
    BatchAnswer, ConnBatch, OutputBudget, Proto, ReplyTo, Segment, MAX_BATCH_REQUESTS, MAX_NESTING,
};
pub use output::HttpFollow;
pub use stream::BodyStream;

use crate::daemon::Shared;
use crate::methods::Handlers;
use crate::pool::{release_cpu, Task, HEAVY_ANSWER_BYTES};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use crossbeam_channel::Sender;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Answers every request of a batch. Runs on a request worker (or, if the
/// request pool cannot take a task, on the loop itself).
pub fn answer_batch(h: &Handlers, mut batch: ConnBatch) -> BatchAnswer {
    if let Some(stream) = batch.stream.take() {
        return stream::next_piece(h, batch, stream);
    }
    match batch.proto {
        Proto::Rpc => lines::answer_lines(h, batch),
        Proto::Http => route::answer_batch(h, batch),
    }
}

/// What the request pool hands back to the event loop.
#[derive(Debug)]
pub enum Answered {
    /// A request worker answered a task's batches.
    Batches {
        /// The task that carried the batches.
        task: u64,
        /// One answer per connection batch.
        answers: Vec<BatchAnswer>,
    },
    /// A request task ended without answers (it panicked or its thread died).
    Lost {
        /// The task that was lost.
        task: u64,
        /// What happened.
        why: String,
    },
}

/// The request pool's way back to the loop: a channel of its own, whose
/// receiving end the loop owns, and the loop's wake-up protocol
/// ([`crate::daemon::wake`]), which the loop applies to this channel too.
/// It also holds what the requests are answered from ([`Handlers`]), so
/// every worker shares one `jobs.list` cache and one wrong-token budget.
pub struct ToLoop {
    /// What requests are answered from.
    pub handlers: Handlers,
    answers: Sender<Answered>,
}

impl ToLoop {
    /// Answers from `shared` and posts through `answers`; the loop holds
    /// its receiver.
    pub fn new(shared: Arc<Shared>, answers: Sender<Answered>) -> ToLoop {
        ToLoop {
            handlers: Handlers::new(shared),
            answers,
        }
    }

    /// Posts to the loop, and wakes it if it may be asleep: one channel
    /// send and at most one `eventfd` write.
    pub fn post(&self, answered: Answered) {
        if self.answers.send(answered).is_err() {
            // The loop has exited (end of shutdown); nobody is left to tell.
            return;
        }
        self.handlers.shared.wake_loop();
    }
}

/// A turn's worth of batches for one request worker.
pub struct RequestTask {
    /// Identifies the task if it is lost.
    pub id: u64,
    /// The batches, one per connection.
    pub batches: Vec<ConnBatch>,
    /// What requests are answered from, and where answers are posted to.
    pub to_loop: Arc<ToLoop>,
}

impl Task for RequestTask {
    fn id(&self) -> u64 {
        self.id
    }

    type Env = ();

    fn run(self, _: &()) {
        let h = &self.to_loop.handlers;
        // Answer bytes so far: past `HEAVY_ANSWER_BYTES` the task is heavy,
        // and its thread leaves the loop's CPU (see `pool::placement`).
        let mut answered_bytes = 0usize;
        let answers = self
            .batches
            .into_iter()
            .map(|batch| {
                let (key, serial) = (batch.key, batch.serial);
                // A bug in one handler must not cost the other connections
                // of this task their answers; that connection alone is told
                // and closed.
                let answer = catch_unwind(AssertUnwindSafe(|| answer_batch(h, batch)))
                    .unwrap_or_else(|_| {
                        log::error!("connection {serial}: request handler panicked");
                        let mut out = Vec::new();
                        let err = RpcError::new(ErrorCode::Internal, "internal error");
                        rpc::write_error(&mut out, &Value::Null, &err);
                        BatchAnswer {
                            key,
                            serial,
                            segments: vec![
                                Segment::Bytes(out),
                                Segment::Close {
                                    why: Some("request handler panicked".into()),
                                },
                            ],
                            authenticated: None,
                            rest: Vec::new(),
                            tail: Vec::new(),
                            spare: Vec::new(),
                        }
                    });
                let before = answered_bytes;
                answered_bytes += answer.answer_bytes();
                if before < HEAVY_ANSWER_BYTES && answered_bytes >= HEAVY_ANSWER_BYTES {
                    release_cpu();
                }
                answer
            })
            .collect();
        self.to_loop.post(Answered::Batches {
            task: self.id,
            answers,
        });
    }
}
