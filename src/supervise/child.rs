//! Starting a daemon process with the listeners passed on by the
//! socket-activation protocol (so that it takes the same code path as
//! under systemd): a child of the supervisor, or the new process of an
//! in-place upgrade ([`crate::upgrade`]); and how its end is described.

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::activation::RESTARTS_VAR;

/// Variables the child must not inherit from the supervisor: socket
/// activation's (the child gets its own), systemd's notification and
/// watchdog (the child notifies the supervisor instead), and the restart
/// count (the child gets the current one).
const NOT_PASSED: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    RESTARTS_VAR,
    crate::activation::HANDOFF_VAR,
    crate::activation::GENERATION_VAR,
];

/// What a daemon process is started with.
pub struct Launch<'a> {
    /// The tickd binary, as recorded when this process started.
    pub program: &'a Path,
    /// The config file (absolute).
    pub config: &'a Path,
    /// `--pidfile` for the new process (an upgrade's; a supervisor's
    /// children have none: the supervisor holds it).
    pub pidfile: Option<&'a Path>,
    /// The listeners with their `LISTEN_FDNAMES` names.
    pub fds: Vec<(BorrowedFd<'a>, &'static str)>,
    /// An upgrade's two pipes (see [`crate::upgrade`]), passed right after
    /// the listeners.
    pub handoff: Option<[BorrowedFd<'a>; 2]>,
    /// The supervisor's: `NOTIFY_SOCKET` for the child and the restart
    /// count; the child then gets its own process group, and `SIGTERM`
    /// when the supervisor dies.
    pub supervisor: Option<(&'a str, u64)>,
    /// An upgrade's: the config generation of the daemon it replaces,
    /// which the new one goes on from.
    pub generation: Option<u64>,
}

/// Starts `tickd run --config CONFIG` with the listeners as fds 3 and up.
///
/// A supervisor's child gets its own process group, so that a terminal's
/// ^C reaches the supervisor alone (which passes it on, once); and
/// `SIGTERM` if the supervisor dies (see [`crate::sys::spawn_passing_fds`]).
/// An upgrade's new process stays in the old one's group and outlives it.
pub fn spawn(launch: &Launch<'_>) -> std::io::Result<Child> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !NOT_PASSED.iter().any(|n| k == n))
        .collect();
    let names: Vec<&str> = launch.fds.iter().map(|(_, n)| *n).collect();
    env.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
    if let Some((notify, restarts)) = launch.supervisor {
        env.push(("NOTIFY_SOCKET".into(), notify.into()));
        env.push((RESTARTS_VAR.into(), restarts.to_string().into()));
    }
    if let Some(g) = launch.generation {
        env.push((
            crate::activation::GENERATION_VAR.into(),
            g.to_string().into(),
        ));
    }
    if launch.handoff.is_some() {
        env.push((crate::activation::HANDOFF_VAR.into(), "2".into()));
    }
    let mut args: Vec<OsString> = vec!["run".into(), "--config".into(), launch.config.into()];
    if let Some(p) = launch.pidfile {
        args.push("--pidfile".into());
        args.push(p.into());
    }
    let listeners: Vec<BorrowedFd<'_>> = launch.fds.iter().map(|(fd, _)| *fd).collect();
    let extra: Vec<BorrowedFd<'_>> = launch.handoff.map(Vec::from).unwrap_or_default();
    let mut command = Command::new(launch.program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if launch.supervisor.is_some() {
        command.process_group(0);
    }
    let pass = crate::sys::PassFds {
        listeners: &listeners,
        extra: &extra,
        die_with_parent: launch.supervisor.is_some(),
    };
    crate::sys::spawn_passing_fds(&mut command, launch.program, &args, &env, &pass)
}

/// The exit code the supervisor ends with for this status: the child's
/// own code, or 128 + the signal that killed it (as a shell reports it).
pub fn code_of(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// How the log names the end: `exited with status 2`, `was killed by
/// signal 9 (SIGKILL)`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = signal_name(sig)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {sig}{name}{core}")
        }
        (None, None) => format!("ended ({status})"),
    }
}

/// The usual name of a signal that ends a process, if it is a common one.
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_described_and_coded_as_a_shell_would() {
        let exited = ExitStatus::from_raw(2 << 8);
        assert_eq!(describe(exited), "exited with status 2");
        assert_eq!(code_of(exited), 2);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(describe(killed), "was killed by signal 9 (SIGKILL)");
        assert_eq!(code_of(killed), 137);
    }
}
