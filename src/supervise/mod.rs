//! `tickd run --supervise`: a small parent process that keeps the daemon
//! running where nothing else does (an LSB init script, a container's
//! plain entrypoint), without ever closing its listening sockets.
//!
//! The supervisor loads the config (a bad one: exit 1, as `tickd run`),
//! takes the pidfile (the pid in it is the supervisor's: that is the
//! process to signal), binds the listeners itself (or takes them from its
//! own socket activation), and starts the daemon, `tickd run --config
//! PATH`, passing the listeners on by the socket-activation protocol
//! ([`crate::activation`]): the child runs exactly the code path of a
//! daemon started by a systemd socket unit. Because the supervisor keeps
//! the sockets open between two children, a client that connects while
//! the daemon is down (crashed, or being restarted) waits in the kernel's
//! backlog and is answered by the next child; it is never refused.
//!
//! What it does then:
//! - **readiness**: the child's `NOTIFY_SOCKET` is a datagram socket of the
//!   supervisor's, so the child's `READY=1` tells it the daemon is up; the
//!   first one makes `--daemonize` return 0 (and is passed on to systemd
//!   if the supervisor itself runs under one);
//! - **a crash** (the child exits non-zero, or dies of a signal the
//!   supervisor did not send): logged with its cause, then a restart after
//!   the delay of [`policy`] (1 s, doubling to 1 min, back to 1 s after 10
//!   min up); the 11th restart within 10 min is not made: the supervisor
//!   logs `giving up` and exits [`EXIT_GAVE_UP`];
//! - **a daemon that fails its very first start** (never reported ready):
//!   not restarted; the supervisor exits with the child's status, so a
//!   start with a bad state dir or a held port fails at once, as without
//!   `--supervise`;
//! - **a clean exit** (status 0: the `shutdown` method, or a SIGTERM sent
//!   to the daemon rather than to the supervisor): not restarted; the
//!   supervisor exits 0;
//! - **signals**: `SIGTERM` and `SIGINT` are passed to the child and make
//!   its end a requested stop: the supervisor exits with the child's status
//!   (0 after a clean drain; 128 + N if it was killed by signal N).
//!   `SIGHUP` (reload) and `SIGUSR1` (reopen logs; the supervisor reopens
//!   its own log file too) are passed on. If the supervisor is killed
//!   outright, the child gets `SIGTERM` from the kernel
//!   (`PR_SET_PDEATHSIG`) and drains as usual;
//! - **`SIGUSR2`** (an in-place upgrade, [`crate::upgrade`]): a new child
//!   is started with the upgrade's pipes; once it confirms its config, the
//!   old one gets `SIGTERM`, and when it has exited the new one goes on.
//!   A new child that fails first leaves the old one serving.
//!
//! The supervisor is one thread. It sleeps in `poll` on its signal pipe
//! (`SIGCHLD` included), the notification socket, an upgrade's pipe, and
//! the restart delay; it reads no client input and does nothing with its
//! privileges (a root supervisor stays root so that the child can bind
//! nothing but still drop to `daemon.user` itself) but hand the Unix
//! socket to `daemon.user`, as a daemon that binds it does. The child's
//! `status` shows `restarts` (the count, passed in
//! `TICKD_SUPERVISOR_RESTARTS`) and its metrics
//! `tickd_supervisor_restarts_total`.

pub(crate) mod child;
pub mod policy;
mod upgrading;

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixStream as StdUnixStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::activation::{Inherited, NAME_LISTEN, NAME_UNIX};
use crate::config::Config;
use crate::daemonize::Readiness;
use crate::exit::{EXIT_BIND, EXIT_CONFIG};
use crate::server::listeners::{self, Listeners};
use crate::RunOptions;
use policy::{Decision, Policy, Restarts};

pub use crate::exit::EXIT_GAVE_UP;

const SIGNALS: Token = Token(0);
const NOTIFY: Token = Token(1);
const SUCCESSOR: Token = Token(2);

