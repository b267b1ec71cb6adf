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
//!
//! **Inherited sockets** (socket activation, see [`crate::activation`]) are
//! used instead of binding. Each one is matched to a key: by its name
//! (`listen`, `unix_socket`) when `LISTEN_FDNAMES` gives one of those, else
//! by its kind (TCP: `listen`; Unix: `unix_socket`). Its address must then
//! be the one the key names: for TCP an address `listen` resolves to (port
//! 0 in `listen` accepts any port), for Unix the same path (or the same
//! file). Anything else fails the start, naming the fd, what it listens on
//! and the key: a socket for a key that is empty, two sockets for one key,
//! a named socket of the wrong kind, an address that differs. A configured
//! key with no inherited socket is bound here as usual. An inherited Unix
//! socket is left as its creator made it: its mode is not changed, and its
//! file is not removed at exit (the socket unit, or the supervisor, owns
//! it and keeps listening on it across restarts).

use crate::activation::{Inherited, Kind, NAME_LISTEN, NAME_UNIX};
use crate::config::DaemonConfig;
use mio::net::{TcpListener, UnixListener};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Set once the listeners were handed to a new process (an in-place
/// upgrade): the Unix socket's file is then the new process's.
static HANDED_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the listeners as handed over: this process no longer removes
/// the Unix socket's file (see [`crate::upgrade`]).
pub fn handed_over() {
    HANDED_OVER.store(true, std::sync::atomic::Ordering::SeqCst);
}

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
    /// Inherited (socket activation): never removed by this process.
    inherited: bool,
}

impl Listeners {
    /// Duplicates of the listening sockets (close-on-exec), with their
    /// socket-activation names, to pass to another process.
    pub fn duplicates(&self) -> io::Result<Vec<(std::os::fd::OwnedFd, &'static str)>> {
        use std::os::fd::AsFd;
        let mut out = Vec::new();
        if let Some(l) = &self.tcp {
            out.push((l.as_fd().try_clone_to_owned()?, NAME_LISTEN));
        }
        if let Some(u) = &self.unix {
            out.push((u.listener.as_fd().try_clone_to_owned()?, NAME_UNIX));
        }
        Ok(out)
    }
}

impl UnixSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it was inherited rather than bound here.
    pub fn inherited(&self) -> bool {
        self.inherited
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let ours = !self.inherited
            && !HANDED_OVER.load(std::sync::atomic::Ordering::SeqCst)
            && std::process::id() == self.owner
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

/// Binds every configured listener, or takes it from `inherited` (socket
/// activation), and logs where it listens. The error names the listener
/// (or the inherited socket that does not fit); the caller exits with code 2.
pub fn bind(d: &DaemonConfig, inherited: Vec<Inherited>) -> Result<Listeners, String> {
    let (tcp_in, unix_in) = assign(d, inherited)?;
    let mut out = Listeners::default();
    let mut tcp_from = String::new();
    if let Some(addr) = &d.start.listen {
        let listener = match tcp_in {
            Some(s) => {
                tcp_from = format!(" (inherited fd {})", s.number);
                take_tcp(s.fd).map_err(|e| format!("inherited fd {}: {e}", s.number))?
            }
            None => bind_tcp(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        };
        out.tcp = Some(listener);
    }
    let mut unix_from = String::new();
    if let Some(path) = &d.start.unix_socket {
        let socket = match unix_in {
            Some(s) => {
                let socket =
                    take_unix(s.fd, path).map_err(|e| format!("inherited fd {}: {e}", s.number))?;
                unix_from = format!("inherited fd {}", s.number);
                socket
            }
            None => bind_unix(path, d.start.unix_socket_mode)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?,
        };
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
                        "listening on {a}{tcp_from} (TLS only, certificate {})",
                        tls.cert_path.display()
                    ),
                ),
                None => crate::logging::always(
                    module_path!(),
                    format_args!("listening on {a}{tcp_from}"),
                ),
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
        let mode = if unix_from.is_empty() {
            d.start.unix_socket_mode
        } else {
            // As the socket's creator made it (SocketMode= of a socket unit).
            std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
        };
        let from = if unix_from.is_empty() {
            String::new()
        } else {
            format!(", {unix_from}")
        };
        crate::logging::always(
            module_path!(),
            format_args!("listening on {} (mode {mode:04o}{from})", path.display()),
        );
    }
    Ok(out)
}

