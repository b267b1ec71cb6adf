//! Cancellation of a run from another thread.
//!
//! `runs.cancel` arrives on the server thread while the run blocks a worker
//! in its own `mio::Poll`. A [`CancelToken`] carries the request across: the
//! flag says "stop", and the run's attached `mio::Waker` makes its poll
//! return at once instead of at its next timeout.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mio::Waker;

/// A cheap, clonable "please stop" flag shared by a run and whoever may
/// cancel it. All clones observe the same state.
///
/// One run at a time should attach its waker; a token may be cancelled
/// before the run starts, in which case the runner does not start at all.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    waker: Mutex<Option<Arc<Waker>>>,
    /// Why the run was cancelled, for its `error` (first reason wins).
    reason: Mutex<Option<String>>,
}

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation and wakes the attached run, if any.
    ///
    /// Idempotent; safe to call from any thread, before, during or after
    /// the run.
    pub fn cancel(&self) {
        // The flag is set before the waker is looked at; `attach_waker`
        // takes the same lock and the runner re-checks the flag after
        // attaching, so a cancel can never fall between the two.
        self.inner.cancelled.store(true, Ordering::SeqCst);
        if let Some(waker) = self.slot().as_ref() {
            if let Err(e) = waker.wake() {
                log::warn!("cancel: could not wake the run: {e}");
            }
        }
    }

    /// Cancels with a reason that ends up in the run's `error` (for example
    /// that shutdown's grace period ended). The first reason given wins.
    pub fn cancel_because(&self, reason: &str) {
        {
            let mut slot = self
                .inner
                .reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(reason.to_string());
            }
        }
        self.cancel();
    }

    /// The reason given to [`cancel_because`](Self::cancel_because), if any.
    pub fn reason(&self) -> Option<String> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether [`cancel`](Self::cancel) has been called on any clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Attaches the run's waker so that a later `cancel` wakes its poll.
    ///
    /// The waker stays attached until the returned guard is dropped. Callers
    /// must check [`is_cancelled`](Self::is_cancelled) *after* attaching.
    pub fn attach_waker(&self, waker: Arc<Waker>) -> WakerAttachment {
        *self.slot() = Some(waker);
        WakerAttachment {
            token: self.clone(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<Arc<Waker>>> {
        // The lock only guards an Option; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still usable.
        self.inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Keeps a run's waker attached to a [`CancelToken`]; detaches on drop so a
/// late cancel does not wake a poll that no longer exists.
#[must_use = "the waker is detached as soon as this guard is dropped"]
pub struct WakerAttachment {
    token: CancelToken,
}

impl Drop for WakerAttachment {
    fn drop(&mut self) {
        *self.token.slot() = None;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_reason_wins() {
        let t = super::CancelToken::new();
        assert_eq!(t.reason(), None);
        t.cancel_because("shutdown");
        t.cancel_because("later");
        assert!(t.is_cancelled());
        assert_eq!(t.reason().as_deref(), Some("shutdown"));
    }

    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    #[test]
    fn clones_share_state() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }

    #[test]
    fn cancel_from_another_thread_wakes_poll() {
        let mut poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(7)).expect("waker"));
        let token = CancelToken::new();
        let _guard = token.attach_waker(waker);
        let other = token.clone();
        let t = std::thread::spawn(move || other.cancel());
        let mut events = Events::with_capacity(4);
        // A long timeout: the test passes only if the waker fires.
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .expect("poll");
        assert!(events.iter().any(|e| e.token() == Token(7)));
        assert!(token.is_cancelled());
        t.join().expect("canceller thread");
    }

    #[test]
    fn guard_detaches() {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(1)).expect("waker"));
        let token = CancelToken::new();
        drop(token.attach_waker(waker));
        assert!(token.slot().is_none());
        token.cancel();
        assert!(token.is_cancelled());
    }
}
