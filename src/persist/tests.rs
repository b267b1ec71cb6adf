//! Tests of the store as the daemon uses it: real files in a temporary
//! directory, reopened the way a restart would, damaged the way crashes and
//! bad disks damage them.

use super::journal::{self, encode_frame, read_frames, HEADER};
use super::*;
use crate::state::run::{Run, RunState, Trigger};
use std::fs;
use std::os::unix::fs::PermissionsExt;

pub(super) fn at(ms: i64) -> Timestamp {
    crate::time::from_unix_millis(ms).expect("valid timestamp")
}

fn run(id: u64, state: RunState, output: &str) -> RunRecord {
    let mut r = Run::queued(id, Some(format!("job{}", id % 3)), Trigger::Manual, 1);
    r.queued_at = at(1_700_000_000_000 + id as i64);
    r.state = state;
    r.output = output.to_string();
    if state.is_terminal() {
        r.finished_at = Some(at(1_700_000_001_000));
        r.exit_code = Some(0);
    }
    RunRecord::from_run(&r, Some(serde_json::json!({"id": id})), None)
}

fn scheduled(job: &str, ms: i64) -> Record {
    Record::Scheduled {
        job: job.to_string(),
        at: at(ms),
    }
}

fn open(dir: &Path) -> (Store, Recovered) {
    Store::open(dir).expect("store opens")
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join(journal::FILE_NAME)
}

/// The names in `dir` that start with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let entries = fs::read_dir(dir).expect("dir lists");
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// A store with three records appended; returns the offset where the last
/// frame starts. The store is closed again.
fn three_records(dir: &Path) -> u64 {
    let (mut store, _) = open(dir);
    store
        .append(&Record::Run(run(1, RunState::Queued, "")))
        .expect("append");
    store.append(&scheduled("a", 1_000)).expect("append");
    let last_start = store.journal_len();
    let long_output = "some output, long enough to tear in many places\n".repeat(3);
    store
        .append(&Record::Run(run(2, RunState::Succeeded, &long_output)))
        .expect("append");
    store.sync().expect("sync");
    last_start
}

/// What `three_records` left when its last frame is lost.
fn first_two_recovered(rec: &Recovered) {
    assert_eq!(rec.runs, vec![run(1, RunState::Queued, "")]);
    assert_eq!(rec.last_scheduled.get("a"), Some(&at(1_000)));
    assert_eq!(rec.max_run_id, 1);
}

#[test]
fn appends_replay_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = vec![
        Record::Run(run(1, RunState::Queued, "")),
        Record::Run(run(1, RunState::Running, "")),
        scheduled("nightly", 5_000),
        Record::Run(run(2, RunState::Failed, "boom")),
        Record::Forget { run_id: 2 },
        Record::Run(run(3, RunState::Succeeded, "ok")),
    ];
    {
        let (mut store, rec) = open(dir.path());
        assert_eq!(rec, Recovered::default());
        for r in &records {
            store.append(r).expect("append");
        }
        // No sync: a process that dies after append loses nothing.
    }
    let (_store, rec) = open(dir.path());
    assert_eq!(rec, Recovered::fold(records));
    assert_eq!(
        rec.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
}

#[test]
fn fold_keeps_latest_snapshots_and_counts_forgotten_ids() {
    let rec = Recovered::fold([
        Record::Run(run(2, RunState::Queued, "")),
        Record::Run(run(1, RunState::Queued, "")),
        scheduled("a", 1_000),
        Record::Run(run(2, RunState::Succeeded, "done")),
        scheduled("b", 7_000),
        scheduled("a", 3_000),
        Record::Run(run(9, RunState::Failed, "")),
        Record::Forget { run_id: 9 },
        Record::Forget { run_id: 12 },
    ]);
    assert_eq!(
        rec.runs,
        vec![
            run(1, RunState::Queued, ""),
            run(2, RunState::Succeeded, "done")
        ],
        "sorted by id, later snapshot wins, forgotten run gone"
    );
    assert_eq!(rec.last_scheduled.get("a"), Some(&at(3_000)));
    assert_eq!(rec.last_scheduled.get("b"), Some(&at(7_000)));
    assert_eq!(rec.max_run_id, 12, "forgotten ids count");
}

#[test]
fn fold_takes_the_last_scheduled_record_not_the_latest_time() {
    // After a clock step back the daemon's own memory holds the later record.
    let rec = Recovered::fold([scheduled("a", 9_000), scheduled("a", 4_000)]);
    assert_eq!(rec.last_scheduled.get("a"), Some(&at(4_000)));
}