/// Matches inherited sockets to `listen` and `unix_socket` (see the module
/// doc): the TCP one and the Unix one, each checked against its key.
fn assign(
    d: &DaemonConfig,
    inherited: Vec<Inherited>,
) -> Result<(Option<Inherited>, Option<Inherited>), String> {
    let mut tcp: Option<Inherited> = None;
    let mut unix: Option<Inherited> = None;
    for s in inherited {
        let for_tcp = match (s.name.as_deref(), &s.kind) {
            (Some(NAME_LISTEN), Kind::Unix(_)) | (Some(NAME_UNIX), Kind::Tcp(_)) => {
                let key = s.name.as_deref().unwrap_or_default();
                return Err(format!(
                    "{} is named {key:?}, but daemon.{key} is a {} socket",
                    s.describe(),
                    if key == NAME_LISTEN { "TCP" } else { "Unix" }
                ));
            }
            (_, Kind::Tcp(_)) => true,
            (_, Kind::Unix(_)) => false,
        };
        let key = if for_tcp { NAME_LISTEN } else { NAME_UNIX };
        let slot = if for_tcp { &mut tcp } else { &mut unix };
        if let Some(first) = slot {
            return Err(format!(
                "two inherited sockets for daemon.{key}: {} and {}; tickd has one TCP and one Unix listener",
                first.describe(),
                s.describe()
            ));
        }
        match &s.kind {
            Kind::Tcp(a) => match &d.start.listen {
                None => {
                    return Err(format!(
                        "{}, but daemon.listen is \"\" (no TCP listener): set it to that address, or remove the socket from what starts tickd",
                        s.describe()
                    ))
                }
                Some(addr) if !tcp_matches(addr, *a) => {
                    return Err(format!(
                        "{} does not match daemon.listen = {addr:?}: the socket unit (ListenStream=) and the config must name the same address",
                        s.describe()
                    ))
                }
                Some(_) => {}
            },
            Kind::Unix(p) => match &d.start.unix_socket {
                None => {
                    return Err(format!(
                        "{}, but daemon.unix_socket is not set: set it to that path, or remove the socket from what starts tickd",
                        s.describe()
                    ))
                }
                Some(path) if !unix_matches(path, p) => {
                    return Err(format!(
                        "{} does not match daemon.unix_socket = {:?}: the socket unit (ListenStream=) and the config must name the same path",
                        s.describe(),
                        path.display().to_string()
                    ))
                }
                Some(_) => {}
            },
        }
        *slot = Some(s);
    }
    Ok((tcp, unix))
}

/// Whether a socket bound to `actual` is what `listen = "configured"`
/// asks for: one of the addresses it resolves to, port 0 matching any.
fn tcp_matches(configured: &str, actual: SocketAddr) -> bool {
    let Ok(addrs) = configured.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| a.ip() == actual.ip() && (a.port() == 0 || a.port() == actual.port()))
}

/// Whether the socket at `actual` is the configured path: the same path,
/// or the same file.
fn unix_matches(configured: &Path, actual: &Path) -> bool {
    if configured == actual {
        return true;
    }
    match (std::fs::metadata(configured), std::fs::metadata(actual)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// An inherited TCP listener, made non-blocking for the loop.
fn take_tcp(fd: std::os::fd::OwnedFd) -> io::Result<TcpListener> {
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std))
}

/// An inherited Unix listener at `path`, never removed by this process.
fn take_unix(fd: std::os::fd::OwnedFd, path: &Path) -> io::Result<UnixSocket> {
    let std = std::os::unix::net::UnixListener::from(fd);
    std.set_nonblocking(true)?;
    let identity = std::fs::symlink_metadata(path).map_or((0, 0), |m| (m.dev(), m.ino()));
    Ok(UnixSocket {
        listener: UnixListener::from_std(std),
        path: path.to_path_buf(),
        identity,
        owner: std::process::id(),
        inherited: true,
    })
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
        inherited: false,
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
    fn inherited_addresses_are_compared_with_the_config() {
        let a: SocketAddr = "127.0.0.1:7070".parse().expect("addr");
        assert!(tcp_matches("127.0.0.1:7070", a));
        assert!(tcp_matches("127.0.0.1:0", a), "port 0 takes any port");
        assert!(!tcp_matches("127.0.0.1:7071", a));
        assert!(!tcp_matches("0.0.0.0:7070", a), "another address");
        assert!(!tcp_matches("not an address", a));
        let six: SocketAddr = "[::1]:7070".parse().expect("addr");
        assert!(tcp_matches("[::1]:7070", six));
        assert!(!tcp_matches("127.0.0.1:7070", six));
        let dir = tempfile::tempdir().expect("dir");
        let sock = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        assert!(unix_matches(&sock, &sock));
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&sock, &link).expect("link");
        assert!(unix_matches(&link, &sock), "the same file");
        assert!(!unix_matches(&dir.path().join("other.sock"), &sock));
    }

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
