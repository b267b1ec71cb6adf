//! Writing HTTP/1.1 responses.
//!
//! Every response carries a `Date` ([`super::date`]), `Content-Length` (so
//! keep-alive works) and `Connection`: `close` when the connection ends
//! after it, `keep-alive` otherwise (HTTP/1.1 implies it; an HTTP/1.0
//! client that asked for it needs to read it). The status line has the
//! standard reason phrase ([`reason`]). Error bodies are the
//! JSON-RPC error object (`{"code":..,"message":..}`), and the status is
//! derived from its code ([`status_of`]).

use crate::protocol::{ErrorCode, RpcError};
use serde::Serialize;
use std::io::Write;

/// How a response is sent, besides its status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Close the connection after this response.
    pub close: bool,
    /// A `HEAD` request: headers only.
    pub head: bool,
}

/// The HTTP status for a JSON-RPC error code.
pub fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Parse | ErrorCode::InvalidRequest | ErrorCode::InvalidParams => 400,
        ErrorCode::NotAuthenticated => 401,
        ErrorCode::Forbidden => 403,
        ErrorCode::MethodNotFound | ErrorCode::NotFound => 404,
        ErrorCode::Conflict => 409,
        ErrorCode::Overloaded => 503,
        ErrorCode::Internal => 500,
    }
}

/// The reason phrase of a status: the one RFC 9110 section 15 gives it
/// (429 and 431 are RFC 6585's), so every status tickd can send has its
/// standard phrase. A code with none gets an empty phrase, which HTTP/1.1
/// allows (`HTTP/1.1 599 `), rather than a made-up one.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends a response. `extra` holds additional header lines, each
/// ending in `\r\n`.
pub fn write(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &str,
    body: &[u8],
    f: Framing,
) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    super::date::push_header(out);
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{extra}",
        body.len()
    );
    // Said both ways, as nginx does: an HTTP/1.0 client that asked for
    // keep-alive (`ab -k`) waits for the close unless told otherwise.
    if f.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !f.head {
        out.extend_from_slice(body);
    }
}

/// Appends the head of a response whose body is sent in pieces, its
/// length unknown: `Transfer-Encoding: chunked` if `chunked` (HTTP/1.1;
/// each piece then goes through [`write_chunk`], and [`LAST_CHUNK`] ends
/// the body), else a body that ends with the connection (HTTP/1.0, whose
/// `f.close` must be set). `extra` holds additional header lines, each
/// ending in `\r\n`.
pub fn write_stream_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &str,
    f: Framing,
    chunked: bool,
) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    super::date::push_header(out);
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nCache-Control: no-store\r\n{extra}"
    );
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if f.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `data` as one chunk of the chunked transfer coding (nothing
/// for no data: an empty chunk would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, which ends a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a JSON response (the body ends with a newline, for terminals).
pub fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, status: u16, value: &T, f: Framing) {
    let mut body = Vec::with_capacity(256);
    if serde_json::to_writer(&mut body, value).is_err() {
        let err = RpcError::new(
            ErrorCode::Internal,
            "internal error: result not serializable",
        );
        write_error(out, &err, "", f);
        return;
    }
    body.push(b'\n');
    write(out, status, "application/json", "", &body, f);
}

/// Appends an error response: the JSON-RPC error object, with the status
/// of its code.
pub fn write_error(out: &mut Vec<u8>, err: &RpcError, extra: &str, f: Framing) {
    write_error_status(out, status_of(err.code), err, extra, f);
}

/// Appends an error response with an explicit status (405, 411, 413...).
pub fn write_error_status(out: &mut Vec<u8>, status: u16, err: &RpcError, extra: &str, f: Framing) {
    #[derive(Serialize)]
    struct Body<'a> {
        code: i64,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a serde_json::Value>,
    }
    let body = Body {
        code: err.code.code(),
        message: &err.message,
        data: err.data.as_ref(),
    };
    let mut bytes = serde_json::to_vec(&body)
        .unwrap_or_else(|_| br#"{"code":-32603,"message":"internal error"}"#.to_vec());
    bytes.push(b'\n');
    write(out, status, "application/json", extra, &bytes, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_length_and_close() {
        let mut out = Vec::new();
        let f = Framing {
            close: true,
            head: false,
        };
        write(&mut out, 200, "text/plain", "", b"ok\n", f);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nok\n"));
    }

    #[test]
    fn errors_map_to_statuses_with_the_rpc_error_body() {
        let mut out = Vec::new();
        let f = Framing {
            close: false,
            head: false,
        };
        let no_job = crate::daemon::Error::NoSuchJob("x".into());
        write_error(&mut out, &RpcError::from(no_job), "", f);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.ends_with("{\"code\":-32000,\"message\":\"no such job: x\"}\n"));
        assert_eq!(status_of(ErrorCode::Conflict), 409);
        assert_eq!(status_of(ErrorCode::Overloaded), 503);
    }

    #[test]
    fn every_status_tickd_sends_has_its_standard_reason_phrase() {
        // Each status the daemon can send (route.rs, frame.rs, the loop's
        // 100 Continue and max_connections 503), with RFC 9110's phrase.
        for (status, phrase) in [
            (100, "Continue"),
            (200, "OK"),
            (202, "Accepted"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (409, "Conflict"),
            (411, "Length Required"),
            (413, "Content Too Large"),
            (415, "Unsupported Media Type"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            assert_eq!(reason(status), phrase, "{status}");
        }
        let mut out = Vec::new();
        let f = Framing {
            close: false,
            head: false,
        };
        let err = RpcError::new(ErrorCode::InvalidRequest, "x");
        write_error_status(&mut out, 415, &err, "", f);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 415 Unsupported Media Type\r\n"));
        // No status of an error code falls back to an empty phrase.
        for code in [
            ErrorCode::Parse,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidParams,
            ErrorCode::NotAuthenticated,
            ErrorCode::Forbidden,
            ErrorCode::MethodNotFound,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
        ] {
            assert!(!reason(status_of(code)).is_empty(), "{code:?}");
        }
        assert_eq!(reason(599), "");
    }

    #[test]
    fn a_streamed_body_is_chunked_or_ends_with_the_connection() {
        let mut out = Vec::new();
        let keep = Framing {
            close: false,
            head: false,
        };
        write_stream_head(&mut out, 200, "text/plain", "", keep, true);
        write_chunk(&mut out, b"hello ");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(
            text.ends_with(&format!(
                "\r\n\r\n6\r\nhello \r\n1a\r\n{}\r\n0\r\n\r\n",
                "x".repeat(26)
            )),
            "{text}"
        );
        let mut out = Vec::new();
        let close = Framing {
            close: true,
            head: false,
        };
        write_stream_head(&mut out, 200, "text/plain", "", close, false);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(!text.contains("Transfer-Encoding") && !text.contains("Content-Length"));
    }

    #[test]
    fn every_response_has_a_date_and_says_whether_it_keeps_the_connection() {
        let mut out = Vec::new();
        let keep = Framing {
            close: false,
            head: false,
        };
        write(&mut out, 200, "text/plain", "", b"ok\n", keep);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("\r\nDate: "), "{text}");
        assert!(text.contains(" GMT\r\n"), "{text}");
        assert!(text.contains("Connection: keep-alive\r\n"), "{text}");
        assert!(!text.contains("Connection: close"), "{text}");
    }
}
