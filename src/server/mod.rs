//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop, in this order (see `turn.rs`):
//! 1. sleep in `poll` until a socket is ready, a worker wakes us through the
//!    `mio::Waker`, a signal arrives, or the next timer is due (a timerfd
//!    armed at the earliest deadline, see [`alarm::Alarm`]; with
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
//! [`Server`] owns the loop's state and ties together its parts, each with
//! one job and its own state:
//! - `accept.rs`: accepting and refusing connections (`Acceptor`: the
//!   listeners, `max_connections`, the backoff when out of fds);
//! - `reading.rs` and `framing.rs`: reading sockets, and cutting their
//!   input into batches under the connection's limits (framing is plain
//!   functions of a connection's input and its limits);
//! - `outbox.rs`: the request pool, the batches handed to it and the
//!   answers it posts back on its own channel (`Outbox`);
//! - `timers.rs`: each connection's check timer (idle timeout, pre-auth
//!   limit, end of linger) on the loop's own wheel (`ConnTimers`);
//! - `waiters.rs`: requests waiting on runs, and subscribers to run events
//!   (`Waiters`, `Subscribers`);
//! - `follow.rs`: clients following a run's output (`runs.output
//!   {follow}`, `GET /runs/ID/output?follow=1`), bounded like subscribers;
//! - `auth_hold.rs`: the mechanics of authentication (each connection's
//!   credential judged against the token in force, a wrong token's answer
//!   held for the auth delay, connections re-judged after a reload changed
//!   the token); every decision is [`crate::auth`]'s;
//! - `conn/`: one connection, its buffers, its answer order, and its state
//!   as types (`conn/state.rs`);
//! - [`limits::Limits`]: the limits it applies, taken from the config at
//!   start and after every accepted reload;
//! - [`alarm::Alarm`]: the timerfd that wakes the poll at the earliest
//!   deadline.
//!
//! Clients come from the TCP listener (HTTP or JSON-RPC, told apart by the
//! first bytes, see [`crate::http::frame::sniff`]) and the Unix socket
//! (JSON-RPC, trusted); [`listeners`] binds both. Each connection carries
//! its [`Credential`](crate::auth::Credential), checked against the token in force for every
//! batch and every event sent to a subscriber (so a reload that turns auth
//! on, or changes the token, makes connections authenticate again, and
//! holds back subscribers' events until they do). Before a TCP client has
//! authenticated (with auth on), its lines are limited to
//! [`PREAUTH_MAX_LINE`](crate::auth::PREAUTH_MAX_LINE), its buffered
//! input to [`PREAUTH_PAUSE_AT`](crate::auth::PREAUTH_PAUSE_AT), its HTTP
//! bodies to `PREAUTH_MAX_LINE`, and it must authenticate within
//! [`PREAUTH_LIMIT`](crate::auth::PREAUTH_LIMIT) of being accepted (or
//! of the reload that made it a stranger again), or `idle_timeout` if
//! sooner, or is closed. `max_connections` counts TCP clients only: the
//! trusted Unix socket always gets in. Every limit bumps a counter of
//! [`crate::daemon::counters`], and every close is counted by its cause
//! ([`CloseCause`]).
//!
//! Sockets are edge-triggered: a readable socket is read until `WouldBlock`
//! (`Interrupted` is retried, other errors close that connection only), or
//! until the end-of-stream once the poll has said the peer finished
//! sending (that end raises no edge of its own). A
//! client that sends faster than it can be served gets a bounded share per
//! turn and is revisited on the next turn, so it cannot starve the others.

mod accept;
pub mod alarm;
mod auth_hold;
mod backoff;
mod commits;
mod conn;
mod follow;
mod framing;
pub mod limits;
pub mod listeners;
mod outbox;
mod reading;
pub mod stream;
mod streams;
mod timers;
pub mod tls;
mod turn;
mod waiters;

pub use turn::EXIT_POLL_FAILED;

use crate::daemon::counters::{bump, CloseCause};
use crate::daemon::{Daemon, LoopEvent, Phase};
use crate::signals::Signals;
use accept::Acceptor;
use alarm::Alarm;
use auth_hold::AuthWatch;
use conn::Conn;
use crossbeam_channel::Receiver;
use limits::Limits;
use listeners::Listeners;
use mio::{Interest, Poll, Token};
use outbox::Outbox;
use reading::Reads;
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use timers::ConnTimers;
use waiters::{Subscribers, Waiters};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const UNIX_LISTENER: Token = Token(usize::MAX - 4);
const ALARM: Token = Token(usize::MAX - 5);

/// How long a closing connection's unread input is drained before the close.
const LINGER: Duration = Duration::from_secs(1);

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

