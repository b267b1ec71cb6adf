//! The core behind its lock, with a change counter.
//!
//! Every mutable access to the [`Core`] goes through [`CoreGuard`]'s
//! `DerefMut`, which bumps the core's generation first. A reader that saw
//! generation `g` and finds `g` again later knows nothing has changed in
//! between, without the mutators having to remember to say so: that is what
//! lets `jobs.list` answer from a cached encoding kept by its handler,
//! above the core. The count is conservative (a
//! mutable borrow that changes nothing still counts), never optimistic.

use super::Core;
use parking_lot::{Mutex, MutexGuard};
use std::ops::{Deref, DerefMut};

/// The daemon's [`Core`] under its one mutex.
#[derive(Debug)]
pub struct CoreLock {
    inner: Mutex<Core>,
}

impl CoreLock {
    /// Puts `core` behind the lock.
    pub fn new(core: Core) -> Self {
        CoreLock {
            inner: Mutex::new(core),
        }
    }

    /// Locks the core; mutable use through the guard counts as a change.
    pub fn lock(&self) -> CoreGuard<'_> {
        CoreGuard(self.inner.lock())
    }
}

/// Access to the locked [`Core`]: shared access is free, mutable access
/// bumps [`Core::generation`].
#[derive(Debug)]
pub struct CoreGuard<'a>(MutexGuard<'a, Core>);

impl Deref for CoreGuard<'_> {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.0
    }
}

impl DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        let core = &mut *self.0;
        core.generation = core.generation.wrapping_add(1);
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutable_access_bumps_the_generation_and_reads_do_not() {
        let lock = CoreLock::new(Core::new(10));
        let g0 = lock.lock().generation();
        {
            let core = lock.lock();
            let _ = core.job_names();
            let _ = core.job_views();
        }
        assert_eq!(lock.lock().generation(), g0, "reads leave it alone");
        lock.lock().set_history_limit(5);
        let g1 = lock.lock().generation();
        assert!(g1 > g0, "a mutation through the guard counts");
        let mut core = lock.lock();
        let _ = core.job_mut("none");
        assert!(core.generation() > g1);
    }
}
