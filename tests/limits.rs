//! Client limits through the real binary, each with its error and its
//! counter: a connection flood past max_connections (and the Unix socket
//! and HTTP's 503 there), a client that never reads, huge lines, a sender
//! past its close, deep nesting, idle timeouts (the pre-auth deadline,
//! subscribers), 1,000 idle connections beside one busy client, and the
//! event loop's own failures (poll, accept) through fail points.

use crate::util;

use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::{config, Client, Daemon, WAIT};

fn clients_counter(d: &Daemon, name: &str) -> u64 {
    d.client().ok("status", json!({}))["clients"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("status.clients.{name} missing"))
}

#[test]
fn a_flood_past_max_connections_is_refused_one_line_each() {
    let d = Daemon::start(&config("max_connections = 20", ""));
    let mut kept: Vec<Client> = (0..20).map(|_| d.client()).collect();
    for c in &mut kept {
        assert_eq!(c.ok("ping", json!({})), json!("pong"));
    }
    for _ in 0..30 {
        let mut extra = d.client();
        let line = extra.read_json();
        assert_eq!(line["error"]["code"], json!(-32002), "{line}");
        assert!(extra.is_closed(), "refused connection left open");
    }
    // Everyone admitted before the flood is still served.
    for c in &mut kept {
        assert_eq!(c.ok("ping", json!({})), json!("pong"));
    }
    let status = kept[0].ok("status", json!({}));
    assert_eq!(status["clients"]["connections_refused"], json!(30));
    assert_eq!(status["connections"], json!(20));
}

#[test]
fn a_client_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let d = Daemon::start(&config(
        "max_output_bytes = 65536",
        r#"
[[jobs]]
name = "a"
kind = "exec"
command = ["true"]
"#,
    ));
    let mut hog = TcpStream::connect(d.addr).expect("connect");
    hog.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let line = b"{\"method\":\"jobs.list\"}\n".repeat(1000);
    // Write until the daemon drops us (a write error) or a bound is hit.
    let written = write_until_refused(&mut hog, &line, 512 << 20);
    let mut other = d.client();
    assert_eq!(other.ok("ping", json!({})), json!("pong"));
    util::poll_until("the hog to be dropped", || {
        (clients_counter(&d, "output_dropped") == 1).then_some(())
    });
    let rss = std::fs::read_to_string(format!("/proc/{}/status", d.child.id()))
        .expect("proc status")
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .expect("VmHWM");
    eprintln!("hog wrote {written} bytes; daemon peak RSS {rss} kB");
    assert!(rss < 128 * 1024, "daemon peak RSS {rss} kB");
}

/// A `/proc/PID/status` figure of the daemon, in kB (`VmHWM:`, `VmRSS:`).
fn vm_kb(d: &Daemon, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", d.child.id()))
        .expect("proc status")
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
}

