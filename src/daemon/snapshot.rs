//! [`Snapshot`]: a value many threads read and one writer replaces whole,
//! the way the daemon publishes its live settings
//! ([`crate::config::LiveSettings`]) to the request workers and the loop.
//!
//! A reader sees either the old value or the new one, never a mix: the
//! value is never changed in place, an accepted reload builds a new one
//! and swaps it in ([`Snapshot::swap`]). A reader that keeps the value it
//! took ([`Snapshot::load`]) keeps reading it, unchanged, until it drops
//! it, whatever the swaps since.
//!
//! Why a `parking_lot::RwLock<Arc<T>>` and not atomics per setting, or an
//! `arc-swap` crate: settings read together must come from one version
//! (a status answer's `health` and `workers.min`), which separate atomics
//! cannot promise; and a lock-free `Arc` swap needs either a crate or
//! `unsafe` (tickd keeps all of it in `sys/ffi.rs`). The lock is held only
//! to read a few fields ([`Snapshot::read`]) or to clone the `Arc`, and
//! the writer holds it only to exchange two pointers; the old value is
//! dropped after the lock is released. An uncontended `read` costs what
//! the single `RwLock` read of the auth token it replaces did: one atomic
//! operation to take it and one to release it.

use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use std::fmt;
use std::sync::Arc;

/// A shared value that is replaced whole, never changed in place.
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Snapshot<T> {
    /// Publishes `value` as the first version.
    pub fn new(value: T) -> Snapshot<T> {
        Snapshot {
            current: RwLock::new(Arc::new(value)),
        }
    }

    /// The version in force, to read a few fields now. Release it soon
    /// (a swap waits for it), and never hold it while taking another
    /// lock or blocking.
    pub fn read(&self) -> MappedRwLockReadGuard<'_, T> {
        RwLockReadGuard::map(self.current.read(), |value| &**value)
    }

    /// The version in force, to keep: later swaps leave it as it is.
    pub fn load(&self) -> Arc<T> {
        Arc::clone(&self.current.read())
    }

    /// Publishes `new` in place of the version in force, and returns that
    /// one (dropped by the caller, outside the lock, unless a reader still
    /// holds it).
    pub fn swap(&self, new: Arc<T>) -> Arc<T> {
        std::mem::replace(&mut *self.current.write(), new)
    }
}

impl<T: fmt::Debug> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Snapshot").field(&*self.read()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, AuthToken, LiveSettings};
    use std::path::Path;

    fn live(table: &str) -> LiveSettings {
        let text = format!("[daemon]\n{table}\n");
        config::parse(&text, Path::new("/etc/tickd.toml"))
            .expect("config")
            .daemon
            .live
    }

    #[test]
    fn a_swap_publishes_the_new_version_and_hands_back_the_old() {
        let cell = Snapshot::new(live("allow_submit = false\nmin_workers = 1"));
        assert!(!cell.read().allow_submit);
        let old = cell.swap(Arc::new(live(
            "allow_submit = true\nmin_workers = 0\nauth_token = \"s\"",
        )));
        assert!(!old.allow_submit && old.auth_token.is_none());
        let now = cell.read();
        assert!(now.allow_submit);
        assert_eq!(now.min_workers, 0);
        assert_eq!(now.auth_token, Some(AuthToken::new("s")));
    }

    #[test]
    fn a_reader_keeps_the_version_it_loaded() {
        let cell = Snapshot::new(live("max_output_bytes = 4096"));
        let held = cell.load();
        cell.swap(Arc::new(live("max_output_bytes = 8192")));
        cell.swap(Arc::new(live("max_output_bytes = 16384")));
        assert_eq!(held.max_output_bytes, 4096, "unchanged for its holder");
        assert_eq!(cell.read().max_output_bytes, 16384);
        assert_eq!(Arc::strong_count(&held), 1, "only its holder keeps it");
    }

    #[test]
    fn readers_on_other_threads_see_one_version_or_the_next_never_a_mix() {
        // Each version's two fields move together; a reader must never see
        // one from one version and one from another.
        let cell = Arc::new(Snapshot::new((0u64, 0u64)));
        let reader = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..20_000 {
                    let (a, b) = *cell.read();
                    assert_eq!(a, b, "a torn read");
                    assert!(a >= last, "went back from {last} to {a}");
                    last = a;
                }
            })
        };
        for v in 1..=2_000u64 {
            cell.swap(Arc::new((v, v)));
        }
        reader.join().expect("reader");
    }
}
