//! Run semantics through the real binary: retries with backoff, on_failure
//! chains, jitter, per-job time zones and runs.list.

use crate::util;

use serde_json::{json, Value};
use util::{config, millis, poll_until, Daemon};

/// Runs of `job`, newest first.
fn runs_of(d: &Daemon, job: &str) -> Vec<Value> {
    let list = d.client().ok("runs.list", json!({ "job": job }));
    list.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_failing_run_is_retried_with_attempts_counting_up_then_gives_up() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "flaky"
command = ["sh", "-c", "echo attempt >> $DIR/attempts; exit 1"]
retries = 2
retry_backoff = "100ms"
"#,
    ));
    let mut c = d.client();
    let first = c.ok("jobs.run", json!({"name": "flaky", "wait": true}));
    assert_eq!(first["state"], "failed");
    assert_eq!(first["attempt"], 1);
    let runs = poll_until("three attempts, all finished", || {
        let runs = runs_of(&d, "flaky");
        let done = runs.len() == 3
            && runs
                .iter()
                .all(|r| r["state"] != "queued" && r["state"] != "running");
        done.then_some(runs)
    });
    let attempts: Vec<(&str, i64, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["trigger"].as_str().unwrap_or(""),
                r["attempt"].as_i64().unwrap_or(0),
                r["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("retry", 3, "failed"),
            ("retry", 2, "failed"),
            ("manual", 1, "failed"),
        ]
    );
    // Backoff: 100 ms before attempt 2, 200 ms before attempt 3.
    let gap = |later: &Value, earlier: &Value| {
        millis(&later["queued_at"]) - millis(&earlier["finished_at"])
    };
    assert!(gap(&runs[1], &runs[2]) >= 90, "{:?}", runs);
    assert!(gap(&runs[0], &runs[1]) >= 190, "{:?}", runs);
    let attempts_file = std::fs::read_to_string(d.dir().join("attempts")).expect("attempts");
    assert_eq!(attempts_file.lines().count(), 3);
    // No fourth attempt appears after the last one.
    let job = c.ok("jobs.get", json!({"name": "flaky"}));
    assert_eq!(job["runs_total"], 3);
    assert_eq!(job["failures_total"], 3);
}

#[test]
fn a_retry_that_succeeds_stops_the_chain_and_skips_on_failure() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "second-time-lucky"
command = ["sh", "-c", "if [ -e $DIR/seen ]; then exit 0; fi; touch $DIR/seen; exit 1"]
retries = 3
retry_backoff = "50ms"
on_failure = "alert"

[[jobs]]
name = "alert"
command = ["sh", "-c", "cat > $DIR/alert"]
"#,
    ));
    let mut c = d.client();
    c.ok("jobs.run", json!({"name": "second-time-lucky"}));
    let runs = poll_until("the retry to succeed", || {
        let runs = runs_of(&d, "second-time-lucky");
        (runs.first().map(|r| r["state"] == "succeeded") == Some(true)).then_some(runs)
    });
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["attempt"], 2);
    assert_eq!(runs[0]["trigger"], "retry");
    let alert = c.ok("jobs.get", json!({"name": "alert"}));
    assert_eq!(alert["runs_total"], 0);
    assert!(alert["last_run"].is_null());
}

#[test]
fn on_failure_starts_the_named_job_with_the_failed_runs_facts() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "backup"
command = ["sh", "-c", "echo disk full >&2; exit 4"]
timeout = "5s"
retries = 1
retry_backoff = "50ms"
on_failure = "page-oncall"

[[jobs]]
name = "page-oncall"
command = ["sh", "-c", "cat > $DIR/page.json"]
"#,
    ));
    let mut c = d.client();
    c.ok("jobs.run", json!({"name": "backup"}));
    let page = poll_until("on_failure run to finish", || {
        let runs = runs_of(&d, "page-oncall");
        runs.first().filter(|r| r["state"] == "succeeded").cloned()
    });
    assert_eq!(page["trigger"], "on_failure");
    let backup = runs_of(&d, "backup");
    assert_eq!(backup.len(), 2, "on_failure waits for the last retry");
    let last = &backup[0];
    let text = std::fs::read_to_string(d.dir().join("page.json")).expect("args on stdin");
    let args: Value = serde_json::from_str(text.trim()).expect("json args");
    assert_eq!(args["job"], "backup");
    assert_eq!(args["run_id"], last["run_id"]);
    assert_eq!(args["state"], "failed");
    assert_eq!(args["error"], last["error"]);
    assert_eq!(runs_of(&d, "page-oncall").len(), 1);
}

#[test]
fn a_timed_out_run_also_triggers_on_failure() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "slow"
command = ["sleep", "30"]
timeout = "200ms"
on_failure = "note"

