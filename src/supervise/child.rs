//! One daemon process of the supervisor: how it is started (the listeners
//! passed on by the socket-activation protocol, so that the child takes
//! the same code path as under systemd) and how its end is described.

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
];

/// What a child is started with.
pub struct Launch<'a> {
    /// The tickd binary, as recorded when the supervisor started.
    pub program: &'a Path,
    /// The config file (absolute).
    pub config: &'a Path,
    /// The listeners with their `LISTEN_FDNAMES` names.
    pub fds: Vec<(BorrowedFd<'a>, &'static str)>,
    /// `NOTIFY_SOCKET` for the child: the supervisor's datagram socket.
    pub notify: &'a str,
    /// Restarts so far (for `status`).
    pub restarts: u64,
}

/// Starts `tickd run --config CONFIG` with the listeners as fds 3 and up.
///
/// The child gets its own process group, so that a terminal's ^C reaches
/// the supervisor alone (which passes it on, once); and `SIGTERM` if the
/// supervisor dies (see [`crate::sys::spawn_passing_fds`]).
pub fn spawn(launch: &Launch<'_>) -> std::io::Result<Child> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !NOT_PASSED.iter().any(|n| k == n))
        .collect();
    let names: Vec<&str> = launch.fds.iter().map(|(_, n)| *n).collect();
    env.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
    env.push(("NOTIFY_SOCKET".into(), launch.notify.into()));
    env.push((RESTARTS_VAR.into(), launch.restarts.to_string().into()));
    let args: Vec<OsString> = vec!["run".into(), "--config".into(), launch.config.into()];
    let fds: Vec<BorrowedFd<'_>> = launch.fds.iter().map(|(fd, _)| *fd).collect();
    let mut command = Command::new(launch.program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0);
    crate::sys::spawn_passing_fds(&mut command, launch.program, &args, &env, &fds)
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
