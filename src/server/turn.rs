//! The loop itself: the order of one turn, and the end of the loop.
//!
//! One turn, in this order: sleep in `poll` (the timeout, or the alarm, at
//! the earliest deadline of every part); react to what it reported
//! (accept, read and cut batches, write, signals); read again the
//! connections left over from their read budget; take the posted events
//! (answers of the request pool, finished and changed runs); resume
//! accepting after a backoff; fire the daemon's timers and the
//! connections' timers; take the events those posted; apply a change of
//! the token in force; hand the turn's batches to the request pool; and,
//! while shutting down, take one step of the shutdown.
//!
//! Before it sleeps the loop tells the workers so, then looks at both of
//! its channels once more (see [`crate::daemon::wake`]): a post on either
//! after that wakes it.

use super::accept::ListenerKind;
use super::limits::Limits;
use super::{Server, ALARM, LISTENER, SIGNALS, UNIX_LISTENER, WAKER};
use crate::daemon::counters::CloseCause;
use crate::daemon::LoopEvent;
use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};
use std::io;
use std::time::{Duration, Instant};

/// Exit code after the event loop's `poll` failed (EX_OSERR of sysexits).
pub const EXIT_POLL_FAILED: i32 = 71;
/// How long the loop keeps flushing answers after the last run has finished
/// during shutdown.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// One `poll`, behind the `server.poll` fail point (whose `return` action
/// fails it, to test that a failed poll ends the daemon with
/// [`EXIT_POLL_FAILED`]).
fn poll_events(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    fail::fail_point!("server.poll", |_| Err(io::Error::other(
        "injected poll failure"
    )));
    poll.poll(events, timeout)
}

/// How long one taking of the loop's posted events may last (it is done
/// twice a turn): see [`Server::drain_loop_events`].
const EVENTS_BUDGET: Duration = Duration::from_millis(5);

/// Whether anything waits on either of the loop's channels: asked after
/// the loop has said it is about to sleep (see [`crate::daemon::wake`]).
fn posts_waiting<A, B>(events: &Receiver<A>, answers: &Receiver<B>) -> bool {
    !events.is_empty() || !answers.is_empty()
}

impl Server {
    /// Runs until shutdown completes; returns the process exit code.
    pub fn run(mut self) -> i32 {
        crate::sys::mark_latency_sensitive();
        let mut events = Events::with_capacity(1024);
        let mut code = 0;
        loop {
            let mut timeout = self.poll_timeout();
            let (posted, answers) = (&self.events_rx, self.outbox.answers());
            if self
                .daemon
                .shared
                .loop_sleeping(|| posts_waiting(posted, answers))
            {
                timeout = Some(Duration::ZERO);
            }
            let polled = poll_events(&mut self.poll, &mut events, timeout);
            self.daemon.shared.loop_awake();
            self.reads.turn_started = Instant::now();
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed: {e}; shutting down (exit code {EXIT_POLL_FAILED})");
                code = EXIT_POLL_FAILED;
                self.daemon.begin_shutdown();
                // The events of a failed poll are stale; wait a little
                // rather than spin if poll keeps failing.
                events.clear();
                std::thread::sleep(Duration::from_millis(10));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(ListenerKind::Tcp),
                    UNIX_LISTENER => self.accept(ListenerKind::Unix),
                    WAKER => {} // events are drained below every turn
                    SIGNALS => self.on_signals(),
                    ALARM => self.alarm.on_fired(),
                    Token(key) => {
                        if event.is_read_closed() {
                            // The end-of-stream may have come with the
                            // data: read until it, past a short read.
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.incoming.peer_finished();
                            }
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.reads.again) {
                self.on_readable(key);
            }
            self.drain_loop_events();
            let now = Instant::now();
            if self.acceptor.take_due(now) {
                self.accept(ListenerKind::Tcp);
                self.accept(ListenerKind::Unix);
            }
            self.daemon.on_timers(now);
            self.expire_idle(now);
            self.drain_loop_events();
            self.answer_reloads();
            if self.limits.tokens != self.auth.in_force {
                self.on_auth_change();
            }
            self.submit_outbox();
            if self.daemon.stopping() && self.shutdown_step(now) {
                break;
            }
            self.commit_turn();
        }
        let conns = self.conns.len();
        if conns > 0 {
            log::info!("closing {conns} connection(s)");
        }
        if !self.outbox.shutdown(Duration::from_secs(1)) {
            log::warn!("some request threads did not stop in time");
        }
        self.daemon.stop_pool();
        log::info!("tickd stopped");
        code
    }

    /// How long the poll may sleep: until the earliest deadline of the
    /// daemon, the connections' timers, the shutdown and the accept
    /// backoff (through the alarm), or not at all if connections are left
    /// to read.
    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.reads.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadline = [
            self.daemon.next_deadline(),
            self.timers.next_deadline(),
            self.exit_at,
            self.acceptor.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        self.alarm.poll_timeout(deadline, Instant::now())
    }

