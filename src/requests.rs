//! Request batches: how request lines travel from the event loop to the
//! request pool and their answers come back.
//!
//! The loop never decodes JSON. Per turn, it takes every connection's
//! complete lines as one [`ConnBatch`] (the bytes, moved, not copied, in the
//! common case) and hands all of the turn's batches to a request worker as
//! one [`RequestTask`]: one channel send and one worker wake-up per turn,
//! however many requests it carries. The worker frames, decodes, answers
//! and encodes every line, then posts the answers back with one
//! `LoopEvent::Answers` and one `mio::Waker` wake-up.
//!
//! Answers stay in request order because a connection has at most one
//! batch in flight: the loop buffers further input until the batch's answers
//! are back (and stops reading from a client that keeps sending meanwhile).

use crate::daemon::{LoopEvent, Shared};
use crate::methods::{self, Command, Outcome};
use crate::pool::Task;
use crate::protocol::codec::{Frame, LineFramer};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The complete request lines one connection sent, to be answered together.
#[derive(Debug)]
pub struct ConnBatch {
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial (guards against a reused key).
    pub serial: u64,
    /// Bytes ending with a newline: one or more request lines.
    pub data: Vec<u8>,
    /// The line length limit in force when the batch was cut.
    pub max_line: usize,
}

/// One piece of a connection's answers, in request order.
#[derive(Debug)]
pub enum Segment {
    /// Encoded answer lines, ready to send.
    Bytes(Vec<u8>),
    /// A command the loop must apply; its answer goes here in the order.
    Command {
        /// The request id to answer with.
        id: Value,
        /// What to do.
        cmd: Command,
    },
    /// A protocol error that ends the connection (after what precedes it).
    Close,
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
}

/// Answers every line of a batch. Runs on a request worker (or, if the
/// request pool cannot take a task, on the loop itself).
pub fn answer_batch(shared: &Shared, batch: ConnBatch) -> BatchAnswer {
    let mut segments = Vec::new();
    let mut out = Vec::with_capacity(256);
    let mut framer = LineFramer::new(batch.max_line);
    loop {
        match framer.next_frame(&batch.data) {
            Frame::Line(line) => match rpc::parse_request(line) {
                Err((id, err)) => rpc::write_error(&mut out, &id, &err),
                Ok(req) => match methods::handle(shared, &req) {
                    Outcome::Answer(Ok(v)) => rpc::write_result(&mut out, &req.id, &v),
                    Outcome::Answer(Err(e)) | Outcome::Encoded(Err(e)) => {
                        rpc::write_error(&mut out, &req.id, &e)
                    }
                    Outcome::Encoded(Ok(raw)) => rpc::write_result(&mut out, &req.id, &raw),
                    Outcome::Command(cmd) => {
                        if !out.is_empty() {
                            segments.push(Segment::Bytes(std::mem::take(&mut out)));
                        }
                        segments.push(Segment::Command { id: req.id, cmd });
                    }
                },
            },
            Frame::Incomplete => break,
            Frame::TooLong => {
                let err = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "invalid request: line longer than max_line_bytes ({})",
                        batch.max_line
                    ),
                );
                rpc::write_error(&mut out, &Value::Null, &err);
                segments.push(Segment::Bytes(std::mem::take(&mut out)));
                segments.push(Segment::Close);
                break;
            }
        }
    }
    if !out.is_empty() {
        segments.push(Segment::Bytes(out));
    }
    BatchAnswer {
        key: batch.key,
        serial: batch.serial,
        segments,
    }
}

/// A turn's worth of batches for one request worker.
pub struct RequestTask {
    /// Identifies the task if it is lost.
    pub id: u64,
    /// The batches, one per connection.
    pub batches: Vec<ConnBatch>,
    /// Where queries read from and answers are posted to.
    pub shared: Arc<Shared>,
}

impl Task for RequestTask {
    fn id(&self) -> u64 {
        self.id
    }

    fn run(self) {
        let shared = &self.shared;
        let answers = self
            .batches
            .into_iter()
            .map(|batch| {
                let (key, serial) = (batch.key, batch.serial);
                // A bug in one handler must not cost the other connections
                // of this task their answers; that connection alone is told
                // and closed.
                catch_unwind(AssertUnwindSafe(|| answer_batch(shared, batch))).unwrap_or_else(
                    |_| {
                        log::error!("connection {serial}: request handler panicked");
                        let mut out = Vec::new();
                        let err = RpcError::new(ErrorCode::Internal, "internal error");
                        rpc::write_error(&mut out, &Value::Null, &err);
                        BatchAnswer {
                            key,
                            serial,
                            segments: vec![Segment::Bytes(out), Segment::Close],
                        }
                    },
                )
            })
            .collect();
        shared.notify(LoopEvent::Answers {
            task: self.id,
            answers,
        });
    }
}
