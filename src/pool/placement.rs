//! Where a pool's workers run: anywhere, or on the CPU the event loop last
//! ran on while their tasks stay short.
//!
//! Why: a request batch travels loop → request thread → loop. When the two
//! threads sit on different CPUs, each leg is a cross-CPU wake-up: an
//! inter-processor interrupt, an idle CPU woken (on a VM, an exit to the
//! hypervisor), the batch's cache lines moved. For a batch of pings that
//! costs more than answering it: on a 2-vCPU VM, depth-1 pings took 5.4 to
//! 7.0 µs of daemon CPU each with the threads spread, 4.6 with them on one
//! CPU (docs/benchmarks.md). On one CPU each leg is a plain context switch.
//!
//! So a following worker, before each task, restricts itself to the CPU the
//! loop was on when it handed the task over ([`CpuBeacon`]), and moves again
//! when the loop has moved. The loop itself is never pinned: the kernel
//! stays free to move it off a busy CPU, and the workers follow.
//!
//! A worker whose last task took [`HEAVY_TASK`] or more goes back to every
//! CPU it was allowed at start: such a task amortises a cross-CPU hand-off,
//! and heavy requests (a `jobs.list` of ten thousand jobs) must be able to
//! run on other CPUs in parallel with the loop. The time is wall-clock, so
//! tasks that slow down because the loop's CPU is saturated also spread out.
//!
//! A worker whose affinity cannot be set (a seccomp filter, a cpuset that
//! changed under it) stops following and logs why at debug level; nothing
//! else changes.

use crate::sys::{self, CpuMask};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A task at least this long sends its worker back to all its CPUs (see
/// the module doc): a cross-CPU hand-off (a few µs) is then at most a few
/// percent of the work.
pub const HEAVY_TASK: Duration = Duration::from_micros(250);

/// The CPU a leading thread (the event loop) was last seen on, published
/// for the workers that follow it.
#[derive(Debug)]
pub struct CpuBeacon {
    cpu: AtomicUsize,
    moves: AtomicU64,
    /// A task this long sends its follower home: [`HEAVY_TASK`], but for
    /// tests that must not depend on how busy the machine is.
    heavy: Duration,
}

/// `CpuBeacon::cpu` before the leader first marks it.
const UNKNOWN: usize = usize::MAX;

impl CpuBeacon {
    /// A beacon no leader has marked yet (workers stay where they are).
    pub fn new() -> Arc<CpuBeacon> {
        Arc::new(CpuBeacon {
            cpu: AtomicUsize::new(UNKNOWN),
            moves: AtomicU64::new(0),
            heavy: HEAVY_TASK,
        })
    }

    /// A beacon whose followers count a task as heavy from `heavy` on.
    #[cfg(test)]
    pub(crate) fn with_heavy_task(heavy: Duration) -> Arc<CpuBeacon> {
        Arc::new(CpuBeacon {
            cpu: AtomicUsize::new(UNKNOWN),
            moves: AtomicU64::new(0),
            heavy,
        })
    }

    /// Records the CPU the calling thread is on; the leader calls it just
    /// before handing work over.
    pub fn mark(&self) {
        self.cpu.store(sys::current_cpu(), Ordering::Relaxed);
    }

    /// The leader's last CPU, if it has marked one.
    pub fn cpu(&self) -> Option<usize> {
        Some(self.cpu.load(Ordering::Relaxed)).filter(|&c| c != UNKNOWN)
    }

    /// Sets the published CPU directly (tests, which cannot choose the CPU
    /// they run on without pinning themselves).
    #[cfg(test)]
    pub(crate) fn cpu_for_test(&self, cpu: usize) {
        self.cpu.store(cpu, Ordering::Relaxed);
    }

    /// How many times a follower has moved to the leader's CPU.
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }
}

/// Where a pool's workers run.
#[derive(Clone, Debug, Default)]
pub enum Placement {
    /// Wherever the kernel puts them (job workers: a job's work is long
    /// and independent of the loop).
    #[default]
    Anywhere,
    /// On the beacon's CPU while their tasks are short (request workers).
    FollowWhileShort(Arc<CpuBeacon>),
}

/// How many times a worker of a pool placed so has moved to the leader's
/// CPU; None for a pool that does not follow.
pub(super) fn cpu_moves(placement: &Placement) -> Option<u64> {
    match placement {
        Placement::Anywhere => None,
        Placement::FollowWhileShort(beacon) => Some(beacon.moves()),
    }
}

/// One worker's side of [`Placement::FollowWhileShort`].
#[derive(Debug)]
pub(super) struct Follower {
    beacon: Arc<CpuBeacon>,
    /// The CPUs the thread was allowed when it started.
    home: CpuMask,
    /// The CPU the thread is restricted to, or None when it is at home.
    pinned: Option<usize>,
    /// Whether the last task took [`HEAVY_TASK`] or more.
    last_heavy: bool,
}

impl Follower {
    /// The follower for the calling thread, or None when it should not
    /// follow: placement `Anywhere`, a thread allowed on one CPU only (there
    /// is nowhere to move), or an affinity the kernel would not tell.
    pub(super) fn for_this_thread(placement: &Placement) -> Option<Follower> {
        let Placement::FollowWhileShort(beacon) = placement else {
            return None;
        };
        let home = match sys::allowed_cpus() {
            Ok(mask) => mask,
            Err(e) => {
                log::debug!("cannot read this thread's CPU affinity ({e}); not following the loop");
                return None;
            }
        };
        if home.len() < 2 {
            return None;
        }
        Some(Follower {
            beacon: Arc::clone(beacon),
            home,
            pinned: None,
            last_heavy: false,
        })
    }

