//! A thundering herd (issue 16, item 6): many jobs due at the same
//! instant. Each gets exactly one run, with `scheduled_at` the due time,
//! and the loop answers clients while the herd is being queued: it fires
//! the due timers a slice at a time and serves its connections between
//! slices. The `dispatch.fire_hold` fail point holds the timers a slice
//! left, which makes "while" deterministic (needs `--features failpoints`).

use crate::util;

use serde_json::{json, Value};
use std::collections::HashSet;
use util::{config, millis, poll_until, Daemon};

/// Jobs due together: several slices' worth (a slice is 256).
const JOBS: usize = 2000;

/// A loopback port nothing listens on: the runs fail at once, forking
/// nothing.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `JOBS` jobs due at the wall-clock second `due` (Unix seconds, UTC).
fn herd_config(due: i64) -> String {
    let at = jiff::Timestamp::from_second(due)
        .expect("due")
        .to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let port = closed_port();
    let mut jobs = String::new();
    for i in 0..JOBS {
        jobs.push_str(&format!(
            "[[jobs]]\nname = \"herd-{i:05}\"\nkind = \"http\"\n\
             url = \"http://127.0.0.1:{port}/\"\ncron = \"{cron}\"\ntz = \"UTC\"\n\n"
        ));
    }
    config(
        "workers = 1\nqueue_capacity = 10000\nhistory = 1\nlog_level = \"warn\"\n",
        &jobs,
    )
}

/// Every scheduled run listed, through `runs.list` pages.
fn scheduled_runs(c: &mut util::Client) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut params = json!({"limit": 500});
        if let Some(b) = &before {
            params["before"] = json!(b);
        }
        let page = c.ok("runs.list", params);
        let page = page.as_array().expect("runs").clone();
        let Some(last) = page.last() else {
            return runs;
        };
        before = Some(last["run_id"].as_str().expect("run id").to_string());
        runs.extend(
            page.into_iter()
                .filter(|r| r["trigger"] == json!("schedule")),
        );
    }
}

/// Seconds from now to a due time far enough ahead for the daemon (a
/// debug build) to start and arm the jobs first.
fn due_soon() -> i64 {
    jiff::Timestamp::now().as_second() + 4
}

#[cfg(feature = "failpoints")]
#[test]
fn a_ping_is_answered_while_the_herd_is_only_partly_queued() {
    let due = due_soon();
    let d = Daemon::start_with_env(
        &herd_config(due),
        &[
            ("TICKD_DEBUG_HOOKS", "1"),
            ("FAILPOINTS", "dispatch.fire_hold=return"),
        ],
    );
    let mut c = d.client();
    // The first slice comes due and is queued; the fail point holds the rest.
    poll_until("the first runs of the herd", || {
        let page = c.ok("runs.list", json!({"limit": 1}));
        (!page.as_array().expect("runs").is_empty()).then_some(())
    });
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    let queued = scheduled_runs(&mut c).len();
    assert!(
        queued < JOBS,
        "the ping was answered with all {queued} runs queued: the herd was fired in one go"
    );
    c.ok(
        "debug.failpoint",
        json!({"name": "dispatch.fire_hold", "actions": "off"}),
    );
    let runs = poll_until("every run of the herd", || {
        let runs = scheduled_runs(&mut c);
        (runs.len() >= JOBS).then_some(runs)
    });
    check_one_run_each(&runs, due);
}

#[test]
fn every_job_of_a_herd_gets_exactly_one_run_at_its_due_time() {
    let due = due_soon();
    let d = Daemon::start(&herd_config(due));
    let mut c = d.client();
    let runs = poll_until("every run of the herd", || {
        let runs = scheduled_runs(&mut c);
        (runs.len() >= JOBS).then_some(runs)
    });
    check_one_run_each(&runs, due);
    // Every schedule is armed again, for the next day.
    let job = c.ok("jobs.get", json!({"name": "herd-00000"}));
    assert_eq!(millis(&job["next_run"]), (due + 86_400) * 1000, "{job}");
}

/// One run per job, each scheduled at `due` (Unix seconds).
fn check_one_run_each(runs: &[Value], due: i64) {
    assert_eq!(runs.len(), JOBS, "one run per job");
    let jobs: HashSet<&str> = runs
        .iter()
        .map(|r| r["job"].as_str().expect("job"))
        .collect();
    assert_eq!(jobs.len(), JOBS, "no job ran twice");
    for r in runs {
        assert_eq!(millis(&r["scheduled_at"]), due * 1000, "{r}");
    }
}