/// Issue 14, item 2: one 64 KiB burst of `runs.list` lines from a client
/// that never reads made the daemon build every answer before the limit
/// was looked at (450x `max_output_bytes`). Now each answer is built only
/// while the connection's output budget lasts: the daemon's peak memory
/// grows by about `max_output_bytes` and one answer, not by the burst's
/// 1,300 answers.
#[test]
fn a_burst_of_big_answers_never_read_is_bounded_by_max_output_bytes() {
    const MAX_OUT: u64 = 256 * 1024;
    let d = Daemon::start(&config(
        &format!("max_output_bytes = {MAX_OUT}\nhistory = 1000"),
        r#"
[[jobs]]
name = "scan"
kind = "file.prune"
path = "$DIR"
pattern = "*.none"
older_than = "1h"
overlap = "allow"
"#,
    ));
    let mut c = d.client();
    let runs = 300;
    c.send_raw(&b"{\"method\":\"jobs.run\",\"params\":{\"name\":\"scan\"}}\n".repeat(runs));
    for _ in 0..runs {
        assert!(c.read_json()["result"]["run_id"].is_string());
    }
    let list = util::poll_until("every run to end", || {
        let list = c.ok("runs.list", json!({"state": "succeeded", "limit": 10000}));
        (list.as_array().map(Vec::len) == Some(runs)).then_some(list)
    });
    let answer = list.to_string().len() as u64;
    assert!(
        answer > 64 * 1024 && answer < MAX_OUT,
        "one answer is {answer} bytes"
    );
    let before = vm_kb(&d, "VmHWM:");

    let mut hog = TcpStream::connect(d.addr).expect("connect");
    let request = b"{\"method\":\"runs.list\",\"params\":{\"limit\":10000}}\n";
    let burst = request.repeat(64 * 1024 / request.len());
    hog.write_all(&burst).expect("the burst");
    // Another client is served meanwhile, in full.
    let mut other = d.client();
    assert_eq!(other.ok("ping", json!({})), json!("pong"));
    let again = other.ok("runs.list", json!({"limit": 10000}));
    assert_eq!(again.as_array().map(Vec::len), Some(runs));
    util::poll_until("the hog to be dropped", || {
        (clients_counter(&d, "output_dropped") == 1).then_some(())
    });
    let grown = vm_kb(&d, "VmHWM:").saturating_sub(before) * 1024;
    eprintln!(
        "{} requests of {answer} bytes of answer each; peak RSS grew by {grown} bytes",
        burst.len() / request.len()
    );
    // Worst case: the input buffer + max_output_bytes + one answer being
    // built, and allocator slack.
    assert!(
        grown < 3 * MAX_OUT + 16 * 1024 * 1024,
        "peak RSS grew by {grown} bytes"
    );
    assert_eq!(other.ok("ping", json!({})), json!("pong"));
}

#[test]
fn a_huge_line_closes_only_its_connection() {
    let d = Daemon::start(&config("max_line_bytes = 1024", ""));
    let mut bystander = d.client();
    let mut big = d.client();
    // 8 MiB with no newline: refused once it passes the limit.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..8 {
        if big.reader.get_mut().write_all(&chunk).is_err() {
            break; // already closed by the daemon
        }
    }
    let r = big.read_json();
    assert_eq!(r["error"]["code"], json!(-32600));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("max_line_bytes"));
    assert!(big.is_closed());
    assert_eq!(bystander.ok("ping", json!({})), json!("pong"));
    assert_eq!(clients_counter(&d, "lines_too_long"), 1);
}

#[test]
fn deep_nesting_is_refused_and_the_connection_stays() {
    let d = Daemon::start(&config("max_line_bytes = 1048576", ""));
    let mut c = d.client();
    for depth in [65, 100_000] {
        let line = format!(
            "{{\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":{}{}}}}}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        c.send_raw(line.as_bytes());
        let r = c.read_json();
        assert_eq!(r["error"]["code"], json!(-32600), "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("nested deeper than 64"),
            "{r}"
        );
    }
    // 64 levels are fine (the ping refuses the unknown param, after decoding).
    let ok = format!(
        "{{\"id\":2,\"method\":\"ping\",\"params\":{{\"x\":{}{}}}}}\n",
        "[".repeat(62),
        "]".repeat(62)
    );
    c.send_raw(ok.as_bytes());
    assert_eq!(c.read_json()["error"]["code"], json!(-32602));
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    assert_eq!(clients_counter(&d, "nesting_too_deep"), 2);
}

