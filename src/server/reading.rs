//! Reading: the ready sockets' bytes into their connections' input, and
//! each connection's complete requests cut into a batch ([`super::framing`]).
//!
//! Sockets are edge-triggered: a readable socket is read until
//! `WouldBlock` (`Interrupted` is retried, other errors close that
//! connection only), or until the end-of-stream once the poll has said the
//! peer finished sending (that end raises no edge of its own). A client
//! that sends faster than it can be served gets [`READ_BUDGET`] per turn
//! and is read again on the turn's second pass ([`Reads::again`]), so it
//! cannot starve the others. A connection's input is bounded: while a
//! batch of it is out (or a wrong token's answer held), reading stops once
//! the input reaches `max_line_bytes` + [`READ_BUDGET`] (a stranger's:
//! [`PREAUTH_PAUSE_AT`]), until the answers are back.

use super::backoff;
use super::conn::ReadResult;
use super::framing::{self, Cut};
use super::stream::Stream;
use super::{Peer, Server};
use crate::auth::PREAUTH_PAUSE_AT;
use crate::daemon::counters::{bump, CloseCause};
use crate::http::frame::{self as http_frame, FrameError, Sniff};
use crate::http::response::{self as http_response, Framing};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use crate::requests::ConnBatch;
use serde_json::Value;
use std::io::ErrorKind;
use std::time::Instant;

/// Input bytes handled per connection per loop turn before others get a go.
const READ_BUDGET: usize = 1024 * 1024;
/// Size of the loop's one read buffer, shared by all connections.
const READ_BUF: usize = 64 * 1024;

/// The loop's reading state.
#[derive(Debug)]
pub struct Reads {
    /// Connections with input left over from their budget (or whose
    /// reading resumed): read again on this turn's second pass.
    pub again: Vec<usize>,
    /// The read buffer (taken out while in use).
    scratch: Vec<u8>,
    /// When the current loop turn began (its `poll` returned): the time of
    /// the activity read in it.
    pub turn_started: Instant,
}

impl Reads {
    /// An empty read state with its buffer.
    pub fn new() -> Reads {
        Reads {
            again: Vec::new(),
            scratch: vec![0; READ_BUF],
            turn_started: Instant::now(),
        }
    }
}

