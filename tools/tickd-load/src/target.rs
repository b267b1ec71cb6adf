//! Where the load goes: a loopback TCP address or a Unix socket path.
//!
//! This tool may only ever send traffic to the machine it runs on, so the
//! check lives where an address is first understood: every address a target
//! resolves to must satisfy [`std::net::IpAddr::is_loopback`], and host names
//! other than `localhost` are refused without any name lookup, so no query
//! leaves the machine either.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::stream::Stream;

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A validated place to connect to; building one is the loopback check.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP address whose IP is a loopback address.
    Tcp(SocketAddr),
    /// A Unix socket path (local by nature).
    Unix(PathBuf),
}

impl Target {
    /// Parses `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` and refuses any
    /// address that is not loopback.
    pub fn tcp(spec: &str) -> Result<Target, String> {
        let addr = match spec.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => resolve_localhost(spec)?,
        };
        check_loopback(spec, addr.ip())?;
        Ok(Target::Tcp(addr))
    }

    /// Opens one non-blocking connection, ready to register with mio.
    pub fn connect(&self) -> std::io::Result<Stream> {
        match self {
            Target::Tcp(addr) => {
                let s = std::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)?;
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                Ok(Stream::Tcp(mio::net::TcpStream::from_std(s)))
            }
            Target::Unix(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)?;
                s.set_nonblocking(true)?;
                Ok(Stream::Unix(mio::net::UnixStream::from_std(s)))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "tcp {a}"),
            Target::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

/// Resolves `localhost:PORT` through the system resolver (which answers it
/// from the hosts file); any other host name is refused before any lookup.
fn resolve_localhost(spec: &str) -> Result<SocketAddr, String> {
    let (host, port) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{spec:?}: expected IP:PORT, [IPv6]:PORT or localhost:PORT"))?;
    if !host.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "{spec:?}: only IP addresses and \"localhost\" are accepted, so that no name is looked up off this machine"
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{spec:?}: {port:?} is not a port number"))?;
    let addrs: Vec<SocketAddr> = ("localhost", port)
        .to_socket_addrs()
        .map_err(|e| format!("{spec:?}: cannot resolve localhost: {e}"))?
        .collect();
    for a in &addrs {
        check_loopback(spec, a.ip())?;
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{spec:?}: localhost resolved to no address"))
}

/// The rule itself: loopback (127.0.0.0/8 or ::1) or nothing.
fn check_loopback(spec: &str, ip: IpAddr) -> Result<(), String> {
    if ip.is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing {spec:?}: {ip} is not a loopback address; tickd-load only sends load to 127.0.0.0/8 or ::1"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_accepted() {
        for s in [
            "127.0.0.1:7070",
            "127.8.9.10:1",
            "[::1]:7070",
            "localhost:7070",
        ] {
            assert!(Target::tcp(s).is_ok(), "{s} refused");
        }
    }

    #[test]
    fn other_addresses_are_refused() {
        for s in [
            "10.0.0.1:80",
            "192.168.1.1:80",
            "0.0.0.0:7070",
            "[::]:7070",
            "[::ffff:8.8.8.8]:53",
            "8.8.8.8:53",
            "example.com:80",
            "localhost",
            "localhost:notaport",
        ] {
            assert!(Target::tcp(s).is_err(), "{s} accepted");
        }
    }
}
