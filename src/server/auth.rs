//! The server's side of authentication: what each connection has shown
//! ([`Credential`]), judged against the token in force; the limits on a
//! stranger; the auth delay that holds a wrong token's answer; and what a
//! reload changing the token does to the open connections.
//!
//! The tokens themselves are checked on the request workers
//! ([`crate::auth`]); a batch comes back saying which token it
//! authenticated the connection with, or with a wrong token's answer to
//! hold ([`crate::requests::Segment::Delayed`]).
//!
//! A credential is judged against the token in force for every batch and
//! every event sent to a subscriber, so a reload that turns auth on, or
//! changes the token, makes connections authenticate again: they become
//! strangers from then (the pre-auth limit runs again), and subscribers
//! among them are told once and get no events until they do.

use super::backoff::{self, LogLimit};
use super::conn::Conn;
use super::timers::ConnTimer;
use super::{Peer, Server};
use crate::auth::PREAUTH_MAX_LINE;
use crate::config::AuthToken;
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long after its accept a TCP connection may stay unauthenticated
/// (when auth is on): a stranger gets a short while to present the token,
/// however busy it keeps the connection.
pub const PREAUTH_LIMIT: Duration = Duration::from_secs(10);
/// Buffered input at which reading from a client that has not
/// authenticated pauses (twice its line limit).
pub const PREAUTH_PAUSE_AT: usize = 2 * PREAUTH_MAX_LINE;

/// What a connection has shown of its right to be served.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A Unix-socket client: trusted by the socket file's mode.
    Trusted,
    /// A TCP client that presented this token.
    Token(AuthToken),
    /// A TCP client that presented no (right) token yet.
    Stranger,
}

impl Credential {
    /// Whether the connection is served under `current`, the token in
    /// force now: always with auth off, and with auth on only if it
    /// presented that very token (a reload that turns auth on or changes
    /// the token makes it authenticate again).
    pub fn admits(&self, current: Option<&AuthToken>) -> bool {
        match (self, current) {
            (Credential::Trusted, _) | (_, None) => true,
            (Credential::Token(t), Some(c)) => t == c,
            (Credential::Stranger, Some(_)) => false,
        }
    }
}

/// The server's authentication state.
#[derive(Debug)]
pub struct AuthWatch {
    /// The token the connections' credentials were last judged against:
    /// when the limits in force carry another one (a reload changed it),
    /// [`Server::on_auth_change`] runs.
    pub in_force: Option<AuthToken>,
    /// Rate limit of the wrong tokens' warnings, which come in floods.
    warn_wrong_token: LogLimit,
}

impl AuthWatch {
    /// Judged against `in_force` so far.
    pub fn new(in_force: Option<AuthToken>) -> AuthWatch {
        AuthWatch {
            in_force,
            warn_wrong_token: LogLimit::default(),
        }
    }
}

impl Server {
    /// Whether `conn` is served under the token in force now.
    pub(super) fn authed(&self, conn: &Conn) -> bool {
        conn.credential.admits(self.limits.auth_token.as_ref())
    }

    /// Parks an answer for [`crate::crate::auth::AUTH_DELAY`] (a wrong
    /// token): nothing more of the connection is looked at until then
    /// (its requests are held), nothing else waits.
    pub(super) fn delay_answer(&mut self, key: usize, serial: u64, bytes: Vec<u8>) {
        let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
            return;
        };
        let peer = Peer(conn.peer);
        if let Some(more) = self.auth.warn_wrong_token.allow(Instant::now()) {
            log::warn!(
                "connection {serial} ({peer}): wrong auth token; answering in {:?}{}",
                crate::auth::AUTH_DELAY,
                backoff::more(more)
            );
        }
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        let seq = conn.take_seq();
        conn.push_waiting(seq);
        conn.requests.hold(bytes.len());
        let until = Instant::now() + crate::auth::AUTH_DELAY;
        self.timers.insert(
            until,
            ConnTimer::Release {
                key,
                serial,
                seq,
                bytes,
            },
        );
    }

    /// The auth delay of a held answer has passed: it takes its place in
    /// the answer order, and the connection's later requests may now be
    /// looked at.
    pub(super) fn release_held(&mut self, key: usize, serial: u64, seq: u64, bytes: &[u8]) {
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        conn.fill_waiting(seq, |out| out.extend_from_slice(bytes));
        if conn.requests.release() {
            self.reads.again.push(key);
        }
        self.flush(key);
        self.cut_batch(key);
    }

    /// Stops the events of subscriber `key`, whose credential no longer
    /// counts (a reload changed the token or turned auth on), telling it
    /// once with a `-32001` line (`"id": null`): the connection stays, its
    /// requests get `-32001` as any stranger's, and events flow again once
    /// it authenticates with the token in force. Events meanwhile are not
    /// kept for it.
    pub(super) fn hold_events(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.hold_events() {
            return;
        }
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
    /// limit runs again, see [`super::timers::Standing::close_due`]) and
    /// subscribers among them stop getting events ([`Server::hold_events`]);
    /// those whose credential counts again (auth turned off) are served as
    /// before. Each one's check timer is re-armed for its new deadline.
    pub(super) fn on_auth_change(&mut self) {
        let old = std::mem::replace(&mut self.auth.in_force, self.limits.auth_token.clone());
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
                    conn.release_events();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_judged_by_the_token_in_force() {
        let old = AuthToken::new("old");
        let new = AuthToken::new("new");
        let holder = Credential::Token(old.clone());
        assert!(holder.admits(Some(&old)));
        assert!(!holder.admits(Some(&new)), "token changed by a reload");
        assert!(holder.admits(None), "auth turned off");
        assert!(!Credential::Stranger.admits(Some(&old)), "auth turned on");
        assert!(Credential::Stranger.admits(None));
        assert!(Credential::Trusted.admits(Some(&new)));
    }
}
