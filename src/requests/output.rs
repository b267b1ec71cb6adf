//! `GET /runs/ID/output[?from=N][&follow=1]`: a run's output as raw text.
//!
//! 200 `text/plain; charset=utf-8` with the bytes from offset `from` (one
//! piece of at most half of `max_output_bytes`, 1 MiB at most), and the
//! headers `X-Tickd-Output-From` (the offset of the first byte),
//! `X-Tickd-Output-Next` (the offset after the last) and
//! `X-Tickd-Output-Done` (`true` once the run has ended and nothing
//! follows). With `follow=1` and the run not ended, the body is
//! `Transfer-Encoding: chunked` (HTTP/1.0: until the close) and goes on as
//! the run prints, until it ends: the rest travels to the loop as an
//! [`HttpFollow`] (the last segment of the batch; requests after it wait).

use super::batch::Segment;
use crate::daemon::{Error, Shared};
use crate::http::response::{self, Framing};
use crate::methods::output::{max_piece, read};
use crate::output::Live;
use crate::protocol::{ErrorCode, RpcError};
use crate::state::run::RunId;
use std::sync::Arc;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A chunked answer that goes on with a run's output, kept by the loop.
#[derive(Debug)]
pub struct HttpFollow {
    /// The run.
    pub run_id: RunId,
    /// Its live output.
    pub live: Arc<Live>,
    /// The offset of the next byte to send.
    pub offset: u64,
    /// Pieces are chunks (else raw bytes up to the close, HTTP/1.0).
    pub chunked: bool,
    /// The connection ends after the answer.
    pub close: bool,
}

/// The query of the route: `from` and `follow`.
fn query(q: &str) -> Result<(u64, bool), RpcError> {
    let (mut from, mut follow) = (0, false);
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "from" => {
                from = v.parse().map_err(|_| {
                    bad("param `from`: must be a non-negative integer (a byte offset)")
                })?;
            }
            "follow" => {
                follow = match v {
                    "1" | "true" | "" => true,
                    "0" | "false" => false,
                    _ => return Err(bad("param `follow`: must be 1 or 0")),
                }
            }
            other => {
                return Err(bad(&format!(
                    "unknown query parameter `{other}`: GET /runs/ID/output takes from and follow"
                )))
            }
        }
    }
    Ok((from, follow))
}

fn bad(message: &str) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message)
}

/// Answers the route for run `id` (as written in the path) into `out`;
/// the follow to keep, if the answer goes on.
pub fn answer(
    shared: &Shared,
    id: &str,
    q: &str,
    version: u8,
    f: Framing,
    out: &mut Vec<u8>,
    segments: &mut Vec<Segment>,
) -> bool {
    let (from, follow) = match query(q) {
        Ok(q) => q,
        Err(e) => {
            response::write_error_status(out, 400, &e, "", f);
            return false;
        }
    };
    let run_id = match id.parse::<RunId>() {
        Ok(n) => n,
        Err(_) => {
            let e = RpcError::from(Error::NoSuchRun(id.to_string()));
            response::write_error(out, &e, "", f);
            return false;
        }
    };
    let max = max_piece(shared.board.live.read().max_output_bytes, false);
    let slice = match read(shared, run_id, from, max) {
        Ok(s) => s,
        Err(e) => {
            response::write_error(out, &RpcError::from(e), "", f);
            return false;
        }
    };
    let extra = format!(
        "X-Tickd-Output-From: {}\r\nX-Tickd-Output-Next: {}\r\nX-Tickd-Output-Done: {}\r\n",
        slice.from,
        slice.next(),
        slice.done
    );
    if !follow || f.head || slice.state.is_terminal() {
        response::write(out, 200, CONTENT_TYPE, &extra, &slice.bytes, f);
        return false;
    }
    let chunked = version >= 1;
    let f = Framing {
        close: f.close || !chunked,
        head: false,
    };
    response::write_stream_head(out, 200, CONTENT_TYPE, &extra, f, chunked);
    if chunked {
        response::write_chunk(out, &slice.bytes);
    } else {
        out.extend_from_slice(&slice.bytes);
    }
    super::batch::flush_bytes(segments, out);
    segments.push(Segment::Follow(Box::new(HttpFollow {
        run_id,
        live: shared.board.outputs.open(run_id),
        offset: slice.next(),
        chunked,
        close: f.close,
    })));
    true
}
