//! The journal thread and the files it writes: the journal in use and,
//! during a compaction, the new one (see `group` for the protocol).
//!
//! One round: take everything queued and write it (under the files' lock),
//! put a sealed compaction's file in place, then fdatasync the journal
//! without holding the lock (appends and writes go on meanwhile) and
//! report what is durable. The next round takes whatever queued up during
//! this one: that is the group of the next fdatasync.
//!
//! **Gathering.** Started at once, the next sync would take only the
//! requests that arrived during this one, while the clients just answered
//! are still sending their next: with many clients the groups split into
//! two halves that alternate, each paying a whole fdatasync. So a round
//! that asks for a sync first waits, for at most [`Gather::window`] (the
//! last fdatasync's duration, capped at [`MAX_GATHER`]), until as many
//! answers wait on it as the last group served plus those that came
//! during its sync: everyone who was in flight then. Answers, not records,
//! are counted: a run's later records (started, finished) are written
//! without anyone waiting on them, and counting them would make a lone
//! client wait for records that never come. One client never
//! waits (the group of one is complete as soon as it arrives); a herd of
//! clients converges on one group per fdatasync, as redis-server's
//! `appendfsync always` gets from its single loop.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::fresh::{self, Fresh};
use super::group::{Batch, Inner, Lsn, Report};
use super::journal::{self, encode_frame};
use super::record::Record;
use super::Store;

/// Zeros written ahead of the journal's end at a time (when half of them
/// are used up): see [`super::journal::Journal::reserve`].
const WRITE_AHEAD: u64 = 1024 * 1024;

/// The files, guarded by the lock of [`Inner::files`].
#[derive(Debug)]
pub(super) struct Files {
    /// The state directory and the journal in use.
    store: Store,
    /// The new journal of the compaction on, once created.
    fresh: Option<Fresh>,
    /// Batches (or their ends) for the new journal, not written to it yet:
    /// only the journal thread writes it, since a thread writing a record
    /// through holds the core lock and must not wait for a large write.
    backlog: Vec<FreshPart>,
    /// The number of the last record given to the journal in use.
    written: Lsn,
    /// The number of the last record made durable in it.
    synced: Lsn,
}

impl Files {
    pub(super) fn new(store: Store) -> Files {
        Files {
            store,
            fresh: None,
            backlog: Vec::new(),
            written: 0,
            synced: 0,
        }
    }

