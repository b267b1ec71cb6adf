//! `state_dir` through the real binary: history and run ids survive a
//! restart (and without `state_dir` ids start again from 1), `kill -9` leaves running runs `interrupted` and queued runs run,
//! a torn journal tail is skipped with a warning, catch-up after downtime,
//! and one state_dir per daemon.

use crate::util;

use rustix::process::Signal;
use serde_json::{json, Value};
use std::time::Duration;
use util::{config, millis, poll_until, Daemon};

fn with_state(state: &std::path::Path, jobs: &str) -> String {
    config(
        &format!("state_dir = \"{}\"\nlog_level = \"info\"", state.display()),
        jobs,
    )
}

fn stop(mut d: Daemon) {
    d.signal(Signal::TERM);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
}

fn kill9(mut d: Daemon) {
    d.signal(Signal::KILL);
    d.wait_exit(Duration::from_secs(20)).expect("killed");
}

const JOBS: &str = r#"
[[jobs]]
name = "quick"
command = ["sh", "-c", "echo ran:$TICKD_ARGS"]

[[jobs]]
name = "slow"
overlap = "queue"
command = ["sh", "-c", "echo slow:$TICKD_ARGS; echo 'tickd-progress: 0.5'; sleep 30"]
"#;

#[test]
fn history_counters_and_run_ids_survive_a_restart() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    let mut ids = Vec::new();
    for i in 0..3 {
        let run = c.ok(
            "jobs.run",
            json!({"name": "quick", "wait": true, "args": {"i": i}}),
        );
        assert_eq!(run["state"], "succeeded");
        ids.push(run["run_id"].as_str().expect("id").to_string());
    }
    stop(d);
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    let job = c.ok("jobs.get", json!({"name": "quick"}));
    assert_eq!(job["runs_total"], 3);
    let history: Vec<&str> = job["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or(""))
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(history, newest_first);
    let old = c.ok("runs.get", json!({"run_id": ids[0]}));
    assert_eq!(old["output"], "ran:{\"i\":0}\n");
    let next = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    let next_id: u64 = next["run_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    let last_old: u64 = ids[2].parse().expect("id");
    assert!(
        next_id > last_old,
        "ids are never reused: {next_id} after {last_old}"
    );
}

/// Without `state_dir` nothing is kept: the second daemon knows none of the
/// first one's runs and hands out `"1"` again (docs/protocol.md, "Timestamps
/// and ids").
#[test]
fn without_state_dir_run_ids_start_again_from_1_after_a_restart() {
    let text = config("", JOBS);
    let d = Daemon::start(&text);
    let mut c = d.client();
    let ids: Vec<Value> = (0..2)
        .map(|_| c.ok("jobs.run", json!({"name": "quick", "wait": true}))["run_id"].clone())
        .collect();
    assert_eq!(ids, [json!("1"), json!("2")]);
    stop(d);
    let d = Daemon::start(&text);
    let mut c = d.client();
    assert_eq!(c.err_code("runs.get", json!({"run_id": "2"})), -32000);
    let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(run["run_id"], "1");
    assert_eq!(c.ok("jobs.get", json!({"name": "quick"}))["runs_total"], 1);
}

#[test]
fn after_kill_9_running_runs_are_interrupted_and_queued_runs_run() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    let first = c.ok("jobs.run", json!({"name": "slow", "args": {"n": 1}}));
    let second = c.ok("jobs.run", json!({"name": "slow", "args": {"n": 2}}));
    let first_id = first["run_id"].as_str().expect("id").to_string();
    let second_id = second["run_id"].as_str().expect("id").to_string();
    poll_until("the first run to be running", || {
        let r = c.ok("runs.get", json!({"run_id": first_id}));
        (r["state"] == "running").then_some(())
    });
    let r = c.ok("runs.get", json!({"run_id": second_id}));
    assert_eq!(r["state"], "queued", "overlap = queue holds the second run");
    kill9(d);

    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    let interrupted = c.ok("runs.get", json!({"run_id": first_id}));
    assert_eq!(interrupted["state"], "interrupted");
    assert!(interrupted["error"]
        .as_str()
        .is_some_and(|e| e.contains("was running")));
    assert!(!interrupted["finished_at"].is_null());
    // The queued run runs again under its old id, with its args.
    let resumed = poll_until("the queued run to start after the restart", || {
        let r = c.ok("runs.get", json!({"run_id": second_id}));
        // Progress 0.5 is printed after the args line.
        (r["state"] == "running" && r["progress"] == 0.5).then_some(r)
    });
    assert_eq!(resumed["trigger"], "manual");
    let cancelled = c.ok("runs.cancel", json!({"run_id": second_id}));
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["output"]
        .as_str()
        .is_some_and(|o| o.contains("slow:{\"n\":2}")));
    let list = c.ok("runs.list", json!({"job": "slow", "state": "interrupted"}));
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[test]
fn an_accepted_run_survives_kill_9_right_after_the_answer() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    // The first run holds the job; ten more are accepted into its queue.
    let first = c.ok("jobs.run", json!({"name": "slow"}));
    // Once it is seen running it is journaled as running, so after the kill
    // it is interrupted, not queued again with the ten.
    poll_until("the first run to be running", || {
        let r = c.ok("runs.get", json!({"run_id": first["run_id"]}));
        (r["state"] == "running").then_some(())
    });
    let accepted: Vec<String> = (0..10)
        .map(|i| {
            let r = c.ok("jobs.run", json!({"name": "slow", "args": {"i": i}}));
            r["run_id"].as_str().expect("id").to_string()
        })
        .collect();
    kill9(d);
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    for id in &accepted {
        let r = c.ok("runs.get", json!({"run_id": id}));
        assert!(
            r["state"] == "queued" || r["state"] == "running",
            "accepted run {id} is back: {r}"
        );
    }
    let job = c.ok("jobs.get", json!({"name": "slow"}));
    // The ten are back: one may already be running again, the rest wait.
    let back =
        job["queued_count"].as_u64().unwrap_or(0) + job["running_count"].as_u64().unwrap_or(0);
    assert_eq!(back, 10, "{job}");
}

