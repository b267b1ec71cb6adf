//! Shutdown under load, with `state_dir`: SIGTERM while several clients
//! keep sending requests and runs are queued and running.
//!
//! Every connection sees only complete answers, each to its own request,
//! an answer to every request that reached the daemon before SIGTERM, then
//! a close; running runs finish within their grace; queued runs are
//! kept in the journal and run after the restart under their ids; exit 0.

use crate::util;

use rustix::process::Signal;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{config, poll_until, Daemon};

const CLIENTS: usize = 3;

const JOBS: &str = r#"
[[jobs]]
name = "work"
overlap = "allow"
command = ["sh", "-c", "sleep 0.3; echo done:$TICKD_ARGS"]
"#;

/// Sends requests one at a time (the daemon has read at most the one in
/// flight) until the daemon closes the connection; panics on a truncated or
/// mismatched answer, and on a close without an answer to a request whose
/// bytes reached the daemon before SIGTERM (`termed` is set just before the
/// signal). Returns the requests sent and the answers seen.
fn load(
    addr: SocketAddr,
    client: usize,
    ids: Arc<Mutex<BTreeSet<String>>>,
    termed: Arc<AtomicBool>,
) -> (u64, u64) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(util::WAIT)).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut answers = 0;
    let mut sent = 0;
    for i in 1u64.. {
        let (method, params) = if i % 3 == 0 {
            ("status", json!({}))
        } else {
            (
                "jobs.run",
                json!({"name": "work", "args": {"c": client, "i": i}}),
            )
        };
        let line = json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params});
        if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
            break; // closed by the daemon
        }
        sent += 1;
        // Read after the write completed: if no SIGTERM yet, the request was
        // in the daemon's socket before the signal, so it must be answered.
        let before_term = !termed.load(Ordering::SeqCst);
        let mut answer = String::new();
        let closed = match reader.read_line(&mut answer) {
            Ok(0) => Some("EOF".to_string()),
            Ok(_) => None,
            Err(e) => {
                assert!(
                    answer.is_empty(),
                    "client {client}: error {e} after part of an answer: {answer:?}"
                );
                Some(e.to_string())
            }
        };
        if let Some(how) = closed {
            assert!(
                !before_term,
                "client {client}: request {i}, sent before SIGTERM, got no answer ({how})"
            );
            break;
        }
        assert!(
            answer.ends_with('\n'),
            "client {client}: truncated answer {answer:?}"
        );
        let v: Value = serde_json::from_str(&answer).expect("answer is JSON");
        assert_eq!(
            v["id"],
            json!(i),
            "client {client}: answer to another request: {v}"
        );
        answers += 1;
        if let Some(id) = v["result"]["run_id"].as_str() {
            ids.lock().unwrap().insert(id.to_string());
        } else if v["error"].is_object() {
            // Only new runs are refused, and only once shutdown has begun.
            let message = v["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains("shutting down"), "client {client}: {v}");
        }
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    (sent, answers)
}

#[test]
fn sigterm_under_load_answers_everything_and_keeps_queued_runs() {
    let state = tempfile::tempdir().expect("state dir");
    let text = config(
        &format!(
            "workers = 2\nhistory = 100000\nshutdown_grace = \"20s\"\nlog_level = \"info\"\nstate_dir = \"{}\"",
            state.path().display()
        ),
        JOBS,
    );
    let mut d = Daemon::start(&text);
    let ids = Arc::new(Mutex::new(BTreeSet::new()));
    let termed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addr, ids, termed) = (d.addr, Arc::clone(&ids), Arc::clone(&termed));
            std::thread::spawn(move || load(addr, n, ids, termed))
        })
        .collect();
    // Load until runs are both running and queued.
    d.wait_status("runs running and queued", |s| {
        s["workers"]["busy"] == 2 && s["queue"]["depth"].as_u64().unwrap_or(0) >= 5
    });
    let running: Vec<String> = {
        let mut c = d.client();
        let list = c.ok("runs.list", json!({"state": "running"}));
        list.as_array()
            .or_else(|| list["runs"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["run_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!running.is_empty(), "runs were running at SIGTERM");
    termed.store(true, Ordering::SeqCst);
    d.signal(Signal::TERM);
    let status = d.wait_exit(util::WAIT).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    let mut answered = 0;
    for t in threads {
        let (sent, answers) = t.join().expect("a connection saw a bad answer");
        assert!(answers > 0);
        // Lockstep: at most the last request, sent after SIGTERM, unanswered.
        assert!(
            answers == sent || answers + 1 == sent,
            "{sent} requests sent, {answers} answered"
        );
        answered += answers;
    }
    assert!(answered > 10, "the load ran ({answered} answers)");
    assert!(
        d.log
            .wait_for("kept in state_dir", 0, Duration::ZERO)
            .is_some(),
        "queued runs were kept: {}",
        d.log.all().join("\n")
    );

    // After the restart: runs that were running finished in their grace,
    // the queued ones run now; none was cancelled, interrupted or lost.
    let d = Daemon::start(&text);
    let mut c = d.client();
    let ids = ids.lock().unwrap().clone();
    for id in &running {
        let r = c.ok("runs.get", json!({"run_id": id}));
        assert_eq!(
            r["state"], "succeeded",
            "running at SIGTERM, given its grace: {r}"
        );
    }
    for id in &ids {
        let r = poll_until(&format!("run {id} to finish after the restart"), || {
            let r = c.ok("runs.get", json!({"run_id": id}));
            let st = r["state"].as_str().unwrap_or("").to_string();
            (st != "queued" && st != "running").then_some(r)
        });
        assert_eq!(r["state"], "succeeded", "acknowledged run {id}: {r}");
        assert!(
            r["output"].as_str().unwrap_or("").starts_with("done:"),
            "{r}"
        );
    }
}
