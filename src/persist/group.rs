//! Group commit: the journal's own thread writes what the daemon appends
//! and makes it durable, many records per fdatasync, and compacts the
//! journal from a snapshot the daemon hands over in pieces while appends
//! go on.
//!
//! # Appending and making durable
//!
//! [`GroupCommit::append`] only encodes the record's frame into a queue in
//! memory and numbers it: its log sequence number ([`Lsn`], 1, 2, ...).
//! The daemon calls [`GroupCommit::request_sync`] once per loop turn; the
//! journal thread then takes everything queued, writes it with one
//! `write`, fdatasyncs, and reports [`Report::Durable`]`(n)`: every record
//! up to number `n` is on disk. While it syncs, the next turns' records
//! queue up and share the next fdatasync: the busier the daemon, the more
//! records per sync. The daemon holds every answer that depends on a
//! record until the report covering its number comes.
//!
//! A record that must be in the file before anyone can see its effect (a
//! run marked running, so that a `kill -9` right after finds it running
//! and never runs it twice) is written by its own thread at once, with
//! everything queued before it: [`GroupCommit::writer`] then
//! [`Writer::append_now`]. Writes happen only under the lock of the files,
//! and always take the whole queue, so the file holds the records in
//! their numbering order whoever writes them.
//!
//! A failed write or fdatasync is reported as [`Report::Failed`] with the
//! highest number it covered: none of those records may be taken as
//! durable. The journal is then broken (see [`super::Store`]) and nothing
//! more is written to it until a compaction rewrites the state.
//!
//! # Compaction
//!
//! The daemon calls [`GroupCommit::begin_compaction`], then hands over its
//! state in pieces with [`GroupCommit::append_snapshot`] (as many loop
//! turns as it takes), then [`GroupCommit::seal_compaction`]. From the
//! moment compaction begins, every frame queued goes to a new file
//! (`journal.tmp`) as well as to the journal in use, and the snapshot's
//! frames to the new file only, all in their numbering order. A snapshot
//! piece is the state at the moment it was taken, which is at least as
//! new as every record queued before it, and every change after it is a
//! record queued after it: replaying the new file therefore gives the
//! same state as replaying the old one (a run's latest record wins, a
//! finished run stays finished, and the last `scheduled` or `pause`
//! record of a job wins). Once sealed, the thread fsyncs the new file,
//! writes what came in meanwhile, fsyncs again, renames it over `journal`
//! and fsyncs the directory: the same crash safety as before, and the
//! loop never waits for any of it.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::journal::encode_frame;
use super::record::Record;
use super::thread::{self, Files};
use super::Store;

/// A record's number in the order the journal receives them, from 1.
pub type Lsn = u64;

/// What the journal thread tells the daemon (through the callback given to
/// [`GroupCommit::start`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Every record up to this number is durable.
    Durable(Lsn),
    /// Writing or syncing failed: the records up to `upto` that were not
    /// durable yet are not, and will not be made durable by this journal
    /// (a compaction must rewrite the state).
    Failed {
        /// The highest number the failed write or sync covered.
        upto: Lsn,
        /// What failed.
        error: String,
    },
    /// A compaction put a new journal in place.
    Compacted {
        /// Bytes of the journal it replaced.
        from: u64,
        /// Bytes of the new journal.
        to: u64,
    },
    /// A compaction failed; the journal in use stays.
    CompactionFailed {
        /// What failed.
        error: String,
        /// When the journal in use is broken: the records up to here are
        /// not durable and will not be made so.
        upto: Option<Lsn>,
    },
}

/// Where the daemon's reports go.
pub type ReportFn = Box<dyn Fn(Report) + Send + Sync>;

/// The journal, its thread and the queue in front of it.
pub struct GroupCommit {
    pub(super) inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("appended", &self.appended())
            .field("durable", &self.durable())
            .finish_non_exhaustive()
    }
}

/// What the daemon's threads and the journal thread share.
pub(super) struct Inner {
    /// The files; held while writing them (lock it before `queue`).
    pub(super) files: Mutex<Files>,
    /// Records not yet written, and the numbers.
    pub(super) queue: Mutex<Queue>,
    /// Wakes the journal thread (with `queue`).
    pub(super) work: Condvar,
    /// Wakes those waiting for a sync (with `queue`).
    pub(super) handled: Condvar,
    /// The highest number known durable.
    pub(super) durable: AtomicU64,
    /// The highest number appended (mirrors `Queue::appended`).
    pub(super) appended: AtomicU64,
    /// The journal's size in bytes, and right after the last compaction.
    pub(super) len: AtomicU64,
    pub(super) compacted_len: AtomicU64,
    /// The journal in use refuses appends until a compaction.
    pub(super) broken: AtomicBool,
    /// Where reports go.
    pub(super) report: ReportFn,
}

