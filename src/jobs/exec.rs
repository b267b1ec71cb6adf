//! The exec job runner: one run of an external program.
//!
//! [`run_exec`] spawns the job's argv directly (no implicit shell) with a
//! scrubbed environment, in a process group of its own, and blocks the
//! calling worker thread until the run is over. While it runs, output is
//! kept as a bounded tail and scanned for progress lines; on timeout or
//! cancellation the whole group is killed (SIGTERM, then SIGKILL after a
//! grace period). The waiting itself — pipes, child exit, cancellation,
//! deadlines — is in the `supervise` submodule.
//!
//! Every failure, including "program not found" or a bad `cwd`, comes back
//! as an [`ExecOutcome`]; this module never panics on bad input.

mod job;
mod lookup;
mod supervise;

pub(crate) use job::ExecJob;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::jobs::cancel::CancelToken;
use crate::sys::limits::{self, Limits};
use rustix::io::Errno;
use supervise::{Ended, ExitWatch};

/// Variables kept from the daemon's own environment; all others are dropped.
pub const KEPT_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// `PATH` given to a job when the daemon itself has none (as under some init
/// systems), so that `sh` and friends are still found.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// After the leader exits, how long to keep reading pipes that something
/// else (a background grandchild) still holds open. Those processes are left
/// alone; only their output after this point is lost.
pub const EXIT_LINGER: Duration = Duration::from_millis(100);

/// Everything needed for one run of an exec job.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    /// Program and arguments; `argv[0]` is looked up in the job's `PATH`.
    pub argv: &'a [String],
    /// The job's `env` table, added to the scrubbed environment.
    pub env: &'a BTreeMap<String, String>,
    /// Working directory; `None` keeps the daemon's.
    pub cwd: Option<&'a Path>,
    /// Set last, overriding the job's `env` (`TICKD_ARGS`, `TICKD_JOB`,
    /// `TICKD_RUN_ID`); filled in by the caller.
    pub extra_env: Vec<(String, String)>,
    /// Bytes for the child's stdin (the run's `args` as JSON), or `None`
    /// for `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Kill the run after this long; `None` = no limit.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when killing the run's process group.
    pub kill_grace: Duration,
    /// Run as this account (the job's `user`, resolved by the caller,
    /// which also checked that tickd runs as root); `None` = as tickd.
    pub run_as: Option<&'a crate::privilege::Account>,
    /// The job's `limits`, applied in the child before exec.
    pub limits: Limits,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// The program exited by itself with this status (0 = success).
    Exited(i32),
    /// The program was killed by this signal, not by tickd.
    Signaled(i32),
    /// tickd killed it when its `timeout` passed.
    TimedOut,
    /// tickd killed it (or never started it) because of `runs.cancel`.
    Cancelled,
    /// It could not be started (or, rarely, not supervised); see `error`.
    SpawnFailed,
}

/// The result of [`run_exec`], ready to be folded into a run object.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutcome {
    /// How the run ended.
    pub end: ExecEnd,
    /// The exit status when the program exited by itself.
    pub exit_code: Option<i32>,
    /// A human-readable reason for anything but exit status 0.
    pub error: Option<String>,
    /// The last 64 KiB of stdout and stderr, merged, as lossy UTF-8.
    pub output: String,
    /// Whether older output was dropped.
    pub output_truncated: bool,
    /// The child's pid (= its process-group id), once spawned.
    pub pid: Option<u32>,
}

impl ExecOutcome {
    /// Whether the run counts as succeeded (exit status 0).
    pub fn succeeded(&self) -> bool {
        self.end == ExecEnd::Exited(0)
    }

    fn not_started(end: ExecEnd, error: String) -> Self {
        Self {
            end,
            exit_code: None,
            error: Some(error),
            output: String::new(),
            output_truncated: false,
            pid: None,
        }
    }
}

/// Callbacks from inside a run, made on the worker thread that runs it.
pub trait ExecObserver {
    /// The program was spawned with this pid (also its process-group id).
    fn started(&mut self, _pid: u32) {}
    /// The program printed `tickd-progress: X`; `value` is in `0.0..=1.0`.
    fn progress(&mut self, _value: f64) {}
    /// The program printed `bytes` (on stdout or stderr).
    fn output(&mut self, _bytes: &[u8]) {}
}

/// An observer that ignores everything.
impl ExecObserver for () {}

/// Runs one exec job to completion, blocking the calling thread.
///
/// Returns early with [`ExecEnd::Cancelled`], without spawning, when
/// `cancel` is already cancelled. Never panics on bad input and never fails:
/// every problem is described by the outcome.
pub fn run_exec(
    req: &ExecRequest<'_>,
    cancel: &CancelToken,
    observer: &mut dyn ExecObserver,
) -> ExecOutcome {
    run_with(req, cancel, observer, ExitWatch::Auto)
}

