//! Who may write `state_dir`, through the real binary: a state dir (or a
//! file in it) that another user owns or could write is refused at start
//! (exit 2, naming the path, its owner and its mode); state files are never
//! opened through a symbolic link nor if they are not regular files; a
//! journal whose run ids would wrap is refused; a queued `submit` run in
//! the journal never runs while `allow_submit` is off; and a state dir
//! created for a privilege drop is private (0700).
//!
//! The tests run as root (as CI does); those that need another uid chown
//! to 65534 (nobody) and skip themselves when not root.

use crate::util;

use rustix::process::Uid;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tickd::persist::{Record, RunRecord, Store};
use tickd::state::run::{Run, RunState, Trigger};
use util::{config, Daemon};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    rustix::fs::chown(path, Some(Uid::from_raw(uid)), None).expect("chown");
}

fn with_state(state: &Path, extra: &str) -> String {
    config(
        &format!("state_dir = \"{}\"\n{extra}", state.display()),
        "[[jobs]]\nname = \"quick\"\ncommand = [\"true\"]\n",
    )
}

/// Starts tickd on `config_text`, which must fail to start: returns its
/// exit code and stderr. A start that hangs is killed and fails the test.
fn refused_start(config_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tickd.toml");
    std::fs::write(&path, config_text).expect("write config");
    let mut child = Command::new(util::bin())
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tickd");
    if util::wait_child(&mut child, util::WAIT).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "tickd did not exit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A state dir of our own, private, as a daemon would create it.
fn private_state() -> tempfile::TempDir {
    let state = tempfile::tempdir().expect("state dir");
    chmod(state.path(), 0o700);
    state
}

#[test]
fn a_state_dir_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let state = private_state();
    chown(state.path(), NOBODY);
    let (code, stderr) = refused_start(&with_state(state.path(), ""));
    assert_eq!(code, Some(2), "{stderr}");
    let owner = format!("{} is owned by uid 65534", state.path().display());
    assert!(stderr.contains(&owner), "{stderr}");
    assert!(stderr.contains("mode 0700"), "{stderr}");
    assert!(stderr.contains("must belong to uid 0 (root)"), "{stderr}");
    // Nothing was written into it.
    let names: Vec<_> = std::fs::read_dir(state.path()).expect("ls").collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_world_writable_state_dir_is_refused() {
    let state = private_state();
    chmod(state.path(), 0o777);
    let (code, stderr) = refused_start(&with_state(state.path(), ""));
    assert_eq!(code, Some(2), "{stderr}");
    let what = format!(
        "{} is group- and world-writable (mode 0777)",
        state.path().display()
    );
    assert!(stderr.contains(&what), "{stderr}");
}

#[test]
fn a_journal_another_user_wrote_is_refused_and_never_run() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // The attack of the issue: a queued `submit` run written by another
    // user into a state dir a root daemon uses.
    let state = private_state();
    let marker = state.path().join("ran-as-root");
    journal_submit(state.path(), &format!("touch {}", marker.display()));
    let journal = state.path().join("journal");
    chown(&journal, NOBODY);
    let (code, stderr) = refused_start(&with_state(state.path(), "allow_submit = true"));
    assert_eq!(code, Some(2), "{stderr}");
    let what = format!("{} is owned by uid 65534 (nobody)", journal.display());
    assert!(stderr.contains(&what), "{stderr}");
    assert!(!marker.exists(), "the journaled run did not run");
}

