//! Tests of group commit: the queue's numbering and batches, and the
//! journal thread on real files (appends made durable, writes through the
//! queue, compaction while appends go on).

use super::*;
use crate::persist::{Recovered, RunRecord};
use crate::state::run::{Run, RunState, Trigger};
use crossbeam_channel::{Receiver, Sender};
use std::time::Duration;

fn forget(id: u64) -> Record {
    Record::Forget { run_id: id }
}

fn pause(job: &str, paused: bool) -> Record {
    Record::Pause {
        job: job.to_string(),
        paused,
    }
}

fn run(id: u64, state: RunState) -> Record {
    let mut r = Run::queued(id, Some(format!("job{}", id % 5)), Trigger::Manual, 1);
    let at = |ms| crate::time::from_unix_millis(ms).expect("valid timestamp");
    r.queued_at = at(1_700_000_000_000 + id as i64);
    r.state = state;
    if state.is_terminal() {
        r.finished_at = Some(at(1_700_000_001_000));
    }
    Record::Run(RunRecord::from_run(&r, None, None))
}

/// A store in a fresh directory, under group commit; its reports.
fn start(dir: &std::path::Path) -> (GroupCommit, Receiver<Report>) {
    let (store, _) = Store::open(dir).expect("store opens");
    let (tx, rx): (Sender<Report>, Receiver<Report>) = crossbeam_channel::unbounded();
    let gc = GroupCommit::start(store, Box::new(move |r| drop(tx.send(r)))).expect("starts");
    (gc, rx)
}

/// Waits for a report matching `want`, skipping others.
fn wait_for(rx: &Receiver<Report>, what: &str, want: impl Fn(&Report) -> bool) -> Report {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) if want(&r) => return r,
            Ok(_) => {}
            Err(_) => panic!("no report: {what}"),
        }
    }
}

fn reopen(dir: &std::path::Path) -> Recovered {
    Store::open(dir).expect("store reopens").1
}

#[test]
fn the_queue_numbers_records_and_hands_them_over_in_one_batch() {
    let mut q = Queue::new(7);
    assert_eq!(q.push(&forget(1)).expect("push"), 1);
    assert_eq!(q.push(&pause("a", true)).expect("push"), 2);
    assert!(q.request(1), "more to sync than asked before");
    assert!(!q.request(1), "nothing new");
    assert!(q.has_work());
    let batch = q.take();
    assert_eq!(batch.last, 2);
    assert_eq!(batch.max_run_id, 7);
    assert_eq!(batch.for_fresh(), None, "no compaction");
    let parts: Vec<&[u8]> = batch.for_journal().collect();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0], &batch.bytes[..]);
    // The next batch starts empty, numbering goes on.
    assert_eq!(q.push(&forget(9)).expect("push"), 3);
    assert_eq!(q.take().last, 3);
}

#[test]
fn snapshot_frames_go_to_the_new_journal_only_and_in_order() {
    let mut q = Queue::new(0);
    q.push(&forget(1)).expect("before the compaction");
    assert!(
        !q.push_snapshot(&[pause("x", true)]).expect("push"),
        "no compaction: not taken"
    );
    assert!(q.begin());
    assert!(!q.begin(), "one at a time");
    q.push(&forget(2)).expect("push");
    assert!(q
        .push_snapshot(&[pause("a", true), pause("b", true)])
        .expect("push"));
    q.push(&forget(3)).expect("push");
    let batch = q.take();
    assert!(batch.begins && !batch.sealed);
    assert_eq!(batch.last, 5);
    assert_eq!(
        batch.fresh_highest, 3,
        "ids queued since the compaction began"
    );
    let frames = |bytes: &[u8]| super::super::journal::read_frames(bytes, 0).records;
    let journal: Vec<Record> = batch.for_journal().flat_map(frames).collect();
    assert_eq!(journal, [forget(1), forget(2), forget(3)]);
    let fresh = frames(batch.for_fresh().expect("a compaction is on"));
    assert_eq!(
        fresh,
        [forget(2), pause("a", true), pause("b", true), forget(3)]
    );
    // Later batches go to both from their start, until the end.
    q.push(&forget(4)).expect("push");
    q.seal();
    let next = q.take();
    assert!(!next.begins && next.sealed);
    assert_eq!(next.fresh_from, Some(0));
    q.end_compaction();
    q.push(&forget(5)).expect("push");
    assert_eq!(q.take().fresh_from, None);
}

#[test]
fn appended_records_are_written_and_synced_together_then_reported_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, rx) = start(dir.path());
    for id in 1..=50 {
        assert_eq!(gc.append(&forget(id)).expect("append"), id);
    }
    assert_eq!(gc.appended(), 50);
    assert_eq!(gc.durable(), 0, "nothing synced before it is asked");
    gc.request_sync();
    let report = wait_for(&rx, "durable", |r| matches!(r, Report::Durable(_)));
    assert_eq!(report, Report::Durable(50), "one sync for the fifty");
    assert_eq!(gc.durable(), 50);
    gc.append(&pause("a", true)).expect("append");
    gc.sync_blocking().expect("sync");
    assert_eq!(gc.durable(), 51);
    gc.close().expect("close");
    drop(gc);
    let state = reopen(dir.path());
    assert_eq!(state.max_run_id, 50);
    assert!(state.paused.contains("a"));
}

