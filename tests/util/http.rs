//! A raw HTTP/1.1 client over `TcpStream`, like curl but explicit about
//! every byte: keep-alive, pipelining and malformed requests included.

use super::WAIT;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The reason phrase of the status line (`Not Found`).
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// A keep-alive HTTP connection.
pub struct HttpConn {
    pub reader: BufReader<TcpStream>,
}

impl HttpConn {
    /// Connects with a read timeout of [`WAIT`].
    pub fn connect(addr: SocketAddr) -> HttpConn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        HttpConn {
            reader: BufReader::new(s),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Sends one request (with `Content-Length` when there is a body) and
    /// reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.send(&request_bytes(method, path, headers, body));
        self.read_response()
    }

    /// Reads a `100 Continue` interim response (and asserts it is one).
    pub fn read_continue(&mut self) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        line.clear();
        self.reader.read_line(&mut line).expect("read");
        assert_eq!(line, "\r\n");
    }

    /// Reads one response; panics on EOF.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response().expect("a response, got EOF")
    }

    /// Reads one response, or None on EOF before its first byte.
    pub fn try_read_response(&mut self) -> Option<Response> {
        self.read_with_body(true)
    }

    /// Sends `HEAD path` and reads the response, which has no body.
    pub fn head(&mut self, path: &str) -> Response {
        self.send(&request_bytes("HEAD", path, &[], ""));
        self.read_with_body(false).expect("a response, got EOF")
    }

    fn read_with_body(&mut self, with_body: bool) -> Option<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).expect("read status line") == 0 {
            return None;
        }
        let mut parts = line.trim_end_matches(['\r', '\n']).splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).expect("status");
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("header has a colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let chunked = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
        let body = if chunked && with_body {
            self.read_chunked()
        } else {
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().expect("numeric length"))
                .unwrap_or_else(|| {
                    assert!(chunked, "Content-Length on every response not chunked");
                    0
                });
            let mut body = vec![0; if with_body { len } else { 0 }];
            self.reader.read_exact(&mut body).expect("body");
            body
        };
        Some(Response {
            status,
            reason,
            headers,
            body: String::from_utf8(body).expect("utf8 body"),
        })
    }

    /// A body in the chunked transfer coding, decoded (no trailers).
    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("chunk size line");
            let size = usize::from_str_radix(line.trim_end_matches(['\r', '\n']), 16)
                .unwrap_or_else(|e| panic!("chunk size {line:?}: {e}"));
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).expect("chunk");
            assert_eq!(&chunk[size..], b"\r\n", "chunk ends with CRLF");
            if size == 0 {
                return body;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(super::read_some(&mut self.reader, &mut buf), Ok(0) | Err(_))
    }
}

/// The bytes of one request. A POST says `Content-Type: application/json`
/// (which tickd requires) unless `headers` name another type.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let typed = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if method == "POST" && !typed {
        req.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    HttpConn::connect(addr).request("GET", path, &[], "")
}

/// One POST on a fresh connection.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    HttpConn::connect(addr).request("POST", path, &[], body)
}
