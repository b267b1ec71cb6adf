//! The request pool, from the loop's side: the batches handed to it, and
//! the answers it posts back.
//!
//! Every turn, the batches cut from the connections' input are handed
//! over as tasks of up to [`BATCHES_PER_TASK`] connections (one channel
//! send and one worker wake-up per task, see [`crate::requests`]). A
//! worker posts a task's answers on the pool's own channel, whose
//! receiving end the [`Outbox`] holds ([`crate::requests::ToLoop`]); the
//! loop applies them in request order: encoded answers go to the
//! connection's output, commands are applied to the daemon and answered,
//! a wrong token's answer is held, a close is begun. A task the pool lost
//! (a panic outside a handler, a dead thread) closes the connections it
//! carried, each told with one `-32603` line.

use super::backoff;
use super::{Peer, Server};
use crate::auth::{Credential, FLOOD_CLOSE};
use crate::daemon::counters::CloseCause;
use crate::daemon::Shared;
use crate::methods::{self, Reply};
use crate::pool::{
    CpuBeacon, LostTaskHook, Placement, PoolConfig, SlicePolicy, SubmitError, WorkerPool,
};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use crate::requests::{
    answer_batch, Answered, BatchAnswer, ConnBatch, ReplyTo, RequestTask, Segment, ToLoop,
};
use crossbeam_channel::Receiver;
use serde_json::Value;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection batches per request task.
const BATCHES_PER_TASK: usize = 32;

/// Threads in the request pool: enough to decode and answer in parallel
/// with the loop's I/O, few enough not to crowd out the job workers.
fn request_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// The request pool and what is on its way to and from it.
pub struct Outbox {
    /// The threads that answer requests.
    pool: WorkerPool<RequestTask>,
    /// Their way back to the loop (handed to every task)...
    to_loop: Arc<ToLoop>,
    /// ...and its receiving end: answers and lost tasks.
    answers: Receiver<Answered>,
    /// This turn's request batches, submitted before the next poll.
    batches: Vec<ConnBatch>,
    /// Request tasks with a worker, and the connections they carry.
    in_flight: HashMap<u64, Vec<(usize, u64)>>,
    /// The id of the last task handed over.
    last_task: u64,
    /// The CPU this loop hands batches over on, for the request threads to
    /// follow (see `pool::placement`).
    loop_cpu: Arc<CpuBeacon>,
}

impl Outbox {
    /// Starts the request pool (a queue of `capacity` tasks) and its
    /// channel back to the loop; a lost task is posted on that channel.
    pub fn start(shared: &Arc<Shared>, capacity: usize) -> io::Result<Outbox> {
        let loop_cpu = CpuBeacon::new();
        let (tx, answers) = crossbeam_channel::unbounded();
        let to_loop = Arc::new(ToLoop::new(Arc::clone(shared), tx));
        let hook_to_loop = Arc::clone(&to_loop);
        let lost: LostTaskHook = Arc::new(move |task, why| {
            hook_to_loop.post(Answered::Lost {
                task,
                why: why.to_string(),
            });
        });
        let pool = WorkerPool::start(
            PoolConfig {
                workers: request_workers(),
                queue_capacity: capacity,
                name: "tickd-request".into(),
                slice: SlicePolicy::Short,
                placement: Placement::FollowWhileShort(Arc::clone(&loop_cpu)),
            },
            lost,
        )?;
        // Set once, here.
        let _ = shared.board.request_pool.set(pool.probe());
        Ok(Outbox {
            pool,
            to_loop,
            answers,
            batches: Vec::new(),
            in_flight: HashMap::new(),
            last_task: 0,
            loop_cpu,
        })
    }

    /// The channel the pool posts on (the loop looks at it before it
    /// sleeps).
    pub fn answers(&self) -> &Receiver<Answered> {
        &self.answers
    }

    /// Queues a batch for the end of the turn.
    pub fn push(&mut self, batch: ConnBatch) {
        self.batches.push(batch);
    }

    /// Stops the pool's threads, waiting up to `timeout`; false if some
    /// did not stop in time.
    pub fn shutdown(self, timeout: Duration) -> bool {
        self.pool.shutdown(timeout)
    }
}

impl Server {
    /// Hands the turn's batches to the request pool: one task per up to
    /// `BATCHES_PER_TASK` connections, so a busy turn can use several workers.
    pub(super) fn submit_outbox(&mut self) {
        if !self.outbox.batches.is_empty() {
            self.outbox.loop_cpu.mark();
        }
        while !self.outbox.batches.is_empty() {
            let n = self.outbox.batches.len().min(BATCHES_PER_TASK);
            let batches: Vec<ConnBatch> = self.outbox.batches.drain(..n).collect();
            self.outbox.last_task += 1;
            let id = self.outbox.last_task;
            let conns: Vec<(usize, u64)> = batches.iter().map(|b| (b.key, b.serial)).collect();
            let task = RequestTask {
                id,
                batches,
                to_loop: Arc::clone(&self.outbox.to_loop),
            };
            match self.outbox.pool.submit(task) {
                Ok(()) => {
                    self.outbox.in_flight.insert(id, conns);
                }
                Err(SubmitError::Full(task) | SubmitError::Stopped(task)) => {
                    // Never drop a request: answer here, on the loop.
                    let answers: Vec<BatchAnswer> = task
                        .batches
                        .into_iter()
                        .map(|b| answer_batch(&self.outbox.to_loop.handlers, b))
                        .collect();
                    self.apply_answers(answers);
                }
            }
        }
    }

