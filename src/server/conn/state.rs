//! A connection's state, as types: one enum per question whose answers
//! exclude each other, each changed only through its transitions.
//!
//! - [`Life`]: open, closing once its answers are sent, or lingering
//!   (our side shut, the peer's input drained until it closes);
//! - [`Incoming`]: whether the peer may send more, has shut down its
//!   writing side (the end-of-stream still to be read), or has ended;
//! - [`Requests`]: whether a batch of its requests is with a request
//!   worker, or a wrong token's answer is held by the auth delay, or
//!   neither; and whether reading is paused meanwhile;
//! - [`Wire`]: what it speaks, once its first bytes told (and, for HTTP,
//!   whether `100 Continue` was sent for the request being received);
//! - [`Subscription`]: what a subscriber asked for, and whether its events
//!   are held because its credential stopped counting.
//!
//! These are independent of one another (a connection can be closing with
//! a batch in flight, or lingering after the peer finished), so they are
//! separate fields of [`super::Conn`].

use crate::daemon::counters::CloseCause;
use crate::http::frame::{self as http_frame, Sniff};
use crate::requests::Proto;
use std::time::Instant;

/// How far a connection is from its end. Moves forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Served.
    Open,
    /// Closes once every answer queued is sent; no further request is
    /// answered. The cause is the first one given.
    Closing(CloseCause),
    /// Every answer is sent and our writing side is shut: input still
    /// arriving is read and discarded until the peer closes or `until`,
    /// because closing a socket with unread input makes the kernel send a
    /// reset, which can destroy the answers just written.
    Lingering {
        /// Why it is closing.
        cause: CloseCause,
        /// When to close for good.
        until: Instant,
    },
}

impl Life {
    /// Whether it is served (not closing in any way).
    pub fn is_open(&self) -> bool {
        matches!(self, Life::Open)
    }

    /// Why it is closing, once that began.
    pub fn cause(&self) -> Option<CloseCause> {
        match *self {
            Life::Open => None,
            Life::Closing(cause) | Life::Lingering { cause, .. } => Some(cause),
        }
    }

    /// When a lingering connection closes for good.
    pub fn linger_until(&self) -> Option<Instant> {
        match *self {
            Life::Lingering { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Open → closing for `cause`; a connection closing already keeps the
    /// cause it has.
    pub fn close_after_answers(&mut self, cause: CloseCause) {
        if self.is_open() {
            *self = Life::Closing(cause);
        }
    }

    /// Closing → lingering until `until` (a lingering connection keeps its
    /// end). Only a closing connection lingers; one still open would
    /// count as closed on request.
    pub fn linger(&mut self, until: Instant) {
        *self = match *self {
            Life::Open => Life::Lingering {
                cause: CloseCause::Requested,
                until,
            },
            Life::Closing(cause) => Life::Lingering { cause, until },
            lingering @ Life::Lingering { .. } => lingering,
        };
    }
}

/// What the peer's sending side has shown. Moves forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// It may send more.
    Open,
    /// The poll reported that it shut down its writing side: the
    /// end-of-stream is still to be read, behind any data, and raises no
    /// edge of its own, so reading goes on past a short read.
    Finishing,
    /// The end-of-stream was read: it sends nothing more.
    Ended,
}

impl Incoming {
    /// The poll reported the peer's end: open → finishing.
    pub fn peer_finished(&mut self) {
        if *self == Incoming::Open {
            *self = Incoming::Finishing;
        }
    }

    /// The end-of-stream was read.
    pub fn end(&mut self) {
        *self = Incoming::Ended;
    }

    /// Whether the peer is known to have finished sending (its
    /// end-of-stream read or not).
    pub fn finished(&self) -> bool {
        !matches!(self, Incoming::Open)
    }

    /// Whether the end-of-stream was read.
    pub fn ended(&self) -> bool {
        matches!(self, Incoming::Ended)
    }
}

/// Where a connection's requests stand. Answers stay in request order
/// because at most one batch is out at a time, and nothing more is looked
/// at while a wrong token's answer is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requests {
    /// Nothing out: the next batch may be cut.
    Idle,
    /// A batch is with a request worker.
    InFlight {
        /// Its input reached its bound meanwhile and reading stopped,
        /// until the answers are back.
        paused: bool,
    },
    /// A wrong token's answer is held back by the auth delay: nothing
    /// more of the connection is answered, or even looked at, until it is
    /// released.
    Held {
        /// Bytes of the held answer (they count as unsent).
        bytes: usize,
        /// Its input reached its bound meanwhile and reading stopped,
        /// until the answer is released.
        paused: bool,
    },
}

impl Requests {
    /// Whether the next batch may be cut.
    pub fn is_idle(&self) -> bool {
        matches!(self, Requests::Idle)
    }

