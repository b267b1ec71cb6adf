//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop, in this order:
//! 1. sleep in `poll` until a socket is ready, a worker wakes us through the
//!    `mio::Waker`, a signal arrives, or the next timer is due (a timerfd
//!    armed at the earliest deadline, see [`crate::timer::Alarm`]; with
//!    nothing armed, it sleeps until something happens — an idle daemon does
//!    not tick);
//! 2. accept; read every ready socket into its connection's input and cut
//!    each connection's complete requests (lines, or whole HTTP requests)
//!    into a batch;
//! 3. take worker events: answers to earlier batches (applying the commands
//!    they carry, in request order) and finished runs (answering requests
//!    that wait on them); write answers, one `write` per connection;
//! 4. fire due timers (schedules, idle connections, answers held by the
//!    auth delay, the shutdown grace end);
//! 5. hand the turn's batches to the request pool as one task (see
//!    [`crate::requests`]), then poll again.
//!
//! The loop itself never decodes JSON: it moves bytes and applies commands.
//!
//! Clients come from the TCP listener (HTTP or JSON-RPC, told apart by the
//! first bytes, see [`crate::http::frame::sniff`]) and the Unix socket
//! (JSON-RPC, trusted); [`listeners`] binds both. Each connection carries
//! its [`conn::Credential`], checked against the token in force for every
//! batch and every event sent to a subscriber (so a reload that turns auth
//! on, or changes the token, makes connections authenticate again, and
//! holds back subscribers' events until they do). Before a TCP client has
//! authenticated (with auth on), its lines are limited to
//! [`PREAUTH_MAX_LINE`], its buffered input to [`PREAUTH_PAUSE_AT`], its
//! HTTP bodies to [`PREAUTH_MAX_LINE`], and it must authenticate within
//! `PREAUTH_LIMIT` of being accepted (or of the reload that made it a
//! stranger again), or `idle_timeout` if sooner, or is closed.
//! `max_connections` counts TCP clients only: the trusted Unix socket
//! always gets in. Every limit bumps a counter of
//! [`crate::daemon::counters`], and every close is counted by its cause
//! ([`CloseCause`]).
//!
//! Sockets are edge-triggered: a readable socket is read until `WouldBlock`
//! (`Interrupted` is retried, other errors close that connection only), or
//! until the end-of-stream once the poll has said the peer finished
//! sending (that end raises no edge of its own). A
//! client that sends faster than it can be served gets a bounded share per
//! turn and is revisited on the next turn, so it cannot starve the others.

mod backoff;
mod conn;
pub mod listeners;
pub mod stream;

use crate::daemon::counters::{bump, CloseCause};
use crate::daemon::{self, Daemon, LoopEvent, Phase, Shared};
use crate::http::frame::{self as http_frame, Framed, Sniff};
use crate::http::response::{self as http_response, Framing};
use crate::methods::{self, Handlers, Reply};
use crate::pool::{
    CpuBeacon, LostTaskHook, Placement, PoolConfig, SlicePolicy, SubmitError, WorkerPool,
};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use crate::requests::{
    answer_batch, BatchAnswer, ConnBatch, Proto, ReplyTo, RequestTask, Segment, PREAUTH_MAX_LINE,
};
use crate::signals::Signals;
use crate::state::run::RunId;
use crate::timer::{Alarm, Clock, TimerWheel};
use conn::{Conn, Credential, ReadResult};
use crossbeam_channel::Receiver;
use listeners::{Listeners, UnixSocket};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::Stream;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const UNIX_LISTENER: Token = Token(usize::MAX - 4);
const ALARM: Token = Token(usize::MAX - 5);

/// Input bytes handled per connection per loop turn before others get a go.
const READ_BUDGET: usize = 1024 * 1024;
/// Size of the loop's one read buffer, shared by all connections.
const READ_BUF: usize = 64 * 1024;
/// Most request bytes of one connection answered in one batch. (How far
/// answers can overshoot `max_output_bytes` is bounded by the batch's
/// output budget instead, see [`crate::requests::OutputBudget`].)
const MAX_BATCH: usize = 64 * 1024;
/// Connection batches per request task.
const BATCHES_PER_TASK: usize = 32;
/// How long a closing connection's unread input is drained before the close.
const LINGER: Duration = Duration::from_secs(1);
/// How long the loop keeps flushing answers after the last run has finished
/// during shutdown.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// How long after its accept a TCP connection may stay unauthenticated
/// (when auth is on): a stranger gets a short while to present the token,
/// however busy it keeps the connection.
const PREAUTH_LIMIT: Duration = Duration::from_secs(10);
/// Buffered input at which reading from a client that has not
/// authenticated pauses (twice its line limit).
pub const PREAUTH_PAUSE_AT: usize = 2 * PREAUTH_MAX_LINE;
/// Exit code after the event loop's `poll` failed (EX_OSERR of sysexits).
pub const EXIT_POLL_FAILED: i32 = 71;

