//! JSON-RPC 2.0 batches through the real binary, on TCP and on the Unix
//! socket: the specification's own examples (section 7), commands and
//! `subscribe` inside a batch, `auth` inside a batch (and a wrong token
//! there), and the limits a batch is held to (its length, the output
//! budget).

use crate::util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use util::{config, Daemon, WAIT};

/// A line-oriented connection over any stream.
struct Lines<S: Read + Write> {
    reader: BufReader<S>,
}

impl<S: Read + Write> Lines<S> {
    fn send(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.reader.get_mut().write_all(&bytes).expect("write");
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read");
        assert!(n > 0, "connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    /// Sends `line` and reads the one line that answers it.
    fn ask(&mut self, line: &str) -> Value {
        self.send(line);
        self.read()
    }
}

fn tcp(d: &Daemon) -> Lines<std::net::TcpStream> {
    let s = std::net::TcpStream::connect(d.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    Lines {
        reader: BufReader::new(s),
    }
}

fn unix(d: &Daemon) -> Lines<UnixStream> {
    let s = UnixStream::connect(d.dir().join("tickd.sock")).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    Lines {
        reader: BufReader::new(s),
    }
}

const JOBS: &str = r#"
[[jobs]]
name = "echo"
kind = "exec"
command = ["sh", "-c", "echo hi"]
overlap = "allow"
"#;

fn daemon(extra: &str) -> Daemon {
    Daemon::start(&config(
        &format!("unix_socket = \"$DIR/tickd.sock\"\n{extra}"),
        JOBS,
    ))
}

/// The codes of an array of error responses, and their ids.
fn codes_and_ids(answer: &Value) -> Vec<(Value, Value)> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("an array: {answer}"))
        .iter()
        .map(|r| (r["error"]["code"].clone(), r["id"].clone()))
        .collect()
}

/// Section 7 of the JSON-RPC 2.0 specification, "rpc call Batch" and the
/// examples after it. tickd has none of the spec's methods (`sum`,
/// `subtract`, `get_data`) and takes named params only, so where the spec
/// shows a result tickd answers an error; the ids, the order, the
/// notifications left out and the shape of each answer are the spec's.
fn spec_examples<S: Read + Write>(c: &mut Lines<S>) {
    // rpc call Batch, invalid JSON: a single error object.
    let r = c.ask(
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method""#,
    );
    assert_eq!(r["error"]["code"], json!(-32700), "{r}");
    assert_eq!(r["id"], Value::Null);
    // rpc call with an empty Array: a single error object, not an array.
    let r = c.ask("[]");
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    assert_eq!(r["id"], Value::Null);
    assert_eq!(r["jsonrpc"], json!("2.0"));
    // rpc call with an invalid Batch (but not empty).
    let r = c.ask("[1]");
    assert_eq!(codes_and_ids(&r), [(json!(-32600), Value::Null)], "{r}");
    // rpc call with invalid Batch.
    let r = c.ask("[1,2,3]");
    assert_eq!(
        codes_and_ids(&r),
        vec![(json!(-32600), Value::Null); 3],
        "{r}"
    );
    // rpc call Batch: the notification gets nothing, the rest in order.
    let r = c.ask(concat!(
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},"#,
        r#"{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},"#,
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},"#,
        r#"{"foo": "boo"},"#,
        r#"{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},"#,
        r#"{"jsonrpc": "2.0", "method": "get_data", "id": "9"}]"#
    ));
    assert_eq!(
        codes_and_ids(&r),
        [
            (json!(-32602), json!("1")),
            (json!(-32602), json!("2")),
            (json!(-32600), Value::Null),
            (json!(-32601), json!("5")),
            (json!(-32601), json!("9")),
        ],
        "{r}"
    );
    // rpc call Batch (all notifications): nothing at all, so the next
    // line read answers the ping sent after it.
    c.send(concat!(
        r#"[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},"#,
        r#"{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]"#
    ));
    let r = c.ask(r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#);
    assert_eq!(r, json!({"jsonrpc":"2.0","id":"after","result":"pong"}));
    // The same with tickd's methods: results and errors side by side, ids
    // as written.
    let r = c.ask(concat!(
        r#"[{"jsonrpc":"2.0","method":"ping","id":18446744073709551616},"#,
        r#"{"method":"ping"},{"method":"ping","id":null},"#,
        r#"{"method":"status","id":"s"},{"id":1.0,"method":"jobs.get","params":{"name":"nope"}}]"#
    ));
    let answers = r.as_array().expect("an array");
    assert_eq!(answers.len(), 4, "{r}");
    assert_eq!(answers[0]["result"], json!("pong"));
    assert_eq!(
        answers[1],
        json!({"jsonrpc":"2.0","id":null,"result":"pong"})
    );
    assert_eq!(answers[2]["result"]["health"], json!("ok"));
    assert_eq!(answers[3]["error"]["code"], json!(-32000));
}

