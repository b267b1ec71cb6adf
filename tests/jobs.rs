//! Jobs and runs through the real binary: exec semantics, methods, overlap,
//! time-outs that kill process trees, cancel, progress, history.

use crate::util;

use serde_json::json;
use std::time::Duration;
use util::{config, poll_until, Daemon};

const JOBS: &str = r#"
[[jobs]]
name = "echo"
kind = "exec"
command = ["sh", "-c", "echo out:$GREETING; echo args:$TICKD_ARGS; cat; echo secret:${TICKD_TEST_SECRET:-none}; echo job:$TICKD_JOB; pwd"]
env = { GREETING = "hi" }
cwd = "/tmp"

[[jobs]]
name = "fail"
kind = "exec"
command = ["sh", "-c", "echo bad >&2; exit 3"]

[[jobs]]
name = "missing"
kind = "exec"
command = ["/nonexistent/program"]

[[jobs]]
name = "badcwd"
kind = "exec"
command = ["true"]
cwd = "/nonexistent/dir"

[[jobs]]
name = "tree"
kind = "exec"
command = ["sh", "-c", "sleep 300 & echo child:$!; sleep 300"]
timeout = "500ms"

[[jobs]]
name = "long"
kind = "exec"
command = ["sh", "-c", "echo started; sleep 300"]

[[jobs]]
name = "progress"
kind = "exec"
command = ["sh", "-c", "echo 'tickd-progress: 0.25'; echo 'tickd-progress: 0.75'; echo done"]

[[jobs]]
name = "single"
kind = "exec"
command = ["sleep", "1"]
overlap = "skip"

[[jobs]]
name = "queued"
kind = "exec"
command = ["sh", "-c", "echo $TICKD_RUN_ID >> $DIR/order; sleep 0.2"]
overlap = "queue"

[[jobs]]
name = "paused"
kind = "exec"
every = "1h"
enabled = false
command = ["true"]

[[jobs]]
name = "hourly"
kind = "exec"
every = "1h"
command = ["true"]
"#;

fn daemon() -> Daemon {
    Daemon::start_with_env(
        &config("history = 3", JOBS),
        &[("TICKD_TEST_SECRET", "leaked")],
    )
}

#[test]
fn jobs_list_and_get_have_the_contract_fields() {
    let d = daemon();
    let mut c = d.client();
    let list = c.ok("jobs.list", json!({}));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"paused"),
        "{names:?}"
    );
    let paused = list
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "paused")
        .unwrap();
    for key in [
        "name",
        "kind",
        "schedule",
        "enabled",
        "running",
        "next_run",
        "last_run",
        "runs_total",
        "failures_total",
    ] {
        assert!(paused.get(key).is_some(), "missing {key} in {paused}");
    }
    assert_eq!(paused["schedule"], json!("1h"));
    assert_eq!(paused["enabled"], json!(false));
    assert_eq!(paused["next_run"], json!(null));
    let echo = c.ok("jobs.get", json!({"name": "echo"}));
    assert_eq!(echo["schedule"], json!(null));
    assert_eq!(echo["history"], json!([]));
    // What the job runs, as written.
    let def = &echo["definition"];
    assert_eq!(def["command"][0], json!("sh"), "{echo}");
    assert_eq!(def["env"]["GREETING"], json!("hi"), "{echo}");
    assert_eq!(def["cwd"], json!("/tmp"), "{echo}");
    assert_eq!(def["retries"], json!(0), "{echo}");
}

/// `jobs.list` answers from a cached encoding while nothing changes: every
/// kind of change must still show in the next answer, and a running run's
/// `duration_ms` must keep growing.
#[test]
fn jobs_list_follows_every_change_and_the_clock() {
    let d = daemon();
    let mut c = d.client();
    let job = |c: &mut util::Client, name: &str| {
        let list = c.ok("jobs.list", json!({}));
        list.as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} missing from {list}"))
    };
    // Asked twice with no change in between: the same answer.
    assert_eq!(job(&mut c, "paused"), job(&mut c, "paused"));
    c.ok("jobs.pause", json!({"name": "hourly"}));
    assert_eq!(job(&mut c, "hourly")["enabled"], json!(false));
    c.ok("jobs.resume", json!({"name": "hourly"}));
    assert_eq!(job(&mut c, "hourly")["enabled"], json!(true));

    let run = c.ok("jobs.run", json!({"name": "fail", "wait": true}));
    let fail = job(&mut c, "fail");
    assert_eq!(fail["last_run"]["run_id"], run["run_id"], "{fail}");
    assert_eq!(fail["runs_total"], json!(1));
    assert_eq!(fail["failures_total"], json!(1));

    let id = c.ok("jobs.run", json!({"name": "long"}))["run_id"].clone();
    let first = poll_until("long to be running in jobs.list", || {
        let long = job(&mut c, "long");
        (long["last_run"]["state"] == "running" && long["last_run"]["run_id"] == id)
            .then(|| long["last_run"]["duration_ms"].as_u64())
            .flatten()
    });
    poll_until("duration_ms to grow while it runs", || {
        let now = job(&mut c, "long")["last_run"]["duration_ms"].as_u64()?;
        (now > first).then_some(())
    });
    c.ok("runs.cancel", json!({"run_id": id}));
    let long = job(&mut c, "long");
    assert_eq!(long["last_run"]["state"], json!("cancelled"), "{long}");
    assert_eq!(long["running"], json!(false));
}