/// A request waiting for a run to finish.
#[derive(Debug)]
struct Waiter {
    key: usize,
    serial: u64,
    seq: u64,
    to: ReplyTo,
}

/// A connection timer on the loop's wheel.
#[derive(Debug)]
enum ConnTimer {
    /// Check idleness (or the end of a linger) of a connection.
    Check {
        /// Slab key.
        key: usize,
        /// Serial, against a reused key.
        serial: u64,
        /// Its number (`Conn::check`), against a superseded timer.
        check: u64,
    },
    /// Release an answer held back by the auth delay.
    Release {
        /// Slab key.
        key: usize,
        /// Serial, against a reused key.
        serial: u64,
        /// Its place in the connection's answer order.
        seq: u64,
        /// The answer.
        bytes: Vec<u8>,
    },
}

/// A client's address for log lines: `IP:PORT`, or `unix socket`.
struct Peer(Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unix socket"),
        }
    }
}

/// Which listener an accept is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    Tcp,
    Unix,
}

/// The loop and everything it owns.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    /// The Unix socket (its file is removed when this is dropped).
    unix: Option<UnixSocket>,
    conns: Slab<Conn>,
    next_serial: u64,
    waiters: HashMap<RunId, Vec<Waiter>>,
    signals: Signals,
    events_rx: Receiver<LoopEvent>,
    daemon: Daemon,
    idle: TimerWheel<ConnTimer>,
    idle_clock: Clock,
    /// Connections with input left over from their budget.
    again: Vec<usize>,
    /// The read buffer (taken out while in use).
    scratch: Vec<u8>,
    /// This turn's request batches, submitted before the next poll.
    outbox: Vec<ConnBatch>,
    /// The threads that answer requests.
    requests: WorkerPool<RequestTask>,
    handlers: Arc<Handlers>,
    /// When the current loop turn began (its `poll` returned).
    turn_started: Instant,
    /// The CPU this loop hands batches over on, for the request threads to
    /// follow (see `pool::placement`).
    loop_cpu: Arc<CpuBeacon>,
    /// Request tasks with a worker, and the connections they carry.
    in_flight_tasks: HashMap<u64, Vec<(usize, u64)>>,
    next_task: u64,
    /// During shutdown: when to stop flushing and exit.
    exit_at: Option<Instant>,
    /// Connections that called `subscribe` (slab key, serial).
    subscribers: Vec<(usize, u64)>,
    /// Pauses accepting while the process is out of fds.
    accept_backoff: backoff::AcceptBackoff,
    /// Wakes the poll at the next deadline with sub-millisecond precision.
    alarm: Alarm,
    /// Open TCP connections (those `max_connections` limits).
    tcp_conns: usize,
    /// The token the connections' credentials were last judged against:
    /// when a reload changes it, [`Server::on_auth_change`] runs.
    auth_in_force: Option<crate::config::AuthToken>,
    /// Rate limits of the warnings that come in floods.
    warn_wrong_token: backoff::LogLimit,
    warn_refused: backoff::LogLimit,
    warn_protocol: backoff::LogLimit,
}

/// One `poll`, behind the `server.poll` fail point (whose `return` action
/// fails it, to test that a failed poll ends the daemon with
/// [`EXIT_POLL_FAILED`]).
fn poll_events(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    fail::fail_point!("server.poll", |_| Err(io::Error::other(
        "injected poll failure"
    )));
    poll.poll(events, timeout)
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
    loop_cpu: &Arc<CpuBeacon>,
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
            slice: SlicePolicy::Short,
            placement: Placement::FollowWhileShort(Arc::clone(loop_cpu)),
        },
        lost,
    )?;
    // Set once, here.
    let _ = shared.board.request_pool.set(pool.probe());
    Ok(pool)
}

