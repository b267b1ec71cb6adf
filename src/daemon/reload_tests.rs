//! Unit tests of what a reload does to the settings, on a daemon started
//! in the test (its pools and the loop's waker, no socket): the live part
//! is swapped as one new version, readers holding the old one keep it,
//! and the start-only part stays as it was started.

use super::{Daemon, LoopEvent};
use crate::config;
use std::path::Path;
use std::sync::Arc;

/// A daemon started from `[daemon]` keys `table`, its config file in
/// `dir`; the poll and the events' receiver must outlive it.
fn start(dir: &Path, table: &str) -> (Daemon, mio::Poll, crossbeam_channel::Receiver<LoopEvent>) {
    let path = dir.join("tickd.toml");
    write(&path, table);
    let config = config::load(&path).expect("config");
    let poll = mio::Poll::new().expect("poll");
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let daemon = Daemon::start(config, tx, waker, false).expect("daemon");
    (daemon, poll, rx)
}

fn write(path: &Path, table: &str) {
    std::fs::write(path, format!("[daemon]\nlisten = \"\"\n{table}\n")).expect("write config");
}

#[test]
fn a_reload_swaps_the_live_settings_and_old_readers_keep_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut d, _poll, _rx) = start(
        dir.path(),
        "allow_submit = false\nmax_output_bytes = 4096\nmin_workers = 1",
    );
    let held = d.board().live.load();
    write(
        &dir.path().join("tickd.toml"),
        "allow_submit = true\nmax_output_bytes = 8192\nmin_workers = 0\nauth_token = \"s\"",
    );
    assert!(d.reload().is_ok());

    let live = d.board().live.load();
    assert!(!Arc::ptr_eq(&held, &live), "a new version");
    assert!(live.allow_submit);
    assert_eq!((live.max_output_bytes, live.min_workers), (8192, 0));
    assert_eq!(live.auth_token, Some(config::AuthToken::new("s")));
    assert!(!held.allow_submit, "the old version is unchanged");
    assert_eq!((held.max_output_bytes, held.min_workers), (4096, 1));
    assert_eq!(held.auth_token, None);
    assert_eq!(d.board().info.read().generation, 2);
    d.stop_pool();
}

#[test]
fn a_rejected_reload_keeps_the_live_version_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut d, _poll, _rx) = start(dir.path(), "allow_submit = true");
    let before = d.board().live.load();
    write(
        &dir.path().join("tickd.toml"),
        "allow_submit = false\nworkers = 0",
    );
    assert!(d.reload().is_err());
    assert!(Arc::ptr_eq(&before, &d.board().live.load()), "not swapped");
    assert!(d.board().live.read().allow_submit);
    d.stop_pool();
}

#[test]
fn start_only_changes_stay_out_of_the_running_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut d, _poll, _rx) = start(
        dir.path(),
        "workers = 2\nqueue_capacity = 8\nfile_threads = 1",
    );
    let started = d.start.clone();
    let changed = "workers = 3\nqueue_capacity = 9\nfile_threads = 2\nmin_workers = 2";
    write(&dir.path().join("tickd.toml"), changed);
    let new = config::load(&dir.path().join("tickd.toml")).expect("config");
    assert_eq!(
        started.needs_restart(&new.daemon.start),
        ["workers", "queue_capacity", "file_threads"],
        "what the reload warns about"
    );
    assert!(d.reload().is_ok());

    assert_eq!(d.start, started, "kept as started");
    assert_eq!(d.board().job_pool_stats().configured, 2);
    assert_eq!(d.board().job_pool_stats().queue_capacity, 8);
    assert_eq!(
        d.board().live.read().min_workers,
        2,
        "the live part applied"
    );
    d.stop_pool();
}
