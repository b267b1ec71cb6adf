//! `daemon.syslog = true`: log records as RFC 3164 datagrams to the local
//! syslog socket (`/dev/log`).
//!
//! Hand-written, formatting included, rather than the `syslog` crate
//! (7.0.0, checked for this): all tickd needs is one datagram per record
//! in the format glibc's `syslog(3)` sends
//! (`<PRI>Mmm dd hh:mm:ss tickd[PID]: message`), a dozen lines over std's
//! `UnixDatagram`. The crate's transports are blocking sockets, so only its
//! `Formatter3164::format` could be used, and that one is wrong for us: on
//! Unix it stamps records with UTC time, while RFC 3164 timestamps are local
//! time without a zone (rsyslog and journald would file every line hours
//! off on a host not on UTC); it pads the day with a zero (`Mar 05`) where
//! RFC 3164 and glibc use a space (`Mar  5`); it parses its format string
//! and `unwrap`s on every record; and it neither cuts long messages nor
//! removes newlines, which tickd must do anyway. It would also add the
//! `time` and `hostname` crates beside `jiff`, which tickd already has (and
//! which reads the local zone from `TZ` or `/etc/localtime`).
//!
//! The socket is unconnected and each record is sent to the path, so a
//! syslog daemon that restarts (and recreates `/dev/log`) is picked up
//! without a reconnect. The socket is non-blocking: a syslog daemon that
//! stalls fills the socket's queue, and a blocking send would then stop
//! every thread that logs — the event loop included, until the watchdog
//! kills tickd. So a record that cannot be sent at once is dropped and
//! counted, and the next record that gets through is preceded by one that
//! says how many were lost. `TICKD_SYSLOG_SOCKET` overrides the path
//! (containers without `/dev/log`, and tests).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Facility `daemon` (3), as `syslog(3)`'s `LOG_DAEMON`.
const FACILITY_DAEMON: u8 = 3;

/// Longest message sent; longer ones are cut (syslog daemons cut anyway).
const MAX_MESSAGE: usize = 8 * 1024;

/// A sender of log records to the local syslog.
#[derive(Debug)]
pub struct Syslog {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    /// Records dropped since the last one that got through.
    dropped: AtomicU64,
}

/// The syslog socket path: `TICKD_SYSLOG_SOCKET`, or `/dev/log`.
pub fn socket_path() -> PathBuf {
    std::env::var_os("TICKD_SYSLOG_SOCKET")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from)
}

/// Warns (through the logger, so to the other outputs) when the syslog
/// socket does not exist at start.
pub fn check_socket() {
    let path = socket_path();
    if !path.exists() {
        log::warn!(
            "daemon.syslog: {} does not exist; records are dropped until a syslog daemon creates it",
            path.display()
        );
    }
}

impl Syslog {
    /// A sender to [`socket_path`].
    pub fn new() -> Syslog {
        Syslog::to(socket_path())
    }

    /// A sender to the socket at `path`.
    fn to(path: PathBuf) -> Syslog {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .ok();
        Syslog {
            socket,
            path,
            dropped: AtomicU64::new(0),
        }
    }

    /// Sends one record without ever waiting; a record that cannot be sent
    /// is dropped and counted (see the module doc).
    pub fn send(&self, level: log::Level, message: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        // The system clock in the local zone (not the daemon's wall clock:
        // a `debug.clock_jump` does not move log lines).
        let now = jiff::tz::TimeZone::system().to_datetime(jiff::Timestamp::now());
        let pid = std::process::id();
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "{dropped} log record(s) not sent to syslog: its socket was full or missing"
            );
            let line = format_record(log::Level::Warn, &note, &now, pid);
            if socket.send_to(line.as_bytes(), &self.path).is_err() {
                self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
                return;
            }
        }
        let line = format_record(level, message, &now, pid);
        if socket.send_to(line.as_bytes(), &self.path).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for Syslog {
    fn default() -> Self {
        Syslog::new()
    }
}