/// Records appended and not yet written, in order.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Their frames.
    buf: Vec<u8>,
    /// Byte ranges of `buf` for the new journal only (snapshot records).
    snapshot_only: Vec<Range<usize>>,
    /// Where in `buf` the frames the new journal gets too begin (None:
    /// no compaction is being fed).
    fresh_from: Option<usize>,
    /// A compaction has begun and not ended.
    compacting: bool,
    /// ... and no batch was taken since it began.
    begins: bool,
    /// ... and the daemon handed over all of its snapshot.
    pub(super) sealed: bool,
    /// The highest run id queued for the new journal.
    fresh_highest: u64,
    /// The highest run id ever recorded.
    max_run_id: u64,
    /// The number of the last record appended.
    appended: Lsn,
    /// Sync asked for up to here.
    pub(super) requested: Lsn,
    /// Answers that waited for a sync, counted since the start: the
    /// clients a group serves (see `thread`'s gathering).
    pub(super) answers: u64,
    /// Of those, the ones whose sync is done.
    pub(super) answers_handled: u64,
    /// Writing (without a sync) asked for up to here.
    write_wanted: Lsn,
    /// The number of the last record taken to be written.
    taken: Lsn,
    /// The journal thread is done with everything up to here (durable, or
    /// reported failed, or left for a compaction).
    pub(super) handled: Lsn,
    /// The outcome of the thread's last round, for blocking syncs.
    pub(super) last_error: Option<String>,
    /// The thread is asked to finish.
    pub(super) stop: bool,
    /// An empty buffer to swap in.
    spare: Vec<u8>,
}

/// What one take of the queue hands to the files.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The frames.
    pub(super) bytes: Vec<u8>,
    /// Ranges of `bytes` for the new journal only.
    pub(super) snapshot_only: Vec<Range<usize>>,
    /// Where the new journal's part begins, if a compaction is on.
    pub(super) fresh_from: Option<usize>,
    /// This is the first batch of a compaction: create its file.
    pub(super) begins: bool,
    /// The compaction's snapshot is complete with this batch.
    pub(super) sealed: bool,
    /// The number of the last record in it (or before it).
    pub(super) last: Lsn,
    /// The highest run id queued for the new journal so far.
    pub(super) fresh_highest: u64,
    /// The highest run id ever recorded.
    pub(super) max_run_id: u64,
}

impl Batch {
    /// The parts of `bytes` for the journal in use (all but the snapshot).
    pub(super) fn for_journal(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        let mut gaps = Vec::with_capacity(self.snapshot_only.len() + 1);
        for range in &self.snapshot_only {
            if range.start > at {
                gaps.push(at..range.start);
            }
            at = range.end;
        }
        if at < self.bytes.len() {
            gaps.push(at..self.bytes.len());
        }
        gaps.into_iter().map(|r| &self.bytes[r])
    }

    /// The part of `bytes` for the new journal, if a compaction is on.
    #[cfg(test)]
    pub(super) fn for_fresh(&self) -> Option<&[u8]> {
        self.fresh_from.map(|from| &self.bytes[from..])
    }
}

impl Queue {
    /// A queue whose next record is numbered `next` (1 for a new one).
    pub(super) fn new(max_run_id: u64) -> Queue {
        Queue {
            max_run_id,
            ..Queue::default()
        }
    }

    /// Appends `record`; its number.
    pub(super) fn push(&mut self, record: &Record) -> std::io::Result<Lsn> {
        encode_frame(&mut self.buf, record)?;
        Ok(self.numbered(record))
    }

    /// Numbers a record just encoded and notes its run id.
    fn numbered(&mut self, record: &Record) -> Lsn {
        self.appended += 1;
        if let Some(id) = record.run_id() {
            self.max_run_id = self.max_run_id.max(id);
            if self.compacting {
                self.fresh_highest = self.fresh_highest.max(id);
            }
        }
        self.appended
    }

    /// Appends snapshot records for the new journal only; false (nothing
    /// appended) when no compaction is being fed.
    pub(super) fn push_snapshot(&mut self, records: &[Record]) -> std::io::Result<bool> {
        if !self.compacting || self.sealed {
            return Ok(false);
        }
        for record in records {
            let start = self.buf.len();
            encode_frame(&mut self.buf, record)?;
            self.numbered(record);
            match self.snapshot_only.last_mut() {
                Some(last) if last.end == start => last.end = self.buf.len(),
                _ => self.snapshot_only.push(start..self.buf.len()),
            }
        }
        Ok(true)
    }

