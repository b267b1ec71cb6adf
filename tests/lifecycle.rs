//! The daemon's life: `check`, exit codes, reload by SIGHUP and by method,
//! graceful shutdown by SIGTERM/SIGINT/`shutdown`, the `listening on` line
//! at every log level.

use crate::util;

use rustix::process::Signal;
use serde_json::json;
use std::process::Command;
use util::{bin, config, poll_until, Daemon, WAIT};

const BASE_JOBS: &str = r#"
[[jobs]]
name = "keep"
command = ["sh", "-c", "echo v1"]

[[jobs]]
name = "drop"
command = ["sh", "-c", "sleep 1; echo finished"]
"#;

#[test]
fn check_accepts_the_example_and_names_file_line_key_on_errors() {
    let out = Command::new(bin())
        .args(["check", "--config", "conf/tickd.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    // A typo is a syntax-level error: reported with file, line and key.
    let (code, err) = check("[[jobs]]\nname = \"x\"\ncommand = [\"true\"]\nbogus = 1\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.toml:4: jobs[0].bogus"), "{err}");
}

#[test]
fn check_reports_every_semantic_error_with_its_line() {
    let (code, err) = check(
        "[daemon]\nworkers = 0\n\n[[jobs]]\nname = \"x\"\nevery = \"soon\"\ncommand = [\"true\"]\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.toml:2: daemon.workers"), "{err}");
    assert!(err.contains("bad.toml:6: jobs[0].every"), "{err}");
}

/// Runs `tickd check` on a config file with this text; exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_with_a_bad_config_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[daemon]\nlisten = \"127.0.0.1:0\"\nwrokers = 2\n").unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrokers"));
}

#[test]
fn run_exits_2_when_the_address_is_taken() {
    let a = Daemon::start(&config("", ""));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(&path, format!("[daemon]\nlisten = \"{}\"\n", a.addr)).unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

#[test]
fn sighup_applies_a_good_config_and_keeps_connections_and_runs() {
    let d = Daemon::start(&config("", BASE_JOBS));
    let mut c = d.client();
    let running = c.ok("jobs.run", json!({"name": "drop"}))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.write_config(&config(
        "",
        r#"
[[jobs]]
name = "keep"
command = ["sh", "-c", "echo v2"]

[[jobs]]
name = "new"
every = "1h"
command = ["true"]
"#,
    ));
    d.signal(Signal::HUP);
    let s = d.wait_status("generation 2", |s| s["config"]["generation"] == json!(2));
    assert_eq!(s["config"]["last_reload_error"], json!(null));
    // Same connection still works; the job set changed.
    let names: Vec<String> = c
        .ok("jobs.list", json!({}))
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["keep", "new"]);
    // The removed job's running run was not dropped.
    let done = d.wait_run_done(&running);
    assert_eq!(done["state"], json!("succeeded"), "{done}");
    assert!(done["output"].as_str().unwrap().contains("finished"));
    // The changed job uses its new definition from its next run.
    let r = c.ok("jobs.run", json!({"name": "keep", "wait": true}));
    assert!(r["output"].as_str().unwrap().contains("v2"), "{r}");
}

#[test]
fn bad_reload_keeps_the_old_config_and_reports_the_error() {
    let d = Daemon::start(&config("", BASE_JOBS));
    let mut c = d.client();
    d.write_config("[daemon]\nlisten = \"127.0.0.1:0\"\n\n[[jobs]]\nname = \"keep\"\nevery = \"never\"\ncommand = [\"true\"]\n");
    d.signal(Signal::HUP);
    let s = d.wait_status("reload error", |s| {
        !s["config"]["last_reload_error"].is_null()
    });
    assert_eq!(s["config"]["generation"], json!(1));
    let msg = s["config"]["last_reload_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("tickd.toml:6: jobs[0].every"), "{msg}");
    assert_eq!(
        c.ok("jobs.list", json!({})).as_array().unwrap().len(),
        2,
        "old jobs kept"
    );

    // The reload method says the same with -32004.
    let r = c.call("reload", json!({}));
    assert_eq!(r["error"]["code"], json!(-32004));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("jobs[0].every"));

    // Fixing the file and reloading clears the error.
    d.write_config(&config("", BASE_JOBS));
    let r = c.ok("reload", json!({}));
    assert_eq!(r["generation"], json!(2));
    assert_eq!(r["added"], json!([]));
    assert_eq!(r["removed"], json!([]));
    let s = c.ok("status", json!({}));
    assert_eq!(s["config"]["last_reload_error"], json!(null));
}

#[test]
fn reload_method_reports_added_removed_changed() {
    let d = Daemon::start(&config("", BASE_JOBS));
    d.write_config(&config(
        "",
        r#"
[[jobs]]
name = "keep"
command = ["sh", "-c", "echo changed"]

[[jobs]]
name = "fresh"
command = ["true"]
"#,
    ));
    let r = d.client().ok("reload", json!({}));
    assert_eq!(
        r,
        json!({"generation": 2, "added": ["fresh"], "removed": ["drop"], "changed": ["keep"],
               "added_total": 1, "removed_total": 1, "changed_total": 1, "truncated": false})
    );
}

