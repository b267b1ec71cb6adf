//! TLS on a TCP connection: a rustls `ServerConnection` driven by the
//! loop's own reads and writes, under the connection's byte handling
//! (framing, HTTP, JSON-RPC and streamed answers see plaintext and do not
//! know TLS is there). No async runtime, no thread: [`TlsStream`] is a
//! non-blocking `Read` + `Write` like the socket it wraps.
//!
//! - Reading: ciphertext is read from the socket into rustls
//!   (`read_tls`), decrypted (`process_new_packets`), and the plaintext
//!   handed out, until the caller's buffer is full or the socket has
//!   nothing more (`WouldBlock`). So a short read means what it means for
//!   a plain socket, the socket is drained, and the edge-triggered loop
//!   can rely on it; what rustls still holds (plaintext, or an end not yet
//!   reported) is told by [`TlsStream::holds_input`].
//! - Writing: plaintext goes into rustls, whose ciphertext is written to
//!   the socket at once, as far as it takes it; what it does not take
//!   waits in rustls ([`TlsStream::wants_write`]) and is sent by
//!   [`TlsStream::send_buffered`] when the socket is writable again. A
//!   write that finds rustls's buffer full and the socket full says
//!   `WouldBlock`, so the connection waits for writability as it does
//!   without TLS.
//! - The handshake happens inside those reads and writes: the loop flushes
//!   a connection after reading it, which sends the handshake's answers.
//!   A connection is a stranger until its handshake is done: it gets the
//!   pre-auth limit (10 s from its accept) to finish it, or is closed
//!   (`CloseCause::Tls`); see `timers.rs`.
//! - The first byte tells TLS from plaintext: a TLS connection opens with
//!   a handshake record (0x16). Anything else is a plaintext client on the
//!   TLS port ([`Plaintext`], with its first bytes, peeked: up to 8, or
//!   until they are more than the start of an HTTP method): the loop
//!   answers an HTTP one with a 400 saying to use https (sent in
//!   plaintext, [`TlsStream::go_plain`]) and closes the others.
//!
//! Memory per connection is bounded by rustls: a record of at most
//! 16 KiB + its overhead being received, handshake messages of at most
//! 64 KiB, at most [`SEND_BUFFER`] of ciphertext waiting for the socket
//! (beyond it writes say `WouldBlock`), and the plaintext of the records
//! of one read (handed out at once), on top of the connection's own
//! buffers and limits.

use crate::http::frame::{sniff, Sniff};
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

/// Ciphertext (and, before the handshake ends, plaintext) rustls keeps
/// for a socket that does not take it.
const SEND_BUFFER: usize = 64 * 1024;

/// The first byte of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// A plaintext client on the TLS port, as the error of a read: its first
/// bytes (at most 8) tell whether it speaks HTTP.
#[derive(Debug)]
pub struct Plaintext {
    /// The first bytes it sent.
    pub first: Vec<u8>,
}

impl std::fmt::Display for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plaintext on the TLS port")
    }
}

impl std::error::Error for Plaintext {}

/// The plaintext client a read error stands for, if it does.
pub fn plaintext(e: &io::Error) -> Option<&Plaintext> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Plaintext>())
}

/// Where the connection stands.
#[derive(Debug)]
enum State {
    /// Nothing read yet: the first byte will tell.
    First(Arc<ServerConfig>),
    /// Speaking TLS (the handshake done or not).
    Tls(Box<ServerConnection>),
    /// A plaintext client being told to use https: bytes go to the
    /// socket as they are, and what it sends is read (and discarded by
    /// the closing connection) as it is.
    Plain,
}

/// A TCP connection that speaks TLS.
#[derive(Debug)]
pub struct TlsStream {
    /// The socket.
    pub tcp: TcpStream,
    state: State,
    /// The socket's end was read (rustls still to report it).
    eof: bool,
    /// The last read returned data and stopped at something the next
    /// one reports (see [`TlsStream::holds_input`]).
    stopped: bool,
}

impl TlsStream {
    /// Wraps an accepted socket, to be served with `config`.
    pub fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> TlsStream {
        TlsStream {
            tcp,
            state: State::First(config),
            eof: false,
            stopped: false,
        }
    }

    /// Whether the handshake is still to be done (or to be finished).
    pub fn handshaking(&self) -> bool {
        match &self.state {
            State::First(_) => true,
            State::Tls(c) => c.is_handshaking(),
            State::Plain => false,
        }
    }

    /// Whether ciphertext waits in rustls for the socket.
    pub fn wants_write(&self) -> bool {
        matches!(&self.state, State::Tls(c) if c.wants_write())
    }

    /// Whether a read would give something without a new edge of the
    /// socket: the last read stopped short of the socket's `WouldBlock`
    /// and of the caller's full buffer, at an end (of the socket, or the
    /// peer's close_notify) still to report.
    pub fn holds_input(&self) -> bool {
        self.stopped
    }

    /// From now on bytes go to the socket as they are (a plaintext client
    /// being answered).
    pub fn go_plain(&mut self) {
        self.state = State::Plain;
    }

    /// Writes the ciphertext rustls holds, as far as the socket takes it.
    /// True when none is left.
    pub fn send_buffered(&mut self) -> io::Result<bool> {
        let State::Tls(conn) = &mut self.state else {
            return Ok(true);
        };
        while conn.wants_write() {
            match conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Ends our side: a close_notify (sent as far as the socket takes it,
    /// best effort), then the socket's shutdown.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let State::Tls(conn) = &mut self.state {
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                conn.send_close_notify();
                let _ = self.send_buffered();
            }
        }
        self.tcp.shutdown(how)
    }

