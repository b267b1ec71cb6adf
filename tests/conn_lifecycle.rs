//! How connections end, through the real binary: a client that shuts down
//! its writing side gets every answer and then the close (both protocols,
//! many times over, since the bug was a race); an error after valid
//! requests in the same write is sent after their answers, then the
//! connection closes; idle limits with auth on (strangers, authenticated
//! clients); and closes counted by their cause in `/metrics`.

mod util;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use util::http::{request_bytes, HttpConn};
use util::{config, Daemon, WAIT};

/// Rounds of each half-close test: the lost end-of-stream showed in about
/// one run in six, so 50 rounds miss it with odds below one in 10,000.
const HALF_CLOSE_ROUNDS: usize = 50;

/// A TCP connection with the tests' read timeout.
fn connect(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(d.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Reads until the daemon closes; panics if it does not within [`WAIT`].
fn read_to_close(s: &mut TcpStream, what: &str) -> String {
    let mut all = Vec::new();
    if let Err(e) = s.read_to_end(&mut all) {
        panic!(
            "{what}: the daemon did not close the connection ({e}); got {:?}",
            String::from_utf8_lossy(&all)
        );
    }
    String::from_utf8(all).expect("utf8")
}

/// One JSON-RPC round: an exchange first (so the daemon has accepted the
/// connection and is back waiting), then two requests and the shutdown of
/// our writing side back to back, so the end-of-stream often arrives with
/// the data.
fn half_close_rpc_round(d: &Daemon, round: usize) {
    let mut s = connect(d);
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}\n")
        .expect("write");
    let mut first = [0u8; 64];
    let n = s.read(&mut first).expect("first answer");
    assert!(n > 0, "round {round}: closed before the first answer");
    let mut burst = Vec::new();
    for id in 1..=2 {
        burst.extend_from_slice(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
        );
    }
    s.write_all(&burst).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let got = read_to_close(&mut s, &format!("JSON-RPC round {round}"));
    let answers: Vec<Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2)], "round {round}: {got:?}");
}

/// [`half_close_rpc_round`] over HTTP/1.1 keep-alive.
fn half_close_http_round(d: &Daemon, round: usize) {
    let mut c = HttpConn::connect(d.addr);
    assert_eq!(c.request("GET", "/healthz", &[], "").status, 200);
    let mut burst = request_bytes("GET", "/healthz", &[], "");
    burst.extend_from_slice(&request_bytes("GET", "/healthz", &[], ""));
    c.send(&burst);
    c.reader
        .get_ref()
        .shutdown(Shutdown::Write)
        .expect("shutdown");
    for i in 0..2 {
        let r = c
            .try_read_response()
            .unwrap_or_else(|| panic!("HTTP round {round}: EOF before answer {i}"));
        assert_eq!(r.status, 200, "HTTP round {round}");
    }
    let mut rest = Vec::new();
    if let Err(e) = c.reader.read_to_end(&mut rest) {
        panic!("HTTP round {round}: the daemon did not close the connection ({e})");
    }
    assert!(rest.is_empty(), "HTTP round {round}: {rest:?}");
}

#[test]
fn a_half_closed_client_gets_every_answer_then_the_close() {
    let d = Daemon::start(&config("", ""));
    for round in 0..HALF_CLOSE_ROUNDS {
        half_close_rpc_round(&d, round);
        half_close_http_round(&d, round);
    }
}

/// Sends `GET /healthz` and `second` in one write: the 200 must come,
/// then `second`'s error answer with status `status`, then the close.
fn http_error_after_a_valid_request(d: &Daemon, second: &[u8], status: u16) {
    let mut c = HttpConn::connect(d.addr);
    let mut burst = request_bytes("GET", "/healthz", &[], "");
    burst.extend_from_slice(second);
    c.send(&burst);
    assert_eq!(c.read_response().status, 200);
    let refused = c
        .try_read_response()
        .unwrap_or_else(|| panic!("no {status} answer before the close"));
    assert_eq!(refused.status, status, "{refused:?}");
    assert_eq!(refused.header("connection"), Some("close"));
    let mut rest = Vec::new();
    if let Err(e) = c.reader.read_to_end(&mut rest) {
        panic!("after the {status}: the daemon did not close the connection ({e})");
    }
    assert!(rest.is_empty(), "after the {status}: {rest:?}");
}

#[test]
fn an_http_error_after_a_valid_request_is_sent_then_the_connection_closes() {
    let d = Daemon::start(&config("", ""));
    let too_big = "POST /rpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    http_error_after_a_valid_request(&d, too_big.as_bytes(), 413);
    let malformed = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n";
    http_error_after_a_valid_request(&d, malformed.as_bytes(), 400);
    let chunked = "POST /rpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    http_error_after_a_valid_request(&d, chunked.as_bytes(), 411);
    let huge_head = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(64 * 1024)
    );
    http_error_after_a_valid_request(&d, huge_head.as_bytes(), 431);
}

#[test]
fn a_line_over_the_limit_after_a_valid_line_is_answered_then_the_connection_closes() {
    let d = Daemon::start(&config("max_line_bytes = 1024", ""));
    // The long line still arriving (no newline yet), and complete.
    for tail in ["", "\n"] {
        let mut s = connect(&d);
        let mut burst = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n".to_vec();
        burst.extend_from_slice(format!("{{\"pad\":\"{}\"}}{tail}", "x".repeat(4000)).as_bytes());
        s.write_all(&burst).expect("write");
        let got = read_to_close(&mut s, &format!("long line {tail:?}"));
        let answers: Vec<Value> = got
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(answers.len(), 2, "{got:?}");
        assert_eq!(answers[0]["result"], json!("pong"), "{got:?}");
        assert_eq!(answers[1]["error"]["code"], json!(-32600), "{got:?}");
        assert_eq!(answers[1]["id"], Value::Null, "{got:?}");
    }
}
