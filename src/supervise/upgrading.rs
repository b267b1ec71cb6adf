//! The supervisor's half of an in-place upgrade (`SIGUSR2`, see
//! [`crate::upgrade`]): the new daemon is started beside the old one with
//! the upgrade's pipes; once it confirms, the old one drains (SIGTERM);
//! when that one has exited, the new one goes on and becomes the child the
//! supervisor watches. A new daemon that ends first leaves the old one
//! serving; an old one that ends first (a crash) abandons the upgrade.

use std::io::{self, Read};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::Interest;

use super::{child, State, Supervisor, SUCCESSOR};

impl Supervisor {
    /// SIGUSR2 and the upgrade's confirmation: starts the new daemon with
    /// the upgrade's pipes; once it confirms, asks the old one to drain
    /// (SIGTERM); if it ends first, logs why and keeps the old one.
    pub(super) fn upgrade_step(&mut self, state: &mut State) {
        if self.flags.usr2.swap(false, Ordering::SeqCst) {
            let old = match (&*state, self.successor.is_some()) {
                _ if self.stopping => {
                    log::warn!("supervisor: SIGUSR2 ignored: stopping");
                    None
                }
                (_, true) => {
                    log::warn!("supervisor: SIGUSR2 ignored: an upgrade is under way");
                    None
                }
                (State::Waiting(_), false) => {
                    log::info!(
                        "supervisor: SIGUSR2: the daemon is down; its next start runs {} anyway",
                        self.program.display()
                    );
                    None
                }
                (State::Running { child, .. }, false) => Some(child.id()),
            };
            if let Some(old) = old {
                self.start_successor(old);
            }
        }
        let Some((next, confirmed)) = &mut self.successor else {
            return;
        };
        if *confirmed {
            return;
        }
        if self.successor_deadline.is_some_and(|d| Instant::now() >= d) {
            log::error!(
                "supervisor: upgrade failed: the new daemon (pid {}) did not confirm within {} ms \
                 and was killed; the old one keeps serving",
                next.child.id(),
                crate::upgrade::confirm_within().as_millis()
            );
            self.drop_successor();
            return;
        }
        let mut buf = [0u8; 16];
        let got = match (&next.confirmed).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        let pid = next.child.id();
        if got > 0 && buf.starts_with(b"ok") {
            *confirmed = true;
            self.successor_deadline = None;
            if let State::Running { child, .. } = state {
                log::info!(
                    "supervisor: upgrade: the new daemon (pid {pid}) checked its config and listeners; \
                     draining the old one (pid {}) as on SIGTERM",
                    child.id()
                );
                signal(child, rustix::process::Signal::TERM);
            }
            return;
        }
        let how = match next.child.wait() {
            Ok(status) => child::describe(status),
            Err(e) => format!("could not be waited for: {e}"),
        };
        log::error!(
            "supervisor: upgrade failed: the new daemon (pid {pid}) {how} before it was ready to take over \
             (its reason is logged above); the old one keeps serving"
        );
        self.drop_successor();
    }

    pub(super) fn start_successor(&mut self, old: u32) {
        log::info!(
            "supervisor: SIGUSR2: upgrade: starting {} beside the daemon (pid {old})",
            self.program.display()
        );
        let launch = child::Launch {
            program: &self.program,
            config: &self.config,
            pidfile: None,
            fds: self.fds(),
            handoff: None,
            supervisor: Some((&self.notify_name, self.count)),
            generation: self.generation,
        };
        let next = match crate::upgrade::start(&launch) {
            Ok(n) => n,
            Err(e) => {
                log::error!("supervisor: upgrade failed: cannot start the new daemon: {e}");
                return;
            }
        };
        let registered = rustix::io::ioctl_fionbio(&next.confirmed, true)
            .map_err(io::Error::from)
            .and_then(|()| {
                self.poll.registry().register(
                    &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&next.confirmed)),
                    SUCCESSOR,
                    Interest::READABLE,
                )
            });
        if let Err(e) = registered {
            log::warn!("supervisor: upgrade: cannot watch the new daemon: {e}");
        }
        self.successor = Some((next, false));
        self.successor_deadline = Some(Instant::now() + crate::upgrade::confirm_within());
    }

    /// Forgets the successor (it has ended, or is killed here first).
    pub(super) fn drop_successor(&mut self) {
        self.successor_deadline = None;
        if let Some((mut next, _)) = self.successor.take() {
            let _ = self.poll.registry().deregister(&mut mio::unix::SourceFd(
                &std::os::fd::AsRawFd::as_raw_fd(&next.confirmed),
            ));
            if matches!(next.child.try_wait(), Ok(None)) {
                let _ = next.child.kill();
                let _ = next.child.wait();
            }
        }
    }

    /// The old daemon `pid` ended with `status` during an upgrade: the new
    /// one takes over if it had confirmed (the state it runs in); if not,
    /// it is stopped and the old one's end handled as usual.
    pub(super) fn take_over(
        &mut self,
        pid: u32,
        status: std::process::ExitStatus,
    ) -> Option<State> {
        match &self.successor {
            None => return None,
            Some((_, false)) => {
                log::warn!("supervisor: upgrade abandoned: the old daemon ended first");
                self.drop_successor();
                return None;
            }
            Some((_, true)) => {}
        }
        let (next, _) = self.successor.take()?;
        let _ = self.poll.registry().deregister(&mut mio::unix::SourceFd(
            &std::os::fd::AsRawFd::as_raw_fd(&next.confirmed),
        ));
        log::info!(
            "supervisor: upgrade: the old daemon (pid {pid}) {}; the new one (pid {}) takes over",
            child::describe(status),
            next.child.id()
        );
        // Closing the write end lets the new daemon take the locks.
        drop(next.go);
        Some(State::Running {
            child: next.child,
            started: Instant::now(),
            ready: false,
        })
    }
}

/// Sends `sig` to `child`, logging a failure.
fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    if let Err(e) = rustix::process::kill_process(pid, sig) {
        log::warn!("supervisor: cannot send {sig:?} to pid {pid:?}: {e}");
    }
}
