//! The http, sql and file.prune job kinds through the real binary.
//!
//! HTTP jobs talk to a tiny server run by the test on 127.0.0.1 (one thread
//! answering a fixed list of connections with hand-written responses); sql
//! jobs use SQLite files the test opens too; file.prune jobs prune trees the
//! test builds in a temp dir. Every wait is a deadline-bounded poll.

mod util;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::{config, Daemon, WAIT};

// ---------------------------------------------------------------- http ---

/// What the test server does with one connection, after reading a request.
enum Reply {
    /// Writes these bytes and closes.
    Send(Vec<u8>),
    /// Never answers; waits for the client to give up.
    Silent,
}

/// One request as the server received it.
struct Seen {
    /// Request line and headers.
    head: String,
    body: Vec<u8>,
}

/// A server answering one connection per reply, then stopping.
struct Server {
    url: String,
    seen: mpsc::Receiver<Seen>,
}

impl Server {
    /// The next request received.
    fn request(&self) -> Seen {
        self.seen
            .recv_timeout(WAIT)
            .expect("a request reached the server")
    }
}

/// An HTTP/1.1 response with a body.
fn response(status: &str, body: &[u8]) -> Reply {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    Reply::Send(bytes)
}

/// Starts a server on 127.0.0.1:0 for `replies`, one connection each.
fn serve(replies: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for reply in replies {
            let Some(mut stream) = accept(&listener) else {
                return;
            };
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            let _ = tx.send(request);
            match reply {
                Reply::Send(bytes) => {
                    let _ = stream.write_all(&bytes);
                }
                Reply::Silent => {
                    // Returns when the client closes (or after WAIT).
                    let _ = stream.read(&mut [0u8; 1]);
                }
            }
        }
    });
    Server { url, seen }
}

/// The next connection, or None after [`WAIT`].
fn accept(listener: &TcpListener) -> Option<TcpStream> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_nonblocking(false).ok()?;
            stream.set_read_timeout(Some(WAIT)).ok()?;
            return Some(stream);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Reads a request head and its Content-Length body.
fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    Some(Seen { head, body })
}

/// A daemon with one http job `h` on `url` plus `extra` job keys.
fn http_daemon(url: &str, extra: &str) -> Daemon {
    let jobs = format!("[[jobs]]\nname = \"h\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n");
    Daemon::start(&config("", &jobs))
}

/// Runs job `name` and waits for its end.
fn run_job(d: &Daemon, name: &str) -> Value {
    d.client()
        .ok("jobs.run", json!({"name": name, "wait": true}))
}

fn error_of(run: &Value) -> &str {
    run["error"].as_str().unwrap_or("")
}

#[test]
fn http_200_succeeds_with_status_and_body() {
    let server = serve(vec![response("200 OK", b"all good")]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["exit_code"], json!(null));
    assert_eq!(run["error"], json!(null));
    assert_eq!(run["output"], json!("all good"));
    assert_eq!(
        run["result"],
        json!({"status": 200, "body_bytes": 8, "truncated": false})
    );
    let seen = server.request();
    assert!(
        seen.head.starts_with("GET /hook HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
}

#[test]
fn http_500_fails_with_the_status_in_the_error() {
    let server = serve(vec![response("500 Internal Server Error", b"boom")]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert_eq!(error_of(&run), "unexpected status 500 (expected 2xx)");
    assert_eq!(run["result"]["status"], json!(500));
    assert_eq!(run["output"], json!("boom"));
}

#[test]
fn http_expect_status_accepts_that_status() {
    let server = serve(vec![response("404 Not Found", b"")]);
    let d = http_daemon(&server.url, "expect_status = 404");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["result"]["status"], json!(404));
}

#[test]
fn http_post_sends_method_headers_and_body() {
    let server = serve(vec![response("201 Created", b"made")]);
    let extra = r#"method = "post"
headers = { "X-Token" = "abc123", "Content-Type" = "application/json" }
body = '{"hello": "world"}'"#;
    let d = http_daemon(&server.url, extra);
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    let seen = server.request();
    assert!(
        seen.head.starts_with("POST /hook HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    let head = seen.head.to_ascii_lowercase();
    assert!(head.contains("\r\nx-token: abc123"), "{}", seen.head);
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{}",
        seen.head
    );
    assert_eq!(seen.body, br#"{"hello": "world"}"#);
}

#[test]
fn http_refused_connection_fails_clearly() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/x");
    let d = http_daemon(&url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert_eq!(
        error_of(&run),
        format!("http GET {url}: connection refused"),
        "{run}"
    );
}

#[test]
fn http_silent_server_times_out() {
    let server = serve(vec![Reply::Silent]);
    let d = http_daemon(&server.url, "timeout = \"500ms\"");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("timed_out"), "{run}");
    assert_eq!(error_of(&run), "timed out after 500ms");
    let ms = run["duration_ms"].as_u64().expect("duration");
    assert!((500..10_000).contains(&ms), "{run}");
    server.request();
}

#[test]
fn http_large_body_keeps_a_bounded_tail() {
    let mut body = vec![b'a'; 1024 * 1024];
    body.extend_from_slice(b"THE END");
    let server = serve(vec![response("200 OK", &body)]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{}", run["error"]);
    assert_eq!(run["result"]["body_bytes"], json!(1024 * 1024 + 7));
    assert_eq!(run["result"]["truncated"], json!(true));
    let output = run["output"].as_str().expect("output");
    assert_eq!(output.len(), 64 * 1024);
    assert!(output.ends_with("aaaTHE END"));
}