    /// Takes the events posted to the loop: the daemon's, then the request
    /// pool's answers, and the daemon's again if applying answers posted
    /// some (a command that started a run), until both channels are empty
    /// or [`EVENTS_BUDGET`] has passed. What is left waits for the next
    /// turn, which does not sleep (the loop never sleeps with posts
    /// waiting): a herd's 100,000 runs finishing at once would otherwise
    /// keep the loop here, every client waiting, for as long as the
    /// workers keep posting.
    fn drain_loop_events(&mut self) {
        let started = Instant::now();
        let mut taken = 0u32;
        loop {
            while let Ok(event) = self.events_rx.try_recv() {
                match event {
                    LoopEvent::RunChanged(run) => self.broadcast(&run),
                    LoopEvent::Finished(run) => self.on_run_finished(&run),
                    LoopEvent::Journal(report) => self.on_journal(&report),
                    LoopEvent::Reload(prepared) => self.daemon.on_reload_prepared(prepared),
                    LoopEvent::Cluster(notice) => self.on_cluster(notice),
                    LoopEvent::Output(run) => self.on_output(run),
                }
                taken += 1;
                if taken.is_multiple_of(64) && started.elapsed() >= EVENTS_BUDGET {
                    return;
                }
            }
            if !self.drain_answers() || started.elapsed() >= EVENTS_BUDGET {
                break;
            }
        }
    }

    /// Takes the limits of the config in force after a reload ended
    /// (a `reload` command or `SIGHUP`), if it was accepted: the only
    /// place the server learns of a new config. A changed token is
    /// applied to the open connections at the end of the turn (see
    /// [`Server::on_auth_change`]).
    pub(super) fn after_reload(&mut self) {
        let generation = self.daemon.board().info.read().generation;
        if generation != self.limits_generation {
            self.limits_generation = generation;
            self.limits = Limits::from_live(&self.daemon.board().live.read());
        }
    }

    fn on_signals(&mut self) {
        let pending = self.signals.take();
        if pending.reload {
            log::info!("SIGHUP: reloading config");
            // Read off the loop and applied in slices; errors are logged
            // and kept in status by the reload itself.
            self.daemon.request_reload();
        }
        if pending.shutdown {
            log::info!("SIGTERM/SIGINT received");
            self.daemon.begin_shutdown();
        }
        if pending.reopen_logs {
            crate::logging::reopen();
        }
    }

    /// One step of shutdown; true when the loop may exit.
    fn shutdown_step(&mut self, now: Instant) -> bool {
        self.acceptor.stop(self.poll.registry());
        // Runs' ends still posted (a turn takes them for a bounded time)
        // are taken before the exit: their bookkeeping and answers too.
        if !self.daemon.drained() || !self.events_rx.is_empty() {
            return false;
        }
        self.answer_kept_waiters();
        self.end_follows();
        let exit_at = *self.exit_at.get_or_insert(now + FINAL_FLUSH);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.conns.get(key).is_some_and(|c| !c.has_pending()) {
                self.close(key, CloseCause::Shutdown);
            }
        }
        self.conns.is_empty() || now >= exit_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::wake::LoopWake;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// The loop's two channels under the wake-up protocol, as the loop
    /// uses them: a poster on each, each waiting for its post to be taken
    /// before the next, at random moments; a post on either channel that
    /// slips in between the loop's last look and its sleep must still
    /// wake it (a lost wake-up shows as a poll that runs into its
    /// generous timeout).
    #[test]
    fn no_post_on_either_channel_is_lost() {
        const WAKE: Token = Token(7);
        const POSTS: u64 = 5_000;
        let mut poll = Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).expect("waker"));
        let wake = Arc::new(LoopWake::new(waker));
        let mut events = Events::with_capacity(8);
        let (events_tx, events_rx) = crossbeam_channel::unbounded::<u64>();
        let (answers_tx, answers_rx) = crossbeam_channel::unbounded::<u64>();
        let taken = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let posters: Vec<_> = [events_tx, answers_tx]
            .into_iter()
            .zip(taken.iter().cloned())
            .enumerate()
            .map(|(n, (tx, taken))| {
                let wake = Arc::clone(&wake);
                std::thread::spawn(move || {
                    let mut rng = crate::rng::SplitMix64::from_seed(11 + n as u64);
                    for i in 0..POSTS {
                        for _ in 0..rng.below_u64(200) {
                            std::hint::spin_loop();
                        }
                        if tx.send(i).is_err() {
                            return;
                        }
                        wake.after_post();
                        while taken.load(Ordering::SeqCst) <= i {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut seen = [0u64; 2];
        while seen.iter().any(|&s| s < POSTS) {
            if !wake.sleeping(|| posts_waiting(&events_rx, &answers_rx)) {
                // As the loop's turn does: a signal meant for
                // another test's child interrupts the poll; poll again.
                loop {
                    match poll.poll(&mut events, Some(Duration::from_secs(10))) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => break r.expect("poll"),
                    }
                }
                assert!(
                    !events.is_empty(),
                    "slept 10 s with {seen:?} of {POSTS} events taken: a wake-up was lost"
                );
            }
            wake.awake();
            for (n, rx) in [&events_rx, &answers_rx].into_iter().enumerate() {
                while let Ok(i) = rx.try_recv() {
                    assert_eq!(i, seen[n], "events in order");
                    seen[n] += 1;
                    taken[n].store(seen[n], Ordering::SeqCst);
                }
            }
        }
        for p in posters {
            p.join().expect("poster");
        }
    }
}
