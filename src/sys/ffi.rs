//! The only `unsafe` in tickd: the few libc calls that rustix and std have
//! no safe form for. The crate root denies `unsafe_code`; this file alone
//! allows it.
//!
//! - `fork`, for `--daemonize` (see [`crate::daemonize`] for when it is
//!   called: only while the process has a single thread);
//! - `setgroups`, `setgid`, `setuid`, for the privilege drop. These go
//!   through glibc on purpose: glibc's wrappers change the ids of *every*
//!   thread of the process, while the raw syscalls (and rustix's
//!   `set_thread_*`) change only the calling thread. tickd drops privileges
//!   before it starts any thread anyway (see [`crate::privilege`]);
//! - `getpwnam_r` / `getpwuid_r` / `getgrnam_r`, to turn names into ids
//!   through NSS (so LDAP or sssd accounts work, not only `/etc/passwd`).
//! - `sched_getattr` / `sched_setattr` (raw syscalls: glibc has no
//!   wrapper), to ask for a short scheduler slice for the threads that must
//!   react promptly, see [`request_slice`].
//! - `malloc_trim`, to hand the heap pages a reload frees back to the OS
//!   (glibc only), see [`release_free_heap`].
//! - `sysconf(_SC_CLK_TCK)`, the unit of a process's times in /proc.
//! - `CommandExt::pre_exec` and `ioprio_set` (a raw syscall: glibc has no
//!   wrapper), to apply a job's resource limits in its child, see
//!   [`limits_before_exec`].
//!
//! Each function is a thin wrapper returning `io::Result` (but
//! `release_free_heap`, which cannot fail); callers never see a raw
//! pointer.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::path::PathBuf;
use std::ptr;

use super::limits::{fold, Limits, Step, CPU_HARD_MARGIN_SECS};

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The original process; the child has this pid.
    Parent(i32),
    /// The new process.
    Child,
}

/// `fork(2)`.
///
/// The caller must make sure the process has a single thread: after a fork
/// only the calling thread exists in the child, and a lock held by another
/// thread (the allocator's, the logger's) would stay locked forever.
/// [`crate::daemonize::detach`] checks `/proc/self/task` first.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // hazard is locks held by other threads, and the only caller checks
    // that there are none (single-threaded process) before calling.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// What [`request_slice`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SliceRequest {
    /// The kernel took the request (it may ignore the slice if it predates
    /// EEVDF's custom slices, Linux 6.12).
    Set,
    /// Left as it is: the thread runs under another policy than
    /// `SCHED_OTHER` (an operator's `chrt`), or at a negative nice value
    /// (`SCHED_FLAG_RESET_ON_FORK` would start the jobs at nice 0 instead
    /// of letting them inherit it).
    LeftAlone,
}

/// Asks for a run slice of `slice_ns` nanoseconds for the calling thread
/// (`sched_setattr(2)` with `sched_runtime`; Linux clamps it to 0.1..100
/// ms; 0 returns to the kernel's default slice), keeping its policy and
/// nice value.
///
/// Under the EEVDF scheduler a thread with a shorter slice gets an earlier
/// virtual deadline, so when it wakes on a busy machine it is picked
/// sooner; its share of the CPU stays the same. `SCHED_FLAG_RESET_ON_FORK`
/// is set too, so processes spawned from the thread (the jobs) start with
/// the default slice.
pub(crate) fn request_slice(slice_ns: u64) -> io::Result<SliceRequest> {
    let size = std::mem::size_of::<libc::sched_attr>();
    let mut attr = libc::sched_attr {
        size: u32::try_from(size).map_err(|_| invalid("sched_attr size"))?,
        sched_policy: 0,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a live, writable sched_attr and its true size is
    // passed, so the kernel writes at most `size` bytes into it; pid 0 is
    // the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut libc::sched_attr,
            size,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if attr.sched_policy != libc::SCHED_OTHER as u32 || attr.sched_nice < 0 {
        return Ok(SliceRequest::LeftAlone);
    }
    attr.size = u32::try_from(size).map_err(|_| invalid("sched_attr size"))?;
    attr.sched_runtime = slice_ns;
    attr.sched_flags = libc::SCHED_FLAG_RESET_ON_FORK as u64;
    // SAFETY: `attr` is a fully initialised sched_attr whose `size` field
    // says how much the kernel may read; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SliceRequest::Set)
}

/// Replaces the supplementary groups with exactly `groups`.
pub(crate) fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32)
    // for the duration of the call; setgroups only reads it.
    let rc = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    check(rc)
}

/// `setgid(2)` for every thread of the process (glibc).
pub(crate) fn set_gid(gid: u32) -> io::Result<()> {
    // SAFETY: plain value argument; no memory is touched.
    let rc = unsafe { libc::setgid(gid) };
    check(rc)
}

/// `setuid(2)` for every thread of the process (glibc).
pub(crate) fn set_uid(uid: u32) -> io::Result<()> {
    // SAFETY: plain value argument; no memory is touched.
    let rc = unsafe { libc::setuid(uid) };
    check(rc)
}

