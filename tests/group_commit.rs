//! Group commit with `state_dir`: answers wait until what they acknowledge
//! is durable, a failed fdatasync fails every request of its group (none
//! answered ok), nothing acknowledged is lost to a `kill -9`, answers keep
//! their request order on a connection however they mix durable and other
//! requests, and compaction (off the loop) under load keeps every record.

use crate::util;

use serde_json::{json, Value};
#[cfg(feature = "failpoints")]
use std::collections::BTreeMap;
#[cfg(feature = "failpoints")]
use std::io::ErrorKind;
#[cfg(feature = "failpoints")]
use util::poll_until;
use util::{config, Client, Daemon};

const JOBS: &str = r#"
[[jobs]]
name = "quick"
overlap = "allow"
command = ["true"]

[[jobs]]
name = "other"
command = ["true"]
"#;

fn with_state(state: &std::path::Path, extra: &str) -> String {
    config(
        &format!(
            "state_dir = \"{}\"\nhistory = 100000\nqueue_capacity = 10000\n{extra}",
            state.display()
        ),
        JOBS,
    )
}

/// `n` pipelined `jobs.run` of `quick` with ids `first..first + n`, as one
/// write.
fn burst(c: &mut Client, first: u64, n: u64) {
    let mut lines = String::new();
    for id in first..first + n {
        let line =
            json!({"jsonrpc": "2.0", "id": id, "method": "jobs.run", "params": {"name": "quick"}});
        lines.push_str(&format!("{line}\n"));
    }
    c.send_raw(lines.as_bytes());
}

/// Whether the server has sent anything on `c` (looked at without waiting).
#[cfg(feature = "failpoints")]
fn has_answer(c: &mut Client) -> bool {
    if !c.reader.buffer().is_empty() {
        return true;
    }
    let stream = c.reader.get_mut();
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let got = match stream.peek(&mut byte) {
        Ok(n) => n > 0,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("peek: {e}"),
    };
    stream.set_nonblocking(false).expect("blocking");
    got
}

#[cfg(feature = "failpoints")]
fn set_failpoint(c: &mut Client, name: &str, actions: &str) {
    c.ok(
        "debug.failpoint",
        json!({ "name": name, "actions": actions }),
    );
}

#[cfg(feature = "failpoints")]
fn runs_of(c: &mut Client, job: &str) -> u64 {
    c.ok("jobs.get", json!({ "name": job }))["runs_total"]
        .as_u64()
        .unwrap_or(0)
}

/// The fdatasync that would make a pipelined burst on four connections
/// durable fails: every request of the burst is answered -32603, none
/// ok, and none before the sync was tried; the request whose sync was
/// already under way is answered ok. The journal is then rewritten from
/// memory and later requests are acknowledged again.
#[cfg(feature = "failpoints")]
#[test]
fn a_failed_sync_fails_every_request_of_its_group() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start_with_env(
        &with_state(state.path(), "log_level = \"debug\""),
        &[("TICKD_DEBUG_HOOKS", "1")],
    );
    let mut admin = d.client();
    // A first group: a pause whose fdatasync is held in a fail point.
    set_failpoint(&mut admin, "journal.sync", "pause");
    let mut first = d.client();
    let from = d.log.len();
    first.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"jobs.pause\",\"params\":{\"name\":\"other\"}}\n");
    d.log
        .wait_for("fdatasync of the records up to #", from, util::WAIT)
        .expect("the pause's group is being synced");
    // The next group: forty runs pipelined on four connections, all
    // accepted (they run) while that sync is held.
    let mut clients: Vec<Client> = (0..4).map(|_| d.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        burst(c, 100 * i as u64, 10);
    }
    poll_until("the forty runs to be accepted and run", || {
        (runs_of(&mut admin, "quick") == 40).then_some(())
    });
    assert!(!has_answer(&mut first), "nothing before its fdatasync");
    for c in &mut clients {
        assert!(!has_answer(c), "nothing before its fdatasync");
    }
    // The held sync goes through; the next one, the burst's, fails.
    set_failpoint(&mut admin, "journal.sync", "1*return");
    let paused = first.read_json();
    assert_eq!(paused["result"]["paused"], true, "{paused}");
    for (i, c) in clients.iter_mut().enumerate() {
        for n in 0..10 {
            let answer = c.read_json();
            assert_eq!(answer["id"], 100 * i as u64 + n, "in order: {answer}");
            assert!(answer.get("result").is_none(), "answered ok: {answer}");
            assert_eq!(answer["error"]["code"], -32603, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains("not acknowledged"), "{answer}");
            assert!(message.contains("fdatasync"), "{answer}");
        }
    }
    let status = admin.ok("status", json!({}));
    assert!(
        status["state"]["write_errors"].as_u64() >= Some(1),
        "{status}"
    );
    // Rewritten from memory (the runs are in it), then acknowledged again.
    d.wait_status("the journal to be rewritten", |s| {
        s["state"]["writing"] == true
    });
    let again = admin.ok("jobs.run", json!({"name": "quick"}));
    assert!(again["run_id"].is_string(), "{again}");
}

