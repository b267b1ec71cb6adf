//! Clients following a run's output: `runs.output {follow: true}` gets
//! `run.output` notifications, `GET /runs/ID/output?follow=1` a chunked
//! body that goes on, until the run ends.
//!
//! The worker running the job posts [`LoopEvent::Output`] when there is
//! something new and someone follows (once, until the loop reads it: see
//! [`crate::output::Live::push`]); the loop then copies to each follower
//! what is new since its offset, in pieces of at most [`NOTE_BYTES`], from
//! the run's live tail (memory: the loop never reads a file). When the
//! run's `Finished` event comes, what is left goes, then the end: a last
//! notification with `done: true` and the state, or the last chunk.
//!
//! The bound: a follower whose connection holds more than half of
//! `max_output_bytes` unsent is dropped from following, so a client that
//! reads too slowly costs at most that much memory and slows nobody. A
//! JSON-RPC follower gets a last `run.output` with `dropped: true` and
//! keeps its connection; an HTTP follower's connection is closed without
//! the last chunk (the client sees the body cut short).
//!
//! [`LoopEvent::Output`]: crate::daemon::LoopEvent::Output

use super::Server;
use crate::daemon::counters::CloseCause;
use crate::http::response;
use crate::methods::output::Follow;
use crate::output::{Chunk, Live};
use crate::protocol::rpc;
use crate::requests::{HttpFollow, ReplyTo};
use crate::state::run::{RunId, RunState};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The most output bytes in one notification or chunk.
pub const NOTE_BYTES: usize = 16 * 1024;

/// The most runs one connection follows at once (a follower costs the
/// loop a little memory each; more are refused).
pub const MAX_FOLLOWS_PER_CONN: usize = 64;

/// One client following one run.
#[derive(Debug)]
struct Follower {
    key: usize,
    serial: u64,
    live: Arc<Live>,
    /// The offset of the next byte to send.
    offset: u64,
    /// `None`: JSON-RPC notifications; else a chunked HTTP answer.
    http: Option<Http>,
}

#[derive(Debug, Clone, Copy)]
struct Http {
    chunked: bool,
    close: bool,
}

/// The followers, by run.
#[derive(Debug, Default)]
pub struct Followers {
    by_run: HashMap<RunId, Vec<Follower>>,
}

/// What became of a follower after a pump.
enum Left {
    Following,
    Ended,
    Dropped,
    Gone,
}

impl Server {
    /// `runs.output {follow: true}` on connection `key`: the answer, then
    /// notifications from `f.next` on.
    pub(super) fn follow_rpc(&mut self, key: usize, serial: u64, to: ReplyTo, f: Follow) {
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        if !matches!(to, ReplyTo::Rpc(_)) {
            // Inside a batch array, notifications would land among its
            // members: the answer goes, without following.
            conn.push_answer(|out| to.write(out, Ok(&f.answer)));
            return;
        }
        if conn.following >= MAX_FOLLOWS_PER_CONN {
            let e = crate::daemon::Error::Invalid {
                param: "follow",
                what: format!("this connection already follows {MAX_FOLLOWS_PER_CONN} runs"),
            };
            conn.push_answer(|out| to.write(out, Err(&e)));
            return;
        }
        conn.push_answer(|out| to.write(out, Ok(&f.answer)));
        conn.following += 1;
        self.add_follower(f.run_id, key, serial, f.live.0, f.next, None);
    }

    /// `GET /runs/ID/output?follow=1`: the head and first piece are sent;
    /// the connection stays in flight (its next requests wait) until the
    /// run ends.
    pub(super) fn follow_http(&mut self, key: usize, serial: u64, f: HttpFollow) {
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        conn.requests.send();
        conn.following += 1;
        let http = Http {
            chunked: f.chunked,
            close: f.close,
        };
        self.add_follower(f.run_id, key, serial, f.live, f.offset, Some(http));
    }

    fn add_follower(
        &mut self,
        run: RunId,
        key: usize,
        serial: u64,
        live: Arc<Live>,
        offset: u64,
        http: Option<Http>,
    ) {
        live.follow();
        let follower = Follower {
            key,
            serial,
            live,
            offset,
            http,
        };
        self.followers.by_run.entry(run).or_default().push(follower);
        // The run may have ended between the answer and now.
        let ended = self
            .daemon
            .shared
            .core
            .lock()
            .run(run)
            .map(|r| r.state)
            .filter(|s| s.is_terminal());
        self.pump_run(run, ended);
    }

    /// Connection `key` closed: it follows nothing any more.
    pub(super) fn unfollow_conn(&mut self, key: usize, serial: u64) {
        self.followers.by_run.retain(|_, list| {
            list.retain(|f| {
                let mine = (f.key, f.serial) == (key, serial);
                if mine {
                    f.live.unfollow();
                }
                !mine
            });
            !list.is_empty()
        });
    }

