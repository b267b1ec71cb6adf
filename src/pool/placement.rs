//! Where a pool's workers run: anywhere, or on the CPU the event loop last
//! ran on while their tasks stay short.
//!
//! Why: a request batch travels loop → request thread → loop. When the two
//! threads sit on different CPUs, each leg is a cross-CPU wake-up: an
//! inter-processor interrupt, an idle CPU woken (on a VM, an exit to the
//! hypervisor), the batch's cache lines moved. For a batch of pings that
//! costs more than answering it: on a 2-vCPU VM, depth-1 pings took 5.4 to
//! 7.0 µs of daemon CPU each with the threads spread, 4.4 to 4.8 µs with
//! them on one CPU (docs/benchmarks.md, third session). On one CPU each leg is a plain context switch.
//!
//! So a following worker, before each task, restricts itself to the CPU the
//! loop was on when it handed the task over ([`CpuBeacon`]), and moves again
//! when the loop has moved. The loop itself is never pinned: the kernel
//! stays free to move it off a busy CPU, and the workers follow.
//!
//! A worker whose last task took [`HEAVY_TASK`] or more goes back to every
//! CPU it was allowed at start for its next task: such a task amortises a
//! cross-CPU hand-off, and heavy requests (a `jobs.list` of ten thousand
//! jobs) should run on other CPUs in parallel with the loop. The time is
//! wall-clock from the moment the worker took the task, so a task that was
//! interrupted by other work on the loop's CPU counts as heavy too (time
//! spent queued before it was taken does not count). A task that learns
//! while it runs that it is heavy (the request pool: answers past
//! [`HEAVY_ANSWER_BYTES`]) sends its thread home at once with [`release`],
//! so only the part of it before that ran beside the loop.
//!
//! A worker whose affinity cannot be set (a seccomp filter, a cpuset that
//! changed under it) stops following and logs why at debug level; nothing
//! else changes.

