//! Request batches: how requests (JSON-RPC lines or HTTP requests) travel
//! from the event loop to the request pool and their answers come back.
//!
//! The loop never decodes JSON. Per turn, it takes every connection's
//! complete lines as one [`ConnBatch`] (the bytes, moved, not copied, in the
//! common case) and hands all of the turn's batches to a request worker as
//! one [`RequestTask`]: one channel send and one worker wake-up per turn,
//! however many requests it carries. The worker frames, decodes, answers
//! and encodes every line (into the connection's spare buffer, see
//! [`BatchAnswer::tail`]), then posts the answers back with one
//! `LoopEvent::Answers` and at most one `mio::Waker` wake-up (none while
//! the loop is awake; see [`crate::daemon::wake`]). JSON-RPC lines,
//! JSON-RPC 2.0 batches (a line holding an array of requests) included,
//! are answered in [`lines`]; HTTP requests in [`crate::http::route`].
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
//! Authentication is per connection for JSON-RPC: the batch says whether
//! the connection is authenticated under the token in force when the batch
//! was cut (the loop decides that against the current config, so a reload
//! that turns auth on or changes the token takes effect on the next batch
//! of every connection), the worker answers `auth` and refuses other
//! methods (but `ping`) until then, and the answer says which token the
//! connection authenticated with. A wrong token's answer comes back as
//! [`Segment::Delayed`]; the batch ends there and the bytes after it come
//! back unread ([`BatchAnswer::rest`]), so nothing more of that connection
//! is checked or answered until the loop releases the delayed answer.

mod lines;

use crate::config::AuthToken;
use crate::daemon::counters::bump;
use crate::daemon::{self, LoopEvent, Shared};
use crate::http::response::{self as http_response, Framing};
use crate::methods::{Command, Handlers};
use crate::pool::{release_cpu, Task, HEAVY_ANSWER_BYTES};
use crate::protocol::rpc::{self, Id};
use crate::protocol::{ErrorCode, RpcError};
use serde_json::Value;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Longest request line before a TCP client has authenticated (when auth
/// is on): enough for `auth` with any sane token, and little for a
/// stranger to make the daemon buffer.
pub const PREAUTH_MAX_LINE: usize = 4096;

/// Deepest nesting of arrays and objects accepted in a request (a
/// batch's array counts as one level).
pub const MAX_NESTING: usize = 64;

/// Most requests in one JSON-RPC batch (one line holding an array of
/// requests); a longer batch is refused whole with one `-32600`.
pub const MAX_BATCH_REQUESTS: usize = 1000;

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Newline-delimited JSON-RPC.
    Rpc,
    /// HTTP/1.1 (TCP only).
    Http,
}

/// The complete requests one connection sent, to be answered together.
#[derive(Debug)]
pub struct ConnBatch {
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial (guards against a reused key).
    pub serial: u64,
    /// Bytes of whole requests: lines ending with a newline, or whole HTTP
    /// requests.
    pub data: Vec<u8>,
    /// The line (or HTTP body) length limit in force when the batch was cut.
    pub max_line: usize,
    /// How to read `data`.
    pub proto: Proto,
    /// Whether the connection has authenticated (or needs not).
    pub authed: bool,
    /// The client's address (`None` on the Unix socket): wrong tokens are
    /// charged to it first (see [`crate::methods::auth`]).
    pub peer: Option<IpAddr>,
    /// Answer bytes this batch may build: `max_output_bytes` minus the
    /// connection's answers not yet sent when the batch was cut (see
    /// [`OutputBudget`]).
    pub out_budget: usize,
    /// An empty buffer to write the answers into: the connection's spare
    /// from an earlier batch, so a busy connection's answers need no
    /// allocation (see [`BatchAnswer::tail`]).
    pub answer_buf: Vec<u8>,
}

