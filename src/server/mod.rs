//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop, in this order:
//! 1. sleep in `poll` until a socket is ready, a worker wakes us through the
//!    `mio::Waker`, a signal arrives, or the next timer is due (a timerfd
//!    armed at the earliest deadline, see [`crate::timer::Alarm`]; with
//!    nothing armed, it sleeps until something happens — an idle daemon does
//!    not tick);
//! 2. accept; read every ready socket into its connection's input and cut
//!    each connection's complete lines into a batch;
//! 3. take worker events: answers to earlier batches (applying the commands
//!    they carry, in request order) and finished runs (answering requests
//!    that wait on them); write answers, one `write` per connection;
//! 4. fire due timers (schedules, idle connections, the shutdown grace end);
//! 5. hand the turn's batches to the request pool as one task (see
//!    [`crate::requests`]), then poll again.
//!
//! The loop itself never decodes JSON: it moves bytes and applies commands.
//!
//! Sockets are edge-triggered: a readable socket is read until `WouldBlock`
//! (`Interrupted` is retried, other errors close that connection only). A
//! client that sends faster than it can be served gets a bounded share per
//! turn and is revisited on the next turn, so it cannot starve the others.

mod conn;

use crate::daemon::{Daemon, LoopEvent, Phase, Reply, Shared};
use crate::methods;
use crate::pool::{LostTaskHook, PoolConfig, SubmitError, WorkerPool};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use crate::requests::{answer_batch, BatchAnswer, ConnBatch, RequestTask, Segment};
use crate::signals::Signals;
use crate::state::run::RunId;
use crate::timer::{Alarm, Clock, TimerWheel};
use conn::{Conn, ReadResult};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const ALARM: Token = Token(usize::MAX - 4);

/// Input bytes handled per connection per loop turn before others get a go.
const READ_BUDGET: usize = 1024 * 1024;
/// Size of the loop's one read buffer, shared by all connections.
const READ_BUF: usize = 64 * 1024;
/// Most request bytes of one connection answered in one batch; bounds how
/// far answers can overshoot `max_output_bytes` before the check.
const MAX_BATCH: usize = 64 * 1024;
/// Connection batches per request task.
const BATCHES_PER_TASK: usize = 32;
/// How long a closing connection's unread input is drained before the close.
const LINGER: Duration = Duration::from_secs(1);
/// How long the loop keeps flushing answers after the last run has finished
/// during shutdown.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// A request waiting for a run to finish.
#[derive(Debug)]
struct Waiter {
    key: usize,
    serial: u64,
    seq: u64,
    id: Value,
}

/// The loop and everything it owns.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    next_serial: u64,
    waiters: HashMap<RunId, Vec<Waiter>>,
    signals: Signals,
    events_rx: Receiver<LoopEvent>,
    daemon: Daemon,
    idle: TimerWheel<(usize, u64)>,
    idle_clock: Clock,
    /// Connections with input left over from their budget.
    again: Vec<usize>,
    /// The read buffer (taken out while in use).
    scratch: Vec<u8>,
    /// This turn's request batches, submitted before the next poll.
    outbox: Vec<ConnBatch>,
    /// The threads that answer requests.
    requests: WorkerPool<RequestTask>,
    /// Request tasks with a worker, and the connections they carry.
    in_flight_tasks: HashMap<u64, Vec<(usize, u64)>>,
    next_task: u64,
    /// During shutdown: when to stop flushing and exit.
    exit_at: Option<Instant>,
    /// Connections that called `subscribe` (slab key, serial).
    subscribers: Vec<(usize, u64)>,
    /// Wakes the poll at the next deadline with sub-millisecond precision.
    alarm: Alarm,
}

