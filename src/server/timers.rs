//! Connection timers, on the loop's own timer wheel ([`ConnTimers`]).
//!
//! Each connection has at most one live check timer: at its idle
//! deadline, or the end of its pre-auth limit, or the end of its linger.
//! Activity does not touch the timer (that would cost a wheel operation
//! per request); when it fires, a connection that was active since is
//! simply re-armed from its last activity. Re-arming gives the connection
//! a new check number (`Conn::check`), so the timer armed before does
//! nothing when it fires: re-arming never piles up timers, however often
//! a client authenticates.
//!
//! The wheel also holds the answers parked by the auth delay, until their
//! release (see `auth_hold.rs`).
//!
//! When a connection is due is a plain function of its [`Standing`] and
//! `idle_timeout`: a stranger (auth on, not authenticated, or
//! authenticated under a token a reload replaced; or, auth on or off, a
//! TLS connection whose handshake is not done) [`PREAUTH_LIMIT`] after
//! it became one, however busy, or `idle_timeout` after it last sent
//! something if that is sooner; any other `idle_timeout` after it last
//! sent something, except a subscriber, which gets events until it
//! leaves.

use super::conn::Conn;
use super::{Peer, Server};
use crate::auth::{AUTH_DELAY, PREAUTH_LIMIT};
use crate::daemon::counters::{bump, CloseCause};
use crate::timer::{Clock, TimerKey, TimerWheel};
use std::time::{Duration, Instant};

/// A connection timer.
#[derive(Debug)]
pub enum ConnTimer {
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

/// The connections' timers: a wheel of millisecond ticks.
#[derive(Debug)]
pub struct ConnTimers {
    wheel: TimerWheel<ConnTimer>,
    clock: Clock,
}

impl ConnTimers {
    /// An empty wheel whose ticks start now.
    pub fn new() -> ConnTimers {
        ConnTimers {
            wheel: TimerWheel::new(),
            clock: Clock::with_origin(Instant::now()),
        }
    }

    /// Arms `timer` to fire at `due` (never before it).
    pub fn insert(&mut self, due: Instant, timer: ConnTimer) {
        let tick = self.clock.deadline_tick(due);
        self.wheel.insert(tick, timer);
    }

    /// When the earliest timer fires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .and_then(|t| self.clock.instant_of(t))
    }

    /// Appends the timers due at `now` to `fired`.
    pub fn fire(&mut self, now: Instant, fired: &mut Vec<(TimerKey, ConnTimer)>) {
        self.wheel.advance(self.clock.tick_floor(now), fired);
    }
}

/// What a connection's deadline depends on.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    /// Served under the token in force (or auth is off, or it is trusted).
    pub authed: bool,
    /// It called `subscribe`, or follows a run's output.
    pub subscribed: bool,
    /// When it last sent something.
    pub last_active: Instant,
    /// When it last became a stranger.
    pub stranger_since: Instant,
    /// Its TLS handshake is not done: a stranger whatever its credential.
    pub handshaking: bool,
}

impl Standing {
    /// The standing of `conn`, which is `authed` or not.
    pub fn of(conn: &Conn, authed: bool) -> Standing {
        Standing {
            authed,
            subscribed: conn.subscription.is_some() || conn.following > 0,
            last_active: conn.last_active,
            stranger_since: conn.stranger_since,
            handshaking: conn.stream.handshaking(),
        }
    }

    /// When it is due to be closed if it stays as it is (see the module
    /// doc); None: never.
    pub fn close_due(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        let idle = idle_timeout.map(|t| self.last_active + t);
        if !self.authed || self.handshaking {
            let limit = self.stranger_since + PREAUTH_LIMIT;
            return Some(idle.map_or(limit, |idle| idle.min(limit)));
        }
        if self.subscribed {
            return None;
        }
        idle
    }

    /// How long to wait before looking again at one past due but kept (it
    /// waits for a run): a whole period, not a tight loop. A stranger past
    /// its deadline is only kept while a wrong token's answer is held: at
    /// most that long.
    pub fn recheck_after(&self, idle_timeout: Option<Duration>) -> Duration {
        let period = match idle_timeout {
            Some(t) if self.authed => t,
            _ => AUTH_DELAY,
        };
        period.max(Duration::from_millis(1))
    }

    /// Why it is closed once due at `now`: idle, or a stranger that did
    /// not authenticate within the pre-auth limit.
    pub fn close_cause(&self, now: Instant) -> CloseCause {
        if self.handshaking {
            CloseCause::Tls
        } else if self.authed || now < self.stranger_since + PREAUTH_LIMIT {
            CloseCause::Idle
        } else {
            CloseCause::AuthTimeout
        }
    }
}

