//! A run's output while it runs, and where it is kept after (`runs.output`,
//! `GET /runs/ID/output`).
//!
//! Three threads meet here:
//! - the worker running the job pushes each piece its child prints into the
//!   run's [`Live`] (and, with `daemon.output_dir`, into its file, see
//!   [`dir`]): never the event loop, so no disk write ever blocks it;
//! - request threads read what a run printed so far ([`Live::read`]) to
//!   answer `runs.output`;
//! - the event loop, for the clients that follow a run, copies what is new
//!   since each one's offset (at most [`LIVE_TAIL_BYTES`] a time) when the
//!   worker posts that there is something ([`Live::push`] says when to).
//!
//! A [`Live`] keeps the last [`LIVE_TAIL_BYTES`] with their offsets in the
//! whole output (bytes as written, stdout and stderr merged), so readers
//! ask "from offset N" and learn how much was lost if they ask too late.
//! The [`Book`] maps running (and followed) runs to their `Live`; the
//! worker removes its run's entry when the run ends. Memory: one tail per
//! running exec run, whatever the job prints.

pub mod dir;

use crate::state::run::{RunId, RunMap, RunState};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub use dir::{FileSink, OutputDir};

/// How much of a running run's output is kept in memory: the last 64 KiB,
/// as the run object's `output` keeps.
pub const LIVE_TAIL_BYTES: usize = crate::jobs::output::OUTPUT_TAIL_BYTES;

/// The output of one run so far: its tail, and where that tail starts.
#[derive(Debug, Default)]
pub struct Live {
    inner: Mutex<Inner>,
    /// Clients following this run (the loop's count): while zero, the
    /// worker tells nobody that output arrived.
    followers: AtomicUsize,
    /// The worker has posted that output arrived, and the loop has not
    /// taken the news yet: later pieces post nothing more.
    posted: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    tail: VecDeque<u8>,
    /// The offset of `tail[0]` in the whole output.
    start: u64,
    /// The run's final state, once it has ended.
    ended: Option<RunState>,
}

/// A piece read from a [`Live`].
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The offset of its first byte (raised above the one asked for when
    /// those bytes are no longer kept).
    pub from: u64,
    /// Bytes asked for that are no longer kept.
    pub lost: u64,
    /// Bytes written so far (the offset after the last one).
    pub end: u64,
    /// The run's final state, if it has ended.
    pub ended: Option<RunState>,
}

impl Chunk {
    /// The offset after its last byte.
    pub fn next(&self) -> u64 {
        self.from + self.bytes.len() as u64
    }
}

impl Live {
    /// Appends output; true if the loop must be told (someone follows and
    /// no news is pending).
    pub fn push(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        {
            let mut inner = self.inner.lock();
            let cap = LIVE_TAIL_BYTES;
            let keep = &bytes[bytes.len().saturating_sub(cap)..];
            let overflow = (inner.tail.len() + keep.len()).saturating_sub(cap);
            let dropped = overflow + (bytes.len() - keep.len());
            inner.tail.drain(..overflow);
            inner.tail.extend(keep);
            inner.start += dropped as u64;
        }
        self.should_post()
    }

    /// The run has ended in `state`; true if the loop must be told.
    pub fn end(&self, state: RunState) -> bool {
        self.inner.lock().ended = Some(state);
        self.should_post()
    }

    fn should_post(&self) -> bool {
        self.followers.load(Ordering::SeqCst) > 0 && !self.posted.swap(true, Ordering::SeqCst)
    }

    /// The loop takes the news before it reads: output pushed after this
    /// posts again.
    pub fn take_posted(&self) {
        self.posted.store(false, Ordering::SeqCst);
    }

    /// One more client follows (the loop reads right after, so nothing
    /// pushed before is missed).
    pub fn follow(&self) {
        self.followers.fetch_add(1, Ordering::SeqCst);
    }

