//! The wire protocol over a real socket: framing, relaxations, error codes,
//! ordering, limits, and many clients at once.

use crate::util;

use serde_json::{json, Value};
use std::io::Write;
use util::{config, Client, Daemon};

fn daemon() -> Daemon {
    Daemon::start(&config(
        "max_line_bytes = 1024",
        r#"
[[jobs]]
name = "slow"
kind = "exec"
command = ["sleep", "0.3"]
overlap = "allow"
"#,
    ))
}

#[test]
fn ping_with_and_without_jsonrpc_and_id() {
    let d = daemon();
    let mut c = d.client();
    c.send_raw(b"{\"method\":\"ping\"}\n");
    assert_eq!(
        c.read_json(),
        json!({"jsonrpc":"2.0","id":null,"result":"pong"})
    );
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}\r\n");
    assert_eq!(
        c.read_json(),
        json!({"jsonrpc":"2.0","id":"abc","result":"pong"})
    );
}

#[test]
fn blank_lines_are_ignored() {
    let d = daemon();
    let mut c = d.client();
    c.send_raw(b"\n\r\n   \n{\"id\":5,\"method\":\"ping\"}\n");
    assert_eq!(c.read_json()["id"], json!(5));
}

#[test]
fn malformed_json_gets_parse_error_and_connection_stays() {
    let d = daemon();
    let mut c = d.client();
    c.send_raw(b"{\"method\": \n");
    let r = c.read_json();
    assert_eq!(r["error"]["code"], json!(-32700));
    assert_eq!(r["id"], Value::Null);
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
}

#[test]
fn non_object_requests_are_invalid() {
    let d = daemon();
    let mut c = d.client();
    // (`[1,2,3]` is a batch of three invalid requests: see tests/batch.rs.)
    for line in ["42", "\"ping\"", "{\"id\":3}", "{\"id\":4,\"method\":7}"] {
        c.send_raw(format!("{line}\n").as_bytes());
        let r = c.read_json();
        assert_eq!(r["error"]["code"], json!(-32600), "for {line}: {r}");
    }
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
}

#[test]
fn unknown_method_and_bad_params() {
    let d = daemon();
    let mut c = d.client();
    let r = c.call("no.such.method", json!({}));
    assert_eq!(r["error"]["code"], json!(-32601));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no.such.method"));

    let r = c.call("jobs.get", json!({"name": 12}));
    assert_eq!(r["error"]["code"], json!(-32602));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("name"),
        "{r}"
    );

    let r = c.call("jobs.get", json!({}));
    assert_eq!(r["error"]["code"], json!(-32602));

    let r = c.call("jobs.run", json!({"name": "slow", "wait": "yes"}));
    assert_eq!(r["error"]["code"], json!(-32602));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("wait"),
        "{r}"
    );

    let r = c.call("jobs.run", json!({"name": "slow", "bogus": 1}));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("bogus"),
        "{r}"
    );

    c.send_raw(b"{\"id\":9,\"method\":\"ping\",\"params\":[1]}\n");
    assert_eq!(c.read_json()["error"]["code"], json!(-32602));

    assert_eq!(c.err_code("jobs.get", json!({"name": "nope"})), -32000);
    assert_eq!(c.err_code("runs.get", json!({"run_id": "999999"})), -32000);
}

#[test]
fn overlong_line_closes_only_that_connection() {
    let d = daemon();
    let mut other = d.client();
    let mut c = d.client();
    let long = format!("{{\"method\":\"ping\",\"pad\":\"{}\"}}\n", "x".repeat(2000));
    c.send_raw(long.as_bytes());
    let r = c.read_json();
    assert_eq!(r["error"]["code"], json!(-32600));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_line_bytes"));
    assert!(
        c.is_closed(),
        "connection should be closed after an overlong line"
    );
    assert_eq!(other.ok("ping", json!({})), json!("pong"));

    // An unterminated flood is cut off too, without waiting for a newline.
    let mut flood = d.client();
    let _ = flood.reader.get_mut().write_all(&vec![b'a'; 8192]);
    let r = flood.read_json();
    assert_eq!(r["error"]["code"], json!(-32600));
    assert!(flood.is_closed());
    assert_eq!(other.ok("ping", json!({})), json!("pong"));
}

#[test]
fn pipelined_requests_come_back_in_order_even_behind_a_waiting_one() {
    let d = daemon();
    let mut c = d.client();
    let mut batch = String::new();
    batch.push_str(
        "{\"id\":0,\"method\":\"jobs.run\",\"params\":{\"name\":\"slow\",\"wait\":true}}\n",
    );
    for i in 1..=100 {
        batch.push_str(&format!("{{\"id\":{i},\"method\":\"ping\"}}\n"));
    }
    c.send_raw(batch.as_bytes());
    let first = c.read_json();
    assert_eq!(first["id"], json!(0));
    assert_eq!(first["result"]["state"], json!("succeeded"), "{first}");
    for i in 1..=100 {
        let r = c.read_json();
        assert_eq!(r["id"], json!(i));
        assert_eq!(r["result"], json!("pong"));
    }
}