    /// Writes `batch` to the journal in use (unless it refuses appends
    /// after a failure) and to the compaction's new file (creating it for
    /// the first batch of a compaction). Failures are reported.
    pub(super) fn write_batch(&mut self, inner: &Inner, batch: Batch) {
        if !self.store.journal.refuses_appends() {
            for part in batch.for_journal() {
                if let Err(e) = self.store.journal.append_frames(part) {
                    (inner.report)(Report::Failed {
                        upto: batch.last,
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        self.written = self.written.max(batch.last);
        self.store.max_run_id = self.store.max_run_id.max(batch.max_run_id);
        self.publish(inner);
        match batch.fresh_from {
            Some(from) => self.backlog.push(FreshPart {
                bytes: batch.bytes,
                from,
                begins: batch.begins,
            }),
            None => {
                // A large buffer is freed here, not under the queue's lock.
                let mut queue = inner.queue.lock();
                let dropped = queue.recycle(batch.bytes);
                drop(queue);
                drop(dropped);
            }
        }
    }

    /// Writes the backlog to the compaction's new file, creating it for
    /// the first batch of a compaction (the journal thread only).
    fn flush_fresh(&mut self, inner: &Inner) {
        for part in std::mem::take(&mut self.backlog) {
            if part.begins {
                match Fresh::create(&self.store.dir) {
                    Ok(fresh) => self.fresh = Some(fresh),
                    Err(e) => {
                        self.fail_compaction(inner, &e);
                        continue;
                    }
                }
            }
            if let Some(fresh) = self.fresh.as_mut() {
                if let Err(e) = fresh.write(&part.bytes[part.from..]) {
                    self.fail_compaction(inner, &e);
                }
            }
        }
    }

    /// Gives up the compaction on: its file is removed, the queue stops
    /// feeding it, and the daemon is told.
    fn fail_compaction(&mut self, inner: &Inner, e: &std::io::Error) {
        if let Some(fresh) = self.fresh.take() {
            fresh.discard();
        }
        self.backlog.clear();
        inner.queue.lock().end_compaction();
        let upto = self.store.journal.refuses_appends().then_some(self.written);
        (inner.report)(Report::CompactionFailed {
            error: format!("journal compaction failed: {e}"),
            upto,
        });
    }

    /// Publishes the journal's size and health for the daemon.
    fn publish(&self, inner: &Inner) {
        let journal = &self.store.journal;
        inner.len.store(journal.len(), Ordering::Relaxed);
        inner
            .compacted_len
            .store(journal.compacted_len(), Ordering::Relaxed);
        inner.broken.store(journal.is_broken(), Ordering::Relaxed);
    }
}

/// Frames for the new journal: `bytes[from..]`, the rest of a batch.
#[derive(Debug)]
struct FreshPart {
    bytes: Vec<u8>,
    from: usize,
    /// The first of a compaction: its file is created first.
    begins: bool,
}

/// The longest a round waits to gather a group (see the module docs).
const MAX_GATHER: Duration = Duration::from_millis(1);

/// What the last sync tells the next round about how long to gather.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gather {
    /// Answers the next group should serve to take in everyone in flight:
    /// the last group's plus those held during its sync.
    pub(super) want: u64,
    /// The last fdatasync's duration, capped at [`MAX_GATHER`].
    pub(super) window: Duration,
}

impl Gather {
    /// After a sync for `group` answers that took `took`, while `arrived`
    /// more were held.
    pub(super) fn after(group: u64, arrived: u64, took: Duration) -> Gather {
        Gather {
            want: group.saturating_add(arrived),
            window: took.min(MAX_GATHER),
        }
    }

    /// Whether a round with `waiting` answers held and not yet synced
    /// should wait for more (given nothing else asks it to hurry).
    pub(super) fn wants_more(&self, waiting: u64) -> bool {
        waiting > 0 && waiting < self.want && !self.window.is_zero()
    }
}

/// The journal thread's loop: a round each time there is work, until
/// asked to stop (after a last round).
pub(super) fn run(inner: &Inner) {
    // Answers wait for this thread: let it run as soon as it wakes, like
    // the loop (it works for microseconds, then sleeps in fdatasync).
    crate::sys::mark_latency_sensitive();
    let mut gather = Gather::default();
    loop {
        {
            let mut queue = inner.queue.lock();
            while !queue.has_work() {
                inner.work.wait(&mut queue);
            }
            // Gathering: only for a plain sync (a stop, a sealed
            // compaction or a write without sync goes at once).
            let deadline = Instant::now() + gather.window;
            while !queue.stop
                && !queue.sealed
                && gather.wants_more(queue.answers.saturating_sub(queue.answers_handled))
                && !inner.work.wait_until(&mut queue, deadline).timed_out()
            {}
        }
        match round(inner) {
            Round::Stop => return,
            Round::Synced(next) => gather = next,
            Round::Wrote => {}
        }
    }
}

/// How a round ended.
enum Round {
    /// Asked to stop (after its last sync).
    Stop,
    /// It synced: how the next round gathers.
    Synced(Gather),
    /// It wrote without syncing (nobody waited).
    Wrote,
}

/// One round (see the module docs).
fn round(inner: &Inner) -> Round {
    let mut files = inner.files.lock();
    let (batch, stop, requested, answers, answers_before) = {
        let mut queue = inner.queue.lock();
        let answers = queue.answers;
        (
            queue.take(),
            queue.stop,
            queue.requested,
            answers,
            queue.answers_handled,
        )
    };
    let sealed = batch.sealed;
    files.write_batch(inner, batch);
    if stop {
        files.backlog.clear();
        if let Some(fresh) = files.fresh.take() {
            fresh.discard();
            inner.queue.lock().end_compaction();
        }
    } else {
        files.flush_fresh(inner);
    }
    if !stop && sealed && files.fresh.is_some() {
        files = install(inner, files);
    }
    let target = files.written;
    if requested <= files.synced && !stop && !files.store.journal.dir_unsynced() {
        // Written only: nobody waits for these records yet; the next sync
        // takes them along.
        return Round::Wrote;
    }
    let started = Instant::now();
    let error = sync(inner, files, target);
    let took = started.elapsed();
    let arrived = {
        let mut queue = inner.queue.lock();
        queue.handled = queue.handled.max(target);
        queue.last_error = error;
        queue.answers_handled = queue.answers_handled.max(answers);
        inner.handled.notify_all();
        queue.answers.saturating_sub(answers)
    };
    if stop {
        return Round::Stop;
    }
    write_ahead(inner);
    Round::Synced(Gather::after(
        answers.saturating_sub(answers_before),
        arrived,
        took,
    ))
}

/// Writes zeros ahead of the journal's end when little room is left (see
/// [`super::journal::Journal::reserve`]), after the round's sync so that
/// no answer waits for it.
fn write_ahead(inner: &Inner) {
    let mut files = inner.files.lock();
    if let Err(e) = files.store.journal.reserve(WRITE_AHEAD / 2, WRITE_AHEAD) {
        log::debug!("state/journal: {e}");
    }
}

/// fdatasyncs the journal in use up to record `target` (and its directory
/// after a compaction), without holding the files' lock while the disk
/// works, and reports the outcome. The error, if it failed.
fn sync(inner: &Inner, files: MutexGuard<'_, Files>, target: Lsn) -> Option<String> {
    if files.store.journal.refuses_appends() {
        // Nothing in it can be made durable: the records wait for the
        // compaction that rewrites the state (or are failed by it).
        return Some("the journal refuses appends until it is compacted".to_string());
    }
    let data = target > files.synced;
    if !data && !files.store.journal.dir_unsynced() {
        return None;
    }
    let (file, path) = files.store.journal.sync_handle();
    drop(files);
    log::debug!("state/journal: fdatasync of the records up to #{target}");
    let synced = if data {
        journal::sync_data(&file, &path)
    } else {
        Ok(())
    };
    // Only this thread puts a new journal in place: the one synced is
    // still the one in use.
    let mut files = inner.files.lock();
    let result = files
        .store
        .journal
        .after_sync(synced)
        .and_then(|()| files.store.journal.sync_dir());
    files.publish(inner);
    match result {
        Ok(()) => {
            files.synced = files.synced.max(target);
            inner.durable.fetch_max(target, Ordering::AcqRel);
            drop(files);
            (inner.report)(Report::Durable(target));
            None
        }
        Err(e) => {
            drop(files);
            let error = e.to_string();
            (inner.report)(Report::Failed {
                upto: target,
                error: error.clone(),
            });
            Some(error)
        }
    }
}

/// Puts a sealed compaction's new journal in place: fsyncs it without the
/// lock, then under it writes what was queued meanwhile (and the marker of
/// the highest run id, if no record in it names that id), fsyncs again,
/// and renames it over the journal. Everything written so far is then in
/// the new journal, durable once its directory is fsynced (which the
/// round's sync does).
fn install<'a>(inner: &'a Inner, files: MutexGuard<'a, Files>) -> MutexGuard<'a, Files> {
    let Some((file, path, len)) = files.fresh.as_ref().map(Fresh::sync_handle) else {
        return files;
    };
    drop(files);
    let synced = fresh::sync_file(&file, &path);
    let mut files = inner.files.lock();
    if let Err(e) = synced {
        files.fail_compaction(inner, &e);
        return files;
    }
    let batch = {
        let mut queue = inner.queue.lock();
        let batch = queue.take();
        queue.end_compaction();
        batch
    };
    let (highest, max_run_id) = (batch.fresh_highest, batch.max_run_id);
    files.write_batch(inner, batch);
    files.flush_fresh(inner);
    let Some(mut fresh) = files.fresh.take() else {
        return files;
    };
    fresh.synced_through(len);
    if highest < max_run_id {
        let mut marker = Vec::new();
        let written = encode_frame(&mut marker, &Record::Forget { run_id: max_run_id })
            .and_then(|()| fresh.write(&marker));
        if let Err(e) = written {
            files.fresh = Some(fresh);
            files.fail_compaction(inner, &e);
            return files;
        }
    }
    let from = files.store.journal.len();
    let to = fresh.len();
    match fresh.install(&files.store.dir) {
        Ok(journal) => {
            files.store.journal = journal;
            files.synced = files.written;
            files.publish(inner);
            (inner.report)(Report::Compacted { from, to });
        }
        Err(e) => {
            inner.queue.lock().end_compaction();
            let upto = files
                .store
                .journal
                .refuses_appends()
                .then_some(files.written);
            (inner.report)(Report::CompactionFailed {
                error: format!("journal compaction failed: {e}"),
                upto,
            });
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: Duration = Duration::from_micros(800);

    #[test]
    fn one_client_never_waits() {
        // A group of one, nothing arrived during its sync: the next
        // record alone is the whole next group.
        let g = Gather::after(1, 0, SYNC);
        assert!(!g.wants_more(1));
        // Nor does a record after a long quiet spell (the first round).
        assert!(!Gather::default().wants_more(1));
    }

    #[test]
    fn halves_that_alternate_are_gathered_into_one_group() {
        // 50 clients split in two: 25 synced while 25 arrived.
        let g = Gather::after(25, 25, SYNC);
        assert_eq!(g.want, 50);
        assert!(g.wants_more(25), "waits for the 25 just answered");
        assert!(g.wants_more(49));
        assert!(!g.wants_more(50));
        // Once one group of 50 syncs with nobody arriving meanwhile, the
        // next round waits for all 50 again.
        let g = Gather::after(50, 0, SYNC);
        assert!(g.wants_more(1) && !g.wants_more(50));
    }

    #[test]
    fn the_wait_is_bounded_by_the_last_sync_and_a_millisecond() {
        assert_eq!(Gather::after(25, 25, SYNC).window, SYNC);
        let slow = Gather::after(25, 25, Duration::from_millis(30));
        assert_eq!(slow.window, MAX_GATHER);
        // Nothing requested: nothing to wait for.
        assert!(!slow.wants_more(0));
    }
}
