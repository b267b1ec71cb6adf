//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop, in this order:
//! 1. sleep in `poll` until a socket is ready, a worker wakes us through the
//!    `mio::Waker`, a signal arrives, or the next timer is due (the timeout is
//!    the time to the earliest deadline; with nothing armed, it sleeps until
//!    something happens — an idle daemon does not tick);
//! 2. accept, read, frame, decode and answer requests; write answers;
//! 3. take worker events (finished runs) and answer requests waiting on them;
//! 4. fire due timers (schedules, idle connections, the shutdown grace end).
//!
//! Sockets are edge-triggered: a readable socket is read until `WouldBlock`
//! (`Interrupted` is retried, other errors close that connection only). A
//! client that sends faster than it can be served gets a bounded share per
//! turn and is revisited on the next turn, so it cannot starve the others.

mod conn;

use crate::daemon::{Daemon, LoopEvent, Phase, Reply};
use crate::methods::{self, Caller};
use crate::protocol::codec::{Frame, LineFramer};
use crate::protocol::rpc::{self, Request};
use crate::protocol::{ErrorCode, RpcError};
use crate::signals::Signals;
use crate::state::run::RunId;
use crate::timer::{Clock, TimerWheel};
use conn::{Conn, ReadResult};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// Input bytes handled per connection per loop turn before others get a go.
const READ_BUDGET: usize = 1024 * 1024;
/// Size of the loop's one read buffer, shared by all connections.
const READ_BUF: usize = 64 * 1024;
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
    /// During shutdown: when to stop flushing and exit.
    exit_at: Option<Instant>,
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
            exit_at: None,
        };
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
            if self.daemon.stopping() && self.shutdown_step(now) {
                break;
            }
        }
        let conns = self.conns.len();
        if conns > 0 {
            log::info!("closing {conns} connection(s)");
        }
        self.daemon.stop_pool();
        log::info!("tickd stopped");
        0
    }

    fn poll_timeout(&self) -> Option<Duration> {
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
            .min()?;
        Some(deadline.saturating_duration_since(Instant::now()))
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
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("could not register connection from {peer}: {e}");
            return;
        }
        entry.insert(Conn::new(stream, serial));
        self.daemon.connections = self.conns.len();
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
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.read_closed {
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
                        continue; // lingering or about to: discard input
                    }
                    self.consume(key, &scratch[..n]);
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.again.push(key);
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
        self.flush(key);
    }

    /// Answers the complete lines in `data` (after any partial line kept
    /// from earlier reads) and keeps the unfinished rest.
    fn consume(&mut self, key: usize, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.partial.is_empty() {
            // Fast path: lines are answered straight from the read buffer.
            let used = self.answer_lines(key, data);
            if let Some(conn) = self.conns.get_mut(key) {
                if !conn.closing {
                    conn.keep_partial(&data[used..]);
                }
            }
        } else {
            let mut buf = std::mem::take(&mut conn.partial);
            buf.extend_from_slice(data);
            let used = self.answer_lines(key, &buf);
            if let Some(conn) = self.conns.get_mut(key) {
                if !conn.closing {
                    conn.keep_partial(&buf[used..]);
                }
            }
        }
        self.enforce_output_limit(key);
    }

    /// Frames and answers every complete line of `buf`; returns the number
    /// of bytes consumed.
    fn answer_lines(&mut self, key: usize, buf: &[u8]) -> usize {
        let max = self.daemon.config.daemon.max_line_bytes;
        let mut framer = LineFramer::new(max);
        loop {
            match framer.next_frame(buf) {
                Frame::Line(line) => {
                    self.on_line(key, line);
                    if self.conns.get(key).is_none_or(|c| c.closing) {
                        break;
                    }
                }
                Frame::Incomplete => break,
                Frame::TooLong => {
                    let Some(conn) = self.conns.get_mut(key) else {
                        break;
                    };
                    log::warn!(
                        "connection {}: line longer than max_line_bytes ({max}); closing",
                        conn.serial
                    );
                    let err = RpcError::new(
                        ErrorCode::InvalidRequest,
                        format!("invalid request: line longer than max_line_bytes ({max})"),
                    );
                    conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
                    conn.closing = true;
                    conn.partial = Vec::new();
                    break;
                }
            }
        }
        framer.consumed()
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

    fn on_line(&mut self, key: usize, line: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let serial = conn.serial;
        let req: Request = match rpc::parse_request(line) {
            Ok(r) => r,
            Err((id, err)) => {
                conn.push_answer(|out| rpc::write_error(out, &id, &err));
                return;
            }
        };
        let reply = methods::handle(&mut self.daemon, &req, Caller { conn: serial });
        self.daemon.connections = self.conns.len();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match reply {
            Reply::Now(Ok(v)) => conn.push_answer(|out| rpc::write_result(out, &req.id, &v)),
            Reply::Now(Err(e)) => conn.push_answer(|out| rpc::write_error(out, &req.id, &e)),
            Reply::WaitRun(run_id) => {
                let run = self.daemon.shared.core.lock().run(run_id).cloned();
                match run {
                    Some(r) if r.state.is_terminal() => {
                        let v = r.to_json();
                        conn.push_answer(|out| rpc::write_result(out, &req.id, &v));
                    }
                    Some(_) => {
                        let seq = conn.take_seq();
                        conn.push_waiting(seq);
                        self.waiters.entry(run_id).or_default().push(Waiter {
                            key,
                            serial,
                            seq,
                            id: req.id,
                        });
                    }
                    None => {
                        let e = RpcError::no_run(&run_id.to_string());
                        conn.push_answer(|out| rpc::write_error(out, &req.id, &e));
                    }
                }
            }
        }
    }

    fn drain_loop_events(&mut self) {
        while let Ok(event) = self.events_rx.try_recv() {
            self.daemon.on_event(&event);
            match &event {
                LoopEvent::Finished(run) => {
                    let Some(waiters) = self.waiters.remove(&run.id) else {
                        continue;
                    };
                    let v = run.to_json();
                    for w in waiters {
                        let Some(conn) = self.conns.get_mut(w.key).filter(|c| c.serial == w.serial)
                        else {
                            continue;
                        };
                        conn.fill_waiting(w.seq, |out| rpc::write_result(out, &w.id, &v));
                        self.flush(w.key);
                    }
                }
            }
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = conn.flush() {
            log::debug!("connection {}: write error: {e}", conn.serial);
            self.close(key);
            return;
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

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            log::debug!("connection {} closed", conn.serial);
        }
        self.daemon.connections = self.conns.len();
        if self.daemon.phase != Phase::Running && self.conns.is_empty() {
            log::debug!("all connections closed");
        }
    }
}
