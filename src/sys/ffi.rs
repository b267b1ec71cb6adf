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
//! - taking ownership of the listening sockets inherited through
//!   `LISTEN_FDS` (fds 3 and up: std and rustix can only do that from a
//!   raw fd with `unsafe`), see [`claim_inherited_fds`];
//! - `dup2`, `prctl(PR_SET_PDEATHSIG)` and `execve` in the child of
//!   `tickd run --supervise`, which passes its listeners on as fds 3 and up
//!   with `LISTEN_PID` set to the child's own pid, see [`exec_passing_fds`].
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

/// Whether [`claim_inherited_fds`] has run: the fds it owns may be owned
/// once only.
static INHERITED_CLAIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes ownership of fds `3 .. 3 + count`, which the process that started
/// this one passed on (`LISTEN_FDS`, sd_listen_fds(3)), and sets
/// `FD_CLOEXEC` on each, so that no job inherits a listener.
///
/// Owning a raw fd is sound only if nothing else in the process owns it.
/// That holds here because the caller ([`crate::activation::take`]) runs
/// first thing in `tickd run`, before the process opens any file, and only
/// after `LISTEN_PID` showed the fds were meant for this very process (so
/// they were open at `execve`, and no later `open` can have been given
/// their numbers); a second call fails instead of owning them twice. Each
/// fd is checked to be open (`F_GETFD`) before it is taken: a closed one
/// fails the whole call and nothing is owned.
pub(crate) fn claim_inherited_fds(count: usize) -> io::Result<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    use std::sync::atomic::Ordering;
    let limit = usize::try_from(libc::c_int::MAX).unwrap_or(usize::MAX) - 3;
    if count > limit {
        return Err(invalid("too many inherited fds"));
    }
    if INHERITED_CLAIMED.swap(true, Ordering::SeqCst) {
        return Err(invalid("the inherited fds are already taken"));
    }
    let first: libc::c_int = 3;
    let fds: Vec<libc::c_int> = (0..count).map(|i| first + i as libc::c_int).collect();
    for &fd in &fds {
        // SAFETY: F_GETFD takes no pointer; on a closed fd it fails with
        // EBADF and has no effect.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("fd {fd}: {e}")));
        }
    }
    let mut out = Vec::with_capacity(count);
    for fd in fds {
        // SAFETY: fd is open (checked above) and owned by nothing else in
        // this process (see the function's doc; the static guard makes
        // this the only claim).
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        out.push(owned);
    }
    Ok(out)
}

/// What the child of [`exec_passing_fds`] executes: everything prepared in
/// the parent, so that the child, between `fork` and `execve`, only makes
/// system calls and writes digits into a buffer it owns.
struct ExecImage {
    /// The C strings the pointers below point into (kept alive here).
    _strings: Vec<CString>,
    program: *const libc::c_char,
    /// NULL-terminated.
    argv: Vec<*const libc::c_char>,
    /// NULL-terminated; one entry points at `listen_pid`.
    envp: Vec<*const libc::c_char>,
    /// `LISTEN_PID=` followed by room for the digits and a NUL.
    listen_pid: *mut u8,
    /// The fds to pass, each numbered at least 3 + their count.
    fds: Vec<libc::c_int>,
    /// The parent's pid, to notice that it died before the death signal
    /// was armed.
    parent: libc::pid_t,
    /// Arm `PR_SET_PDEATHSIG` (SIGTERM when the parent dies).
    die_with_parent: bool,
}

// SAFETY: the pointers point into heap buffers owned by the closure that
// holds the image (`_strings`, and the buffer leaked for `listen_pid`);
// they are only dereferenced in the forked child, which has its own copy.
unsafe impl Send for ExecImage {}
// SAFETY: as above; the parent never reads or writes through them.
unsafe impl Sync for ExecImage {}

/// Room after `LISTEN_PID=` for a pid's digits and the NUL.
const PID_DIGITS: usize = 12;