[[jobs]]
name = "note"
command = ["sh", "-c", "cat > $DIR/note.json"]
"#,
    ));
    let mut c = d.client();
    let slow = c.ok("jobs.run", json!({"name": "slow", "wait": true}));
    assert_eq!(slow["state"], "timed_out");
    let note = poll_until("on_failure run", || {
        runs_of(&d, "note")
            .first()
            .filter(|r| r["state"] == "succeeded")
            .cloned()
    });
    assert_eq!(note["trigger"], "on_failure");
    let text = std::fs::read_to_string(d.dir().join("note.json")).expect("args");
    let args: Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(args["state"], "timed_out");
}

#[test]
fn jitter_delays_starts_but_keeps_scheduled_at_on_the_grid() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "spread"
every = "1s"
jitter = "800ms"
overlap = "allow"
command = ["true"]
"#,
    ));
    let runs = poll_until("four scheduled runs", || {
        let runs: Vec<Value> = runs_of(&d, "spread")
            .into_iter()
            .filter(|r| r["state"] == "succeeded")
            .collect();
        (runs.len() >= 4).then_some(runs)
    });
    let mut delays = Vec::new();
    for r in &runs {
        let due = millis(&r["scheduled_at"]);
        assert_eq!(due % 1000, 0, "scheduled_at stays on the 1 s grid: {r}");
        delays.push(millis(&r["started_at"]) - due);
    }
    // Each start is within the jitter window (plus scheduling slack)...
    assert!(
        delays.iter().all(|d| (0..800 + 400).contains(d)),
        "{delays:?}"
    );
    // ...and the delays are not all the same (they are drawn per run).
    assert!(delays.iter().max() > delays.iter().min(), "{delays:?}");
}

#[test]
fn a_cron_job_with_tz_is_due_in_that_zone() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "tokyo-morning"
cron = "0 9 * * *"
tz = "Asia/Tokyo"
command = ["true"]
"#,
    ));
    let job = d.client().ok("jobs.get", json!({"name": "tokyo-morning"}));
    let next = job["next_run"].as_str().expect("next_run");
    // 09:00 in Tokyo (UTC+9, no DST) is always 00:00 UTC.
    assert!(next.ends_with("T00:00:00.000Z"), "{next}");
}

#[test]
fn runs_list_filters_by_job_and_state_and_limits() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "ok"
command = ["true"]

[[jobs]]
name = "bad"
command = ["false"]
"#,
    ));
    let mut c = d.client();
    for _ in 0..3 {
        c.ok("jobs.run", json!({"name": "ok", "wait": true}));
        c.ok("jobs.run", json!({"name": "bad", "wait": true}));
    }
    let all = c.ok("runs.list", json!({}));
    let ids: Vec<u64> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            r["run_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let failed = c.ok("runs.list", json!({"state": "failed"}));
    let failed = failed.as_array().expect("array");
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|r| r["job"] == "bad"));
    let limited = c.ok("runs.list", json!({"job": "ok", "limit": 2}));
    let limited = limited.as_array().expect("array");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0]["run_id"], all[1]["run_id"]);
    assert_eq!(c.err_code("runs.list", json!({"job": "ghost"})), -32000);
    assert_eq!(
        c.err_code("runs.list", json!({"state": "sleeping"})),
        -32602
    );
    assert_eq!(c.err_code("runs.list", json!({"limit": 0})), -32602);
    assert_eq!(c.err_code("runs.list", json!({"limit": "ten"})), -32602);
    assert_eq!(c.err_code("runs.list", json!({"bogus": 1})), -32602);
}

