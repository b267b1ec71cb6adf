//! Faults injected into the real binary: a job worker dying while it holds
//! a run, a job panicking mid-run, a slow worker, the journal's disk filling
//! up, and `accept` failing (through the `server.accept` fail point, and for
//! real with EMFILE under `ulimit -n`).
//!
//! Fail points need `--features failpoints`; the EMFILE test does not.

use crate::util;

use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::{config, poll_until, Daemon};

const JOBS: &str = r#"
[[jobs]]
name = "quick"
command = ["sh", "-c", "echo ran"]

[[jobs]]
name = "nap"
command = ["sh", "-c", "sleep 0.3; echo napped"]
"#;

#[cfg(feature = "failpoints")]
const HOOKS: &[(&str, &str)] = &[("TICKD_DEBUG_HOOKS", "1")];

#[cfg(feature = "failpoints")]
fn set_failpoint(c: &mut util::Client, name: &str, actions: &str) {
    c.ok(
        "debug.failpoint",
        json!({ "name": name, "actions": actions }),
    );
}

/// CPU time (user + system, in clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// While accept keeps failing: `c` is answered 20 times in about a second,
/// and the daemon uses well under a core meanwhile (a loop retrying a
/// failing accept at once would use all of one).
fn assert_served_without_spinning(d: &Daemon, c: &mut util::Client) {
    let pid = d.child.id();
    let before = cpu_ticks(pid);
    let window = Instant::now();
    for _ in 0..20 {
        assert_eq!(c.ok("ping", json!({})), "pong");
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(pid) - before;
    let ticks = window.elapsed().as_secs_f64() * 100.0;
    assert!(
        (used as f64) < ticks * 0.8,
        "the loop spins while accept fails: {used} ticks of CPU in {ticks:.0}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_worker_dying_with_a_run_refills_the_pool_and_fails_the_run() {
    let d = Daemon::start_with_env(
        &config("", JOBS),
        &[("FAILPOINTS", "tickd-worker.die=1*panic")],
    );
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("worker thread died"), "{run}");
    let status = d.wait_status("the pool to refill", |s| {
        s["workers"]["alive"] == 2 && s["workers"]["respawned"] == 1
    });
    assert_eq!(status["health"], "ok");
    // The pool works again, and the failed run stays in the history.
    let next = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(next["state"], "succeeded", "{next}");
    let again = c.ok("runs.get", json!({"run_id": run["run_id"]}));
    assert_eq!(again["state"], "failed");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_pool_short_of_min_workers_is_degraded_until_the_replacement_comes() {
    let d = Daemon::start_with_env(
        &config("workers = 2\nmin_workers = 2", JOBS),
        &[
            ("TICKD_DEBUG_HOOKS", "1"),
            ("FAILPOINTS", "tickd-worker.respawn=1*sleep(3000)"),
        ],
    );
    let first = util::http::get(d.addr, "/healthz");
    assert_eq!(first.status, 200, "{} {:?}", first.body, d.log.all());
    let mut c = d.client();
    c.ok("debug.kill_worker", json!({}));
    let status = d.wait_status("the pool to run short", |s| s["health"] == "degraded");
    assert_eq!(status["workers"]["alive"], 1, "{status}");
    let health = util::http::get(d.addr, "/healthz");
    assert_eq!(health.status, 503, "{}", health.body);
    let metrics = util::http::get(d.addr, "/metrics").body;
    assert!(
        metrics.lines().any(|l| l == "tickd_workers_alive 1"),
        "{metrics}"
    );
    // The replacement arrives once the fail point's sleep ends.
    d.wait_status("the replacement", |s| {
        s["health"] == "ok" && s["workers"]["respawned"] == 1
    });
    assert_eq!(util::http::get(d.addr, "/healthz").status, 200);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_job_panicking_mid_run_is_recorded_failed_not_running() {
    let d = Daemon::start_with_env(&config("", JOBS), HOOKS);
    let mut c = d.client();
    set_failpoint(&mut c, "run.mid_job", "1*panic");
    let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap_or("").contains("panicked"),
        "{run}"
    );
    assert!(run["started_at"].is_string(), "it was running: {run}");
    let status = c.ok("status", json!({}));
    assert_eq!(status["workers"]["alive"], 2);
    let next = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(next["state"], "succeeded", "{next}");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_slow_worker_does_not_hold_up_the_others() {
    let d = Daemon::start_with_env(&config("", JOBS), HOOKS);
    let mut c = d.client();
    // The first run to start stalls for a long time on its worker.
    set_failpoint(&mut c, "run.mid_job", "1*sleep(5000)");
    let slow = c.ok("jobs.run", json!({"name": "quick"}));
    let slow_id = slow["run_id"].as_str().expect("id").to_string();
    poll_until("the slow run to start", || {
        let r = c.ok("runs.get", json!({"run_id": slow_id}));
        (r["state"] == "running").then_some(())
    });
    // The other worker serves runs meanwhile.
    for _ in 0..3 {
        let run = c.ok("jobs.run", json!({"name": "nap", "wait": true}));
        assert_eq!(run["state"], "succeeded", "{run}");
    }
    let r = c.ok("runs.get", json!({"run_id": slow_id}));
    assert_eq!(r["state"], "running", "still held up: {r}");
    let done = d.wait_run_done(&slow_id);
    assert_eq!(done["state"], "succeeded", "{done}");
}

#[cfg(feature = "failpoints")]
#[test]
fn journal_write_errors_show_in_status_and_writing_resumes() {
    let state = tempfile::tempdir().expect("state dir");
    let text = config(&format!("state_dir = \"{}\"", state.path().display()), JOBS);
    let mut d = Daemon::start_with_env(&text, HOOKS);
    let mut c = d.client();
    let healthy = c.ok("status", json!({}));
    assert_eq!(healthy["state"]["write_errors"], 0, "{healthy}");
    assert_eq!(healthy["state"]["writing"], true);
    // The disk is full: appends and compactions fail.
    set_failpoint(&mut c, "journal.append", "return");
    set_failpoint(&mut c, "journal.write_new", "return");
    // The run goes on in memory, but it is not acknowledged: nothing that
    // is not durable is.
    let refused = c.call("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("not acknowledged"), "{refused}");
    let during = util::poll_until("the run to go on", || {
        let job = c.ok("jobs.get", json!({"name": "quick"}));
        (job["runs_total"] == 1).then(|| job["last_run"].clone())
    });
    assert_eq!(during["state"], "succeeded", "runs go on: {during}");
    let s = c.ok("status", json!({}));
    assert!(s["state"]["write_errors"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(s["state"]["writing"], false, "{s}");
    let message = s["state"]["last_write_error"].as_str().unwrap_or("");
    assert!(message.contains("No space left"), "{s}");
    assert!(
        d.log
            .wait_for("could not make the journal durable", 0, util::WAIT)
            .is_some(),
        "the failure is logged"
    );
    // The disk has room again: the daemon notices by itself.
    set_failpoint(&mut c, "journal.append", "off");
    set_failpoint(&mut c, "journal.write_new", "off");
    d.wait_status("journal writes to resume", |s| {
        s["state"]["writing"] == true
    });
    let after = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    drop(c);
    // Nothing was lost: both runs survive a restart.
    d.signal(rustix::process::Signal::TERM);
    let status = d.wait_exit(util::WAIT).expect("exit");
    assert!(status.success());
    let d = Daemon::start(&text);
    let mut c = d.client();
    for run in [&during, &after] {
        let r = c.ok("runs.get", json!({"run_id": run["run_id"]}));
        assert_eq!(r["state"], "succeeded", "{r}");
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn failing_accepts_keep_the_loop_and_open_clients_alive() {
    let d = Daemon::start_with_env(&config("", JOBS), HOOKS);
    let mut c = d.client();
    set_failpoint(&mut c, "server.accept", "return");
    // The kernel completes the handshake; tickd cannot take the socket.
    let waiting = TcpStream::connect(d.addr).expect("connect");
    assert_served_without_spinning(&d, &mut c);
    assert!(d.log.wait_for("accept failed", 0, util::WAIT).is_some());
    set_failpoint(&mut c, "server.accept", "off");
    // The waiting client is accepted once the fault clears, with no new
    // connection needed to raise an event.
    let mut late = util::Client::from_stream(waiting);
    assert_eq!(late.ok("ping", json!({})), "pong");
    assert_eq!(c.ok("ping", json!({})), "pong");
}

/// A worker that took a run off the queue just before SIGTERM (held in
/// the `run.before_start` fail point) must not start it after the loop
/// decided that nothing runs and exited: with `state_dir` the run stays
/// queued and runs after the restart, instead of being journaled running
/// behind the drain's back and coming back `interrupted`.
#[cfg(feature = "failpoints")]
#[test]
fn a_run_taken_just_before_shutdown_stays_queued_for_the_restart() {
    let state = tempfile::tempdir().expect("state dir");
    let text = config(&format!("state_dir = \"{}\"", state.path().display()), JOBS);
    let mut d = Daemon::start_with_env(&text, &[("FAILPOINTS", "run.before_start=1*sleep(1500)")]);
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "quick"}));
    let id = run["run_id"].as_str().expect("run id").to_string();
    d.wait_status("a worker to hold the run", |s| s["workers"]["busy"] == 1);
    assert_eq!(c.ok("runs.get", json!({"run_id": id}))["state"], "queued");
    d.signal(rustix::process::Signal::TERM);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    drop(d);

    let d = Daemon::start(&text);
    let done = d.wait_run_done(&id);
    assert_eq!(
        done["state"], "succeeded",
        "the held run ran after the restart: {done}"
    );
    assert!(
        done["output"].as_str().is_some_and(|o| o.contains("ran")),
        "{done}"
    );
}

/// Real fd exhaustion: tickd runs under `ulimit -n 64` and more clients
/// connect than it has fds for.
#[test]
fn emfile_does_not_kill_the_loop_and_it_recovers() {
    let d = Daemon::start_limited(&config("max_connections = 1000", JOBS), &[], Some(64));
    let mut first = d.client();
    assert_eq!(first.ok("ping", json!({})), "pong");
    let extra: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(d.addr).expect("connect (backlog)"))
        .collect();
    assert!(
        d.log.wait_for("accept failed", 0, util::WAIT).is_some(),
        "tickd ran out of fds"
    );
    assert_served_without_spinning(&d, &mut first);
    drop(extra);
    // With the fds back, new clients are served again.
    let mut fresh: Value = Value::Null;
    poll_until("a new client to be served", || {
        let mut c = d.client();
        fresh = c.ok("status", json!({}));
        Some(())
    });
    assert_eq!(fresh["health"], "ok");
    // Jobs need fds too (pipes): they run again now.
    let run = first.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(run["state"], "succeeded", "{run}");
}