    /// Begins a compaction: what is queued from now on goes to the new
    /// journal too. False if one is on already.
    pub(super) fn begin(&mut self) -> bool {
        if self.compacting {
            return false;
        }
        self.compacting = true;
        self.begins = true;
        self.sealed = false;
        self.fresh_from = Some(self.buf.len());
        self.fresh_highest = 0;
        true
    }

    /// The snapshot is complete.
    pub(super) fn seal(&mut self) {
        if self.compacting {
            self.sealed = true;
        }
    }

    /// Ends the compaction (put in place, or given up).
    pub(super) fn end_compaction(&mut self) {
        self.compacting = false;
        self.begins = false;
        self.sealed = false;
        self.fresh_from = None;
        self.fresh_highest = 0;
    }

    /// Asks for a sync of everything appended, for `answers` more answers
    /// that wait on it; true if that is more than was asked before.
    pub(super) fn request(&mut self, answers: u64) -> bool {
        self.answers += answers;
        if self.appended > self.requested {
            self.requested = self.appended;
            return true;
        }
        false
    }

    /// Asks for everything appended to be written (not synced); true if
    /// some of it is not written yet and was not asked for before.
    pub(super) fn request_write(&mut self) -> bool {
        if self.appended > self.write_wanted.max(self.taken) {
            self.write_wanted = self.appended;
            return true;
        }
        false
    }

    /// Whether the journal thread has something to do.
    pub(super) fn has_work(&self) -> bool {
        self.stop
            || self.requested > self.handled
            || self.write_wanted > self.taken
            || (self.sealed && self.compacting)
    }

    /// The number of the last record appended.
    pub(super) fn appended(&self) -> Lsn {
        self.appended
    }

    /// Takes everything queued.
    pub(super) fn take(&mut self) -> Batch {
        let mut bytes = std::mem::take(&mut self.spare);
        std::mem::swap(&mut bytes, &mut self.buf);
        let batch = Batch {
            bytes,
            snapshot_only: std::mem::take(&mut self.snapshot_only),
            fresh_from: self.fresh_from,
            begins: std::mem::take(&mut self.begins),
            sealed: self.sealed,
            last: self.appended,
            fresh_highest: self.fresh_highest,
            max_run_id: self.max_run_id,
        };
        self.taken = self.appended;
        if self.compacting {
            self.fresh_from = Some(0);
        }
        batch
    }

    /// Gives a written batch's buffer back for reuse (a small one only);
    /// returns what is not kept, to free outside the lock.
    pub(super) fn recycle(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        const KEEP: usize = 1024 * 1024;
        if bytes.capacity() <= KEEP && bytes.capacity() > self.spare.capacity() {
            bytes.clear();
            return std::mem::replace(&mut self.spare, bytes);
        }
        bytes
    }
}

impl GroupCommit {
    /// Takes over `store` and starts the journal thread; `report` is called
    /// (from the journal thread, or a thread writing through
    /// [`Writer::append_now`]) with every outcome.
    pub fn start(store: Store, report: ReportFn) -> std::io::Result<GroupCommit> {
        let inner = Arc::new(Inner {
            len: AtomicU64::new(store.journal.len()),
            compacted_len: AtomicU64::new(store.journal.compacted_len()),
            broken: AtomicBool::new(store.journal.is_broken()),
            queue: Mutex::new(Queue::new(store.max_run_id)),
            files: Mutex::new(Files::new(store)),
            work: Condvar::new(),
            handled: Condvar::new(),
            durable: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            report,
        });
        let for_thread = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("tickd-journal".into())
            .spawn(move || thread::run(&for_thread))?;
        Ok(GroupCommit {
            inner,
            thread: Mutex::new(Some(handle)),
        })
    }

    /// Queues `record`; returns its number. It is written and made durable
    /// after the next [`GroupCommit::request_sync`] (see
    /// [`Report::Durable`]). Fails only for a record that cannot be
    /// encoded (over [`super::MAX_RECORD_BYTES`]): nothing is queued then.
    pub fn append(&self, record: &Record) -> std::io::Result<Lsn> {
        let mut queue = self.inner.queue.lock();
        let lsn = queue.push(record)?;
        self.inner.appended.store(lsn, Ordering::Release);
        Ok(lsn)
    }

