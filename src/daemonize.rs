//! `tickd run --daemonize`: detach from the terminal the classic way, and
//! let the starting process report whether the daemon really came up.
//!
//! [`detach`] forks twice: the first child calls `setsid` (a new session,
//! no controlling terminal), the second child — the daemon — can never
//! reacquire one, since it is not a session leader. The daemon then moves
//! to `/`, sets `umask 022` and points stdin and stdout at `/dev/null` and
//! stderr at the log file (or `/dev/null`).
//!
//! This must happen while the process has one thread: after `fork` only the
//! forking thread exists in the child. So `crate::run` calls it after loading
//! the config (to know the log file) and before installing signal handlers,
//! binding, or starting any pool; [`detach`] checks `/proc/self/task` and
//! refuses otherwise.
//!
//! The original process waits on a pipe from the daemon: `ready` once it is
//! listening (exit 0), or the exit code and reason of a failed start (the
//! reason goes to stderr, so an init script shows it). A daemon that dies
//! before writing anything closes the pipe: exit 2, "see its log". A daemon
//! that says nothing for [`READY_TIMEOUT`] (60 s: a state dir on a hung
//! NFS mount, a stuck NSS lookup for `daemon.user`) does not hang the
//! caller — an init script, a boot — forever: it exits 2 saying the daemon
//! did not report ready and may still be starting.
//!
//! Relative paths do not survive the `chdir("/")`: the caller makes the
//! config and pidfile paths absolute first, and the config loader resolves
//! the daemon's paths (state dir, log file, socket, token file) against the
//! start directory at every load, reloads included.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::pipe::PipeFlags;

use crate::sys::ffi::{self, Forked};

/// How long the starting process waits for the daemon's verdict.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which process [`detach`] returned in.
pub enum Detached {
    /// The starting process: exit with this code (the reason of a failure
    /// is already on stderr).
    Parent(i32),
    /// The daemon: report how the start went through this.
    Daemon(Readiness),
}

/// The daemon's end of the start-up pipe. In the foreground it is a no-op.
#[derive(Debug, Default)]
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// A readiness that reports to nobody (foreground runs).
    pub fn foreground() -> Readiness {
        Readiness { pipe: None }
    }

    /// The daemon is listening: the starting process exits 0.
    pub fn ready(&mut self) {
        self.send("ready\n".to_string());
    }

    /// The start failed: the starting process prints `message` and exits
    /// with `code`.
    pub fn fail(&mut self, code: i32, message: &str) {
        let line = message.replace('\n', "; ");
        self.send(format!("fail {code} {line}\n"));
    }

    fn send(&mut self, text: String) {
        if let Some(mut pipe) = self.pipe.take() {
            // The parent may be gone (killed); nothing else to tell then.
            let _ = pipe.write_all(text.as_bytes());
        }
    }
}

/// Detaches; see the module doc. `stderr_to`: the log file, if any.
pub fn detach(stderr_to: Option<&Path>) -> io::Result<Detached> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
    if threads > 1 {
        return Err(io::Error::other(format!(
            "cannot daemonize: the process already has {threads} threads"
        )));
    }
    // Opened before forking, so that a bad log file is reported by the
    // parent on the terminal, not lost.
    let stderr_file = match stderr_to {
        Some(path) => crate::logging::open_log_file(path)?,
        None => File::options().write(true).open("/dev/null")?,
    };
    let (read_end, write_end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    match ffi::fork()? {
        Forked::Parent(child) => {
            drop(write_end);
            Ok(Detached::Parent(wait_for_daemon(read_end, child)))
        }
        Forked::Child => {
            drop(read_end);
            if let Err(e) = rustix::process::setsid() {
                report_and_exit(write_end, &format!("setsid: {e}"));
            }
            match ffi::fork() {
                Ok(Forked::Parent(_)) => std::process::exit(0),
                Ok(Forked::Child) => {}
                Err(e) => report_and_exit(write_end, &format!("second fork: {e}")),
            }
            if let Err(e) = become_daemon(&stderr_file) {
                report_and_exit(write_end, &format!("cannot detach: {e}"));
            }
            Ok(Detached::Daemon(Readiness {
                pipe: Some(File::from(write_end)),
            }))
        }
    }
}