    /// The first byte decides: TLS goes on, plaintext is an error
    /// ([`Plaintext`]) carrying its first bytes.
    fn first_byte(&mut self) -> io::Result<()> {
        let State::First(config) = &self.state else {
            return Ok(());
        };
        let mut first = [0u8; 8];
        let seen = loop {
            match self.tcp.peek(&mut first) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if seen == 0 {
            // The end, before anything: reported by the read that follows.
            self.eof = true;
            return Ok(());
        }
        if first[0] != HANDSHAKE_RECORD {
            if seen < first.len() && sniff(&first[..seen]) == Sniff::Unknown {
                // The start of an HTTP method ("GE"): wait for the rest
                // (peeked, not read: its arrival raises a new edge).
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Plaintext {
                    first: first[..seen].to_vec(),
                },
            ));
        }
        let mut conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(SEND_BUFFER));
        self.state = State::Tls(Box::new(conn));
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, drained) = self.read_plaintext(buf)?;
        // Data that neither filled the buffer nor ended at the socket's
        // WouldBlock stopped at an end, which the next read reports.
        self.stopped = n > 0 && n < buf.len() && !drained;
        Ok(n)
    }
}

impl TlsStream {
    /// Plaintext into `buf` (see the module doc), and whether the socket
    /// said `WouldBlock` after it; Ok(0) is the end.
    fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        self.first_byte()?;
        let conn = match &mut self.state {
            State::First(_) => return Ok((0, false)), // the end came first
            State::Plain => return self.tcp.read(buf).map(|n| (n, false)),
            State::Tls(conn) => conn,
        };
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                return Ok((filled, false));
            }
            match conn.reader().read(&mut buf[filled..]) {
                // The peer's close_notify: the end.
                Ok(0) => return Ok((filled, false)),
                Ok(n) => {
                    filled += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without a close_notify: an end all the
                // same (requests are framed; a cut one is never answered).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((filled, false)),
                // A broken connection: what was read with it is lost
                // with it.
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok((filled, false));
            }
            match conn.read_tls(&mut self.tcp) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if filled > 0 {
                        Ok((filled, true))
                    } else {
                        Err(e)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the peer why (the alert rustls queued), best effort.
                let _ = conn.write_tls(&mut self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let State::Plain = self.state {
            return self.tcp.write(buf);
        }
        // Room first: what rustls holds goes before anything new.
        self.send_buffered()?;
        let State::Tls(conn) = &mut self.state else {
            // Nothing is written before the first byte was read.
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = conn.writer().write(buf)?;
        self.send_buffered()?;
        if n == 0 && !buf.is_empty() {
            // rustls's buffer is full and the socket took nothing: wait
            // for writability.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    /// A server config without a certificate: enough to tell TLS from
    /// plaintext and to fail a handshake.
    #[derive(Debug)]
    struct NoCert;

    impl ResolvesServerCert for NoCert {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            None
        }
    }

    fn config() -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCert));
        Arc::new(config)
    }

    /// A connected pair: our non-blocking end wrapped, and the peer's.
    fn pair() -> (TlsStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (TlsStream::new(TcpStream::from_std(ours), config()), peer)
    }

    /// Reads until something other than `WouldBlock` (the bytes were sent
    /// on loopback; they arrive at once, but not within no time).
    fn read_once(s: &mut TlsStream, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing arrived");
                    std::thread::yield_now();
                }
                other => return other,
            }
        }
    }

    #[test]
    fn plaintext_is_told_apart_by_its_first_byte_and_answered_as_it_is() {
        let (mut ours, mut peer) = pair();
        assert!(ours.handshaking(), "a stranger until its handshake");
        peer.write_all(b"GET /status HTTP/1.1\r\n").expect("write");
        let mut buf = [0u8; 64];
        let err = read_once(&mut ours, &mut buf).expect_err("plaintext");
        assert_eq!(
            plaintext(&err).map(|p| p.first.as_slice()),
            Some(&b"GET /sta"[..])
        );
        ours.go_plain();
        assert!(!ours.handshaking() && !ours.wants_write());
        // Unread, so it can still be drained; and answers go as they are.
        assert_eq!(ours.read(&mut buf).expect("read"), 22);
        assert_eq!(ours.write(b"HTTP/1.1 400").expect("write"), 12);
        let mut got = [0u8; 12];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"HTTP/1.1 400");
    }

    #[test]
    fn the_start_of_an_http_method_waits_for_the_rest() {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"GE").expect("write");
        let mut two = [0u8; 2];
        while ours.tcp.peek(&mut two).unwrap_or(0) < 2 {
            std::thread::yield_now();
        }
        let mut buf = [0u8; 64];
        let err = ours.read(&mut buf).expect_err("not decided");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        peer.write_all(b"T / HTTP/1.1\r\n").expect("write");
        let err = read_once(&mut ours, &mut buf).expect_err("plaintext");
        assert_eq!(
            plaintext(&err).map(|p| p.first.as_slice()),
            Some(&b"GET / HT"[..])
        );
    }

    #[test]
    fn a_bad_handshake_is_invalid_data_and_an_early_end_is_the_end() {
        let (mut ours, mut peer) = pair();
        // A handshake record header, then garbage.
        peer.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
            .expect("write");
        let mut buf = [0u8; 64];
        let err = read_once(&mut ours, &mut buf).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(plaintext(&err).is_none());

        let (mut ours, peer) = pair();
        drop(peer);
        assert_eq!(read_once(&mut ours, &mut buf).expect("end"), 0);
        assert!(!ours.holds_input());
    }
}
