//! One client connection: its buffers, the order of its answers, and its
//! state.
//!
//! Answers must leave in request order even though some (`jobs.run` with
//! `wait: true`) are only known when a run finishes. Each request takes a
//! sequence number; an answer that is ready while an earlier one is still
//! waiting is parked in `parked` until everything before it is ready. In the
//! common case nothing waits, and answers are serialized straight into the
//! output buffer with no extra allocation.
//!
//! What state the connection is in (closing, a batch in flight, ...) is
//! told by the types of [`state`], one per question.

pub mod state;

use super::stream::Stream;
use crate::auth::Credential;
use crate::daemon::counters::CloseCause;
use crate::requests::BodyStream;
use state::{Incoming, Life, Requests, Subscription, Wire};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

/// Largest buffer a connection keeps for reuse between batches: enough
/// for everyday requests and answers, little for ten thousand idle clients.
const SPARE_MAX: usize = 4096;

/// A place in the answer order.
#[derive(Debug)]
enum Slot {
    /// The answer to request `seq` is not known yet.
    Waiting(u64),
    /// Answer bytes (one or more lines) ready to go once everything before is.
    Ready(Vec<u8>),
}

/// What one `read` call found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// The socket has no more data for now.
    Drained,
    /// The peer closed its writing side.
    Eof,
    /// A plaintext client on the TLS port; its first bytes.
    Plaintext(Vec<u8>),
}

