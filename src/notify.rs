//! systemd's `sd_notify` protocol, hand-written over a std `UnixDatagram`:
//! `READY=1` once listening, `RELOADING=1` … `READY=1` around a reload,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` while healthy.
//!
//! Under `Type=notify` systemd passes a datagram socket in `NOTIFY_SOCKET`
//! (a path, or `@name` for an abstract socket) and, with `WatchdogSec=`, the
//! interval in `WATCHDOG_USEC` (for the pid in `WATCHDOG_PID`, when set).
//! Without `NOTIFY_SOCKET` every function here does nothing.
//!
//! The watchdog must prove more than "a thread is alive": it pings only if
//! the event loop has turned since the last ping and enough workers live.
//! [`Watchdog::check`] runs on the job pool's monitor thread every half
//! interval: it looks at the loop's turn counter ([`loop_turned`], bumped by
//! the loop every turn), pings if it moved, then wakes the loop so that a
//! healthy loop turns before the next check. An idle daemon therefore turns
//! twice per interval, and not at all when `WATCHDOG_USEC` is unset.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Turns of the event loop since start.
static LOOP_TURNS: AtomicU64 = AtomicU64::new(0);

/// The socket from `NOTIFY_SOCKET`, read once.
static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier named by `NOTIFY_SOCKET`, if set and usable.
    fn from_env() -> Option<Notifier> {
        let value = std::env::var("NOTIFY_SOCKET").ok()?;
        match Notifier::to(&value) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={value}: {e}; not notifying systemd");
                None
            }
        }
    }

    /// A notifier for a socket path, or `@name` for an abstract socket.
    pub fn to(address: &str) -> std::io::Result<Notifier> {
        let addr = match address.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None if address.starts_with('/') => SocketAddr::from_pathname(address)?,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "expected an absolute path or @name",
                ))
            }
        };
        // Non-blocking: a stalled systemd must not stop the thread that
        // notifies (the loop, or the monitor's watchdog check); a
        // notification that cannot be queued is logged and lost.
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, addr })
    }

    /// Sends one notification (`KEY=VALUE` lines).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            log::warn!("sd_notify {state:?}: {e}");
        }
    }
}

/// Reads `NOTIFY_SOCKET`; call once early. Later calls do nothing.
pub fn init() {
    NOTIFIER.get_or_init(Notifier::from_env);
}

fn send(state: &str) {
    if let Some(n) = NOTIFIER.get_or_init(Notifier::from_env) {
        n.send(state);
    }
}

/// `READY=1`: the daemon is listening. Carries the pid, which systemd needs
/// when the notifying process is not the one it started, and, with
/// `generation`, the config generation in force (`X_TICKD_GENERATION=N`,
/// also after each accepted reload: see [`ReloadGuard::set_generation`]).
/// systemd ignores that variable; a supervisor (`tickd run --supervise`)
/// keeps it, to pass it on to the daemon that replaces this one in an
/// upgrade.
pub fn ready(generation: Option<u64>) {
    let pid = std::process::id();
    match generation {
        Some(g) => send(&format!("READY=1\nMAINPID={pid}\nX_TICKD_GENERATION={g}")),
        None => send(&format!("READY=1\nMAINPID={pid}")),
    }
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send("STOPPING=1");
}

/// `RELOADING=1` now, `READY=1` when the returned guard is dropped (at the
/// end of the reload, whichever way it ends).
pub fn reloading() -> ReloadGuard {
    send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    ReloadGuard { generation: None }
}

/// Sends `READY=1` when dropped; see [`reloading`].
#[must_use = "READY=1 is sent when the guard is dropped"]
pub struct ReloadGuard {
    generation: Option<u64>,
}

impl ReloadGuard {
    /// The reload was accepted: its `READY=1` carries the new generation.
    pub fn set_generation(&mut self, generation: u64) {
        self.generation = Some(generation);
    }
}