impl Server {
    /// (Re)arms the check of connection `key` at its deadline
    /// ([`Standing::close_due`]): at the accept, and whenever that
    /// deadline may have moved closer (it authenticated, a reload changed
    /// the token). Any timer armed before is superseded.
    pub(super) fn arm_idle(&mut self, key: usize, serial: u64, now: Instant) {
        let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
            return;
        };
        if conn.life.linger_until().is_some() {
            // Closing: the linger's end is the only check left.
            return;
        }
        let standing = Standing::of(conn, self.authed(conn));
        let idle_timeout = self.limits.idle_timeout;
        let Some(mut due) = standing.close_due(idle_timeout) else {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.check += 1;
            }
            return;
        };
        if due <= now {
            due = now + standing.recheck_after(idle_timeout);
        }
        self.arm_check(key, due);
    }

    /// Puts the one check timer of connection `key` at `due`, superseding
    /// the one before (which does nothing when it fires).
    pub(super) fn arm_check(&mut self, key: usize, due: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.check += 1;
        let timer = ConnTimer::Check {
            key,
            serial: conn.serial,
            check: conn.check,
        };
        self.timers.insert(due, timer);
    }

    /// Fires the connection timers due at `now`: closes connections idle
    /// for longer than `idle_timeout` (or past the pre-auth limit, or at
    /// the end of their linger), re-arms those active since, and releases
    /// answers held by the auth delay.
    pub(super) fn expire_idle(&mut self, now: Instant) {
        let mut fired = Vec::new();
        self.timers.fire(now, &mut fired);
        for (_, timer) in fired {
            let (key, serial, check) = match timer {
                ConnTimer::Check { key, serial, check } => (key, serial, check),
                ConnTimer::Release {
                    key,
                    serial,
                    seq,
                    bytes,
                } => {
                    self.release_held(key, serial, seq, &bytes);
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
            if let Some(until) = conn.life.linger_until() {
                if now >= until {
                    let cause = conn.life.cause().unwrap_or(CloseCause::Requested);
                    self.close(key, cause);
                } else {
                    self.arm_check(key, until);
                }
                continue;
            }
            let standing = Standing::of(conn, self.authed(conn));
            let Some(due) = standing.close_due(self.limits.idle_timeout) else {
                continue;
            };
            if now >= due && !conn.has_waiting() {
                let cause = standing.close_cause(now);
                if cause == CloseCause::Idle {
                    log::debug!("connection {serial} idle; closing");
                } else if cause == CloseCause::Tls {
                    log::debug!(
                        "connection {serial} ({}) did not finish its TLS handshake in time; closing",
                        Peer(conn.peer)
                    );
                } else {
                    log::debug!(
                        "connection {serial} ({}) did not authenticate within {PREAUTH_LIMIT:?}; closing",
                        Peer(conn.peer)
                    );
                }
                bump(&self.daemon.board().clients.idle_closed);
                self.close(key, cause);
            } else {
                self.arm_idle(key, serial, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn standing(authed: bool, subscribed: bool, t0: Instant) -> Standing {
        Standing {
            authed,
            subscribed,
            last_active: t0 + Duration::from_secs(3),
            stranger_since: t0,
            handshaking: false,
        }
    }

    #[test]
    fn a_client_is_due_idle_timeout_after_it_last_sent_something() {
        let t0 = Instant::now();
        let s = standing(true, false, t0);
        assert_eq!(
            s.close_due(Some(MIN)),
            Some(t0 + Duration::from_secs(3) + MIN)
        );
        assert_eq!(s.close_due(None), None, "idle_timeout = 0s: never");
        assert_eq!(s.close_cause(t0 + 2 * MIN), CloseCause::Idle);
        assert_eq!(s.recheck_after(Some(MIN)), MIN);
    }

    #[test]
    fn a_subscriber_stays_but_a_stranger_gets_the_pre_auth_limit() {
        let t0 = Instant::now();
        assert_eq!(standing(true, true, t0).close_due(Some(MIN)), None);
        let stranger = standing(false, true, t0);
        assert_eq!(
            stranger.close_due(Some(MIN)),
            Some(t0 + PREAUTH_LIMIT),
            "however busy, and subscribed or not"
        );
        assert_eq!(stranger.close_due(None), Some(t0 + PREAUTH_LIMIT));
        assert_eq!(
            stranger.close_due(Some(Duration::from_secs(5))),
            Some(t0 + Duration::from_secs(8)),
            "idle_timeout if sooner"
        );
        assert_eq!(
            stranger.close_cause(t0 + PREAUTH_LIMIT),
            CloseCause::AuthTimeout
        );
        assert_eq!(
            stranger.close_cause(t0 + Duration::from_secs(8)),
            CloseCause::Idle,
            "idle before its limit"
        );
        assert_eq!(stranger.recheck_after(Some(MIN)), AUTH_DELAY);
    }

    #[test]
    fn a_tls_handshake_gets_the_pre_auth_limit_with_auth_off() {
        let t0 = Instant::now();
        let shaking = Standing {
            handshaking: true,
            ..standing(true, false, t0)
        };
        assert_eq!(shaking.close_due(Some(MIN)), Some(t0 + PREAUTH_LIMIT));
        assert_eq!(shaking.close_due(None), Some(t0 + PREAUTH_LIMIT));
        assert_eq!(shaking.close_cause(t0 + PREAUTH_LIMIT), CloseCause::Tls);
    }

    #[test]
    fn timers_fire_at_their_due_instant_and_not_before() {
        let mut timers = ConnTimers::new();
        assert_eq!(timers.next_deadline(), None);
        let t0 = Instant::now();
        let due = t0 + Duration::from_millis(30);
        timers.insert(
            due,
            ConnTimer::Check {
                key: 1,
                serial: 2,
                check: 3,
            },
        );
        let next = timers.next_deadline().expect("armed");
        assert!(next >= due && next < due + Duration::from_millis(2));
        let mut fired = Vec::new();
        timers.fire(due - Duration::from_millis(2), &mut fired);
        assert!(fired.is_empty(), "not before it is due");
        timers.fire(next, &mut fired);
        assert!(matches!(
            fired.as_slice(),
            [(
                _,
                ConnTimer::Check {
                    key: 1,
                    serial: 2,
                    check: 3
                }
            )]
        ));
        assert_eq!(timers.next_deadline(), None);
    }
}
