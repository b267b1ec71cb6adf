//! How long start-up waits for an `flock` that someone else holds.
//!
//! A lock can outlive the daemon that took it, for a moment: a job child
//! that the daemon had forked but that has not reached `exec` yet still
//! holds a copy of every descriptor (they close at `exec`, `O_CLOEXEC`), the
//! lock files' included. Right after a `kill -9`, a restart (systemd's
//! `Restart=`, an operator's quick `start`) can therefore find the state
//! dir's lock or the pidfile's lock held by nobody alive. Both are retried
//! for up to [`LockWait::LIMIT`] before the start gives up; a second live
//! daemon is still refused once that has passed.

use std::time::{Duration, Instant};

/// The retry budget of one lock during start-up.
#[derive(Debug)]
pub struct LockWait {
    give_up: Instant,
    warned: bool,
}

impl LockWait {
    /// How long a held lock is retried.
    pub const LIMIT: Duration = Duration::from_secs(3);
    /// The pause between two tries.
    const PAUSE: Duration = Duration::from_millis(20);

    /// A budget of [`LockWait::LIMIT`] from now.
    pub fn new() -> LockWait {
        LockWait::within(LockWait::LIMIT)
    }

    /// A budget of `limit` from now (tests use short ones).
    pub fn within(limit: Duration) -> LockWait {
        LockWait {
            give_up: Instant::now() + limit,
            warned: false,
        }
    }

    /// Called when a try found the lock held: `true` after a short pause
    /// (try again), `false` once the budget is spent (give up). `warn` runs
    /// on the first call only, to log that start-up is waiting.
    pub fn again(&mut self, warn: impl FnOnce()) -> bool {
        if Instant::now() >= self.give_up {
            return false;
        }
        if !self.warned {
            warn();
            self.warned = true;
        }
        std::thread::sleep(LockWait::PAUSE);
        true
    }
}

impl Default for LockWait {
    fn default() -> LockWait {
        LockWait::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_and_gives_up_when_the_budget_is_spent() {
        let mut wait = LockWait::within(Duration::from_millis(50));
        let mut warnings = 0;
        let mut tries = 0;
        while wait.again(|| warnings += 1) {
            tries += 1;
            assert!(tries < 1000, "the budget never ran out");
        }
        assert_eq!(warnings, 1);
        assert!(tries >= 1);
        let mut spent = LockWait::within(Duration::ZERO);
        assert!(!spent.again(|| panic!("no warning once the budget is spent")));
    }
}
