//! Jobs defined at run time (`jobs.put`, `jobs.delete`) through the real
//! binary: put then run, a replace that keeps history, counters and the
//! runs in flight, deletes with a running run, conflicts with the file's
//! jobs both ways, `kill -9` keeping every acknowledged change,
//! `daemon.allow_job_api` off and on. HTTP, `tickd ctl put` and journal
//! failures are in `api_jobs_io`.

use crate::util;

use rustix::process::Signal;
use serde_json::{json, Value};
use std::path::Path;
use util::{config, poll_until, Daemon};

pub(crate) const ALLOW: &str = "allow_job_api = true\nlog_level = \"info\"";

pub(crate) const FILE_JOBS: &str = r#"
[[jobs]]
name = "filejob"
command = ["true"]
"#;

pub(crate) fn with_state(state: &Path, extra: &str, jobs: &str) -> String {
    config(
        &format!("state_dir = \"{}\"\n{extra}", state.display()),
        jobs,
    )
}

/// A job whose runs print `tag` and then wait until the file `release`
/// exists.
fn waiting_job(name: &str, tag: &str, release: &Path, overlap: &str) -> Value {
    json!({
        "name": name,
        "command": ["sh", "-c", format!("echo {tag}; while [ ! -e \"$RELEASE\" ]; do sleep 0.02; done")],
        "env": {"RELEASE": release.display().to_string()},
        "overlap": overlap,
    })
}

fn run_id(v: &Value) -> String {
    v["run_id"].as_str().expect("run_id").to_string()
}

fn wait_state(d: &Daemon, id: &str, state: &str) -> Value {
    let mut c = d.client();
    poll_until(&format!("run {id} {state}"), || {
        let r = c.ok("runs.get", json!({ "run_id": id }));
        (r["state"] == state).then_some(r)
    })
}