/// The loop and everything it owns.
pub struct Server {
    poll: Poll,
    /// The connections, by slab key (their token).
    conns: Slab<Conn>,
    /// The listeners, and whom they let in.
    acceptor: Acceptor,
    signals: Signals,
    /// The daemon's events (finished and changed runs).
    events_rx: Receiver<LoopEvent>,
    daemon: Daemon,
    /// The limits in force (rebuilt after every accepted reload).
    limits: Limits,
    /// The config generation `limits` were built from.
    limits_generation: u64,
    /// The connections' check timers and held answers.
    timers: ConnTimers,
    /// The read buffer, and the connections to read again this turn.
    reads: Reads,
    /// The request pool, this turn's batches and the answers coming back.
    outbox: Outbox,
    /// Requests waiting for a run to finish.
    waiters: Waiters,
    /// Answers waiting for the journal to make durable what they
    /// acknowledge.
    commits: commits::CommitQueue,
    /// Connections that called `subscribe`.
    subscribers: Subscribers,
    /// Clients following runs' output.
    followers: follow::Followers,
    /// The token in force the credentials were judged against, and the
    /// wrong tokens' warnings.
    auth: AuthWatch,
    /// During shutdown: when to stop flushing and exit.
    exit_at: Option<Instant>,
    /// Wakes the poll at the next deadline with sub-millisecond precision.
    alarm: Alarm,
    /// Rate limit of the warnings about misbehaving clients, which come in
    /// floods.
    warn_protocol: backoff::LogLimit,
}

impl Server {
    /// The config generation in force.
    pub fn generation(&self) -> u64 {
        self.daemon.shared.board.info.read().generation
    }

    /// Reads the config generation from another thread (the upgrade's).
    pub fn generation_reader(&self) -> Box<dyn Fn() -> u64 + Send> {
        let shared = std::sync::Arc::clone(&self.daemon.shared);
        Box::new(move || shared.board.info.read().generation)
    }

    /// Registers the listeners and the signal socket with `poll`.
    pub fn new(
        poll: Poll,
        listeners: Listeners,
        signals: Signals,
        events_rx: Receiver<LoopEvent>,
        daemon: Daemon,
    ) -> io::Result<Server> {
        let limits = Limits::from_live(&daemon.board().live.read());
        let limits_generation = daemon.board().info.read().generation;
        // One task per loop turn per 32 connections at most: the queue only
        // has to hold what the loop can hand over before workers catch up.
        let outbox = Outbox::start(&daemon.shared, limits.max_connections.max(1024))?;
        let auth = AuthWatch::new(limits.tokens.clone());
        let mut server = Server {
            poll,
            conns: Slab::new(),
            acceptor: Acceptor::new(listeners),
            signals,
            events_rx,
            daemon,
            limits,
            limits_generation,
            timers: ConnTimers::new(),
            reads: Reads::new(),
            outbox,
            waiters: Waiters::default(),
            commits: commits::CommitQueue::default(),
            subscribers: Subscribers::default(),
            followers: follow::Followers::default(),
            auth,
            exit_at: None,
            alarm: Alarm::new(),
            warn_protocol: backoff::LogLimit::default(),
        };
        server.alarm.register(server.poll.registry(), ALARM);
        server.acceptor.register(server.poll.registry())?;
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

    /// Connection `key`, if it is still the one of `serial`.
    fn live_conn(&mut self, key: usize, serial: u64) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.serial == serial)
    }

    /// Writes what connection `key` has ready, as far as its socket takes;
    /// then closes it, or starts its linger, if it is done.
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
        if all_written && conn.body.is_some() {
            self.next_piece(key);
            return;
        }
        if !conn.done() {
            return;
        }
        if conn.incoming.ended() {
            // The client finished and has every answer; or it hung up
            // while we were closing, which counts under why we were.
            let cause = conn.life.cause().unwrap_or(CloseCause::Eof);
            self.close(key, cause);
        } else if conn.life.linger_until().is_none() {
            let until = Instant::now() + LINGER;
            conn.start_linger(until);
            self.arm_check(key, until);
        }
    }

    /// Drops a client whose unread answers pass `max_output_bytes`, so a
    /// client that pipelines without reading cannot grow our memory.
    fn enforce_output_limit(&mut self, key: usize) {
        let max_out = self.limits.max_output_bytes;
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

    fn publish_connections(&self) {
        self.daemon
            .board()
            .connections
            .store(self.conns.len(), Ordering::Relaxed);
    }

    /// Closes a connection now, counting it under `cause`.
    fn close(&mut self, key: usize, cause: CloseCause) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.daemon.board().clients.count_close(cause);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.acceptor.closed(conn.stream.is_unix());
            log::debug!("connection {} closed", conn.serial);
            if conn.subscription.is_some() {
                self.unsubscribe(key, conn.serial);
            }
            if conn.following > 0 {
                self.unfollow_conn(key, conn.serial);
            }
        }
        self.publish_connections();
        if self.daemon.phase != Phase::Running && self.conns.is_empty() {
            log::debug!("all connections closed");
        }
    }
}
