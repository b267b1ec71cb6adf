//! Thin, safe wrappers around the operating-system calls tickd needs.
//!
//! Everything process- or fd-specific that std does not offer lives here, so
//! the rest of the daemon never talks to the kernel directly. Each function
//! returns `io::Result` (but the scheduler-slice ones, which only log when
//! the kernel says no) and carries no `unsafe`: the calls go through
//! rustix's safe API. The few calls rustix has no safe form for (fork,
//! setgroups/setgid/setuid, passwd lookups, scheduler attributes) are
//! fenced in [`ffi`], and used by [`crate::daemonize`],
//! [`crate::privilege`] and [`mark_latency_sensitive`].

pub(crate) mod ffi;
pub mod limits;

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// The two signals the runner sends to a job's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    /// `SIGTERM`: ask politely.
    Term,
    /// `SIGKILL`: cannot be caught or ignored.
    Kill,
}

/// Turns a process id into rustix's `Pid`, refusing 0.
///
/// Refusing 0 is a safety net, not a formality: `kill(-0, sig)` would signal
/// the daemon's own process group.
fn to_pid(id: u32) -> io::Result<Pid> {
    i32::try_from(id)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "process id out of range"))
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sends `sig` to every process in the group `pgid`.
///
/// Returns `Ok(false)` when no process of the group is left (`ESRCH`), which
/// callers treat as success: the group is already gone.
pub fn signal_process_group(pgid: u32, sig: GroupSignal) -> io::Result<bool> {
    let signal = match sig {
        GroupSignal::Term => Signal::TERM,
        GroupSignal::Kill => Signal::KILL,
    };
    match rustix::process::kill_process_group(to_pid(pgid)?, signal) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether any process (zombies included) still belongs to group `pgid`.
///
/// This is `kill(-pgid, 0)`. `EPERM` means a process exists that we may not
/// signal, so it counts as "exists".
pub fn process_group_exists(pgid: u32) -> io::Result<bool> {
    match rustix::process::test_kill_process_group(to_pid(pgid)?) {
        Ok(()) | Err(Errno::PERM) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Opens a pidfd for `pid`: an fd that becomes readable when the process
/// exits, so a child's exit can be waited for in the same poll as its pipes.
///
/// Fails with `ENOSYS` on kernels older than 5.3; callers fall back to
/// [`wait_for_exit`] on a helper thread.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(
        to_pid(pid)?,
        PidfdFlags::empty(),
    )?)
}

/// Blocks until child `pid` has exited, **without reaping it**
/// (`waitid(P_PID, pid, WEXITED | WNOWAIT)`).
///
/// Leaving the zombie in place lets the owner of the `std::process::Child`
/// reap it (and read its status) afterwards, and keeps the pid — and so the
/// process-group id — from being reused meanwhile. Retries on `EINTR`.
pub fn wait_for_exit(pid: u32) -> io::Result<()> {
    let pid = to_pid(pid)?;
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether child `pid` has exited, without blocking and without reaping it
/// (`waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`).
///
/// Used to tell a real exit notification from a spurious wake-up before
/// acting on it, while the zombie still reserves the pid.
pub fn has_exited(pid: u32) -> io::Result<bool> {
    let pid = to_pid(pid)?;
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ) {
            Ok(status) => return Ok(status.is_some()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Takes fds `3 .. 3 + count`, passed on by the process that started this
/// one (socket activation), and marks them close-on-exec. Once per process;
/// see [`ffi::claim_inherited_fds`] for when it is sound to call.
pub(crate) fn claim_inherited_fds(count: usize) -> io::Result<Vec<OwnedFd>> {
    ffi::claim_inherited_fds(count)
}

/// The fds [`spawn_passing_fds`] passes on.
#[derive(Debug, Clone, Copy)]
pub struct PassFds<'a> {
    /// Listening sockets: fds 3, 4, ..., counted in `LISTEN_FDS`.
    pub listeners: &'a [std::os::fd::BorrowedFd<'a>],
    /// More fds right after them, not counted (the upgrade's pipes).
    pub extra: &'a [std::os::fd::BorrowedFd<'a>],
    /// The child gets `SIGTERM` should this process die.
    pub die_with_parent: bool,
}

/// Spawns `command` as `program args` with exactly the environment `env`,
/// passing fds on by the socket-activation protocol (`LISTEN_FDS`, and
/// `LISTEN_PID` = the child's pid); see [`ffi::exec_passing_fds`].
/// `command`'s own program, arguments and environment are not used (its
/// stdio, process group and the like are).
pub fn spawn_passing_fds(
    command: &mut std::process::Command,
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    pass: &PassFds<'_>,
) -> io::Result<std::process::Child> {
    ffi::exec_passing_fds(command, program, args, env, pass)?;
    command.spawn()
}

/// A set of CPUs a thread may run on (its affinity mask).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMask(rustix::thread::CpuSet);

