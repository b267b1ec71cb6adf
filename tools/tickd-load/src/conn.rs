//! One load connection: its socket, its requests in flight and their send
//! times.
//!
//! A connection keeps `depth` requests outstanding. Every answer frees one
//! slot, which makes one request *due*; due requests are written together in
//! one `write` call, so at depth 32 a burst of answers is refilled with one
//! syscall rather than 32. Answers come back in request order (tickd, redis
//! and line protocols in general answer a connection's requests in turn), so
//! a FIFO of send times pairs each answer with its request.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::{Interest, Registry, Token};

use crate::lines::LineBuf;
use crate::stream::Stream;

/// Why a connection stopped being usable.
#[derive(Debug)]
pub enum ConnError {
    /// The server closed the connection (read or write returned 0).
    Closed,
    /// A socket error such as a reset.
    Io(io::Error),
    /// The server sent a line longer than [`crate::lines::MAX_LINE`].
    LineTooLong,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Closed => write!(f, "closed by the server"),
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::LineTooLong => write!(f, "response line too long"),
        }
    }
}

/// The client side of one connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    token: Token,
    lines: LineBuf,
    /// Request bytes not yet accepted by the kernel, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Send times of the requests in flight, oldest first.
    sent: VecDeque<Instant>,
    /// Requests to append at the next [`Conn::send_due`].
    due: usize,
    /// Whether WRITABLE interest is registered (only while `out` is backed up).
    want_write: bool,
}

impl Conn {
    /// Wraps a connected socket and registers it; `depth` requests are due.
    pub fn new(
        mut stream: Stream,
        token: Token,
        depth: usize,
        registry: &Registry,
    ) -> io::Result<Conn> {
        registry.register(&mut stream, token, Interest::READABLE)?;
        Ok(Conn {
            stream,
            token,
            lines: LineBuf::default(),
            out: Vec::new(),
            written: 0,
            sent: VecDeque::with_capacity(depth),
            due: depth,
            want_write: false,
        })
    }

    /// Appends every due request (stamped now) and writes as much of the
    /// pending bytes as the socket takes, asking for WRITABLE when it backs up.
    pub fn send_due(&mut self, request: &[u8], registry: &Registry) -> Result<(), ConnError> {
        if self.due > 0 {
            let now = Instant::now();
            for _ in 0..self.due {
                self.out.extend_from_slice(request);
                self.sent.push_back(now);
            }
            self.due = 0;
        }
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        let want_write = !self.out.is_empty();
        if want_write != self.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry
                .reregister(&mut self.stream, self.token, interest)
                .map_err(ConnError::Io)?;
            self.want_write = want_write;
        }
        Ok(())
    }

    /// Reads until the socket is drained. For each answer line calls
    /// `on_answer(sent_at, received_at, line)`; `sent_at` is `None` for a
    /// line that answers no request in flight. Each matched answer makes one
    /// request due.
    pub fn receive(
        &mut self,
        scratch: &mut [u8],
        mut on_answer: impl FnMut(Option<Instant>, Instant, &[u8]),
    ) -> Result<(), ConnError> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => {
                    let now = Instant::now();
                    let sent = &mut self.sent;
                    let due = &mut self.due;
                    self.lines
                        .push(&scratch[..n], |line| {
                            let at = sent.pop_front();
                            if at.is_some() {
                                *due += 1;
                            }
                            on_answer(at, now, line);
                        })
                        .map_err(|_| ConnError::LineTooLong)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
    }

    /// Removes the socket from the poll before the connection is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        // The socket is closed right after; a failure here changes nothing.
        let _ = registry.deregister(&mut self.stream);
    }
}
