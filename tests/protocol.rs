//! The wire protocol over a real socket: framing, relaxations, error codes,
//! ordering, limits, and many clients at once.

mod util;

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
    for line in [
        "[1,2,3]",
        "42",
        "\"ping\"",
        "{\"id\":3}",
        "{\"id\":4,\"method\":7}",
    ] {
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
