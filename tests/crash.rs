//! Crash recovery under load: clients keep asking for runs (jobs of 0 to
//! 50 ms) while tickd, with `state_dir`, is killed with SIGKILL at random
//! moments and restarted on the same directory, several rounds.
//!
//! After every restart: the daemon starts, reports how many runs it
//! recovered from the journal (at least the acknowledged ones), every
//! run whose id a client was given is found (queued, running, finished or
//! `interrupted`), no run of an earlier round has vanished, and no id was
//! handed out twice.

use crate::util;

use rustix::process::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickd::rng::SplitMix64;
use util::{config, Daemon};

const ROUNDS: usize = 5;
const CLIENTS: usize = 2;

const JOBS: &str = r#"
[[jobs]]
name = "instant"
overlap = "allow"
command = ["true"]

[[jobs]]
name = "short"
overlap = "allow"
command = ["sh", "-c", "sleep 0.02"]

[[jobs]]
name = "medium"
overlap = "allow"
command = ["sh", "-c", "sleep 0.05"]
"#;

/// Issues `jobs.run` until the connection dies or `stop` is set; records
/// every run id it was given (with the job's name).
fn load(addr: SocketAddr, stop: Arc<AtomicBool>, acked: Arc<Mutex<BTreeMap<u64, String>>>) {
    let Ok(stream) = TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(util::WAIT));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let names = ["instant", "short", "medium"];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let name = names[i % names.len()];
        i += 1;
        let line =
            json!({"jsonrpc": "2.0", "id": i, "method": "jobs.run", "params": {"name": name}});
        if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
            return;
        }
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) | Err(_) => return, // killed: this request was not acknowledged
            Ok(_) => {}
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&answer) else {
            // A line cut short by the kill: not an acknowledgement.
            return;
        };
        if let Some(id) = v["result"]["run_id"].as_str().and_then(|s| s.parse().ok()) {
            let previous = acked.lock().unwrap().insert(id, name.to_string());
            assert!(previous.is_none(), "run id {id} handed out twice");
        }
        if i.is_multiple_of(8) {
            // Let the queue drain a little, so runs finish as well as queue.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn acknowledged_runs_survive_kill_9_under_load() {
    let state = tempfile::tempdir().expect("state dir");
    let text = config(
        &format!(
            "workers = 4\nhistory = 100000\nlog_level = \"info\"\nstate_dir = \"{}\"",
            state.path().display()
        ),
        JOBS,
    );
    let acked = Arc::new(Mutex::new(BTreeMap::<u64, String>::new()));
    let mut rng = SplitMix64::seeded();
    for round in 0..=ROUNDS {
        let mut d = Daemon::start(&text);
        let lost_tail = d
            .log
            .wait_for("corrupt data, and the records after it", 0, Duration::ZERO);
        assert!(
            lost_tail.is_none(),
            "round {round}: journal damaged: {lost_tail:?}"
        );
        if round > 0 {
            check_journal_read(&d, acked.lock().unwrap().len(), round);
        }
        check_all_found(&d, &acked.lock().unwrap(), round);
        if round == ROUNDS {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (stop, acked, addr) = (Arc::clone(&stop), Arc::clone(&acked), d.addr);
                std::thread::spawn(move || load(addr, stop, acked))
            })
            .collect();
        // Some load first, then a kill at a random moment.
        util::poll_until("the first runs of the round", || {
            (acked.lock().unwrap().len() >= before + 10).then_some(())
        });
        std::thread::sleep(Duration::from_millis(rng.below_u64(600)));
        d.signal(Signal::KILL);
        d.wait_exit(util::WAIT).expect("killed");
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("load thread");
        }
    }
    let total = acked.lock().unwrap().len();
    assert!(total >= ROUNDS * 10, "only {total} runs acknowledged");
}

/// The restarted daemon read the journal: it says how many runs it
/// recovered (at least every acknowledged one; runs accepted but not yet
/// answered when the kill came may add to them), and `status.state` shows
/// the journal in use and writable.
fn check_journal_read(d: &Daemon, acked: usize, round: usize) {
    let (_, line) = d
        .log
        .wait_for("state_dir: recovered ", 0, util::WAIT)
        .unwrap_or_else(|| panic!("round {round}: no recovery line in the log"));
    let recovered: usize = line
        .split("state_dir: recovered ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("round {round}: unreadable recovery line {line:?}"));
    assert!(
        recovered >= acked,
        "round {round}: {recovered} runs recovered, {acked} acknowledged: {line}"
    );
    let status = d.client().ok("status", json!({}));
    assert_eq!(status["state"]["enabled"], true, "{status}");
    assert_eq!(status["state"]["writing"], true, "{status}");
}

/// Every acknowledged run is known to the daemon, under the job it was
/// started for.
fn check_all_found(d: &Daemon, acked: &BTreeMap<u64, String>, round: usize) {
    let mut c = d.client();
    for (id, job) in acked {
        let resp = c.call("runs.get", json!({"run_id": id.to_string()}));
        let run = &resp["result"];
        assert_eq!(
            run["job"],
            json!(job),
            "round {round}: acknowledged run {id} not found: {resp}"
        );
        let state = run["state"].as_str().unwrap_or("");
        assert!(
            ["queued", "running", "succeeded", "interrupted"].contains(&state),
            "round {round}: run {id} in state {state}: {run}"
        );
    }
}