impl Server {
    /// Registers the listeners and the signal socket with `poll`.
    pub fn new(
        poll: Poll,
        listeners: Listeners,
        signals: Signals,
        events_rx: Receiver<LoopEvent>,
        daemon: Daemon,
    ) -> io::Result<Server> {
        // One task per loop turn per 32 connections at most: the queue only
        // has to hold what the loop can hand over before workers catch up.
        let capacity = daemon.config.daemon.max_connections.max(1024);
        let loop_cpu = CpuBeacon::new();
        let requests = start_request_pool(&daemon.shared, capacity, &loop_cpu)?;
        let auth_in_force = daemon.config.daemon.auth_token.clone();
        let mut server = Server {
            poll,
            listener: listeners.tcp,
            unix: listeners.unix,
            conns: Slab::new(),
            next_serial: 0,
            waiters: HashMap::new(),
            signals,
            events_rx,
            handlers: Arc::new(Handlers::new(Arc::clone(&daemon.shared))),
            daemon,
            idle: TimerWheel::new(),
            idle_clock: Clock::with_origin(Instant::now()),
            again: Vec::new(),
            scratch: vec![0; READ_BUF],
            outbox: Vec::new(),
            requests,
            loop_cpu,
            turn_started: Instant::now(),
            in_flight_tasks: HashMap::new(),
            next_task: 0,
            exit_at: None,
            subscribers: Vec::new(),
            accept_backoff: backoff::AcceptBackoff::default(),
            alarm: Alarm::new(),
            tcp_conns: 0,
            auth_in_force,
            warn_wrong_token: backoff::LogLimit::default(),
            warn_refused: backoff::LogLimit::default(),
            warn_protocol: backoff::LogLimit::default(),
        };
        server.alarm.register(server.poll.registry(), ALARM);
        if let Some(l) = server.listener.as_mut() {
            server
                .poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        if let Some(u) = server.unix.as_mut() {
            server
                .poll
                .registry()
                .register(&mut u.listener, UNIX_LISTENER, Interest::READABLE)?;
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
        crate::sys::mark_latency_sensitive();
        let mut events = Events::with_capacity(1024);
        let mut code = 0;
        loop {
            let mut timeout = self.poll_timeout();
            if self.daemon.shared.loop_sleeping(&self.events_rx) {
                timeout = Some(Duration::ZERO);
            }
            let polled = poll_events(&mut self.poll, &mut events, timeout);
            self.daemon.shared.loop_awake();
            self.turn_started = Instant::now();
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed: {e}; shutting down (exit code {EXIT_POLL_FAILED})");
                code = EXIT_POLL_FAILED;
                self.daemon.begin_shutdown();
                // The events of a failed poll are stale; wait a little
                // rather than spin if poll keeps failing.
                events.clear();
                std::thread::sleep(Duration::from_millis(10));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(ListenerKind::Tcp),
                    UNIX_LISTENER => self.accept(ListenerKind::Unix),
                    WAKER => {} // events are drained below every turn
                    SIGNALS => self.on_signals(),
                    ALARM => self.alarm.on_fired(),
                    Token(key) => {
                        if event.is_read_closed() {
                            // The end-of-stream may have come with the
                            // data: read until it, past a short read.
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.peer_finished = true;
                            }
                        }
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
            if self.accept_backoff.take_due(now) {
                self.accept(ListenerKind::Tcp);
                self.accept(ListenerKind::Unix);
            }
            self.daemon.on_timers(now);
            self.expire_idle(now);
            self.drain_loop_events();
            if self.daemon.config.daemon.auth_token != self.auth_in_force {
                self.on_auth_change();
            }
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
        code
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let idle = self
            .idle
            .next_deadline()
            .and_then(|t| self.idle_clock.instant_of(t));
        let deadline = [
            self.daemon.next_deadline(),
            idle,
            self.exit_at,
            self.accept_backoff.deadline(),
        ]
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
        if let Some(mut u) = self.unix.take() {
            // Dropping it removes the socket file.
            let _ = self.poll.registry().deregister(&mut u.listener);
        }
        if !self.daemon.drained() {
            return false;
        }
        self.answer_kept_waiters();
        let exit_at = *self.exit_at.get_or_insert(now + FINAL_FLUSH);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.conns.get(key).is_some_and(|c| !c.has_pending()) {
                self.close(key, CloseCause::Shutdown);
            }
        }
        self.conns.is_empty() || now >= exit_at
    }

    /// At the end of a drain that keeps queued runs for the restart
    /// (`state_dir`), a request waiting for one of them is answered with
    /// the run as it stands (`queued`) instead of never.
    fn answer_kept_waiters(&mut self) {
        for (run_id, waiters) in std::mem::take(&mut self.waiters) {
            let run = self
                .daemon
                .shared
                .core
                .lock()
                .run(run_id)
                .map(|r| r.to_json());
            let Some(v) = run else {
                continue;
            };
            for w in waiters {
                let Some(conn) = self.live_conn(w.key, w.serial) else {
                    continue;
                };
                conn.fill_waiting(w.seq, |out| w.to.write(out, Ok(&v)));
                self.flush(w.key);
            }
        }
    }

    /// Accepts every pending connection of one listener.
    fn accept(&mut self, kind: ListenerKind) {
        loop {
            if self.accept_backoff.paused(Instant::now()) {
                return;
            }
            let accepted = match (kind, self.listener.as_ref(), self.unix.as_ref()) {
                (ListenerKind::Tcp, Some(l), _) => {
                    backoff::accept(|| l.accept()).map(|(s, peer)| (Stream::Tcp(s), Some(peer)))
                }
                (ListenerKind::Unix, _, Some(u)) => {
                    backoff::accept(|| u.listener.accept()).map(|(s, _)| (Stream::Unix(s), None))
                }
                _ => return,
            };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the listener stays, existing
                    // clients are unaffected; accepting pauses briefly.
                    // Anything else concerned that one client only.
                    if self.accept_backoff.on_error(&e, Instant::now()) {
                        return;
                    }
                }
            }
        }
    }