impl ConnBatch {
    /// The buffer to write this batch's answers into, with room for at
    /// least `min` bytes.
    pub fn take_answer_buf(&mut self, min: usize) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.answer_buf);
        buf.clear();
        buf.reserve(min);
        buf
    }
}

/// Where the answer to a command goes, and in what form.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyTo {
    /// A JSON-RPC response line with this id.
    Rpc(Id),
    /// A member of a batch's answer array: the response without its line
    /// end (the separators around it are sent apart).
    Member(Id),
    /// Nobody: a notification in a batch (JSON-RPC answers none).
    Nobody,
    /// An HTTP response with status `ok` on success.
    Http {
        /// Status of a successful answer (200, or 202 for a new run).
        ok: u16,
        /// Connection handling of the response.
        framing: Framing,
    },
}

impl ReplyTo {
    /// Appends the answer to `out`.
    pub fn write(&self, out: &mut Vec<u8>, answer: Result<&Value, &daemon::Error>) {
        let answer = answer.map_err(RpcError::from);
        let answer = answer.as_ref();
        match (self, answer) {
            (ReplyTo::Rpc(id), Ok(v)) => rpc::write_result(out, id, v),
            (ReplyTo::Rpc(id), Err(e)) => rpc::write_error(out, id, e),
            (ReplyTo::Member(id), Ok(v)) => rpc::put_result(out, id, v),
            (ReplyTo::Member(id), Err(e)) => rpc::put_error(out, id, e),
            (ReplyTo::Nobody, _) => {}
            (ReplyTo::Http { ok, framing }, Ok(v)) => {
                http_response::write_json(out, *ok, v, *framing)
            }
            (ReplyTo::Http { framing, .. }, Err(e)) => {
                http_response::write_error(out, e, "", *framing)
            }
        }
    }
}

/// One piece of a connection's answers, in request order.
#[derive(Debug)]
pub enum Segment {
    /// Encoded answers, ready to send.
    Bytes(Vec<u8>),
    /// A command the loop must apply; its answer goes here in the order.
    Command {
        /// Where and how to answer.
        to: ReplyTo,
        /// What to do.
        cmd: Command,
    },
    /// An answer to send only after [`auth::AUTH_DELAY`] (a wrong token);
    /// later answers wait behind it.
    Delayed(Vec<u8>),
    /// The connection ends after what precedes; `why`, if any, is logged
    /// as a warning (a protocol error, not a polite `Connection: close`).
    Close {
        /// The reason an operator should see.
        why: Option<String>,
    },
}

/// The answers to one [`ConnBatch`].
#[derive(Debug)]
pub struct BatchAnswer {
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial.
    pub serial: u64,
    /// Answers in request order.
    pub segments: Vec<Segment>,
    /// The token this batch authenticated the connection with (a right
    /// `auth`, or an HTTP request with the right `Authorization`), if it
    /// was not authenticated before.
    pub authenticated: Option<AuthToken>,
    /// Bytes of the batch left unread after a wrong token: they go back to
    /// the front of the connection's input and wait for the delay.
    pub rest: Vec<u8>,
    /// Encoded answers after the last segment: in the common case (no
    /// command, no delay, no close) all of them. The loop sends this
    /// buffer itself when the connection has nothing else to send, and
    /// keeps the other one for the next batch: the two circulate between
    /// the loop and the workers instead of being allocated per batch.
    pub tail: Vec<u8>,
    /// The batch's request bytes, done with: the loop reuses the buffer
    /// for the connection's next input.
    pub spare: Vec<u8>,
}

/// Answers every request of a batch. Runs on a request worker (or, if the
/// request pool cannot take a task, on the loop itself).
pub fn answer_batch(h: &Handlers, batch: ConnBatch) -> BatchAnswer {
    match batch.proto {
        Proto::Rpc => lines::answer_lines(h, batch),
        Proto::Http => crate::http::route::answer_batch(h, batch),
    }
}