/// A client connection and its state.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: Stream,
    /// What it speaks (known from the start on the Unix socket).
    pub wire: Wire,
    /// Trusted, authenticated with a token, or neither; checked against
    /// the token in force for every batch ([`Credential::admits`]).
    pub credential: Credential,
    /// When it last became a stranger: its accept, or the reload that made
    /// its credential stop counting. A stranger must authenticate within
    /// the pre-auth limit of that.
    pub stranger_since: Instant,
    /// The number of its one live check timer (idleness, pre-auth limit,
    /// linger end); a timer with another number was superseded and does
    /// nothing when it fires.
    pub check: u64,
    /// The TCP peer (None for Unix clients), for log lines.
    pub peer: Option<std::net::SocketAddr>,
    /// Distinguishes this connection from a later one reusing its slab slot.
    pub serial: u64,
    /// Bytes read and not yet sent for answering: an unfinished last line,
    /// or lines that arrived while a batch was in flight. Empty (and with
    /// no capacity) on an idle connection.
    pub input: Vec<u8>,
    /// A batch out with a request worker, or an answer held by the auth
    /// delay, or neither; and whether reading is paused meanwhile.
    pub requests: Requests,
    /// Bytes ready to write; `out[written..]` is still to send.
    out: Vec<u8>,
    /// An empty buffer for the next batch's answers (see
    /// [`Conn::push_answer_buf`]).
    spare_out: Vec<u8>,
    written: usize,
    /// Answers held back behind a waiting one.
    parked: VecDeque<Slot>,
    /// Sequence number for the next request.
    next_seq: u64,
    /// Bytes held in `parked`.
    parked_bytes: usize,
    /// Open, closing once its answers are sent ([`Conn::close_after_answers`],
    /// which says why), or lingering ([`Conn::start_linger`]).
    pub life: Life,
    /// Whether the peer may send more.
    pub incoming: Incoming,
    /// Last time the peer sent something: the start of the loop turn that
    /// read it, so up to one turn early (and, for a connection accepted in
    /// that turn, a little before `accepted_at`); idle timeouts are
    /// seconds to minutes, so this never matters.
    pub last_active: Instant,
    /// Registered for writability because output is waiting for room.
    pub want_write: bool,
    /// Set by `subscribe`: which runs' events this client receives, and
    /// whether they are held.
    pub subscription: Option<Subscription>,
    /// The rest of an answer sent a piece at a time, waiting for the
    /// output to drain (its connection counts as having a batch in flight
    /// until it ends; see `crate::requests::stream`).
    pub body: Option<Box<BodyStream>>,
    /// Runs whose output it follows (`runs.output {follow}`, or one
    /// `GET /runs/ID/output?follow=1`); while any, it is not idle.
    pub following: usize,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(stream: Stream, serial: u64, peer: Option<std::net::SocketAddr>) -> Self {
        let credential = Credential::at_accept(stream.is_unix());
        Conn {
            wire: if stream.is_unix() {
                Wire::Rpc
            } else {
                Wire::Unknown
            },
            credential,
            stranger_since: Instant::now(),
            check: 0,
            peer,
            stream,
            serial,
            input: Vec::new(),
            requests: Requests::Idle,
            out: Vec::new(),
            spare_out: Vec::new(),
            written: 0,
            parked: VecDeque::new(),
            next_seq: 0,
            parked_bytes: 0,
            life: Life::Open,
            incoming: Incoming::Open,
            last_active: Instant::now(),
            want_write: false,
            subscription: None,
            body: None,
            following: 0,
        }
    }

    /// One `read` into `buf`, retrying on `Interrupted`; data counts as
    /// activity at `now` (the loop's turn: idle timeouts are minutes, and a
    /// clock read per request is not free).
    pub fn read_into(&mut self, buf: &mut [u8], now: Instant) -> io::Result<ReadResult> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Ok(ReadResult::Eof),
                Ok(n) => {
                    self.last_active = now;
                    return Ok(ReadResult::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadResult::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return match super::tls::plaintext(&e) {
                        Some(p) => Ok(ReadResult::Plaintext(p.first.clone())),
                        None => Err(e),
                    }
                }
            }
        }
    }

    /// Takes the sequence number of the next request.
    pub fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Appends a ready answer in order. `write` serializes it into a buffer.
    pub fn push_answer(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.parked.is_empty() {
            write(&mut self.out);
        } else {
            let mut buf = Vec::new();
            write(&mut buf);
            self.parked_bytes += buf.len();
            self.parked.push_back(Slot::Ready(buf));
        }
    }

    /// Appends a batch's encoded answers in order. When nothing else is
    /// waiting to be sent, `bytes` becomes the output buffer (no copy) and
    /// the old, empty output buffer is kept for the next batch; otherwise
    /// the bytes are copied and `bytes` is kept.
    pub fn push_answer_buf(&mut self, mut bytes: Vec<u8>) {
        if bytes.is_empty() {
            // Nothing to send; still worth keeping as the next batch's buffer.
        } else if self.parked.is_empty() && self.out.is_empty() && self.written == 0 {
            std::mem::swap(&mut self.out, &mut bytes);
        } else {
            self.push_answer(|out| out.extend_from_slice(&bytes));
        }
        bytes.clear();
        if self.spare_out.capacity() == 0 && bytes.capacity() <= SPARE_MAX {
            self.spare_out = bytes;
        }
    }

    /// The buffer for the next batch's answers (empty; possibly with no
    /// capacity).
    pub fn take_spare_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.spare_out)
    }

    /// Takes a batch's request buffer back as the input buffer, when the
    /// connection has received nothing since the batch was cut.
    pub fn recycle_input(&mut self, mut buf: Vec<u8>) {
        if self.input.capacity() == 0 && buf.capacity() <= SPARE_MAX {
            buf.clear();
            self.input = buf;
        }
    }

    /// Reserves the place of an answer that will come later.
    pub fn push_waiting(&mut self, seq: u64) {
        self.parked.push_back(Slot::Waiting(seq));
    }

    /// Fills in a waiting answer and releases every answer now in order.
    /// Returns false if no such answer was waiting.
    pub fn fill_waiting(&mut self, seq: u64, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let Some(slot) = self
            .parked
            .iter_mut()
            .find(|s| matches!(s, Slot::Waiting(q) if *q == seq))
        else {
            return false;
        };
        let mut buf = Vec::new();
        write(&mut buf);
        self.parked_bytes += buf.len();
        *slot = Slot::Ready(buf);
        while let Some(Slot::Ready(_)) = self.parked.front() {
            if let Some(Slot::Ready(bytes)) = self.parked.pop_front() {
                self.parked_bytes -= bytes.len();
                self.out.extend_from_slice(&bytes);
            }
        }
        true
    }

    /// Whether this client subscribed to the events of `job`'s runs.
    pub fn wants_events_of(&self, job: Option<&str>) -> bool {
        self.subscription.as_ref().is_some_and(|s| s.wants(job))
    }

    /// Subscribes it to the runs of `jobs` (None: all), replacing the
    /// choice of an earlier `subscribe`. True if it was no subscriber.
    pub fn subscribe(&mut self, jobs: Option<Vec<String>>) -> bool {
        match &mut self.subscription {
            Some(s) => {
                s.jobs = jobs;
                false
            }
            None => {
                self.subscription = Some(Subscription::new(jobs));
                true
            }
        }
    }

    /// Holds a subscriber's events (its credential stopped counting).
    /// True if they were flowing until now: the client is to be told.
    pub fn hold_events(&mut self) -> bool {
        match &mut self.subscription {
            Some(s) if !s.held => {
                s.held = true;
                true
            }
            _ => false,
        }
    }

    /// Lets a subscriber's events flow again (it authenticated).
    pub fn release_events(&mut self) {
        if let Some(s) = &mut self.subscription {
            s.held = false;
        }
    }

    /// Whether it is closing (or lingering).
    pub fn closing(&self) -> bool {
        !self.life.is_open()
    }

    /// Answers still owed to the client (being worked on, waiting or unsent).
    pub fn has_pending(&self) -> bool {
        self.requests.in_flight()
            || !self.parked.is_empty()
            || self.written < self.out.len()
            || self.stream.wants_write()
    }

    /// Whether any answer is still being worked on (a batch with a
    /// request worker, or a request waiting for a run to finish).
    pub fn has_waiting(&self) -> bool {
        self.requests.in_flight() || self.parked.iter().any(|s| matches!(s, Slot::Waiting(_)))
    }

    /// Bytes produced for the client and not yet accepted by its socket
    /// (including answers held back by the auth delay).
    pub fn unsent_bytes(&self) -> usize {
        self.out.len() - self.written + self.parked_bytes + self.requests.held_bytes()
    }

    /// Writes as much as the socket takes. Returns true when everything
    /// ready has been written (with TLS: and sent, the handshake's own
    /// messages included).
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let sent = self.stream.send_buffered()?;
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            // Give memory back after a burst; keep a small buffer for reuse.
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
            Ok(sent)
        } else {
            if self.written > 64 * 1024 && self.written * 2 > self.out.len() {
                self.out.drain(..self.written);
                self.written = 0;
            }
            Ok(false)
        }
    }

    /// True when everything owed has been sent and the connection should
    /// end: it was asked to close (or the peer finished sending).
    pub fn done(&self) -> bool {
        (self.closing() || self.incoming.ended()) && !self.has_pending()
    }

    /// Closes once every answer queued is sent, for `cause` (the first
    /// cause given counts). Unread input is dropped: nothing more is
    /// answered.
    pub fn close_after_answers(&mut self, cause: CloseCause) {
        self.life.close_after_answers(cause);
        self.input = Vec::new();
    }

    /// Starts a graceful close: no more writes from us (the peer sees EOF
    /// after our last answer). Input still arriving is read and discarded
    /// until the peer closes or the linger ends, because closing a socket
    /// with unread input makes the kernel send a reset, which can destroy
    /// the answers we just wrote (an error line explaining the close).
    pub fn start_linger(&mut self, until: Instant) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.life.linger(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_conn() -> (Conn, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("nonblocking");
        let conn = Conn::new(Stream::Unix(mio::net::UnixStream::from_std(ours)), 1, None);
        (conn, theirs)
    }

    fn read_all(peer: &mut std::os::unix::net::UnixStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        peer.read_exact(&mut buf).expect("answers arrive");
        buf
    }

    #[test]
    fn answer_buffers_circulate_without_copies_and_keep_order() {
        let (mut conn, mut peer) = unix_conn();
        let first = b"{\"result\":1}\n".to_vec();
        let first_ptr = first.as_ptr();
        conn.push_answer_buf(first);
        assert_eq!(conn.out.as_ptr(), first_ptr, "taken over, not copied");
        assert!(
            conn.take_spare_out().capacity() == 0,
            "the old buffer had none"
        );
        assert!(conn.flush().expect("flush"));
        assert_eq!(read_all(&mut peer, 13), b"{\"result\":1}\n");

        // Unsent bytes in the way: copied behind them, buffer kept as spare.
        conn.push_answer(|out| out.extend_from_slice(b"a\n"));
        let second = b"b\n".to_vec();
        let second_ptr = second.as_ptr();
        conn.push_answer_buf(second);
        let spare = conn.take_spare_out();
        assert_eq!(spare.as_ptr(), second_ptr);
        assert!(spare.is_empty());
        assert!(conn.flush().expect("flush"));
        assert_eq!(read_all(&mut peer, 4), b"a\nb\n");

        // Behind a waiting answer: parked in order, released by it.
        let seq = conn.take_seq();
        conn.push_waiting(seq);
        conn.push_answer_buf(b"later\n".to_vec());
        assert!(conn.flush().expect("flush"), "nothing may leave yet");
        assert!(conn.fill_waiting(seq, |out| out.extend_from_slice(b"first\n")));
        assert!(conn.flush().expect("flush"));
        assert_eq!(read_all(&mut peer, 12), b"first\nlater\n");
    }

    #[test]
    fn big_buffers_are_not_kept_and_input_is_recycled_only_when_empty() {
        let (mut conn, _peer) = unix_conn();
        conn.push_answer(|out| out.push(b'x'));
        conn.push_answer_buf(Vec::with_capacity(SPARE_MAX + 1));
        assert_eq!(conn.take_spare_out().capacity(), 0, "too big to keep");

        let buf = Vec::with_capacity(64);
        let ptr = buf.as_ptr();
        conn.recycle_input(buf);
        assert_eq!(conn.input.as_ptr(), ptr, "reused as the input buffer");
        conn.input.extend_from_slice(b"partial");
        conn.recycle_input(Vec::with_capacity(64));
        assert_eq!(conn.input, b"partial", "input already holds bytes");
        let mut fresh = unix_conn().0;
        fresh.recycle_input(Vec::with_capacity(SPARE_MAX + 1));
        assert_eq!(fresh.input.capacity(), 0, "too big to keep");
    }

    #[test]
    fn done_once_closing_or_ended_with_nothing_owed() {
        let (mut conn, _peer) = unix_conn();
        assert!(!conn.done() && !conn.closing());
        conn.requests.send();
        conn.incoming.end();
        assert!(conn.has_pending() && conn.has_waiting());
        assert!(!conn.done(), "a batch is out");
        conn.requests.answered();
        assert!(conn.done(), "the peer ended and has every answer");

        let (mut conn, _peer) = unix_conn();
        conn.input.extend_from_slice(b"unread");
        conn.close_after_answers(CloseCause::Protocol);
        assert!(conn.closing() && conn.input.is_empty(), "input dropped");
        conn.requests.hold(10);
        let seq = conn.take_seq();
        conn.push_waiting(seq);
        assert_eq!(conn.unsent_bytes(), 10, "a held answer counts as unsent");
        assert!(!conn.done());
        assert!(conn.fill_waiting(seq, |out| out.extend_from_slice(b"held\n")));
        conn.requests.release();
        assert!(!conn.done(), "written first");
        assert!(conn.flush().expect("flush"));
        assert!(conn.done());
        conn.start_linger(Instant::now());
        assert_eq!(conn.life.cause(), Some(CloseCause::Protocol));
    }

    #[test]
    fn a_subscriber_is_told_once_that_its_events_are_held() {
        let (mut conn, _peer) = unix_conn();
        assert!(!conn.hold_events(), "not a subscriber");
        assert!(conn.subscribe(Some(vec!["a".into()])));
        assert!(conn.wants_events_of(Some("a")) && !conn.wants_events_of(Some("b")));
        assert!(conn.hold_events());
        assert!(!conn.hold_events(), "told once");
        assert!(!conn.subscribe(None), "a subscriber already");
        assert!(conn.wants_events_of(Some("b")), "its choice replaced");
        assert!(!conn.hold_events(), "still held");
        conn.release_events();
        assert!(conn.hold_events(), "held again after a release");
    }
}
