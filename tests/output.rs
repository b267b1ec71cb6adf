//! Live and kept output (issue 19, item 1): `runs.output` and its
//! `run.output` notifications, `GET /runs/ID/output` (chunked while it
//! follows), the slow follower's drop, and `daemon.output_dir` (modes,
//! caps, names no job can steer).

use crate::util::http::{get, request_bytes, HttpConn};
use crate::util::{config, poll_until, Client, Daemon};
use serde_json::{json, Value};
use std::io::{BufRead, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A job that prints `one`, waits for the file `$DIR/go`, prints `two`.
const GATED: &str = r#"
[[jobs]]
name = "gated"
command = ["sh", "-c", "echo one; while [ ! -e \"$0\" ]; do sleep 0.02; done; echo two", "$DIR/go"]
"#;

fn run_id(v: &Value) -> String {
    v["run_id"].as_str().expect("run_id").to_string()
}

/// Starts a run of `job`; its id.
fn start_run(c: &mut Client, job: &str) -> String {
    run_id(&c.ok("jobs.run", json!({ "name": job })))
}

/// The state of run `id`.
fn state_of(d: &Daemon, id: &str) -> String {
    let r = d.client().ok("runs.get", json!({ "run_id": id }));
    r["state"].as_str().unwrap_or_default().to_string()
}

/// Reads `run.output` notifications of a follower until one says done
/// (or dropped); the data in order (offsets checked contiguous from
/// `from`, past the bytes a notification says were `lost`), and the last
/// notification with the total lost as `lost_total`.
fn read_until_done(c: &mut Client, mut from: u64, data: &mut String) -> Value {
    let mut lost = 0;
    loop {
        let n = c.read_json();
        assert_eq!(
            n["method"],
            "run.output",
            "{}",
            &n.to_string()[..200.min(n.to_string().len())]
        );
        let mut p = n["params"].clone();
        if p["done"] == true || p["dropped"] == true {
            p["lost_total"] = lost.into();
            return p;
        }
        let skipped = p["lost"].as_u64().unwrap_or(0);
        lost += skipped;
        let offset = p["offset"].as_u64();
        assert_eq!(offset, Some(from + skipped), "contiguous");
        let piece = p["data"].as_str().expect("data");
        from += skipped + piece.len() as u64;
        data.push_str(piece);
    }
}

#[test]
fn follow_sees_lines_before_the_run_ends_then_done() {
    let d = Daemon::start(&config("", GATED));
    let mut c = d.client();
    let id = start_run(&mut c, "gated");
    let first = c.ok("runs.output", json!({ "run_id": id, "follow": true }));
    assert_eq!(first["run_id"], json!(id));
    assert_eq!(first["job"], "gated");
    assert_eq!(first["done"], false);
    assert_eq!(first["from"], 0);
    let mut data = first["output"].as_str().unwrap().to_string();
    let mut next = first["next"].as_u64().unwrap();
    assert_eq!(next, data.len() as u64);
    while !data.contains("one\n") {
        let n = c.read_json();
        assert_eq!(n["method"], "run.output", "{n}");
        assert_eq!(n["params"]["offset"].as_u64(), Some(next));
        let piece = n["params"]["data"].as_str().unwrap();
        next += piece.len() as u64;
        data.push_str(piece);
    }
    assert_eq!(state_of(&d, &id), "running", "the line came while it runs");
    // What a client that is not following reads meanwhile: the same.
    let now = d.client().ok("runs.output", json!({ "run_id": id }));
    assert_eq!(
        (now["output"].as_str(), now["done"].as_bool()),
        (Some("one\n"), Some(false))
    );
    std::fs::write(d.dir().join("go"), "").unwrap();
    let last = read_until_done(&mut c, next, &mut data);
    assert_eq!(data, "one\ntwo\n");
    assert_eq!(last["done"], true);
    assert_eq!(last["state"], "succeeded");
    assert_eq!(last["offset"], 8);
    // The connection is still a normal one.
    assert_eq!(c.ok("ping", json!({})), "pong");
    let after = c.ok("runs.output", json!({ "run_id": id, "follow": true }));
    assert_eq!(
        (after["output"].as_str(), after["done"].as_bool()),
        (Some("one\ntwo\n"), Some(true))
    );
    assert_eq!(
        c.ok("ping", json!({})),
        "pong",
        "no notification after an ended run"
    );
}

#[test]
fn from_offsets_and_lost_bytes() {
    let jobs = r#"
[[jobs]]
name = "abc"
command = ["printf", "abcdefghij"]

[[jobs]]
name = "big"
command = ["sh", "-c", "seq 1 30000"]
"#;
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let id = run_id(&c.ok("jobs.run", json!({"name": "abc", "wait": true})));
    let r = c.ok("runs.output", json!({ "run_id": id, "from": 3 }));
    assert_eq!(r["output"], "defghij");
    assert_eq!(
        (r["from"].as_u64(), r["next"].as_u64(), r["lost"].as_u64()),
        (Some(3), Some(10), Some(0))
    );
    assert_eq!(r["done"], true);
    assert_eq!(r["state"], "succeeded");
    let past = c.ok("runs.output", json!({ "run_id": id, "from": 99 }));
    assert_eq!(
        (past["output"].as_str(), past["from"].as_u64()),
        (Some(""), Some(10))
    );
    // Without output_dir only the 64 KiB tail is kept: the bytes before it
    // are told lost.
    let id = run_id(&c.ok("jobs.run", json!({"name": "big", "wait": true})));
    let total: u64 = (1..=30000)
        .map(|n: u64| n.to_string().len() as u64 + 1)
        .sum();
    let r = c.ok("runs.output", json!({ "run_id": id }));
    let from = r["from"].as_u64().unwrap();
    assert_eq!(from, total - 65536);
    assert_eq!(r["lost"].as_u64(), Some(from));
    let mut text = r["output"].as_str().unwrap().to_string();
    let mut next = r["next"].as_u64().unwrap();
    let mut done = r["done"].as_bool().unwrap();
    while !done {
        let r = c.ok("runs.output", json!({ "run_id": id, "from": next }));
        text.push_str(r["output"].as_str().unwrap());
        next = r["next"].as_u64().unwrap();
        done = r["done"].as_bool().unwrap();
    }
    assert_eq!(next, total);
    assert!(text.ends_with("29999\n30000\n"));
    assert_eq!(text.len(), 65536);
    // Bad params.
    assert_eq!(
        c.err_code("runs.output", json!({ "run_id": id, "from": -1 })),
        -32602
    );
    assert_eq!(
        c.err_code("runs.output", json!({ "run_id": id, "follow": "yes" })),
        -32602
    );
    assert_eq!(
        c.err_code("runs.output", json!({ "run_id": id, "x": 1 })),
        -32602
    );
}

#[test]
fn unknown_runs_are_32000_and_404() {
    let d = Daemon::start(&config("", ""));
    let mut c = d.client();
    assert_eq!(
        c.err_code("runs.output", json!({ "run_id": "999999" })),
        -32000
    );
    assert_eq!(
        c.err_code("runs.output", json!({ "run_id": "nope", "follow": true })),
        -32000
    );
    for path in ["/runs/999999/output", "/runs/nope/output?follow=1"] {
        let r = get(d.addr, path);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_eq!(r.json()["code"], -32000);
    }
    assert_eq!(get(d.addr, "/runs/1/output?from=x").status, 400);
    assert_eq!(get(d.addr, "/runs/1/output?tail=1").status, 400);
}

/// Reads one chunk of a chunked body: its bytes (empty: the last chunk).
fn read_chunk(conn: &mut HttpConn) -> Vec<u8> {
    let mut line = String::new();
    conn.reader.read_line(&mut line).expect("chunk size line");
    let size = usize::from_str_radix(line.trim_end(), 16).expect("hex size");
    let mut chunk = vec![0; size + 2];
    conn.reader.read_exact(&mut chunk).expect("chunk");
    assert_eq!(&chunk[size..], b"\r\n");
    chunk.truncate(size);
    chunk
}

/// Reads a response head: status line and headers.
fn read_head(conn: &mut HttpConn) -> (String, Vec<(String, String)>) {
    let mut status = String::new();
    conn.reader.read_line(&mut status).expect("status");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        conn.reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            return (status.trim_end().to_string(), headers);
        }
        let (n, v) = h.split_once(':').unwrap();
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

#[test]
fn http_get_follows_in_chunks_until_the_run_ends() {
    let d = Daemon::start(&config("", GATED));
    let mut c = d.client();
    let id = start_run(&mut c, "gated");
    let mut conn = HttpConn::connect(d.addr);
    conn.send(&request_bytes(
        "GET",
        &format!("/runs/{id}/output?follow=1"),
        &[],
        "",
    ));
    let (status, headers) = read_head(&mut conn);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("transfer-encoding"), Some("chunked"));
    assert_eq!(header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(header("x-tickd-output-from"), Some("0"));
    let mut body = Vec::new();
    while !body.ends_with(b"one\n") {
        let chunk = read_chunk(&mut conn);
        assert!(!chunk.is_empty(), "the body ended early");
        body.extend(chunk);
    }
    assert_eq!(state_of(&d, &id), "running");
    std::fs::write(d.dir().join("go"), "").unwrap();
    loop {
        let chunk = read_chunk(&mut conn);
        if chunk.is_empty() {
            break;
        }
        body.extend(chunk);
    }
    assert_eq!(body, b"one\ntwo\n");
    // Keep-alive: the connection answers its next request.
    let r = conn.request("GET", &format!("/runs/{id}/output?from=4"), &[], "");
    assert_eq!((r.status, r.body.as_str()), (200, "two\n"));
    assert_eq!(r.header("x-tickd-output-from"), Some("4"));
    assert_eq!(r.header("x-tickd-output-done"), Some("true"));
}

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_slow_follower_is_dropped_and_the_others_are_not() {
    // 960 lines of 50 KiB (48 MiB), far more than the socket buffers and
    // the bound (half of max_output_bytes) of a follower that never reads.
    let jobs = r#"
[[jobs]]
name = "chatty"
command = ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.02; done; i=0; while [ $i -lt 960 ]; do head -c 51200 /dev/zero | tr '\\0' x; echo; i=$((i+1)); [ $((i % 16)) = 0 ] && sleep 0.01; done; true", "$DIR/go"]
"#;
    let d = Daemon::start(&config("max_output_bytes = 2097152", jobs));
    let before = peak_rss_kib(d.child.id());
    let mut c = d.client();
    let id = start_run(&mut c, "chatty");
    let mut slow = d.client();
    let mut fast = d.client();
    for f in [&mut slow, &mut fast] {
        let r = f.ok("runs.output", json!({ "run_id": id, "follow": true }));
        assert_eq!(r["output"], "");
    }
    std::fs::write(d.dir().join("go"), "").unwrap();
    let mut data = String::new();
    let last = read_until_done(&mut fast, 0, &mut data);
    assert_eq!(last["done"], true, "the reader keeps up: {last}");
    assert_eq!(last["state"], "succeeded");
    // Nothing is held back from a reader that keeps up; bytes the job
    // printed faster than the loop forwarded them (more than the 64 KiB
    // tail between two turns, on a busy machine) are told as lost.
    let lost = last["lost_total"].as_u64().unwrap();
    assert_eq!(data.len() as u64 + lost, 960 * 51201);
    assert!(lost < 960 * 51201 / 2, "most of it arrived: {lost} lost");
    let peak = peak_rss_kib(d.child.id());
    assert!(
        peak < before + 24 * 1024,
        "memory bounded: peak {peak} KiB, {before} KiB at start"
    );
    // The slow one: what was queued for it, then the drop; its connection
    // stays open and usable.
    let mut dropped = String::new();
    let end = read_until_done(&mut slow, 0, &mut dropped);
    assert_eq!(end["dropped"], true, "{end}");
    assert!(dropped.len() < data.len());
    assert_eq!(slow.ok("ping", json!({})), "pong");
    assert!(d.log.all().iter().any(|l| l.contains("stopped following")));
}

/// Reads all of run `id`'s output with `runs.output`, piece by piece.
fn read_all(c: &mut Client, id: &str) -> String {
    let (mut text, mut next) = (String::new(), 0u64);
    loop {
        let r = c.ok("runs.output", json!({ "run_id": id, "from": next }));
        assert_eq!(r["from"].as_u64(), Some(next), "nothing lost: {r}");
        text.push_str(r["output"].as_str().unwrap());
        next = r["next"].as_u64().unwrap();
        if r["done"] == true {
            return text;
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const SEQ: &str = r#"
[[jobs]]
name = "seq"
command = ["seq", "1", "40000"]
"#;

fn seq_text(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[test]
fn output_dir_keeps_more_than_the_tail_in_0600_files() {
    let d = Daemon::start(&config("output_dir = \"$DIR/out\"", SEQ));
    let out = d.dir().join("out");
    let mut c = d.client();
    let id = run_id(&c.ok("jobs.run", json!({"name": "seq", "wait": true})));
    assert_eq!(mode(&out), 0o700, "created 0700");
    let file = out.join(format!("run-{id}.out"));
    assert_eq!(mode(&file), 0o600);
    let expected = seq_text(40000);
    assert!(expected.len() > 64 * 1024);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    assert_eq!(read_all(&mut c, &id), expected, "all of it, not the tail");
    let r = get(d.addr, &format!("/runs/{id}/output"));
    assert_eq!(
        (r.status, r.header("x-tickd-output-from")),
        (200, Some("0"))
    );
    assert_eq!(r.body, expected);
}

#[test]
fn output_dir_caps_each_run_and_the_total_oldest_first() {
    let extra =
        "output_dir = \"$DIR/out\"\noutput_max_bytes_per_run = 10000\noutput_dir_max_bytes = 25000";
    let d = Daemon::start(&config(extra, SEQ));
    let out = d.dir().join("out");
    let mut c = d.client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(run_id(
            &c.ok("jobs.run", json!({"name": "seq", "wait": true})),
        ));
    }
    let text = read_all(&mut c, &ids[2]);
    assert!(text.starts_with(&seq_text(2000)), "the start is kept");
    assert!(
        text.contains("[tickd: output truncated"),
        "{}",
        &text[text.len() - 100..]
    );
    let size = |id: &str| std::fs::metadata(out.join(format!("run-{id}.out"))).map(|m| m.len());
    let capped = size(&ids[2]).unwrap();
    assert!((10000..10200).contains(&capped), "capped: {capped}");
    // Three capped files pass 25000 bytes: the oldest was deleted.
    assert!(size(&ids[0]).is_err(), "the oldest file is gone");
    assert!(size(&ids[1]).is_ok() && size(&ids[2]).is_ok());
    // Its run still answers, with the tail kept in memory.
    let r = c.ok("runs.output", json!({ "run_id": ids[0] }));
    assert!(r["output"].as_str().unwrap().ends_with("40000\n"));
}

#[test]
fn no_job_name_or_arg_steers_the_file_name() {
    let jobs = r#"
[[jobs]]
name = "..x"
command = ["sh", "-c", "echo \"$TICKD_ARGS\""]
"#;
    let d = Daemon::start(&config("output_dir = \"$DIR/out\"", jobs));
    let mut c = d.client();
    let args = json!({"name": "../../evil", "path": "/tmp/../evil"});
    let run = c.ok(
        "jobs.run",
        json!({"name": "..x", "args": args, "wait": true}),
    );
    let id = run_id(&run);
    let names: Vec<String> = std::fs::read_dir(d.dir().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("run-{id}.out")]);
    let mut top: Vec<String> = std::fs::read_dir(d.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["out", "tickd.toml"], "nothing written beside");
    let text = poll_until("the output", || {
        let r = c.ok("runs.output", json!({ "run_id": id }));
        r["done"]
            .as_bool()
            .unwrap_or(false)
            .then(|| r["output"].as_str().unwrap().to_string())
    });
    assert!(text.contains("../../evil"));
}

#[test]
fn a_kept_file_is_read_after_a_restart() {
    let base = tempfile::tempdir().unwrap();
    let extra = format!(
        "state_dir = \"{0}/state\"\noutput_dir = \"{0}/out\"",
        base.path().display()
    );
    let text = config(&extra, SEQ);
    let mut first = Daemon::start(&text);
    let id = run_id(
        &first
            .client()
            .ok("jobs.run", json!({"name": "seq", "wait": true})),
    );
    first.signal(rustix::process::Signal::TERM);
    assert!(first
        .wait_exit(std::time::Duration::from_secs(10))
        .is_some());
    let second = Daemon::start(&text);
    let mut c = second.client();
    assert_eq!(
        read_all(&mut c, &id),
        seq_text(40000),
        "all of it, from the file"
    );
    // Without the file, the journaled tail keeps its offsets.
    std::fs::remove_file(base.path().join(format!("out/run-{id}.out"))).unwrap();
    let r = c.ok("runs.output", json!({ "run_id": id }));
    let total = seq_text(40000).len() as u64;
    assert_eq!(r["from"].as_u64(), Some(total - 65536));
    assert_eq!(r["next"].as_u64(), Some(total));
}

#[test]
fn following_a_queued_run_ends_when_it_is_cancelled_or_runs() {
    let jobs = format!(
        "{GATED}\n[[jobs]]\nname = \"quick\"\noverlap = \"queue\"\ncommand = [\"echo\", \"hi\"]\n"
    );
    let d = Daemon::start(&config("workers = 1", &jobs));
    let mut c = d.client();
    let gated = start_run(&mut c, "gated");
    let dropped = start_run(&mut c, "quick");
    let runs = start_run(&mut c, "quick");
    let mut f = d.client();
    for id in [&dropped, &runs] {
        let r = f.ok("runs.output", json!({ "run_id": id, "follow": true }));
        assert_eq!(
            (r["state"].as_str(), r["output"].as_str()),
            (Some("queued"), Some(""))
        );
    }
    c.ok("runs.cancel", json!({ "run_id": dropped }));
    let n = f.read_json();
    assert_eq!(n["params"]["run_id"], json!(dropped));
    assert_eq!(
        (n["params"]["done"].as_bool(), n["params"]["state"].as_str()),
        (Some(true), Some("cancelled"))
    );
    std::fs::write(d.dir().join("go"), "").unwrap();
    let mut data = String::new();
    let last = read_until_done(&mut f, 0, &mut data);
    assert_eq!(last["run_id"], json!(runs));
    assert_eq!(
        (data.as_str(), last["state"].as_str()),
        ("hi\n", Some("succeeded"))
    );
    assert_eq!(state_of(&d, &gated), "succeeded");
}