    /// Takes a new connection, or refuses a TCP one when `max_connections`
    /// TCP connections are open, before allocating anything for it
    /// ([`Server::refuse`]). Unix-socket clients are not counted: the
    /// trusted admin always gets in, however many strangers hold TCP slots.
    fn admit(&mut self, mut stream: Stream, peer: Option<SocketAddr>) {
        let peer = Peer(peer);
        let max = self.daemon.config.daemon.max_connections;
        if !stream.is_unix() && self.tcp_conns >= max {
            self.refuse(&mut stream, &peer, max);
            return;
        }
        bump(&self.daemon.board().clients.connections_accepted);
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
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
        if !stream.is_unix() {
            self.tcp_conns += 1;
        }
        entry.insert(Conn::new(stream, serial, peer.0));
        self.publish_connections();
        log::debug!("connection {serial} from {peer}");
        self.arm_idle(key, serial, Instant::now());
        // The socket may already hold a request; edge-triggered readiness
        // will report it, but reading now saves a turn.
        self.on_readable(key);
    }

    /// Refuses a TCP client at `max_connections`: a 503 if its first bytes
    /// are already in and say HTTP, else one -32002 JSON-RPC line (a client
    /// that has sent nothing yet cannot be told apart, and gets the line).
    fn refuse(&mut self, stream: &mut Stream, peer: &Peer, max: usize) {
        bump(&self.daemon.board().clients.connections_refused);
        if let Some(more) = self.warn_refused.allow(Instant::now()) {
            log::warn!(
                "connection from {peer} refused: {max} connections open (max_connections){}",
                backoff::more(more)
            );
        }
        let err = RpcError::new(
            ErrorCode::Overloaded,
            format!("too many connections (max_connections = {max})"),
        );
        let mut first = [0u8; 8];
        let seen = match stream {
            Stream::Tcp(s) => s.peek(&mut first).unwrap_or(0),
            Stream::Unix(_) => 0,
        };
        let mut answer = Vec::new();
        if http_frame::sniff(&first[..seen]) == Sniff::Http {
            let f = Framing {
                close: true,
                head: false,
            };
            http_response::write_error_status(&mut answer, 503, &err, "", f);
        } else {
            rpc::write_error(&mut answer, &Value::Null, &err);
        }
        // Best effort: a fresh socket's buffer takes one short answer.
        let _ = stream.write(&answer);
    }

    /// Whether `conn` is served under the token in force now.
    fn authed(&self, conn: &Conn) -> bool {
        conn.credential
            .admits(self.daemon.config.daemon.auth_token.as_ref())
    }

    /// When connection `conn` is due to be closed, if it stays as it is: a
    /// stranger (auth on, not authenticated, or authenticated under a token
    /// a reload replaced) [`PREAUTH_LIMIT`] after it became one, however
    /// busy, or `idle_timeout` after it last sent something if that is
    /// sooner; any other `idle_timeout` after it last sent something,
    /// except a subscriber, which gets events until it leaves.
    fn idle_deadline(&self, conn: &Conn) -> Option<Instant> {
        let idle = self
            .daemon
            .config
            .daemon
            .idle_timeout
            .map(|t| conn.last_active + t);
        if !self.authed(conn) {
            let limit = conn.stranger_since + PREAUTH_LIMIT;
            return Some(idle.map_or(limit, |idle| idle.min(limit)));
        }
        if conn.subscription.is_some() {
            return None;
        }
        idle
    }

