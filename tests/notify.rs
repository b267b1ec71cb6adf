//! sd_notify: the daemon reports to a fake `NOTIFY_SOCKET` that the test
//! binds, as systemd would under `Type=notify`.

use crate::util;

use rustix::process::Signal;
use serde_json::json;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Instant;
use util::{config, Daemon, WAIT};

/// The fake systemd end: collects notification datagrams.
struct FakeSystemd {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    address: String,
}

impl FakeSystemd {
    fn bind() -> FakeSystemd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        FakeSystemd {
            socket,
            address: path.display().to_string(),
            _dir: dir,
        }
    }

    /// Waits (bounded) for a datagram containing `needle`; returns it.
    fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no notification containing {needle:?}");
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
    }
}

#[test]
fn ready_reloading_and_stopping_are_sent() {
    let fake = FakeSystemd::bind();
    let mut d =
        Daemon::start_with_env(&config("", ""), &[("NOTIFY_SOCKET", fake.address.as_str())]);
    let ready = fake.expect("READY=1");
    assert!(
        ready.contains(&format!("MAINPID={}", d.child.id())),
        "{ready}"
    );
    // With the config generation, for a supervisor (ignored by systemd).
    assert!(ready.contains("X_TICKD_GENERATION=1"), "{ready}");
    // READY=1 came after the listener exists: a client gets in at once.
    let mut c = d.client();
    assert_eq!(c.ok("ping", json!({})), json!("pong"));

    d.signal(Signal::HUP);
    let reloading = fake.expect("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    assert_eq!(fake.expect("READY=1"), "READY=1\nX_TICKD_GENERATION=2");
    // The reload method goes through the same path.
    c.ok("reload", json!({}));
    fake.expect("RELOADING=1");
    fake.expect("READY=1");

    d.signal(Signal::TERM);
    fake.expect("STOPPING=1");
    let status = d.wait_exit(WAIT).expect("exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn watchdog_pings_repeatedly_on_an_abstract_socket() {
    let name = format!("tickd-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract");
    let fake = FakeSystemd {
        socket,
        _dir: tempfile::tempdir().expect("temp dir"),
        address: format!("@{name}"),
    };
    // 200 ms: a ping every 100 ms.
    let d = Daemon::start_with_env(
        &config("", ""),
        &[
            ("NOTIFY_SOCKET", fake.address.as_str()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    fake.expect("READY=1");
    for _ in 0..3 {
        assert_eq!(fake.expect("WATCHDOG=1"), "WATCHDOG=1");
    }
    d.log
        .wait_for("systemd watchdog: pinging every 100ms", 0, WAIT)
        .expect("logged");
}

#[test]
fn watchdog_for_another_pid_is_ignored() {
    let fake = FakeSystemd::bind();
    let d = Daemon::start_with_env(
        &config("", ""),
        &[
            ("NOTIFY_SOCKET", fake.address.as_str()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    fake.expect("READY=1");
    // Shutdown's STOPPING=1 comes next: no WATCHDOG=1 in between, although
    // a ping would be due every 100 ms.
    let status = d.client().ok("status", json!({}));
    assert_eq!(status["health"], json!("ok"));
    d.signal(Signal::TERM);
    let mut buf = [0u8; 256];
    fake.socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let n = fake.socket.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

/// A loop stuck in one turn (here: 1.5 s asleep in `accept`, through the
/// `server.accept` fail point) stops the pings, and they resume after.
#[cfg(feature = "failpoints")]
#[test]
fn a_stalled_event_loop_stops_the_watchdog_pings() {
    let fake = FakeSystemd::bind();
    let d = Daemon::start_with_env(
        &config("", ""),
        &[
            ("NOTIFY_SOCKET", fake.address.as_str()),
            ("WATCHDOG_USEC", "200000"),
            ("TICKD_DEBUG_HOOKS", "1"),
        ],
    );
    fake.expect("READY=1");
    fake.expect("WATCHDOG=1");
    let mut c = d.client();
    c.ok(
        "debug.failpoint",
        json!({"name": "server.accept", "actions": "1*sleep(1500)"}),
    );
    let from = d.log.len();
    // The next accept stalls the loop.
    let _stalling = std::net::TcpStream::connect(d.addr).expect("connect");
    d.log
        .wait_for(
            "systemd watchdog: not pinging (event loop turned: false",
            from,
            WAIT,
        )
        .expect("the stuck loop is noticed");
    // Once the loop moves again, so do the pings: drop what was queued
    // before, then a fresh one must come.
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    fake.socket.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    while fake.socket.recv(&mut buf).is_ok() {}
    fake.socket.set_nonblocking(false).expect("blocking");
    fake.expect("WATCHDOG=1");
}