    /// At the end of a shutdown, runs still followed (queued runs kept
    /// for the restart) end their followers with the state they stand in.
    pub(super) fn end_follows(&mut self) {
        let runs: Vec<RunId> = self.followers.by_run.keys().copied().collect();
        for run in runs {
            let state = self.daemon.shared.core.lock().run(run).map(|r| r.state);
            self.pump_run(run, Some(state.unwrap_or(RunState::Cancelled)));
        }
    }

    /// A followed run printed something.
    pub(super) fn on_output(&mut self, run: RunId) {
        self.pump_run(run, None);
    }

    /// Sends each follower of `run` what is new; with `ended`, the end too.
    pub(super) fn pump_run(&mut self, run: RunId, ended: Option<RunState>) {
        let Some(list) = self.followers.by_run.remove(&run) else {
            return;
        };
        if ended.is_some() {
            // A run followed while queued that ended without a worker
            // (cancelled) left its live output in the book.
            self.daemon.shared.board.outputs.remove(run);
        }
        let mut kept = Vec::with_capacity(list.len());
        for mut f in list {
            let key = f.key;
            f.live.take_posted();
            match self.pump(run, &mut f, ended) {
                Left::Following => kept.push(f),
                Left::Ended | Left::Dropped | Left::Gone => {
                    f.live.unfollow();
                    if let Some(conn) = self.live_conn(f.key, f.serial) {
                        conn.following = conn.following.saturating_sub(1);
                    }
                }
            }
            self.flush(key);
        }
        if !kept.is_empty() {
            self.followers.by_run.insert(run, kept);
        }
    }

    /// Sends one follower what is new, and the end if the run ended.
    fn pump(&mut self, run: RunId, f: &mut Follower, ended: Option<RunState>) -> Left {
        let bound = self.limits.max_output_bytes / 2;
        let admitted = match self.conns.get(f.key).filter(|c| c.serial == f.serial) {
            Some(conn) => self.authed(conn),
            None => return Left::Gone,
        };
        if !admitted {
            // A reload changed the token under it: no more output.
            return self.drop_follower(run, f, "its credential no longer counts");
        }
        let mut last: Chunk;
        loop {
            last = f.live.read(f.offset, NOTE_BYTES);
            if last.bytes.is_empty() && last.lost == 0 {
                break;
            }
            let mut msg = Vec::with_capacity(last.bytes.len() + 128);
            match f.http {
                None => {
                    let mut params = json!({
                        "run_id": run.to_string(),
                        "offset": last.from,
                        "data": String::from_utf8_lossy(&last.bytes),
                    });
                    if last.lost > 0 {
                        params["lost"] = last.lost.into();
                    }
                    rpc::write_notification(&mut msg, "run.output", &params);
                }
                Some(h) if h.chunked => response::write_chunk(&mut msg, &last.bytes),
                Some(_) => msg.extend_from_slice(&last.bytes),
            }
            let Some(conn) = self.live_conn(f.key, f.serial) else {
                return Left::Gone;
            };
            if conn.unsent_bytes() + msg.len() > bound {
                let why = format!(
                    "{} bytes unread (more than half of max_output_bytes)",
                    conn.unsent_bytes()
                );
                return self.drop_follower(run, f, &why);
            }
            conn.push_answer(|out| out.extend_from_slice(&msg));
            f.offset = last.next();
            if last.bytes.is_empty() || f.offset >= last.end {
                break;
            }
        }
        let Some(state) = ended.or(last.ended) else {
            return Left::Following;
        };
        let Some(conn) = self.live_conn(f.key, f.serial) else {
            return Left::Gone;
        };
        match f.http {
            None => {
                let params = json!({
                    "run_id": run.to_string(),
                    "offset": f.offset,
                    "data": "",
                    "done": true,
                    "state": state.as_str(),
                });
                conn.push_answer(|out| rpc::write_notification(out, "run.output", &params));
            }
            Some(h) => {
                if h.chunked {
                    conn.push_answer(|out| out.extend_from_slice(response::LAST_CHUNK));
                }
                if h.close {
                    conn.close_after_answers(CloseCause::Requested);
                }
                let resume = conn.requests.answered();
                self.flush(f.key);
                if resume && self.conns.contains(f.key) {
                    self.reads.again.push(f.key);
                }
                self.cut_batch(f.key);
            }
        }
        Left::Ended
    }

    /// A follower that does not keep up (or whose credential stopped
    /// counting) stops following.
    fn drop_follower(&mut self, run: RunId, f: &Follower, why: &str) -> Left {
        let Some(conn) = self.live_conn(f.key, f.serial) else {
            return Left::Gone;
        };
        log::warn!(
            "connection {}: following run {run}: {why}; stopped following",
            conn.serial
        );
        match f.http {
            None => {
                let params = json!({
                    "run_id": run.to_string(),
                    "offset": f.offset,
                    "data": "",
                    "dropped": true,
                });
                conn.push_answer(|out| rpc::write_notification(out, "run.output", &params));
            }
            Some(_) => self.close(f.key, CloseCause::OutputLimit),
        }
        Left::Dropped
    }
}