/// The `-32600` answer to a request nested deeper than [`MAX_NESTING`].
pub fn too_deep(shared: &Shared) -> RpcError {
    bump(&shared.board.clients.nesting_too_deep);
    RpcError::new(
        ErrorCode::InvalidRequest,
        format!("invalid request: JSON nested deeper than {MAX_NESTING} levels"),
    )
}

/// How far a worker got with a batch.
#[derive(Debug, Default)]
pub struct Done {
    /// Requests answered (counted once per batch).
    pub answered: u64,
    /// See [`BatchAnswer::authenticated`].
    pub authenticated: Option<AuthToken>,
    /// See [`BatchAnswer::rest`].
    pub rest: Vec<u8>,
}

/// Moves the answers written so far into `segments`, keeping their order
/// (before a command, a delayed answer or a close).
pub fn flush_bytes(segments: &mut Vec<Segment>, out: &mut Vec<u8>) {
    if !out.is_empty() {
        segments.push(Segment::Bytes(std::mem::take(out)));
    }
}

/// What a batch may still build of answers before its connection's
/// unread answers would pass `max_output_bytes` (see the module doc).
/// Looked at before each answer is built: the first answer of a batch is
/// always built, so a batch makes progress however little room is left,
/// and the answers built overshoot the budget by at most one answer.
#[derive(Debug)]
pub struct OutputBudget {
    left: usize,
    /// Segments already counted in `segment_bytes`.
    counted: usize,
    segment_bytes: usize,
}

impl OutputBudget {
    /// A budget of `left` bytes ([`ConnBatch::out_budget`]).
    pub fn new(left: usize) -> Self {
        OutputBudget {
            left,
            counted: 0,
            segment_bytes: 0,
        }
    }

    /// Whether the answers built so far (`segments`, then `out`) exceed
    /// the budget: then no further answer may be built. Counts each
    /// segment once, however often it is asked.
    pub fn spent(&mut self, segments: &[Segment], out: &[u8]) -> bool {
        for s in segments.get(self.counted..).unwrap_or_default() {
            self.segment_bytes += match s {
                Segment::Bytes(b) | Segment::Delayed(b) => b.len(),
                Segment::Command { .. } | Segment::Close { .. } => 0,
            };
        }
        self.counted = segments.len();
        self.segment_bytes + out.len() > self.left
    }
}

/// Wraps up a batch's answers: the segments, the bytes after them, the
/// request buffer for reuse, and the requests answered counted (one atomic
/// add per batch, not per request).
pub fn finish_batch(
    shared: &Shared,
    batch: ConnBatch,
    segments: Vec<Segment>,
    out: Vec<u8>,
    done: Done,
) -> BatchAnswer {
    shared
        .board
        .clients
        .requests
        .fetch_add(done.answered, Ordering::Relaxed);
    BatchAnswer {
        key: batch.key,
        serial: batch.serial,
        segments,
        authenticated: done.authenticated,
        rest: done.rest,
        tail: out,
        spare: batch.data,
    }
}

impl BatchAnswer {
    /// Bytes of encoded answers it carries.
    pub fn answer_bytes(&self) -> usize {
        let segments: usize = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) | Segment::Delayed(b) => b.len(),
                Segment::Command { .. } | Segment::Close { .. } => 0,
            })
            .sum();
        segments + self.tail.len()
    }
}

/// A turn's worth of batches for one request worker.
pub struct RequestTask {
    /// Identifies the task if it is lost.
    pub id: u64,
    /// The batches, one per connection.
    pub batches: Vec<ConnBatch>,
    /// Where queries are answered from and answers are posted to.
    pub handlers: Arc<Handlers>,
}

impl Task for RequestTask {
    fn id(&self) -> u64 {
        self.id
    }

    fn run(self) {
        let h = &*self.handlers;
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
        h.shared.notify(LoopEvent::Answers {
            task: self.id,
            answers,
        });
    }
}