#[test]
fn submit_is_forbidden_unless_allowed() {
    let d = Daemon::start(&config("", ""));
    let mut c = d.client();
    let resp = c.call(
        "submit",
        json!({"job": {"kind": "exec", "command": ["true"]}}),
    );
    assert_eq!(resp["error"]["code"], -32003);
    assert!(resp["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("allow_submit")));
}

#[test]
fn submit_runs_an_adhoc_job_checked_by_the_config_rules() {
    let d = Daemon::start(&config(
        "allow_submit = true",
        r#"
[[jobs]]
name = "named"
command = ["true"]
"#,
    ));
    let mut c = d.client();
    let run = c.ok(
        "submit",
        json!({
            "job": {"kind": "exec", "command": ["sh", "-c", "echo adhoc:$TICKD_ARGS"], "timeout": "5s"},
            "args": {"n": 1},
            "wait": true
        }),
    );
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["trigger"], "submit");
    assert!(run["job"].is_null());
    assert!(run["output"]
        .as_str()
        .is_some_and(|o| o.contains("adhoc:{\"n\":1}")));
    // Without wait: a run id, then the run is visible through runs.get.
    let started = c.ok("submit", json!({"job": {"command": ["false"]}}));
    let id = started["run_id"].as_str().expect("run id").to_string();
    let done = d.wait_run_done(&id);
    assert_eq!(done["state"], "failed");
    // Bad definitions are -32602 naming the key, like the config file.
    let bad = c.call("submit", json!({"job": {"kind": "exec", "command": []}}));
    assert_eq!(bad["error"]["code"], -32602);
    assert!(
        bad["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("job.command:")),
        "{bad}"
    );
    let bad = c.call(
        "submit",
        json!({"job": {"command": ["true"], "every": "1s"}}),
    );
    assert_eq!(bad["error"]["code"], -32602);
    assert_eq!(c.err_code("submit", json!({})), -32602);
    assert_eq!(c.err_code("submit", json!({"job": "true"})), -32602);
    // A submitted job with retries is retried like a named one.
    let first = c.ok(
        "submit",
        json!({"job": {"command": ["false"], "retries": 1, "retry_backoff": "50ms"}, "wait": true}),
    );
    assert_eq!(first["state"], "failed");
    let retry = poll_until("the submitted job's retry", || {
        let runs = c.ok("runs.list", json!({"state": "failed", "limit": 1}));
        runs.get(0).filter(|r| r["trigger"] == "retry").cloned()
    });
    assert_eq!(retry["attempt"], 2);
    assert!(retry["job"].is_null());
}

#[test]
fn subscribers_see_every_state_change_of_matching_runs() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "watched"
command = ["sh", "-c", "echo hello"]

[[jobs]]
name = "other"
command = ["true"]
"#,
    ));
    let mut sub = d.client();
    let ok = sub.ok("subscribe", json!({"jobs": ["watched"]}));
    assert_eq!(ok, json!({"subscribed": true}));
    let mut c = d.client();
    c.ok("jobs.run", json!({"name": "other", "wait": true}));
    let run = c.ok("jobs.run", json!({"name": "watched", "wait": true}));
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("succeeded") {
        let event = sub.read_json();
        assert_eq!(event["method"], "run.event", "{event}");
        assert!(
            event.get("id").is_none(),
            "notifications carry no id: {event}"
        );
        assert_eq!(
            event["params"]["job"], "watched",
            "filtered by job: {event}"
        );
        assert_eq!(event["params"]["run_id"], run["run_id"]);
        states.push(event["params"]["state"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(states, ["queued", "running", "succeeded"]);
    // The subscriber can still make requests on the same connection.
    assert_eq!(sub.ok("ping", json!({})), "pong");
    assert_eq!(c.err_code("subscribe", json!({"jobs": ["ghost"]})), -32000);
    assert_eq!(c.err_code("subscribe", json!({"jobs": "watched"})), -32602);
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_without_slowing_others() {
    let d = Daemon::start(&config(
        "max_output_bytes = 65536",
        r#"
[[jobs]]
name = "chatty"
overlap = "allow"
command = ["sh", "-c", "head -c 30000 /dev/zero | tr '\\0' x"]
"#,
    ));
    // A subscriber that sends one request and then never reads.
    let mut stalled = std::net::TcpStream::connect(d.addr).expect("connect");
    std::io::Write::write_all(&mut stalled, b"{\"id\":1,\"method\":\"subscribe\"}\n")
        .expect("write");
    d.wait_status("the subscription", |s| s["subscribers"] == 1);
    let mut c = d.client();
    // Each finished run carries ~30 KB of output; the socket buffers fill
    // and then the unread bytes pass max_output_bytes.
    let mut ran = 0;
    poll_until("the stalled subscriber to be dropped", || {
        for _ in 0..20 {
            c.ok("jobs.run", json!({"name": "chatty", "wait": true}));
            ran += 1;
        }
        d.log
            .all()
            .iter()
            .any(|l| l.contains("max_output_bytes"))
            .then_some(())
    });
    assert!(ran >= 20);
    // Everyone else is unaffected.
    assert_eq!(c.ok("ping", json!({})), "pong");
    let s = c.ok("status", json!({}));
    assert_eq!(s["connections"], 1, "only the reading client is left: {s}");
}

/// Many jobs due at the same instant (a top-of-the-minute burst, larger
/// than the loop's wake batch of 32): every one runs, on the same due time.
#[test]
fn a_burst_of_jobs_due_at_the_same_instant_all_run() {
    const JOBS: usize = 40;
    let jobs: String = (0..JOBS)
        .map(|i| format!("[[jobs]]\nname = \"b{i:02}\"\nevery = \"1s\"\ncommand = [\"true\"]\n\n"))
        .collect();
    let d = Daemon::start(&config("queue_capacity = 1024", &jobs));
    let mut c = d.client();
    let due = poll_until("every job of the burst to have a finished run", || {
        let list = c.ok("jobs.list", json!({}));
        let jobs = list.as_array()?;
        let due: Vec<&str> = jobs
            .iter()
            .filter(|j| j["last_run"]["state"] == "succeeded")
            .filter_map(|j| j["last_run"]["scheduled_at"].as_str())
            .collect();
        (due.len() == JOBS).then(|| due.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    });
    // Each job's first run was due on the same 1 s grid point; later runs
    // may have started by the time the last one finished, so compare the
    // grid: every due time is a whole second.
    assert!(
        due.iter().all(|s| s.contains(".000Z")),
        "due times off the 1 s grid: {due:?}"
    );
}