    /// Moves the thread where its next task should run. Returns false when
    /// the kernel refused, after which the caller should drop the follower.
    pub(super) fn before_task(&mut self) -> bool {
        let want = if self.last_heavy {
            None
        } else {
            self.beacon.cpu().filter(|&c| self.home.contains(c))
        };
        if want == self.pinned {
            return true;
        }
        // `want` is in `home`, so it is small enough for a mask.
        let target = want
            .and_then(CpuMask::only)
            .unwrap_or_else(|| self.home.clone());
        match sys::set_allowed_cpus(&target) {
            Ok(()) => {
                if want.is_some() {
                    self.beacon.moves.fetch_add(1, Ordering::Relaxed);
                }
                self.pinned = want;
                true
            }
            Err(e) => {
                log::debug!("cannot set this thread's CPU affinity ({e}); not following the loop");
                // Best effort: leave the thread where it may run anywhere.
                let _ = sys::set_allowed_cpus(&self.home);
                false
            }
        }
    }

    /// Notes how long the task took; a heavy one sends the thread home
    /// before the next.
    pub(super) fn after_task(&mut self, took: Duration) {
        self.last_heavy = took >= self.beacon.heavy;
    }

    /// The CPU the thread is restricted to, if any.
    #[cfg(test)]
    pub(super) fn pinned(&self) -> Option<usize> {
        self.pinned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread (so affinity changes die with it).
    fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        match std::thread::spawn(f).join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    fn two_cpus() -> Option<(usize, usize)> {
        let mask = sys::allowed_cpus().ok()?;
        let mut cpus = (0..1024).filter(|&c| mask.contains(c));
        Some((cpus.next()?, cpus.next()?))
    }

    #[test]
    fn anywhere_never_follows() {
        assert!(Follower::for_this_thread(&Placement::Anywhere).is_none());
    }

    #[test]
    fn a_follower_moves_to_the_beacons_cpu_and_goes_home_after_a_heavy_task() {
        let Some((a, b)) = two_cpus() else {
            eprintln!("skipped: fewer than two CPUs allowed");
            return;
        };
        on_thread(move || {
            let beacon = CpuBeacon::new();
            let placement = Placement::FollowWhileShort(Arc::clone(&beacon));
            let mut f = Follower::for_this_thread(&placement).expect("two CPUs allowed");
            let home = sys::allowed_cpus().expect("affinity readable");

            // No mark yet: nothing moves.
            assert!(f.before_task());
            assert_eq!(f.pinned(), None);

            for cpu in [a, b, a] {
                beacon.cpu.store(cpu, Ordering::Relaxed);
                assert!(f.before_task());
                assert_eq!(f.pinned(), Some(cpu));
                assert_eq!(sys::allowed_cpus().expect("affinity").len(), 1);
                assert_eq!(sys::current_cpu(), cpu, "the kernel moved the thread");
                f.after_task(Duration::from_micros(10));
            }
            assert_eq!(beacon.moves(), 3);

            // Same CPU again: no syscall, no move counted.
            assert!(f.before_task());
            assert_eq!(beacon.moves(), 3);

            f.after_task(HEAVY_TASK);
            assert!(f.before_task());
            assert_eq!(f.pinned(), None);
            assert_eq!(sys::allowed_cpus().expect("affinity"), home);

            // Short again: back to the loop's CPU.
            f.after_task(Duration::ZERO);
            assert!(f.before_task());
            assert_eq!(f.pinned(), Some(a));
            assert_eq!(beacon.moves(), 4);
        });
    }

    #[test]
    fn a_beacon_cpu_outside_the_threads_mask_is_not_followed() {
        let Some((a, b)) = two_cpus() else {
            eprintln!("skipped: fewer than two CPUs allowed");
            return;
        };
        on_thread(move || {
            let beacon = CpuBeacon::new();
            let placement = Placement::FollowWhileShort(Arc::clone(&beacon));
            let mut f = Follower::for_this_thread(&placement).expect("two CPUs allowed");
            beacon.cpu.store(a, Ordering::Relaxed);
            assert!(f.before_task());
            assert_eq!(f.pinned(), Some(a));
            // A CPU the thread was never allowed on: go home instead.
            beacon.cpu.store(b.max(a) + 4096, Ordering::Relaxed);
            assert!(f.before_task());
            assert_eq!(f.pinned(), None);
            assert!(sys::allowed_cpus().expect("affinity").len() >= 2);
        });
    }

    #[test]
    fn a_thread_on_one_cpu_does_not_follow() {
        let Some((a, _)) = two_cpus() else {
            eprintln!("skipped: fewer than two CPUs allowed");
            return;
        };
        on_thread(move || {
            let only = CpuMask::only(a).expect("small cpu number");
            sys::set_allowed_cpus(&only).expect("pin");
            let placement = Placement::FollowWhileShort(CpuBeacon::new());
            assert!(Follower::for_this_thread(&placement).is_none());
        });
    }

    #[test]
    fn a_beacon_marks_the_cpu_its_caller_is_on() {
        let Some((_, b)) = two_cpus() else {
            eprintln!("skipped: fewer than two CPUs allowed");
            return;
        };
        on_thread(move || {
            sys::set_allowed_cpus(&CpuMask::only(b).expect("small cpu number")).expect("pin");
            let beacon = CpuBeacon::new();
            assert_eq!(beacon.cpu(), None);
            beacon.mark();
            assert_eq!(beacon.cpu(), Some(b));
        });
    }
}