#[test]
fn run_with_wait_passes_args_env_and_cwd_and_scrubs_the_environment() {
    let d = daemon();
    let mut c = d.client();
    let run = c.ok(
        "jobs.run",
        json!({"name": "echo", "wait": true, "args": {"n": 1}}),
    );
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["exit_code"], json!(0));
    assert_eq!(run["trigger"], json!("manual"));
    let out = run["output"].as_str().unwrap();
    assert!(out.contains("out:hi"), "{out}");
    assert!(out.contains("args:{\"n\":1}"), "{out}");
    assert!(out.contains("\n{\"n\":1}\n"), "args on stdin: {out}");
    assert!(
        out.contains("secret:none"),
        "environment not scrubbed: {out}"
    );
    assert!(out.contains("job:echo"), "{out}");
    assert!(out.contains("/tmp"), "{out}");
    for key in ["queued_at", "started_at", "finished_at"] {
        assert!(run[key].as_str().unwrap().ends_with('Z'), "{key}: {run}");
    }
    assert!(run["duration_ms"].is_u64());
    // The same run is in the job's history and in runs.get.
    let got = c.ok("runs.get", json!({"run_id": run["run_id"]}));
    assert_eq!(got["state"], json!("succeeded"));
    let job = c.ok("jobs.get", json!({"name": "echo"}));
    assert_eq!(job["runs_total"], json!(1));
    assert_eq!(job["history"][0]["run_id"], run["run_id"]);
    assert_eq!(job["last_run"]["run_id"], run["run_id"]);
}

#[test]
fn run_without_wait_returns_run_id_then_finishes() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.run", json!({"name": "echo"}));
    let id = r["run_id"].as_str().expect("run_id string").to_string();
    let done = d.wait_run_done(&id);
    assert_eq!(done["state"], json!("succeeded"));
}

#[test]
fn failures_are_failed_runs_with_clear_errors() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.run", json!({"name": "fail", "wait": true}));
    assert_eq!(r["state"], json!("failed"));
    assert_eq!(r["exit_code"], json!(3));
    assert!(r["output"].as_str().unwrap().contains("bad"));
    assert!(r["error"].as_str().unwrap().contains('3'), "{r}");

    let r = c.ok("jobs.run", json!({"name": "missing", "wait": true}));
    assert_eq!(r["state"], json!("failed"));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/program"),
        "{r}"
    );

    let r = c.ok("jobs.run", json!({"name": "badcwd", "wait": true}));
    assert_eq!(r["state"], json!("failed"));
    assert!(
        r["error"].as_str().unwrap().contains("/nonexistent/dir"),
        "{r}"
    );

    let job = c.ok("jobs.get", json!({"name": "fail"}));
    assert_eq!(job["failures_total"], json!(1));
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
}

/// True while any process of group `pgid` is alive (zombies do not count).
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.trim().to_string()) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 3 && fields[2] == pgid.to_string() && fields[0] != "Z"
    })
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.run", json!({"name": "tree"}));
    let id = r["run_id"].as_str().unwrap().to_string();
    let pid = poll_until("pid of the running tree", || {
        let run = c.ok("runs.get", json!({"run_id": id}));
        run["pid"].as_i64()
    });
    let done = d.wait_run_done(&id);
    assert_eq!(done["state"], json!("timed_out"), "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("timed out"),
        "{done}"
    );
    poll_until("process group gone", || {
        (!group_alive(pid as i32)).then_some(())
    });
}

#[test]
fn cancel_kills_a_running_run_and_drops_a_queued_one() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.run", json!({"name": "long"}));
    let id = r["run_id"].as_str().unwrap().to_string();
    poll_until("long to run", || {
        (c.ok("runs.get", json!({"run_id": id}))["state"] == "running").then_some(())
    });
    let cancelled = c.ok("runs.cancel", json!({"run_id": id}));
    assert_eq!(cancelled["state"], json!("cancelled"), "{cancelled}");
    assert_eq!(cancelled["error"], json!("cancelled by request"));
    assert_eq!(
        c.err_code("runs.cancel", json!({"run_id": "424242"})),
        -32000
    );
}

#[test]
fn progress_lines_update_the_run() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.run", json!({"name": "progress", "wait": true}));
    assert_eq!(r["progress"], json!(0.75), "{r}");
    assert!(r["output"].as_str().unwrap().contains("done"));
}

