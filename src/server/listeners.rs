//! Binding the listeners: the TCP address (HTTP and JSON-RPC) and the
//! optional Unix socket (JSON-RPC, trusted clients).
//!
//! Each bound listener is logged as `listening on ADDR`, TCP first, at any
//! log level (see [`crate::logging::always`]); with `tls_cert` set the TCP
//! line adds `(TLS only, certificate PATH)`. A TCP
//! address that is not loopback, with no `auth_token`, gets a loud warning:
//! anyone who can reach it can run, cancel and reload jobs.
//!
//! The Unix socket file is created with `unix_socket_mode` from the start
//! (the umask is narrowed around `bind`, so no other mode is ever visible,
//! then the mode is set exactly). What may already be at its path:
//! - nothing: fine;
//! - a socket nobody listens on (connecting is refused): a stale file from
//!   a daemon that died; it is replaced;
//! - a socket someone listens on: another daemon; refused;
//! - anything else (a file, a directory, a symlink): refused, never deleted.
//!
//! The file is removed when [`UnixSocket`] is dropped at shutdown, but only
//! if it is still the one this process created, and only by the process
//! that bound it (a parent that forks to daemonize must not remove its
//! child's socket on the way out).

use crate::config::DaemonConfig;
use mio::net::{TcpListener, UnixListener};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The daemon's bound listeners.
#[derive(Debug, Default)]
pub struct Listeners {
    /// `daemon.listen`, unless it is `""`.
    pub tcp: Option<TcpListener>,
    /// `daemon.unix_socket`, if set.
    pub unix: Option<UnixSocket>,
}

/// A bound Unix socket that removes its file when dropped.
#[derive(Debug)]
pub struct UnixSocket {
    /// The listening socket.
    pub listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the file we created.
    identity: (u64, u64),
    /// The process that bound it.
    owner: u32,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let ours = std::process::id() == self.owner
            && std::fs::symlink_metadata(&self.path)
                .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            match std::fs::remove_file(&self.path) {
                Ok(()) => log::debug!("removed {}", self.path.display()),
                Err(e) => log::warn!("cannot remove {}: {e}", self.path.display()),
            }
        }
    }
}

/// Binds every configured listener and logs where it listens. The error
/// names the listener; the caller exits with code 2.
pub fn bind(d: &DaemonConfig) -> Result<Listeners, String> {
    let mut out = Listeners::default();
    if let Some(addr) = &d.start.listen {
        let listener = bind_tcp(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        out.tcp = Some(listener);
    }
    if let Some(path) = &d.start.unix_socket {
        let socket = bind_unix(path, d.start.unix_socket_mode)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        out.unix = Some(socket);
    }
    // Logged once everything is bound: whoever waits for the first
    // "listening on" line finds every listener ready.
    match out.tcp.as_ref().map(TcpListener::local_addr) {
        Some(Ok(a)) => {
            // At any log level: with port 0 this is where the port shows.
            match &d.live.tls {
                Some(tls) => crate::logging::always(
                    module_path!(),
                    format_args!(
                        "listening on {a} (TLS only, certificate {})",
                        tls.cert_path.display()
                    ),
                ),
                None => crate::logging::always(module_path!(), format_args!("listening on {a}")),
            }
            if !a.ip().is_loopback() && !d.live.tokens.auth_on() {
                log::warn!(
                    "SECURITY: listening on non-loopback address {a} without auth_token: \
                     anyone who can reach it can run, cancel and reload jobs and shut the \
                     daemon down; set daemon.auth_token (or auth_token_file) or add [[tokens]], \
                     or listen on 127.0.0.1"
                );
            }
        }
        Some(Err(e)) => log::warn!("listening, but the bound address is unknown: {e}"),
        None => log::warn!("daemon.listen is empty: no TCP listener"),
    }
    if let Some(path) = &d.start.unix_socket {
        crate::logging::always(
            module_path!(),
            format_args!(
                "listening on {} (mode {:04o})",
                path.display(),
                d.start.unix_socket_mode
            ),
        );
    }
    Ok(out)
}

/// Binds the first address `addr` resolves to that accepts a bind.
pub fn bind_tcp(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    for a in addrs {
        match TcpListener::bind(a) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
    }))
}

/// Binds the Unix socket at `path` with `mode`, replacing only a stale socket.
pub fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixSocket> {
    clear_stale(path)?;
    let mask = rustix::fs::Mode::from_bits_truncate(0o777 & !mode);
    let old = rustix::process::umask(mask);
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let meta = std::fs::symlink_metadata(path)?;
    Ok(UnixSocket {
        listener,
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
        owner: std::process::id(),
    })
}

/// Removes a stale socket at `path`; refuses anything else found there.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; refusing to replace it",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening on this socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("a socket exists here and cannot be checked: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_socket_is_replaced_and_others_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sock");
        let first = bind_unix(&path, 0o600).expect("bind");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Live: refused.
        let err = bind_unix(&path, 0o600).expect_err("live socket");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // Stale: a socket file nobody listens on.
        let stale =
            std::os::unix::net::UnixListener::bind(dir.path().join("s.sock")).expect("std bind");
        drop(stale);
        let replaced = bind_unix(&dir.path().join("s.sock"), 0o660).expect("stale replaced");
        drop(replaced);
        assert!(!dir.path().join("s.sock").exists(), "removed on drop");
        // A regular file: refused and kept.
        let file = dir.path().join("f");
        std::fs::write(&file, "keep").expect("write");
        assert!(bind_unix(&file, 0o600).is_err());
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
        drop(first);
        assert!(!path.exists());
    }
}
