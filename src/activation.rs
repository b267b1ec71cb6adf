//! Socket activation: listening sockets inherited from whoever started
//! tickd, by systemd's protocol (sd_listen_fds(3)), instead of bound here.
//!
//! systemd (a `.socket` unit), `systemd-socket-activate`, and `tickd run
//! --supervise` (which holds the sockets across restarts of its child)
//! start tickd with:
//! - `LISTEN_PID`: the pid the sockets are meant for. Another pid (a
//!   variable inherited by mistake) means they are not ours: ignored, with
//!   a warning;
//! - `LISTEN_FDS`: how many, as fds 3, 4, ...;
//! - `LISTEN_FDNAMES` (optional): their names, separated by `:`. A socket
//!   named `listen` is for `daemon.listen`, one named `unix_socket` for
//!   `daemon.unix_socket`; any other name (systemd's default is the socket
//!   unit's name) leaves the choice to the socket's kind: TCP for
//!   `listen`, Unix for `unix_socket`.
//!
//! [`take`] reads the three variables once, first thing in `tickd run`,
//! unsets them (so no job, and no process a job starts, believes they are
//! its own), takes the fds and marks them close-on-exec. It then asks each
//! socket what it is (`SO_TYPE`, `SO_ACCEPTCONN`, `getsockname`): only a
//! listening stream socket, TCP (IPv4 or IPv6) or Unix with a path, is
//! accepted. Matching the sockets to the config, and the errors when they
//! do not fit, is [`crate::server::listeners`]'s.
//!
//! A child of `tickd run --supervise` inherits one more thing: how many
//! times the supervisor has restarted the daemon, in
//! `TICKD_SUPERVISOR_RESTARTS` ([`RESTARTS_VAR`]), read and unset by
//! [`take_restarts`] and shown as `restarts` in `status`.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::net::{sockopt, AddressFamily, SocketType};

/// The socket name (in `LISTEN_FDNAMES`) that picks `daemon.listen`.
pub const NAME_LISTEN: &str = "listen";
/// The socket name that picks `daemon.unix_socket`.
pub const NAME_UNIX: &str = "unix_socket";

/// One inherited listening socket.
#[derive(Debug)]
pub struct Inherited {
    /// The socket (close-on-exec).
    pub fd: OwnedFd,
    /// Its number as inherited (3, 4, ...), for messages.
    pub number: i32,
    /// Its name from `LISTEN_FDNAMES`, if any.
    pub name: Option<String>,
    /// What it listens on.
    pub kind: Kind,
}

/// What an inherited socket listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A TCP socket bound to this address.
    Tcp(SocketAddr),
    /// A Unix socket bound to this path.
    Unix(PathBuf),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Tcp(a) => write!(f, "TCP {a}"),
            Kind::Unix(p) => write!(f, "Unix socket {}", p.display()),
        }
    }
}

impl Inherited {
    /// How messages name it: `fd 3 ("listen", TCP 127.0.0.1:7070)`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("inherited fd {} (named {n:?}, {})", self.number, self.kind),
            None => format!("inherited fd {} ({})", self.number, self.kind),
        }
    }
}

/// Set (to `2`) when an in-place upgrade's two pipes follow the listeners
/// (see [`crate::upgrade`]); read and unset by [`take`].
pub const HANDOFF_VAR: &str = "TICKD_UPGRADE_FDS";

/// The upgrade's pipes taken by [`take`]: (confirm, go).
static HANDOFF: std::sync::Mutex<Option<(OwnedFd, OwnedFd)>> = std::sync::Mutex::new(None);

/// The pipes of an in-place upgrade this process was started for, once:
/// the write end it confirms on, and the read end whose end of file says
/// the old process is gone.
pub fn take_handoff() -> Option<(OwnedFd, OwnedFd)> {
    HANDOFF.lock().ok()?.take()
}