#[test]
fn idle_connections_are_closed_and_counted() {
    let d = Daemon::start(&config("idle_timeout = \"200ms\"", ""));
    let mut idle = TcpStream::connect(d.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(
        util::read_some(&mut idle, &mut buf).expect("EOF, not an error"),
        0
    );
    util::poll_until("idle_closed to count", || {
        (clients_counter(&d, "idle_closed") >= 1).then_some(())
    });
}

#[test]
fn unauthenticated_connections_get_the_shorter_idle_timeout() {
    // idle_timeout off, auth on: a stranger is still closed (after the
    // pre-auth idle timeout), an authenticated client is not.
    let d = Daemon::start(&config("idle_timeout = \"0s\"\nauth_token = \"t\"", ""));
    let mut member = d.client();
    member.ok("auth", json!({"token": "t"}));
    let mut stranger = TcpStream::connect(d.addr).expect("connect");
    stranger.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(util::read_some(&mut stranger, &mut buf).expect("EOF"), 0);
    assert_eq!(member.ok("ping", json!({})), json!("pong"));
    assert_eq!(
        member.ok("status", json!({}))["clients"]["idle_closed"],
        json!(1)
    );
}

/// Raises this process's open-file limit (inherited by the daemons it
/// starts) to at least `want`; false if the hard limit is lower.
fn raise_fd_limit(want: u64) -> bool {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|c| c >= want) {
        return true;
    }
    if limit.maximum.is_some_and(|m| m < want) {
        return false;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        },
    )
    .is_ok()
}

#[test]
fn a_thousand_idle_connections_do_not_starve_an_active_client() {
    // 1,000 idle sockets here and 1,000 in the daemon, plus the rest.
    if !raise_fd_limit(2200) {
        eprintln!("skipped: the hard limit on open files is below 2200");
        return;
    }
    let d = Daemon::start(&config("max_connections = 1100", ""));
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(d.addr).expect("connect idle"))
        .collect();
    util::poll_until("1000 idle connections to be admitted", || {
        let s = d.client().ok("status", json!({}));
        (s["connections"].as_u64() >= Some(1001)).then_some(())
    });
    let mut active = d.client();
    // Every answer in order, right by id and content, while the idle ones
    // stay open.
    for i in 0..2000u64 {
        let (method, params) = if i % 2 == 0 {
            ("ping", json!({}))
        } else {
            ("jobs.get", json!({"name": format!("nope-{i}")}))
        };
        let line = json!({"id": i, "method": method, "params": params});
        active.send_raw(format!("{line}\n").as_bytes());
        let r = active.read_json();
        assert_eq!(r["id"], json!(i), "{r}");
        if i % 2 == 0 {
            assert_eq!(r["result"], json!("pong"), "{r}");
        } else {
            assert_eq!(r["error"]["code"], json!(-32000), "{r}");
            let message = r["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(&format!("nope-{i}")), "{r}");
        }
    }
    let status = active.ok("status", json!({}));
    assert!(
        status["connections"].as_u64() >= Some(1001),
        "idle connections were dropped: {}",
        status["connections"]
    );
    drop(idle);
}

#[test]
fn strangers_must_authenticate_within_the_limit_however_busy() {
    let d = Daemon::start(&config("auth_token = \"t\"\nidle_timeout = \"0s\"", ""));
    let mut busy = d.client();
    let opened = Instant::now();
    // Pings (allowed before auth) keep coming, but the limit runs from the
    // accept: the stranger is closed all the same.
    let closed = loop {
        let line = json!({"id": 1, "method": "ping"});
        let _ = busy
            .reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes());
        match busy.read_line() {
            Some(l) => assert!(l.contains("pong"), "{l}"),
            None => break opened.elapsed(),
        }
        assert!(opened.elapsed() < Duration::from_secs(60), "never closed");
        // A client pinging now and then, not a busy loop.
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(closed >= Duration::from_secs(9), "closed after {closed:?}");
    assert_eq!(clients_counter_authed(&d, "idle_closed"), 1);
}

fn clients_counter_authed(d: &Daemon, name: &str) -> u64 {
    let mut c = d.client();
    c.ok("auth", json!({"token": "t"}));
    c.ok("status", json!({}))["clients"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("status.clients.{name} missing"))
}

