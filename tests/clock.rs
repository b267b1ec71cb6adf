//! Wall-clock jumps through the real binary (`debug.clock_jump`, which
//! steps the daemon's wall clock as `date -s` would): schedules neither
//! stall after a jump back nor burst after a jump forward, and the daemon
//! logs the jump it noticed.

use crate::util;

use serde_json::json;
use util::{config, poll_until, Client, Daemon};

const HOOKS: &[(&str, &str)] = &[("TICKD_DEBUG_HOOKS", "1")];

const JOBS: &str = r#"
[[jobs]]
name = "tick"
every = "1s"
overlap = "allow"
command = ["true"]

[[jobs]]
name = "crontick"
cron = "* * * * * *"
overlap = "allow"
command = ["true"]
"#;

fn runs_total(c: &mut Client, job: &str) -> u64 {
    c.ok("jobs.get", json!({ "name": job }))["runs_total"]
        .as_u64()
        .expect("runs_total")
}

/// Waits for `n` more runs of each job than `from`.
fn wait_more_runs(c: &mut Client, from: &[u64; 2], n: u64, what: &str) -> [u64; 2] {
    poll_until(what, || {
        let now = [runs_total(c, "tick"), runs_total(c, "crontick")];
        (now[0] >= from[0] + n && now[1] >= from[1] + n).then_some(now)
    })
}

#[test]
fn schedules_survive_clock_jumps_back_and_forward() {
    let d = Daemon::start_with_env(&config("workers = 4", JOBS), HOOKS);
    let mut c = d.client();
    let start = wait_more_runs(&mut c, &[0, 0], 2, "the schedules to run");

    // Back an hour: without re-arming, both would wait an hour.
    c.ok("debug.clock_jump", json!({ "ms": -3_600_000 }));
    assert!(
        d.log
            .wait_for("wall clock jumped back", 0, util::WAIT)
            .is_some(),
        "the jump was noticed"
    );
    let after_back = wait_more_runs(&mut c, &start, 2, "runs after the jump back");

    // Forward two hours: the 7200 slots jumped over are not run in a burst.
    c.ok("debug.clock_jump", json!({ "ms": 7_200_000 }));
    assert!(d
        .log
        .wait_for("wall clock jumped forward", 0, util::WAIT)
        .is_some());
    let after_forward = wait_more_runs(&mut c, &after_back, 3, "runs after the jump forward");
    // Three more runs of each were awaited; a burst would be thousands.
    // (Polling may overshoot by the runs of a few seconds on a slow machine.)
    for (job, (before, now)) in ["tick", "crontick"]
        .iter()
        .zip(after_back.iter().zip(after_forward.iter()))
    {
        assert!(now - before < 60, "{job}: {} runs: a burst", now - before);
    }
    let job = c.ok("jobs.get", json!({ "name": "tick" }));
    let next = util::millis(&job["next_run"]);
    let wall_now = jiff::Timestamp::now().as_millisecond() + 3_600_000;
    assert!(
        (next - wall_now).abs() < 60_000,
        "next_run follows the daemon's wall clock: {job}"
    );
}

/// The `scheduled_at` (ms) of job `ten`'s runs later than `after`: the
/// oldest of them, or the newest with `newest`.
fn scheduled_after(c: &mut Client, after: i64, newest: bool) -> Option<i64> {
    let runs = c.ok("runs.list", json!({ "job": "ten" }));
    runs.as_array()?
        .iter()
        .filter(|r| !r["scheduled_at"].is_null())
        .map(|r| util::millis(&r["scheduled_at"]))
        .filter(|at| *at > after)
        .reduce(|a, b| if (b > a) == newest { b } else { a })
}

/// An interval is monotonic time: after a wall-clock step forward of 9 s
/// just after a run of an `every = "10s"` job, the next run comes at
/// least 10 s after it (on the grid point 20 s later in the new wall
/// time), not 1 s later at the next wall-clock grid point.
#[test]
fn an_interval_job_waits_its_interval_after_a_jump_forward() {
    let jobs = "[[jobs]]\nname = \"ten\"\nevery = \"10s\"\ncommand = [\"true\"]\n";
    let d = Daemon::start_with_env(&config("", jobs), HOOKS);
    let mut c = d.client();
    let first = poll_until("a first run", || scheduled_after(&mut c, 0, true));
    c.ok("debug.clock_jump", json!({ "ms": 9_000 }));
    let second = poll_until("the next run", || scheduled_after(&mut c, first, false));
    assert_eq!(second % 10_000, 0, "on the 10 s grid: {second}");
    assert!(
        second - first >= 19_000,
        "the next run came {} ms of wall time (9 s of it the jump) after the previous one",
        second - first
    );
}
