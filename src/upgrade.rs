//! In-place upgrade (`SIGUSR2`, as nginx does): a new tickd process takes
//! over the listening sockets of the running one, so that no client is
//! refused while the binary is replaced.
//!
//! The old process, on `SIGUSR2` ([`Upgrader`], a thread waiting for the
//! signal):
//! 1. starts the binary at the path it was itself started from (recorded
//!    at start: after a package upgrade `/proc/self/exe` names the deleted
//!    old file, the path the new one), `tickd run --config C [--pidfile
//!    P]`, passing its listeners by the socket-activation protocol plus two
//!    pipes ([`crate::activation::HANDOFF_VAR`]);
//! 2. waits for the new process to confirm: it has loaded and checked its
//!    config and matched the listeners to it. If the new process exits
//!    instead (a config that does not load, listeners that no longer fit,
//!    a binary that does not start), the old one logs why and keeps
//!    serving: nothing else changed;
//! 3. once confirmed, drains exactly as on SIGTERM (it raises SIGTERM on
//!    itself): stops accepting and scheduling, answers what it has read,
//!    lets running runs finish under `shutdown_grace`, keeps queued runs in
//!    the journal (with `state_dir`), releases the journal and pidfile
//!    locks by exiting. It does not remove the Unix socket's file: the new
//!    process listens on it.
//!
//! The new process ([`Handoff`]), started with the pipes: checks its config
//! and listeners, confirms on the first pipe, then waits for end of file on
//! the second, whose write end only the old process holds: it closes when
//! the old process has exited, whichever way. It then takes the pidfile and
//! the journal's lock, loads the journal and starts accepting. Connections
//! made meanwhile wait in the kernel's backlog.
//!
//! Under systemd (`NOTIFY_SOCKET` set) `SIGUSR2` is refused, with a message:
//! systemd watches the pid it started and would take the old one's exit
//! for the service's. Use socket activation (`tickd.socket`) and `systemctl
//! restart tickd` there. Under `tickd run --supervise` the daemon passes
//! the signal to its supervisor, which does the upgrade itself (the new
//! daemon must be the supervisor's child, never a grandchild).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::supervise::child;

/// How long a new process started by `SIGUSR2` may take to load and check
/// its config and listeners before the old one gives up on it (and kills
/// it): the old one keeps serving meanwhile.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(60);

/// For tests only: replaces [`CONFIRM_WITHIN`], in milliseconds.
pub const TEST_CONFIRM_VAR: &str = "TICKD_TEST_UPGRADE_CONFIRM_MS";

