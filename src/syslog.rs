//! `daemon.syslog = true`: log records as RFC 3164 datagrams to the local
//! syslog socket (`/dev/log`).
//!
//! Hand-written rather than the `syslog` crate: all tickd needs is one
//! datagram per record in the format glibc's `syslog(3)` sends
//! (`<PRI>Mmm dd hh:mm:ss tickd[PID]: message`), which is a dozen lines over
//! std's `UnixDatagram`; the crate would add its own logger type, error
//! types and TCP/UDP transports that tickd does not use, and would sit
//! beside, not inside, the `env_logger` filtering tickd keeps.
//!
//! The socket is unconnected and each record is sent to the path, so a
//! syslog daemon that restarts (and recreates `/dev/log`) is picked up
//! without a reconnect. A record that cannot be sent is dropped: logging
//! must never block or stop the daemon. `TICKD_SYSLOG_SOCKET` overrides the
//! path (containers without `/dev/log`, and tests).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Facility `daemon` (3), as `syslog(3)`'s `LOG_DAEMON`.
const FACILITY_DAEMON: u8 = 3;

/// Longest message sent; longer ones are cut (syslog daemons cut anyway).
const MAX_MESSAGE: usize = 8 * 1024;

/// A sender of log records to the local syslog.
#[derive(Debug)]
pub struct Syslog {
    socket: Option<UnixDatagram>,
    path: PathBuf,
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
        Syslog {
            socket: UnixDatagram::unbound().ok(),
            path: socket_path(),
        }
    }

    /// Sends one record; failures are ignored (see the module doc).
    pub fn send(&self, level: log::Level, message: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        let line = format_record(level, message, &chrono::Local::now(), std::process::id());
        let _ = socket.send_to(line.as_bytes(), &self.path);
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

/// One RFC 3164 record: `<PRI>Mmm dd hh:mm:ss tickd[PID]: message`.
fn format_record(
    level: log::Level,
    message: &str,
    now: &chrono::DateTime<chrono::Local>,
    pid: u32,
) -> String {
    let pri = FACILITY_DAEMON * 8 + severity(level);
    let mut cut = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    // Newlines would end the record early in some syslog daemons.
    let text = message[..cut].replace('\n', " ");
    format!(
        "<{pri}>{} tickd[{pid}]: {text}",
        now.format("%b %e %H:%M:%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn record_format() {
        let when = chrono::Local
            .with_ymd_and_hms(2026, 3, 5, 7, 8, 9)
            .single()
            .expect("a plain local time");
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
    fn sends_to_a_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).expect("bind");
        let syslog = Syslog {
            socket: UnixDatagram::unbound().ok(),
            path,
        };
        syslog.send(log::Level::Info, "hello");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("recv");
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
        assert!(
            text.starts_with("<30>") && text.ends_with("]: hello"),
            "{text}"
        );
    }
}
