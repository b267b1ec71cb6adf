//! Accepting under fd exhaustion: when `accept` fails for lack of a
//! resource (EMFILE, ENFILE, ENOBUFS, ENOMEM), the listener is left alone
//! for [`PAUSE`] instead of being retried at once.
//!
//! The pending connection stays in the kernel's backlog, so retrying at
//! once fails again; with a level-triggered view of the listener that is a
//! loop at 100% CPU, and with edge triggering the backlog is only looked at
//! again when yet another client arrives. Pausing and then accepting again
//! on a timer avoids both (nginx and redis back off the same way). Existing
//! connections are not touched: only new ones wait.

use rustix::io::Errno;
use std::io;
use std::time::{Duration, Instant};

/// How long accepting pauses after a resource error.
pub(super) const PAUSE: Duration = Duration::from_millis(100);
/// At most one warning per this long while accept keeps failing.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether the listener is paused, and the log rate limit.
#[derive(Debug, Default)]
pub(super) struct AcceptBackoff {
    /// When accepting resumes, while paused.
    until: Option<Instant>,
    /// When the last warning was logged.
    logged_at: Option<Instant>,
    /// Failures not logged since then.
    unlogged: u64,
}

impl AcceptBackoff {
    /// Notes a failed accept: logs it (rate-limited) and, for a resource
    /// error, pauses accepting and returns true. Any other error (a client
    /// that reset before we accepted it: ECONNABORTED, EPROTO, EPERM from a
    /// firewall) is only logged and returns false: the caller accepts the
    /// next connection at once, since with edge triggering the rest of the
    /// backlog would otherwise wait for yet another client to arrive.
    pub(super) fn on_error(&mut self, e: &io::Error, now: Instant) -> bool {
        let scarce = e.raw_os_error().is_some_and(|code| {
            [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
                .iter()
                .any(|scarce| scarce.raw_os_error() == code)
        });
        if scarce {
            self.until = Some(now + PAUSE);
        }
        let quiet = self.logged_at.is_some_and(|t| now < t + LOG_EVERY);
        if quiet {
            self.unlogged += 1;
            return scarce;
        }
        let action = if scarce {
            format!("accepting paused for {} ms", PAUSE.as_millis())
        } else {
            "accepting the next one".to_string()
        };
        let also = match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more since the last warning)"),
        };
        log::warn!("accept failed: {e}; {action}; open connections are unaffected{also}");
        self.logged_at = Some(now);
        scarce
    }

    /// True while accepting is paused.
    pub(super) fn paused(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    /// When the pause ends (for the poll timeout).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.until
    }

    /// True once when the pause has ended: the caller accepts again.
    pub(super) fn take_due(&mut self, now: Instant) -> bool {
        if self.until.is_some_and(|t| now >= t) {
            self.until = None;
            return true;
        }
        false
    }
}

/// A warning that may come in floods (one per wrong token, refused or
/// misbehaving client): logged at most once per [`LOG_EVERY`], with the
/// number left out since.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl LogLimit {
    /// `Some(left out since the last one)` when a warning may be logged now.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.logged_at.is_some_and(|t| now < t + LOG_EVERY) {
            self.unlogged += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// " (N more like it since the last warning)", or nothing.
pub(super) fn more(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} more like it since the last warning)"),
    }
}

/// Runs one `accept` (of either listener) behind the `server.accept` fail
/// point, whose `return` action fails it with EMFILE (`return(aborted)`:
/// with ECONNABORTED, a client that reset before it was accepted).
pub(super) fn accept<T>(accept: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    fail::fail_point!("server.accept", |arg: Option<String>| {
        if arg.as_deref() == Some("aborted") {
            Err(io::Error::from_raw_os_error(
                Errno::CONNABORTED.raw_os_error(),
            ))
        } else {
            Err(emfile())
        }
    });
    accept()
}

/// "Too many open files".
#[cfg(any(test, feature = "failpoints"))]
fn emfile() -> io::Error {
    io::Error::from_raw_os_error(Errno::MFILE.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_exhaustion_pauses_then_resumes_once() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        b.on_error(&emfile(), t0);
        assert!(b.paused(t0));
        assert_eq!(b.deadline(), Some(t0 + PAUSE));
        assert!(!b.take_due(t0));
        assert!(b.take_due(t0 + PAUSE));
        assert!(!b.take_due(t0 + PAUSE), "resumes once");
        assert!(!b.paused(t0 + PAUSE));
    }

    #[test]
    fn other_errors_do_not_pause() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert!(!b.on_error(&io::Error::from(io::ErrorKind::ConnectionAborted), t0));
        assert!(!b.paused(t0));
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let e = emfile();
        b.on_error(&e, t0);
        b.on_error(&e, t0 + PAUSE);
        b.on_error(&e, t0 + PAUSE * 2);
        assert_eq!(b.unlogged, 2);
        b.on_error(&e, t0 + LOG_EVERY);
        assert_eq!(b.unlogged, 0);
    }

    #[test]
    fn floods_of_warnings_are_counted_not_logged() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + PAUSE), None);
        assert_eq!(l.allow(t0 + PAUSE), None);
        assert_eq!(l.allow(t0 + LOG_EVERY), Some(2));
    }
}
