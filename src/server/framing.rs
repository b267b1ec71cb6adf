//! Framing: cutting a connection's whole requests (JSON-RPC lines, or
//! whole HTTP requests, head and body) off the front of its input, as one
//! batch for the request pool, under the connection's limits.
//!
//! These are plain functions of a connection's input buffer and its
//! [`Limits`]; the loop applies what they find ([`Cut`]): it hands a batch
//! to the request pool, sends `100 Continue`, or answers a refusal and
//! closes the connection. They never decode JSON: a line is cut at its
//! newline, an HTTP request where its head and `Content-Length` say.
//!
//! Before a client has authenticated (with auth on), its lines and HTTP
//! bodies are limited to [`PREAUTH_MAX_LINE`](crate::auth::PREAUTH_MAX_LINE)
//! (see [`Limits::line_limit`]), unless an HTTP request carries the right
//! token in its own `Authorization` header; only such a request gets a
//! `100 Continue`.

use super::limits::Limits;
use crate::auth::header_matches;
use crate::http::frame::{self as http_frame, FrameError, Framed};
use crate::requests::Proto;

/// Most request bytes of one connection answered in one batch (a single
/// longer request is cut whole). How far answers can overshoot
/// `max_output_bytes` is bounded by the batch's output budget instead,
/// see [`crate::requests::OutputBudget`].
pub const MAX_BATCH: usize = 64 * 1024;

/// What cutting a connection's input found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// Whole requests, cut off the front of the input, to be answered as
    /// one batch.
    Batch(Vec<u8>),
    /// No whole request yet.
    Partial,
    /// An HTTP request's head is in and acceptable, and asks for
    /// `100 Continue` before it sends its body.
    Continue,
    /// A JSON-RPC line longer than `limit` with no end in sight: refused,
    /// and the connection closed.
    LineTooLong {
        /// The limit it passed.
        limit: usize,
    },
    /// An HTTP request that cannot be framed (the whole requests before
    /// it are cut first): refused, and the connection closed.
    Refused(FrameError),
}

/// Cuts the whole requests off the front of `input`, a connection that
/// speaks `proto`, under `limits`; `authed`: whether the connection has
/// authenticated (or needs not); `continue_sent`: whether `100 Continue`
/// was sent for the HTTP request being received.
pub fn cut(
    proto: Proto,
    input: &mut Vec<u8>,
    continue_sent: bool,
    limits: &Limits,
    authed: bool,
) -> Cut {
    match proto {
        Proto::Rpc => cut_lines(input, limits.line_limit(authed)),
        Proto::Http => cut_http(input, continue_sent, limits, authed),
    }
}

/// JSON-RPC: the complete lines at the front of `input` (about
/// [`MAX_BATCH`] bytes of them at most), or a refusal once an unfinished
/// line is longer than `limit`.
pub fn cut_lines(input: &mut Vec<u8>, limit: usize) -> Cut {
    match take_lines(input, MAX_BATCH) {
        Some(data) => Cut::Batch(data),
        None if input.len() > limit => Cut::LineTooLong { limit },
        None => Cut::Partial,
    }
}