pub(crate) fn error(c: &mut util::Client, method: &str, params: Value) -> (i64, String) {
    let resp = c.call(method, params);
    let e = &resp["error"];
    let code = e["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("{method} should fail: {resp}"));
    (code, e["message"].as_str().unwrap_or_default().to_string())
}

pub(crate) fn api_names(c: &mut util::Client) -> Vec<String> {
    let jobs = c.ok("jobs.list", json!({}));
    jobs.as_array()
        .expect("array")
        .iter()
        .filter(|j| j["source"] == "api")
        .map(|j| j["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub(crate) fn kill9(mut d: Daemon) {
    d.signal(Signal::KILL);
    d.wait_exit(util::WAIT).expect("killed");
}

fn stop(mut d: Daemon) {
    d.signal(Signal::TERM);
    let status = d.wait_exit(util::WAIT).expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_put_job_runs_and_is_listed_as_an_api_job() {
    let d = Daemon::start(&config(ALLOW, FILE_JOBS));
    let mut c = d.client();
    let job =
        json!({"name": "hello", "command": ["sh", "-c", "echo hi:$TICKD_ARGS"], "every": "1h"});
    let put = c.ok("jobs.put", json!({ "job": job }));
    assert_eq!(put["name"], "hello");
    assert_eq!(put["source"], "api");
    assert_eq!(put["created"], true);
    assert_eq!(put["persistent"], false, "no state_dir");
    assert_eq!(put["schedule"], "1h");
    assert!(put["next_run"].is_string(), "scheduled: {put}");
    let run = c.ok(
        "jobs.run",
        json!({"name": "hello", "wait": true, "args": {"n": 1}}),
    );
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"], "hi:{\"n\":1}\n");
    let list = c.ok("jobs.list", json!({}));
    let sources: Vec<(&str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap_or(""),
                j["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(sources, [("filejob", "file"), ("hello", "api")]);
    let s = c.ok("status", json!({}));
    assert_eq!(s["api_jobs"]["defined"], 1, "{s}");
    // A bad definition is refused by the file's rules, naming the key.
    let (code, message) = error(
        &mut c,
        "jobs.put",
        json!({"job": {"name": "bad", "command": ["true"], "every": "soon"}}),
    );
    assert_eq!(code, -32602);
    assert!(message.starts_with("job.every: "), "{message}");
    let (code, message) = error(&mut c, "jobs.put", json!({"job": {"command": ["true"]}}));
    assert_eq!(
        (code, message.starts_with("job.name: ")),
        (-32602, true),
        "{message}"
    );
}

#[test]
fn a_replace_keeps_history_counters_and_the_runs_in_flight() {
    let d = Daemon::start(&config(ALLOW, ""));
    let release = d.dir().join("go");
    let mut c = d.client();
    std::fs::write(&release, "").expect("release");
    let put = c.ok(
        "jobs.put",
        json!({"job": waiting_job("j", "v1", &release, "queue")}),
    );
    assert_eq!(put["created"], true);
    let first = c.ok("jobs.run", json!({"name": "j", "wait": true}));
    assert_eq!(first["state"], "succeeded");
    std::fs::remove_file(&release).expect("hold");
    let running = run_id(&c.ok("jobs.run", json!({"name": "j"})));
    wait_state(&d, &running, "running");
    let queued = run_id(&c.ok("jobs.run", json!({"name": "j"})));
    let replaced = c.ok(
        "jobs.put",
        json!({"job": {"name": "j", "command": ["sh", "-c", "echo v2"], "overlap": "queue", "timeout": "30s"}}),
    );
    assert_eq!(replaced["created"], false);
    assert_eq!(replaced["runs_total"], 1, "counters kept: {replaced}");
    assert_eq!(replaced["running_count"], 1, "{replaced}");
    assert_eq!(replaced["queued_count"], 1, "{replaced}");
    assert_eq!(replaced["timeout_ms"], 30000);
    let job = c.ok("jobs.get", json!({"name": "j"}));
    assert_eq!(job["history"][0]["run_id"], first["run_id"], "history kept");
    assert_eq!(
        c.ok("runs.get", json!({"run_id": queued}))["state"],
        "queued"
    );
    std::fs::write(&release, "").expect("release");
    let done = wait_state(&d, &running, "succeeded");
    assert_eq!(
        done["output"], "v1\n",
        "the running run kept its definition"
    );
    let after = wait_state(&d, &queued, "succeeded");
    assert_eq!(after["output"], "v2\n", "the queued run runs the new one");
    let job = c.ok("jobs.get", json!({"name": "j"}));
    assert_eq!(job["runs_total"], 3, "{job}");
}

#[test]
fn a_delete_lets_a_running_run_finish_or_cancels_it() {
    let d = Daemon::start(&config(ALLOW, ""));
    let release = d.dir().join("go");
    let mut c = d.client();
    // `keep`'s second run waits in the pool's queue (both workers are
    // busy), `kill`'s in the job's `overlap = "queue"` backlog.
    for (name, overlap) in [("keep", "allow"), ("kill", "queue")] {
        let job = waiting_job(name, name, &release, overlap);
        c.ok("jobs.put", json!({ "job": job }));
    }
    let running: Vec<String> = ["keep", "kill"]
        .iter()
        .map(|name| run_id(&c.ok("jobs.run", json!({ "name": name }))))
        .collect();
    for id in &running {
        wait_state(&d, id, "running");
    }
    let runs: Vec<(String, String)> = ["keep", "kill"]
        .iter()
        .zip(running)
        .map(|(name, id)| (id, run_id(&c.ok("jobs.run", json!({ "name": name })))))
        .collect();
    let queued = c.ok("runs.get", json!({"run_id": runs[0].1}));
    assert_eq!(queued["state"], "queued", "{queued}");
    let gone = c.ok("jobs.delete", json!({"name": "keep"}));
    assert_eq!(
        (gone["name"].as_str(), gone["source"].as_str()),
        (Some("keep"), Some("api"))
    );
    assert_eq!(gone["running"], true, "the object as it was: {gone}");
    let gone = c.ok("jobs.delete", json!({"name": "kill", "cancel": true}));
    assert_eq!(gone["name"], "kill");
    for name in ["keep", "kill"] {
        assert_eq!(error(&mut c, "jobs.get", json!({ "name": name })).0, -32000);
    }
    assert_eq!(
        error(&mut c, "jobs.delete", json!({"name": "keep"})).0,
        -32000
    );
    // Queued runs are cancelled; the killed run ends cancelled at once.
    for (_, queued) in &runs {
        assert_eq!(wait_state(&d, queued, "cancelled")["state"], "cancelled");
    }
    wait_state(&d, &runs[1].0, "cancelled");
    assert_eq!(
        c.ok("runs.get", json!({"run_id": runs[0].0}))["state"],
        "running"
    );
    std::fs::write(&release, "").expect("release");
    let done = wait_state(&d, &runs[0].0, "succeeded");
    assert_eq!(done["job"], "keep", "finished as an orphan: {done}");
}

#[test]
fn file_jobs_cannot_be_put_or_deleted_nor_jobs_others_name() {
    let d = Daemon::start(&config(ALLOW, FILE_JOBS));
    let mut c = d.client();
    let job = json!({"name": "filejob", "command": ["false"]});
    let (code, message) = error(&mut c, "jobs.put", json!({ "job": job }));
    assert_eq!(code, -32004);
    assert!(message.contains("config file"), "{message}");
    let (code, message) = error(&mut c, "jobs.delete", json!({"name": "filejob"}));
    assert_eq!(code, -32004);
    assert!(message.contains("edit the file"), "{message}");
    c.ok(
        "jobs.put",
        json!({"job": {"name": "alarm", "command": ["true"]}}),
    );
    for name in ["b", "a"] {
        let job = json!({"name": name, "command": ["false"], "on_failure": "alarm"});
        c.ok("jobs.put", json!({ "job": job }));
    }
    let (code, message) = error(&mut c, "jobs.delete", json!({"name": "alarm"}));
    assert_eq!(code, -32004);
    assert!(message.contains("on_failure by a, b"), "{message}");
    let job = json!({"name": "alarm", "command": ["true"], "on_failure": "a"});
    let (code, message) = error(&mut c, "jobs.put", json!({ "job": job }));
    assert_eq!(code, -32602);
    assert_eq!(
        message,
        "job.on_failure: forms a cycle: alarm -> a -> alarm"
    );
    let job = json!({"name": "c", "command": ["true"], "on_failure": "nope"});
    let (code, message) = error(&mut c, "jobs.put", json!({ "job": job }));
    assert_eq!(
        (code, message.as_str()),
        (
            -32602,
            "job.on_failure: names job \"nope\", which does not exist"
        )
    );
    // An API job may name a file job; the failure starts it.
    let job = json!({"name": "c", "command": ["false"], "on_failure": "filejob"});
    c.ok("jobs.put", json!({ "job": job }));
    c.ok("jobs.run", json!({"name": "c", "wait": true}));
    poll_until("on_failure to start filejob", || {
        let f = c.ok("jobs.get", json!({"name": "filejob"}));
        (f["last_run"]["trigger"] == "on_failure").then_some(())
    });
    // Once nothing names it, it can go.
    c.ok("jobs.delete", json!({"name": "a"}));
    c.ok("jobs.delete", json!({"name": "b"}));
    c.ok("jobs.delete", json!({"name": "alarm"}));
}

#[test]
fn a_reload_that_would_take_an_api_jobs_name_is_rejected_naming_both() {
    let d = Daemon::start(&config(ALLOW, FILE_JOBS));
    let mut c = d.client();
    c.ok(
        "jobs.put",
        json!({"job": {"name": "mine", "command": ["true"]}}),
    );
    let job = json!({"name": "dep", "command": ["true"], "on_failure": "filejob"});
    c.ok("jobs.put", json!({ "job": job }));
    d.write_config(&config(
        ALLOW,
        "[[jobs]]\nname = \"filejob\"\ncommand = [\"true\"]\n\
         [[jobs]]\nname = \"mine\"\ncommand = [\"false\"]\n",
    ));
    let (code, message) = error(&mut c, "reload", json!({}));
    assert_eq!(code, -32004);
    assert!(
        message.contains("adds job \"mine\"") && message.contains("jobs.put"),
        "{message}"
    );
    let s = c.ok("status", json!({}));
    assert!(s["config"]["last_reload_error"].is_string(), "{s}");
    assert_eq!(c.ok("jobs.get", json!({"name": "mine"}))["source"], "api");
    // Nor may a reload remove a file job an API job names.
    d.write_config(&config(ALLOW, ""));
    let (code, message) = error(&mut c, "reload", json!({}));
    assert_eq!(code, -32004);
    assert!(
        message.contains("removes job \"filejob\"") && message.contains("dep"),
        "{message}"
    );
    // A reload of the file's own jobs leaves the API jobs alone.
    d.write_config(&config(
        ALLOW,
        "[[jobs]]\nname = \"filejob\"\ncommand = [\"true\"]\n[[jobs]]\nname = \"new\"\ncommand = [\"true\"]\n",
    ));
    let report = c.ok("reload", json!({}));
    assert_eq!(report["added"], json!(["new"]));
    assert_eq!(
        report["removed"],
        json!([]),
        "API jobs are not the file's: {report}"
    );
    assert_eq!(api_names(&mut c), ["dep", "mine"]);
}

#[test]
fn at_start_the_file_wins_and_the_api_job_waits_aside() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), ALLOW, ""));
    let mut c = d.client();
    let job = json!({"name": "x", "command": ["sh", "-c", "echo api"], "every": "1h"});
    c.ok("jobs.put", json!({ "job": job }));
    c.ok(
        "jobs.put",
        json!({"job": {"name": "y", "command": ["true"]}}),
    );
    stop(d);
    let file_x = "[[jobs]]\nname = \"x\"\ncommand = [\"sh\", \"-c\", \"echo file\"]\n";
    let d = Daemon::start(&with_state(state.path(), ALLOW, file_x));
    let (_, line) = d
        .log
        .wait_for("defined both in the config file", 0, util::WAIT)
        .expect("logged");
    assert!(line.contains("ERROR"), "{line}");
    let mut c = d.client();
    let x = c.ok("jobs.get", json!({"name": "x"}));
    assert_eq!(
        (x["source"].as_str(), x["schedule"].is_null()),
        (Some("file"), true)
    );
    let s = c.ok("status", json!({}));
    assert_eq!(s["api_jobs"]["conflicts"][0]["name"], "x", "{s}");
    assert_eq!(s["api_jobs"]["defined"], 1, "y is in: {s}");
    // Deleting the API job clears the conflict and leaves the file's job.
    let gone = c.ok("jobs.delete", json!({"name": "x"}));
    assert_eq!(
        (gone["source"].as_str(), gone["schedule"].as_str()),
        (Some("api"), Some("1h"))
    );
    let s = c.ok("status", json!({}));
    assert_eq!(s["api_jobs"]["conflicts"], json!([]), "{s}");
    assert_eq!(c.ok("jobs.get", json!({"name": "x"}))["source"], "file");
    assert_eq!(error(&mut c, "jobs.delete", json!({"name": "x"})).0, -32004);
    stop(d);
    // The deletion is durable: no conflict after the next start.
    let d = Daemon::start(&with_state(state.path(), ALLOW, file_x));
    let mut c = d.client();
    assert_eq!(
        c.ok("status", json!({}))["api_jobs"]["conflicts"],
        json!([])
    );
    assert_eq!(api_names(&mut c), ["y"]);
}

#[test]
fn an_api_job_kept_aside_takes_the_place_of_the_file_job_a_reload_removes() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start(&with_state(state.path(), ALLOW, ""));
    let mut c = d.client();
    let job = json!({"name": "x", "command": ["sh", "-c", "echo api"]});
    c.ok("jobs.put", json!({ "job": job }));
    stop(d);
    let file_x = "[[jobs]]\nname = \"x\"\ncommand = [\"sh\", \"-c\", \"echo file\"]\n";
    let d = Daemon::start(&with_state(state.path(), ALLOW, file_x));
    let mut c = d.client();
    assert_eq!(
        c.ok("jobs.run", json!({"name": "x", "wait": true}))["output"],
        "file\n"
    );
    d.write_config(&with_state(state.path(), ALLOW, ""));
    let report = c.ok("reload", json!({}));
    assert_eq!(report["removed"], json!(["x"]));
    assert_eq!(c.ok("jobs.get", json!({"name": "x"}))["source"], "api");
    assert_eq!(
        c.ok("jobs.run", json!({"name": "x", "wait": true}))["output"],
        "api\n"
    );
    assert_eq!(
        c.ok("status", json!({}))["api_jobs"]["conflicts"],
        json!([])
    );
}

#[test]
fn kill_9_keeps_every_acknowledged_put_and_delete() {
    let state = tempfile::tempdir().expect("state dir");
    let text = with_state(state.path(), ALLOW, FILE_JOBS);
    let d = Daemon::start(&text);
    let mut c = d.client();
    let mut expect = std::collections::BTreeMap::new();
    for i in 0..30 {
        let name = format!("j{i:02}");
        let put = c.ok(
            "jobs.put",
            json!({"job": {"name": name, "command": ["true"], "timeout": "1s"}}),
        );
        assert_eq!(put["persistent"], true);
        expect.insert(name, 1000);
    }
    for i in (0..30).step_by(3) {
        let name = format!("j{i:02}");
        let put = c.ok(
            "jobs.put",
            json!({"job": {"name": name, "command": ["true"], "timeout": "7s"}}),
        );
        assert_eq!(put["created"], false);
        expect.insert(name, 7000);
    }
    for i in (1..30).step_by(4) {
        let name = format!("j{i:02}");
        c.ok("jobs.delete", json!({ "name": name }));
        expect.remove(&name);
    }
    c.ok("jobs.pause", json!({"name": "j02"}));
    let run = c.ok("jobs.run", json!({"name": "j00", "wait": true}));
    kill9(d);
    let d = Daemon::start(&text);
    let mut c = d.client();
    let jobs = c.ok("jobs.list", json!({}));
    let got: std::collections::BTreeMap<String, u64> = jobs
        .as_array()
        .expect("array")
        .iter()
        .filter(|j| j["source"] == "api")
        .map(|j| {
            (
                j["name"].as_str().unwrap_or("").to_string(),
                j["timeout_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<String, u64> = expect.into_iter().collect();
    assert_eq!(got, want);
    assert_eq!(c.ok("jobs.get", json!({"name": "j02"}))["paused"], true);
    let j00 = c.ok("jobs.get", json!({"name": "j00"}));
    assert_eq!(
        j00["history"][0]["run_id"], run["run_id"],
        "history found its job"
    );
    assert_eq!(
        c.ok("jobs.get", json!({"name": "filejob"}))["source"],
        "file"
    );
}

#[test]
fn with_allow_job_api_off_api_jobs_are_kept_but_not_scheduled() {
    let state = tempfile::tempdir().expect("state dir");
    let on = with_state(state.path(), ALLOW, "");
    let off = with_state(state.path(), "log_level = \"info\"", "");
    let d = Daemon::start(&on);
    let mut c = d.client();
    let job = json!({"name": "tick", "command": ["true"], "every": "1h"});
    c.ok("jobs.put", json!({ "job": job }));
    c.ok(
        "jobs.put",
        json!({"job": {"name": "manual", "command": ["true"]}}),
    );
    c.ok("jobs.run", json!({"name": "manual", "wait": true}));
    d.write_config(&off);
    c.ok("reload", json!({}));
    let held = |c: &mut util::Client| {
        let tick = c.ok("jobs.get", json!({"name": "tick"}));
        assert!(
            tick["held"]
                .as_str()
                .is_some_and(|h| h.contains("allow_job_api")),
            "{tick}"
        );
        assert_eq!(
            (tick["enabled"].as_bool(), tick["next_run"].is_null()),
            (Some(false), true)
        );
        let (code, message) = error(c, "jobs.run", json!({"name": "manual"}));
        assert_eq!(code, -32003);
        assert!(message.contains("allow_job_api"), "{message}");
        let (code, _) = error(
            c,
            "jobs.put",
            json!({"job": {"name": "z", "command": ["true"]}}),
        );
        assert_eq!(code, -32003);
        assert_eq!(error(c, "jobs.delete", json!({"name": "tick"})).0, -32003);
        let s = c.ok("status", json!({}));
        assert_eq!(s["api_jobs"]["allowed"], false, "{s}");
        assert_eq!(s["api_jobs"]["held"], 2, "{s}");
    };
    held(&mut c);
    stop(d);
    let d = Daemon::start(&off);
    let mut c = d.client();
    held(&mut c);
    let manual = c.ok("jobs.get", json!({"name": "manual"}));
    assert_eq!(manual["runs_total"], 1, "history kept: {manual}");
    d.write_config(&on);
    c.ok("reload", json!({}));
    let tick = c.ok("jobs.get", json!({"name": "tick"}));
    assert!(
        tick.get("held").is_none() && tick["next_run"].is_string(),
        "{tick}"
    );
    let run = c.ok("jobs.run", json!({"name": "manual", "wait": true}));
    assert_eq!(run["state"], "succeeded");
}
