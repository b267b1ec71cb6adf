//! Fuzz target: the line framer and the JSON-RPC decoder, as the server
//! uses them on a connection's bytes. Any input must be cut into lines and
//! decoded (or refused with an error) without a panic, and every answer the
//! server would write for it must be one line of valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickd::protocol::codec::{Frame, LineFramer};
use tickd::protocol::rpc;

/// The server's default `max_line_bytes` is larger; a small limit makes the
/// fuzzer reach the "too long" path too.
const MAX_LINE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut framer = LineFramer::new(MAX_LINE);
    loop {
        match framer.next_frame(data) {
            Frame::Line(line) => {
                assert!(!line.contains(&b'\n'));
                assert!(line.len() <= MAX_LINE);
                check_answer(line);
            }
            Frame::Incomplete | Frame::TooLong => break,
        }
        assert!(framer.consumed() <= data.len());
    }
});

/// Decodes one line and writes the answer the server would send for a
/// refused request; it must be exactly one line of JSON.
fn check_answer(line: &[u8]) {
    let mut out = Vec::new();
    match rpc::parse_request(line) {
        Ok(request) => {
            let _ = request.params.get("name");
            rpc::write_result(&mut out, &request.id, &request.method);
        }
        Err((id, err)) => rpc::write_error(&mut out, &id, &err),
    }
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(out.last(), Some(&b'\n'));
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out);
    assert!(parsed.is_ok(), "answer is not JSON: {:?}", String::from_utf8_lossy(&out));
}