/// [`CONFIRM_WITHIN`], or the test's value.
pub(crate) fn confirm_within() -> Duration {
    std::env::var(TEST_CONFIRM_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(CONFIRM_WITHIN, Duration::from_millis)
}

/// The new process's side: the two pipes it was started with.
pub struct Handoff {
    confirm: File,
    go: File,
}

impl Handoff {
    /// The pipes, if this process was started by an upgrade.
    pub fn inherited() -> Option<Handoff> {
        crate::activation::take_handoff().map(|(confirm, go)| Handoff {
            confirm: File::from(confirm),
            go: File::from(go),
        })
    }

    /// Tells the old process that the config loaded and the listeners fit,
    /// then waits until it has exited (end of file on the other pipe).
    pub fn confirm_and_wait(mut self) -> io::Result<()> {
        self.confirm.write_all(b"ok\n")?;
        drop(self.confirm);
        let mut buf = [0u8; 16];
        loop {
            match self.go.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The pipes of an upgrade under way, the starting side's ends.
pub struct Successor {
    /// The new process.
    pub child: std::process::Child,
    /// Read end: `ok` once the new process has checked everything.
    pub confirmed: File,
    /// Write end: closed (here, or by this process's exit) to let the new
    /// process go on.
    pub go: OwnedFd,
}

/// Starts the new process with the pipes (the old daemon's upgrade, and a
/// supervisor's).
pub fn start(base: &child::Launch<'_>) -> io::Result<Successor> {
    let (confirm_r, confirm_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let child = child::spawn(&child::Launch {
        program: base.program,
        config: base.config,
        pidfile: base.pidfile,
        fds: base.fds.clone(),
        handoff: Some([confirm_w.as_fd(), go_r.as_fd()]),
        supervisor: base.supervisor,
        generation: base.generation,
    })?;
    // Only the new process keeps those ends: its exit is then an EOF here.
    drop(confirm_w);
    drop(go_r);
    Ok(Successor {
        child,
        confirmed: File::from(confirm_r),
        go: go_w,
    })
}

impl Successor {
    /// Blocks until the new process confirms (`Ok`) or ends (`Err`, saying
    /// how). One that has done neither after `within` (hung on a mount,
    /// say) is killed, so a later `SIGUSR2` can try again.
    pub fn wait_confirmed(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "did not confirm within {} ms and was killed",
                    within.as_millis()
                ));
            }
            let timeout = rustix::time::Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [rustix::event::PollFd::new(
                &self.confirmed,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(format!("cannot wait for it: {e}")),
            }
        }
        let mut text = String::new();
        let _ = (&self.confirmed).take(16).read_to_string(&mut text);
        if text.starts_with("ok") {
            return Ok(());
        }
        Err(match self.child.wait() {
            Ok(status) => child::describe(status),
            Err(e) => format!("could not be waited for: {e}"),
        })
    }
}

/// The old process's side: waits for `SIGUSR2` on a thread of its own.
pub struct Upgrader {
    signals: signal_hook::iterator::Signals,
    plan: Plan,
}

/// What an upgrade of this process starts.
struct Plan {
    program: PathBuf,
    config: PathBuf,
    pidfile: Option<PathBuf>,
    /// Reads the config generation in force, passed to the new process.
    generation: Option<Generation>,
}

/// Reads the daemon's config generation (see [`Upgrader::set_generation`]).
pub type Generation = Box<dyn Fn() -> u64 + Send>;

impl Upgrader {
    /// Handles `SIGUSR2` from now on (so that one sent as soon as the
    /// daemon listens does not kill it); the thread starts in [`run`].
    ///
    /// [`run`]: Upgrader::run
    pub fn install(
        program: PathBuf,
        config: PathBuf,
        pidfile: Option<PathBuf>,
    ) -> io::Result<Upgrader> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR2};
        // TERM and INT too (besides the loop's own handlers): a shutdown
        // closes the copies of the listeners kept for an upgrade.
        let signals = signal_hook::iterator::Signals::new([SIGUSR2, SIGTERM, SIGINT])?;
        Ok(Upgrader {
            signals,
            plan: Plan {
                program,
                config,
                pidfile,
                generation: None,
            },
        })
    }

    /// How to read the config generation, which the new process goes on
    /// from (it would otherwise start again at 1).
    pub fn set_generation(&mut self, generation: Generation) {
        self.plan.generation = Some(generation);
    }

    /// The listeners to hand over (copies: the loop closes its own at
    /// shutdown; these are closed then too, see
    /// [`crate::activation::release_listener_copies`]).
    pub fn set_listeners(&mut self, fds: Vec<(OwnedFd, &'static str)>) {
        crate::activation::keep_listener_copies(fds);
    }

    /// Starts the thread that does the upgrade on `SIGUSR2`.
    pub fn run(mut self) -> io::Result<()> {
        std::thread::Builder::new()
            .name("tickd-upgrade".into())
            .spawn(move || {
                let mut done = false;
                for sig in self.signals.forever() {
                    if sig != signal_hook::consts::SIGUSR2 {
                        crate::activation::release_listener_copies();
                        done = true;
                    } else if done {
                        log::warn!("SIGUSR2 ignored: shutting down, or an upgrade is under way");
                    } else {
                        done = self.plan.upgrade();
                    }
                }
            })
            .map(|_| ())
    }
}

impl Plan {
    /// One `SIGUSR2`; true once the new process has taken over.
    fn upgrade(&self) -> bool {
        if crate::activation::restarts().is_some() {
            let parent = rustix::process::getppid();
            log::info!("SIGUSR2: this daemon runs under tickd run --supervise; passing the upgrade to the supervisor");
            if let Some(p) = parent {
                if let Err(e) = rustix::process::kill_process(p, rustix::process::Signal::USR2) {
                    log::error!("SIGUSR2: cannot pass it to the supervisor: {e}");
                }
            }
            return false;
        }
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            log::error!(
                "SIGUSR2 refused: tickd runs under systemd (NOTIFY_SOCKET is set), which watches this pid; \
                 to replace the binary without refusing clients use socket activation (tickd.socket) \
                 and `systemctl restart tickd`"
            );
            return false;
        }
        log::info!(
            "SIGUSR2: upgrade: starting {} to take over the listeners",
            self.program.display()
        );
        let copies = crate::activation::take_listener_copies();
        if copies.is_empty() {
            log::warn!("SIGUSR2 ignored: shutting down");
            return true;
        }
        let launch = child::Launch {
            program: &self.program,
            config: &self.config,
            pidfile: self.pidfile.as_deref(),
            fds: copies.iter().map(|(fd, n)| (fd.as_fd(), *n)).collect(),
            handoff: None,
            supervisor: None,
            generation: self.generation.as_ref().map(|g| g()),
        };
        let started = start(&launch);
        drop(launch);
        // Kept again for a later try (unless a shutdown began meanwhile).
        let keep_copies = || crate::activation::keep_listener_copies(copies);
        let mut next = match started {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "upgrade failed: cannot start {}: {e}; still serving",
                    self.program.display()
                );
                keep_copies();
                return false;
            }
        };
        let pid = next.child.id();
        if let Err(how) = next.wait_confirmed(confirm_within()) {
            log::error!(
                "upgrade failed: the new process (pid {pid}) {how} before it was ready to take over \
                 (its reason is logged above); still serving (pid {})",
                std::process::id()
            );
            keep_copies();
            return false;
        }
        log::info!(
            "upgrade: the new process (pid {pid}) checked its config and listeners; \
             draining as on SIGTERM, then it takes over"
        );
        crate::server::listeners::handed_over();
        // Closed when this process exits, whichever way: the new one's go.
        std::mem::forget(next.go);
        let me = rustix::process::getpid();
        if let Err(e) = rustix::process::kill_process(me, rustix::process::Signal::TERM) {
            log::error!("upgrade: cannot raise SIGTERM: {e}");
        }
        true
    }
}