#[test]
fn the_specifications_batch_examples_on_tcp_and_the_unix_socket() {
    let d = daemon("");
    spec_examples(&mut tcp(&d));
    spec_examples(&mut unix(&d));
    // The ids come back as written, not as a float.
    let mut c = tcp(&d);
    c.send(r#"[{"method":"ping","id":18446744073709551616},{"method":"ping","id":1.0}]"#);
    let mut raw = String::new();
    c.reader.read_line(&mut raw).expect("read");
    assert_eq!(
        raw,
        concat!(
            r#"[{"jsonrpc":"2.0","id":18446744073709551616,"result":"pong"},"#,
            r#"{"jsonrpc":"2.0","id":1.0,"result":"pong"}]"#,
            "\n"
        )
    );
    let status = c.ask(r#"{"id":1,"method":"status"}"#);
    // A batch's members count one request each.
    assert!(status["result"]["clients"]["requests"].as_u64() >= Some(40));
}

#[test]
fn commands_and_subscribe_inside_a_batch_answer_in_place() {
    let d = daemon("");
    let mut c = unix(&d);
    // A run waited for holds the rest of the array back; the notification
    // (no id) runs the job without an answer.
    let r = c.ask(concat!(
        r#"[{"id":1,"method":"jobs.run","params":{"name":"echo","wait":true}},"#,
        r#"{"method":"jobs.run","params":{"name":"echo"}},"#,
        r#"{"id":2,"method":"ping"}]"#
    ));
    let answers = r.as_array().expect("an array");
    assert_eq!(answers.len(), 2, "{r}");
    assert_eq!(answers[0]["id"], json!(1));
    assert_eq!(answers[0]["result"]["state"], json!("succeeded"));
    assert_eq!(answers[0]["result"]["output"], json!("hi\n"));
    assert_eq!(answers[1], json!({"jsonrpc":"2.0","id":2,"result":"pong"}));
    util::poll_until("the notification's run", || {
        let runs = c.ask(r#"{"id":3,"method":"runs.list","params":{"job":"echo"}}"#);
        (runs["result"].as_array().map(Vec::len) == Some(2)).then_some(())
    });

    // subscribe inside a batch: its answer in place, events after the array.
    let r = c.ask(concat!(
        r#"[{"id":"sub","method":"subscribe","params":{"jobs":["echo"]}},"#,
        r#"{"id":"run","method":"jobs.run","params":{"name":"echo"}}]"#
    ));
    let answers = r.as_array().expect("an array");
    assert_eq!(answers[0]["result"], json!({"subscribed": true}), "{r}");
    let run_id = answers[1]["result"]["run_id"].clone();
    assert!(run_id.is_string(), "{r}");
    let mut states = Vec::new();
    while states.last() != Some(&json!("succeeded")) {
        let event = c.read();
        assert_eq!(event["method"], json!("run.event"), "{event}");
        // (The notification's run above may still be ending.)
        if event["params"]["run_id"] == run_id {
            states.push(event["params"]["state"].clone());
        }
    }
    assert_eq!(
        states,
        [json!("queued"), json!("running"), json!("succeeded")]
    );
}

#[test]
fn auth_inside_a_batch_counts_for_the_members_after_it() {
    let d = daemon("auth_token = \"s3cret\"");
    let mut c = tcp(&d);
    let r = c.ask(concat!(
        r#"[{"id":1,"method":"status"},"#,
        r#"{"id":2,"method":"auth","params":{"token":"s3cret"}},"#,
        r#"{"id":3,"method":"status"}]"#
    ));
    let answers = r.as_array().expect("an array");
    assert_eq!(answers[0]["error"]["code"], json!(-32001), "{r}");
    assert_eq!(
        answers[1]["result"],
        json!({"authenticated": true, "name": "auth_token", "role": "admin"})
    );
    assert_eq!(answers[2]["result"]["auth_required"], json!(true));
    // ...and for the lines after it.
    assert_eq!(c.ask(r#"{"id":4,"method":"jobs.list"}"#)["id"], json!(4));

    // A wrong token: nothing after it in the batch is looked at (not even
    // the right token), and the array comes after the auth delay; the
    // line after the batch is handled after that.
    let mut g = tcp(&d);
    g.send(concat!(
        r#"[{"id":1,"method":"auth","params":{"token":"guess"}},"#,
        r#"{"id":2,"method":"auth","params":{"token":"s3cret"}},"#,
        r#"{"id":3,"method":"ping"},{"method":"ping"}]"#
    ));
    g.send(r#"{"id":4,"method":"ping"}"#);
    let r = g.read();
    let answers = r.as_array().expect("an array");
    assert_eq!(answers.len(), 3, "{r}");
    assert_eq!(answers[0]["error"]["message"], json!("wrong token"));
    for a in &answers[1..] {
        assert_eq!(a["error"]["code"], json!(-32001), "{a}");
        assert!(a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not looked at")));
    }
    assert_eq!(g.read()["result"], json!("pong"));
    let status = c.ask(r#"{"id":5,"method":"status"}"#);
    assert_eq!(status["result"]["clients"]["auth_failures"], json!(1));
}

#[test]
fn batches_are_held_to_the_limits_of_single_requests() {
    let d = daemon("max_output_bytes = 4096");
    let mut c = tcp(&d);
    // Too many members: one error object for the whole line.
    let members = vec![r#"{"method":"ping","id":1}"#; 1001].join(",");
    let r = c.ask(&format!("[{members}]"));
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("at most 1000")));
    let members = vec![r#"{"method":"ping","id":1}"#; 1000].join(",");
    let r = c.ask(&format!("[{members}]"));
    assert_eq!(r.as_array().map(Vec::len), Some(1000));

    // The output budget: members whose answers would pass
    // max_output_bytes are not run and say so; a notification (which adds
    // no answer) is still carried out.
    let mut members = vec![r#"{"method":"status","id":"s"}"#; 10];
    members.push(r#"{"method":"jobs.run","params":{"name":"echo"}}"#);
    let r = c.ask(&format!("[{}]", members.join(",")));
    let answers = r.as_array().expect("an array");
    assert_eq!(answers.len(), 10, "{r}");
    let built = answers
        .iter()
        .take_while(|a| a["result"].is_object())
        .count();
    assert!((1..10).contains(&built), "{built} of 10 built");
    for a in &answers[built..] {
        assert_eq!(a["error"]["code"], json!(-32002), "{a}");
        assert!(a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_output_bytes")));
    }
    util::poll_until("the notification's run", || {
        let runs = c.ask(r#"{"id":3,"method":"runs.list","params":{"job":"echo"}}"#);
        (runs["result"].as_array().map(Vec::len) == Some(1)).then_some(())
    });
}