/// Threads in the request pool: enough to decode and answer in parallel
/// with the loop's I/O, few enough not to crowd out the job workers.
fn request_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Starts the request pool; a lost task (a panic outside a handler, a dead
/// thread) is reported to the loop, which closes the connections it carried.
fn start_request_pool(
    shared: &Arc<Shared>,
    capacity: usize,
) -> io::Result<WorkerPool<RequestTask>> {
    let hook_shared = Arc::clone(shared);
    let lost: LostTaskHook = Arc::new(move |task, why| {
        hook_shared.notify(LoopEvent::RequestsLost {
            task,
            why: why.to_string(),
        });
    });
    let pool = WorkerPool::start(
        PoolConfig {
            workers: request_workers(),
            queue_capacity: capacity,
            name: "tickd-request".into(),
        },
        lost,
    )?;
    // Set once, here.
    let _ = shared.board.request_pool.set(pool.probe());
    Ok(pool)
}

impl Server {
    /// Registers the listener and the signal socket with `poll`.
    pub fn new(
        poll: Poll,
        listener: Option<TcpListener>,
        signals: Signals,
        events_rx: Receiver<LoopEvent>,
        daemon: Daemon,
    ) -> io::Result<Server> {
        // One task per loop turn per 32 connections at most: the queue only
        // has to hold what the loop can hand over before workers catch up.
        let capacity = daemon.config.daemon.max_connections.max(1024);
        let requests = start_request_pool(&daemon.shared, capacity)?;
        let mut server = Server {
            poll,
            listener,
            conns: Slab::new(),
            next_serial: 0,
            waiters: HashMap::new(),
            signals,
            events_rx,
            daemon,
            idle: TimerWheel::new(),
            idle_clock: Clock::with_origin(Instant::now()),
            again: Vec::new(),
            scratch: vec![0; READ_BUF],
            outbox: Vec::new(),
            requests,
            in_flight_tasks: HashMap::new(),
            next_task: 0,
            exit_at: None,
            subscribers: Vec::new(),
            alarm: Alarm::new(),
        };
        server.alarm.register(server.poll.registry(), ALARM);
        if let Some(l) = server.listener.as_mut() {
            server
                .poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        server.poll.registry().register(
            &mut server.signals.receiver,
            SIGNALS,
            Interest::READABLE,
        )?;
        Ok(server)
    }

    /// The token the daemon's waker must be created with.
    pub fn waker_token() -> Token {
        WAKER
    }

    /// Runs until shutdown completes; returns the process exit code.
    pub fn run(mut self) -> i32 {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed: {e}; shutting down");
                self.daemon.begin_shutdown();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {} // events are drained below every turn
                    SIGNALS => self.on_signals(),
                    ALARM => self.alarm.on_fired(),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.again) {
                self.on_readable(key);
            }
            self.drain_loop_events();
            let now = Instant::now();
            self.daemon.on_timers(now);
            self.expire_idle(now);
            self.drain_loop_events();
            self.submit_outbox();
            if self.daemon.stopping() && self.shutdown_step(now) {
                break;
            }
        }
        let conns = self.conns.len();
        if conns > 0 {
            log::info!("closing {conns} connection(s)");
        }
        if !self.requests.shutdown(Duration::from_secs(1)) {
            log::warn!("some request threads did not stop in time");
        }
        self.daemon.stop_pool();
        log::info!("tickd stopped");
        0
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let idle = self
            .idle
            .next_deadline()
            .and_then(|t| self.idle_clock.instant_of(t));
        let deadline = [self.daemon.next_deadline(), idle, self.exit_at]
            .into_iter()
            .flatten()
            .min();
        self.alarm.poll_timeout(deadline, Instant::now())
    }

    fn on_signals(&mut self) {
        let pending = self.signals.take();
        if pending.reload {
            log::info!("SIGHUP: reloading config");
            // Errors are logged and kept in status by reload itself.
            let _ = self.daemon.reload();
        }
        if pending.shutdown {
            log::info!("SIGTERM/SIGINT received");
            self.daemon.begin_shutdown();
        }
        if pending.reopen_logs {
            crate::logging::reopen();
        }
    }

    /// One step of shutdown; true when the loop may exit.
    fn shutdown_step(&mut self, now: Instant) -> bool {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
            log::info!("stopped accepting connections");
        }
        if !self.daemon.drained() {
            return false;
        }
        let exit_at = *self.exit_at.get_or_insert(now + FINAL_FLUSH);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.conns.get(key).is_some_and(|c| !c.has_pending()) {
                self.close(key);
            }
        }
        self.conns.is_empty() || now >= exit_at
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the listener stays; existing
                    // clients are unaffected. Try again on the next event.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr) {
        let max = self.daemon.config.daemon.max_connections;
        if self.conns.len() >= max {
            log::warn!("connection from {peer} refused: {max} connections open (max_connections)");
            let mut line = Vec::new();
            let err = RpcError::new(
                ErrorCode::Overloaded,
                format!("too many connections (max_connections = {max})"),
            );
            rpc::write_error(&mut line, &Value::Null, &err);
            // Best effort: a fresh socket's buffer takes one short line.
            let _ = stream.write(&line);
            return;
        }
        let _ = stream.set_nodelay(true);
        self.next_serial += 1;
        let serial = self.next_serial;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::warn!("could not register connection from {peer}: {e}");
            return;
        }
        entry.insert(Conn::new(stream, serial));
        self.publish_connections();
        log::debug!("connection {serial} from {peer}");
        self.arm_idle(key, serial, Instant::now());
        // The socket may already hold a request; edge-triggered readiness
        // will report it, but reading now saves a turn.
        self.on_readable(key);
    }

    fn arm_idle(&mut self, key: usize, serial: u64, from: Instant) {
        if let Some(idle) = self.daemon.config.daemon.idle_timeout {
            let tick = self.idle_clock.deadline_tick(from + idle);
            self.idle.insert(tick, (key, serial));
        }
    }

    /// Closes connections idle for longer than `idle_timeout`. Activity does
    /// not touch the timer; when it fires, a connection that was active since
    /// is simply re-armed from its last activity.
    fn expire_idle(&mut self, now: Instant) {
        let mut fired = Vec::new();
        self.idle
            .advance(self.idle_clock.tick_floor(now), &mut fired);
        for (_, (key, serial)) in fired {
            let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
                continue;
            };
            if let Some(until) = conn.linger_until {
                if now >= until {
                    self.close(key);
                }
                continue;
            }
            let Some(idle) = self.daemon.config.daemon.idle_timeout else {
                continue;
            };
            let last = conn.last_active;
            if now.saturating_duration_since(last) >= idle && !conn.has_waiting() {
                log::debug!("connection {serial} idle for {idle:?}; closing");
                self.close(key);
            } else {
                self.arm_idle(key, serial, last.max(now - Duration::from_millis(1)));
            }
        }
    }

    fn on_readable(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.len() < READ_BUF {
            scratch.resize(READ_BUF, 0);
        }
        let max_line = self.daemon.config.daemon.max_line_bytes;
        let pause_at = max_line.saturating_add(READ_BUDGET);
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.read_closed || conn.paused {
                break;
            }
            let result = match conn.read_into(&mut scratch) {
                Ok(r) => r,
                Err(e) => {
                    log::debug!("connection {}: read error: {e}", conn.serial);
                    self.close(key);
                    break;
                }
            };
            match result {
                ReadResult::Data(n) => {
                    if conn.closing {
                        continue; // lingering: discard input
                    }
                    conn.input.extend_from_slice(&scratch[..n]);
                    if conn.input.len() >= pause_at {
                        // A batch is in flight and the client keeps sending:
                        // stop reading until its answers are back.
                        conn.paused = true;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.again.push(key);
                        break;
                    }
                    if n < scratch.len() {
                        // A short read emptied the socket's buffer; data
                        // arriving later raises a new edge. Skipping the
                        // read that would only say WouldBlock saves one
                        // syscall per connection per turn.
                        break;
                    }
                }
                ReadResult::Drained => break,
                ReadResult::Eof => {
                    conn.read_closed = true;
                    break;
                }
            }
        }
        self.scratch = scratch;
        self.cut_batch(key);
        self.flush(key);
    }

    /// Moves a connection's complete lines into this turn's outbox, unless a
    /// batch of it is already in flight.
    fn cut_batch(&mut self, key: usize) {
        let max_line = self.daemon.config.daemon.max_line_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.in_flight || conn.closing {
            return;
        }
        match conn.take_lines(MAX_BATCH) {
            Some(data) => {
                conn.in_flight = true;
                self.outbox.push(ConnBatch {
                    key,
                    serial: conn.serial,
                    data,
                    max_line,
                });
            }
            None if conn.input.len() > max_line => {
                log::warn!(
                    "connection {}: line longer than max_line_bytes ({max_line}); closing",
                    conn.serial
                );
                let err = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("invalid request: line longer than max_line_bytes ({max_line})"),
                );
                conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
                conn.closing = true;
                conn.input = Vec::new();
            }
            None => {}
        }
    }

    /// Hands the turn's batches to the request pool: one task per up to
    /// `BATCHES_PER_TASK` connections, so a busy turn can use several workers.
    fn submit_outbox(&mut self) {
        while !self.outbox.is_empty() {
            let n = self.outbox.len().min(BATCHES_PER_TASK);
            let batches: Vec<ConnBatch> = self.outbox.drain(..n).collect();
            self.next_task += 1;
            let id = self.next_task;
            let conns: Vec<(usize, u64)> = batches.iter().map(|b| (b.key, b.serial)).collect();
            let task = RequestTask {
                id,
                batches,
                shared: Arc::clone(&self.daemon.shared),
            };
            match self.requests.submit(task) {
                Ok(()) => {
                    self.in_flight_tasks.insert(id, conns);
                }
                Err(SubmitError::Full(task) | SubmitError::Stopped(task)) => {
                    // Never drop a request: answer here, on the loop.
                    let answers: Vec<BatchAnswer> = task
                        .batches
                        .into_iter()
                        .map(|b| answer_batch(&self.daemon.shared, b))
                        .collect();
                    self.apply_answers(answers);
                }
            }
        }
    }

    /// Puts a batch's answers in their connections' output, applying the
    /// commands they carry, then cuts the connections' next batches.
    fn apply_answers(&mut self, answers: Vec<BatchAnswer>) {
        for answer in answers {
            let key = answer.key;
            let live = self
                .conns
                .get_mut(key)
                .filter(|c| c.serial == answer.serial)
                .map(|c| c.in_flight = false)
                .is_some();
            for segment in answer.segments {
                match segment {
                    Segment::Bytes(bytes) => {
                        if let Some(conn) = self.live_conn(key, answer.serial) {
                            conn.push_answer(|out| out.extend_from_slice(&bytes));
                        }
                    }
                    Segment::Command { id, cmd } => {
                        // Applied even if the client has gone: the request
                        // was received, and a run it started must not vanish.
                        let reply = methods::execute(&mut self.daemon, cmd);
                        self.deliver(key, answer.serial, id, reply);
                    }
                    Segment::Close => {
                        if let Some(conn) = self.live_conn(key, answer.serial) {
                            log::warn!(
                                "connection {}: line longer than max_line_bytes; closing",
                                conn.serial
                            );
                            conn.closing = true;
                            conn.input = Vec::new();
                        }
                    }
                }
            }
            if !live {
                continue;
            }
            // Write first: the limit is on answers the client has not
            // taken, not on what one batch produced.
            self.flush(key);
            self.enforce_output_limit(key);
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.paused {
                    conn.paused = false;
                    self.again.push(key);
                }
            }
            self.cut_batch(key);
        }
    }

    fn live_conn(&mut self, key: usize, serial: u64) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.serial == serial)
    }

    /// Sends (or parks) the answer to one command.
    fn deliver(&mut self, key: usize, serial: u64, id: Value, reply: Reply) {
        let reply = match reply {
            Reply::WaitRun(run_id) => {
                let run = self.daemon.shared.core.lock().run(run_id).cloned();
                match run {
                    Some(r) if r.state.is_terminal() => Reply::Now(Ok(r.to_json())),
                    Some(_) => {
                        if let Some(conn) = self.live_conn(key, serial) {
                            let seq = conn.take_seq();
                            conn.push_waiting(seq);
                            self.waiters.entry(run_id).or_default().push(Waiter {
                                key,
                                serial,
                                seq,
                                id,
                            });
                        }
                        return;
                    }
                    None => Reply::Now(Err(RpcError::no_run(&run_id.to_string()))),
                }
            }
            Reply::Subscribe(jobs) => {
                let Some(conn) = self.live_conn(key, serial) else {
                    return;
                };
                if conn.subscription.is_none() {
                    self.subscribers.push((key, serial));
                    self.daemon
                        .board()
                        .subscribers
                        .store(self.subscribers.len(), std::sync::atomic::Ordering::Relaxed);
                }
                let Some(conn) = self.live_conn(key, serial) else {
                    return;
                };
                conn.subscription = Some(jobs);
                Reply::Now(Ok(serde_json::json!({ "subscribed": true })))
            }
            now => now,
        };
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        match reply {
            Reply::Now(Ok(v)) => conn.push_answer(|out| rpc::write_result(out, &id, &v)),
            Reply::Now(Err(e)) => conn.push_answer(|out| rpc::write_error(out, &id, &e)),
            Reply::WaitRun(_) | Reply::Subscribe(_) => {}
        }
    }

    /// Drops a client whose unread answers pass `max_output_bytes`, so a
    /// client that pipelines without reading cannot grow our memory.
    fn enforce_output_limit(&mut self, key: usize) {
        let max_out = self.daemon.config.daemon.max_output_bytes;
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.unsent_bytes() > max_out {
            log::warn!(
                "connection {}: {} bytes of answers unread (max_output_bytes = {max_out}); closing",
                conn.serial,
                conn.unsent_bytes()
            );
            self.close(key);
        }
    }

    fn drain_loop_events(&mut self) {
        self.daemon.shared.clear_wake();
        while let Ok(event) = self.events_rx.try_recv() {
            match event {
                LoopEvent::RunChanged(run) => self.broadcast(&run),
                LoopEvent::Finished(run) => {
                    self.broadcast(&run);
                    self.daemon.on_finished(&run);
                    let Some(waiters) = self.waiters.remove(&run.id) else {
                        continue;
                    };
                    let v = run.to_json();
                    for w in waiters {
                        let Some(conn) = self.live_conn(w.key, w.serial) else {
                            continue;
                        };
                        conn.fill_waiting(w.seq, |out| rpc::write_result(out, &w.id, &v));
                        self.flush(w.key);
                    }
                }
                LoopEvent::Answers { task, answers } => {
                    self.in_flight_tasks.remove(&task);
                    self.apply_answers(answers);
                }
                LoopEvent::RequestsLost { task, why } => {
                    let conns = self.in_flight_tasks.remove(&task).unwrap_or_default();
                    for (key, serial) in conns {
                        if let Some(conn) = self.live_conn(key, serial) {
                            log::error!("connection {serial}: requests lost ({why}); closing");
                            let err = RpcError::new(ErrorCode::Internal, "internal error");
                            conn.in_flight = false;
                            conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
                            conn.closing = true;
                            self.flush(key);
                        }
                    }
                }
            }
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let all_written = match conn.flush() {
            Ok(all) => all,
            Err(e) => {
                log::debug!("connection {}: write error: {e}", conn.serial);
                self.close(key);
                return;
            }
        };
        // Ask for writability only while output is stuck: with edge
        // triggering, a socket registered for it all the time reports every
        // ACK that frees buffer space, waking the loop for nothing.
        if all_written == conn.want_write {
            conn.want_write = !all_written;
            let interest = if conn.want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
            {
                log::warn!("connection {}: reregister failed: {e}", conn.serial);
                self.close(key);
                return;
            }
        }
        if !conn.done() {
            return;
        }
        if conn.read_closed {
            self.close(key);
        } else if conn.linger_until.is_none() {
            let until = Instant::now() + LINGER;
            conn.start_linger(until);
            let serial = conn.serial;
            let tick = self.idle_clock.deadline_tick(until);
            self.idle.insert(tick, (key, serial));
        }
    }

    fn publish_connections(&self) {
        self.daemon
            .board()
            .connections
            .store(self.conns.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends a `run.event` notification of `run` to every subscriber that
    /// wants it. One that lets unread events pile up past
    /// `max_output_bytes` is dropped, so a stalled subscriber costs memory
    /// only up to that bound and never slows anything else.
    fn broadcast(&mut self, run: &crate::state::run::Run) {
        if self.subscribers.is_empty() {
            return;
        }
        let mut line = Vec::new();
        rpc::write_notification(&mut line, "run.event", &run.view());
        let targets = self.subscribers.clone();
        for (key, serial) in targets {
            let Some(conn) = self.live_conn(key, serial) else {
                continue;
            };
            if !conn.wants_events_of(run.job.as_deref()) {
                continue;
            }
            conn.push_answer(|out| out.extend_from_slice(&line));
            self.flush(key);
            self.enforce_output_limit(key);
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            log::debug!("connection {} closed", conn.serial);
            if conn.subscription.is_some() {
                self.subscribers
                    .retain(|&(k, s)| (k, s) != (key, conn.serial));
                self.daemon
                    .board()
                    .subscribers
                    .store(self.subscribers.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.publish_connections();
        if self.daemon.phase != Phase::Running && self.conns.is_empty() {
            log::debug!("all connections closed");
        }
    }
}
