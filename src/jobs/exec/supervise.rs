//! Waiting for one exec run: the event loop of a single child process.
//!
//! A run is watched through one `mio::Poll` owned by the worker thread:
//!
//! * the child's stdout and stderr pipes (non-blocking), read as soon as
//!   they have data, so the child never blocks on a full pipe;
//! * its stdin pipe, written without blocking as the child reads it;
//! * a pidfd for the child, readable once it has exited (Linux ≥ 5.3). On
//!   older kernels a helper thread blocks in `waitid(WNOWAIT)` instead and
//!   reports the exit through the waker — the child is still reaped here;
//! * a `mio::Waker`, fired by [`CancelToken::cancel`] and the helper thread;
//! * the poll timeout: the next deadline (run timeout, end of the kill
//!   grace, end of the exit linger). Nothing sleeps and nothing polls.
//!
//! Killing (timeout or cancel) signals the whole process group: SIGTERM,
//! then SIGKILL once `kill_grace` has passed without the leader exiting.
//! When the leader exits during a kill, the group gets a SIGKILL anyway to
//! sweep up stragglers; this is done before the leader is reaped, while its
//! zombie still reserves the process-group id, so the signal cannot reach an
//! unrelated group that reused the number.
//!
//! After the leader exits by itself, pipes still held open by background
//! descendants are read for at most [`EXIT_LINGER`]; those processes are
//! not killed.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::pipe::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::{ExecObserver, ExecRequest, EXIT_LINGER};
use crate::jobs::cancel::CancelToken;
use crate::jobs::output::{OutputTail, ProgressScanner};
use crate::sys::{self, GroupSignal};

const STDOUT: Token = Token(0);
const STDERR: Token = Token(1);
const STDIN: Token = Token(2);
const EXIT: Token = Token(3);
const WAKE: Token = Token(4);

/// Most bytes read from one pipe before the loop looks at its timers again,
/// so that a child flooding its output cannot delay its own timeout.
const READ_BUDGET: usize = 256 * 1024;

/// How the child's exit is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExitWatch {
    /// A pidfd if the kernel has them, else the waiter thread.
    Auto,
    /// Always the waiter thread (used by tests to cover the fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    WaiterThread,
}

/// How the supervised child ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// Exited or was signalled, by itself.
    Status(ExitStatus),
    /// Killed by us because the timeout passed.
    TimedOut,
    /// Killed by us because the run was cancelled.
    Cancelled,
    /// The run could not be watched (poll or thread failure); the group was
    /// killed and the child reaped.
    Broken(String),
}

/// The end of a run plus its output tail.
pub(super) struct Supervised {
    pub ended: Ended,
    pub tail: OutputTail,
    /// The CPU time the child had used when it exited, read from its
    /// zombie before reaping; only for a job with a `cpu_time` limit.
    pub cpu_used: Option<Duration>,
}

/// The poll and waker of one run, made before the child is spawned.
pub(super) struct Watcher {
    poll: Poll,
    waker: Arc<Waker>,
    mode: ExitWatch,
}

impl Watcher {
    /// Creates the run's poll and waker.
    pub(super) fn new(mode: ExitWatch) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        Ok(Self { poll, waker, mode })
    }

    /// Watches `child` until it has exited and been reaped.
    pub(super) fn run(
        self,
        mut child: Child,
        req: &ExecRequest<'_>,
        cancel: &CancelToken,
        observer: &mut dyn ExecObserver,
    ) -> Supervised {
        let pid = child.id();
        let stdout = child.stdout.take().map(Receiver::from);
        let stderr = child.stderr.take().map(Receiver::from);
        let stdin = child.stdin.take().map(Sender::from);
        let mut run = Run {
            poll: self.poll,
            waker: self.waker,
            child,
            pid,
            stdout: None,
            stderr: None,
            stdin: None,
            exit: ExitSource::Reaped,
            status: None,
            kill: Kill::No,
            tail: OutputTail::default(),
            observer,
            cpu_watch: req.limits.cpu_time.is_some(),
            cpu_used: None,
        };
        let setup = run
            .watch_pipes(stdout, stderr, stdin, req.stdin.clone().unwrap_or_default())
            .and_then(|()| run.watch_exit(self.mode));
        if let Err(e) = setup {
            return run.abort(format!("cannot watch process {pid}: {e}"));
        }
        run.supervise(cancel, req.timeout, req.kill_grace)
    }
}

/// Why we are killing the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    TimedOut,
    Cancelled,
}

