//! What a file.prune walk reports: counters, the first error messages, and
//! throttled, monotone progress. Shared by the file pool's threads, so
//! everything here is atomics or a briefly held mutex.

use serde_json::json;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many error messages a run keeps for its output.
const ERRORS_SHOWN: usize = 3;

/// Shortest time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Counters of a walk, shared by the pool's threads.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) dirs: AtomicU64,
    pub(super) scanned: AtomicU64,
    pub(super) matched: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) errors: AtomicU64,
    /// The first [`ERRORS_SHOWN`] error messages.
    shown: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts a problem with one entry; keeps the first few messages.
    pub(super) fn error(&self, path: &Path, err: &io::Error) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        let message = format!("{}: {}", path.display(), os_message(err));
        log::debug!("file.prune: {message}");
        if n < ERRORS_SHOWN as u64 {
            let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
            if shown.len() < ERRORS_SHOWN {
                shown.push(message);
            }
        }
    }

    /// The run's `result` object.
    pub(super) fn to_json(&self) -> serde_json::Value {
        json!({
            "files_scanned": read(&self.scanned),
            "files_matched": read(&self.matched),
            "files_deleted": read(&self.deleted),
            "bytes_freed": read(&self.bytes),
            "dirs_scanned": read(&self.dirs),
            "errors": read(&self.errors),
        })
    }

    /// One line: `deleted 3 of 10 files scanned (12 bytes freed) in 2
    /// directories; 1 error: PATH: Permission denied`.
    pub(super) fn summary(&self) -> String {
        let mut line = format!(
            "deleted {} of {} files scanned ({} bytes freed) in {} directories",
            read(&self.deleted),
            read(&self.scanned),
            read(&self.bytes),
            read(&self.dirs),
        );
        let errors = read(&self.errors);
        if errors > 0 {
            let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
            let plural = if errors == 1 { "error" } else { "errors" };
            line.push_str(&format!("; {errors} {plural}: {}", shown.join("; ")));
            if errors > shown.len() as u64 {
                line.push_str("; ...");
            }
        }
        line
    }
}

/// Adds `n` to a counter of the tally.
pub(super) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A counter's value (read after the walk, or for a summary).
fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Progress reports, monotone and at most one per [`PROGRESS_EVERY`].
pub(super) struct Progress<'a> {
    sink: &'a (dyn Fn(f64) + Sync),
    /// When the last report was made, and its value.
    last: Mutex<(Option<Instant>, f64)>,
}

impl<'a> Progress<'a> {
    pub(super) fn new(sink: &'a (dyn Fn(f64) + Sync)) -> Self {
        Progress {
            sink,
            last: Mutex::new((None, 0.0)),
        }
    }

    /// Reports `value` unless a report was made lately or is being made
    /// by another thread, or it would go backwards.
    pub(super) fn update(&self, value: f64) {
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        let due = last.0.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
        if due && value > last.1 {
            (self.sink)(value);
            *last = (Some(Instant::now()), value);
        }
    }

    /// Reports `value` now, if it is not below the last one.
    pub(super) fn report(&self, value: f64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if value >= last.1 {
            (self.sink)(value);
            *last = (Some(Instant::now()), value);
        }
    }
}

pub(super) use crate::jobs::exec::os_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_and_the_first_few_shown() {
        let tally = Tally::default();
        for i in 0..5 {
            let err = io::Error::from_raw_os_error(13);
            tally.error(Path::new(&format!("/x/{i}")), &err);
        }
        assert_eq!(tally.to_json()["errors"], json!(5));
        let line = tally.summary();
        assert!(
            line.ends_with(
                "; 5 errors: /x/0: Permission denied; /x/1: Permission denied; \
                 /x/2: Permission denied; ..."
            ),
            "{line}"
        );
    }

    #[test]
    fn progress_never_goes_back() {
        let seen = Mutex::new(Vec::new());
        let sink = |p: f64| seen.lock().expect("list").push(p);
        let progress = Progress::new(&sink);
        progress.update(0.5);
        progress.update(0.6); // too soon after the last report
        progress.report(0.4); // backwards
        progress.report(1.0);
        assert_eq!(*seen.lock().expect("list"), vec![0.5, 1.0]);
    }
}