/// Makes `command` start `program` with `args` and the environment `env`
/// (nothing else: the child's environment is exactly this), passing
/// `pass.listeners` on as fds 3, 4, ... with `LISTEN_FDS` set to their
/// count and `LISTEN_PID` to the child's pid, as systemd's socket
/// activation does, and `pass.extra` right after them (not counted in
/// `LISTEN_FDS`). With `pass.die_with_parent` the child also gets
/// `SIGTERM` when this process dies (`PR_SET_PDEATHSIG`), so a supervisor
/// killed with `kill -9` leaves no daemon running on behind it.
///
/// `LISTEN_PID` can only be known after `fork`, so the child does the
/// `execve` itself, from the closure std runs just before its own exec,
/// with arguments and environment all prepared here. The fds are first
/// duplicated (close-on-exec) to numbers above the ones they go to, so
/// that moving one to 3 never overwrites another still to be moved; the
/// duplicates are closed in the parent when `command` is dropped.
///
/// The parent must be single-threaded or call this with no lock held that
/// the child could need; the closure itself takes no lock and allocates
/// nothing.
pub(crate) fn exec_passing_fds(
    command: &mut std::process::Command,
    program: &std::path::Path,
    args: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    pass: &super::PassFds<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fds: Vec<std::os::fd::BorrowedFd<'_>> =
        pass.listeners.iter().chain(pass.extra).copied().collect();
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| invalid("a NUL byte in an argument"));
    let mut strings = Vec::new();
    let program_c = cstr(program.as_os_str().as_bytes())?;
    let program_ptr = program_c.as_ptr();
    strings.push(program_c);
    let mut argv = vec![program_ptr];
    for a in args {
        let c = cstr(a.as_bytes())?;
        argv.push(c.as_ptr());
        strings.push(c);
    }
    argv.push(ptr::null());
    let mut envp = Vec::with_capacity(env.len() + 3);
    for (k, v) in env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        let c = cstr(&kv)?;
        envp.push(c.as_ptr());
        strings.push(c);
    }
    let fds_var = cstr(format!("LISTEN_FDS={}", pass.listeners.len()).as_bytes())?;
    envp.push(fds_var.as_ptr());
    strings.push(fds_var);
    // A buffer that lives as long as the process (one per spawn: small).
    let pid_buf: &'static mut [u8] = Box::leak(
        [b"LISTEN_PID=".as_slice(), &[0u8; PID_DIGITS]]
            .concat()
            .into_boxed_slice(),
    );
    let listen_pid = pid_buf.as_mut_ptr();
    envp.push(listen_pid.cast_const().cast());
    envp.push(ptr::null());

    let min = fds.len() + 3;
    let mut high = Vec::with_capacity(fds.len());
    for fd in &fds {
        high.push(rustix::io::fcntl_dupfd_cloexec(fd, min as i32)?);
    }
    let image = ExecImage {
        _strings: strings,
        program: program_ptr,
        argv,
        envp,
        listen_pid,
        fds: high.iter().map(|f| f.as_raw_fd()).collect(),
        parent: rustix::process::getpid().as_raw_nonzero().get(),
        die_with_parent: pass.die_with_parent,
    };
    // SAFETY: the closure is async-signal-safe: it makes system calls
    // (dup2, prctl, getppid, getpid, execve) on values prepared above and
    // writes digits into the buffer `listen_pid` points to, which this
    // image owns; it allocates nothing and takes no lock. `high` is moved
    // in so that the duplicates stay open until the command is dropped.
    unsafe {
        command.pre_exec(move || {
            let _keep = &high;
            exec_image(&image)
        });
    }
    Ok(())
}

/// The child's half of [`exec_passing_fds`]; returns only on failure.
fn exec_image(image: &ExecImage) -> io::Result<()> {
    for (i, &fd) in image.fds.iter().enumerate() {
        let target = 3 + i as libc::c_int;
        // SAFETY: plain integers; dup2 clears FD_CLOEXEC on `target`.
        if unsafe { libc::dup2(fd, target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    if image.die_with_parent {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid cannot fail and touches no memory.
        if unsafe { libc::getppid() } != image.parent {
            // The parent died before the death signal was armed.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    // SAFETY: as above.
    let mut pid = unsafe { libc::getpid() } as u32;
    let mut digits = [0u8; PID_DIGITS];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (pid % 10) as u8;
        n += 1;
        pid /= 10;
        if pid == 0 || n == PID_DIGITS - 1 {
            break;
        }
    }
    let start = b"LISTEN_PID=".len();
    for i in 0..n {
        // SAFETY: `listen_pid` points at a buffer of `start + PID_DIGITS`
        // bytes owned by the image; `start + i < start + PID_DIGITS - 1`.
        unsafe { *image.listen_pid.add(start + i) = digits[n - 1 - i] };
    }
    // SAFETY: the byte after the digits is within the buffer (see above).
    unsafe { *image.listen_pid.add(start + n) = 0 };
    // SAFETY: `program` and every pointer of `argv` and `envp` point at
    // NUL-terminated strings kept alive by the image, and both arrays end
    // with a NULL pointer.
    unsafe { libc::execve(image.program, image.argv.as_ptr(), image.envp.as_ptr()) };
    Err(io::Error::last_os_error())
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