    /// Whether a batch is with a request worker.
    pub fn in_flight(&self) -> bool {
        matches!(self, Requests::InFlight { .. })
    }

    /// Whether reading is paused.
    pub fn paused(&self) -> bool {
        match *self {
            Requests::Idle => false,
            Requests::InFlight { paused } | Requests::Held { paused, .. } => paused,
        }
    }

    /// Bytes of the answer held back by the auth delay.
    pub fn held_bytes(&self) -> usize {
        match *self {
            Requests::Held { bytes, .. } => bytes,
            _ => 0,
        }
    }

    /// A batch was cut and handed over: idle → in flight.
    pub fn send(&mut self) {
        debug_assert!(self.is_idle(), "a second batch in flight: {self:?}");
        *self = Requests::InFlight { paused: false };
    }

    /// The batch's answers are back (or the batch was lost): in flight →
    /// idle. Returns whether reading was paused meanwhile; it resumes now,
    /// and the caller reads what waits. A connection not in flight is
    /// left as it is.
    pub fn answered(&mut self) -> bool {
        match *self {
            Requests::InFlight { paused } => {
                *self = Requests::Idle;
                paused
            }
            _ => false,
        }
    }

    /// A wrong token's answer of `bytes` is held back: → held.
    pub fn hold(&mut self, bytes: usize) {
        *self = match *self {
            Requests::Idle | Requests::InFlight { .. } => Requests::Held {
                bytes,
                paused: false,
            },
            Requests::Held { bytes: b, paused } => Requests::Held {
                bytes: b + bytes,
                paused,
            },
        };
    }

    /// The held answer was released: held → idle. Returns whether
    /// reading was paused meanwhile (see [`Requests::answered`]).
    pub fn release(&mut self) -> bool {
        match *self {
            Requests::Held { paused, .. } => {
                *self = Requests::Idle;
                paused
            }
            _ => false,
        }
    }

    /// The input reached its bound: reading pauses if a batch is out or
    /// an answer held (it resumes when they are back); an idle connection
    /// is not paused (its input is cut into a batch instead).
    pub fn pause(&mut self) {
        match self {
            Requests::Idle => {}
            Requests::InFlight { paused } | Requests::Held { paused, .. } => *paused = true,
        }
    }
}

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Not known yet: a TCP client whose first bytes have not told.
    Unknown,
    /// Newline-delimited JSON-RPC.
    Rpc,
    /// HTTP/1.1.
    Http {
        /// `100 Continue` was sent for the request being received.
        continue_sent: bool,
    },
}

impl Wire {
    /// What it speaks, if known.
    pub fn proto(&self) -> Option<Proto> {
        match self {
            Wire::Unknown => None,
            Wire::Rpc => Some(Proto::Rpc),
            Wire::Http { .. } => Some(Proto::Http),
        }
    }

    /// What it speaks, learning it from the first bytes `input` while not
    /// known yet (None: they do not tell yet).
    pub fn sniff(&mut self, input: &[u8]) -> Option<Proto> {
        if *self == Wire::Unknown {
            *self = match http_frame::sniff(input) {
                Sniff::Http => Wire::Http {
                    continue_sent: false,
                },
                Sniff::Rpc => Wire::Rpc,
                Sniff::Unknown => return None,
            };
        }
        self.proto()
    }

    /// Whether `100 Continue` was sent for the HTTP request being received.
    pub fn continue_sent(&self) -> bool {
        matches!(
            self,
            Wire::Http {
                continue_sent: true
            }
        )
    }

    /// Notes whether `100 Continue` was sent for the HTTP request being
    /// received (false again once that request is cut).
    pub fn set_continue_sent(&mut self, sent: bool) {
        if let Wire::Http { continue_sent } = self {
            *continue_sent = sent;
        }
    }
}

/// What a subscriber asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Whose runs' events it gets (None: every run's).
    pub jobs: Option<Vec<String>>,
    /// Its credential stopped counting and it was told so (one `-32001`
    /// line): no `run.event` reaches it until it authenticates again (or
    /// a reload makes its credential count again).
    pub held: bool,
}

impl Subscription {
    /// A new subscription to the runs of `jobs` (None: all).
    pub fn new(jobs: Option<Vec<String>>) -> Self {
        Subscription { jobs, held: false }
    }

