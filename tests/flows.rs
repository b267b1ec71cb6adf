//! Workflows (issue 18): `on_success` chains through the real binary.
//! Each run of a chain is started by the one before it (`trigger =
//! "on_success"`, `parent_run_id`), and gets the upstream run in its
//! args; cycles across `on_success` and `on_failure` are config errors
//! naming the cycle.

use crate::util;

use serde_json::{json, Value};
use util::{config, poll_until, Daemon};

const CHAIN: &str = r#"
[[jobs]]
name = "backup"
command = ["sh", "-c", "echo backed-up"]
on_success = "verify"

[[jobs]]
name = "verify"
command = ["sh", "-c", "printf '%s' \"$TICKD_ARGS\""]
on_success = "upload"
on_failure = "alert"

[[jobs]]
name = "upload"
command = ["sh", "-c", "printf '%s' \"$TICKD_ARGS\""]

[[jobs]]
name = "alert"
command = ["true"]

[[jobs]]
name = "broken"
command = ["false"]
on_success = "upload"
"#;

/// The newest run of `job`, once one has ended.
fn last_run(d: &Daemon, job: &str) -> Value {
    let mut c = d.client();
    poll_until(&format!("a finished run of {job}"), || {
        let runs = c.ok("runs.list", json!({"job": job, "limit": 1}));
        let run = runs.as_array()?.first()?.clone();
        matches!(run["state"].as_str(), Some("succeeded" | "failed")).then_some(run)
    })
}

#[test]
fn a_three_job_chain_runs_each_after_the_one_before_succeeds() {
    let d = Daemon::start(&config("", CHAIN));
    let mut c = d.client();
    let backup = c.ok("jobs.run", json!({"name": "backup", "wait": true}));
    assert_eq!(backup["state"], "succeeded", "{backup}");
    assert!(backup["parent_run_id"].is_null(), "{backup}");

    let verify = last_run(&d, "verify");
    assert_eq!(verify["state"], "succeeded", "{verify}");
    assert_eq!(verify["trigger"], "on_success", "{verify}");
    assert_eq!(verify["parent_run_id"], backup["run_id"], "{verify}");
    // Its args name the upstream run: {job, run_id, state, result}.
    let args: Value = serde_json::from_str(verify["output"].as_str().expect("output"))
        .expect("TICKD_ARGS is JSON");
    assert_eq!(
        (&args["job"], &args["run_id"], &args["state"]),
        (&json!("backup"), &backup["run_id"], &json!("succeeded")),
        "{args}"
    );
    assert!(args.get("result").is_some(), "{args}");

    let upload = last_run(&d, "upload");
    assert_eq!(upload["trigger"], "on_success", "{upload}");
    assert_eq!(upload["parent_run_id"], verify["run_id"], "{upload}");
    // runs.get shows it too, and the failure path did not fire.
    let got = c.ok("runs.get", json!({"run_id": upload["run_id"]}));
    assert_eq!(got["parent_run_id"], verify["run_id"]);
    assert_eq!(c.ok("jobs.get", json!({"name": "alert"}))["runs_total"], 0);
}

#[test]
fn a_failed_run_does_not_start_its_on_success_job() {
    let d = Daemon::start(&config("", CHAIN));
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "broken", "wait": true}));
    assert_eq!(run["state"], "failed", "{run}");
    // Something observable after the failure: a later run of another job
    // has finished, and upload still has no run.
    c.ok("jobs.run", json!({"name": "alert", "wait": true}));
    assert_eq!(c.ok("jobs.get", json!({"name": "upload"}))["runs_total"], 0);
}

#[test]
fn cycles_across_on_success_and_on_failure_are_config_errors_naming_them() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        r#"
[[jobs]]
name = "a"
command = ["true"]
on_success = "b"

[[jobs]]
name = "b"
command = ["true"]
on_failure = "a"
"#,
    )
    .expect("write");
    let out = std::process::Command::new(util::bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("tickd check");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("on_success") && text.contains("forms a cycle: a -> b -> a"),
        "{text}"
    );
}