#[test]
fn a_torn_last_frame_is_skipped_at_every_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last_start = three_records(dir.path()) as usize;
    let path = journal_path(dir.path());
    let bytes = fs::read(&path).expect("read journal");
    for cut in last_start..bytes.len() {
        fs::write(&path, &bytes[..cut]).expect("truncate");
        let (_store, rec) = open(dir.path());
        first_two_recovered(&rec);
        // Zeros at the end of the file are the room written ahead, not
        // data: a cut that leaves only zeros of the frame loses nothing.
        let lost = bytes[last_start..cut]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        let expected_warnings = usize::from(lost > 0);
        assert_eq!(rec.warnings.len(), expected_warnings, "cut at {cut}");
        if lost > 0 {
            let w = &rec.warnings[0];
            assert!(
                w.contains(&format!("skipped {lost} bytes")) && w.contains("torn"),
                "{w}"
            );
        }
    }
    assert!(names_starting(dir.path(), "journal.corrupt").is_empty());
}

#[test]
fn a_corrupt_byte_in_the_last_payload_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last_start = three_records(dir.path()) as usize;
    let path = journal_path(dir.path());
    let mut bytes = fs::read(&path).expect("read journal");
    bytes[last_start + 8 + 20] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    let (_store, rec) = open(dir.path());
    first_two_recovered(&rec);
    assert_eq!(rec.warnings.len(), 1);
    assert!(
        rec.warnings[0].contains("checksum mismatch"),
        "{:?}",
        rec.warnings
    );
    assert!(rec.warnings[0].contains(&format!("at offset {last_start}")));
}

#[test]
fn damage_in_the_middle_keeps_a_copy_and_recovers_what_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_records(dir.path());
    let path = journal_path(dir.path());
    let mut bytes = fs::read(&path).expect("read journal");
    let first_payload = HEADER.len() + 8;
    bytes[first_payload + 3] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let (_store, rec) = open(dir.path());
    let long_output = "some output, long enough to tear in many places\n".repeat(3);
    assert_eq!(rec.runs, vec![run(2, RunState::Succeeded, &long_output)]);
    assert_eq!(rec.last_scheduled.get("a"), Some(&at(1_000)));
    assert_eq!(rec.warnings.len(), 1);
    assert!(
        rec.warnings[0].contains("records after it were recovered"),
        "{:?}",
        rec.warnings
    );
    let kept = names_starting(dir.path(), "journal.corrupt-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(rec.warnings[0].contains(&kept[0]));
    assert_eq!(fs::read(dir.path().join(&kept[0])).expect("copy"), bytes);
}

/// The records of a day's work on two runs, in the order the daemon
/// appends them, each run with a terminal record.
fn two_runs_lifecycle() -> Vec<Record> {
    vec![
        Record::Run(run(1, RunState::Queued, "")),
        Record::Run(run(2, RunState::Queued, "")),
        Record::Run(run(1, RunState::Running, "")),
        scheduled("a", 5_000),
        Record::Run(run(1, RunState::Succeeded, "one")),
        Record::Run(run(2, RunState::Running, "")),
        Record::Run(run(2, RunState::Succeeded, "two")),
        scheduled("b", 6_000),
    ]
}

#[test]
fn a_flipped_length_bit_loses_only_that_frame_wherever_it_is() {
    let records = two_runs_lifecycle();
    let mut clean = HEADER.to_vec();
    let mut starts = Vec::new();
    for r in &records {
        starts.push(clean.len());
        encode_frame(&mut clean, r).expect("encodes");
    }
    // Bits of the 32-bit length: slightly off, far past the end of the
    // file but under the 16 MiB limit (what a lone torn frame looks
    // like), and over the limit.
    for (k, &start) in starts.iter().enumerate() {
        for bit in [0, 3, 9, 16, 22, 25, 31] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut bytes = clean.clone();
            bytes[start + bit / 8] ^= 1 << (bit % 8);
            fs::write(journal_path(dir.path()), &bytes).expect("write");
            let (_store, rec) = open(dir.path());
            let case = format!("frame {k}, bit {bit}");
            let rest = records.iter().enumerate().filter(|&(i, _)| i != k);
            let want = Recovered::fold(rest.map(|(_, r)| r.clone()));
            assert_eq!(rec.runs, want.runs, "{case}");
            assert_eq!(rec.last_scheduled, want.last_scheduled, "{case}");
            assert_eq!(rec.max_run_id, 2, "{case}");
            let last = k == records.len() - 1;
            assert_eq!(rec.warnings.len(), 1, "{case}: {:?}", rec.warnings);
            assert_eq!(rec.warnings[0].contains("torn"), last, "{case}");
            let kept = names_starting(dir.path(), "journal.corrupt-");
            assert_eq!(kept.len(), usize::from(!last), "{case}: {kept:?}");
            // Each run has a later record than `queued` left: none comes
            // back queued, which would run it again.
            for r in &rec.runs {
                assert_ne!(r.state, RunState::Queued, "{case}: run {}", r.id);
            }
        }
    }
}