impl Server {
    /// Reads what connection `key` has sent, up to its share of the turn
    /// ([`READ_BUDGET`]), into its input; then cuts its next batch and
    /// writes what it has ready.
    pub(super) fn on_readable(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.reads.scratch);
        if scratch.len() < READ_BUF {
            scratch.resize(READ_BUF, 0);
        }
        let max_line = self.limits.max_line_bytes;
        let pause_at = match self.conns.get(key) {
            Some(conn) if !self.authed(conn) => PREAUTH_PAUSE_AT,
            _ => max_line.saturating_add(READ_BUDGET),
        };
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            if conn.incoming.ended() || conn.requests.paused() {
                break;
            }
            let result = match conn.read_into(&mut scratch, self.reads.turn_started) {
                Ok(r) => r,
                Err(e)
                    if matches!(conn.stream, Stream::Tls(_))
                        && e.kind() == ErrorKind::InvalidData =>
                {
                    // The TLS layer refused what it read (a failed
                    // handshake, a bad record); its alert went out.
                    if let Some(more) = self.warn_protocol.allow(Instant::now()) {
                        log::warn!(
                            "connection {} ({}): TLS: {e}; closing{}",
                            conn.serial,
                            Peer(conn.peer),
                            backoff::more(more)
                        );
                    }
                    self.close(key, CloseCause::Tls);
                    break;
                }
                Err(e) => {
                    log::debug!("connection {}: read error: {e}", conn.serial);
                    self.close(key, CloseCause::Error);
                    break;
                }
            };
            match result {
                ReadResult::Data(n) => {
                    if conn.closing() {
                        // Lingering: the input is discarded, but reading
                        // it still costs this turn's budget.
                    } else {
                        conn.input.extend_from_slice(&scratch[..n]);
                        if conn.input.len() >= pause_at {
                            // If a batch is in flight (or a wrong token's
                            // delay runs) and the client keeps sending:
                            // stop reading until its answers are back.
                            conn.requests.pause();
                        }
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.reads.again.push(key);
                        break;
                    }
                    if n < scratch.len() && !conn.incoming.finished() && !conn.stream.holds_input()
                    {
                        // A short read emptied the socket's buffer; data
                        // arriving later raises a new edge. Skipping the
                        // read that would only say WouldBlock saves one
                        // syscall per connection per turn. Not when the
                        // peer has finished sending: its end-of-stream
                        // raises no further edge, so it is read now; nor
                        // when TLS holds input (an end) still to give.
                        break;
                    }
                }
                ReadResult::Drained => break,
                ReadResult::Eof => {
                    conn.incoming.end();
                    break;
                }
                ReadResult::Plaintext(first) => {
                    self.refuse_plaintext(key, &first);
                    break;
                }
            }
        }
        self.reads.scratch = scratch;
        self.cut_batch(key);
        self.flush(key);
    }

    /// A plaintext client on the TLS port: an HTTP one is told in one
    /// plaintext 400 to use https, then closed; any other is closed with
    /// nothing said (a JSON-RPC client would take a line for an answer).
    fn refuse_plaintext(&mut self, key: usize, first: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(more) = self.warn_protocol.allow(Instant::now()) {
            log::warn!(
                "connection {} ({}): plaintext on the TLS port; closing{}",
                conn.serial,
                Peer(conn.peer),
                backoff::more(more)
            );
        }
        if let Stream::Tls(s) = &mut conn.stream {
            s.go_plain();
        }
        if http_frame::sniff(first) != Sniff::Http {
            // Closed gracefully (its input drained, see `start_linger`),
            // so it reads an end, not a reset.
            conn.close_after_answers(CloseCause::Tls);
            return;
        }
        let err = RpcError::new(
            ErrorCode::InvalidRequest,
            "this port speaks TLS only: use https:// (plain HTTP is not served)",
        );
        let f = Framing {
            close: true,
            head: false,
        };
        conn.push_answer(|out| http_response::write_error_status(out, 400, &err, "", f));
        conn.close_after_answers(CloseCause::Tls);
    }

    /// Moves a connection's complete requests into this turn's outbox,
    /// unless a batch of it is already out (see [`framing`]). A TCP
    /// connection's first bytes decide whether it speaks HTTP or JSON-RPC.
    /// A request that cannot be framed is answered here (a line too long;
    /// HTTP 400, 411, 413, 431) and ends the connection, after the
    /// requests before it are answered.
    pub(super) fn cut_batch(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let grant = self.grant(conn);
        let authed = grant.is_some();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.requests.is_idle() || conn.closing() {
            return;
        }
        let Some(proto) = conn.wire.sniff(&conn.input) else {
            return;
        };
        let continue_sent = conn.wire.continue_sent();
        match framing::cut(proto, &mut conn.input, continue_sent, &self.limits, authed) {
            Cut::Batch(data) => {
                conn.requests.send();
                conn.wire.set_continue_sent(false);
                self.outbox.push(ConnBatch {
                    key,
                    serial: conn.serial,
                    data,
                    max_line: self.limits.max_line_bytes,
                    proto,
                    authed,
                    grant,
                    addr: conn.peer,
                    peer: conn.peer.map(|a| a.ip()),
                    out_budget: self.limits.out_budget(conn.unsent_bytes()),
                    answer_buf: conn.take_spare_out(),
                    stream: None,
                });
                return;
            }
            Cut::Partial => return,
            Cut::Continue => {
                // The head is in and acceptable: let the client send the body.
                conn.wire.set_continue_sent(true);
                conn.push_answer(|out| out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n"));
            }
            Cut::LineTooLong { limit } => {
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
            }
            Cut::Refused(e) => {
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
                    FrameError::HeadTooLarge | FrameError::BodyTooLarge(_) => {
                        bump(&clients.lines_too_long)
                    }
                    _ => bump(&clients.http_malformed),
                }
                let code = match e {
                    FrameError::Malformed(_) => ErrorCode::Parse,
                    _ => ErrorCode::InvalidRequest,
                };
                let err = RpcError::new(code, e.message());
                let f = Framing {
                    close: true,
                    head: false,
                };
                conn.push_answer(|out| {
                    http_response::write_error_status(out, e.status(), &err, "", f)
                });
                conn.close_after_answers(CloseCause::Protocol);
            }
        }
        // Sent now (then the close, after a refusal): the caller may be
        // done with writing this turn (answers of earlier requests just
        // went).
        self.flush(key);
    }
}