#[test]
fn a_torn_journal_tail_is_skipped_with_a_warning() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    stop(d);
    // Half a frame, as a crash in the middle of a write would leave.
    let journal = state.path().join("journal");
    let mut bytes = std::fs::read(&journal).expect("journal");
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&journal, bytes).expect("write");
    let d = Daemon::start(&with_state(state.path(), JOBS));
    let warning = d.log.wait_for("torn", 0, Duration::from_secs(10));
    assert!(
        warning.is_some_and(|(_, line)| line.contains("WARN")),
        "a warning names the damage: {:?}",
        d.log.all()
    );
    let mut c = d.client();
    let back = c.ok("runs.get", json!({"run_id": run["run_id"]}));
    assert_eq!(back["state"], "succeeded");
}

#[test]
fn a_state_dir_cannot_be_shared_by_two_daemons() {
    let state = tempfile::tempdir().expect("state dir");
    let _first = Daemon::start(&with_state(state.path(), JOBS));
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("second.toml");
    std::fs::write(&path, with_state(state.path(), JOBS)).expect("config");
    let out = std::process::Command::new(util::bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run second daemon");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
}

fn catch_up_after_downtime(mode: &str) -> (Value, Vec<Value>, i64) {
    let jobs = format!(
        r#"
[[jobs]]
name = "tick"
every = "1s"
catch_up = "{mode}"
catch_up_limit = 2
overlap = "allow"
command = ["true"]
"#
    );
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), &jobs));
    let mut c = d.client();
    poll_until("a scheduled run", || {
        let runs = c.ok("runs.list", json!({"job": "tick"}));
        (runs.as_array().map(Vec::len).unwrap_or(0) > 0).then_some(())
    });
    stop(d);
    let stopped_at = chrono::Utc::now().timestamp_millis();
    // The daemon is down for a few seconds: this wait is the scenario
    // under test (downtime), not a synchronisation.
    std::thread::sleep(Duration::from_millis(3500));
    let d = Daemon::start(&with_state(state.path(), &jobs));
    let mut c = d.client();
    let job = c.ok("jobs.get", json!({"name": "tick"}));
    let runs: Vec<Value> = c
        .ok("runs.list", json!({"job": "tick"}))
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["catch_up"] == true)
        .collect();
    for r in &runs {
        // Each stands for a due time inside the downtime.
        assert!(millis(&r["scheduled_at"]) > stopped_at, "{r}");
        assert!(millis(&r["scheduled_at"]) <= millis(&r["queued_at"]), "{r}");
        assert_eq!(r["trigger"], "schedule");
    }
    (job, runs, stopped_at)
}

#[test]
fn catch_up_all_replays_the_latest_missed_runs_up_to_the_limit() {
    let (job, runs, _) = catch_up_after_downtime("all");
    assert!(job["missed_total"].as_u64().unwrap_or(0) >= 3, "{job}");
    assert_eq!(runs.len(), 2, "catch_up_limit = 2: {runs:?}");
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"));
}

#[test]
fn catch_up_once_runs_one_and_none_runs_none_but_both_count() {
    let (job, runs, _) = catch_up_after_downtime("once");
    assert!(job["missed_total"].as_u64().unwrap_or(0) >= 3, "{job}");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (job, runs, _) = catch_up_after_downtime("none");
    assert!(job["missed_total"].as_u64().unwrap_or(0) >= 3, "{job}");
    assert!(runs.is_empty(), "{runs:?}");
}
