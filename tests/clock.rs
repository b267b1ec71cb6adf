//! Wall-clock jumps through the real binary (`debug.clock_jump`, which
//! steps the daemon's wall clock as `date -s` would): schedules neither
//! stall after a jump back nor burst after a jump forward, and the daemon
//! logs the jump it noticed.

mod util;

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
    let wall_now = chrono::Utc::now().timestamp_millis() + 3_600_000;
    assert!(
        (next - wall_now).abs() < 60_000,
        "next_run follows the daemon's wall clock: {job}"
    );
}