/// Runs acknowledged on several pipelining connections survive a `kill -9`
/// sent as soon as the last answer is read: an answer is only sent once
/// its run is in the file (and synced).
#[test]
fn acknowledged_runs_survive_kill_9_right_after_the_answers() {
    let state = tempfile::tempdir().expect("state dir");
    let text = with_state(state.path(), "");
    let mut d = Daemon::start(&text);
    let mut clients: Vec<Client> = (0..4).map(|_| d.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        burst(c, 1000 * i as u64, 50);
    }
    let mut acked = Vec::new();
    for c in &mut clients {
        for _ in 0..50 {
            let answer = c.read_json();
            let id = answer["result"]["run_id"].as_str().expect("run id");
            acked.push(id.to_string());
        }
    }
    d.signal(rustix::process::Signal::KILL);
    d.wait_exit(util::WAIT).expect("killed");
    let d = Daemon::start(&text);
    let mut c = d.client();
    for id in &acked {
        let run = c.ok("runs.get", json!({ "run_id": id }));
        assert_eq!(run["job"], "quick", "{run}");
    }
}

/// On one connection, requests answered at once (ping, status, queries)
/// and requests whose answers wait for the journal (runs, pauses, a run
/// waited for) come back in the order they were sent, in a pipeline and in
/// a batch.
#[test]
fn answers_keep_request_order_with_durable_and_other_requests_mixed() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), ""));
    let mut c = d.client();
    let calls = [
        ("jobs.run", json!({"name": "quick"})),
        ("ping", json!({})),
        ("status", json!({})),
        ("jobs.run", json!({"name": "quick", "wait": true})),
        ("jobs.get", json!({"name": "quick"})),
        ("jobs.pause", json!({"name": "other"})),
        ("ping", json!({})),
        ("jobs.resume", json!({"name": "other"})),
        ("jobs.list", json!({})),
        ("jobs.run", json!({"name": "nope"})),
        ("jobs.run", json!({"name": "quick"})),
        ("ping", json!({})),
    ];
    for round in 0..5u64 {
        let mut lines = String::new();
        for (n, (method, params)) in calls.iter().enumerate() {
            let id = round * 100 + n as u64;
            let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            lines.push_str(&format!("{line}\n"));
        }
        c.send_raw(lines.as_bytes());
        for (n, (method, _)) in calls.iter().enumerate() {
            let answer = c.read_json();
            assert_eq!(answer["id"], round * 100 + n as u64, "{method}: {answer}");
            let failed = answer.get("error").is_some();
            assert_eq!(failed, n == 9, "{method}: {answer}");
        }
        // The same mix as one batch: one array, members in order.
        let batch: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(n, (method, params))| {
                json!({"jsonrpc": "2.0", "id": n, "method": method, "params": params})
            })
            .collect();
        c.send_raw(format!("{}\n", Value::Array(batch)).as_bytes());
        let answers = c.read_json();
        let ids: Vec<u64> = answers
            .as_array()
            .expect("an array")
            .iter()
            .map(|a| a["id"].as_u64().expect("id"))
            .collect();
        assert_eq!(ids, (0..calls.len() as u64).collect::<Vec<_>>());
    }
}

/// With compaction asked for all the time (fail point), the journal is
/// rewritten again and again, off the loop, while four connections keep
/// starting runs and a job is paused: after a restart every acknowledged
/// run is found as it finished, and the pause holds.
#[cfg(feature = "failpoints")]
#[test]
fn compaction_under_load_keeps_every_record() {
    let state = tempfile::tempdir().expect("state dir");
    let text = with_state(state.path(), "log_level = \"info\"");
    let mut d = Daemon::start_with_env(&text, &[("FAILPOINTS", "journal.compact_now=return")]);
    let mut admin = d.client();
    admin.ok("jobs.pause", json!({"name": "other"}));
    let mut clients: Vec<Client> = (0..4).map(|_| d.client()).collect();
    let mut acked: BTreeMap<String, ()> = BTreeMap::new();
    let mut round = 0u64;
    // Until several compactions were put in place under the load.
    while d
        .log
        .all()
        .iter()
        .filter(|l| l.contains("journal compacted"))
        .count()
        < 5
    {
        assert!(
            round < 2000,
            "compactions did not happen: {:?}",
            d.log.all()
        );
        for (i, c) in clients.iter_mut().enumerate() {
            burst(c, round * 1000 + 100 * i as u64, 20);
        }
        for c in &mut clients {
            for _ in 0..20 {
                let answer = c.read_json();
                let id = answer["result"]["run_id"].as_str().expect("run id");
                acked.insert(id.to_string(), ());
            }
        }
        round += 1;
    }
    // Let the runs finish, so that their last records are the ones kept.
    let total = acked.len() as u64;
    poll_until("every run to finish", || {
        (runs_of(&mut admin, "quick") == total).then_some(())
    });
    drop(clients);
    drop(admin);
    d.signal(rustix::process::Signal::TERM);
    assert!(d.wait_exit(util::WAIT).expect("stopped").success());

    let d = Daemon::start(&text);
    assert!(
        d.log
            .wait_for("corrupt", 0, std::time::Duration::ZERO)
            .is_none(),
        "{:?}",
        d.log.all()
    );
    let mut c = d.client();
    for id in acked.keys() {
        let run = c.ok("runs.get", json!({ "run_id": id }));
        assert_eq!(run["job"], "quick", "{run}");
        assert_eq!(run["state"], "succeeded", "run {id}: {run}");
    }
    assert_eq!(runs_of(&mut c, "quick"), total);
    let job = c.ok("jobs.get", json!({"name": "other"}));
    assert_eq!(job["paused"], true, "{job}");
}
