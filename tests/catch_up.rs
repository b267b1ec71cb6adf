//! Catch-up after downtime, through the real binary: however many missed
//! runs are refused (a full backlog), the log says so once per job.

use crate::util;

use rustix::process::Signal;
use serde_json::json;
use std::time::Duration;
use util::{config, poll_until, Daemon, WAIT};

#[test]
fn refused_catch_up_runs_are_summarised_in_one_line_per_job() {
    let state = tempfile::tempdir().expect("state dir");
    // A run takes long, so catch-up runs queue behind it; the backlog
    // holds 2 (queue_capacity), so most of the ~15 missed runs are refused.
    let text = config(
        &format!(
            "state_dir = \"{}\"\nlog_level = \"info\"\nqueue_capacity = 2\nshutdown_grace = \"0s\"",
            state.path().display()
        ),
        r#"
[[jobs]]
name = "often"
every = "100ms"
catch_up = "all"
catch_up_limit = 100000
command = ["sleep", "30"]
"#,
    );
    let mut d = Daemon::start(&text);
    let mut c = d.client();
    poll_until("a scheduled run", || {
        let runs = c.ok("runs.list", json!({"job": "often"}));
        (runs.as_array().map(Vec::len).unwrap_or(0) > 0).then_some(())
    });
    d.signal(Signal::TERM);
    d.wait_exit(WAIT).expect("exit after SIGTERM");
    // The daemon is down for a while: this wait is the scenario under test
    // (downtime, so runs are missed), not a synchronisation.
    std::thread::sleep(Duration::from_millis(1500));

    let d = Daemon::start(&text);
    let (_, missed) = d
        .log
        .wait_for("missed while tickd was down", 0, WAIT)
        .expect("the missed-runs line");
    assert!(missed.contains("job often: "), "{missed}");
    let (_, summary) = d
        .log
        .wait_for("catch-up run(s) not started", 0, WAIT)
        .expect("the refusal summary");
    assert!(summary.contains("backlog full"), "{summary}");
    let refused: usize = summary
        .split("job often: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(refused >= 5, "{summary}");
    // The summary comes after every attempt, so no line about a refused
    // catch-up run can follow it.
    let lines: Vec<String> = d
        .log
        .all()
        .into_iter()
        .filter(|l| l.contains("catch-up run"))
        .collect();
    assert_eq!(lines, [summary], "one line, however many were refused");
}
