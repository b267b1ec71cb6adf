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
    // jobs.get shows the links both ways.
    let job = c.ok("jobs.get", json!({"name": "verify"}));
    assert_eq!(
        job["upstream"],
        json!([{"job": "backup", "via": "on_success"}]),
        "{job}"
    );
    assert_eq!(
        job["downstream"],
        json!([{"job": "upload", "via": "on_success"}, {"job": "alert", "via": "on_failure"}]),
        "{job}"
    );
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
    let (code, text) = util::check_text(
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
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("on_success") && text.contains("forms a cycle: a -> b -> a"),
        "{text}"
    );
}

const JOIN: &str = r#"
[[jobs]]
name = "a"
command = ["true"]

[[jobs]]
name = "b"
command = ["true"]

[[jobs]]
name = "c"
command = ["sh", "-c", "printf '%s' \"$TICKD_ARGS\""]
after = ["a", "b"]
"#;

/// `after = ["a", "b"]`: the job runs once each time both have succeeded
/// since its last such run, with the upstream runs in its args.
#[test]
fn a_join_runs_once_after_every_listed_job_succeeded() {
    let d = Daemon::start(&config("", JOIN));
    let mut c = d.client();
    let runs_of_c =
        |c: &mut util::Client| c.ok("jobs.get", json!({"name": "c"}))["runs_total"].clone();
    let a1 = c.ok("jobs.run", json!({"name": "a", "wait": true}));
    // a alone does not complete the join; a later run of another job
    // shows the loop has moved past a's end.
    c.ok("jobs.run", json!({"name": "a", "wait": true}));
    assert_eq!(runs_of_c(&mut c), 0);
    let b = c.ok("jobs.run", json!({"name": "b", "wait": true}));
    let joined = last_run(&d, "c");
    assert_eq!(joined["trigger"], "after", "{joined}");
    assert_eq!(joined["parent_run_id"], b["run_id"], "{joined}");
    let args: Value =
        serde_json::from_str(joined["output"].as_str().expect("output")).expect("JSON");
    assert_eq!(args["runs"]["b"], b["run_id"], "{args}");
    // The newest run of a counts.
    assert_ne!(args["runs"]["a"], a1["run_id"], "{args}");
    assert!(args["runs"]["a"].is_string(), "{args}");
    // It starts over: b again is not enough.
    c.ok("jobs.run", json!({"name": "b", "wait": true}));
    c.ok("jobs.run", json!({"name": "a", "wait": false}));
    poll_until("a second join run", || {
        (runs_of_c(&mut c) == json!(2)).then_some(())
    });
    let job = c.ok("jobs.get", json!({"name": "c"}));
    assert_eq!(
        job["upstream"],
        json!([{"job": "a", "via": "after"}, {"job": "b", "via": "after"}]),
        "{job}"
    );
    let a = c.ok("jobs.get", json!({"name": "a"}));
    assert_eq!(
        a["downstream"],
        json!([{"job": "c", "via": "after"}]),
        "{a}"
    );
}