/// [`run_exec`] with a choice of how the child's exit is detected (tests
/// force the fallback waiter thread).
fn run_with(
    req: &ExecRequest<'_>,
    cancel: &CancelToken,
    observer: &mut dyn ExecObserver,
    exit_watch: ExitWatch,
) -> ExecOutcome {
    if cancel.is_cancelled() {
        return ExecOutcome::not_started(ExecEnd::Cancelled, "cancelled".into());
    }
    let mut command = match build_command(req, Lookup::Ours) {
        Ok(c) => c,
        Err(msg) => return ExecOutcome::not_started(ExecEnd::SpawnFailed, msg),
    };
    // The poll and waker are made before spawning: failing here (fd
    // exhaustion) leaves no child to clean up.
    let watcher = match supervise::Watcher::new(exit_watch) {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("cannot prepare run: {}", os_message(&e));
            return ExecOutcome::not_started(ExecEnd::SpawnFailed, msg);
        }
    };
    let child = match spawn(&mut command, req) {
        Ok(c) => c,
        Err(e) => {
            let mut msg = spawn_error(&req.argv[0], req.cwd, &e);
            if limits::failed_limit(&e).is_none() {
                // A program too big for its address space fails here.
                msg = limit_note(msg, ExecEnd::SpawnFailed, &req.limits, None);
            }
            log::debug!("exec {:?}: {msg}", req.argv);
            return ExecOutcome::not_started(ExecEnd::SpawnFailed, msg);
        }
    };
    let pid = child.id();
    log::debug!(
        "exec: spawned pid {pid} (own process group): {:?}",
        req.argv
    );
    observer.started(pid);

    let supervised = watcher.run(child, req, cancel, observer);
    let (end, exit_code, error) = match supervised.ended {
        Ended::Status(status) => describe_status(status),
        Ended::TimedOut => {
            let limit = req.timeout.map(human_duration).unwrap_or_default();
            (
                ExecEnd::TimedOut,
                None,
                Some(format!("timed out after {limit}")),
            )
        }
        Ended::Cancelled => (ExecEnd::Cancelled, None, Some("cancelled".into())),
        Ended::Broken(msg) => (ExecEnd::SpawnFailed, None, Some(msg)),
    };
    let error = error.map(|e| limit_note(e, end, &req.limits, supervised.cpu_used));
    log::debug!("exec: pid {pid} ended: {end:?}");
    ExecOutcome {
        end,
        exit_code,
        error,
        output: supervised.tail.to_string_lossy(),
        output_truncated: supervised.tail.is_truncated(),
        pid: Some(pid),
    }
}

/// Who searches `PATH` for a bare program name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// tickd, so that std can use `posix_spawn` (see `lookup`).
    Ours,
    /// std's `execvp`, which also runs a file without a `#!` line with
    /// `/bin/sh`.
    Execvp,
}

/// Spawns `command`. A bare name that tickd found in `PATH` but that the
/// kernel refuses to execute is spawned again the old way, through
/// `execvp`, so the lookup changes no outcome: `execvp` runs a script
/// without a `#!` line (ENOEXEC) with `/bin/sh`, and goes on to the next
/// `PATH` entry when one is not executable for this user (EACCES).
fn spawn(command: &mut Command, req: &ExecRequest<'_>) -> io::Result<std::process::Child> {
    match command.spawn() {
        Err(e)
            if [Errno::NOEXEC, Errno::ACCESS]
                .iter()
                .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
                && command.get_program() != req.argv[0].as_str() =>
        {
            match build_command(req, Lookup::Execvp) {
                Ok(mut again) => again.spawn(),
                Err(_) => Err(e),
            }
        }
        other => other,
    }
}