#[test]
fn two_hundred_concurrent_clients() {
    let d = daemon();
    let addr = d.addr;
    let handles: Vec<_> = (0..200)
        .map(|n| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..10 {
                    let r = c.call("ping", json!({}));
                    assert_eq!(r["result"], json!("pong"), "client {n} req {i}");
                }
                c.ok("status", json!({}))["connections"].as_u64().unwrap()
            })
        })
        .collect();
    let mut max_seen = 0;
    for h in handles {
        max_seen = max_seen.max(h.join().expect("client thread"));
    }
    assert!(
        max_seen >= 2,
        "status.connections should count open clients"
    );
}

#[test]
fn half_closed_client_still_gets_its_answers() {
    let d = daemon();
    let mut c = d.client();
    c.send_raw(b"{\"id\":1,\"method\":\"ping\"}\n{\"id\":2,\"method\":\"jobs.run\",\"params\":{\"name\":\"slow\",\"wait\":true}}\n");
    c.reader
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert_eq!(c.read_json()["id"], json!(1));
    let r = c.read_json();
    assert_eq!(r["id"], json!(2));
    assert_eq!(r["result"]["state"], json!("succeeded"));
    assert!(c.is_closed());
}

#[test]
fn connection_limit_refuses_with_overloaded_and_keeps_others() {
    let d = Daemon::start(&config("max_connections = 3", ""));
    let mut held: Vec<Client> = (0..3).map(|_| d.client()).collect();
    for c in &mut held {
        assert_eq!(c.ok("ping", json!({})), json!("pong"));
    }
    let mut extra = d.client();
    let r = extra.read_json();
    assert_eq!(r["error"]["code"], json!(-32002));
    assert!(extra.is_closed());
    assert_eq!(held[0].ok("ping", json!({})), json!("pong"));
}

#[test]
fn overlong_line_followed_by_more_data_still_delivers_the_error() {
    let d = daemon();
    let mut c = d.client();
    let mut writer = c.reader.get_ref().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut payload = vec![b'x'; 4096];
        payload.push(b'\n');
        let _ = writer.write_all(&payload);
        let chunk = b"{\"method\":\"ping\"}\n".repeat(1000);
        for _ in 0..200 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let r = c.read_json();
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    assert!(c.is_closed());
    sender.join().unwrap();
}

#[test]
fn closing_after_a_protocol_error_is_graceful() {
    // After the error line the server shuts down its side (we read EOF) but
    // keeps draining what we still send for a moment, instead of closing
    // with unread input, which makes the kernel answer with a reset that
    // can destroy answers still in flight on a real network.
    let d = daemon();
    let mut c = d.client();
    let mut long = vec![b'x'; 2048];
    long.push(b'\n');
    c.send_raw(&long);
    assert_eq!(c.read_json()["error"]["code"], json!(-32600));
    assert!(c.is_closed(), "server should shut down its writing side");
    let stream = c.reader.get_mut();
    for i in 0..20 {
        if let Err(e) = stream.write_all(&[b'y'; 1024]) {
            panic!("write {i} after the server's EOF failed ({e}): the server reset instead of draining");
        }
    }
}

#[test]
fn idle_connections_are_closed_after_idle_timeout() {
    let d = Daemon::start(&config("idle_timeout = \"300ms\"", ""));
    let mut idle = d.client();
    assert!(
        idle.is_closed(),
        "idle connection should be closed by the server"
    );
    let mut fresh = d.client();
    assert_eq!(fresh.ok("ping", json!({})), json!("pong"));
}

#[test]
fn client_that_never_reads_is_dropped_at_max_output_bytes() {
    let d = Daemon::start(&config("max_output_bytes = 65536", ""));
    // Pipeline far more answers than the limit allows, without reading.
    let mut hog = std::net::TcpStream::connect(d.addr).unwrap();
    hog.set_write_timeout(Some(util::WAIT)).unwrap();
    hog.set_read_timeout(Some(util::WAIT)).unwrap();
    let requests = 100_000;
    let batch = b"{\"method\":\"status\"}\n".repeat(1000);
    for _ in 0..requests / 1000 {
        if hog.write_all(&batch).is_err() {
            break; // already cut off
        }
    }
    // Still not reading, the server must give up on us rather than buffer
    // ~60 MB of answers...
    assert!(
        d.log.wait_for("max_output_bytes", 0, util::WAIT).is_some(),
        "the server never cut off a client that does not read"
    );
    // ...so reading now ends (EOF or reset) before every request is answered.
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut hog, &mut got);
    let answered = got.iter().filter(|&&b| b == b'\n').count();
    assert!(
        answered < requests,
        "all {requests} answered: the limit did not apply"
    );
    let mut other = d.client();
    assert_eq!(other.ok("ping", json!({})), json!("pong"));
}