    /// Takes what the request pool posted; true if there was anything.
    pub(super) fn drain_answers(&mut self) -> bool {
        let mut any = false;
        while let Ok(answered) = self.outbox.answers.try_recv() {
            any = true;
            match answered {
                Answered::Batches { task, answers } => {
                    self.outbox.in_flight.remove(&task);
                    self.apply_answers(answers);
                }
                Answered::Lost { task, why } => self.on_task_lost(task, &why),
            }
        }
        any
    }

    /// A request task was lost: each connection it carried is told and
    /// closed.
    fn on_task_lost(&mut self, task: u64, why: &str) {
        let conns = self.outbox.in_flight.remove(&task).unwrap_or_default();
        for (key, serial) in conns {
            if let Some(conn) = self.live_conn(key, serial) {
                log::error!("connection {serial}: requests lost ({why}); closing");
                let err = RpcError::new(ErrorCode::Internal, "internal error");
                conn.requests.answered();
                conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
                conn.close_after_answers(CloseCause::Error);
                self.flush(key);
            }
        }
    }

    /// Puts a batch's answers in their connections' output, applying the
    /// commands they carry, then cuts the connections' next batches.
    fn apply_answers(&mut self, answers: Vec<BatchAnswer>) {
        for answer in answers {
            let key = answer.key;
            let mut authenticated = false;
            let mut resume = false;
            let live = match self.live_conn(key, answer.serial) {
                Some(c) => {
                    resume = c.requests.answered();
                    if let Some(token) = answer.authenticated {
                        c.credential = Credential::Token(token);
                        c.release_events();
                        authenticated = true;
                    }
                    if !answer.rest.is_empty() {
                        // After a wrong token: the unread requests go back
                        // in front of what arrived since.
                        let mut input = answer.rest;
                        input.extend_from_slice(&c.input);
                        c.input = input;
                    }
                    true
                }
                None => false,
            };
            if authenticated {
                // No longer a stranger: idle_timeout from its last request
                // now, not the pre-auth limit armed at the accept.
                self.arm_idle(key, answer.serial, Instant::now());
            }
            for segment in answer.segments {
                match segment {
                    Segment::Bytes(bytes) => {
                        if let Some(conn) = self.live_conn(key, answer.serial) {
                            conn.push_answer(|out| out.extend_from_slice(&bytes));
                        }
                    }
                    Segment::Command { to, cmd } => {
                        // Applied even if the client has gone: the request
                        // was received, and a run it started must not vanish.
                        let reply = methods::execute(&mut self.daemon, cmd);
                        self.deliver(key, answer.serial, to, reply);
                    }
                    Segment::Delayed(bytes) => self.delay_answer(key, answer.serial, bytes),
                    Segment::Close { why } => self.close_on_request(key, answer.serial, why),
                    Segment::Stream(body) => self.keep_stream(key, answer.serial, body),
                    Segment::Follow(f) => self.follow_http(key, answer.serial, *f),
                }
            }
            if !live {
                continue;
            }
            if let Some(conn) = self.live_conn(key, answer.serial) {
                conn.push_answer_buf(answer.tail);
                conn.recycle_input(answer.spare);
            }
            // Write first: the limit is on answers the client has not
            // taken, not on what one batch produced.
            self.flush(key);
            self.enforce_output_limit(key);
            if resume && self.conns.contains(key) {
                // Reading paused while the batch was out: what waits is
                // read on this turn's second pass.
                self.reads.again.push(key);
            }
            self.cut_batch(key);
        }
    }

    /// A batch's answers end the connection after what precedes; `why`,
    /// if any, is a protocol error, logged (rate-limited).
    fn close_on_request(&mut self, key: usize, serial: u64, why: Option<String>) {
        let cause = match why.as_deref() {
            None => CloseCause::Requested,
            Some(FLOOD_CLOSE) => CloseCause::AuthFlood,
            Some(_) => CloseCause::Protocol,
        };
        if let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) {
            let peer = Peer(conn.peer);
            if let Some(why) = why {
                if let Some(more) = self.warn_protocol.allow(Instant::now()) {
                    log::warn!(
                        "connection {serial} ({peer}): {why}; closing{}",
                        backoff::more(more)
                    );
                }
            }
        }
        if let Some(conn) = self.live_conn(key, serial) {
            conn.close_after_answers(cause);
        }
    }

    /// Sends (or parks) the answer to one command; with `state_dir`, once
    /// the journal has made it durable (see `commits.rs`).
    fn deliver(&mut self, key: usize, serial: u64, to: ReplyTo, reply: Reply) {
        let (to, answer) = match reply {
            Reply::Now(answer) => (to, answer),
            Reply::WaitRun(run_id) => match self.wait_for_run(key, serial, run_id, to) {
                Some(now) => now,
                None => return,
            },
            Reply::WaitReload(ticket) => {
                self.wait_for_reload(key, serial, ticket, to);
                return;
            }
            Reply::Follow(f) => {
                self.follow_rpc(key, serial, to, *f);
                return;
            }
            Reply::Subscribe(jobs) => {
                if !self.subscribe(key, serial, jobs) {
                    return;
                }
                (to, Ok(serde_json::json!({ "subscribed": true })))
            }
        };
        self.answer_durably(key, serial, None, to, answer);
    }
}