/// Returns the allocator's free heap pages to the OS (glibc
/// `malloc_trim(0)`).
///
/// A reload builds a new config (a parse tree, many small strings, the
/// parsed schedules) and frees the old one; glibc keeps the freed pages in
/// its arenas, so without this each reload left an idle daemon a little
/// bigger (100 jobs, 10 reloads: 8.4 MiB RSS instead of 7.7). Called after
/// each accepted reload and once the daemon has started (the config's parse
/// tree is freed by then); it costs one walk of the free lists. A no-op
/// where the C library is not glibc.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain value and only touches glibc's own
    // allocator state, under the allocator's locks; it is safe to call from
    // any thread at any time, including while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes `command`'s child apply `limits` between fork and exec.
///
/// The closure runs in the forked child of a multi-threaded process, so it
/// only makes system calls on values copied into it: rustix's `setrlimit`
/// and `setpriority` (raw syscalls on Linux) and `ioprio_set`; it never
/// allocates or takes a lock. A failure is folded into the errno std sends
/// back (see [`super::limits::failed_limit`]). std runs it after the
/// switch to the job's `user`, so raising a limit past the hard one, or a
/// negative nice, needs the job to run as root.
pub(crate) fn limits_before_exec(command: &mut std::process::Command, limits: Limits) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure is async-signal-safe: it reads only the `Copy`
    // values moved into it and makes system calls; no allocation (the
    // errors it builds are plain errnos), no locks, no thread-local state.
    unsafe {
        command.pre_exec(move || apply_limits(&limits));
    }
}

/// The body of [`limits_before_exec`]'s closure, in the child.
fn apply_limits(l: &Limits) -> io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let both = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    let fail = |step: Step| move |e: rustix::io::Errno| fold(step, e.raw_os_error());
    if let Some(bytes) = l.memory {
        setrlimit(Resource::As, both(bytes)).map_err(fail(Step::Memory))?;
    }
    if let Some(secs) = l.cpu_time {
        let lim = Rlimit {
            current: Some(secs),
            maximum: Some(secs.saturating_add(CPU_HARD_MARGIN_SECS)),
        };
        setrlimit(Resource::Cpu, lim).map_err(fail(Step::CpuTime))?;
    }
    if let Some(files) = l.open_files {
        setrlimit(Resource::Nofile, both(files)).map_err(fail(Step::OpenFiles))?;
    }
    if let Some(nice) = l.nice {
        rustix::process::setpriority_process(None, nice).map_err(fail(Step::Nice))?;
    }
    if let Some(class) = l.io_class {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set takes three plain integers and touches no
        // memory of ours; pid 0 is the calling process.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                libc::c_long::from(class.ioprio()),
            )
        };
        if rc != 0 {
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(fold(Step::IoClass, errno));
        }
    }
    Ok(())
}

/// Clock ticks per second of the times in `/proc/PID/stat` (`sysconf
/// (_SC_CLK_TCK)`, 100 on every common Linux architecture).
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a plain value and reads no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A user account as NSS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passwd {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks a user up by name; `Ok(None)` when there is no such user.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<Passwd>> {
    let cname = CString::new(name).map_err(|_| invalid("user name contains a NUL byte"))?;
    with_passwd(|pwd, buf, result| {
        // SAFETY: every pointer refers to a live local (`cname`, `pwd`,
        // `result`) or to `buf` with its true length; getpwnam_r writes only
        // within them.
        unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                result,
            )
        }
    })
}

/// Looks a user up by uid; `Ok(None)` when there is no such user.
pub(crate) fn user_by_uid(uid: u32) -> io::Result<Option<Passwd>> {
    with_passwd(|pwd, buf, result| {
        // SAFETY: as in `user_by_name`.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

/// Runs a `getpw*_r` call, growing the buffer on `ERANGE`, and copies the
/// answer out of it.
fn with_passwd(
    mut call: impl FnMut(*mut libc::passwd, &mut [u8], *mut *mut libc::passwd) -> libc::c_int,
) -> io::Result<Option<Passwd>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `passwd` is a plain C struct of integers and pointers, for
        // which all-zero bytes is a valid value; it is only read after
        // getpw*_r has filled it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name and pw_dir point to NUL-terminated
        // strings inside `buf`, which is still alive and unchanged here.
        let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
        return Ok(Some(Passwd {
            name: name.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home.to_string_lossy().into_owned()),
        }));
    }
}

/// Looks a group up by name; `Ok(None)` when there is no such group.
pub(crate) fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| invalid("group name contains a NUL byte"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `group` is a plain C struct of integers and pointers, for
        // which all-zero bytes is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: every pointer refers to a live local or to `buf` with its
        // true length; getgrnam_r writes only within them.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_resolve() {
        let root = user_by_name("root").expect("lookup").expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            user_by_uid(0).expect("lookup").map(|p| p.name),
            Some("root".into())
        );
        assert!(user_by_name("no-such-user-tickd")
            .expect("lookup")
            .is_none());
        assert_eq!(group_by_name("root").expect("lookup"), Some(0));
        assert!(group_by_name("no-such-group-tickd")
            .expect("lookup")
            .is_none());
        assert!(user_by_name("a\0b").is_err());
    }
}