    /// Whether it gets the events of `job`'s runs (while not held).
    pub fn wants(&self, job: Option<&str>) -> bool {
        match &self.jobs {
            None => true,
            Some(names) => job.is_some_and(|j| names.iter().any(|n| n == j)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn life_moves_forward_and_keeps_its_first_cause() {
        let mut life = Life::Open;
        assert!(life.is_open());
        assert_eq!(life.cause(), None);
        life.close_after_answers(CloseCause::Protocol);
        life.close_after_answers(CloseCause::Requested);
        assert_eq!(life, Life::Closing(CloseCause::Protocol), "first cause");
        assert_eq!(life.linger_until(), None);
        let until = Instant::now() + Duration::from_secs(1);
        life.linger(until);
        assert_eq!(life.linger_until(), Some(until));
        assert_eq!(life.cause(), Some(CloseCause::Protocol));
        life.linger(until + Duration::from_secs(5));
        life.close_after_answers(CloseCause::Error);
        assert_eq!(
            life,
            Life::Lingering {
                cause: CloseCause::Protocol,
                until
            },
            "a lingering connection keeps its end and cause"
        );
        let mut open = Life::Open;
        open.linger(until);
        assert_eq!(open.cause(), Some(CloseCause::Requested));
    }

    #[test]
    fn the_peers_end_is_noticed_then_read() {
        let mut incoming = Incoming::Open;
        assert!(!incoming.finished());
        incoming.peer_finished();
        assert_eq!(incoming, Incoming::Finishing);
        assert!(incoming.finished() && !incoming.ended());
        incoming.end();
        incoming.peer_finished();
        assert_eq!(incoming, Incoming::Ended, "never back");
        assert!(incoming.finished() && incoming.ended());
        let mut abrupt = Incoming::Open;
        abrupt.end();
        assert!(abrupt.ended(), "an end read without notice");
    }

    #[test]
    fn one_batch_out_at_a_time_and_pauses_only_while_waiting() {
        let mut r = Requests::Idle;
        r.pause();
        assert_eq!(r, Requests::Idle, "an idle connection is not paused");
        r.send();
        assert!(r.in_flight() && !r.is_idle() && !r.paused());
        r.pause();
        assert!(r.paused());
        assert!(r.answered(), "reports the pause, to resume reading");
        assert_eq!(r, Requests::Idle);
        assert!(!r.answered(), "nothing was out");
        r.send();
        assert!(!r.answered(), "not paused");
    }

    #[test]
    fn a_held_answer_blocks_the_connection_until_released() {
        let mut r = Requests::InFlight { paused: true };
        // The batch's answers come back with a wrong token's answer in them.
        assert!(r.answered());
        r.hold(120);
        assert_eq!(
            r,
            Requests::Held {
                bytes: 120,
                paused: false
            }
        );
        assert!(!r.is_idle() && !r.in_flight());
        assert_eq!(r.held_bytes(), 120);
        r.pause();
        assert!(r.paused());
        assert!(r.release(), "reports the pause");
        assert_eq!(r, Requests::Idle);
        assert_eq!(r.held_bytes(), 0);
        assert!(!r.release(), "nothing was held");
    }

    #[test]
    fn the_wire_is_learnt_once_from_the_first_bytes() {
        let mut w = Wire::Unknown;
        assert_eq!(w.sniff(b"GE"), None, "not enough to tell");
        assert_eq!(w, Wire::Unknown);
        assert_eq!(w.sniff(b"GET / HTTP/1.1\r\n"), Some(Proto::Http));
        assert_eq!(
            w.sniff(b"{\"jsonrpc\""),
            Some(Proto::Http),
            "once known, kept"
        );
        assert!(!w.continue_sent());
        w.set_continue_sent(true);
        assert!(w.continue_sent());
        w.set_continue_sent(false);
        assert!(!w.continue_sent());
        let mut rpc = Wire::Unknown;
        assert_eq!(rpc.sniff(b"{\"jsonrpc\":\"2.0\"}\n"), Some(Proto::Rpc));
        rpc.set_continue_sent(true);
        assert!(!rpc.continue_sent(), "HTTP only");
    }

    #[test]
    fn subscriptions_filter_by_job() {
        let all = Subscription::new(None);
        assert!(all.wants(Some("backup")) && all.wants(None));
        let some = Subscription::new(Some(vec!["backup".into()]));
        assert!(some.wants(Some("backup")));
        assert!(!some.wants(Some("other")));
        assert!(!some.wants(None), "an ad-hoc run has no job");
        assert!(!some.held);
    }
}