/// HTTP: the whole requests at the front of `input` (head and body; up to
/// about [`MAX_BATCH`] bytes of them), or a refusal of the first request
/// if it cannot be framed (400, 411, 413, 431), or `Continue` for a head
/// that waits for it.
pub fn cut_http(input: &mut Vec<u8>, continue_sent: bool, limits: &Limits, authed: bool) -> Cut {
    let tokens = &limits.tokens;
    // Before authentication, a request without a right token in its own
    // head gets a small body and no `100 Continue`.
    let carries_token = |headers: &[httparse::Header<'_>]| {
        authed
            || headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("authorization")
                    && tokens.find(|t| header_matches(t, h.value)).is_some()
            })
    };
    let body_limit = |headers: &[httparse::Header<'_>]| limits.line_limit(carries_token(headers));
    let mut end = 0;
    let mut refusal = None;
    while end < input.len() && end < MAX_BATCH {
        match http_frame::request_len_with(&input[end..], body_limit) {
            Framed::Complete(n) => end += n,
            Framed::Partial => break,
            Framed::Error(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    if end > 0 {
        return Cut::Batch(take_front(input, end));
    }
    if let Some(e) = refusal {
        return Cut::Refused(e);
    }
    if !continue_sent && http_frame::expects_continue_with(input, carries_token) {
        return Cut::Continue;
    }
    Cut::Partial
}

/// Cuts the complete lines off the front of `input` (at most about
/// `max_batch` bytes of them), or None if there is none. In the common
/// case (input ends with a newline and is small) the buffer is moved out,
/// not copied.
pub fn take_lines(input: &mut Vec<u8>, max_batch: usize) -> Option<Vec<u8>> {
    let window = &input[..input.len().min(max_batch)];
    let end = match window.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        // No newline within the window: take the first line whole, however long.
        None => input.iter().position(|&b| b == b'\n')? + 1,
    };
    Some(take_front(input, end))
}

/// Cuts the first `end` bytes off `input` (moving the buffer out when
/// that is all of it).
pub fn take_front(input: &mut Vec<u8>, end: usize) -> Vec<u8> {
    if end >= input.len() {
        return std::mem::take(input);
    }
    let rest = input.split_off(end);
    std::mem::replace(input, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PREAUTH_MAX_LINE;
    use crate::auth::{NamedToken, Role, Tokens};
    use crate::config::AuthToken;

    fn limits(token: Option<&str>) -> Limits {
        Limits {
            max_connections: 10,
            max_line_bytes: 64 * 1024,
            max_output_bytes: 1 << 20,
            idle_timeout: None,
            tokens: Tokens::new(
                token
                    .map(|t| NamedToken::new("t", AuthToken::new(t), Role::Admin))
                    .into_iter()
                    .collect(),
            ),
            tls: None,
        }
    }

    #[test]
    fn whole_lines_are_moved_out_and_a_partial_one_stays() {
        let mut input = b"{\"a\":1}\n{\"b\":2}\n".to_vec();
        let ptr = input.as_ptr();
        let Cut::Batch(data) = cut_lines(&mut input, 100) else {
            panic!("lines are whole");
        };
        assert_eq!(data, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(data.as_ptr(), ptr, "moved, not copied");
        assert!(input.is_empty() && input.capacity() == 0);

        let mut input = b"{\"a\":1}\n{\"b\"".to_vec();
        assert_eq!(
            cut_lines(&mut input, 100),
            Cut::Batch(b"{\"a\":1}\n".to_vec())
        );
        assert_eq!(input, b"{\"b\"");
        assert_eq!(cut_lines(&mut input, 100), Cut::Partial);
        assert_eq!(input, b"{\"b\"", "kept for the rest to arrive");
    }

    #[test]
    fn a_batch_ends_at_the_last_line_within_max_batch_but_a_long_line_goes_whole() {
        let line = [vec![b'x'; 999], vec![b'\n']].concat();
        let mut input = line.repeat(100);
        let Cut::Batch(first) = cut_lines(&mut input, usize::MAX) else {
            panic!("lines are whole");
        };
        assert_eq!(
            first.len(),
            (MAX_BATCH / 1000) * 1000,
            "whole lines within the window"
        );
        assert_eq!(first.len() + input.len(), 100 * 1000);

        let mut long = [vec![b'y'; MAX_BATCH * 2], b"\nz".to_vec()].concat();
        let Cut::Batch(taken) = cut_lines(&mut long, usize::MAX) else {
            panic!("the line is whole");
        };
        assert_eq!(taken.len(), MAX_BATCH * 2 + 1);
        assert_eq!(long, b"z");
    }

    #[test]
    fn an_unfinished_line_over_the_limit_is_refused() {
        let mut input = vec![b'x'; 101];
        assert_eq!(cut_lines(&mut input, 100), Cut::LineTooLong { limit: 100 });
        let mut input = vec![b'x'; 100];
        assert_eq!(
            cut_lines(&mut input, 100),
            Cut::Partial,
            "at the limit: waits"
        );
    }

    #[test]
    fn strangers_get_the_short_line_limit() {
        let l = limits(Some("sesame"));
        let mut input = vec![b'x'; PREAUTH_MAX_LINE + 1];
        assert_eq!(
            cut(Proto::Rpc, &mut input, false, &l, false),
            Cut::LineTooLong {
                limit: PREAUTH_MAX_LINE
            }
        );
        assert_eq!(cut(Proto::Rpc, &mut input, false, &l, true), Cut::Partial);
    }

    const GET: &[u8] = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn whole_http_requests_are_cut_and_a_partial_one_waits() {
        let l = limits(None);
        let mut input = [GET, GET, &GET[..10]].concat();
        assert_eq!(
            cut(Proto::Http, &mut input, false, &l, true),
            Cut::Batch([GET, GET].concat())
        );
        assert_eq!(input, &GET[..10]);
        assert_eq!(cut(Proto::Http, &mut input, false, &l, true), Cut::Partial);
    }

    #[test]
    fn a_bad_request_is_refused_after_the_good_ones_before_it() {
        let l = limits(None);
        let mut input = [GET, b"NONSENSE\x01\r\n\r\n"].concat();
        assert_eq!(
            cut_http(&mut input, false, &l, true),
            Cut::Batch(GET.to_vec())
        );
        assert!(matches!(
            cut_http(&mut input, false, &l, true),
            Cut::Refused(FrameError::Malformed(_))
        ));
        let mut chunked = b"POST /rpc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        assert_eq!(
            cut_http(&mut chunked, false, &l, true),
            Cut::Refused(FrameError::Chunked)
        );
    }

    fn post(len: usize, extra: &str) -> Vec<u8> {
        let head = format!("POST /rpc HTTP/1.1\r\nContent-Length: {len}\r\n{extra}\r\n");
        [head.into_bytes(), vec![b'x'; len]].concat()
    }

    #[test]
    fn a_stranger_gets_a_small_body_unless_the_request_carries_the_token() {
        let l = limits(Some("sesame"));
        let big = PREAUTH_MAX_LINE + 1;
        assert_eq!(
            cut_http(&mut post(big, ""), false, &l, false),
            Cut::Refused(FrameError::BodyTooLarge(PREAUTH_MAX_LINE))
        );
        assert_eq!(
            cut_http(
                &mut post(big, "Authorization: Bearer wrong\r\n"),
                false,
                &l,
                false
            ),
            Cut::Refused(FrameError::BodyTooLarge(PREAUTH_MAX_LINE))
        );
        let mut with_token = post(big, "Authorization: Bearer sesame\r\n");
        assert_eq!(
            cut_http(&mut with_token.clone(), false, &l, false),
            Cut::Batch(with_token.clone())
        );
        assert!(matches!(
            cut_http(&mut with_token, false, &l, true),
            Cut::Batch(_)
        ));
        let over = l.max_line_bytes + 1;
        assert_eq!(
            cut_http(&mut post(over, ""), false, &l, true),
            Cut::Refused(FrameError::BodyTooLarge(l.max_line_bytes)),
            "the full limit still applies"
        );
    }

    #[test]
    fn continue_is_asked_once_and_only_with_the_right_to_send_a_body() {
        let l = limits(Some("sesame"));
        let head = |extra: &str| {
            format!(
                "POST /rpc HTTP/1.1\r\nContent-Length: 100\r\nExpect: 100-continue\r\n{extra}\r\n"
            )
            .into_bytes()
        };
        assert_eq!(cut_http(&mut head(""), false, &l, true), Cut::Continue);
        assert_eq!(
            cut_http(&mut head(""), true, &l, true),
            Cut::Partial,
            "sent already"
        );
        assert_eq!(
            cut_http(&mut head(""), false, &l, false),
            Cut::Partial,
            "a stranger gets no go-ahead"
        );
        assert_eq!(
            cut_http(
                &mut head("Authorization: Bearer sesame\r\n"),
                false,
                &l,
                false
            ),
            Cut::Continue
        );
    }

    #[test]
    fn take_front_moves_the_whole_buffer_or_splits_it() {
        let mut input = b"abcdef".to_vec();
        assert_eq!(take_front(&mut input, 2), b"ab");
        assert_eq!(input, b"cdef");
        assert_eq!(take_front(&mut input, 10), b"cdef");
        assert!(input.is_empty());
        assert_eq!(take_lines(&mut input, MAX_BATCH), None);
    }
}
