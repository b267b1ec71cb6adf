//! How the journal's writes are going: the numbers `status.state` shows,
//! when the loop retries after a failure, and how failures are logged.
//!
//! A failed write (disk full, EIO) never stops the daemon: runs go on in
//! memory, the error is counted here, and every [`WRITE_RETRY`] the loop
//! rewrites the journal from memory until that works, which also puts back
//! every record the failed writes left out.
//!
//! While writes keep failing, the log is not flooded (a full disk would
//! otherwise log a compaction failure every second, and one more per
//! finished run): [`FailureLog`] lets the first failure through in full,
//! then one line per [`SUMMARY_EVERY`] with the number of failures since
//! the last line, and one line with the total when writes work again. The
//! counters in `status` count every failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long after a failed journal write the daemon tries again (by
/// rewriting the journal from memory), for as long as writes fail.
pub(super) const WRITE_RETRY: Duration = Duration::from_secs(1);

/// While writes keep failing, at most one log line per this long.
pub(super) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// How the journal's writes are going, for `status` and for the retry.
#[derive(Debug, Default)]
pub struct StateHealth {
    /// Journal writes (appends, syncs, compactions) that failed since start.
    write_errors: AtomicU64,
    /// The last failure's message (kept after recovery, for the operator).
    last_error: Mutex<Option<String>>,
    /// While writes are failing: when to try again.
    retry_at: Mutex<Option<Instant>>,
    /// What of the current run of failures has been logged.
    log: Mutex<FailureLog>,
}

/// The `state` object of `status`: whether `state_dir` is in use and how
/// its writes are going.
#[derive(Debug, serde::Serialize)]
pub struct StateView {
    /// `state_dir` is set.
    pub enabled: bool,
    /// Writes currently succeed (false while failing writes are retried).
    pub writing: bool,
    /// Journal writes that failed since start.
    pub write_errors: u64,
    /// The last failure's message, kept after recovery.
    pub last_write_error: Option<String>,
}

impl StateHealth {
    /// Counts a failed write, schedules a retry, and logs it unless it is
    /// one of a flood (see the module docs).
    pub(super) fn record(&self, message: String) {
        let now = Instant::now();
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        self.retry_at.lock().get_or_insert(now + WRITE_RETRY);
        match self.log.lock().failed(now) {
            Some(0) => log::error!(
                "state_dir: {message}; runs go on in memory, the journal is rewritten once writes work again"
            ),
            Some(more) => log::error!(
                "state_dir: journal writes still failing: {more} more failure(s) since the last message; the latest: {message}"
            ),
            None => {}
        }
        *self.last_error.lock() = Some(message);
    }

    /// Notes that writes work again (`how` says what worked): ends the
    /// retries and logs the end of the failures, with their count.
    pub(super) fn recovered(&self, how: &str) {
        if self.retry_at.lock().take().is_none() {
            return;
        }
        let now = Instant::now();
        match self.log.lock().recovered(now) {
            Some((total, over)) => log::warn!(
                "state_dir: journal writes work again after {total} failure(s) over {} s; {how}",
                over.as_secs()
            ),
            None => log::warn!("state_dir: journal writes work again; {how}"),
        }
    }

    /// A retry is under way (off the loop): the next one, should this one
    /// fail too, comes a whole [`WRITE_RETRY`] later.
    pub(super) fn postpone_retry(&self) {
        if let Some(at) = self.retry_at.lock().as_mut() {
            *at = Instant::now() + WRITE_RETRY;
        }
    }

    /// When the loop should retry, while writes are failing.
    pub fn retry_at(&self) -> Option<Instant> {
        *self.retry_at.lock()
    }

    /// The `state` object of `status`.
    pub fn view(&self, enabled: bool) -> StateView {
        StateView {
            enabled,
            writing: self.retry_at().is_none(),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            last_write_error: self.last_error.lock().clone(),
        }
    }
}

/// The log side of one run of failures (from the first failure after a
/// healthy spell until writes work again).
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    /// When the current run of failures began, while there is one.
    since: Option<Instant>,
    /// When a line about it was last logged.
    logged_at: Option<Instant>,
    /// Failures since that line.
    unlogged: u64,
    /// Failures in this run so far.
    total: u64,
}

impl FailureLog {
    /// Notes a failure at `now`: `Some(0)` for the first of a run (log it
    /// in full), `Some(n)` when a summary line is due (n failures were left
    /// out since the last line, this one included), `None` to stay quiet.
    pub(super) fn failed(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        let Some(last) = self.logged_at else {
            self.since = Some(now);
            self.logged_at = Some(now);
            return Some(0);
        };
        self.unlogged += 1;
        if now < last + SUMMARY_EVERY {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Ends the run of failures: how many there were and how long it
    /// lasted, or None if there was none.
    pub(super) fn recovered(&mut self, now: Instant) -> Option<(u64, Duration)> {
        let ended = std::mem::take(self);
        ended
            .since
            .map(|since| (ended.total, now.saturating_duration_since(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_then_one_a_minute_then_one_at_the_end() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        assert_eq!(log.failed(t0), Some(0), "the first in full");
        // A failure a second (the retry) for almost a minute: quiet.
        for i in 1..60 {
            assert_eq!(log.failed(t0 + sec * i), None, "second {i}");
        }
        assert_eq!(log.failed(t0 + SUMMARY_EVERY), Some(60), "the summary");
        assert_eq!(log.failed(t0 + SUMMARY_EVERY + sec), None);
        let end = t0 + SUMMARY_EVERY + sec * 5;
        assert_eq!(log.recovered(end), Some((62, SUMMARY_EVERY + sec * 5)));
        // The next failure starts a new run, logged in full again.
        assert_eq!(log.recovered(end), None);
        assert_eq!(log.failed(end + sec), Some(0));
    }
}