/// The `[daemon]` keys that only take effect at start keep their running
/// values through a reload, each change logged as needing a restart,
/// while the live ones in the same file take effect at once.
#[test]
fn reload_keeps_start_only_settings_with_a_warning_and_applies_live_ones() {
    let d = Daemon::start(&config("workers = 2\nqueue_capacity = 8", BASE_JOBS));
    let mut c = d.client();
    let submit = json!({"job": {"kind": "exec", "command": ["true"]}});
    assert_eq!(c.err_code("submit", submit.clone()), -32003);
    d.write_config(&config(
        "workers = 3\nqueue_capacity = 9\nmin_workers = 2\nallow_submit = true",
        BASE_JOBS,
    ));
    let r = c.ok("reload", json!({}));
    assert_eq!(r["generation"], json!(2), "{r}");
    for key in ["workers", "queue_capacity"] {
        let line = format!("reload: daemon.{key} changed; it takes effect only after a restart");
        assert!(d.log.wait_for(&line, 0, WAIT).is_some(), "{line}");
    }
    assert!(
        !d.log
            .all()
            .iter()
            .any(|l| l.contains("daemon.min_workers changed")),
        "a live setting needs no restart"
    );
    let s = c.ok("status", json!({}));
    assert_eq!(s["workers"]["configured"], json!(2), "{s}");
    assert_eq!(s["queue"]["capacity"], json!(8), "{s}");
    assert_eq!(s["workers"]["min"], json!(2), "{s}");
    c.ok("submit", submit);
}

#[test]
fn sigterm_lets_a_running_job_finish_and_answers_its_waiter() {
    let mut d = Daemon::start(&config("shutdown_grace = \"20s\"", BASE_JOBS));
    let mut waiter = d.client();
    waiter.send_raw(
        b"{\"id\":1,\"method\":\"jobs.run\",\"params\":{\"name\":\"drop\",\"wait\":true}}\n",
    );
    let mut c = d.client();
    poll_until("drop running", || {
        let j = c.ok("jobs.get", json!({"name": "drop"}));
        (j["running"] == json!(true)).then_some(())
    });
    d.signal(Signal::TERM);
    let answer = waiter.read_json();
    assert_eq!(answer["result"]["state"], json!("succeeded"), "{answer}");
    let status = d.wait_exit(WAIT).expect("tickd exits");
    assert_eq!(status.code(), Some(0));
    assert!(d
        .log
        .wait_for("stopped accepting connections", 0, WAIT)
        .is_some());
}

#[test]
fn sigterm_kills_jobs_that_outlive_the_grace_period() {
    let mut d = Daemon::start(&config(
        "shutdown_grace = \"300ms\"",
        r#"
[[jobs]]
name = "forever"
command = ["sh", "-c", "sleep 300"]
"#,
    ));
    let mut c = d.client();
    let id = c.ok("jobs.run", json!({"name": "forever"}))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    poll_until("forever running", || {
        (c.ok("runs.get", json!({"run_id": id}))["state"] == json!("running")).then_some(())
    });
    d.signal(Signal::INT);
    let status = d.wait_exit(WAIT).expect("tickd exits");
    assert_eq!(status.code(), Some(0));
    assert!(d
        .log
        .wait_for(&format!("run {id} of job forever cancelled"), 0, WAIT)
        .is_some());
}

#[test]
fn shutdown_method_drains_and_exits_0() {
    let mut d = Daemon::start(&config("", BASE_JOBS));
    let r = d.client().ok("shutdown", json!({}));
    assert_eq!(r, json!({"shutting_down": true}));
    let status = d.wait_exit(WAIT).expect("tickd exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn listening_on_is_logged_at_every_log_level() {
    // `Daemon::start` finds the port in the `listening on` line, and fails
    // without it; the Unix socket's line must be there too.
    let unix = "unix_socket = \"$DIR/tickd.sock\"\n";
    for level in ["warn", "error", "off"] {
        let d = Daemon::start(&config(&format!("{unix}log_level = \"{level}\""), ""));
        assert_eq!(d.client().ok("ping", json!({})), json!("pong"), "{level}");
        let sock = format!("listening on {}/tickd.sock", d.dir().display());
        assert!(d.log.wait_for(&sock, 0, WAIT).is_some(), "{level}");
        if level != "warn" {
            // Nothing else is let through: the line bypasses the level,
            // it does not lower it.
            assert!(
                d.log
                    .all()
                    .iter()
                    .all(|l| !l.contains("INFO") || l.contains("listening on")),
                "{level}: {:?}",
                d.log.all()
            );
        }
    }
    let d = Daemon::start_with_env(&config("", ""), &[("RUST_LOG", "error")]);
    assert_eq!(d.client().ok("ping", json!({})), json!("pong"));
}