/// Copies of this process's listeners kept for an in-place upgrade (set at
/// start, taken by the upgrade). Dropped as soon as a shutdown begins, so
/// that a daemon that stops for good closes its sockets when its loop does
/// (a client then gets "connection refused" at once, not a connection that
/// hangs in the backlog until the process exits).
static LISTENER_COPIES: std::sync::Mutex<Vec<(OwnedFd, &'static str)>> =
    std::sync::Mutex::new(Vec::new());

/// Set by [`release_listener_copies`]: no copies are kept from then on.
static RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keeps `copies` for an upgrade (see [`LISTENER_COPIES`]), unless a
/// shutdown has begun (they are closed then).
pub fn keep_listener_copies(copies: Vec<(OwnedFd, &'static str)>) {
    if let Ok(mut slot) = LISTENER_COPIES.lock() {
        if !RELEASED.load(std::sync::atomic::Ordering::SeqCst) {
            *slot = copies;
        }
    }
}

/// Takes the copies (an upgrade under way); empty once a shutdown began.
pub fn take_listener_copies() -> Vec<(OwnedFd, &'static str)> {
    LISTENER_COPIES
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

/// A shutdown began (SIGTERM, SIGINT, the `shutdown` method): closes the
/// copies.
pub fn release_listener_copies() {
    if let Ok(mut slot) = LISTENER_COPIES.lock() {
        RELEASED.store(true, std::sync::atomic::Ordering::SeqCst);
        slot.clear();
    }
}

/// The variable through which the supervisor passes its restart count.
pub const RESTARTS_VAR: &str = "TICKD_SUPERVISOR_RESTARTS";

/// The restart count read by [`take_restarts`] (`None`: not supervised).
static RESTARTS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();

/// Reads and unsets [`RESTARTS_VAR`]; call once, early, single-threaded.
pub fn take_restarts() {
    let value = std::env::var(RESTARTS_VAR).ok();
    std::env::remove_var(RESTARTS_VAR);
    RESTARTS.get_or_init(|| value.and_then(|v| v.trim().parse().ok()));
}

/// Times the supervisor restarted the daemon before this process, or
/// `None` when tickd does not run under `--supervise`.
pub fn restarts() -> Option<u64> {
    RESTARTS.get().copied().flatten()
}

/// The variable through which an in-place upgrade passes the config
/// generation of the process it replaces: the new process goes on from
/// it, so `status.config.generation` does not go back across an upgrade
/// (a restart, or a supervisor's restart after a crash, starts at 1).
pub const GENERATION_VAR: &str = "TICKD_UPGRADE_GENERATION";

/// The generation read by [`take_generation`].
static GENERATION: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();

/// Reads and unsets [`GENERATION_VAR`]; call once, early, single-threaded.
pub fn take_generation() {
    let value = std::env::var(GENERATION_VAR).ok();
    std::env::remove_var(GENERATION_VAR);
    GENERATION.get_or_init(|| {
        value
            .and_then(|v| v.trim().parse().ok())
            .filter(|&g| g >= 1)
    });
}

/// The generation of the process this one replaces by an upgrade.
pub fn inherited_generation() -> Option<u64> {
    GENERATION.get().copied().flatten()
}

/// What the three variables said, before any fd is touched.
#[derive(Debug, PartialEq, Eq)]
struct Announced {
    count: usize,
    /// One per fd (`None`: no name given).
    names: Vec<Option<String>>,
}

/// Reads and unsets `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`, and
/// takes the sockets they announce for this process. `Ok(empty)` when
/// there are none (the usual case); an error (the start fails, exit 2)
/// when the variables are malformed or an fd is not a listening TCP or
/// Unix stream socket.
///
/// Call it once, before the process opens any file or starts a thread.
pub fn take() -> Result<Vec<Inherited>, String> {
    let var = |k: &str| std::env::var(k).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    let handoff = var(HANDOFF_VAR).is_some_and(|v| v.trim() == "2");
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", HANDOFF_VAR] {
        // Single-threaded here (see above), as `remove_var` requires.
        std::env::remove_var(k);
    }
    let me = std::process::id();
    let Some(announced) = parse(pid.as_deref(), fds.as_deref(), names.as_deref(), me)? else {
        if let (Some(pid), Some(fds)) = (&pid, &fds) {
            if pid.trim() != me.to_string() {
                // Logged once logging is up; see `ignored_for`.
                IGNORED.get_or_init(|| {
                    format!("LISTEN_FDS={fds} is for pid {pid}, not this process ({me}); ignored")
                });
            }
        }
        return Ok(Vec::new());
    };
    let extra = if handoff { 2 } else { 0 };
    let mut owned = crate::sys::claim_inherited_fds(announced.count + extra)
        .map_err(|e| format!("LISTEN_FDS={}: {e}", announced.count))?;
    if handoff {
        let go = owned.pop();
        let confirm = owned.pop();
        if let (Some(confirm), Some(go), Ok(mut slot)) = (confirm, go, HANDOFF.lock()) {
            *slot = Some((confirm, go));
        }
    }
    let mut out = Vec::with_capacity(owned.len());
    for (i, (fd, name)) in owned.into_iter().zip(announced.names).enumerate() {
        let number = 3 + i32::try_from(i).unwrap_or(i32::MAX - 3);
        let kind = classify(&fd).map_err(|e| format!("inherited fd {number} (LISTEN_FDS): {e}"))?;
        out.push(Inherited {
            fd,
            number,
            name,
            kind,
        });
    }
    Ok(out)
}

/// A note for the log about variables that were not for us, if any.
static IGNORED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The warning [`take`] held back for lack of a logger, if any.
pub fn ignored_note() -> Option<&'static str> {
    IGNORED.get().map(String::as_str)
}

/// The variables' meaning, by sd_listen_fds(3)'s rules: `None` when they
/// are absent or for another pid.
fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    me: u32,
) -> Result<Option<Announced>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?}: not a process id"))?;
    if pid != me {
        return Ok(None);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?}: not a number"))?;
    if count > 64 {
        return Err(format!(
            "LISTEN_FDS={count}: tickd uses at most two sockets (daemon.listen, daemon.unix_socket)"
        ));
    }
    let names = match names {
        None => vec![None; count],
        Some(text) => {
            let list: Vec<Option<String>> = text
                .split(':')
                .map(|n| (!n.is_empty()).then(|| n.to_string()))
                .collect();
            if list.len() != count {
                return Err(format!(
                    "LISTEN_FDNAMES={text:?} names {} socket(s), but LISTEN_FDS={count}",
                    list.len()
                ));
            }
            list
        }
    };
    Ok(Some(Announced { count, names }))
}

