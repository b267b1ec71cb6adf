//! Signals, turned into events for the event loop.
//!
//! A signal handler may do almost nothing safely, so tickd's handlers (from
//! `signal-hook`) only set a flag and write a byte into a socket pair whose
//! read end the event loop polls. The loop drains the socket first and then
//! reads the flags, so a signal arriving in between is never lost (at worst
//! the loop wakes once for nothing). Reload, shutdown and log reopening all
//! happen on the loop thread, never in a handler.

use mio::net::UnixStream;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::io::{self, Read};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the operator asked for since the last check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// SIGHUP: reload the config.
    pub reload: bool,
    /// SIGTERM or SIGINT: drain and exit.
    pub shutdown: bool,
    /// SIGUSR1: reopen the log file.
    pub reopen_logs: bool,
}

/// The read end of the signal socket plus the flags the handlers set.
pub struct Signals {
    /// Registered with the poll; readable after any handled signal.
    pub receiver: UnixStream,
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl Signals {
    /// Installs handlers for SIGHUP, SIGTERM, SIGINT and SIGUSR1.
    pub fn install() -> io::Result<Signals> {
        let (rx, tx) = StdUnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        for (sig, flag) in [
            (SIGHUP, &hup),
            (SIGTERM, &term),
            (SIGINT, &term),
            (SIGUSR1, &usr1),
        ] {
            // The flag first, then the byte: the loop reads in the reverse order.
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(Signals {
            receiver: UnixStream::from_std(rx),
            hup,
            term,
            usr1,
        })
    }

    /// Empties the socket, then takes the flags.
    pub fn take(&mut self) -> Pending {
        let mut buf = [0u8; 64];
        loop {
            match self.receiver.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: drained
            }
        }
        Pending {
            reload: self.hup.swap(false, Ordering::SeqCst),
            shutdown: self.term.swap(false, Ordering::SeqCst),
            reopen_logs: self.usr1.swap(false, Ordering::SeqCst),
        }
    }
}
