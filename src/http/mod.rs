//! HTTP/1.1 on the TCP listener, for curl, Prometheus and browsers.
//!
//! A TCP connection whose first bytes are an HTTP method
//! ([`frame::sniff`]) is an HTTP connection for its whole life; anything
//! else is JSON-RPC. The two share everything after the bytes: requests go
//! through the same request pool and the same method handlers
//! ([`crate::methods::handle`]), so a JSON body over HTTP is exactly the
//! `result` of the JSON-RPC method, and an error body is its `error` object.
//!
//! - [`frame`] (on the event loop): finds where each request ends, with
//!   bounds on the head and the body, without copying or decoding;
//! - `requests::route` (on a request worker, in the request layer above
//!   this module): parses a framed request, checks `Authorization`, maps
//!   the path to a method and writes the response;
//! - [`response`]: status lines, headers, error bodies;
//! - [`date`]: the `Date` header, formatted once a second;
//! - [`metrics`]: the Prometheus text exposition of `GET /metrics`.
//!
//! Keep-alive is the default (HTTP/1.1); `Connection: close` or HTTP/1.0
//! without `keep-alive` closes after the answer, and every response says
//! which (`Connection: close` or `keep-alive`). An HTTP/1.1 request needs
//! exactly one `Host` (RFC 9112 section 3.2); an absolute-form target
//! (`GET http://127.0.0.1:7070/healthz`) is routed by its path, its
//! authority standing for `Host`. Pipelined requests are
//! answered in order, like JSON-RPC lines. Bodies need `Content-Length`:
//! chunked request bodies are refused with 411.

pub mod date;
pub mod frame;
pub mod metrics;
pub mod response;

/// The status page served at `GET /`, compiled into the binary.
pub const STATUS_PAGE: &str = include_str!("status.html");