    /// (Re)arms the check of connection `key` at its [`Server::idle_deadline`]:
    /// at the accept, and whenever that deadline may have moved closer
    /// (it authenticated, a reload changed the token). Any timer armed
    /// before is superseded.
    fn arm_idle(&mut self, key: usize, serial: u64, now: Instant) {
        let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
            return;
        };
        if conn.linger_until.is_some() {
            // Closing: the linger's end is the only check left.
            return;
        }
        let Some(mut due) = self.idle_deadline(conn) else {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.check += 1;
            }
            return;
        };
        if due <= now {
            // Past due but kept (it waits for a run): look again after
            // a whole period, not in a tight loop.
            let period = match self.daemon.config.daemon.idle_timeout {
                Some(t) if self.authed(conn) => t,
                // A stranger past its deadline is only kept while a
                // wrong token's answer is held: at most that long.
                _ => methods::auth::AUTH_DELAY,
            };
            due = now + period.max(Duration::from_millis(1));
        }
        self.arm_check(key, due);
    }

    /// Puts the one check timer of connection `key` at `due`, superseding
    /// the one before (which does nothing when it fires): re-arming never
    /// piles up timers, however often a client authenticates.
    fn arm_check(&mut self, key: usize, due: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.check += 1;
        let timer = ConnTimer::Check {
            key,
            serial: conn.serial,
            check: conn.check,
        };
        let tick = self.idle_clock.deadline_tick(due);
        self.idle.insert(tick, timer);
    }

    /// Closes connections idle for longer than `idle_timeout` (or past the
    /// pre-auth limit). Activity does not touch the timer; when it fires, a
    /// connection that was active since is simply re-armed from its last
    /// activity.
    fn expire_idle(&mut self, now: Instant) {
        let mut fired = Vec::new();
        self.idle
            .advance(self.idle_clock.tick_floor(now), &mut fired);
        for (_, timer) in fired {
            let (key, serial, check) = match timer {
                ConnTimer::Check { key, serial, check } => (key, serial, check),
                ConnTimer::Release {
                    key,
                    serial,
                    seq,
                    bytes,
                } => {
                    if let Some(conn) = self.live_conn(key, serial) {
                        conn.held_bytes -= bytes.len();
                        conn.fill_waiting(seq, |out| out.extend_from_slice(&bytes));
                        // The delay has passed: its later requests may now
                        // be looked at.
                        conn.auth_hold = false;
                        if conn.paused {
                            conn.paused = false;
                            self.again.push(key);
                        }
                        self.flush(key);
                        self.cut_batch(key);
                    }
                    continue;
                }
            };
            let Some(conn) = self
                .conns
                .get(key)
                .filter(|c| c.serial == serial && c.check == check)
            else {
                continue;
            };
            if let Some(until) = conn.linger_until {
                if now >= until {
                    let cause = conn.close_cause.unwrap_or(CloseCause::Requested);
                    self.close(key, cause);
                } else {
                    self.arm_check(key, until);
                }
                continue;
            }
            let Some(due) = self.idle_deadline(conn) else {
                continue;
            };
            if now >= due && !conn.has_waiting() {
                let cause = if self.authed(conn) || now < conn.stranger_since + PREAUTH_LIMIT {
                    log::debug!("connection {serial} idle; closing");
                    CloseCause::Idle
                } else {
                    log::debug!(
                        "connection {serial} ({}) did not authenticate within {PREAUTH_LIMIT:?}; closing",
                        Peer(conn.peer)
                    );
                    CloseCause::AuthTimeout
                };
                bump(&self.daemon.board().clients.idle_closed);
                self.close(key, cause);
            } else {
                self.arm_idle(key, serial, now);
            }
        }
    }

    fn on_readable(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.len() < READ_BUF {
            scratch.resize(READ_BUF, 0);
        }
        let max_line = self.daemon.config.daemon.max_line_bytes;
        let pause_at = match self.conns.get(key) {
            Some(conn) if !self.authed(conn) => PREAUTH_PAUSE_AT,
            _ => max_line.saturating_add(READ_BUDGET),
        };
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.read_closed || conn.paused {
                break;
            }
            let result = match conn.read_into(&mut scratch, self.turn_started) {
                Ok(r) => r,
                Err(e) => {
                    log::debug!("connection {}: read error: {e}", conn.serial);
                    self.close(key, CloseCause::Error);
                    break;
                }
            };
            match result {
                ReadResult::Data(n) => {
                    if conn.closing {
                        // Lingering: the input is discarded, but reading
                        // it still costs this turn's budget.
                    } else {
                        conn.input.extend_from_slice(&scratch[..n]);
                        if conn.input.len() >= pause_at && (conn.in_flight || conn.auth_hold) {
                            // A batch is in flight (or a wrong token's delay
                            // runs) and the client keeps sending: stop
                            // reading until its answers are back.
                            conn.paused = true;
                        }
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.again.push(key);
                        break;
                    }
                    if n < scratch.len() && !conn.peer_finished {
                        // A short read emptied the socket's buffer; data
                        // arriving later raises a new edge. Skipping the
                        // read that would only say WouldBlock saves one
                        // syscall per connection per turn. Not when the
                        // peer has finished sending: its end-of-stream
                        // raises no further edge, so it is read now.
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

    /// Moves a connection's complete requests into this turn's outbox,
    /// unless a batch of it is already in flight. A TCP connection's first
    /// bytes decide whether it speaks HTTP or JSON-RPC.
    fn cut_batch(&mut self, key: usize) {
        let max_line = self.daemon.config.daemon.max_line_bytes;
        let max_out = self.daemon.config.daemon.max_output_bytes;
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let authed = self.authed(conn);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.in_flight || conn.closing || conn.auth_hold {
            return;
        }
        let proto = match conn.proto {
            Some(p) => p,
            None => match http_frame::sniff(&conn.input) {
                Sniff::Http => *conn.proto.insert(Proto::Http),
                Sniff::Rpc => *conn.proto.insert(Proto::Rpc),
                Sniff::Unknown => return,
            },
        };
        if proto == Proto::Http {
            self.cut_http(key, max_line, authed);
            return;
        }
        let limit = if authed {
            max_line
        } else {
            max_line.min(PREAUTH_MAX_LINE)
        };
        match conn.take_lines(MAX_BATCH) {
            Some(data) => {
                conn.in_flight = true;
                self.outbox.push(ConnBatch {
                    key,
                    serial: conn.serial,
                    data,
                    max_line,
                    proto,
                    authed,
                    peer: conn.peer.map(|a| a.ip()),
                    out_budget: max_out.saturating_sub(conn.unsent_bytes()),
                    answer_buf: conn.take_spare_out(),
                });
            }
            None if conn.input.len() > limit => {
                if let Some(more) = self.warn_protocol.allow(Instant::now()) {
                    log::warn!(
                        "connection {} ({}): line longer than max_line_bytes ({limit}); closing{}",
                        conn.serial,
                        Peer(conn.peer),
                        backoff::more(more)
                    );
                }
                bump(&self.daemon.shared.board.clients.lines_too_long);
                let err = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("invalid request: line longer than max_line_bytes ({limit})"),
                );
                conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
                conn.close_after_answers(CloseCause::Protocol);
                // Sent now, then the close: the caller may be done with
                // writing this turn (answers of earlier lines just went).
                self.flush(key);
            }
            None => {}
        }
    }

    /// `cut_batch` for an HTTP connection: whole requests only (head and
    /// body), up to about `MAX_BATCH` bytes of them. A request that cannot
    /// be framed is answered here (400, 411, 413, 431) and ends the
    /// connection, after the requests before it are answered.
    fn cut_http(&mut self, key: usize, max_body: usize, authed: bool) {
        let token = self.daemon.config.daemon.auth_token.as_ref();
        let max_out = self.daemon.config.daemon.max_output_bytes;
        // Before authentication, a request without the right token in its
        // own head gets a small body and no `100 Continue`.
        let carries_token = |headers: &[httparse::Header<'_>]| {
            authed
                || token.is_some_and(|t| {
                    headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("authorization")
                            && methods::auth::header_matches(t, h.value)
                    })
                })
        };
        let body_limit = |headers: &[httparse::Header<'_>]| {
            if carries_token(headers) {
                max_body
            } else {
                max_body.min(PREAUTH_MAX_LINE)
            }
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut end = 0;
        let mut refusal = None;
        while end < conn.input.len() && end < MAX_BATCH {
            match http_frame::request_len_with(&conn.input[end..], body_limit) {
                Framed::Complete(n) => end += n,
                Framed::Partial => break,
                Framed::Error(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        if end > 0 {
            let data = conn.take_front(end);
            conn.in_flight = true;
            conn.continue_sent = false;
            self.outbox.push(ConnBatch {
                key,
                serial: conn.serial,
                data,
                max_line: max_body,
                proto: Proto::Http,
                authed,
                peer: conn.peer.map(|a| a.ip()),
                out_budget: max_out.saturating_sub(conn.unsent_bytes()),
                answer_buf: conn.take_spare_out(),
            });
            return;
        }
        let Some(e) = refusal else {
            if !conn.continue_sent && http_frame::expects_continue_with(&conn.input, carries_token)
            {
                // The head is in and acceptable: let the client send the body.
                conn.continue_sent = true;
                conn.push_answer(|out| out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n"));
                self.flush(key);
            }
            return;
        };
        if let Some(more) = self.warn_protocol.allow(Instant::now()) {
            log::warn!(
                "connection {} ({}): {}; closing{}",
                conn.serial,
                Peer(conn.peer),
                e.message(),
                backoff::more(more)
            );
        }
        let clients = &self.daemon.shared.board.clients;
        match e {
            http_frame::FrameError::HeadTooLarge | http_frame::FrameError::BodyTooLarge(_) => {
                bump(&clients.lines_too_long)
            }
            _ => bump(&clients.http_malformed),
        }
        let code = match e {
            http_frame::FrameError::Malformed(_) => ErrorCode::Parse,
            _ => ErrorCode::InvalidRequest,
        };
        let err = RpcError::new(code, e.message());
        let f = Framing {
            close: true,
            head: false,
        };
        conn.push_answer(|out| http_response::write_error_status(out, e.status(), &err, "", f));
        conn.close_after_answers(CloseCause::Protocol);
        // As in `cut_batch`: sent now, then the close.
        self.flush(key);
    }

    /// Hands the turn's batches to the request pool: one task per up to
    /// `BATCHES_PER_TASK` connections, so a busy turn can use several workers.
    fn submit_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.loop_cpu.mark();
        }
        while !self.outbox.is_empty() {
            let n = self.outbox.len().min(BATCHES_PER_TASK);
            let batches: Vec<ConnBatch> = self.outbox.drain(..n).collect();
            self.next_task += 1;
            let id = self.next_task;
            let conns: Vec<(usize, u64)> = batches.iter().map(|b| (b.key, b.serial)).collect();
            let task = RequestTask {
                id,
                batches,
                handlers: Arc::clone(&self.handlers),
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
                        .map(|b| answer_batch(&self.handlers, b))
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
            let mut authenticated = false;
            let live = match self.live_conn(key, answer.serial) {
                Some(c) => {
                    c.in_flight = false;
                    if let Some(token) = answer.authenticated {
                        c.credential = Credential::Token(token);
                        c.events_held = false;
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
                    Segment::Close { why } => {
                        let cause = match why.as_deref() {
                            None => CloseCause::Requested,
                            Some(methods::auth::FLOOD_CLOSE) => CloseCause::AuthFlood,
                            Some(_) => CloseCause::Protocol,
                        };
                        if let Some(conn) =
                            self.conns.get(key).filter(|c| c.serial == answer.serial)
                        {
                            let (serial, peer) = (conn.serial, Peer(conn.peer));
                            if let Some(why) = why {
                                if let Some(more) = self.warn_protocol.allow(Instant::now()) {
                                    log::warn!(
                                        "connection {serial} ({peer}): {why}; closing{}",
                                        backoff::more(more)
                                    );
                                }
                            }
                        }
                        if let Some(conn) = self.live_conn(key, answer.serial) {
                            conn.close_after_answers(cause);
                        }
                    }
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

    /// Parks an answer for [`crate::methods::auth::AUTH_DELAY`] (a wrong
    /// token): nothing more of the connection is looked at until then
    /// (`auth_hold`), nothing else waits.
    fn delay_answer(&mut self, key: usize, serial: u64, bytes: Vec<u8>) {
        let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
            return;
        };
        let peer = Peer(conn.peer);
        if let Some(more) = self.warn_wrong_token.allow(Instant::now()) {
            log::warn!(
                "connection {serial} ({peer}): wrong auth token; answering in {:?}{}",
                methods::auth::AUTH_DELAY,
                backoff::more(more)
            );
        }
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        conn.auth_hold = true;
        let seq = conn.take_seq();
        conn.push_waiting(seq);
        conn.held_bytes += bytes.len();
        let until = Instant::now() + methods::auth::AUTH_DELAY;
        let tick = self.idle_clock.deadline_tick(until);
        self.idle.insert(
            tick,
            ConnTimer::Release {
                key,
                serial,
                seq,
                bytes,
            },
        );
    }

    /// Sends (or parks) the answer to one command.
    fn deliver(&mut self, key: usize, serial: u64, to: ReplyTo, reply: Reply) {
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
                                to,
                            });
                        }
                        return;
                    }
                    None => Reply::Now(Err(daemon::Error::NoSuchRun(run_id.to_string()))),
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
            Reply::Now(Ok(v)) => conn.push_answer(|out| to.write(out, Ok(&v))),
            Reply::Now(Err(e)) => conn.push_answer(|out| to.write(out, Err(&e))),
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
            bump(&self.daemon.shared.board.clients.output_dropped);
            log::warn!(
                "connection {}: {} bytes of answers unread (max_output_bytes = {max_out}); closing",
                conn.serial,
                conn.unsent_bytes()
            );
            self.close(key, CloseCause::OutputLimit);
        }
    }

    fn drain_loop_events(&mut self) {
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
                        conn.fill_waiting(w.seq, |out| w.to.write(out, Ok(&v)));
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
                            conn.close_after_answers(CloseCause::Error);
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
                self.close(key, CloseCause::Error);
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
                self.close(key, CloseCause::Error);
                return;
            }
        }
        if !conn.done() {
            return;
        }
        if conn.read_closed {
            // The client finished and has every answer; or it hung up
            // while we were closing, which counts under why we were.
            let cause = conn.close_cause.unwrap_or(CloseCause::Eof);
            self.close(key, cause);
        } else if conn.linger_until.is_none() {
            let until = Instant::now() + LINGER;
            conn.start_linger(until);
            self.arm_check(key, until);
        }
    }

    fn publish_connections(&self) {
        self.daemon
            .board()
            .connections
            .store(self.conns.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the events of subscriber `key`, whose credential no longer
    /// counts (a reload changed the token or turned auth on), telling it
    /// once with a `-32001` line (`"id": null`): the connection stays, its
    /// requests get `-32001` as any stranger's, and events flow again once
    /// it authenticates with the token in force. Events meanwhile are not
    /// kept for it.
    fn hold_events(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.events_held {
            return;
        }
        conn.events_held = true;
        let err = RpcError::new(
            ErrorCode::NotAuthenticated,
            "not authenticated: a reload changed the auth token (or turned auth on); no run.event \
             is sent to this connection until it calls auth {\"token\": ...} with the token now \
             in force",
        );
        conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
        self.flush(key);
        self.enforce_output_limit(key);
    }

    /// After a reload changed the token in force: connections whose
    /// credential stopped counting become strangers from now (the pre-auth
    /// limit runs again, see [`Server::idle_deadline`]) and subscribers
    /// among them stop getting events ([`Server::hold_events`]); those
    /// whose credential counts again (auth turned off) are served as
    /// before. Each one's check timer is re-armed for its new deadline.
    fn on_auth_change(&mut self) {
        let old = std::mem::replace(
            &mut self.auth_in_force,
            self.daemon.config.daemon.auth_token.clone(),
        );
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            let (before, after) = (conn.credential.admits(old.as_ref()), self.authed(conn));
            if before == after {
                continue;
            }
            let serial = conn.serial;
            let subscribed = conn.subscription.is_some();
            if let Some(conn) = self.conns.get_mut(key) {
                if after {
                    conn.events_held = false;
                } else {
                    conn.stranger_since = now;
                }
            }
            if !after && subscribed {
                self.hold_events(key);
            }
            self.arm_idle(key, serial, now);
        }
    }

    /// Sends a `run.event` notification of `run` to every subscriber that
    /// wants it (and whose credential counts, see [`Server::hold_events`]). One that lets unread events pile up past
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
            let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
                continue;
            };
            if !conn.wants_events_of(run.job.as_deref()) {
                continue;
            }
            if !self.authed(conn) {
                self.hold_events(key);
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.events_held = false;
            conn.push_answer(|out| out.extend_from_slice(&line));
            self.flush(key);
            self.enforce_output_limit(key);
        }
    }

    /// Closes a connection now, counting it under `cause`.
    fn close(&mut self, key: usize, cause: CloseCause) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.daemon.board().clients.count_close(cause);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if !conn.stream.is_unix() {
                self.tcp_conns -= 1;
            }
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
