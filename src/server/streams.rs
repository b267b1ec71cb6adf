//! Answers sent a piece at a time, from the loop's side (the pieces are
//! rendered on the request pool, see `crate::requests::stream`).
//!
//! A connection whose answer is streamed keeps the rest of it
//! ([`super::conn::Conn::body`]) and counts as having a batch in flight
//! from the first piece to the last: its further requests are not cut
//! (they wait, in order), its reading pauses at the usual bound, it is not
//! closed as idle, and a shutdown lets the answer finish within the final
//! flush. Each time the connection has written all it had, the stream
//! goes back to the request pool as a batch of its own, for one more
//! piece: what the daemon holds for it is one piece, however slowly the
//! client reads.

use super::Server;
use crate::requests::{BodyStream, ConnBatch, Proto};

impl Server {
    /// Keeps the rest of a streamed answer with connection `key` (the
    /// batch that brought it is answered, but the connection stays in
    /// flight until its end).
    pub(super) fn keep_stream(&mut self, key: usize, serial: u64, body: Box<BodyStream>) {
        if let Some(conn) = self.live_conn(key, serial) {
            conn.body = Some(body);
            conn.requests.send();
        }
    }

    /// Hands connection `key`'s streamed answer back to the request pool
    /// for its next piece (its output is all written).
    pub(super) fn next_piece(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(body) = conn.body.take() else {
            return;
        };
        self.outbox.push(ConnBatch {
            key,
            serial: conn.serial,
            data: Vec::new(),
            max_line: self.limits.max_line_bytes,
            proto: Proto::Http,
            authed: true,
            grant: None,
            addr: conn.peer,
            peer: conn.peer.map(|a| a.ip()),
            out_budget: self.limits.out_budget(conn.unsent_bytes()),
            answer_buf: conn.take_spare_out(),
            stream: Some(body),
        });
    }
}
