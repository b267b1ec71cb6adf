//! Answers held until the journal has made durable what they acknowledge
//! (group commit, with `state_dir`).
//!
//! A command's answer, and the final answer of a request that waited on a
//! run, goes out only once every record the journal had received when it
//! was computed is durable. If the journal's last record (its number, a
//! [`Lsn`]) is not known durable yet, the answer keeps its place in the
//! connection's answer order (later answers park behind it, as behind a
//! request waiting on a run) and joins the [`CommitQueue`] under that
//! number. The journal thread's reports let them go, in order:
//! [`Report::Durable`]`(n)` releases every answer held for `n` or below;
//! a failure ([`Report::Failed`], or a compaction that failed while the
//! journal refuses appends) answers every one it covers with error
//! -32603 ([`daemon::Error::NotDurable`]) instead of its result: none of
//! them is answered ok. An answer that was an error stays that error.
//!
//! Records the loop appends in one turn share one fdatasync (the loop asks
//! for it at the end of the turn), and so do all the turns that pass while
//! the previous fdatasync runs: the answers of all of them go out together.

use super::Server;
use crate::daemon;
use crate::persist::{Lsn, Report};
use crate::requests::ReplyTo;
use serde_json::Value;
use std::collections::VecDeque;

/// An answer waiting for the journal.
#[derive(Debug)]
pub struct Held {
    /// The record number that must be durable first.
    pub lsn: Lsn,
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial, against a reused key.
    pub serial: u64,
    /// The answer's place in the connection's answer order.
    pub seq: u64,
    /// Where and how to answer.
    pub to: ReplyTo,
    /// The answer.
    pub answer: Result<Value, daemon::Error>,
}

/// The answers waiting for the journal, in the order of their numbers.
#[derive(Debug, Default)]
pub struct CommitQueue {
    held: VecDeque<Held>,
    /// Answers held whose sync was not asked for yet.
    unasked: u64,
}

impl CommitQueue {
    /// Holds `held`. Numbers come in never decreasing (each is the
    /// journal's last record when the answer was computed).
    pub fn push(&mut self, held: Held) {
        debug_assert!(self.held.back().is_none_or(|h| h.lsn <= held.lsn));
        self.held.push_back(held);
        self.unasked += 1;
    }

    /// How many answers were held since the sync was last asked for
    /// (then zero: the caller asks for it).
    pub fn take_unasked(&mut self) -> u64 {
        std::mem::take(&mut self.unasked)
    }

    /// Takes every answer held for `upto` or below, in order.
    pub fn release(&mut self, upto: Lsn) -> Vec<Held> {
        let n = self.held.partition_point(|h| h.lsn <= upto);
        self.held.drain(..n).collect()
    }

    /// How many answers are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

impl Server {
    /// Gives a command's answer, now if nothing the journal received is
    /// waiting to be made durable, or else once it is (see the module
    /// docs). `seq`: the place the answer already holds (a request that
    /// waited on a run), or None to take the next one.
    pub(super) fn answer_durably(
        &mut self,
        key: usize,
        serial: u64,
        seq: Option<u64>,
        to: ReplyTo,
        answer: Result<Value, daemon::Error>,
    ) {
        let wait = self.daemon.shared.journal_wait();
        let Some(conn) = self.live_conn(key, serial) else {
            return;
        };
        let Some(lsn) = wait else {
            let write = |out: &mut Vec<u8>| to.write(out, answer.as_ref());
            match seq {
                Some(seq) => {
                    conn.fill_waiting(seq, write);
                }
                None => conn.push_answer(write),
            }
            return;
        };
        let seq = seq.unwrap_or_else(|| {
            let seq = conn.take_seq();
            conn.push_waiting(seq);
            seq
        });
        self.commits.push(Held {
            lsn,
            key,
            serial,
            seq,
            to,
            answer,
        });
    }

    /// At the end of a loop turn: what the turn appended to the journal is
    /// written, and synced as one group when answers wait on it. (While
    /// the journal thread is busy with the previous sync, the turns that
    /// pass add to the next group.)
    pub(super) fn commit_turn(&mut self) {
        let answers = self.commits.take_unasked();
        if answers > 0 {
            self.daemon.shared.sync_journal(answers);
        } else {
            self.daemon.shared.write_journal();
        }
    }

    /// Takes a report of the journal thread: the daemon's bookkeeping, then
    /// the answers it releases (or fails).
    pub(super) fn on_journal(&mut self, report: &Report) {
        self.daemon.on_journal(report);
        let (upto, failure) = match report {
            Report::Durable(upto) => (*upto, None),
            Report::Failed { upto, error }
            | Report::CompactionFailed {
                upto: Some(upto),
                error,
            } => (*upto, Some(error)),
            Report::Compacted { .. } | Report::CompactionFailed { upto: None, .. } => return,
        };
        let mut keys = Vec::new();
        for held in self.commits.release(upto) {
            let Some(conn) = self.live_conn(held.key, held.serial) else {
                continue;
            };
            let answer = match (failure, held.answer) {
                (Some(why), Ok(_)) => Err(daemon::Error::NotDurable(why.clone())),
                (_, answer) => answer,
            };
            conn.fill_waiting(held.seq, |out| held.to.write(out, answer.as_ref()));
            keys.push(held.key);
        }
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.flush(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(lsn: Lsn, key: usize) -> Held {
        Held {
            lsn,
            key,
            serial: 1,
            seq: 0,
            to: ReplyTo::Nobody,
            answer: Ok(Value::Null),
        }
    }

    fn keys(h: &[Held]) -> Vec<(Lsn, usize)> {
        h.iter().map(|h| (h.lsn, h.key)).collect()
    }

    #[test]
    fn durable_up_to_n_releases_exactly_the_answers_held_for_n_or_below_in_order() {
        let mut q = CommitQueue::default();
        // Several answers per number (one turn's commands), several numbers.
        for (lsn, key) in [(3, 1), (3, 2), (5, 1), (8, 3), (8, 1), (9, 2)] {
            q.push(held(lsn, key));
        }
        assert!(q.release(2).is_empty(), "nothing is durable that early");
        assert_eq!(keys(&q.release(3)), [(3, 1), (3, 2)]);
        assert_eq!(keys(&q.release(7)), [(5, 1)], "a number in between");
        assert_eq!(q.len(), 3);
        assert!(q.release(7).is_empty(), "each released once");
        assert_eq!(keys(&q.release(100)), [(8, 3), (8, 1), (9, 2)]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn answers_held_after_a_release_wait_for_the_next() {
        let mut q = CommitQueue::default();
        q.push(held(4, 1));
        assert_eq!(keys(&q.release(4)), [(4, 1)]);
        q.push(held(4, 2));
        q.push(held(6, 2));
        assert_eq!(keys(&q.release(5)), [(4, 2)]);
        assert_eq!(keys(&q.release(6)), [(6, 2)]);
    }
}
