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
    let stopped_at = jiff::Timestamp::now().as_millisecond();
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

/// The frames of a journal file: (offset of the frame, its JSON payload).
/// A length of zero is the start of the zeros written ahead of the end.
fn journal_frames(bytes: &[u8]) -> Vec<(usize, Value)> {
    let header = b"tickd-journal v1\n";
    assert!(bytes.starts_with(header), "a v1 journal");
    let mut frames = Vec::new();
    let mut pos = header.len();
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len];
        frames.push((pos, serde_json::from_slice(payload).expect("JSON payload")));
        pos += 8 + len;
    }
    frames
}

#[test]
fn a_flipped_length_bit_mid_journal_loses_nothing_after_it_and_reruns_nothing() {
    let state = tempfile::tempdir().expect("state dir");
    let count = state.path().join("ran.txt");
    let jobs = format!(
        "[[jobs]]\nname = \"count\"\ncommand = [\"sh\", \"-c\", \"echo x >> {}\"]\n",
        count.display()
    );
    let d = Daemon::start(&with_state(state.path(), &jobs));
    let mut c = d.client();
    let runs: Vec<Value> = (0..3)
        .map(|_| c.ok("jobs.run", json!({"name": "count", "wait": true})))
        .collect();
    stop(d);
    let journal = state.path().join("journal");
    let mut bytes = std::fs::read(&journal).expect("journal");
    // The first run's `running` snapshot: its `queued` one is before it,
    // its `succeeded` one and every other run after it.
    let first: u64 = runs[0]["run_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    let (at, _) = journal_frames(&bytes)
        .into_iter()
        .find(|(_, r)| r["t"] == "run" && r["id"] == first && r["state"] == "running")
        .expect("the running snapshot of the first run");
    // One bit: the length now points 64 KiB further, past the end of the
    // records (a few KiB, then zeros) but under the 16 MiB limit.
    bytes[at + 2] ^= 0x01;
    std::fs::write(&journal, &bytes).expect("write");

    let d = Daemon::start(&with_state(state.path(), &jobs));
    let (_, warning) = d
        .log
        .wait_for("corrupt data at offset", 0, util::WAIT)
        .expect("the damage is reported");
    assert!(
        warning.contains("records after it were recovered"),
        "{warning}"
    );
    let kept: Vec<_> = std::fs::read_dir(state.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "a copy of the damaged journal is kept");
    let mut c = d.client();
    for before in &runs {
        let after = c.ok("runs.get", json!({"run_id": before["run_id"]}));
        assert_eq!(after["state"], "succeeded", "{after}");
        // The same finish: not run a second time after the restart.
        assert_eq!(after["finished_at"], before["finished_at"], "{after}");
    }
    let job = c.ok("jobs.get", json!({"name": "count"}));
    assert_eq!(job["runs_total"], 3, "{job}");
    assert_eq!(job["queued_count"], 0, "{job}");
    assert_eq!(job["running_count"], 0, "{job}");
    let lines = std::fs::read_to_string(&count)
        .expect("count file")
        .lines()
        .count();
    assert_eq!(lines, 3, "each run ran once");
}

const PAUSABLE: &str = r#"
[[jobs]]
name = "tick"
every = "1h"
command = ["true"]

[[jobs]]
name = "off"
every = "1h"
enabled = false
command = ["true"]
"#;

/// `(enabled, paused, next_run is set)` of a job, from `jobs.get`.
fn pause_state(c: &mut util::Client, name: &str) -> (Value, Value, bool) {
    let job = c.ok("jobs.get", json!({ "name": name }));
    (
        job["enabled"].clone(),
        job["paused"].clone(),
        !job["next_run"].is_null(),
    )
}

#[test]
fn a_pause_survives_restarts_and_kill_9_until_resumed() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    let paused = c.ok("jobs.pause", json!({"name": "tick"}));
    assert_eq!(paused["enabled"], false, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["persistent"], true, "{paused}");
    assert!(paused["next_run"].is_null(), "{paused}");
    stop(d);

    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    assert_eq!(
        pause_state(&mut c, "tick"),
        (json!(false), json!(true), false)
    );
    // A reload does not lift it either.
    c.ok("reload", json!({}));
    assert_eq!(
        pause_state(&mut c, "tick"),
        (json!(false), json!(true), false)
    );
    kill9(d);

    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    assert_eq!(
        pause_state(&mut c, "tick"),
        (json!(false), json!(true), false),
        "still paused after kill -9"
    );
    let resumed = c.ok("jobs.resume", json!({"name": "tick"}));
    assert_eq!(resumed["enabled"], true, "{resumed}");
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert!(!resumed["next_run"].is_null(), "{resumed}");
    kill9(d);

    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    assert_eq!(
        pause_state(&mut c, "tick"),
        (json!(true), json!(false), true)
    );
}