#[test]
fn a_run_with_a_terminal_record_is_never_queued_again() {
    // A later non-terminal snapshot after a terminal one (a journal put
    // together from damaged pieces) does not bring the run back.
    let records = vec![
        Record::Run(run(1, RunState::Succeeded, "done")),
        Record::Run(run(1, RunState::Queued, "")),
        Record::Run(run(2, RunState::Queued, "")),
        Record::Forget { run_id: 2 },
        Record::Run(run(2, RunState::Running, "")),
    ];
    let rec = Recovered::fold(records);
    assert_eq!(rec.runs, vec![run(1, RunState::Succeeded, "done")]);
    assert_eq!(rec.max_run_id, 2);
}

#[test]
fn a_bad_header_sets_the_journal_aside_and_starts_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_records(dir.path());
    let path = journal_path(dir.path());
    let mut bytes = fs::read(&path).expect("read journal");
    bytes[2] = b'X';
    fs::write(&path, &bytes).expect("write");
    {
        let (_store, rec) = open(dir.path());
        assert!(rec.runs.is_empty() && rec.last_scheduled.is_empty());
        assert_eq!(rec.max_run_id, 0);
        assert_eq!(rec.warnings.len(), 1);
        assert!(
            rec.warnings[0].contains("moved it to"),
            "{:?}",
            rec.warnings
        );
    }
    let kept = names_starting(dir.path(), "journal.corrupt-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(dir.path().join(&kept[0])).expect("kept"), bytes);
    let (_store, rec) = open(dir.path());
    assert!(rec.warnings.is_empty(), "the new journal is sound");
}

#[test]
fn a_journal_from_a_newer_version_is_set_aside_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(journal_path(dir.path()), b"tickd-journal v7\nwhatever").expect("write");
    let (_store, rec) = open(dir.path());
    assert_eq!(rec.warnings.len(), 1);
    assert!(
        rec.warnings[0].contains("version \"7\""),
        "{:?}",
        rec.warnings
    );
}

#[test]
fn appends_after_a_torn_tail_survive_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last_start = three_records(dir.path()) as usize;
    let path = journal_path(dir.path());
    let bytes = fs::read(&path).expect("read journal");
    fs::write(&path, &bytes[..last_start + 5]).expect("truncate");
    {
        let (mut store, rec) = open(dir.path());
        assert_eq!(rec.warnings.len(), 1);
        store
            .append(&Record::Run(run(4, RunState::Queued, "")))
            .expect("append");
        store.sync().expect("sync");
    }
    let (_store, rec) = open(dir.path());
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    let ids: Vec<u64> = rec.runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 4]);
}

#[test]
fn a_second_open_of_a_locked_dir_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = open(dir.path());
    let err = Store::open(dir.path()).expect_err("locked");
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
    let msg = err.to_string();
    assert!(msg.contains("in use by another tickd"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    drop(first);
    open(dir.path());
}

#[test]
fn a_lock_let_go_of_moments_later_is_waited_for() {
    // The holder stands for a crashed daemon's child that has not reached
    // exec yet: it lets go of the lock shortly after the restart begins.
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = open(dir.path());
    let (held, let_go) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _ = let_go.recv();
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(first);
    });
    let _ = held.send(());
    let second = Store::open(dir.path());
    holder.join().expect("holder");
    assert!(second.is_ok(), "{:?}", second.err());
}

#[test]
fn compaction_shrinks_the_journal_and_keeps_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = open(dir.path());
    for round in 0..50 {
        for id in 1..=5 {
            let state = if round == 49 {
                RunState::Succeeded
            } else {
                RunState::Running
            };
            store
                .append(&Record::Run(run(id, state, "output")))
                .expect("append");
        }
        store
            .append(&scheduled("a", 1_000 * round))
            .expect("append");
    }
    // The highest id leaves the history: compaction must not forget it.
    store.append(&Record::Forget { run_id: 5 }).expect("append");
    let before = store.journal_len();
    let state = {
        let bytes = fs::read(journal_path(dir.path())).expect("read");
        let replay = read_frames(&bytes, HEADER.len());
        Recovered::fold(replay.records)
    };
    store.compact(state.to_records()).expect("compact");
    assert!(
        store.journal_len() < before / 10,
        "{} vs {before}",
        store.journal_len()
    );
    assert_eq!(store.bytes_since_compaction(), 0);
    store
        .append(&Record::Run(run(6, RunState::Queued, "")))
        .expect("append after compaction");
    drop(store);

    let (_store, rec) = open(dir.path());
    let mut expected = state.clone();
    expected.runs.push(run(6, RunState::Queued, ""));
    expected.max_run_id = 6;
    assert_eq!(rec, expected);
    assert_eq!(state.max_run_id, 5);
    assert_eq!(state.runs.len(), 4);
    assert_eq!(state.last_scheduled.get("a"), Some(&at(49_000)));
}

