//! Tests of the file.prune walk on real temporary trees.
//!
//! Old files get their mtime set into the past; nothing here waits on the
//! clock except the time-out test, which forces the walk past its limit.

use super::*;
use crate::config::JobDef;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::sync::Mutex;

const HOUR: Duration = Duration::from_secs(3600);

/// A file.prune job on `root` with `pattern` and extra job keys.
fn job(root: &Path, pattern: &str, extra: &str) -> JobDef {
    let text = format!(
        "[[jobs]]\nname = \"p\"\nkind = \"file.prune\"\npath = {:?}\npattern = {pattern:?}\n\
         older_than = \"1h\"\n{extra}\n",
        root.display().to_string()
    );
    let config = crate::config::parse(&text, Path::new("t.toml")).expect("config");
    config.jobs.into_iter().next().expect("one job")
}

/// Runs `def` on a pool of `threads`; returns the finish and every
/// progress value reported, in order.
fn run_with(
    def: &JobDef,
    threads: usize,
    cancel: &CancelToken,
    on_progress: &(dyn Fn(f64) + Sync),
) -> (Finish, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let seen = Mutex::new(Vec::new());
    let record = |p: f64| {
        seen.lock().expect("progress list").push(p);
        on_progress(p);
    };
    let ctx = RunContext {
        run_id: 1,
        job: def,
        args: None,
        cancel,
        kill_grace: Duration::from_secs(1),
        file_pool: &pool,
        on_progress: &record,
        on_pid: &|_| {},
        on_output: &|_| {},
    };
    let finish = super::super::execute(&ctx);
    (finish, seen.into_inner().expect("progress list"))
}

fn run(def: &JobDef) -> (Finish, Vec<f64>) {
    run_with(def, 2, &CancelToken::new(), &|_| {})
}

/// Writes a one-byte file last modified `age` ago.
fn touch(path: &Path, age: Duration) {
    let mut file = File::create(path).expect("create file");
    file.write_all(b"x").expect("write file");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

fn result(f: &Finish, key: &str) -> u64 {
    f.result
        .as_ref()
        .and_then(|r| r[key].as_u64())
        .unwrap_or(u64::MAX)
}

/// root: old.log, new.log, old.txt; root/sub: deep.log (old), fresh.log.
fn small_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    touch(&root.join("old.log"), 2 * HOUR);
    touch(&root.join("new.log"), Duration::ZERO);
    touch(&root.join("old.txt"), 2 * HOUR);
    fs::create_dir(root.join("sub")).expect("mkdir");
    touch(&root.join("sub/deep.log"), 2 * HOUR);
    touch(&root.join("sub/fresh.log"), Duration::ZERO);
    dir
}

#[test]
fn deletes_old_matching_files_recursively() {
    let dir = small_tree();
    let root = dir.path();
    let (f, progress) = run(&job(root, "*.log", "recursive = true"));
    assert_eq!(f.state, RunState::Succeeded, "{f:?}");
    assert!(!root.join("old.log").exists());
    assert!(!root.join("sub/deep.log").exists());
    for kept in ["new.log", "old.txt", "sub/fresh.log"] {
        assert!(root.join(kept).exists(), "{kept} was deleted");
    }
    assert!(root.join("sub").is_dir());
    assert_eq!(result(&f, "files_scanned"), 5);
    assert_eq!(result(&f, "files_matched"), 4);
    assert_eq!(result(&f, "files_deleted"), 2);
    assert_eq!(result(&f, "bytes_freed"), 2);
    assert_eq!(result(&f, "dirs_scanned"), 2);
    assert_eq!(result(&f, "errors"), 0);
    assert_eq!(
        f.output,
        "deleted 2 of 5 files scanned (2 bytes freed) in 2 directories"
    );
    assert_eq!(progress.last(), Some(&1.0));
}

#[test]
fn without_recursive_subdirectories_are_left_alone() {
    let dir = small_tree();
    let root = dir.path();
    let (f, _) = run(&job(root, "*.log", ""));
    assert_eq!(f.state, RunState::Succeeded, "{f:?}");
    assert!(!root.join("old.log").exists());
    assert!(root.join("sub/deep.log").exists());
    assert_eq!(result(&f, "files_scanned"), 3);
    assert_eq!(result(&f, "files_deleted"), 1);
}