#[test]
fn full_run_queue_answers_overloaded() {
    let d = Daemon::start(&config(
        "workers = 1\nqueue_capacity = 1",
        r#"
[[jobs]]
name = "hold"
command = ["sleep", "2"]
overlap = "allow"
"#,
    ));
    let mut c = d.client();
    let first = c.ok("jobs.run", json!({"name": "hold"}))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    util::poll_until("first run to start", || {
        (c.ok("runs.get", json!({"run_id": first}))["state"] == json!("running")).then_some(())
    });
    c.ok("jobs.run", json!({"name": "hold"}));
    let r = c.call("jobs.run", json!({"name": "hold"}));
    assert_eq!(r["error"]["code"], json!(-32002), "{r}");
    let s = c.ok("status", json!({}));
    assert_eq!(s["queue"], json!({"depth": 1, "capacity": 1}));
}

#[test]
fn output_that_backs_up_is_delivered_in_full_when_the_client_reads_late() {
    // ~40 MB of answers, far more than socket buffers hold: the server hits
    // WouldBlock, keeps the rest, and must deliver every answer in order.
    let d = Daemon::start(&config("max_output_bytes = 268435456", ""));
    let mut c = d.client();
    let n = 64_000;
    let mut writer = c.reader.get_ref().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut batch = String::new();
        for i in 0..n {
            batch.push_str(&format!("{{\"id\":{i},\"method\":\"status\"}}\n"));
        }
        writer.write_all(batch.as_bytes()).unwrap();
    });
    sender.join().unwrap();
    for i in 0..n {
        let r = c.read_json();
        assert_eq!(r["id"], json!(i));
        assert_eq!(r["result"]["health"], json!("ok"));
    }
}

/// `Cpus_allowed_list` of each of the daemon's threads whose name
/// (`comm`) passes `wanted`.
fn thread_cpus(pid: u32, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| wanted(c.trim())))
        .filter_map(|t| cpus_allowed(&t.path()))
        .collect()
}