#[test]
fn overlap_skip_refuses_a_second_manual_run() {
    let d = daemon();
    let mut c = d.client();
    c.ok("jobs.run", json!({"name": "single"}));
    let resp = c.call("jobs.run", json!({"name": "single"}));
    assert_eq!(resp["error"]["code"], json!(-32004), "{resp}");
}

#[test]
fn overlap_queue_runs_one_after_another_in_order() {
    let d = daemon();
    let mut c = d.client();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            c.ok("jobs.run", json!({"name": "queued"}))["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let runs: Vec<_> = ids.iter().map(|id| d.wait_run_done(id)).collect();
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            b["started_at"].as_str().unwrap() >= a["finished_at"].as_str().unwrap(),
            "queued runs overlapped: {a} {b}"
        );
    }
    let order = std::fs::read_to_string(d.dir().join("order")).unwrap();
    let got: Vec<&str> = order.lines().collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn pause_and_resume() {
    let d = daemon();
    let mut c = d.client();
    let r = c.ok("jobs.pause", json!({"name": "hourly"}));
    assert_eq!((&r["enabled"], &r["paused"]), (&json!(false), &json!(true)));
    let job = c.ok("jobs.get", json!({"name": "hourly"}));
    assert_eq!(job["next_run"], json!(null));
    // A paused job can still be run by hand.
    let run = c.ok("jobs.run", json!({"name": "hourly", "wait": true}));
    assert_eq!(run["state"], json!("succeeded"));
    let r = c.ok("jobs.resume", json!({"name": "hourly"}));
    assert_eq!((&r["enabled"], &r["paused"]), (&json!(true), &json!(false)));
    let job = c.ok("jobs.get", json!({"name": "hourly"}));
    assert!(
        job["next_run"].is_string(),
        "resumed job is scheduled: {job}"
    );
    // Resume lifts a pause, never the file's `enabled = false`.
    let r = c.ok("jobs.resume", json!({"name": "paused"}));
    assert_eq!(
        (&r["enabled"], &r["paused"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(r["next_run"], json!(null));
    // A job its file disables can be run by hand too.
    let run = c.ok("jobs.run", json!({"name": "paused", "wait": true}));
    assert_eq!(run["state"], json!("succeeded"));
    assert_eq!(c.err_code("jobs.pause", json!({"name": "ghost"})), -32000);
}

#[test]
fn history_is_bounded() {
    let d = daemon();
    let mut c = d.client();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(c.ok("jobs.run", json!({"name": "fail", "wait": true}))["run_id"].clone());
    }
    let job = c.ok("jobs.get", json!({"name": "fail"}));
    let hist: Vec<_> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].clone())
        .collect();
    assert_eq!(
        hist,
        vec![ids[4].clone(), ids[3].clone(), ids[2].clone()],
        "newest first, 3 kept"
    );
    assert_eq!(job["runs_total"], json!(5));
    assert_eq!(c.err_code("runs.get", json!({"run_id": ids[0]})), -32000);
}

#[test]
fn worker_that_dies_is_replaced_and_pool_still_runs_jobs() {
    let d = Daemon::start_with_env(&config("", JOBS), &[("TICKD_DEBUG_HOOKS", "1")]);
    let mut c = d.client();
    assert_eq!(c.ok("debug.kill_worker", json!({}))["killed"], json!(true));
    let s = d.wait_status("respawn", |s| {
        s["workers"]["respawned"] == json!(1) && s["workers"]["alive"] == json!(2)
    });
    assert_eq!(s["health"], json!("ok"));
    assert!(d
        .log
        .wait_for("died; spawning a replacement", 0, Duration::from_secs(5))
        .is_some());
    for _ in 0..4 {
        let r = c.ok("jobs.run", json!({"name": "fail", "wait": true}));
        assert_eq!(r["state"], json!("failed"));
    }
}

#[test]
fn debug_hooks_are_absent_by_default() {
    let d = daemon();
    let mut c = d.client();
    assert_eq!(c.err_code("debug.kill_worker", json!({})), -32601);
}

/// Peak and current resident memory of a process, in KiB, from
/// /proc/PID/status.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_job_printing_a_gibibyte_leaves_the_daemon_small() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "firehose"
command = ["sh", "-c", "head -c 1073741824 /dev/zero | tr '\\0' 'y'; echo; echo the-end"]
timeout = "5m"
"#,
    ));
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "firehose", "wait": true}));
    assert_eq!(run["state"], "succeeded", "{}", run["error"]);
    let output = run["output"].as_str().expect("output");
    assert!(output.len() <= 64 * 1024, "output is a bounded tail");
    assert!(
        output.ends_with("the-end\n"),
        "the tail is the end of the output"
    );
    let (peak, now) = rss_kib(d.child.id());
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB must stay under 64 MiB"
    );
    assert!(now < 64 * 1024, "RSS {now} KiB");
}