#[test]
fn a_record_written_through_takes_the_queue_before_it_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, _rx) = start(dir.path());
    gc.append(&run(1, RunState::Queued)).expect("append");
    let lsn = gc
        .writer()
        .append_now(&run(1, RunState::Running))
        .expect("append now");
    assert_eq!(lsn, 2);
    // In the file (page cache) now, in order, though never synced: a
    // kill -9 here keeps both.
    let bytes = std::fs::read(dir.path().join("journal")).expect("journal");
    let records = super::super::journal::read_frames(&bytes, HEADER_LEN).records;
    assert_eq!(
        records,
        [run(1, RunState::Queued), run(1, RunState::Running)]
    );
    drop(gc);
}

const HEADER_LEN: usize = super::super::journal::HEADER.len();

/// Appends from another thread go on while the snapshot is handed over in
/// pieces: the new journal, once in place, replays to the same state as
/// every record would.
#[test]
fn compaction_while_appends_go_on_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, rx) = start(dir.path());
    // History before the compaction: runs 1..=300 finished, job pauses.
    let mut all: Vec<Record> = Vec::new();
    for id in 1..=300 {
        for record in [run(id, RunState::Queued), run(id, RunState::Succeeded)] {
            gc.append(&record).expect("append");
            all.push(record);
        }
    }
    for job in ["a", "b"] {
        gc.append(&pause(job, true)).expect("append");
        all.push(pause(job, true));
    }
    gc.sync_blocking().expect("sync");
    let gc = Arc::new(gc);
    assert!(gc.begin_compaction());
    // The snapshot as memory holds it (runs 1..=300 finished, a and b
    // paused), handed over in pieces while a writer appends and writes
    // through new runs; then a resume, after the pieces that say paused.
    let writer = {
        let gc = Arc::clone(&gc);
        std::thread::spawn(move || {
            let mut more = Vec::new();
            for id in 301..=600 {
                gc.append(&run(id, RunState::Queued)).expect("append");
                more.push(run(id, RunState::Queued));
                let now = run(id, RunState::Running);
                gc.writer().append_now(&now).expect("append now");
                more.push(now);
                if id % 50 == 0 {
                    gc.request_sync();
                }
            }
            more
        })
    };
    let snapshot: Vec<Record> = all.clone();
    for piece in snapshot.chunks(64) {
        assert!(gc.append_snapshot(piece).expect("snapshot"));
        gc.request_sync();
    }
    let mut more = writer.join().expect("writer");
    gc.append(&pause("a", false)).expect("append");
    more.push(pause("a", false));
    gc.seal_compaction();
    let compacted = wait_for(&rx, "compacted", |r| {
        matches!(
            r,
            Report::Compacted { .. } | Report::CompactionFailed { .. }
        )
    });
    let Report::Compacted { from, to } = compacted else {
        panic!("{compacted:?}");
    };
    assert!(to > 0 && from > 0, "{compacted:?}");
    all.extend(more);
    gc.append(&forget(601)).expect("after the compaction");
    all.push(forget(601));
    gc.close().expect("close");
    drop(gc);
    let want = Recovered::fold(all);
    let got = reopen(dir.path());
    assert_eq!(got.runs, want.runs);
    assert_eq!(got.paused, want.paused);
    assert_eq!(got.max_run_id, 601);
    assert!(got.warnings.is_empty(), "{:?}", got.warnings);
}

#[test]
fn a_compaction_keeps_the_highest_run_id_and_shrinks_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, rx) = start(dir.path());
    for id in 1..=2000 {
        gc.append(&run(id, RunState::Succeeded)).expect("append");
    }
    gc.sync_blocking().expect("sync");
    let before = gc.journal_len();
    assert!(gc.begin_compaction());
    // Memory kept only run 10.
    assert!(gc
        .append_snapshot(&[run(10, RunState::Succeeded)])
        .expect("snapshot"));
    gc.seal_compaction();
    let report = wait_for(&rx, "compacted", |r| matches!(r, Report::Compacted { .. }));
    assert!(
        matches!(report, Report::Compacted { from, to } if from == before && to < before / 100),
        "{report:?} from {before}"
    );
    assert!(gc.journal_len() < before / 100);
    gc.sync_blocking().expect("the directory is synced too");
    gc.close().expect("close");
    drop(gc);
    let state = reopen(dir.path());
    assert_eq!(state.runs.len(), 1);
    assert_eq!(state.max_run_id, 2000, "ids are never reused");
}
