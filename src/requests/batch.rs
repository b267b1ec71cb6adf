//! What travels between the event loop and a request worker for one
//! connection: the requests it sent ([`ConnBatch`]) and their answers
//! ([`BatchAnswer`]), made of [`Segment`]s in request order; where a
//! command's answer goes ([`ReplyTo`]); the output budget a batch is
//! answered under ([`OutputBudget`]); and the limits every request obeys.
//!
//! Both answerers, JSON-RPC lines ([`super::lines`]) and HTTP requests
//! ([`super::route`]), build their answers with these, so neither needs
//! the other.

use super::stream::BodyStream;
use crate::auth::{AuthToken, Grant};
use crate::daemon::counters::bump;
use crate::daemon::{self, Shared};
use crate::http::response::{self as http_response, Framing};
use crate::methods::Command;
use crate::protocol::rpc::{self, Id};
use crate::protocol::{ErrorCode, RpcError};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

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
    /// What the connection is granted when the batch was cut (the role
    /// of its token in the tokens in force then, or admin on the Unix
    /// socket and with auth off); `None`: not authenticated.
    pub grant: Option<Grant>,
    /// The client's address and port (`None` on the Unix socket), for the
    /// audit log.
    pub addr: Option<std::net::SocketAddr>,
    /// The client's address (`None` on the Unix socket): wrong tokens are
    /// charged to it first (see [`crate::auth`]).
    pub peer: Option<IpAddr>,
    /// Answer bytes this batch may build: `max_output_bytes` minus the
    /// connection's answers not yet sent when the batch was cut (see
    /// [`OutputBudget`]).
    pub out_budget: usize,
    /// An empty buffer to write the answers into: the connection's spare
    /// from an earlier batch, so a busy connection's answers need no
    /// allocation (see [`BatchAnswer::tail`]).
    pub answer_buf: Vec<u8>,
    /// A streamed answer under way, whose next piece this batch is for
    /// (then `data` is empty; see [`super::stream`]).
    pub stream: Option<Box<BodyStream>>,
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
        /// Status of a successful answer (200, or 202 for a new run). 201
        /// is `PUT`'s: 201 when the answer says `"created": true`, else 200.
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
                let created = v.get("created") == Some(&Value::Bool(true));
                let status = if *ok == 201 && !created { 200 } else { *ok };
                http_response::write_json(out, status, v, *framing)
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
    /// An answer to send only after [`crate::auth::AUTH_DELAY`] (a wrong token);
    /// later answers wait behind it.
    Delayed(Vec<u8>),
    /// The connection ends after what precedes; `why`, if any, is logged
    /// as a warning (a protocol error, not a polite `Connection: close`).
    Close {
        /// The reason an operator should see.
        why: Option<String>,
    },
    /// The rest of an answer sent a piece at a time; always the last
    /// segment. The connection's requests after it wait until its end.
    Stream(Box<BodyStream>),
    /// A chunked answer that goes on with a run's output
    /// (`GET /runs/ID/output?follow=1`), kept by the loop until the run
    /// ends; always the last segment, like `Stream`.
    Follow(Box<super::output::HttpFollow>),
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
                Segment::Command { .. }
                | Segment::Close { .. }
                | Segment::Stream(_)
                | Segment::Follow(_) => 0,
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
                Segment::Command { .. }
                | Segment::Close { .. }
                | Segment::Stream(_)
                | Segment::Follow(_) => 0,
            })
            .sum();
        segments + self.tail.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_each_segment_once_and_the_bytes_not_yet_flushed() {
        let mut budget = OutputBudget::new(10);
        let mut segments = Vec::new();
        let mut out = Vec::new();
        assert!(!budget.spent(&segments, &out), "nothing built yet");
        out.extend_from_slice(b"12345");
        flush_bytes(&mut segments, &mut out);
        assert!(out.is_empty());
        segments.push(Segment::Close { why: None });
        // Asked again and again: the flushed 5 bytes count once.
        for _ in 0..3 {
            assert!(!budget.spent(&segments, &out));
        }
        out.extend_from_slice(b"12345");
        assert!(!budget.spent(&segments, &out), "10 bytes: at the budget");
        segments.push(Segment::Delayed(b"x".to_vec()));
        assert!(budget.spent(&segments, &out), "11 bytes: past it");
    }

    #[test]
    fn flushing_nothing_adds_no_segment() {
        let mut segments = Vec::new();
        flush_bytes(&mut segments, &mut Vec::new());
        assert!(segments.is_empty());
    }
}