/// Where the kill sequence stands.
#[derive(Debug, Clone, Copy)]
enum Kill {
    No,
    Terminating { reason: Reason, kill_at: Instant },
    Killed { reason: Reason },
}

impl Kill {
    fn reason(self) -> Option<Reason> {
        match self {
            Kill::No => None,
            Kill::Terminating { reason, .. } | Kill::Killed { reason } => Some(reason),
        }
    }
}

/// How we learn that the leader exited.
enum ExitSource {
    Pidfd(OwnedFd),
    Waiter {
        done: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    },
    /// Already reaped; nothing left to watch.
    Reaped,
}

/// One output pipe and the progress scanner for its lines.
struct Stream {
    pipe: Receiver,
    scanner: ProgressScanner,
    /// Stopped reading at `READ_BUDGET` with data possibly left.
    more: bool,
}

/// The stdin pipe and what is left to write into it.
struct StdinFeed {
    pipe: Sender,
    data: Vec<u8>,
    written: usize,
}

struct Run<'o> {
    poll: Poll,
    waker: Arc<Waker>,
    child: Child,
    pid: u32,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    stdin: Option<StdinFeed>,
    exit: ExitSource,
    status: Option<ExitStatus>,
    kill: Kill,
    tail: OutputTail,
    observer: &'o mut dyn ExecObserver,
    /// Whether to read the child's CPU time before reaping it.
    cpu_watch: bool,
    cpu_used: Option<Duration>,
}