/// Runs the supervisor until a requested stop or giving up; returns the
/// process's exit code.
pub fn run(
    opts: &RunOptions,
    config: Config,
    inherited: Vec<Inherited>,
    mut readiness: Readiness,
) -> i32 {
    match Supervisor::start(opts, &config, inherited) {
        Ok(s) => s.run(readiness),
        Err((code, message)) => {
            log::error!("{message}");
            readiness.fail(code, &message);
            code
        }
    }
}

/// The signals the supervisor handles, as flags set by their handlers.
struct Flags {
    receiver: mio::net::UnixStream,
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    usr2: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
}

impl Flags {
    fn install() -> io::Result<Flags> {
        let (rx, tx) = StdUnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let flags = Flags {
            receiver: mio::net::UnixStream::from_std(rx),
            term: Arc::default(),
            int: Arc::default(),
            hup: Arc::default(),
            usr1: Arc::default(),
            usr2: Arc::default(),
            chld: Arc::default(),
        };
        for (sig, flag) in [
            (SIGTERM, &flags.term),
            (SIGINT, &flags.int),
            (SIGHUP, &flags.hup),
            (SIGUSR1, &flags.usr1),
            (SIGUSR2, &flags.usr2),
            (SIGCHLD, &flags.chld),
        ] {
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(flags)
    }

    /// Empties the pipe (the flags are read after it).
    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.receiver.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Where the daemon is.
enum State {
    /// Running since `started`; `ready` once it sent `READY=1`.
    Running {
        child: Child,
        started: Instant,
        ready: bool,
    },
    /// Down; to be started at this instant.
    Waiting(Instant),
}

struct Supervisor {
    program: PathBuf,
    config: PathBuf,
    listeners: Listeners,
    flags: Flags,
    notify: mio::net::UnixDatagram,
    notify_name: String,
    poll: Poll,
    restarts: Restarts,
    /// Restarts made so far.
    count: u64,
    /// A child has reported ready at least once.
    ever_ready: bool,
    /// SIGTERM or SIGINT came: the child's end is a requested stop.
    stopping: bool,
    /// An upgrade under way (SIGUSR2): the new daemon, and whether it has
    /// confirmed (then the old one is draining).
    successor: Option<(crate::upgrade::Successor, bool)>,
    /// When an unconfirmed successor is given up on (and killed).
    successor_deadline: Option<Instant>,
    /// The config generation the daemon last told (`X_TICKD_GENERATION`),
    /// passed on to the daemon that replaces it in an upgrade.
    generation: Option<u64>,
    _pidfile: Option<crate::pidfile::Pidfile>,
}

impl Supervisor {
    fn start(
        opts: &RunOptions,
        config: &Config,
        inherited: Vec<Inherited>,
    ) -> Result<Supervisor, (i32, String)> {
        let bind = |m: String| (EXIT_BIND, format!("cannot start: {m}"));
        // The path now: after a package upgrade /proc/self/exe names the
        // deleted file, while this path names the new binary.
        let program = std::env::current_exe()
            .map_err(|e| bind(format!("cannot tell where the tickd binary is: {e}")))?;
        let pidfile = match &opts.pidfile {
            Some(path) => Some(
                crate::pidfile::Pidfile::acquire(path).map_err(|e| (EXIT_BIND, e.to_string()))?,
            ),
            None => None,
        };
        let flags =
            Flags::install().map_err(|e| bind(format!("cannot install signal handlers: {e}")))?;
        let listeners = listeners::bind(&config.daemon, inherited).map_err(|m| (EXIT_BIND, m))?;
        let account = crate::privilege::plan(&config.daemon.start).map_err(|m| (EXIT_CONFIG, m))?;
        if let (Some(account), Some(unix)) = (&account, &listeners.unix) {
            if !unix.inherited() {
                crate::privilege::hand_over(account, None, Some(unix.path()));
            }
        }
        let notify_name = format!(
            "tickd-supervise-{}-{}",
            std::process::id(),
            crate::rng::SplitMix64::seeded().next_u64()
        );
        let notify = UnixAddr::from_abstract_name(notify_name.as_bytes())
            .and_then(|a| UnixDatagram::bind_addr(&a))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| bind(format!("cannot open the notification socket: {e}")))?;
        let mut notify = mio::net::UnixDatagram::from_std(notify);
        let poll = Poll::new().map_err(|e| bind(format!("cannot create a poll: {e}")))?;
        let mut flags = flags;
        poll.registry()
            .register(&mut flags.receiver, SIGNALS, Interest::READABLE)
            .and_then(|()| {
                poll.registry()
                    .register(&mut notify, NOTIFY, Interest::READABLE)
            })
            .map_err(|e| bind(format!("cannot register with the poll: {e}")))?;
        log::info!(
            "supervisor: tickd {} supervising (pid {}); restarts the daemon when it dies",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
        Ok(Supervisor {
            program,
            config: opts.config.clone(),
            listeners,
            flags,
            notify,
            notify_name: format!("@{notify_name}"),
            poll,
            restarts: Restarts::new(Policy::from_env()),
            count: 0,
            ever_ready: false,
            stopping: false,
            successor: None,
            successor_deadline: None,
            generation: None,
            _pidfile: pidfile,
        })
    }

    /// The listeners to pass on, with their names.
    fn fds(&self) -> Vec<(BorrowedFd<'_>, &'static str)> {
        let mut fds = Vec::new();
        if let Some(l) = &self.listeners.tcp {
            fds.push((l.as_fd(), NAME_LISTEN));
        }
        if let Some(u) = &self.listeners.unix {
            fds.push((u.listener.as_fd(), NAME_UNIX));
        }
        fds
    }

    fn run(mut self, mut readiness: Readiness) -> i32 {
        let mut state = State::Waiting(Instant::now());
        let mut events = Events::with_capacity(8);
        loop {
            let now = Instant::now();
            if let State::Waiting(at) = state {
                if self.stopping {
                    log::info!("supervisor: stopped while the daemon was down");
                    return 0;
                }
                if now >= at {
                    state = match self.spawn() {
                        Ok(s) => s,
                        Err(code) => return code,
                    };
                }
            }
            let timeout = match &state {
                State::Waiting(at) => Some(at.saturating_duration_since(now)),
                State::Running { .. } => None,
            };
            // An upgrade's new daemon that has not confirmed yet is given
            // up on at its deadline.
            let timeout = match self.successor_deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(now);
                    Some(timeout.map_or(left, |t| t.min(left)))
                }
                None => timeout,
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("supervisor: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            self.flags.drain();
            if self.take_ready() {
                if let State::Running { child, ready, .. } = &mut state {
                    if !*ready {
                        *ready = true;
                        log::info!("supervisor: the daemon (pid {}) is ready", child.id());
                        if !self.ever_ready {
                            self.ever_ready = true;
                            readiness.ready();
                            crate::notify::ready(None);
                        }
                    }
                }
            }
            self.forward_signals(&state);
            self.upgrade_step(&mut state);
            if let State::Running { child, started, .. } = &mut state {
                let status = match child.try_wait() {
                    Ok(Some(status)) => status,
                    Ok(None) => continue,
                    Err(e) => {
                        log::error!("supervisor: cannot wait for the daemon: {e}");
                        continue;
                    }
                };
                let pid = child.id();
                let up = started.elapsed();
                if let Some(next) = self.take_over(pid, status) {
                    state = next;
                    continue;
                }
                match self.after_exit(pid, status, up, &mut readiness) {
                    Ok(at) => state = State::Waiting(at),
                    Err(code) => return code,
                }
            }
        }
    }

    /// Starts a child; on failure (the binary is gone, say) counts it as a
    /// death and waits, or gives up.
    fn spawn(&mut self) -> Result<State, i32> {
        let launch = child::Launch {
            program: &self.program,
            config: &self.config,
            pidfile: None,
            fds: self.fds(),
            handoff: None,
            supervisor: Some((&self.notify_name, self.count)),
            generation: None,
        };
        match child::spawn(&launch) {
            Ok(c) => {
                log::info!(
                    "supervisor: started the daemon (pid {}, restarts so far: {})",
                    c.id(),
                    self.count
                );
                Ok(State::Running {
                    child: c,
                    started: Instant::now(),
                    ready: false,
                })
            }
            Err(e) => {
                let cause = format!("could not be started ({}: {e})", self.program.display());
                if !self.ever_ready {
                    log::error!("supervisor: the daemon {cause}");
                    return Err(EXIT_BIND);
                }
                self.restart_after(&cause, Duration::ZERO)
                    .map(State::Waiting)
            }
        }
    }

    /// Reads every pending notification; whether one said `READY=1`.
    fn take_ready(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let mut ready = false;
        loop {
            match self.notify.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    ready |= text.lines().any(|l| l == "READY=1");
                    if let Some(g) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("X_TICKD_GENERATION="))
                        .and_then(|g| g.parse().ok())
                    {
                        self.generation = Some(g);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ready,
            }
        }
    }

    /// Passes TERM, INT, HUP and USR1 on to the child (SIGCHLD just woke
    /// the loop); USR1 also reopens the supervisor's own log file.
    fn forward_signals(&mut self, state: &State) {
        let take = |f: &Arc<AtomicBool>| f.swap(false, Ordering::SeqCst);
        self.flags.chld.store(false, Ordering::SeqCst);
        let mut send = Vec::new();
        if take(&self.flags.term) {
            send.push(rustix::process::Signal::TERM);
        }
        if take(&self.flags.int) {
            send.push(rustix::process::Signal::INT);
        }
        if !send.is_empty() && !self.stopping {
            self.stopping = true;
            log::info!("supervisor: stop requested; passing it on to the daemon");
            crate::notify::stopping();
            if self.successor.is_some() {
                log::warn!("supervisor: upgrade abandoned: stopping");
                self.drop_successor();
            }
        }
        if take(&self.flags.hup) {
            send.push(rustix::process::Signal::HUP);
        }
        if take(&self.flags.usr1) {
            crate::logging::reopen();
            send.push(rustix::process::Signal::USR1);
        }
        let State::Running { child, .. } = state else {
            return;
        };
        let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        for sig in send {
            if let Err(e) = rustix::process::kill_process(pid, sig) {
                log::warn!("supervisor: cannot pass {sig:?} to the daemon (pid {pid:?}): {e}");
            }
        }
    }

    /// The child `pid` ended with `status` after `up`: when to start the
    /// next one, or the supervisor's exit code.
    fn after_exit(
        &mut self,
        pid: u32,
        status: std::process::ExitStatus,
        up: Duration,
        readiness: &mut Readiness,
    ) -> Result<Instant, i32> {
        let how = child::describe(status);
        let code = child::code_of(status);
        if self.stopping {
            log::info!("supervisor: the daemon (pid {pid}) {how}; exiting with status {code}");
            return Err(code);
        }
        if !self.ever_ready {
            let message = format!(
                "the daemon (pid {pid}) {how} before it was ready; not restarting it (see its messages above)"
            );
            log::error!("supervisor: {message}");
            readiness.fail(if code == 0 { 1 } else { code }, &message);
            return Err(if code == 0 { 1 } else { code });
        }
        if status.success() {
            log::info!(
                "supervisor: the daemon (pid {pid}) stopped by itself (status 0); not restarting it, exiting"
            );
            return Err(0);
        }
        let cause = format!("(pid {pid}) {how} after {}", human(up));
        self.restart_after(&cause, up)
    }

    /// Decides on a restart after a death described by `cause`.
    fn restart_after(&mut self, cause: &str, up: Duration) -> Result<Instant, i32> {
        let now = Instant::now();
        match self.restarts.after_death(now, up) {
            Decision::Restart { delay, in_window } => {
                self.count += 1;
                log::warn!(
                    "supervisor: the daemon {cause}; restarting it in {} (restart {}, {in_window} in the last 10 min)",
                    human(delay),
                    self.count
                );
                Ok(now + delay)
            }
            Decision::GiveUp { in_window } => {
                log::error!(
                    "supervisor: giving up: the daemon {cause}, and it was already restarted {in_window} times in the last 10 min; not restarting it again (exit status {EXIT_GAVE_UP})"
                );
                Err(EXIT_GAVE_UP)
            }
        }
    }
}

/// A duration for the log, to the millisecond.
fn human(d: Duration) -> String {
    let ms = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(ms).to_string()
}