    /// Locks the files, to write a record at once with
    /// [`Writer::append_now`] (lock order: this, then any lock of the
    /// caller's, then the queue).
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            inner: &self.inner,
            files: self.inner.files.lock(),
        }
    }

    /// Asks the journal thread to write and sync everything appended so
    /// far (a no-op when nothing was appended since the last call): called
    /// at the end of each loop turn that holds answers.
    pub fn request_sync(&self) {
        self.request_sync_for(0);
    }

    /// [`GroupCommit::request_sync`] for `answers` answers held until it
    /// is done (the count tells the journal thread how many clients a
    /// group serves: see `thread`'s gathering).
    pub fn request_sync_for(&self, answers: u64) {
        if self.inner.queue.lock().request(answers) {
            self.inner.work.notify_one();
        }
    }

    /// Asks the journal thread to write everything appended so far, without
    /// a sync: the end of a loop turn that holds no answer. Its records
    /// survive a `kill -9` once written; a power loss once a later sync
    /// covers them (the next one someone waits for, or the one at exit).
    pub fn request_write(&self) {
        if self.inner.queue.lock().request_write() {
            self.inner.work.notify_one();
        }
    }

    /// Writes and syncs everything appended so far and waits for it (at
    /// start and at exit, never on a busy loop).
    pub fn sync_blocking(&self) -> std::io::Result<()> {
        let mut queue = self.inner.queue.lock();
        queue.request(0);
        let target = queue.appended();
        self.inner.work.notify_one();
        while queue.handled < target && !queue.stop {
            let timed_out = self
                .inner
                .handled
                .wait_for(&mut queue, std::time::Duration::from_millis(100))
                .timed_out();
            if timed_out && self.thread.lock().as_ref().is_none_or(|t| t.is_finished()) {
                break;
            }
        }
        if self.durable() >= target {
            return Ok(());
        }
        Err(std::io::Error::other(
            queue.last_error.clone().unwrap_or_else(|| {
                "state/journal: the journal could not be made durable".to_string()
            }),
        ))
    }

    /// The number of the last record appended.
    pub fn appended(&self) -> Lsn {
        self.inner.appended.load(Ordering::Acquire)
    }

    /// The highest number known durable.
    pub fn durable(&self) -> Lsn {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// True when the journal has grown past max(1 MiB, 4 × its size after
    /// the last compaction), or refuses appends after a failed write or
    /// sync (see [`Store::needs_compaction`]).
    pub fn needs_compaction(&self) -> bool {
        fail::fail_point!("journal.compact_now", |_| true);
        let limit = super::COMPACT_MIN_BYTES
            .max(super::COMPACT_GROWTH * self.inner.compacted_len.load(Ordering::Relaxed));
        self.inner.broken.load(Ordering::Relaxed) || self.inner.len.load(Ordering::Relaxed) > limit
    }

    /// The journal's size in bytes.
    pub fn journal_len(&self) -> u64 {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Begins a compaction (see the module docs); false if one is on.
    pub fn begin_compaction(&self) -> bool {
        self.inner.queue.lock().begin()
    }

    /// Hands over a piece of the snapshot; false when the compaction is
    /// over (it failed): stop handing over. An error is a record that
    /// cannot be encoded (the compaction goes on without it).
    pub fn append_snapshot(&self, records: &[Record]) -> std::io::Result<bool> {
        let mut queue = self.inner.queue.lock();
        let fed = queue.push_snapshot(records);
        self.inner
            .appended
            .store(queue.appended(), Ordering::Release);
        fed
    }

    /// The snapshot is complete: the thread puts the new journal in place.
    pub fn seal_compaction(&self) {
        self.inner.queue.lock().seal();
        self.inner.work.notify_one();
    }

    /// Writes and syncs what is queued, drops any compaction not yet put in
    /// place, and stops the thread. Later appends are lost; calling it
    /// again does nothing.
    pub fn close(&self) -> std::io::Result<()> {
        let synced = self.sync_blocking();
        self.inner.queue.lock().stop = true;
        self.inner.work.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                log::error!("state/journal: the journal thread panicked");
            }
        }
        synced
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if self.thread.lock().is_some() {
            if let Err(e) = self.close() {
                log::warn!("state/journal: at exit: {e}");
            }
        }
    }
}

/// The files, locked: writes records at once.
pub struct Writer<'a> {
    inner: &'a Inner,
    files: MutexGuard<'a, Files>,
}

impl Writer<'_> {
    /// Appends `record` and writes it, with everything queued before it,
    /// before returning: it survives a `kill -9` from then on (a power
    /// loss once a [`Report::Durable`] covers its number). A failed write
    /// is reported as [`Report::Failed`]; an error here is a record that
    /// cannot be encoded.
    pub fn append_now(&mut self, record: &Record) -> std::io::Result<Lsn> {
        let batch = {
            let mut queue = self.inner.queue.lock();
            let lsn = queue.push(record)?;
            self.inner.appended.store(lsn, Ordering::Release);
            queue.take()
        };
        let last = batch.last;
        self.files.write_batch(self.inner, batch);
        Ok(last)
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