/// `Cpus_allowed_list` of the thread whose `/proc` directory is `task`.
fn cpus_allowed(task: &std::path::Path) -> Option<String> {
    let status = std::fs::read_to_string(task.join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// `Cpus_allowed_list` of each of the daemon's threads whose name starts
/// with `prefix`.
fn allowed_cpus_of(pid: u32, prefix: &str) -> Vec<String> {
    thread_cpus(pid, |name| name.starts_with(prefix))
}

/// `Cpus_allowed_list` of each request worker thread (`tickd-request-N`,
/// not the pool's monitor).
fn request_thread_cpus(pid: u32) -> Vec<String> {
    thread_cpus(pid, |name| {
        name.strip_prefix("tickd-request-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// One CPU, as `Cpus_allowed_list` writes it ("3", not "0-3" or "0,2").
fn is_one_cpu(list: &str) -> bool {
    !list.is_empty() && list.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn request_threads_follow_the_loops_cpu_and_the_loop_stays_free() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: fewer than two CPUs");
        return;
    }
    let d = daemon();
    let mut c = d.client();
    let pid = d.child.id();
    util::poll_until("a request thread on the loop's CPU", || {
        for _ in 0..20 {
            assert_eq!(c.ok("ping", json!({})), json!("pong"));
        }
        let lists = allowed_cpus_of(pid, "tickd-request");
        lists.iter().any(|l| is_one_cpu(l)).then_some(())
    });
    let status = c.ok("status", json!({}));
    let moves = status["request_workers"]["cpu_moves"].as_u64();
    assert!(moves.is_some_and(|n| n >= 1), "cpu_moves counted: {status}");
    assert!(
        status["workers"].get("cpu_moves").is_none(),
        "job workers never follow"
    );
    // The loop (the main thread) and the job workers keep every CPU.
    let loop_list = cpus_allowed(std::path::Path::new(&format!("/proc/{pid}/task/{pid}")))
        .expect("the main thread's Cpus_allowed_list");
    assert!(!is_one_cpu(&loop_list), "loop thread pinned: {loop_list}");
    for list in allowed_cpus_of(pid, "tickd-worker") {
        assert!(!is_one_cpu(&list), "a job worker pinned: {list}");
    }
}

#[test]
fn a_request_thread_leaves_the_loops_cpu_during_a_heavy_batch() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: fewer than two CPUs");
        return;
    }
    let d = Daemon::start(&config("max_line_bytes = 262144", ""));
    let mut c = d.client();
    let pid = d.child.id();
    // Pings until both request threads sit on one CPU each.
    util::poll_until("both request threads on the loop's CPU", || {
        for _ in 0..20 {
            assert_eq!(c.ok("ping", json!({})), json!("pong"));
        }
        let lists = request_thread_cpus(pid);
        (lists.len() == 2 && lists.iter().all(|l| is_one_cpu(l))).then_some(())
    });
    // One request whose answer passes 64 KiB (a ping echoing a 100 KB id;
    // one line is always one batch): the thread that answers it goes back
    // to every CPU before the task ends, and stays there until its next.
    let id = "x".repeat(100_000);
    c.send_raw(format!("{{\"id\":\"{id}\",\"method\":\"ping\"}}\n").as_bytes());
    assert_eq!(c.read_json()["id"], json!(id));
    let lists = request_thread_cpus(pid);
    assert!(
        lists.iter().any(|l| !is_one_cpu(l)),
        "a request thread left the loop's CPU: {lists:?}"
    );
}

/// Every name in the decoder's table of known methods is one the daemon
/// answers (the table only saves an allocation, but a stale entry would be
/// a sign it drifted from `methods::handle`).
#[test]
fn every_method_in_the_shared_name_table_is_answered() {
    let d = daemon();
    assert_eq!(d.client().err_code("no.such.method", json!({})), -32601);
    let mut names: Vec<&str> = tickd::protocol::rpc::METHODS
        .iter()
        .copied()
        .filter(|m| !m.starts_with("debug."))
        .collect();
    // Last, since it stops the daemon. `upgrade` would replace it with a
    // process this test does not own: tests/upgrade.rs calls it.
    names.retain(|m| *m != "shutdown" && *m != "upgrade");
    names.push("shutdown");
    for name in names {
        // A connection each: `subscribe` turns one into an event stream.
        let mut c = d.client();
        let r = c.call(name, json!({}));
        assert_ne!(
            r["error"]["code"],
            json!(-32601),
            "{name} is in METHODS but not answered: {r}"
        );
    }
}

#[test]
fn duplicate_keys_are_refused_and_ids_come_back_as_written() {
    let d = daemon();
    let mut c = d.client();
    // The last `method` used to win: this shut the daemon down.
    c.send_raw(b"{\"id\":1,\"method\":\"ping\",\"method\":\"shutdown\"}\n");
    let r = c.read_json();
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    assert_eq!(r["id"], json!(1));
    assert_eq!(
        r["error"]["message"],
        json!("invalid request: duplicate key `method`")
    );
    // In params too, escapes decoded before keys are compared.
    c.send_raw(b"{\"id\":2,\"method\":\"jobs.run\",\"params\":{\"name\":\"nope\",\"n\\u0061me\":\"slow\"}}\n");
    let r = c.read_json();
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("duplicate key `name` in `params`")));
    // Nothing was run or stopped.
    assert_eq!(c.ok("runs.list", json!({})), json!([]));
    assert_eq!(c.ok("status", json!({}))["stopping"], json!(false));

    // Ids come back exactly as written, in results and in errors.
    for id in [
        "18446744073709551616",
        "1.0",
        "1e2",
        "-0",
        "\"x\"",
        "\"\\u0078\"",
        "null",
    ] {
        c.send_raw(format!("{{\"id\":{id},\"method\":\"ping\"}}\n").as_bytes());
        assert_eq!(
            c.read_line().expect("answer"),
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":\"pong\"}}")
        );
        c.send_raw(format!("{{\"id\":{id},\"method\":\"nope\"}}\n").as_bytes());
        let line = c.read_line().expect("answer");
        assert!(
            line.starts_with(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":")),
            "{line}"
        );
    }
}

#[test]
fn runs_list_refuses_an_answer_larger_than_max_output_bytes() {
    let d = Daemon::start(&config(
        "max_output_bytes = 4096",
        r#"
[[jobs]]
name = "echo"
kind = "exec"
command = ["sh", "-c", "echo hi"]
overlap = "allow"
"#,
    ));
    let mut c = d.client();
    for _ in 0..20 {
        c.ok("jobs.run", json!({"name": "echo", "wait": true}));
    }
    let r = c.call("runs.list", json!({"limit": 10000}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    let message = r["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("max_output_bytes (4096 bytes)") && message.contains("ask for fewer"),
        "{message}"
    );
    let fit = r["error"]["data"]["runs_that_fit"]
        .as_u64()
        .expect("how many fit");
    assert!((1..20).contains(&fit), "{r}");
    assert_eq!(r["error"]["data"]["max_output_bytes"], json!(4096));
    // As many as it says fit are answered.
    let runs = c.ok("runs.list", json!({ "limit": fit }));
    assert_eq!(runs.as_array().map(Vec::len), Some(fit as usize));
    // HTTP gets the same refusal, as a 400.
    let resp = util::http::get(d.addr, "/runs?limit=10000");
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["code"], json!(-32602));
    // The connection is still served.
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
}