impl Run<'_> {
    fn watch_pipes(
        &mut self,
        stdout: Option<Receiver>,
        stderr: Option<Receiver>,
        stdin: Option<Sender>,
        data: Vec<u8>,
    ) -> io::Result<()> {
        let registry = self.poll.registry();
        for (pipe, token) in [(stdout, STDOUT), (stderr, STDERR)] {
            let Some(mut pipe) = pipe else { continue };
            pipe.set_nonblocking(true)?;
            registry.register(&mut pipe, token, Interest::READABLE)?;
            let stream = Some(Stream {
                pipe,
                scanner: ProgressScanner::new(),
                more: false,
            });
            if token == STDOUT {
                self.stdout = stream;
            } else {
                self.stderr = stream;
            }
        }
        if let Some(mut pipe) = stdin {
            pipe.set_nonblocking(true)?;
            registry.register(&mut pipe, STDIN, Interest::WRITABLE)?;
            self.stdin = Some(StdinFeed {
                pipe,
                data,
                written: 0,
            });
            self.feed_stdin();
        }
        Ok(())
    }

    fn watch_exit(&mut self, mode: ExitWatch) -> io::Result<()> {
        if mode == ExitWatch::Auto {
            match sys::pidfd_open(self.pid).and_then(|fd| {
                let raw = fd.as_raw_fd();
                self.poll
                    .registry()
                    .register(&mut SourceFd(&raw), EXIT, Interest::READABLE)?;
                Ok(fd)
            }) {
                Ok(fd) => {
                    self.exit = ExitSource::Pidfd(fd);
                    return Ok(());
                }
                Err(e) => log::debug!("exec: no pidfd ({e}); using a waiter thread"),
            }
        }
        let done = Arc::new(AtomicBool::new(false));
        let (flag, waker, pid) = (done.clone(), self.waker.clone(), self.pid);
        let thread = std::thread::Builder::new()
            .name(format!("tickd-wait-{pid}"))
            .spawn(move || {
                if let Err(e) = sys::wait_for_exit(pid) {
                    log::warn!("exec: waiting for pid {pid} failed: {e}");
                }
                flag.store(true, Ordering::SeqCst);
                if let Err(e) = waker.wake() {
                    log::warn!("exec: cannot wake the run of pid {pid}: {e}");
                }
            })?;
        self.exit = ExitSource::Waiter {
            done,
            thread: Some(thread),
        };
        Ok(())
    }

    /// The event loop; returns once the child is reaped and its output read.
    fn supervise(
        mut self,
        cancel: &CancelToken,
        timeout: Option<Duration>,
        grace: Duration,
    ) -> Supervised {
        let _attached = cancel.attach_waker(self.waker.clone());
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut linger_until: Option<Instant> = None;
        let mut events = Events::with_capacity(16);
        loop {
            let now = Instant::now();
            let wake_at = if self.status.is_some() {
                let output_done = self.stdout.is_none() && self.stderr.is_none();
                if output_done || cancel.is_cancelled() || linger_until.is_some_and(|t| now >= t) {
                    break;
                }
                linger_until
            } else {
                self.advance_kill(now, cancel, deadline, grace)
            };
            let more = self.stdout.as_ref().is_some_and(|s| s.more)
                || self.stderr.as_ref().is_some_and(|s| s.more);
            let wait = if more {
                Some(Duration::ZERO)
            } else {
                wake_at.map(|t| t.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let msg = format!("poll failed while watching pid {}: {e}", self.pid);
                return self.abort(msg);
            }
            let mut exit_seen = false;
            let pipes_were_open = self.stdout.is_some() || self.stderr.is_some();
            for event in events.iter() {
                match event.token() {
                    STDOUT => self.drain(STDOUT),
                    STDERR => self.drain(STDERR),
                    STDIN => self.feed_stdin(),
                    EXIT => exit_seen = true,
                    _ => {} // WAKE: the checks below and at the top of the loop
                }
            }
            if more {
                self.drain(STDOUT);
                self.drain(STDERR);
            }
            if let ExitSource::Waiter { done, .. } = &self.exit {
                exit_seen |= done.load(Ordering::SeqCst);
            }
            if !exit_seen && pipes_were_open && self.stdout.is_none() && self.stderr.is_none() {
                exit_seen = self.exited_with_its_pipes();
            }
            if exit_seen && self.status.is_none() {
                if let Err(msg) = self.on_leader_exit() {
                    return self.abort(msg);
                }
                if self.status.is_some() {
                    linger_until = Instant::now().checked_add(EXIT_LINGER);
                }
            }
        }
        self.finish()
    }

    /// The output pipes have just reached end-of-file, which usually means
    /// the leader is exiting (its files close just before its exit is
    /// reported). If it has exited already, reaping it now saves sleeping
    /// once more only for the pidfd to say so: one poll and two context
    /// switches per run. A leader that closed its output and runs on is
    /// watched as before.
    fn exited_with_its_pipes(&self) -> bool {
        matches!(self.exit, ExitSource::Pidfd(_)) && sys::has_exited(self.pid).unwrap_or(false)
    }

    /// Starts or advances the kill sequence as deadlines pass; returns when
    /// the loop must next wake up by itself.
    fn advance_kill(
        &mut self,
        now: Instant,
        cancel: &CancelToken,
        deadline: Option<Instant>,
        grace: Duration,
    ) -> Option<Instant> {
        if let Kill::No = self.kill {
            let reason = if cancel.is_cancelled() {
                Some(Reason::Cancelled)
            } else if deadline.is_some_and(|d| now >= d) {
                Some(Reason::TimedOut)
            } else {
                None
            };
            if let Some(reason) = reason {
                log::debug!(
                    "exec: pid {}: {reason:?}; SIGTERM to its process group",
                    self.pid
                );
                self.signal_group(GroupSignal::Term);
                let kill_at = now.checked_add(grace).unwrap_or(now);
                self.kill = Kill::Terminating { reason, kill_at };
            }
        }
        if let Kill::Terminating { reason, kill_at } = self.kill {
            if now >= kill_at {
                log::warn!(
                    "exec: pid {} still running {grace:?} after SIGTERM; sending SIGKILL to its process group",
                    self.pid
                );
                self.signal_group(GroupSignal::Kill);
                self.kill = Kill::Killed { reason };
            }
        }
        match self.kill {
            Kill::No => deadline,
            Kill::Terminating { kill_at, .. } => Some(kill_at),
            Kill::Killed { .. } => None,
        }
    }

    fn signal_group(&self, sig: GroupSignal) {
        if let Err(e) = sys::signal_process_group(self.pid, sig) {
            log::warn!(
                "exec: cannot send {sig:?} to process group {}: {e}",
                self.pid
            );
        }
    }

    /// The leader has exited (or a wake-up says so): sweep the group if we
    /// are killing it, then reap. Leaves `status` unset on a spurious event.
    fn on_leader_exit(&mut self) -> Result<(), String> {
        match &mut self.exit {
            ExitSource::Pidfd(_) => match sys::has_exited(self.pid) {
                Ok(true) => {}
                Ok(false) => return Ok(()), // spurious wake-up
                Err(e) => return Err(format!("cannot check pid {}: {e}", self.pid)),
            },
            ExitSource::Waiter { thread, .. } => {
                // The thread has returned from waitid; joining is immediate.
                if let Some(t) = thread.take() {
                    if t.join().is_err() {
                        log::warn!("exec: waiter thread of pid {} panicked", self.pid);
                    }
                }
            }
            ExitSource::Reaped => return Ok(()),
        }
        if self.kill.reason().is_some() {
            // Stragglers that outlived the leader; its zombie still holds
            // the pgid, so this cannot hit a reused group.
            self.signal_group(GroupSignal::Kill);
        }
        if self.cpu_watch {
            self.cpu_used = sys::limits::cpu_time_of(self.pid);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("cannot reap pid {}: {e}", self.pid))?;
        self.status = Some(status);
        self.close_exit_source();
        self.close_stdin();
        Ok(())
    }

    fn close_exit_source(&mut self) {
        if let ExitSource::Pidfd(fd) = std::mem::replace(&mut self.exit, ExitSource::Reaped) {
            let raw = fd.as_raw_fd();
            if let Err(e) = self.poll.registry().deregister(&mut SourceFd(&raw)) {
                log::debug!("exec: deregistering pidfd: {e}");
            }
        }
        // A waiter thread was joined in `on_leader_exit`; in `abort` it is
        // left to finish by itself (its waitid returns once the child is
        // reaped), because joining could block if reaping failed.
    }

    /// Reads one pipe until it would block, hits EOF or uses its budget.
    fn drain(&mut self, token: Token) {
        let slot = if token == STDOUT {
            &mut self.stdout
        } else {
            &mut self.stderr
        };
        let Some(stream) = slot.as_mut() else { return };
        let observer = &mut *self.observer;
        let mut buf = [0u8; 16 * 1024];
        let mut budget = READ_BUDGET;
        stream.more = false;
        let eof = loop {
            if budget == 0 {
                stream.more = true;
                break false;
            }
            match stream.pipe.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.tail.push(&buf[..n]);
                    observer.output(&buf[..n]);
                    stream.scanner.feed(&buf[..n], |v| observer.progress(v));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("exec: reading output of pid {}: {e}", self.pid);
                    break true;
                }
            }
        };
        if eof {
            stream.scanner.finish(|v| observer.progress(v));
            let _ = self.poll.registry().deregister(&mut stream.pipe);
            *slot = None;
        }
    }

    /// Writes as much of stdin as the pipe takes; closes it when done or
    /// when the child stopped reading (EPIPE is normal, not an error).
    fn feed_stdin(&mut self) {
        let Some(feed) = self.stdin.as_mut() else {
            return;
        };
        loop {
            if feed.written >= feed.data.len() {
                break;
            }
            match feed.pipe.write(&feed.data[feed.written..]) {
                Ok(0) => break,
                Ok(n) => feed.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    log::debug!("exec: pid {} closed its stdin early", self.pid);
                    break;
                }
                Err(e) => {
                    log::warn!("exec: writing stdin of pid {}: {e}", self.pid);
                    break;
                }
            }
        }
        self.close_stdin();
    }

    fn close_stdin(&mut self) {
        if let Some(mut feed) = self.stdin.take() {
            deregister(self.poll.registry(), &mut feed.pipe);
        }
    }

    /// Gives up watching: kills the group, reaps the child (blocking — after
    /// SIGKILL that is short) and returns what was collected.
    fn abort(mut self, msg: String) -> Supervised {
        log::warn!("exec: {msg}; killing process group {}", self.pid);
        if self.status.is_none() {
            self.signal_group(GroupSignal::Kill);
            if let Err(e) = self.child.wait() {
                log::warn!("exec: cannot reap pid {}: {e}", self.pid);
            }
        }
        self.close_exit_source();
        Supervised {
            ended: Ended::Broken(msg),
            tail: self.tail,
            cpu_used: None,
        }
    }

    /// Reads what is already in the pipes, then reports.
    fn finish(mut self) -> Supervised {
        self.drain(STDOUT);
        self.drain(STDERR);
        let ended = match (self.kill.reason(), self.status) {
            (Some(Reason::TimedOut), _) => Ended::TimedOut,
            (Some(Reason::Cancelled), _) => Ended::Cancelled,
            (None, Some(status)) => Ended::Status(status),
            (None, None) => Ended::Broken("process status lost".into()),
        };
        Supervised {
            ended,
            tail: self.tail,
            cpu_used: self.cpu_used,
        }
    }
}

fn deregister(registry: &Registry, pipe: &mut Sender) {
    if let Err(e) = registry.deregister(pipe) {
        log::debug!("exec: deregistering stdin: {e}");
    }
}