/// The daemon's own set-up after the second fork.
fn become_daemon(stderr_file: &File) -> io::Result<()> {
    std::env::set_current_dir("/")?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let null = File::options().read(true).write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(stderr_file)?;
    Ok(())
}

/// For the intermediate child: tell the parent and stop.
fn report_and_exit(pipe: OwnedFd, message: &str) -> ! {
    let mut readiness = Readiness {
        pipe: Some(File::from(pipe)),
    };
    readiness.fail(crate::exit::EXIT_BIND, message);
    std::process::exit(crate::exit::EXIT_BIND)
}

/// The starting process: reaps the first child, then reads the daemon's
/// verdict and turns it into an exit code.
fn wait_for_daemon(pipe: OwnedFd, child: i32) -> i32 {
    if let Some(pid) = rustix::process::Pid::from_raw(child) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
    let (code, message) = wait_for_verdict(pipe, READY_TIMEOUT);
    if let Some(message) = message {
        eprintln!("tickd: {message}");
    }
    code
}

/// Reads the daemon's one-line verdict for at most `timeout`. The read
/// runs on its own thread (this process only exits afterwards, so a thread
/// is harmless here) and is abandoned when the time is up.
fn wait_for_verdict(pipe: OwnedFd, timeout: Duration) -> (i32, Option<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("ready-wait".into())
        .spawn(move || {
            let _ = tx.send(read_verdict(File::from(pipe)));
        });
    if let Err(e) = reader {
        return (
            crate::exit::EXIT_BIND,
            Some(format!("cannot wait for the daemon: {e}; see its log")),
        );
    }
    match rx.recv_timeout(timeout) {
        Ok(text) => parse_verdict(&text),
        Err(_) => (
            crate::exit::EXIT_BIND,
            Some(format!(
                "the daemon did not report ready within {} s; it may still be starting: see its log",
                timeout.as_secs()
            )),
        ),
    }
}

/// One line from the pipe, or what came before it closed.
fn read_verdict(mut pipe: File) -> String {
    let mut text = String::new();
    let mut byte = [0u8; 1];
    // One line; the daemon keeps running after writing it.
    while !text.ends_with('\n') && text.len() < 64 * 1024 {
        match pipe.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => text.push(char::from(byte[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    text
}

/// `ready` → 0; `fail CODE MESSAGE` → CODE and MESSAGE; anything else (the
/// pipe closed early) → 2 and a pointer to the log.
fn parse_verdict(text: &str) -> (i32, Option<String>) {
    let line = text.trim_end_matches('\n');
    if line == "ready" {
        return (crate::exit::EXIT_OK, None);
    }
    if let Some(rest) = line.strip_prefix("fail ") {
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Ok(code) = code.parse::<i32>() {
            return (code, Some(message.to_string()));
        }
    }
    (
        crate::exit::EXIT_BIND,
        Some("the daemon exited during start-up; see its log".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(parse_verdict("ready\n"), (0, None));
        assert_eq!(
            parse_verdict("fail 2 already running (pid 7)\n"),
            (2, Some("already running (pid 7)".into()))
        );
        assert_eq!(parse_verdict("").0, 2);
        assert_eq!(parse_verdict("fail x\n").0, 2);
    }

    #[test]
    fn a_silent_daemon_does_not_hang_the_caller() {
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        // The write end stays open and silent: a daemon stuck in start-up.
        let (code, message) = wait_for_verdict(r, Duration::from_millis(100));
        drop(w);
        assert_eq!(code, 2);
        let message = message.unwrap_or_default();
        assert!(message.contains("did not report ready"), "{message}");

        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        File::from(w).write_all(b"ready\n").expect("write");
        assert_eq!(wait_for_verdict(r, Duration::from_secs(60)), (0, None));
    }

    #[test]
    fn readiness_writes_one_line() {
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        let mut readiness = Readiness {
            pipe: Some(File::from(w)),
        };
        readiness.fail(1, "bad\nconfig");
        readiness.ready(); // ignored: the verdict is sent once
        let mut text = String::new();
        File::from(r).read_to_string(&mut text).expect("read");
        assert_eq!(text, "fail 1 bad; config\n");
    }
}