#[test]
fn symlinks_are_never_followed_nor_deleted() {
    let outside = tempfile::tempdir().expect("temp dir");
    touch(&outside.path().join("victim.log"), 2 * HOUR);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    touch(&root.join("mine.log"), 2 * HOUR);
    symlink(outside.path(), root.join("elsewhere")).expect("dir link");
    symlink(outside.path().join("victim.log"), root.join("link.log")).expect("file link");
    let (f, _) = run(&job(root, "*", "recursive = true"));
    assert_eq!(f.state, RunState::Succeeded, "{f:?}");
    assert!(!root.join("mine.log").exists());
    assert!(outside.path().join("victim.log").exists());
    for link in ["elsewhere", "link.log"] {
        let meta = fs::symlink_metadata(root.join(link)).expect("link still there");
        assert!(meta.file_type().is_symlink());
    }
    assert_eq!(result(&f, "files_scanned"), 1);
    assert_eq!(result(&f, "dirs_scanned"), 1);
}

#[test]
fn a_missing_or_non_directory_path_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let (f, _) = run(&job(&missing, "*", ""));
    assert_eq!(f.state, RunState::Failed);
    let expected = format!("path {}: No such file or directory", missing.display());
    assert_eq!(f.error.as_deref(), Some(expected.as_str()));
    let file = dir.path().join("file");
    touch(&file, Duration::ZERO);
    let (f, _) = run(&job(&file, "*", ""));
    let expected = format!("path {}: not a directory", file.display());
    assert_eq!(f.error.as_deref(), Some(expected.as_str()));
}

#[test]
fn an_invalid_pattern_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (f, _) = run(&job(dir.path(), "[", ""));
    assert_eq!(f.state, RunState::Failed);
    let error = f.error.unwrap_or_default();
    assert!(error.starts_with("invalid pattern \"[\""), "{error}");
}

/// 40 directories of 10 old files each.
fn wide_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for d in 0..40 {
        let sub = dir.path().join(format!("d{d}"));
        fs::create_dir(&sub).expect("mkdir");
        for i in 0..10 {
            touch(&sub.join(format!("f{i}")), 2 * HOUR);
        }
    }
    dir
}

#[test]
fn cancel_stops_the_walk_early() {
    let dir = wide_tree();
    let cancel = CancelToken::new();
    let before = CancelToken::new();
    before.cancel_because("shutdown");
    let def = job(dir.path(), "*", "recursive = true");
    let (f, _) = run_with(&def, 2, &before, &|_| {});
    assert_eq!(f.state, RunState::Cancelled);
    assert_eq!(f.error.as_deref(), Some("shutdown"));
    assert_eq!(result(&f, "files_deleted"), u64::MAX, "no result: {f:?}");
    // One thread, cancelled at the first progress report: after the first
    // directory (the root, which holds no files).
    let (f, _) = run_with(&def, 1, &cancel, &|_| cancel.cancel());
    assert_eq!(f.state, RunState::Cancelled, "{f:?}");
    assert_eq!(f.error.as_deref(), Some("cancelled"));
    assert!(f.output.starts_with("stopped early: "), "{}", f.output);
    assert_eq!(result(&f, "files_deleted"), 0);
    assert_eq!(result(&f, "dirs_scanned"), 41);
}

#[test]
fn the_timeout_stops_the_walk() {
    let dir = wide_tree();
    // One thread; the first progress report (after the root) outlasts the
    // whole limit.
    let slow = |_| std::thread::sleep(Duration::from_millis(100));
    let def = job(dir.path(), "*", "recursive = true\ntimeout = \"20ms\"");
    let (f, progress) = run_with(&def, 1, &CancelToken::new(), &slow);
    assert_eq!(f.state, RunState::TimedOut, "{f:?}");
    assert_eq!(f.error.as_deref(), Some("timed out after 20ms"));
    assert_eq!(result(&f, "files_deleted"), 0);
    assert!(progress.iter().all(|p| *p < 1.0), "{progress:?}");
}

#[test]
fn progress_is_monotone_and_ends_at_one() {
    let dir = wide_tree();
    // Slow reports let several be due during the walk.
    let slow = |_| std::thread::sleep(Duration::from_millis(30));
    let def = job(dir.path(), "*", "recursive = true");
    let (f, progress) = run_with(&def, 2, &CancelToken::new(), &slow);
    assert_eq!(f.state, RunState::Succeeded, "{f:?}");
    assert_eq!(result(&f, "files_deleted"), 400);
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(progress.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(progress.last(), Some(&1.0));
}

#[test]
fn an_unreadable_subdirectory_is_an_error_not_a_failure() {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::geteuid().is_root() {
        eprintln!("skipped: root reads any directory");
        return;
    }
    let dir = small_tree();
    let locked = dir.path().join("sub");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
    let (f, _) = run(&job(dir.path(), "*.log", "recursive = true"));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert_eq!(f.state, RunState::Succeeded, "{f:?}");
    assert_eq!(result(&f, "errors"), 1);
    assert!(f.output.contains("Permission denied"), "{}", f.output);
    assert!(!dir.path().join("old.log").exists());
}
