//! Fuzz target: the HTTP request path as the event loop runs it on a TCP
//! connection's input: sniff HTTP from JSON-RPC, then frame one request
//! after another (head parsed with httparse, `Content-Length` read, limits
//! checked). Any input must be framed, asked for more, or refused with an
//! HTTP status, never a panic; a framed request lies within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickd::http::frame::{self, Framed, Sniff};

/// A small body limit (the server uses `max_line_bytes`), so the fuzzer
/// reaches the "too large" path too.
const MAX_BODY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if frame::sniff(data) != Sniff::Http {
        return;
    }
    let mut rest = data;
    loop {
        match frame::request_len(rest, MAX_BODY) {
            Framed::Complete(n) => {
                assert!(n > 0 && n <= rest.len(), "framed {n} of {}", rest.len());
                rest = &rest[n..];
            }
            Framed::Partial => break,
            Framed::Error(e) => {
                assert!((400..500).contains(&e.status()));
                assert!(!e.message().is_empty());
                break;
            }
        }
    }
});