#[test]
fn due_times_missed_while_paused_are_not_caught_up_after_a_restart() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    c.ok("jobs.pause", json!({"name": "tick"}));
    let resumed_after = jiff::Timestamp::now().as_millisecond();
    c.ok("jobs.resume", json!({"name": "tick"}));
    stop(d);
    // What the next start's catch-up counts from: the resume, not the
    // last due time before the pause (which would make every due time of
    // a long pause "missed while down").
    let (_store, recovered) = tickd::persist::Store::open(state.path()).expect("store");
    let from = recovered
        .last_scheduled
        .get("tick")
        .expect("recorded at resume");
    assert!(from.as_millisecond() >= resumed_after, "{from}");
}

#[test]
fn resume_lifts_a_pause_but_never_the_files_enabled_false() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), PAUSABLE));
    let mut c = d.client();
    assert_eq!(
        pause_state(&mut c, "off"),
        (json!(false), json!(false), false)
    );
    let paused = c.ok("jobs.pause", json!({"name": "off"}));
    assert_eq!(
        (&paused["enabled"], &paused["paused"]),
        (&json!(false), &json!(true))
    );
    let resumed = c.ok("jobs.resume", json!({"name": "off"}));
    // The pause is lifted; the file still disables the job.
    assert_eq!(resumed["enabled"], false, "{resumed}");
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert!(resumed["next_run"].is_null(), "{resumed}");
    d.log
        .wait_for("its config sets enabled = false", 0, util::WAIT)
        .expect("the log says why it stays unscheduled");
    // Paused, then enabled in the file: still paused until resumed.
    c.ok("jobs.pause", json!({"name": "off"}));
    d.write_config(&with_state(
        state.path(),
        &PAUSABLE.replace("enabled = false\n", ""),
    ));
    c.ok("reload", json!({}));
    assert_eq!(
        pause_state(&mut c, "off"),
        (json!(false), json!(true), false)
    );
    c.ok("jobs.resume", json!({"name": "off"}));
    assert_eq!(
        pause_state(&mut c, "off"),
        (json!(true), json!(false), true)
    );
}

#[test]
fn without_state_dir_a_pause_says_it_is_not_persistent() {
    let d = Daemon::start(&config("", PAUSABLE));
    let mut c = d.client();
    let paused = c.ok("jobs.pause", json!({"name": "tick"}));
    assert_eq!(paused["persistent"], false, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    let (_, line) = d
        .log
        .wait_for("a pause is not persistent", 0, util::WAIT)
        .expect("warned at pause time");
    assert!(line.contains("WARN") && line.contains("tick"), "{line}");
    let resumed = c.ok("jobs.resume", json!({"name": "tick"}));
    assert_eq!(resumed["persistent"], false, "{resumed}");
}

/// A full disk (the `journal.*` fail points) for several retries: the log
/// gets the first failure in full and then stays quiet (a summary comes
/// once a minute), and one line with the count when writes work again,
/// instead of a line per failed write and per retry each second.
#[cfg(feature = "failpoints")]
#[test]
fn a_flood_of_journal_write_failures_is_summarised() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start_with_env(
        &with_state(state.path(), JOBS),
        &[("TICKD_DEBUG_HOOKS", "1")],
    );
    let mut c = d.client();
    for (name, actions) in [
        ("journal.append", "return"),
        ("journal.write_new", "return"),
    ] {
        c.ok(
            "debug.failpoint",
            json!({ "name": name, "actions": actions }),
        );
    }
    for _ in 0..3 {
        // Runs go on in memory, but nothing that is not durable is
        // acknowledged: the request is answered -32603.
        let resp = c.call("jobs.run", json!({"name": "quick", "wait": true}));
        assert_eq!(resp["error"]["code"], -32603, "{resp}");
    }
    d.wait_status("the runs to go on", |_| {
        let mut c = d.client();
        c.ok("jobs.get", json!({"name": "quick"}))["runs_total"] == 3
    });
    let errors = |s: &Value| s["state"]["write_errors"].as_u64().unwrap_or(0);
    let after_runs = errors(&c.ok("status", json!({})));
    assert!(after_runs >= 3, "each run's records failed: {after_runs}");
    // Three more retries (one a second), each failing again.
    d.wait_status("three failed retries", |s| errors(s) >= after_runs + 3);
    let failures: Vec<String> = d
        .log
        .all()
        .into_iter()
        .filter(|l| l.contains("ERROR") && l.contains("state_dir:"))
        .collect();
    assert_eq!(failures.len(), 1, "only the first is logged: {failures:#?}");
    assert!(failures[0].contains("No space left"), "{}", failures[0]);

    for name in ["journal.append", "journal.write_new"] {
        c.ok("debug.failpoint", json!({ "name": name, "actions": "off" }));
    }
    let (_, line) = d
        .log
        .wait_for("journal writes work again after", 0, util::WAIT)
        .unwrap_or_else(|| panic!("the end of the failures is logged: {:#?}", d.log.all()));
    let total = errors(&c.ok("status", json!({})));
    assert!(
        line.contains(&format!("after {total} failure(s)")),
        "{line}"
    );
}