impl Drop for ReloadGuard {
    fn drop(&mut self) {
        match self.generation {
            Some(g) => send(&format!("READY=1\nX_TICKD_GENERATION={g}")),
            None => send("READY=1"),
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd wants with `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1000
}

/// Called by the event loop once per turn: the watchdog's proof of life.
pub fn loop_turned() {
    LOOP_TURNS.fetch_add(1, Ordering::Relaxed);
}

/// The watchdog pinger, run by the job pool's monitor.
pub struct Watchdog {
    period: Duration,
    /// The loop's turn counter ([`LOOP_TURNS`]; another one in tests).
    turns: &'static AtomicU64,
    seen_turns: u64,
    waker: Arc<mio::Waker>,
    min_workers: usize,
}

impl Watchdog {
    /// A watchdog when systemd asked for one (`WATCHDOG_USEC` set, and
    /// `WATCHDOG_PID`, if set, is this process), else `None`.
    pub fn from_env(waker: Arc<mio::Waker>, min_workers: usize) -> Option<Watchdog> {
        NOTIFIER.get_or_init(Notifier::from_env).as_ref()?;
        let usec = std::env::var("WATCHDOG_USEC").ok()?.parse::<u64>().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.trim() != std::process::id().to_string() {
                return None;
            }
        }
        let period = Duration::from_micros(usec) / 2;
        if period.is_zero() {
            return None;
        }
        log::info!(
            "systemd watchdog: pinging every {}",
            humantime::format_duration(period)
        );
        Some(Watchdog {
            period,
            turns: &LOOP_TURNS,
            seen_turns: LOOP_TURNS.load(Ordering::Relaxed),
            waker,
            min_workers,
        })
    }

    /// How often [`Watchdog::check`] must run: half systemd's interval.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Pings if the loop turned since the last check and at least
    /// `min_workers` (and at least one) workers are alive; then wakes the
    /// loop for the next check. Returns whether it pinged.
    pub fn check(&mut self, alive_workers: usize) -> bool {
        let turns = self.turns.load(Ordering::Relaxed);
        let loop_alive = turns != self.seen_turns;
        self.seen_turns = turns;
        let workers_ok = alive_workers >= self.min_workers.max(1);
        if loop_alive && workers_ok {
            send("WATCHDOG=1");
        } else {
            log::warn!(
                "systemd watchdog: not pinging (event loop turned: {loop_alive}, workers alive: {alive_workers})"
            );
        }
        if let Err(e) = self.waker.wake() {
            log::warn!("systemd watchdog: cannot wake the event loop: {e}");
        }
        loop_alive && workers_ok
    }
}

impl crate::pool::Watch for Watchdog {
    fn period(&self) -> Duration {
        Watchdog::period(self)
    }
    fn check(&mut self, alive_workers: usize) {
        Watchdog::check(self, alive_workers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_addresses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::to(path.to_str().expect("utf-8 path")).expect("notifier");
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");

        let name = format!("tickd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::to(&format!("@{name}"))
            .expect("notifier")
            .send("STOPPING=1");
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"STOPPING=1");

        assert!(Notifier::to("relative/path").is_err());
    }

    #[test]
    fn watchdog_pings_only_for_a_turning_loop_and_enough_workers() {
        static TURNS: AtomicU64 = AtomicU64::new(0);
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let mut dog = Watchdog {
            period: Duration::from_millis(100),
            turns: &TURNS,
            seen_turns: 0,
            waker,
            min_workers: 2,
        };
        assert!(!dog.check(4), "the loop has not turned yet");
        TURNS.fetch_add(1, Ordering::Relaxed);
        assert!(dog.check(2));
        assert!(!dog.check(2), "a stuck loop is not pinged for");
        TURNS.fetch_add(1, Ordering::Relaxed);
        assert!(!dog.check(1), "fewer than min_workers alive");
        TURNS.fetch_add(1, Ordering::Relaxed);
        dog.min_workers = 0;
        assert!(!dog.check(0), "at least one worker must live");
    }

    #[test]
    fn monotonic_clock_moves() {
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