#[test]
fn a_symlinked_lock_is_not_followed() {
    let state = private_state();
    let outside = tempfile::tempdir().expect("dir");
    let secret = outside.path().join("root-only");
    std::fs::write(&secret, "keep me\n").expect("write");
    std::os::unix::fs::symlink(&secret, state.path().join("lock")).expect("symlink");
    let (code, stderr) = refused_start(&with_state(state.path(), ""));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("lock is a symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&secret).expect("read"), "keep me\n");
}

#[test]
fn a_fifo_as_journal_is_refused_at_once() {
    let state = private_state();
    let fifo = state.path().join("journal");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let (code, stderr) = refused_start(&with_state(state.path(), ""));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("journal is a FIFO, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn a_journal_whose_run_ids_would_wrap_is_refused() {
    let state = private_state();
    {
        let (mut store, _) = Store::open(state.path()).expect("store");
        let mut run = Run::queued(1, Some("quick".into()), Trigger::Manual, 1);
        run.id = u64::MAX;
        run.state = RunState::Succeeded;
        store
            .append(&Record::Run(RunRecord::from_run(&run, None, None)))
            .expect("append");
        store.sync().expect("sync");
    }
    let (code, stderr) = refused_start(&with_state(state.path(), ""));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("records run id 18446744073709551615"),
        "{stderr}"
    );
    assert!(stderr.contains("would overflow"), "{stderr}");
}

/// Writes a journal holding one queued `submit` run of `sh -c SCRIPT`;
/// returns its id.
fn journal_submit(state: &Path, script: &str) -> u64 {
    journal_adhoc(state, json!({"command": ["sh", "-c", script]}))
}

/// Writes a journal holding one queued `submit` run of the job `adhoc`;
/// returns its id.
fn journal_adhoc(state: &Path, adhoc: serde_json::Value) -> u64 {
    let (mut store, _) = Store::open(state).expect("store");
    let run = Run::queued(7, None, Trigger::Submit, 1);
    let record = RunRecord::from_run(&run, None, Some(adhoc));
    store.append(&Record::Run(record)).expect("append");
    store.sync().expect("sync");
    7
}

#[test]
fn a_journaled_submit_run_does_not_run_once_submit_is_disabled() {
    let state = private_state();
    let marker = state.path().join("ran");
    let id = journal_submit(state.path(), &format!("touch {}", marker.display()));
    let d = Daemon::start(&with_state(state.path(), "allow_submit = false"));
    let run = d.wait_run_done(&id.to_string());
    assert_eq!(run["state"], "cancelled", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("allow_submit = false"), "{error}");
    assert!(!marker.exists(), "it did not run");
    drop(d);

    // Allowed again: the next submitted run in the journal runs.
    let state = private_state();
    let marker = state.path().join("ran");
    let id = journal_submit(state.path(), &format!("touch {}", marker.display()));
    let d = Daemon::start(&with_state(state.path(), "allow_submit = true"));
    let run = d.wait_run_done(&id.to_string());
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(marker.exists());
}

#[test]
fn a_journaled_submit_run_that_is_no_longer_valid_does_not_run() {
    let state = private_state();
    let marker = state.path().join("ran");
    // `timeout = "0s"` is refused by today's rules.
    let adhoc = json!({
        "command": ["sh", "-c", format!("touch {}", marker.display())],
        "timeout": "0s",
    });
    let id = journal_adhoc(state.path(), adhoc);
    let d = Daemon::start(&with_state(state.path(), "allow_submit = true"));
    let run = d.wait_run_done(&id.to_string());
    assert_eq!(run["state"], "cancelled", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no longer valid") && error.contains("timeout"),
        "{error}"
    );
    assert!(!marker.exists(), "it did not run");
}

#[test]
fn a_state_dir_made_for_a_privilege_drop_is_private() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let parent = tempfile::tempdir().expect("temp dir");
    chmod(parent.path(), 0o755);
    let state = parent.path().join("lib/tickd");
    let mut d = Daemon::start(&with_state(&state, "user = \"nobody\""));
    d.log
        .wait_for("dropped privileges to user nobody", 0, util::WAIT)
        .expect("logged");
    d.client().ok("ping", json!({}));
    let meta = std::fs::metadata(&state).expect("state dir");
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (NOBODY, 0o700));
    // Its parent was made as `mkdir -p` makes it, for nobody to get through.
    let parent_mode = std::fs::metadata(parent.path().join("lib")).expect("parent");
    assert_eq!(parent_mode.mode() & 0o005, 0o005);
    d.signal(rustix::process::Signal::TERM);
    assert!(d
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
}

#[test]
fn a_state_dir_another_user_owns_is_not_handed_over() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Pre-created by someone else (uid 4242), like a /tmp/tickd: the
    // daemon's user must not be given it, and the start is refused.
    let parent = tempfile::tempdir().expect("temp dir");
    chmod(parent.path(), 0o755);
    let state = parent.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    chmod(&state, 0o700);
    chown(&state, 4242);
    let (code, stderr) = refused_start(&with_state(&state, "user = \"nobody\""));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is owned by uid 4242"), "{stderr}");
    assert!(
        stderr.contains("must belong to uid 65534 (nobody)"),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&state).expect("stat").uid(), 4242);
}