    /// A client stopped following.
    pub fn unfollow(&self) {
        let _ = self
            .followers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Up to `max` bytes from offset `from` (at least one byte if any is
    /// kept at or after it). An incomplete UTF-8 character at the end of
    /// what is kept is left for the next read while the run goes on, so a
    /// reader that follows never sees one cut in two.
    pub fn read(&self, from: u64, max: usize) -> Chunk {
        let inner = self.inner.lock();
        let end = inner.start + inner.tail.len() as u64;
        let first = from.clamp(inner.start, end);
        let lost = first - from.min(first);
        let skip = usize::try_from(first - inner.start).unwrap_or(usize::MAX);
        let n = (inner.tail.len() - skip).min(max.max(1));
        let mut bytes: Vec<u8> = inner.tail.range(skip..skip + n).copied().collect();
        if inner.ended.is_none() || skip + n < inner.tail.len() {
            bytes.truncate(utf8_whole(&bytes));
        }
        Chunk {
            bytes,
            from: first,
            lost,
            end,
            ended: inner.ended,
        }
    }

    /// The offset of the first byte kept (what the run object's `output`
    /// starts with once the run ends).
    pub fn start(&self) -> u64 {
        self.inner.lock().start
    }
}

/// The length of `bytes` without an incomplete UTF-8 character at its end
/// (a valid start of one that is missing its last bytes).
pub fn utf8_whole(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let b = bytes[len - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return len, // ASCII or not a lead byte: nothing to hold
        };
        return if back < need { len - back } else { len };
    }
    len
}

/// The runs whose output is live, and the output directory if any.
#[derive(Debug, Default)]
pub struct Book {
    live: Mutex<RunMap<Arc<Live>>>,
    /// `daemon.output_dir`, opened at start (set once).
    dir: std::sync::OnceLock<Arc<OutputDir>>,
}

impl Book {
    /// Sets the output directory (at start, once).
    pub fn set_dir(&self, dir: OutputDir) {
        let _ = self.dir.set(Arc::new(dir));
    }

    /// The output directory, if `daemon.output_dir` is set.
    pub fn dir(&self) -> Option<&Arc<OutputDir>> {
        self.dir.get()
    }

    /// The live output of run `id`, made if it has none yet (by its worker
    /// at start, or by a client that follows a run still queued).
    pub fn open(&self, id: RunId) -> Arc<Live> {
        Arc::clone(self.live.lock().entry(id).or_default())
    }

    /// The live output of run `id`, if it is running or followed.
    pub fn get(&self, id: RunId) -> Option<Arc<Live>> {
        self.live.lock().get(&id).cloned()
    }

    /// Forgets run `id` (it has ended; its followers keep their `Arc`).
    pub fn remove(&self, id: RunId) {
        self.live.lock().remove(&id);
    }

    /// How many runs have live output (for tests and bounds).
    pub fn len(&self) -> usize {
        self.live.lock().len()
    }

    /// Whether no run has live output.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_every_byte_and_lost_ones_are_told() {
        let live = Live::default();
        assert!(!live.push(b"hello "), "nobody follows");
        live.push(b"world");
        let c = live.read(0, 100);
        assert_eq!(
            (c.bytes.as_slice(), c.from, c.lost, c.end),
            (&b"hello world"[..], 0, 0, 11)
        );
        let c = live.read(6, 3);
        assert_eq!((c.bytes.as_slice(), c.next()), (&b"wor"[..], 9));
        let big = vec![b'x'; LIVE_TAIL_BYTES + 10];
        live.push(&big);
        let c = live.read(0, 5);
        assert_eq!((c.from, c.lost), (21, 21));
        assert_eq!(c.end, 11 + big.len() as u64);
        let c = live.read(c.end + 50, 5);
        assert!(
            c.bytes.is_empty() && c.from == c.end,
            "past the end: nothing"
        );
    }

    #[test]
    fn one_post_until_the_loop_takes_it() {
        let live = Live::default();
        live.follow();
        assert!(live.push(b"a"));
        assert!(!live.push(b"b"), "already posted");
        live.take_posted();
        assert!(live.end(RunState::Succeeded));
        live.unfollow();
        live.unfollow();
        live.take_posted();
        assert!(!live.push(b"c"), "nobody follows any more");
    }

    #[test]
    fn a_cut_character_waits_for_its_end() {
        let live = Live::default();
        live.push("é".as_bytes().split_at(1).0);
        assert!(live.read(0, 10).bytes.is_empty());
        live.push(&"é".as_bytes()[1..]);
        assert_eq!(live.read(0, 10).bytes, "é".as_bytes());
        assert_eq!(utf8_whole(b"ab\xF0\x9F\x98"), 2);
        assert_eq!(utf8_whole(b"ab\xF0\x9F\x98\x80"), 6);
        assert_eq!(utf8_whole(b"ab\xFF"), 3);
        live.end(RunState::Failed);
        live.push(b"\xC3");
        assert_eq!(live.read(2, 10).bytes, b"\xC3", "ended: everything");
    }
}
