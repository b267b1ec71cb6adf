//! HTTP conformance (RFC 9110, RFC 9112) through the real binary: the
//! `Date` header, standard reason phrases, `Host` rules, HTTP/1.0
//! keep-alive and absolute-form request targets (issue 14, items 22 and
//! 12).

use crate::util;

use serde_json::json;
use util::http::{get, post, HttpConn};
use util::{config, Daemon};

const JOBS: &str = r#"
[[jobs]]
name = "hello"
kind = "exec"
command = ["sh", "-c", "echo hi"]
"#;

fn daemon() -> Daemon {
    Daemon::start(&config("max_line_bytes = 4096", JOBS))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) strictly.
fn imf_fixdate(value: &str) -> jiff::Timestamp {
    assert_eq!(value.len(), 29, "Date {value:?}");
    jiff::civil::DateTime::strptime("%a, %d %b %Y %H:%M:%S GMT", value)
        .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC))
        .unwrap_or_else(|e| panic!("Date {value:?} is not an IMF-fixdate: {e}"))
        .timestamp()
}

#[test]
fn every_response_has_a_date_and_its_standard_reason_phrase() {
    let d = daemon();
    let before = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    let mut c = HttpConn::connect(d.addr);
    let mut seen = Vec::new();
    let mut check = |r: util::http::Response, status: u16, reason: &str| {
        assert_eq!(
            (r.status, r.reason.as_str()),
            (status, reason),
            "{}",
            r.body
        );
        let date = r
            .header("date")
            .unwrap_or_else(|| panic!("no Date on {status}: {:?}", r.headers));
        let date = imf_fixdate(date);
        let after = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
        assert!(before <= date && date <= after, "{date} not now");
        seen.push(status);
    };
    check(c.request("GET", "/healthz", &[], ""), 200, "OK");
    check(
        c.request("POST", "/jobs/hello/run", &[], ""),
        202,
        "Accepted",
    );
    check(c.request("GET", "/jobs/nope", &[], ""), 404, "Not Found");
    check(
        c.request("GET", "/jobs/hello/run", &[], ""),
        405,
        "Method Not Allowed",
    );
    check(
        c.request("POST", "/reload", &[("Content-Type", "text/plain")], ""),
        415,
        "Unsupported Media Type",
    );
    check(
        c.request("GET", "/runs?limit=x%zz", &[], ""),
        400,
        "Bad Request",
    );
    check(
        c.request("GET", "/status", &[("Host", "evil.example")], ""),
        403,
        "Forbidden",
    );
    // Refusals from the event loop, each of which closes its connection.
    let raw = |bytes: &[u8]| {
        let mut c = HttpConn::connect(d.addr);
        c.send(bytes);
        c.read_response()
    };
    check(
        raw(b"POST /reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999\r\n\r\n"),
        413,
        "Content Too Large",
    );
    check(
        raw(b"POST /reload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"),
        411,
        "Length Required",
    );
    let mut long = b"GET /status HTTP/1.1\r\nX-Pad: ".to_vec();
    long.resize(20_000, b'a');
    check(raw(&long), 431, "Request Header Fields Too Large");
    assert_eq!(seen.len(), 10);
}

#[test]
fn http_1_1_needs_exactly_one_valid_host() {
    let d = daemon();
    for (what, request) in [
        ("no Host", &b"GET /healthz HTTP/1.1\r\n\r\n"[..]),
        (
            "two Hosts",
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: 127.0.0.1\r\n\r\n",
        ),
        (
            "two Hosts, HTTP/1.0",
            b"GET /status HTTP/1.0\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
        ),
        (
            "a bad port",
            b"GET /status HTTP/1.1\r\nHost: 127.0.0.1:70x\r\n\r\n",
        ),
        (
            "user info",
            b"GET /status HTTP/1.1\r\nHost: me@127.0.0.1\r\n\r\n",
        ),
    ] {
        let mut c = HttpConn::connect(d.addr);
        c.send(request);
        let r = c.read_response();
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["code"], json!(-32600), "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(c.is_closed(), "{what}: connection left open");
    }
    // HTTP/1.0 did not have Host: still answered.
    let mut old = HttpConn::connect(d.addr);
    old.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(old.read_response().body, "ok");
    // One Host, on a keep-alive connection: fine.
    let mut c = HttpConn::connect(d.addr);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.request("GET", "/status", &[], "").status, 200);
    let status = get(d.addr, "/status").json();
    assert_eq!(status["clients"]["http_malformed"], json!(5), "{status}");
}

/// `ab -k` sends HTTP/1.0 with `Connection: keep-alive` and waits for the
/// close unless the answer says `Connection: keep-alive`.
#[test]
fn http_1_0_keep_alive_is_kept_and_said() {
    let d = daemon();
    let mut c = HttpConn::connect(d.addr);
    for _ in 0..3 {
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        assert_eq!(
            r.header("connection"),
            Some("keep-alive"),
            "{:?}",
            r.headers
        );
    }
    // Without it, HTTP/1.0 closes after the answer, and says so.
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // HTTP/1.1 says it too: every answer tells whether the connection stays.
    let r = get(d.addr, "/healthz");
    assert_eq!(r.header("connection"), Some("keep-alive"));
}

#[test]
fn absolute_form_targets_are_routed_by_their_path() {
    let d = daemon();
    let port = d.addr.port();
    let mut c = HttpConn::connect(d.addr);
    let target = format!("http://127.0.0.1:{port}/healthz");
    let health = c.request(
        "GET",
        &target,
        &[("Host", &format!("127.0.0.1:{port}"))],
        "",
    );
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    // The authority stands for Host (RFC 9112 3.2.2): a Host header that
    // says otherwise is ignored...
    let target = format!("HTTP://localhost:{port}/jobs/hello");
    let job = c.request("GET", &target, &[("Host", "evil.example")], "");
    assert_eq!(job.status, 200, "{}", job.body);
    assert_eq!(job.json()["name"], json!("hello"));
    // ...and the DNS-rebinding guard judges the authority.
    let rebound = c.request(
        "GET",
        &format!("http://evil.example:{port}/status"),
        &[("Host", "127.0.0.1")],
        "",
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    // Queries, POSTs and an empty path work as in origin form.
    let run = c.request(
        "POST",
        &format!("http://[::1]:{port}/jobs/hello/run"),
        &[],
        "",
    );
    assert_eq!(run.status, 202, "{}", run.body);
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_string();
    d.wait_run_done(&run_id);
    let listed = c.request(
        "GET",
        &format!("http://127.0.0.1:{port}/runs?job=hello&limit=1"),
        &[],
        "",
    );
    assert_eq!(listed.json()[0]["run_id"], json!(run_id));
    let page = c.request("GET", &format!("https://127.0.0.1:{port}"), &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>"));
    // User info in the authority is refused (RFC 9110 4.2.4).
    let mut bad = HttpConn::connect(d.addr);
    let r = bad.request("GET", "http://me@127.0.0.1/status", &[], "");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(bad.is_closed());
    // The origin-form request is unchanged.
    assert_eq!(post(d.addr, "/jobs/hello/pause", "").status, 200);
}
