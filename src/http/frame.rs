//! Finding HTTP requests in a connection's input, on the event loop.
//!
//! The loop only needs to know where each request ends, so it can hand
//! whole requests to a request worker. That takes parsing the head (with
//! `httparse`, into a header array on the stack) and reading
//! `Content-Length`; nothing is copied or decoded. Limits are enforced
//! here, before anything is buffered past them: the head is at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, the body at most the
//! caller's limit (`max_line_bytes`).

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// Methods whose name at the start of a connection makes it HTTP.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// What the first bytes of a connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// An HTTP method followed by a space.
    Http,
    /// Anything else: JSON-RPC lines.
    Rpc,
    /// Too few bytes to tell (a prefix of a method name).
    Unknown,
}

/// Classifies a connection by its first bytes. Only called until the
/// connection is classified, so it costs nothing per request.
pub fn sniff(input: &[u8]) -> Sniff {
    let mut prefix = false;
    for m in METHODS {
        if input.starts_with(m) {
            return Sniff::Http;
        }
        if m.starts_with(input) {
            prefix = true;
        }
    }
    if prefix {
        Sniff::Unknown
    } else {
        Sniff::Rpc
    }
}

/// Why a request cannot be framed; the connection is answered and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not HTTP/1.x (400).
    Malformed(String),
    /// The head passes [`MAX_HEAD`] or [`MAX_HEADERS`] (431).
    HeadTooLarge,
    /// `Content-Length` over the body limit (413).
    BodyTooLarge(usize),
    /// A `Transfer-Encoding` body, which tickd does not decode (411).
    Chunked,
}

impl FrameError {
    /// The HTTP status answering this error.
    pub fn status(&self) -> u16 {
        match self {
            FrameError::Malformed(_) => 400,
            FrameError::HeadTooLarge => 431,
            FrameError::BodyTooLarge(_) => 413,
            FrameError::Chunked => 411,
        }
    }

    /// What to tell the client.
    pub fn message(&self) -> String {
        match self {
            FrameError::Malformed(why) => format!("bad request: {why}"),
            FrameError::HeadTooLarge => format!(
                "request head too large (at most {MAX_HEAD} bytes and {MAX_HEADERS} headers)"
            ),
            FrameError::BodyTooLarge(limit) => {
                format!("request body too large (max_line_bytes = {limit})")
            }
            FrameError::Chunked => {
                "chunked request bodies are not supported; send Content-Length".to_string()
            }
        }
    }
}

/// Where the first request in the buffer ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// The first request is complete and this many bytes long.
    Complete(usize),
    /// More bytes are needed.
    Partial,
    /// The request is refused.
    Error(FrameError),
}

/// Frames the first request of `buf`, refusing bodies over `max_body`.
pub fn request_len(buf: &[u8], max_body: usize) -> Framed {
    request_len_with(buf, |_| max_body)
}

/// [`request_len`] with a body limit that depends on the head: the loop
/// allows a client that has not authenticated only a small body unless
/// the request itself carries the right token.
pub fn request_len_with(buf: &[u8], max_body: impl Fn(&[httparse::Header<'_>]) -> usize) -> Framed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Framed::Error(FrameError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Framed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Framed::Error(FrameError::HeadTooLarge),
        Err(e) => return Framed::Error(FrameError::Malformed(e.to_string())),
    };
    if head > MAX_HEAD {
        return Framed::Error(FrameError::HeadTooLarge);
    }
    let max_body = max_body(req.headers);
    match body_len(req.headers) {
        Ok(len) if len > max_body => Framed::Error(FrameError::BodyTooLarge(max_body)),
        Ok(len) if buf.len() - head >= len => Framed::Complete(head + len),
        Ok(_) => Framed::Partial,
        Err(e) => Framed::Error(e),
    }
}

/// Whether the request at the start of `buf` has a complete head that
/// asks `Expect: 100-continue` (curl does for bodies over 1 KiB, then
/// waits a second for the go-ahead unless it gets one).
pub fn expects_continue(buf: &[u8]) -> bool {
    expects_continue_with(buf, |_| true)
}

/// [`expects_continue`], and `allowed` agrees with the head (the loop
/// sends `100 Continue` to a client that has not authenticated only when
/// the request carries the right token).
pub fn expects_continue_with(
    buf: &[u8],
    allowed: impl Fn(&[httparse::Header<'_>]) -> bool,
) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    matches!(req.parse(buf), Ok(httparse::Status::Complete(_)))
        && allowed(req.headers)
        && req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue")
        })
}

/// The body length a head announces: `Content-Length` (0 when absent).
pub fn body_len(headers: &[httparse::Header<'_>]) -> Result<usize, FrameError> {
    let mut len = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(FrameError::Chunked);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| FrameError::Malformed("invalid Content-Length".into()))?;
            if len.is_some_and(|l| l != n) {
                return Err(FrameError::Malformed("conflicting Content-Length".into()));
            }
            len = Some(n);
        }
    }
    Ok(len.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_methods_and_json() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"POST /reload"), Sniff::Http);
        assert_eq!(sniff(b"PO"), Sniff::Unknown);
        assert_eq!(sniff(b""), Sniff::Unknown);
        assert_eq!(sniff(b"{\"method\":\"ping\"}\n"), Sniff::Rpc);
        assert_eq!(sniff(b"GETX"), Sniff::Rpc);
        assert_eq!(sniff(b"\n"), Sniff::Rpc);
    }

    #[test]
    fn frames_heads_and_bodies() {
        let get = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(request_len(get, 10), Framed::Complete(get.len()));
        assert_eq!(request_len(&get[..20], 10), Framed::Partial);
        let post = b"POST /jobs/a/run HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}\r\n";
        assert_eq!(request_len(post, 10), Framed::Complete(post.len()));
        assert_eq!(request_len(&post[..post.len() - 1], 10), Framed::Partial);
        let mut two = get.to_vec();
        two.extend_from_slice(get);
        assert_eq!(request_len(&two, 10), Framed::Complete(get.len()));
    }

    #[test]
    fn sees_expect_continue_once_the_head_is_complete() {
        let head =
            b"POST /jobs/a/run HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n";
        assert!(expects_continue(head));
        assert!(!expects_continue(&head[..20]));
        assert!(!expects_continue(
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n"
        ));
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        let big = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(
            request_len(big, 10),
            Framed::Error(FrameError::BodyTooLarge(10))
        );
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(request_len(chunked, 10), Framed::Error(FrameError::Chunked));
        let bad_len = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(
            request_len(bad_len, 10),
            Framed::Error(FrameError::Malformed(_))
        ));
        assert!(matches!(
            request_len(b"GET /\x01 HTTP/1.1\r\n\r\n", 10),
            Framed::Error(FrameError::Malformed(_))
        ));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 1, b'a');
        assert_eq!(
            request_len(&long, 10),
            Framed::Error(FrameError::HeadTooLarge)
        );
    }
}