/// Builds the `Command` for `req`, or explains why it cannot be run.
fn build_command(req: &ExecRequest<'_>, lookup: Lookup) -> Result<Command, String> {
    let Some(program) = req.argv.first() else {
        return Err("empty command".into());
    };
    if program.is_empty() {
        return Err("empty program name".into());
    }
    if let Some(cwd) = req.cwd {
        // Checked here because a failed chdir and a missing program both
        // surface from spawn as the same ENOENT.
        match std::fs::metadata(cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("cwd {}: Not a directory", cwd.display())),
            Err(e) => return Err(format!("cwd {}: {}", cwd.display(), os_message(&e))),
        }
    }
    let vars = req.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let extra = req.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let mut env: Vec<(&OsStr, OsString)> = Vec::new();
    for name in KEPT_ENV {
        match std::env::var_os(name) {
            Some(value) => env.push((OsStr::new(name), value)),
            None if name == "PATH" => env.push((OsStr::new(name), DEFAULT_PATH.into())),
            None => {}
        }
    }
    for (name, value) in vars.chain(extra) {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        if value.contains('\0') {
            return Err(format!("environment variable {name} contains a NUL byte"));
        }
        env.push((OsStr::new(name), value.into()));
    }
    // The PATH the child gets is the last one set.
    let child_path = env
        .iter()
        .rev()
        .find(|(name, _)| *name == "PATH")
        .map(|(_, value)| value.as_os_str());
    let found = child_path
        .filter(|_| lookup == Lookup::Ours)
        .and_then(|p| lookup::find_program(program, p));
    let mut command = match found {
        Some(full) => {
            let mut c = Command::new(full);
            c.arg0(program);
            c
        }
        None => Command::new(program),
    };
    command.args(&req.argv[1..]).env_clear().envs(env);
    if let Some(account) = req.run_as {
        // std's uid() also clears the supplementary groups (setgroups(0))
        // before setuid in the child; gid() is the account's primary group.
        command
            .uid(account.uid)
            .gid(account.gid)
            .env("HOME", &account.home)
            .env("USER", &account.name)
            .env("LOGNAME", &account.name);
    }
    if let Some(cwd) = req.cwd {
        command.current_dir(cwd);
    }
    limits::apply_before_exec(&mut command, req.limits);
    command
        .process_group(0)
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

/// A clear message for a failed spawn.
fn spawn_error(program: &str, cwd: Option<&Path>, err: &io::Error) -> String {
    if let Some((key, reason)) = limits::failed_limit(err) {
        return format!("cannot apply limits.{key} before starting {program}: {reason}");
    }
    match err.kind() {
        io::ErrorKind::NotFound => {
            // The cwd was fine a moment ago; if it vanished since, say so.
            if let Some(dir) = cwd {
                if let Err(e) = std::fs::metadata(dir) {
                    return format!("cwd {}: {}", dir.display(), os_message(&e));
                }
            }
            format!("program not found: {program}")
        }
        io::ErrorKind::PermissionDenied => {
            format!("program not executable: {program}: {}", os_message(err))
        }
        _ => format!("cannot start {program}: {}", os_message(err)),
    }
}

/// Maps a reaped child's status to the outcome fields.
fn describe_status(status: ExitStatus) -> (ExecEnd, Option<i32>, Option<String>) {
    if let Some(code) = status.code() {
        let error = (code != 0).then(|| format!("exit status {code}"));
        (ExecEnd::Exited(code), Some(code), error)
    } else if let Some(sig) = status.signal() {
        (
            ExecEnd::Signaled(sig),
            None,
            Some(format!("killed by signal {sig}")),
        )
    } else {
        // Stopped/continued statuses are never returned by wait().
        (
            ExecEnd::SpawnFailed,
            None,
            Some(format!("unexpected status {status}")),
        )
    }
}

/// `error` as the limits the run ran under explain it. A run ended by
/// SIGXCPU, or by SIGKILL once it had used its CPU time (the hard limit,
/// when the job ignored SIGXCPU; `cpu_used` is read from its zombie), is
/// named as killed by its CPU limit. Any failure under a memory limit
/// mentions it: under `RLIMIT_AS` an allocation fails inside the job,
/// which then exits or aborts its own way.
fn limit_note(error: String, end: ExecEnd, limits: &Limits, cpu_used: Option<Duration>) -> String {
    let cpu_limit = limits.cpu_time.map(Duration::from_secs);
    let mut error = match (end, cpu_limit) {
        (ExecEnd::Signaled(sig), Some(limit))
            if sig == libc::SIGXCPU
                || (sig == libc::SIGKILL && cpu_used.is_some_and(|used| used >= limit)) =>
        {
            format!(
                "killed: cpu time limit {}",
                humantime::format_duration(limit)
            )
        }
        _ => error,
    };
    let failed = matches!(
        end,
        ExecEnd::Exited(_) | ExecEnd::Signaled(_) | ExecEnd::SpawnFailed
    );
    if let (true, Some(bytes)) = (failed, limits.memory) {
        error.push_str(&format!(
            " (ran under a memory limit of {})",
            human_size(bytes)
        ));
    }
    error
}

/// `512 MiB`, `3 GiB`, `1000 bytes`: a size as a limit is written.
fn human_size(bytes: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// An io::Error's text without the "(os error N)" suffix std appends
/// (shared by the job kinds, whose errors operators read).
pub(crate) fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// `2s`, `300ms`: the way a duration is written in the config.
fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
