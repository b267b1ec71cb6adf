//! The server's side of authentication: the mechanics only, every
//! decision being [`crate::auth`]'s. Here the loop asks whether a
//! connection is served under the tokens in force, and with which role
//! ([`Server::authed`], [`Server::grant`], by its
//! [`Credential`](crate::auth::Credential)), holds a wrong token's
//! answer for [`AUTH_DELAY`] on its timer wheel, stops and resumes a
//! subscriber's events, and re-judges every open connection once after a
//! reload changed the tokens ([`Server::on_auth_change`]).
//!
//! The tokens themselves are checked on the request workers; a batch
//! comes back saying which token it authenticated the connection with, or
//! with a wrong token's answer to hold
//! ([`crate::requests::Segment::Delayed`]).

use super::backoff::{self, LogLimit};
use super::conn::Conn;
use super::timers::ConnTimer;
use super::{Peer, Server};
use crate::auth::{Change, Grant, Tokens, AUTH_DELAY, TOKEN_REPLACED};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::Value;
use std::time::Instant;

/// The server's authentication state.
#[derive(Debug)]
pub struct AuthWatch {
    /// The tokens the connections' credentials were last judged against:
    /// when the limits in force carry others (a reload changed them),
    /// [`Server::on_auth_change`] runs.
    pub in_force: Tokens,
    /// Rate limit of the wrong tokens' warnings, which come in floods.
    warn_wrong_token: LogLimit,
}

impl AuthWatch {
    /// Judged against `in_force` so far.
    pub fn new(in_force: Tokens) -> AuthWatch {
        AuthWatch {
            in_force,
            warn_wrong_token: LogLimit::default(),
        }
    }
}

impl Server {
    /// Whether `conn` is served under the tokens in force now.
    pub(super) fn authed(&self, conn: &Conn) -> bool {
        conn.credential.admits(&self.limits.tokens)
    }

    /// What `conn` is granted under the tokens in force now (its token's
    /// role as it is now, after any reload); `None`: not authenticated.
    pub(super) fn grant(&self, conn: &Conn) -> Option<Grant> {
        conn.credential.grant(&self.limits.tokens)
    }

    /// Parks an answer for [`AUTH_DELAY`] (a wrong token): nothing more of
    /// the connection is looked at until then (its requests are held),
    /// nothing else waits.
    pub(super) fn delay_answer(&mut self, key: usize, serial: u64, bytes: Vec<u8>) {
        let Some(conn) = self.conns.get(key).filter(|c| c.serial == serial) else {
            return;
        };
        let peer = Peer(conn.peer);
        if let Some(more) = self.auth.warn_wrong_token.allow(Instant::now()) {
            log::warn!(
                "connection {serial} ({peer}): wrong auth token; answering in {:?}{}",
                AUTH_DELAY,
                backoff::more(more)
            );
        }
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        let seq = conn.take_seq();
        conn.push_waiting(seq);
        conn.requests.hold(bytes.len());
        let until = Instant::now() + AUTH_DELAY;
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
    /// counts (a reload removed its token or turned auth on), telling it
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
        let err = RpcError::new(ErrorCode::NotAuthenticated, TOKEN_REPLACED);
        conn.push_answer(|out| rpc::write_error(out, &Value::Null, &err));
        self.flush(key);
        self.enforce_output_limit(key);
    }

    /// After a reload changed the tokens in force, each connection as
    /// [`crate::auth::Credential::on_token_change`] judges it: one whose
    /// credential stopped counting becomes a stranger from now (the
    /// pre-auth limit runs again, see [`super::timers::Standing::close_due`])
    /// and, if it subscribed, stops getting events ([`Server::hold_events`]);
    /// one whose credential counts again (auth turned off) is served as
    /// before. Each one's check timer is re-armed for its new deadline.
    pub(super) fn on_auth_change(&mut self) {
        let old = std::mem::replace(&mut self.auth.in_force, self.limits.tokens.clone());
        let new = self.auth.in_force.clone();
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let serial = conn.serial;
            match conn.credential.on_token_change(&old, &new) {
                Change::Unchanged => continue,
                Change::Regained => conn.release_events(),
                Change::Lost => {
                    conn.stranger_since = now;
                    if conn.subscription.is_some() {
                        self.hold_events(key);
                    }
                }
            }
            self.arm_idle(key, serial, now);
        }
    }
}
