//! The `file.prune` job kind: deletes old files under a directory.
//!
//! A run deletes the regular files under `path` (and its subdirectories
//! when `recursive`) whose name matches `pattern` and whose modification
//! time is older than `older_than`. It never deletes a directory or a
//! symlink, and never follows a symlink below `path`: entries are typed
//! with `lstat` semantics (`DirEntry::file_type`, `symlink_metadata`), so a
//! link to a directory elsewhere is neither descended into nor removed.
//! `path` itself may be a symlink to a directory; the admin named it.
//!
//! The work runs on the daemon's file pool (`daemon.file_threads`), apart
//! from the job workers: the run's worker waits in `install` while the pool
//! does the walking, stat-ing and unlinking in parallel. It has two phases:
//! 1. list the directories, level by level (each level in parallel; no
//!    recursion, so a deep tree cannot overflow a thread's stack);
//! 2. prune each directory: its entries are read in batches of
//!    [`BATCH`] and each batch is examined in parallel, so memory stays
//!    bounded however many files a directory holds.
//!
//! Knowing every directory up front makes progress exact and monotone:
//! the fraction of directories pruned. Problems with single entries
//! (permission denied, a file that vanished) are counted and the first few
//! are reported; only a root that cannot be listed fails the run. The walk
//! checks for cancellation and the job's `timeout` before each directory
//! and each file it examines.

use super::cancel::CancelToken;
use super::{Executor, RunContext};
use crate::config::FilePruneSpec;
use crate::state::run::RunState;
use crate::state::Finish;
use glob::Pattern;
use rayon::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

mod report;
#[cfg(test)]
mod tests;

use report::{bump, os_message, Progress, Tally};

/// Matching files examined in parallel at a time, per directory; also how
/// many entries are read between two checks for a stop.
const BATCH: usize = 1024;

/// Executes a file.prune job's run.
pub struct FilePruneJob<'a>(pub &'a FilePruneSpec);

impl Executor for FilePruneJob<'_> {
    fn execute(&self, ctx: &RunContext<'_>) -> Finish {
        if ctx.cancel.is_cancelled() {
            return Finish::with_error(RunState::Cancelled, cancel_reason(ctx.cancel));
        }
        let spec = self.0;
        let pattern = match Pattern::new(&spec.pattern) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("invalid pattern {:?}: {e}", spec.pattern);
                return Finish::with_error(RunState::Failed, msg);
            }
        };
        if let Err(msg) = check_root(&spec.path) {
            return Finish::with_error(RunState::Failed, msg);
        }
        let walk = Walk {
            pattern,
            cutoff: SystemTime::now().checked_sub(spec.older_than),
            recursive: spec.recursive,
            stop: Stop::new(ctx.cancel, ctx.job.timeout),
            tally: Tally::default(),
            progress: Progress::new(ctx.on_progress),
        };
        ctx.file_pool.install(|| walk.run(&spec.path));
        walk.finish(ctx.job.timeout)
    }
}

/// Fails unless `root` is a directory this process can list.
fn check_root(root: &Path) -> Result<(), String> {
    let shown = root.display();
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("path {shown}: not a directory")),
        Err(e) => return Err(format!("path {shown}: {}", os_message(&e))),
    }
    fs::read_dir(root)
        .map(drop)
        .map_err(|e| format!("path {shown}: {}", os_message(&e)))
}

/// One run's walk: what to delete, and what happened so far.
struct Walk<'a> {
    pattern: Pattern,
    /// Files modified before this are old; `None` when `older_than`
    /// reaches before the epoch (nothing is that old).
    cutoff: Option<SystemTime>,
    recursive: bool,
    stop: Stop<'a>,
    tally: Tally,
    progress: Progress<'a>,
}

