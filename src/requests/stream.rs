//! Answers too large to build whole, sent a piece at a time as the client
//! takes them: `GET /metrics` at large job counts.
//!
//! The first piece is rendered with the request ([`start_metrics`]). If
//! the whole answer fits in it, it goes as any answer does, with
//! `Content-Length`. Otherwise the head says `Transfer-Encoding: chunked`
//! (HTTP/1.1; an HTTP/1.0 client gets a body that ends with the
//! connection), the first piece follows as a chunk, and the rest of the
//! answer travels back to the loop as a [`BodyStream`] in a
//! [`Segment::Stream`], the batch's last segment (the requests after it
//! wait, unread, so answers stay in order). The loop keeps the stream with
//! the connection, counted as a batch in flight, and once the connection
//! has written everything it had, hands the stream back to the request
//! pool as a batch of its own ([`ConnBatch::stream`]), whose answer is the
//! next piece ([`next_piece`]) and the stream again, or the last piece.
//!
//! So what a streamed answer holds at any time is one piece (at most
//! [`PIECE`] bytes, and half of `max_output_bytes`, plus one job's series),
//! whatever its total size, and a client that stops reading stops the
//! rendering, not the other clients.

use super::batch::{finish_batch, flush_bytes, BatchAnswer, ConnBatch, Done, Segment};
use crate::daemon::Shared;
use crate::http::metrics::{self, Render};
use crate::http::response::{self, Framing};
use crate::methods::Handlers;

/// The largest piece of a streamed answer, in bytes.
pub const PIECE: usize = 256 * 1024;

/// The rest of a streamed answer: where its rendering stands and how its
/// pieces are framed.
#[derive(Debug)]
pub struct BodyStream {
    render: Render,
    /// Pieces are chunks of the chunked coding (else raw bytes up to the
    /// close).
    chunked: bool,
    /// The connection ends after the answer.
    close: bool,
}

/// The size of a piece for a connection that may leave `max_out` bytes
/// unread.
fn piece_size(max_out: usize) -> usize {
    PIECE.min(max_out / 2).max(1)
}

/// Answers `GET /metrics` into `out`: whole if it fits in one piece, else
/// the head and the first piece, and the stream of the rest, which the
/// caller sends as the batch's last segment. `version` is the request's
/// HTTP minor version.
pub fn start_metrics(
    shared: &Shared,
    f: Framing,
    version: u8,
    out: &mut Vec<u8>,
) -> Option<Box<BodyStream>> {
    let max_out = shared.board.live.read().max_output_bytes;
    let mut render = Render::new(shared);
    let mut body = Vec::new();
    if render.next(shared, &mut body, piece_size(max_out)) {
        response::write(out, 200, metrics::CONTENT_TYPE, "", &body, f);
        return None;
    }
    let chunked = version >= 1;
    if f.head {
        // The head a GET would get; there is no body to frame.
        response::write_stream_head(out, 200, metrics::CONTENT_TYPE, "", f, chunked);
        return None;
    }
    // Without the chunked coding, the end of the body is the close.
    let f = Framing {
        close: f.close || !chunked,
        head: false,
    };
    response::write_stream_head(out, 200, metrics::CONTENT_TYPE, "", f, chunked);
    put(out, &body, chunked);
    Some(Box::new(BodyStream {
        render,
        chunked,
        close: f.close,
    }))
}

/// The next piece of a streamed answer (a batch the loop cut for it,
/// with no requests): the piece, then the stream again, or the end of
/// the answer (and the close, if it ends the connection).
pub fn next_piece(h: &Handlers, mut batch: ConnBatch, mut stream: Box<BodyStream>) -> BatchAnswer {
    // A piece is a heavy task (about half a millisecond): rendered off the
    // event loop's CPU, which a request thread follows for short tasks
    // (see `pool::placement`).
    crate::pool::release_cpu();
    let shared = &*h.shared;
    let size = piece_size(batch.out_budget);
    let mut piece = Vec::with_capacity(size.min(PIECE) + 4096);
    let end = stream.render.next(shared, &mut piece, size);
    let mut out = batch.take_answer_buf(piece.len() + 32);
    put(&mut out, &piece, stream.chunked);
    let mut segments = Vec::new();
    if !end {
        flush_bytes(&mut segments, &mut out);
        segments.push(Segment::Stream(stream));
    } else {
        if stream.chunked {
            out.extend_from_slice(response::LAST_CHUNK);
        }
        if stream.close {
            flush_bytes(&mut segments, &mut out);
            segments.push(Segment::Close { why: None });
        }
    }
    finish_batch(shared, batch, segments, out, Done::default())
}

/// Appends a piece, framed.
fn put(out: &mut Vec<u8>, piece: &[u8], chunked: bool) {
    if chunked {
        response::write_chunk(out, piece);
    } else {
        out.extend_from_slice(piece);
    }
}