#[test]
fn the_unix_socket_gets_in_when_tcp_strangers_fill_max_connections() {
    let d = Daemon::start(&config(
        "max_connections = 3\nunix_socket = \"$DIR/tickd.sock\"",
        "",
    ));
    let _held: Vec<Client> = (0..3).map(|_| d.client()).collect();
    util::poll_until("3 connections", || {
        let mut extra = d.client();
        (extra.read_json()["error"]["code"] == json!(-32002)).then_some(())
    });
    let path = d.dir().join("tickd.sock");
    let admin = std::os::unix::net::UnixStream::connect(&path).expect("unix connect");
    admin.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut admin_reader = std::io::BufReader::new(admin);
    admin_reader
        .get_mut()
        .write_all(b"{\"id\":1,\"method\":\"status\"}\n")
        .expect("write");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut admin_reader, &mut line).expect("read");
    let status: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(status["result"]["connections"], json!(4), "{status}");
}

#[test]
fn a_refused_http_client_gets_a_503() {
    let d = Daemon::start(&config("max_connections = 1", ""));
    let mut held = d.client();
    assert_eq!(held.ok("ping", json!({})), json!("pong"));
    // Stopped, the daemon cannot accept before the request is in the
    // socket: its first bytes are there to be seen at accept time.
    d.signal(rustix::process::Signal::STOP);
    let mut c = util::http::HttpConn::connect(d.addr);
    c.send(&util::http::request_bytes("GET", "/status", &[], ""));
    d.signal(rustix::process::Signal::CONT);
    let r = c.read_response();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["code"], json!(-32002));
    assert!(c.is_closed());
}

#[test]
fn a_sender_past_its_close_does_not_starve_others() {
    let d = Daemon::start(&config("max_line_bytes = 1024", ""));
    let mut hog = TcpStream::connect(d.addr).expect("connect");
    hog.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // An overlong line closes the hog; it keeps sending regardless.
    let sender = std::thread::spawn(move || {
        write_until_refused(&mut hog, &[b'x'; 64 * 1024], 256 << 20);
    });
    let mut other = d.client();
    for i in 0..50 {
        assert_eq!(other.ok("ping", json!({})), json!("pong"), "ping {i}");
    }
    let _ = sender.join();
    assert!(clients_counter(&d, "lines_too_long") >= 1);
}

#[test]
fn subscribers_outlive_idle_timeout() {
    let d = Daemon::start(&config(
        "idle_timeout = \"300ms\"",
        r#"
[[jobs]]
name = "a"
kind = "exec"
command = ["true"]
"#,
    ));
    let mut sub = d.client();
    assert_eq!(sub.ok("subscribe", json!({})), json!({"subscribed": true}));
    // Opened after the subscriber: once it is closed for idleness, the
    // subscriber has been idle longer than idle_timeout too.
    let mut idle = TcpStream::connect(d.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(util::read_some(&mut idle, &mut buf).expect("EOF"), 0);
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "a"}));
    let event = sub.read_json();
    assert_eq!(event["method"], json!("run.event"), "{event}");
    assert_eq!(event["params"]["run_id"], run["run_id"]);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_failed_poll_ends_the_daemon_with_exit_code_71() {
    let mut d = Daemon::start_with_env(&config("", ""), &[("FAILPOINTS", "server.poll=return")]);
    let status = d.wait_exit(WAIT).expect("tickd to exit after poll failed");
    assert_eq!(status.code(), Some(71));
    assert!(d.log.wait_for("poll failed", 0, WAIT).is_some());
}

#[cfg(feature = "failpoints")]
#[test]
fn a_client_that_reset_before_its_accept_does_not_stall_the_backlog() {
    // The first accept fails with ECONNABORTED; the connection behind it
    // must still be accepted without another client arriving.
    let d = Daemon::start_with_env(
        &config("", ""),
        &[("FAILPOINTS", "server.accept=1*return(aborted)")],
    );
    let mut c = d.client();
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    assert!(d.log.wait_for("accept failed", 0, WAIT).is_some());
}

/// Writes `chunk` again and again until the daemon refuses more (a write
/// error: dropped, or the write timeout hit) or `limit` bytes are out;
/// returns the bytes written.
fn write_until_refused(stream: &mut TcpStream, chunk: &[u8], limit: usize) -> usize {
    let mut written = 0usize;
    while written < limit {
        match stream.write(chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    written
}