/// What the socket `fd` is, if it is one tickd can listen on.
fn classify(fd: &OwnedFd) -> Result<Kind, String> {
    let domain = sockopt::socket_domain(fd).map_err(|e| format!("not a socket ({e})"))?;
    let ty = sockopt::socket_type(fd).map_err(|e| format!("cannot read its type: {e}"))?;
    if ty != SocketType::STREAM {
        return Err("not a stream socket (tickd needs SOCK_STREAM: ListenStream=)".into());
    }
    let listening = sockopt::socket_acceptconn(fd)
        .map_err(|e| format!("cannot tell whether it listens: {e}"))?;
    if !listening {
        return Err(
            "the socket is not listening (Accept=no and ListenStream= give a listening socket)"
                .into(),
        );
    }
    let addr = rustix::net::getsockname(fd).map_err(|e| format!("getsockname: {e}"))?;
    if domain == AddressFamily::INET || domain == AddressFamily::INET6 {
        let a =
            SocketAddr::try_from(addr).map_err(|e| format!("its address is unreadable: {e}"))?;
        return Ok(Kind::Tcp(a));
    }
    if domain == AddressFamily::UNIX {
        let a = rustix::net::SocketAddrUnix::try_from(addr)
            .map_err(|e| format!("its address is unreadable: {e}"))?;
        return match a.path() {
            Some(p) => {
                use std::os::unix::ffi::OsStrExt;
                Ok(Kind::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(
                    p.to_bytes(),
                ))))
            }
            None => Err(
                "a Unix socket without a path (abstract or unnamed); tickd's unix_socket is a path"
                    .into(),
            ),
        };
    }
    Err(format!(
        "address family {} is neither TCP nor Unix",
        domain.as_raw()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_by_the_rules_of_sd_listen_fds() {
        assert_eq!(parse(None, None, None, 7), Ok(None));
        assert_eq!(
            parse(None, Some("1"), None, 7),
            Ok(None),
            "no LISTEN_PID: not ours"
        );
        assert_eq!(
            parse(Some("8"), Some("1"), None, 7),
            Ok(None),
            "another pid"
        );
        assert_eq!(
            parse(Some("7"), Some("2"), None, 7),
            Ok(Some(Announced {
                count: 2,
                names: vec![None, None]
            }))
        );
        assert_eq!(
            parse(Some(" 7 "), Some("2"), Some("listen:unix_socket"), 7),
            Ok(Some(Announced {
                count: 2,
                names: vec![Some("listen".into()), Some("unix_socket".into())]
            }))
        );
        let e = parse(Some("7"), Some("2"), Some("listen"), 7).unwrap_err();
        assert!(e.contains("names 1 socket(s), but LISTEN_FDS=2"), "{e}");
        let e = parse(Some("7"), Some("x"), None, 7).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = parse(Some("me"), Some("1"), None, 7).unwrap_err();
        assert!(e.contains("not a process id"), "{e}");
        assert!(parse(Some("7"), Some("65"), None, 7).is_err());
    }

    #[test]
    fn sockets_are_told_apart() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = tcp.local_addr().expect("addr");
        assert_eq!(classify(&OwnedFd::from(tcp)), Ok(Kind::Tcp(addr)));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert_eq!(classify(&OwnedFd::from(unix)), Ok(Kind::Unix(path)));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        assert!(classify(&OwnedFd::from(udp))
            .unwrap_err()
            .contains("not a stream socket"));
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(classify(&OwnedFd::from(file))
            .unwrap_err()
            .contains("not a socket"));
        // Bound but not listening.
        let s = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        rustix::net::bind(&s, &any).expect("bind");
        assert!(classify(&s).unwrap_err().contains("not listening"));
    }
}