use crate::sys::{self, CpuMask};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A task at least this long sends its worker back to all its CPUs (see
/// the module doc): a cross-CPU hand-off (a few µs) is then at most a few
/// percent of the work.
pub const HEAVY_TASK: Duration = Duration::from_micros(250);

/// Answer bytes after which a request task calls [`release`]: encoding
/// this much JSON takes a few hundred microseconds, the scale of
/// [`HEAVY_TASK`], and it tells a heavy task without reading the clock.
pub const HEAVY_ANSWER_BYTES: usize = 64 * 1024;

thread_local! {
    /// The calling worker thread's follower, when it follows a leader; set
    /// once when the worker starts.
    static FOLLOWER: RefCell<Option<Follower>> = const { RefCell::new(None) };
}

/// Sets up the calling worker thread for `placement`.
pub(super) fn start(placement: &Placement) {
    let follower = Follower::for_this_thread(placement);
    FOLLOWER.with_borrow_mut(|f| *f = follower);
}

/// Whether the calling thread follows a leader (and so times its tasks).
pub(super) fn following() -> bool {
    FOLLOWER.with_borrow(Option::is_some)
}

/// Moves the calling worker thread where its next task should run; a
/// thread the kernel refuses to move stops following.
pub(super) fn before_task() {
    FOLLOWER.with_borrow_mut(|f| {
        if f.as_mut().is_some_and(|f| !f.before_task()) {
            *f = None;
        }
    });
}

/// Tells the calling worker thread's follower how long its task took.
pub(super) fn after_task(took: Duration) {
    FOLLOWER.with_borrow_mut(|f| {
        if let Some(f) = f.as_mut() {
            f.after_task(took);
        }
    });
}

/// Called from inside a task that has turned out heavy: the calling thread
/// goes back to all the CPUs it started with now, and its next task starts
/// there too. Does nothing on a thread that does not follow, or is not
/// pinned.
pub fn release() {
    FOLLOWER.with_borrow_mut(|f| {
        if f.as_mut().is_some_and(|f| !f.go_home()) {
            *f = None;
        }
    });
}

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
    /// Whether the last task took [`HEAVY_TASK`] or more (or called
    /// [`release`]).
    last_heavy: bool,
    /// The running task called [`release`].
    released: bool,
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
        if home.count() < 2 {
            return None;
        }
        Some(Follower {
            beacon: Arc::clone(beacon),
            home,
            pinned: None,
            last_heavy: false,
            released: false,
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
                // Leave the thread where it may run anywhere, if it was pinned.
                if self.pinned.is_some() {
                    if let Err(e) = sys::set_allowed_cpus(&self.home) {
                        log::warn!(
                            "request thread stays on CPU {:?}: cannot restore its CPU affinity ({e})",
                            self.pinned
                        );
                    }
                }
                false
            }
        }
    }

    /// Goes back to every CPU the thread started with, and stays there for
    /// the next task (see [`release`]). Returns false when the kernel
    /// refused.
    pub(super) fn go_home(&mut self) -> bool {
        self.released = true;
        if self.pinned.is_none() {
            return true;
        }
        match sys::set_allowed_cpus(&self.home) {
            Ok(()) => {
                self.pinned = None;
                true
            }
            Err(e) => {
                log::warn!(
                    "request thread stays on CPU {:?}: cannot restore its CPU affinity ({e})",
                    self.pinned
                );
                false
            }
        }
    }

    /// Notes how long the task took; a heavy one sends the thread home
    /// before the next.
    pub(super) fn after_task(&mut self, took: Duration) {
        self.last_heavy = std::mem::take(&mut self.released) || took >= self.beacon.heavy;
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

    /// Runs `test` on a fresh thread with two CPUs it may use; skipped on a
    /// machine (or a CPU set) of one.
    fn on_two_cpus(test: impl FnOnce(usize, usize) + Send + 'static) {
        let Some((a, b)) = two_cpus() else {
            eprintln!("skipped: fewer than two CPUs allowed");
            return;
        };
        on_thread(move || test(a, b));
    }

    /// A follower of `beacon` for the calling thread.
    fn follower(beacon: &Arc<CpuBeacon>) -> Follower {
        let placement = Placement::FollowWhileShort(Arc::clone(beacon));
        Follower::for_this_thread(&placement).expect("two CPUs allowed")
    }

    #[test]
    fn anywhere_never_follows() {
        assert!(Follower::for_this_thread(&Placement::Anywhere).is_none());
    }

    #[test]
    fn a_follower_moves_to_the_beacons_cpu_and_goes_home_after_a_heavy_task() {
        on_two_cpus(move |a, b| {
            let beacon = CpuBeacon::new();
            let mut f = follower(&beacon);
            let home = sys::allowed_cpus().expect("affinity readable");

            // No mark yet: nothing moves.
            assert!(f.before_task());
            assert_eq!(f.pinned(), None);

            for cpu in [a, b, a] {
                beacon.cpu.store(cpu, Ordering::Relaxed);
                assert!(f.before_task());
                assert_eq!(f.pinned(), Some(cpu));
                assert_eq!(sys::allowed_cpus().expect("affinity").count(), 1);
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
    fn a_task_that_turns_heavy_sends_its_thread_home_at_once() {
        on_two_cpus(move |a, _| {
            let beacon = CpuBeacon::new();
            beacon.cpu.store(a, Ordering::Relaxed);
            let home = sys::allowed_cpus().expect("affinity readable");
            start(&Placement::FollowWhileShort(Arc::clone(&beacon)));
            assert!(following());
            before_task();
            assert_eq!(sys::allowed_cpus().expect("affinity").count(), 1);
            // Mid-task: the task finds it is heavy.
            release();
            assert_eq!(sys::allowed_cpus().expect("affinity"), home);
            after_task(Duration::from_micros(10));
            // The task was short by the clock but heavy by its own account:
            // the next one starts at home too ...
            before_task();
            assert_eq!(sys::allowed_cpus().expect("affinity"), home);
            // ... and after a short one the thread follows again.
            after_task(Duration::from_micros(10));
            before_task();
            assert_eq!(sys::allowed_cpus().expect("affinity").count(), 1);
            // On a thread that does not follow, release does nothing.
            start(&Placement::Anywhere);
            assert!(!following());
            release();
        });
    }

    #[test]
    fn a_beacon_cpu_outside_the_threads_mask_is_not_followed() {
        on_two_cpus(move |a, b| {
            let beacon = CpuBeacon::new();
            let mut f = follower(&beacon);
            beacon.cpu.store(a, Ordering::Relaxed);
            assert!(f.before_task());
            assert_eq!(f.pinned(), Some(a));
            // A CPU the thread was never allowed on: go home instead.
            beacon.cpu.store(b.max(a) + 4096, Ordering::Relaxed);
            assert!(f.before_task());
            assert_eq!(f.pinned(), None);
            assert!(sys::allowed_cpus().expect("affinity").count() >= 2);
        });
    }

    #[test]
    fn a_thread_on_one_cpu_does_not_follow() {
        on_two_cpus(move |a, _| {
            let only = CpuMask::only(a).expect("small cpu number");
            sys::set_allowed_cpus(&only).expect("pin");
            let placement = Placement::FollowWhileShort(CpuBeacon::new());
            assert!(Follower::for_this_thread(&placement).is_none());
        });
    }

    #[test]
    fn a_beacon_marks_the_cpu_its_caller_is_on() {
        on_two_cpus(move |_, b| {
            sys::set_allowed_cpus(&CpuMask::only(b).expect("small cpu number")).expect("pin");
            let beacon = CpuBeacon::new();
            assert_eq!(beacon.cpu(), None);
            beacon.mark();
            assert_eq!(beacon.cpu(), Some(b));
        });
    }
}
