//! A client socket: TCP, TCP with TLS, or Unix, behind one type so that
//! the loop and its connections need not care which. Public because the
//! load generator (`tickd-load`) drives its client sockets through it too.
//!
//! TLS is a layer under the connection's bytes ([`super::tls`]): reads give
//! plaintext and writes take plaintext, and three questions only TLS has
//! an answer to other than "no" are asked of every stream
//! ([`Stream::handshaking`], [`Stream::holds_input`],
//! [`Stream::send_buffered`]).

use super::tls::TlsStream;
use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::Shutdown;

/// An accepted client socket.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection: HTTP or JSON-RPC, authenticated if auth is on.
    Tcp(TcpStream),
    /// A Unix-socket connection: JSON-RPC, trusted by the socket file's mode.
    Unix(UnixStream),
    /// A TCP connection with TLS on (`tls_cert`): as `Tcp` over TLS.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Shuts down one or both directions (with TLS, after a close_notify).
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tls(s) => s.shutdown(how),
        }
    }

    /// Whether a TLS handshake is still to be finished.
    pub fn handshaking(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.handshaking())
    }

    /// Whether a read would give something without a new readiness edge
    /// (TLS: decrypted input not yet handed out, or an end not reported).
    pub fn holds_input(&mut self) -> bool {
        matches!(self, Stream::Tls(s) if s.holds_input())
    }

    /// Whether bytes accepted by `write` still wait to go to the socket
    /// (TLS: ciphertext held by rustls).
    pub fn wants_write(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.wants_write())
    }

    /// Sends what earlier writes left waiting (TLS), as far as the socket
    /// takes it; true when nothing is left.
    pub fn send_buffered(&mut self) -> io::Result<bool> {
        match self {
            Stream::Tls(s) => s.send_buffered(),
            _ => Ok(true),
        }
    }

    /// Whether this is a Unix-socket client.
    pub fn is_unix(&self) -> bool {
        matches!(self, Stream::Unix(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Tls(s) => s.tcp.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Tls(s) => s.tcp.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Tls(s) => s.tcp.deregister(r),
        }
    }
}