#[test]
fn compaction_keeps_the_highest_forgotten_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut store, _) = open(dir.path());
        store
            .append(&Record::Run(run(41, RunState::Succeeded, "")))
            .expect("append");
        store
            .append(&Record::Forget { run_id: 41 })
            .expect("append");
        store.compact([]).expect("compact");
    }
    let (_store, rec) = open(dir.path());
    assert!(rec.runs.is_empty());
    assert_eq!(rec.max_run_id, 41);
}

#[test]
fn needs_compaction_after_the_journal_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = open(dir.path());
    assert!(!store.needs_compaction());
    let output = "x".repeat(1000);
    while store.bytes_since_compaction() <= COMPACT_MIN_BYTES {
        store
            .append(&Record::Run(run(1, RunState::Running, &output)))
            .expect("append");
    }
    assert!(store.needs_compaction());
    store
        .compact([Record::Run(run(1, RunState::Running, &output))])
        .expect("compact");
    assert!(!store.needs_compaction());
}

#[test]
fn a_leftover_temporary_file_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    three_records(dir.path());
    fs::write(dir.path().join("journal.tmp"), b"half a compaction").expect("write");
    let (_store, rec) = open(dir.path());
    assert_eq!(rec.runs.len(), 2);
    assert!(rec.warnings.is_empty());
}

#[test]
fn the_state_dir_is_created_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("var/tickd");
    let (store, _) = open(&state);
    assert_eq!(store.dir(), state);
    let mode = fs::metadata(&state).expect("exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let mode = fs::metadata(journal_path(&state))
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn oversized_records_are_refused_and_the_journal_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = open(dir.path());
    let huge = run(1, RunState::Succeeded, &"y".repeat(MAX_RECORD_BYTES));
    let err = store.append(&Record::Run(huge)).expect_err("too big");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("run 1"), "{err}");
    store
        .append(&Record::Run(run(2, RunState::Queued, "")))
        .expect("append");
    drop(store);
    let (_store, rec) = open(dir.path());
    assert_eq!(rec.runs, vec![run(2, RunState::Queued, "")]);
}

/// A rough figure, not a check: `cargo test --lib persist::tests::figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = open(dir.path());
    let record = Record::Run(run(1, RunState::Succeeded, &"output line\n".repeat(20)));
    let n = 10_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        store.append(&record).expect("append");
    }
    let append = t.elapsed() / n;
    let syncs = 200;
    let t = std::time::Instant::now();
    for _ in 0..syncs {
        store.append(&record).expect("append");
        store.sync().expect("sync");
    }
    let append_sync = t.elapsed() / syncs;
    let t = std::time::Instant::now();
    for _ in 0..syncs {
        store.sync().expect("idle sync");
    }
    let idle = t.elapsed() / syncs;
    let len = store.journal_len();
    drop(store);
    let t = std::time::Instant::now();
    let (_store, rec) = open(dir.path());
    let reopen = t.elapsed();
    println!(
        "append {append:?}; append+sync {append_sync:?}; idle sync {idle:?}; \
         open+replay+compact of {len} bytes {reopen:?} ({} runs)",
        rec.runs.len()
    );
}

#[test]
fn a_journal_whose_run_ids_would_wrap_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut store, _) = open(dir.path());
        let mut crafted = run(1, RunState::Succeeded, "");
        crafted.id = u64::MAX;
        store.append(&Record::Run(crafted)).expect("append");
    }
    let err = Store::open(dir.path()).expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(msg.contains(&u64::MAX.to_string()), "{msg}");
    assert!(msg.contains("would overflow"), "{msg}");
    // Left as it was for a human to look at.
    assert!(fs::read(journal_path(dir.path()))
        .expect("journal")
        .ends_with(b"}"));
    // The largest id tickd hands out is still fine.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut store, _) = open(dir.path());
        let mut top = run(1, RunState::Succeeded, "");
        top.id = MAX_RUN_ID;
        store.append(&Record::Run(top)).expect("append");
    }
    let (_store, rec) = open(dir.path());
    assert_eq!(rec.max_run_id, MAX_RUN_ID);
}

#[test]
fn pauses_replay_and_survive_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pause = |job: &str, paused| Record::Pause {
        job: job.to_string(),
        paused,
    };
    {
        let (mut store, _) = open(dir.path());
        for r in [
            pause("a", true),
            pause("b", true),
            pause("a", false),
            pause("c", true),
        ] {
            store.append(&r).expect("append");
        }
    }
    let want: BTreeSet<String> = ["b", "c"].map(String::from).into();
    let (store, rec) = open(dir.path());
    assert_eq!(rec.paused, want);
    drop(store);
    // The open compacted the journal from `rec`: the pauses are still there.
    let (_store, rec) = open(dir.path());
    assert_eq!(rec.paused, want);
}
