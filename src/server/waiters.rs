//! Requests that wait on runs, and subscribers to run events.
//!
//! A `jobs.run` (or `submit`) with `wait: true` is answered when its run
//! ends: the request takes its place in the connection's answer order
//! (later answers are parked behind it) and joins the run's [`Waiters`].
//! When the run's `Finished` event comes, each waiter still connected gets
//! the run's final record, and the connection's parked answers follow.
//!
//! A connection that called `subscribe` is one of the [`Subscribers`]: a
//! `run.event` notification of every run it wants goes to it as runs are
//! queued, start and end ([`Server::broadcast`]), while its credential
//! counts (see [`super::auth`]). The number of subscribers is published
//! on the board: while it is zero, nobody posts `RunChanged` events.

use super::Server;
use crate::daemon;
use crate::methods;
use crate::protocol::rpc;
use crate::requests::ReplyTo;
use crate::state::run::{Run, RunId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// A request waiting for a run to finish.
#[derive(Debug)]
pub struct Waiter {
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial, against a reused key.
    pub serial: u64,
    /// The request's place in the connection's answer order.
    pub seq: u64,
    /// Where and how to answer.
    pub to: ReplyTo,
}

/// The requests waiting for runs to finish, by run, and for reloads, by
/// the daemon's ticket.
#[derive(Debug, Default)]
pub struct Waiters {
    by_run: HashMap<RunId, Vec<Waiter>>,
    by_reload: HashMap<u64, Vec<Waiter>>,
}

impl Waiters {
    /// `waiter` waits for run `run`.
    pub fn add(&mut self, run: RunId, waiter: Waiter) {
        self.by_run.entry(run).or_default().push(waiter);
    }

    /// Takes the requests waiting for run `run`, in arrival order.
    pub fn take(&mut self, run: RunId) -> Option<Vec<Waiter>> {
        self.by_run.remove(&run)
    }

    /// `waiter` waits for the reload of ticket `ticket`.
    pub fn add_reload(&mut self, ticket: u64, waiter: Waiter) {
        self.by_reload.entry(ticket).or_default().push(waiter);
    }

    /// Takes the requests waiting for the reload `ticket`.
    pub fn take_reload(&mut self, ticket: u64) -> Vec<Waiter> {
        self.by_reload.remove(&ticket).unwrap_or_default()
    }

    /// Takes every request waiting on a run.
    pub fn take_all(&mut self) -> HashMap<RunId, Vec<Waiter>> {
        std::mem::take(&mut self.by_run)
    }
}

/// The connections that called `subscribe` (slab key, serial).
#[derive(Debug, Default)]
pub struct Subscribers {
    list: Vec<(usize, u64)>,
}

impl Subscribers {
    /// Adds a subscriber; returns how many there are.
    pub fn add(&mut self, key: usize, serial: u64) -> usize {
        self.list.push((key, serial));
        self.list.len()
    }

    /// Removes a subscriber; returns how many are left.
    pub fn remove(&mut self, key: usize, serial: u64) -> usize {
        self.list.retain(|&(k, s)| (k, s) != (key, serial));
        self.list.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The subscribers now (the list may change while they are served).
    pub fn snapshot(&self) -> Vec<(usize, u64)> {
        self.list.clone()
    }
}

impl Server {
    /// A request on connection `key` waits for run `run_id` to finish:
    /// answered now (`Some`, with `to` back) if the run has ended or is
    /// unknown, else it takes its place in the connection's answer order
    /// and among the run's waiters.
    pub(super) fn wait_for_run(
        &mut self,
        key: usize,
        serial: u64,
        run_id: RunId,
        to: ReplyTo,
    ) -> Option<(ReplyTo, Result<Value, daemon::Error>)> {
        let run = self.daemon.shared.core.lock().run(run_id).cloned();
        // A run for any node that runs elsewhere: the cluster watches it.
        let remote = || {
            let c = self.daemon.shared.cluster.as_ref();
            c.is_some_and(|c| c.is_watched(run_id))
        };
        match run {
            Some(r) if r.state.is_terminal() => Some((to, Ok(r.to_json()))),
            None if !remote() => Some((to, Err(daemon::Error::NoSuchRun(run_id.to_string())))),
            _ => {
                if let Some(conn) = self.live_conn(key, serial) {
                    let seq = conn.take_seq();
                    conn.push_waiting(seq);
                    self.waiters.add(
                        run_id,
                        Waiter {
                            key,
                            serial,
                            seq,
                            to,
                        },
                    );
                }
                None
            }
        }
    }

    /// A `reload` request on connection `key` waits for the reload
    /// `ticket` to be applied (or refused): it takes its place in the
    /// connection's answer order.
    pub(super) fn wait_for_reload(&mut self, key: usize, serial: u64, ticket: u64, to: ReplyTo) {
        if let Some(conn) = self.live_conn(key, serial) {
            let seq = conn.take_seq();
            conn.push_waiting(seq);
            let waiter = Waiter {
                key,
                serial,
                seq,
                to,
            };
            self.waiters.add_reload(ticket, waiter);
        }
    }

    /// Answers the requests waiting for the reloads the daemon finished
    /// (applied, refused or abandoned), and takes the new config's limits.
    pub(super) fn answer_reloads(&mut self) {
        let done = self.daemon.take_reloads_done();
        if done.is_empty() {
            return;
        }
        self.after_reload();
        for (ticket, result) in done {
            let waiters = self.waiters.take_reload(ticket);
            if !waiters.is_empty() {
                let answer = methods::reload_answer(&result);
                for w in waiters {
                    self.answer_durably(w.key, w.serial, Some(w.seq), w.to, answer.clone());
                    self.flush(w.key);
                }
            }
            // A million names are freed off the loop.
            self.daemon.free_later(Box::new(result));
        }
    }

    /// Connection `key` subscribes to the runs of `jobs` (None: all);
    /// false if it has gone.
    pub(super) fn subscribe(&mut self, key: usize, serial: u64, jobs: Option<Vec<String>>) -> bool {
        let Some(conn) = self.live_conn(key, serial) else {
            return false;
        };
        if conn.subscribe(jobs) {
            let n = self.subscribers.add(key, serial);
            self.daemon.board().subscribers.store(n, Ordering::Relaxed);
        }
        true
    }

    /// A subscriber's connection closed.
    pub(super) fn unsubscribe(&mut self, key: usize, serial: u64) {
        let n = self.subscribers.remove(key, serial);
        self.daemon.board().subscribers.store(n, Ordering::Relaxed);
    }

    /// A run ended: subscribers are told, the daemon does its
    /// bookkeeping, and the requests waiting for it are answered.
    pub(super) fn on_run_finished(&mut self, run: &Run) {
        self.broadcast(run);
        self.pump_run(run.id, Some(run.state));
        self.daemon.on_finished(run);
        let Some(waiters) = self.waiters.take(run.id) else {
            return;
        };
        let v = run.to_json();
        for w in waiters {
            self.answer_durably(w.key, w.serial, Some(w.seq), w.to, Ok(v.clone()));
            self.flush(w.key);
        }
    }

    /// News from the cluster threads: a run waited on here that ended on
    /// another node answers its waiters; the rest is the daemon's.
    pub(super) fn on_cluster(&mut self, notice: crate::cluster::Notice) {
        let crate::cluster::Notice::RemoteFinished(run) = notice else {
            return self.daemon.on_cluster(notice);
        };
        let id = run["run_id"].as_str().and_then(|s| s.parse::<RunId>().ok());
        let Some(waiters) = id.and_then(|id| self.waiters.take(id)) else {
            return;
        };
        for w in waiters {
            self.answer_durably(w.key, w.serial, Some(w.seq), w.to, Ok(run.clone()));
            self.flush(w.key);
        }
    }

    /// At the end of a drain that keeps queued runs for the restart
    /// (`state_dir`), a request waiting for one of them is answered with
    /// the run as it stands (`queued`) instead of never.
    pub(super) fn answer_kept_waiters(&mut self) {
        for (run_id, waiters) in self.waiters.take_all() {
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
                self.answer_durably(w.key, w.serial, Some(w.seq), w.to, Ok(v.clone()));
                self.flush(w.key);
            }
        }
    }

    /// Sends a `run.event` notification of `run` to every subscriber that
    /// wants it (and whose credential counts, see [`Server::hold_events`]).
    /// One that lets unread events pile up past `max_output_bytes` is
    /// dropped, so a stalled subscriber costs memory only up to that bound
    /// and never slows anything else.
    pub(super) fn broadcast(&mut self, run: &Run) {
        if self.subscribers.is_empty() {
            return;
        }
        let mut line = Vec::new();
        rpc::write_notification(&mut line, "run.event", &run.view());
        for (key, serial) in self.subscribers.snapshot() {
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
            conn.release_events();
            conn.push_answer(|out| out.extend_from_slice(&line));
            self.flush(key);
            self.enforce_output_limit(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(key: usize, seq: u64) -> Waiter {
        Waiter {
            key,
            serial: 1,
            seq,
            to: ReplyTo::Nobody,
        }
    }

    #[test]
    fn waiters_are_taken_per_run_in_arrival_order() {
        let mut w = Waiters::default();
        let (a, b): (RunId, RunId) = (1, 2);
        w.add(a, waiter(1, 0));
        w.add(b, waiter(2, 0));
        w.add(a, waiter(3, 5));
        let taken = w.take(a).expect("two wait for a");
        assert_eq!(
            taken.iter().map(|w| (w.key, w.seq)).collect::<Vec<_>>(),
            [(1, 0), (3, 5)]
        );
        assert!(w.take(a).is_none(), "taken once");
        let rest = w.take_all();
        assert_eq!(rest.len(), 1);
        assert!(rest.contains_key(&b));
        assert!(w.take(b).is_none());
    }

    #[test]
    fn subscribers_are_counted_and_removed_by_key_and_serial() {
        let mut s = Subscribers::default();
        assert!(s.is_empty());
        assert_eq!(s.add(4, 10), 1);
        assert_eq!(s.add(5, 11), 2);
        assert_eq!(s.remove(4, 9), 2, "another connection on key 4");
        assert_eq!(s.remove(4, 10), 1);
        assert_eq!(s.snapshot(), [(5, 11)]);
        assert_eq!(s.remove(5, 11), 0);
        assert!(s.is_empty());
    }
}