impl Walk<'_> {
    /// Both phases; call inside the file pool.
    fn run(&self, root: &Path) {
        let dirs = self.list_dirs(root);
        bump(&self.tally.dirs, dirs.len() as u64);
        log::debug!("file.prune {}: {} directories", root.display(), dirs.len());
        let done = AtomicU64::new(0);
        let total = dirs.len() as u64;
        dirs.par_iter().for_each(|dir| {
            if self.stop.now() {
                return;
            }
            self.prune_dir(dir);
            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
            self.progress.update(done as f64 / total as f64);
        });
        if !self.stop.was_cut() {
            self.progress.report(1.0);
        }
    }

    /// Phase 1: `root` and, when recursive, every directory below it,
    /// found level by level.
    fn list_dirs(&self, root: &Path) -> Vec<PathBuf> {
        let mut all = Vec::new();
        let mut level = vec![root.to_path_buf()];
        while !level.is_empty() {
            let next: Vec<PathBuf> = if self.recursive && !self.stop.now() {
                level
                    .par_iter()
                    .flat_map_iter(|dir| self.subdirs(dir))
                    .collect()
            } else {
                Vec::new()
            };
            all.append(&mut level);
            level = next;
        }
        all
    }

    /// The real directories (not symlinks to one) directly in `dir`.
    fn subdirs(&self, dir: &Path) -> Vec<PathBuf> {
        if self.stop.now() {
            return Vec::new();
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.tally.error(dir, &e);
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            match entry.and_then(|e| Ok((e.file_type()?, e))) {
                Ok((kind, e)) if kind.is_dir() => found.push(e.path()),
                Ok(_) => {}
                Err(e) => self.tally.error(dir, &e),
            }
        }
        found
    }

    /// Phase 2 for one directory: examines its regular files with a
    /// matching name, a batch at a time.
    fn prune_dir(&self, dir: &Path) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.tally.error(dir, &e),
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut scanned = 0;
        for (n, entry) in entries.enumerate() {
            if n.is_multiple_of(BATCH) && self.stop.now() {
                break;
            }
            let entry = match entry.and_then(|e| Ok((e.file_type()?, e))) {
                Ok((kind, e)) if kind.is_file() => e,
                Ok(_) => continue,
                Err(e) => {
                    self.tally.error(dir, &e);
                    continue;
                }
            };
            scanned += 1;
            if self.pattern.matches(&entry.file_name().to_string_lossy()) {
                batch.push(entry.path());
            }
            if batch.len() == BATCH {
                self.prune_files(&batch);
                batch.clear();
            }
        }
        self.prune_files(&batch);
        bump(&self.tally.scanned, scanned);
    }

    /// Examines `paths` in parallel.
    fn prune_files(&self, paths: &[PathBuf]) {
        bump(&self.tally.matched, paths.len() as u64);
        paths.par_iter().for_each(|path| {
            if !self.stop.now() {
                self.prune_file(path);
            }
        });
    }

    /// Deletes `path` if it is (still) a regular file and old enough.
    fn prune_file(&self, path: &Path) {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => return self.tally.error(path, &e),
        };
        if !meta.file_type().is_file() {
            return; // replaced by something else since it was listed
        }
        let modified = match meta.modified() {
            Ok(t) => t,
            Err(e) => return self.tally.error(path, &e),
        };
        let old = self.cutoff.is_some_and(|cutoff| modified < cutoff);
        if !old {
            return;
        }
        match fs::remove_file(path) {
            Ok(()) => {
                bump(&self.tally.deleted, 1);
                bump(&self.tally.bytes, meta.len());
            }
            Err(e) => self.tally.error(path, &e),
        }
    }

    /// The run's finish from what the walk did.
    fn finish(&self, timeout: Option<Duration>) -> Finish {
        let (state, error) = if !self.stop.was_cut() {
            (RunState::Succeeded, None)
        } else if self.stop.cancel.is_cancelled() {
            (RunState::Cancelled, Some(cancel_reason(self.stop.cancel)))
        } else {
            let limit = humantime::format_duration(timeout.unwrap_or_default());
            (RunState::TimedOut, Some(format!("timed out after {limit}")))
        };
        let mut output = self.tally.summary();
        if state != RunState::Succeeded {
            output = format!("stopped early: {output}");
        }
        Finish {
            state,
            exit_code: None,
            error,
            output,
            result: Some(self.tally.to_json()),
        }
    }
}

/// Whether the walk must stop: cancelled, or past the job's timeout.
struct Stop<'a> {
    cancel: &'a CancelToken,
    deadline: Option<Instant>,
    /// Set once a check said stop: some work was skipped.
    cut: AtomicBool,
}

impl<'a> Stop<'a> {
    fn new(cancel: &'a CancelToken, timeout: Option<Duration>) -> Self {
        Stop {
            cancel,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            cut: AtomicBool::new(false),
        }
    }

    /// True when the walk must stop now (and remembers that it did).
    fn now(&self) -> bool {
        let stop = self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d);
        if stop {
            self.cut.store(true, Ordering::Relaxed);
        }
        stop
    }

    /// Whether the walk stopped before the end.
    fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

/// The cancel reason for the run's `error`.
fn cancel_reason(cancel: &CancelToken) -> String {
    cancel.reason().unwrap_or_else(|| "cancelled".into())
}
