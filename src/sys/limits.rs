//! Per-job resource limits of an exec job (`limits = { ... }`), applied in
//! the child between fork and exec, so they hold for the job and whatever
//! it forks: `setrlimit` (address space, CPU seconds, open files),
//! `setpriority` (nice) and `ioprio_set` (I/O class).
//!
//! The values are plain numbers (`Copy`): the child after fork may not
//! allocate, so everything the closure needs is copied into it. A job with
//! no limits gets no closure at all, and std keeps spawning it with
//! `posix_spawn` (see `jobs::exec`).
//!
//! std reports a failed pre-exec step to the parent only as an errno. So
//! that the run's error can say *which* limit the kernel refused, the step
//! is folded into the number ([`failed_limit`] unfolds it).

use std::io;
use std::process::Command;

/// The I/O scheduling class of a job (`ioprio_set`, see ionice(1)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoClass {
    /// Disk time only when no one else wants it.
    Idle,
    /// The default class, at level 4 (the middle one).
    BestEffort,
    /// Before everyone else, at level 4; needs root (CAP_SYS_ADMIN).
    Realtime,
}

impl IoClass {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            IoClass::Idle => "idle",
            IoClass::BestEffort => "best-effort",
            IoClass::Realtime => "realtime",
        }
    }

    /// The `ioprio` value: class in bits 13.., level below.
    pub(crate) fn ioprio(self) -> i32 {
        const CLASS_SHIFT: i32 = 13;
        match self {
            IoClass::Realtime => (1 << CLASS_SHIFT) | 4,
            IoClass::BestEffort => (2 << CLASS_SHIFT) | 4,
            IoClass::Idle => 3 << CLASS_SHIFT,
        }
    }
}

/// A job's limits; every one optional. `Limits::default()` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// `RLIMIT_AS`, bytes of address space (soft = hard).
    pub memory: Option<u64>,
    /// `RLIMIT_CPU`, whole seconds: SIGXCPU at this many, and SIGKILL
    /// [`CPU_HARD_MARGIN_SECS`] later if the job ignores SIGXCPU.
    pub cpu_time: Option<u64>,
    /// `RLIMIT_NOFILE` (soft = hard).
    pub open_files: Option<u64>,
    /// Absolute nice value, -20..=19.
    pub nice: Option<i32>,
    /// I/O scheduling class.
    pub io_class: Option<IoClass>,
}

/// Seconds of CPU between SIGXCPU (the soft limit) and SIGKILL (the hard
/// one), for a job that ignores or traps SIGXCPU.
pub const CPU_HARD_MARGIN_SECS: u64 = 5;

impl Limits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Which step of applying the limits failed, in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Memory = 1,
    CpuTime = 2,
    OpenFiles = 3,
    Nice = 4,
    IoClass = 5,
}

/// Marks an errno that carries a [`Step`] (errnos are below 4096).
const MARK: i32 = 0x5100_0000;

/// The errno std passes to the parent for `step` failing with `errno`.
pub(crate) fn fold(step: Step, errno: i32) -> io::Error {
    io::Error::from_raw_os_error(MARK | ((step as i32) << 16) | (errno & 0xffff))
}

/// If `err` is a limit that could not be applied in the child, which one
/// (its config key) and the kernel's reason, e.g. `("nice", "Permission
/// denied")`.
pub fn failed_limit(err: &io::Error) -> Option<(&'static str, String)> {
    let raw = err.raw_os_error()?;
    if raw & !0x00ff_ffff != MARK {
        return None;
    }
    let key = match (raw >> 16) & 0xff {
        1 => "memory",
        2 => "cpu_time",
        3 => "open_files",
        4 => "nice",
        5 => "io_class",
        _ => return None,
    };
    let reason = io::Error::from_raw_os_error(raw & 0xffff).to_string();
    let reason = match reason.rfind(" (os error ") {
        Some(i) => reason[..i].to_string(),
        None => reason,
    };
    Some((key, reason))
}

/// Makes `command`'s child apply `limits` before it execs; does nothing
/// (no closure, so std may still use `posix_spawn`) when there are none.
pub fn apply_before_exec(command: &mut Command, limits: Limits) {
    if !limits.is_empty() {
        super::ffi::limits_before_exec(command, limits);
    }
}

/// The CPU time (user + system) process `pid` has used, from
/// `/proc/PID/stat`; readable for a zombie too, until it is reaped.
pub fn cpu_time_of(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name in parentheses (which may hold
    // spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let hz = super::ffi::clock_ticks_per_second().max(1);
    let ticks = utime.saturating_add(stime);
    Some(std::time::Duration::from_millis(
        ticks.saturating_mul(1000) / hz,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_survives_the_errno_round_trip() {
        let err = fold(Step::Nice, 13);
        assert_eq!(
            failed_limit(&err),
            Some(("nice", "Permission denied".to_string()))
        );
        assert_eq!(
            failed_limit(&fold(Step::Memory, 1)).map(|f| f.0),
            Some("memory")
        );
        assert_eq!(failed_limit(&io::Error::from_raw_os_error(13)), None);
    }

    #[test]
    fn limits_reach_the_child_and_a_refused_one_is_named() {
        let limits = Limits {
            open_files: Some(77),
            nice: Some(7),
            ..Limits::default()
        };
        let mut c = Command::new("sh");
        c.args(["-c", "ulimit -n; cut -d' ' -f19 /proc/self/stat"]);
        apply_before_exec(&mut c, limits);
        let out = c.output().expect("spawn");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "77\n7\n");

        // Above the hard limit of the current process: refused, unless root.
        let mut c = Command::new("true");
        let limits = Limits {
            open_files: Some(u64::MAX - 1),
            ..Limits::default()
        };
        apply_before_exec(&mut c, limits);
        let err = c.output().expect_err("no fd limit that large");
        assert_eq!(failed_limit(&err).map(|f| f.0), Some("open_files"));
    }
}