impl CpuMask {
    /// The mask holding `cpu` alone, or None if `cpu` is beyond what a
    /// mask can name.
    pub fn only(cpu: usize) -> Option<CpuMask> {
        if cpu >= rustix::thread::CpuSet::MAX_CPU {
            return None;
        }
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        Some(CpuMask(set))
    }

    /// Whether `cpu` is in the mask.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < rustix::thread::CpuSet::MAX_CPU && self.0.is_set(cpu)
    }

    /// How many CPUs the mask holds.
    pub fn count(&self) -> usize {
        self.0.count() as usize
    }
}

/// The CPU the calling thread runs on at this instant (it may be moved
/// right after; fine for a hint). On x86-64 rustix reads it through the
/// vDSO, without entering the kernel.
pub fn current_cpu() -> usize {
    rustix::thread::sched_getcpu()
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<CpuMask> {
    Ok(CpuMask(rustix::thread::sched_getaffinity(None)?))
}

/// Restricts the calling thread to `mask`; if the thread is on a CPU
/// outside it, the kernel moves it before this returns.
pub fn set_allowed_cpus(mask: &CpuMask) -> io::Result<()> {
    Ok(rustix::thread::sched_setaffinity(None, &mask.0)?)
}

/// The scheduler slice asked for by [`mark_latency_sensitive`]: Linux's
/// minimum (0.1 ms). These threads run for microseconds at a time anyway.
pub const SHORT_SLICE_NS: u64 = 100_000;

/// Marks the calling thread as one that must react promptly: the event
/// loop (timers due, requests), the request threads (a batch waiting for
/// them), and a job worker while it waits for a run.
///
/// On a busy machine a waking thread may wait for a running one to use up
/// its slice (a few milliseconds by default) before it gets a CPU; that
/// wait showed as schedule lateness. Asking for the shortest slice makes
/// EEVDF (Linux 6.12 and later) pick these threads first when they wake,
/// without giving them more CPU than their fair share. Processes the thread
/// spawns (jobs) start with the default slice again. Where the kernel
/// refuses, or predates custom slices, nothing changes but a debug line.
pub fn mark_latency_sensitive() {
    set_slice(SHORT_SLICE_NS);
}

/// Gives the calling thread the kernel's default slice again: a job worker
/// once it has picked up a run, since the run's own work (an SQL
/// transaction, an HTTP call) gets no special treatment.
pub fn unmark_latency_sensitive() {
    set_slice(0);
}

fn set_slice(slice_ns: u64) {
    match ffi::request_slice(slice_ns) {
        Ok(ffi::SliceRequest::Set) => {}
        Ok(ffi::SliceRequest::LeftAlone) => {
            log::debug!("thread runs under another policy or a negative nice; slice left alone");
        }
        Err(e) => log::debug!("scheduler slice of {slice_ns} ns not granted: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_zero_is_refused() {
        assert!(signal_process_group(0, GroupSignal::Term).is_err());
        assert!(process_group_exists(0).is_err());
        assert!(pidfd_open(0).is_err());
    }

    #[test]
    fn own_group_exists() {
        let pgid = rustix::process::getpgrp().as_raw_nonzero().get();
        let pgid = u32::try_from(pgid).expect("pgid is positive");
        assert!(process_group_exists(pgid).expect("kill 0 works"));
    }

    #[test]
    fn pidfd_and_exit_checks_on_a_child() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        match pidfd_open(pid) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(38) => {} // ENOSYS: old kernel
            Err(e) => panic!("pidfd_open: {e}"),
        }
        wait_for_exit(pid).expect("waitid");
        // WNOWAIT left the zombie for std to reap.
        assert!(has_exited(pid).expect("waitid nohang"));
        assert!(child.wait().expect("reap").success());
        assert!(has_exited(pid).is_err()); // ECHILD: reaped
    }

    /// The slice field of a `/proc/.../sched` text, when the kernel shows it.
    fn slice_of(sched: &str) -> Option<u64> {
        sched
            .lines()
            .find(|l| l.trim_start().starts_with("se.slice"))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn latency_sensitive_threads_get_the_short_slice_until_unmarked_and_their_children_never() {
        let (own, child, back) = std::thread::spawn(|| {
            mark_latency_sensitive();
            let own = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            let child = std::process::Command::new("cat")
                .arg("/proc/self/sched")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            unmark_latency_sensitive();
            let back = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            (own, child, back)
        })
        .join()
        .expect("thread");
        let Some(own) = slice_of(&own) else {
            eprintln!("kernel shows no se.slice (no custom slices here): nothing to check");
            return;
        };
        assert_eq!(own, SHORT_SLICE_NS, "the thread's own slice");
        let child = slice_of(&child).expect("the child's sched file has se.slice too");
        assert_ne!(child, SHORT_SLICE_NS, "a spawned job must not inherit it");
        assert_eq!(
            slice_of(&back),
            Some(child),
            "unmarked, the thread has the default slice again"
        );
    }
}