/// The syslog severity of a `log` level.
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// The English month abbreviations RFC 3164 uses, whatever the locale.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One RFC 3164 record: `<PRI>Mmm dd hh:mm:ss tickd[PID]: message`, `now`
/// being local time; the day is padded with a space (`Mar  5`).
fn format_record(
    level: log::Level,
    message: &str,
    now: &jiff::civil::DateTime,
    pid: u32,
) -> String {
    let pri = FACILITY_DAEMON * 8 + severity(level);
    let mut cut = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    // Newlines would end the record early in some syslog daemons.
    let text = message[..cut].replace('\n', " ");
    let month = MONTHS[usize::from(now.month().unsigned_abs()).saturating_sub(1) % 12];
    format!(
        "<{pri}>{month} {:>2} {:02}:{:02}:{:02} tickd[{pid}]: {text}",
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        let when = jiff::civil::datetime(2026, 3, 5, 7, 8, 9, 0);
        assert_eq!(
            format_record(log::Level::Warn, "a\nb", &when, 42),
            "<28>Mar  5 07:08:09 tickd[42]: a b"
        );
        assert!(format_record(log::Level::Error, "x", &when, 1).starts_with("<27>"));
        assert!(format_record(log::Level::Info, "x", &when, 1).starts_with("<30>"));
        let long = "é".repeat(MAX_MESSAGE);
        assert!(format_record(log::Level::Debug, &long, &when, 1).len() < MAX_MESSAGE + 64);
    }

    #[test]
    fn timestamps_as_chrono_wrote_them() {
        // `format("%b %e %H:%M:%S")` of chrono 0.4.45, the build before jiff.
        let chrono = [
            ((2026, 3, 5, 7, 8, 9), "Mar  5 07:08:09"),
            ((2026, 12, 25, 23, 59, 59), "Dec 25 23:59:59"),
            ((2024, 2, 29, 0, 0, 0), "Feb 29 00:00:00"),
            ((2025, 1, 10, 12, 30, 5), "Jan 10 12:30:05"),
            ((2027, 6, 1, 1, 2, 3), "Jun  1 01:02:03"),
            ((2028, 9, 30, 13, 4, 5), "Sep 30 13:04:05"),
            ((2026, 11, 15, 10, 0, 0), "Nov 15 10:00:00"),
        ];
        for ((y, mo, d, h, mi, s), want) in chrono {
            let when = jiff::civil::datetime(y, mo, d, h, mi, s, 0);
            let line = format_record(log::Level::Info, "m", &when, 7);
            assert_eq!(line, format!("<30>{want} tickd[7]: m"));
        }
    }

    #[test]
    fn sends_to_a_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).expect("bind");
        let syslog = Syslog::to(path);
        syslog.send(log::Level::Info, "hello");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("recv");
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
        assert!(
            text.starts_with("<30>") && text.ends_with("]: hello"),
            "{text}"
        );
    }

    #[test]
    fn a_full_socket_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let syslog = Syslog::to(path);
        // Far more than the receive queue holds (net.unix.max_dgram_qlen,
        // 10 by default): a blocking send would hang this test.
        for i in 0..2000 {
            syslog.send(log::Level::Info, &format!("record {i}"));
        }
        let lost = syslog.dropped();
        assert!(lost > 0, "the queue never filled");
        let mut buf = [0u8; 512];
        let mut received = 0;
        while server.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(received + lost, 2000);
        // The next record that gets through is preceded by the count.
        syslog.send(log::Level::Info, "after");
        let n = server.recv(&mut buf).expect("the note");
        let note = std::str::from_utf8(&buf[..n]).expect("utf-8");
        assert!(
            note.starts_with("<28>") && note.contains(&format!("{lost} log record(s) not sent")),
            "{note}"
        );
        let n = server.recv(&mut buf).expect("the record");
        assert!(std::str::from_utf8(&buf[..n])
            .expect("utf-8")
            .ends_with("after"));
        assert_eq!(syslog.dropped(), 0);
    }
}