/// `after` is for a job without a schedule, names existing jobs, and
/// takes part in the cycle check.
#[test]
fn after_is_checked_with_the_other_links() {
    let (code, text) = util::check_text(
        r#"
[[jobs]]
name = "a"
command = ["true"]
on_success = "c"

[[jobs]]
name = "c"
command = ["true"]
after = ["a", "ghost"]
every = "1m"

[[jobs]]
name = "x"
command = ["true"]
on_success = "y"

[[jobs]]
name = "y"
command = ["true"]
after = ["x"]
on_failure = "x"
"#,
    );
    assert_eq!(code, Some(1), "{text}");
    for want in [
        "jobs[1].after (job \"c\"): a job with `after`",
        "jobs[1].after (job \"c\"): names job \"ghost\", which does not exist",
        "forms a cycle: x -> y -> x",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

const LIMITED: &str = r#"
[concurrency.db]
max_running = 1

[[jobs]]
name = "dump"
command = ["sleep", "0.4"]
overlap = "allow"
concurrency = "db"

[[jobs]]
name = "vacuum"
command = ["sleep", "0.4"]
overlap = "allow"
concurrency = "db"

[[jobs]]
name = "quick"
command = ["true"]
"#;

/// A limit of 1: the runs of its jobs never overlap, the waiting ones
/// hold no worker (another job runs meanwhile on the pool's 2 workers),
/// they start in the order they came, and `status` counts them.
#[test]
fn a_concurrency_limit_of_one_never_runs_two_at_once() {
    let d = Daemon::start(&config("workers = 2", LIMITED));
    let mut c = d.client();
    let ids: Vec<Value> = ["dump", "vacuum", "dump", "vacuum"]
        .iter()
        .map(|job| c.ok("jobs.run", json!({ "name": job }))["run_id"].clone())
        .collect();
    let status = c.ok("status", json!({}));
    let db = &status["concurrency"][0];
    assert_eq!(
        (
            &db["name"],
            &db["max_running"],
            &db["running"],
            &db["waiting"]
        ),
        (&json!("db"), &json!(1), &json!(1), &json!(3)),
        "{status}"
    );
    // The other worker is free: a job without a limit runs at once.
    let quick = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    assert_eq!(quick["state"], "succeeded");
    let still = c.ok("status", json!({}));
    assert!(
        still["concurrency"][0]["waiting"].as_u64() >= Some(1),
        "{still}"
    );
    let runs: Vec<Value> = ids
        .iter()
        .map(|id| d.wait_run_done(id.as_str().expect("id")))
        .collect();
    for r in &runs {
        assert_eq!(r["state"], "succeeded", "{r}");
    }
    // One at a time, in the order asked.
    for w in runs.windows(2) {
        assert!(
            util::millis(&w[1]["started_at"]) >= util::millis(&w[0]["finished_at"]),
            "{} overlaps {}",
            w[0],
            w[1]
        );
    }
    let metrics = util::http::get(d.addr, "/metrics").body;
    assert!(
        metrics.contains("tickd_concurrency_max_running{limit=\"db\"} 1"),
        "{metrics}"
    );
}

/// A job naming a limit without a table is a config error naming both.
#[test]
fn a_job_naming_an_unknown_limit_is_a_config_error() {
    let (code, text) = util::check_text(
        "[concurrency.db]\nmax_running = 0\n\n[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\nconcurrency = \"dbb\"\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("concurrency.db.max_running: must be an integer from 1"),
        "{text}"
    );
    assert!(
        text.contains("jobs[0].concurrency (job \"a\"): names the limit \"dbb\""),
        "{text}"
    );
}

/// A reload that raises a limit starts the runs waiting for it.
#[test]
fn a_reload_raising_a_limit_starts_waiting_runs() {
    let slow = LIMITED.replace("sleep\", \"0.4\"", "sleep\", \"5\"");
    let d = Daemon::start(&config("workers = 4", &slow));
    let mut c = d.client();
    for job in ["dump", "vacuum", "dump"] {
        c.ok("jobs.run", json!({ "name": job }));
    }
    let db = |c: &mut util::Client| c.ok("status", json!({}))["concurrency"][0].clone();
    assert_eq!(
        (db(&mut c)["running"].clone(), db(&mut c)["waiting"].clone()),
        (json!(1), json!(2))
    );
    d.write_config(&config(
        "workers = 4",
        &slow.replace("max_running = 1", "max_running = 3"),
    ));
    d.signal(rustix::process::Signal::HUP);
    poll_until("the raised limit to start the waiting runs", || {
        let g = db(&mut c);
        (g["max_running"] == 3 && g["running"] == 3 && g["waiting"] == 0).then_some(())
    });
}

/// `at = "..."`: a job that runs once at that instant, then is kept as
/// finished (no next run), also across a restart with `state_dir`.
#[test]
fn an_at_job_runs_once_and_stays_finished_across_a_restart() {
    let state = tempfile::tempdir().expect("state dir");
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(2))
        .expect("time");
    // Whole seconds, written with an offset as a user would.
    let at = jiff::Timestamp::from_second(at.as_second()).expect("time");
    let text = at
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let jobs = format!("[[jobs]]\nname = \"once\"\nat = \"{text}\"\ncommand = [\"true\"]\n");
    let daemon = format!("state_dir = \"{}\"", state.path().display());
    let mut d = Daemon::start(&config(&daemon, &jobs));
    let mut c = d.client();
    let job = c.ok("jobs.get", json!({"name": "once", "next": 3}));
    assert_eq!(job["schedule"], text.as_str(), "{job}");
    assert_eq!(job["next_runs"].as_array().map(Vec::len), Some(1), "{job}");
    let run = last_run(&d, "once");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        util::millis(&run["scheduled_at"]),
        at.as_millisecond(),
        "{run}"
    );
    let after = c.ok("jobs.get", json!({"name": "once", "next": 3}));
    assert!(after["next_run"].is_null(), "{after}");
    assert_eq!(after["next_runs"], json!([]), "{after}");
    // Restarted from the same state_dir: not run again.
    d.signal(rustix::process::Signal::TERM);
    d.wait_exit(util::WAIT).expect("stopped");
    let d = Daemon::start(&config(&daemon, &jobs));
    let mut c = d.client();
    let job = c.ok("jobs.get", json!({"name": "once"}));
    assert!(job["next_run"].is_null(), "{job}");
    assert_eq!(job["runs_total"], 1, "{job}");
}

