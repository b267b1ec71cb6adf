//! Accepting and refusing connections.
//!
//! The [`Acceptor`] owns the listeners (TCP, and the Unix socket), counts
//! the open TCP connections that `max_connections` limits, and pauses
//! accepting while the process is out of fds ([`super::backoff`]). A TCP
//! client over the limit is refused before anything is allocated for it,
//! with one answer it can read ([`refusal`]); the trusted Unix socket is
//! not counted, so the admin always gets in, however many strangers hold
//! TCP slots.

use super::backoff::{self, AcceptBackoff, LogLimit};
use super::conn::Conn;
use super::listeners::{Listeners, UnixSocket};
use super::stream::Stream;
use super::tls::TlsStream;
use super::{Peer, Server, LISTENER, UNIX_LISTENER};
use crate::daemon::counters::{bump, ClientCounters};
use crate::http::frame::{self as http_frame, Sniff};
use crate::http::response::{self as http_response, Framing};
use crate::protocol::rpc;
use crate::protocol::{ErrorCode, RpcError};
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use serde_json::Value;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Which listener an accept is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The TCP listener.
    Tcp,
    /// The Unix socket.
    Unix,
}

/// The listeners and whom they let in.
#[derive(Debug)]
pub struct Acceptor {
    tcp: Option<TcpListener>,
    /// The Unix socket (its file is removed when this is dropped).
    unix: Option<UnixSocket>,
    /// Pauses accepting while the process is out of fds.
    backoff: AcceptBackoff,
    /// Open TCP connections (those `max_connections` limits).
    tcp_conns: usize,
    /// The serial of the last connection accepted.
    last_serial: u64,
    /// Rate limit of the warnings about refused clients.
    warn_refused: LogLimit,
}

impl Acceptor {
    /// Takes the bound listeners.
    pub fn new(listeners: Listeners) -> Acceptor {
        Acceptor {
            tcp: listeners.tcp,
            unix: listeners.unix,
            backoff: AcceptBackoff::default(),
            tcp_conns: 0,
            last_serial: 0,
            warn_refused: LogLimit::default(),
        }
    }