/// `at` with `every` or `cron`, and a time without its offset, are config
/// errors.
#[test]
fn at_is_checked() {
    let (code, text) = util::check_text(
        "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\nat = \"2026-12-24T18:00:00+01:00\"\nevery = \"1h\"\n\n\
         [[jobs]]\nname = \"b\"\ncommand = [\"true\"]\nat = \"2026-12-24 18:00\"\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("jobs[0].at (job \"a\"): set only one of every, cron and at"),
        "{text}"
    );
    assert!(
        text.contains("jobs[1].at (job \"b\"): \"2026-12-24 18:00\" is not a date and time"),
        "{text}"
    );
}

const ECHO: &str = "[[jobs]]\nname = \"later\"\ncommand = [\"true\"]\n";

/// `jobs.run {name, delay}` / `{name, at}`: the run exists at once as
/// `scheduled` with `scheduled_at` its time, is listed under that state,
/// and runs then, under its id.
#[test]
fn a_delayed_run_is_scheduled_then_runs_at_its_time() {
    let d = Daemon::start(&config("", ECHO));
    let mut c = d.client();
    let asked = jiff::Timestamp::now().as_millisecond();
    let id = c.ok("jobs.run", json!({"name": "later", "delay": "1s"}))["run_id"].clone();
    let run = c.ok("runs.get", json!({ "run_id": id }));
    assert_eq!(run["state"], "scheduled", "{run}");
    let due = util::millis(&run["scheduled_at"]);
    assert!((asked + 900..asked + 3000).contains(&due), "{run}");
    let listed = c.ok("runs.list", json!({"state": "scheduled"}));
    assert_eq!(listed[0]["run_id"], id, "{listed}");
    let done = d.wait_run_done(id.as_str().expect("id"));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(util::millis(&done["started_at"]) >= due, "{done}");
    assert_eq!(util::millis(&done["scheduled_at"]), due, "{done}");

    // `at`, and `wait` answers when it has run.
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_millis(800))
        .expect("time")
        .to_string();
    let waited = c.ok("jobs.run", json!({"name": "later", "at": at, "wait": true}));
    assert_eq!(waited["state"], "succeeded", "{waited}");
    // Bad asks.
    for bad in [
        json!({"name": "later", "delay": "1s", "at": at}),
        json!({"name": "later", "delay": "soon"}),
        json!({"name": "later", "at": "2020-01-01T00:00:00Z"}),
        json!({"name": "later", "delay": "400d"}),
    ] {
        assert_eq!(c.err_code("jobs.run", bad.clone()), -32602, "{bad}");
    }
}

/// `runs.cancel` of a scheduled run ends it `cancelled`; it never runs.
#[test]
fn a_scheduled_run_can_be_cancelled() {
    let d = Daemon::start(&config("", ECHO));
    let mut c = d.client();
    let id = c.ok("jobs.run", json!({"name": "later", "delay": "1s"}))["run_id"].clone();
    let cancelled = c.ok("runs.cancel", json!({ "run_id": id }));
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(cancelled["started_at"].is_null(), "{cancelled}");
    // Past its time, a later run has ended and this one still has not run.
    let other = c.ok(
        "jobs.run",
        json!({"name": "later", "delay": "1500ms", "wait": true}),
    );
    assert_eq!(other["state"], "succeeded");
    let again = c.ok("runs.get", json!({ "run_id": id }));
    assert_eq!(again["state"], "cancelled", "{again}");
    assert!(again["started_at"].is_null(), "{again}");
}

/// With `state_dir`, a scheduled run outlives a restart and runs at its
/// time under its id.
#[test]
fn a_scheduled_run_survives_a_restart_with_state_dir() {
    let state = tempfile::tempdir().expect("state dir");
    let daemon = format!("state_dir = \"{}\"", state.path().display());
    let mut d = Daemon::start(&config(&daemon, ECHO));
    let id = d
        .client()
        .ok("jobs.run", json!({"name": "later", "delay": "2s"}))["run_id"]
        .clone();
    d.signal(rustix::process::Signal::TERM);
    d.wait_exit(util::WAIT).expect("stopped");
    let d = Daemon::start(&config(&daemon, ECHO));
    let mut c = d.client();
    let run = c.ok("runs.get", json!({ "run_id": id }));
    assert!(
        matches!(
            run["state"].as_str(),
            Some("scheduled" | "queued" | "running" | "succeeded")
        ),
        "{run}"
    );
    let done = d.wait_run_done(id.as_str().expect("id"));
    assert_eq!(done["state"], "succeeded", "{done}");
}