    /// Registers the listeners with the loop's poll.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        if let Some(l) = self.tcp.as_mut() {
            registry.register(l, LISTENER, Interest::READABLE)?;
        }
        if let Some(u) = self.unix.as_mut() {
            registry.register(&mut u.listener, UNIX_LISTENER, Interest::READABLE)?;
        }
        Ok(())
    }

    /// Stops accepting for good (shutdown): the listeners are closed, and
    /// the Unix socket's file removed.
    pub fn stop(&mut self, registry: &Registry) {
        if let Some(mut l) = self.tcp.take() {
            let _ = registry.deregister(&mut l);
            log::info!("stopped accepting connections");
        }
        if let Some(mut u) = self.unix.take() {
            // Dropping it removes the socket file.
            let _ = registry.deregister(&mut u.listener);
        }
    }

    /// The next pending connection of one listener, with its TCP peer;
    /// None once none is pending, or while accepting is paused. A failed
    /// accept of one client is logged and the next one taken.
    pub fn next(&mut self, kind: ListenerKind) -> Option<(Stream, Option<SocketAddr>)> {
        loop {
            if self.backoff.paused(Instant::now()) {
                return None;
            }
            let accepted = match (kind, self.tcp.as_ref(), self.unix.as_ref()) {
                (ListenerKind::Tcp, Some(l), _) => {
                    backoff::accept(|| l.accept()).map(|(s, peer)| (Stream::Tcp(s), Some(peer)))
                }
                (ListenerKind::Unix, _, Some(u)) => {
                    backoff::accept(|| u.listener.accept()).map(|(s, _)| (Stream::Unix(s), None))
                }
                _ => return None,
            };
            match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the listener stays, existing
                    // clients are unaffected; accepting pauses briefly.
                    // Anything else concerned that one client only.
                    if self.backoff.on_error(&e, Instant::now()) {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether a new client may come in: any on the Unix socket (`unix`),
    /// a TCP one while fewer than `max` TCP connections are open.
    pub fn admits(&self, unix: bool, max: usize) -> bool {
        unix || self.tcp_conns < max
    }

    /// The serial of a new connection.
    pub fn next_serial(&mut self) -> u64 {
        self.last_serial += 1;
        self.last_serial
    }

    /// A connection came in (a Unix-socket one if `unix`).
    pub fn opened(&mut self, unix: bool) {
        if !unix {
            self.tcp_conns += 1;
        }
    }

    /// A connection was closed (a Unix-socket one if `unix`).
    pub fn closed(&mut self, unix: bool) {
        if !unix {
            self.tcp_conns -= 1;
        }
    }

    /// True once when a pause of accepting has ended: accept again.
    pub fn take_due(&mut self, now: Instant) -> bool {
        self.backoff.take_due(now)
    }

    /// When a pause of accepting ends (for the poll timeout).
    pub fn deadline(&self) -> Option<Instant> {
        self.backoff.deadline()
    }

    /// Refuses a TCP client at `max_connections` (`max`): tells it so
    /// ([`refusal`], from the first bytes it has sent, if any), counts and
    /// logs it (rate-limited).
    pub fn refuse(
        &mut self,
        stream: &mut Stream,
        peer: &Peer,
        max: usize,
        counters: &ClientCounters,
    ) {
        bump(&counters.connections_refused);
        if let Some(more) = self.warn_refused.allow(Instant::now()) {
            log::warn!(
                "connection from {peer} refused: {max} connections open (max_connections){}",
                backoff::more(more)
            );
        }
        let mut first = [0u8; 8];
        let seen = match stream {
            Stream::Tcp(s) => s.peek(&mut first).unwrap_or(0),
            Stream::Unix(_) | Stream::Tls(_) => 0,
        };
        // Best effort: a fresh socket's buffer takes one short answer.
        let _ = stream.write(&refusal(&first[..seen], max));
    }
}

/// What a client refused at `max_connections` = `max` is told: a 503 if
/// its `first` bytes are already in and say HTTP, else one -32002
/// JSON-RPC line (a client that has sent nothing yet cannot be told
/// apart, and gets the line).
pub fn refusal(first: &[u8], max: usize) -> Vec<u8> {
    let err = RpcError::new(
        ErrorCode::Overloaded,
        format!("too many connections (max_connections = {max})"),
    );
    let mut answer = Vec::new();
    if http_frame::sniff(first) == Sniff::Http {
        let f = Framing {
            close: true,
            head: false,
        };
        http_response::write_error_status(&mut answer, 503, &err, "", f);
    } else {
        rpc::write_error(&mut answer, &Value::Null, &err);
    }
    answer
}

impl Server {
    /// Accepts every pending connection of one listener.
    pub(super) fn accept(&mut self, kind: ListenerKind) {
        while let Some((stream, peer)) = self.acceptor.next(kind) {
            self.admit(stream, peer);
        }
    }

    /// Takes a new connection, or refuses a TCP one when `max_connections`
    /// TCP connections are open, before allocating anything for it
    /// ([`Acceptor::refuse`]).
    fn admit(&mut self, mut stream: Stream, peer: Option<SocketAddr>) {
        let peer = Peer(peer);
        let max = self.limits.max_connections;
        if !self.acceptor.admits(stream.is_unix(), max) {
            let counters = &self.daemon.board().clients;
            self.acceptor.refuse(&mut stream, &peer, max, counters);
            return;
        }
        bump(&self.daemon.board().clients.connections_accepted);
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        // With TLS on, the TCP port speaks TLS only: each connection with
        // the certificate in force when it came in.
        let mut stream = match (stream, &self.limits.tls) {
            (Stream::Tcp(s), Some(tls)) => {
                Stream::Tls(Box::new(TlsStream::new(s, Arc::clone(&tls.server))))
            }
            (stream, _) => stream,
        };
        let serial = self.acceptor.next_serial();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::warn!("could not register connection from {peer}: {e}");
            return;
        }
        self.acceptor.opened(stream.is_unix());
        entry.insert(Conn::new(stream, serial, peer.0));
        self.publish_connections();
        log::debug!("connection {serial} from {peer}");
        self.arm_idle(key, serial, Instant::now());
        // The socket may already hold a request; edge-triggered readiness
        // will report it, but reading now saves a turn.
        self.on_readable(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_clients_are_counted_and_the_unix_socket_always_gets_in() {
        let mut a = Acceptor::new(Listeners::default());
        assert!(a.admits(false, 2));
        a.opened(false);
        a.opened(true);
        assert!(a.admits(false, 2), "the Unix client is not counted");
        a.opened(false);
        assert!(!a.admits(false, 2), "at max_connections");
        assert!(a.admits(true, 2), "the trusted admin gets in");
        a.closed(false);
        assert!(a.admits(false, 2));
        a.closed(true);
        assert!(a.admits(false, 2));
        assert_eq!((a.next_serial(), a.next_serial()), (1, 2));
    }

    #[test]
    fn without_listeners_nothing_is_accepted() {
        let mut a = Acceptor::new(Listeners::default());
        assert!(a.next(ListenerKind::Tcp).is_none());
        assert!(a.next(ListenerKind::Unix).is_none());
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn a_refused_client_is_told_in_its_own_protocol() {
        let line = refusal(b"", 3);
        assert_eq!(
            String::from_utf8(line).expect("utf-8"),
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32002,\
             \"message\":\"too many connections (max_connections = 3)\"}}\n"
        );
        let http = String::from_utf8(refusal(b"GET / HT", 3)).expect("utf-8");
        assert!(http.starts_with("HTTP/1.1 503 "), "{http}");
        assert!(http.contains("Connection: close\r\n"), "{http}");
        assert!(http.contains("max_connections = 3"), "{http}");
        assert!(refusal(b"{\"jsonrpc", 3).starts_with(b"{"));
    }
}
