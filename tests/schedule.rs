//! Schedules through the real binary: `every` aligned and drift-free, cron
//! with seconds, overlap on scheduled runs.

use crate::util;

use serde_json::{json, Value};
use util::{config, millis, poll_until, Daemon};

fn history(d: &Daemon, job: &str, at_least: usize) -> Vec<Value> {
    let mut c = d.client();
    poll_until(&format!("{at_least} finished runs of {job}"), || {
        let j = c.ok("jobs.get", json!({ "name": job }));
        let h = j["history"].as_array().cloned().unwrap_or_default();
        (h.len() >= at_least).then_some(h)
    })
}

#[test]
fn every_runs_on_aligned_due_times_without_drift() {
    // Each run takes 300 ms; the due times must still be exactly 1 s apart.
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "tick"
every = "1s"
command = ["sleep", "0.3"]
"#,
    ));
    let mut runs = history(&d, "tick", 3);
    runs.reverse(); // oldest first
    let due: Vec<i64> = runs.iter().map(|r| millis(&r["scheduled_at"])).collect();
    for r in &runs {
        assert_eq!(r["trigger"], json!("schedule"));
        assert_eq!(r["state"], json!("succeeded"));
        assert!(
            millis(&r["started_at"]) >= millis(&r["scheduled_at"]),
            "started early: {r}"
        );
    }
    for w in due.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "due times drift: {due:?}");
    }
    assert!(
        due.iter().all(|t| t % 1000 == 0),
        "aligned to whole seconds: {due:?}"
    );
    let job = d.client().ok("jobs.get", json!({"name": "tick"}));
    assert!(millis(&job["next_run"]) > *due.last().unwrap());
}

#[test]
fn six_field_cron_fires_every_second() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "cron"
cron = "* * * * * *"
command = ["true"]
"#,
    ));
    let mut runs = history(&d, "cron", 2);
    runs.reverse();
    let due: Vec<i64> = runs.iter().map(|r| millis(&r["scheduled_at"])).collect();
    assert!(due.iter().all(|t| t % 1000 == 0), "{due:?}");
    assert!(due.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn overlap_skip_skips_scheduled_runs_while_one_is_running() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "slow"
every = "1s"
overlap = "skip"
command = ["sleep", "2.5"]
"#,
    ));
    let runs = history(&d, "slow", 2);
    let mut c = d.client();
    let job = c.ok("jobs.get", json!({"name": "slow"}));
    assert!(job["skipped_total"].as_u64().unwrap() >= 2, "{job}");
    // Finished runs never overlapped.
    let mut spans: Vec<(i64, i64)> = runs
        .iter()
        .map(|r| (millis(&r["started_at"]), millis(&r["finished_at"])))
        .collect();
    spans.sort_unstable();
    assert!(spans.windows(2).all(|w| w[1].0 >= w[0].1), "{spans:?}");
    assert!(d
        .log
        .wait_for("scheduled run skipped", 0, util::WAIT)
        .is_some());
}

#[test]
fn cron_without_tz_runs_in_the_local_zone_named_by_tz() {
    // Asia/Kolkata is UTC+05:30 all year: its midnight is 18:30 UTC.
    let d = Daemon::start_with_env(
        &config(
            "",
            r#"
[[jobs]]
name = "midnight"
cron = "0 0 * * *"
command = ["true"]
"#,
        ),
        &[("TZ", "Asia/Kolkata")],
    );
    let job = d.client().ok("jobs.get", json!({"name": "midnight"}));
    let next = millis(&job["next_run"]);
    assert_eq!(next.rem_euclid(86_400_000), 66_600_000, "{job}");
}

#[test]
fn a_streak_of_skipped_runs_is_logged_once_then_summarised_when_it_ends() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "busy"
every = "100ms"
overlap = "skip"
command = ["sleep", "1.5"]
"#,
    ));
    let mut c = d.client();
    // Ten due times skipped behind one run: one line, not ten.
    poll_until("ten skipped runs", || {
        let job = c.ok("jobs.get", json!({"name": "busy"}));
        (job["skipped_total"].as_u64().unwrap_or(0) >= 10).then_some(())
    });
    let skipped_lines = |d: &Daemon| {
        d.log
            .all()
            .iter()
            .filter(|l| l.contains("scheduled run skipped"))
            .count()
    };
    assert_eq!(skipped_lines(&d), 1, "{:#?}", d.log.all());
    // When the next scheduled run is queued, one line counts the rest.
    let (_, line) = d
        .log
        .wait_for("more scheduled runs were skipped", 0, util::WAIT)
        .expect("a summary line");
    assert!(line.contains("job busy:"), "{line}");
}

/// `jobs.get {name, next: N}` answers `next_runs`, the next N due times
/// (like `systemd-analyze calendar --iterations`): for `every`, one
/// interval apart; for cron, each a match of the expression in the job's
/// zone; none for a job without a schedule; `next` out of 1..=1000 is
/// refused.
#[test]
fn jobs_get_next_lists_the_next_due_times() {
    let jobs = r#"
[[jobs]]
name = "hourly"
every = "1h"
command = ["true"]

[[jobs]]
name = "weekdays"
cron = "0 9 * * MON-FRI"
tz = "Europe/Paris"
command = ["true"]

[[jobs]]
name = "manual"
command = ["true"]
"#;
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let hourly = c.ok("jobs.get", json!({"name": "hourly", "next": 3}));
    let times: Vec<i64> = hourly["next_runs"]
        .as_array()
        .expect("next_runs")
        .iter()
        .map(millis)
        .collect();
    assert_eq!(times.len(), 3, "{hourly}");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 3_600_000),
        "{times:?}"
    );
    assert_eq!(times[0] % 3_600_000, 0, "aligned to the hour: {times:?}");

    let weekdays = c.ok("jobs.get", json!({"name": "weekdays", "next": 7}));
    let runs = weekdays["next_runs"].as_array().expect("next_runs");
    assert_eq!(runs.len(), 7, "{weekdays}");
    let paris = jiff::tz::TimeZone::get("Europe/Paris").expect("zone");
    for t in runs {
        let at: jiff::Timestamp = t.as_str().expect("text").parse().expect("RFC 3339");
        let local = at.to_zoned(paris.clone());
        assert_eq!((local.hour(), local.minute()), (9, 0), "{local}");
        assert!(
            !matches!(
                local.weekday(),
                jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
            ),
            "{local}"
        );
    }

    let manual = c.ok("jobs.get", json!({"name": "manual", "next": 2}));
    assert_eq!(manual["next_runs"], json!([]), "{manual}");
    assert!(c
        .ok("jobs.get", json!({"name": "hourly"}))
        .get("next_runs")
        .is_none());
    for bad in [0, 1001] {
        assert_eq!(
            c.err_code("jobs.get", json!({"name": "hourly", "next": bad})),
            -32602
        );
    }
}
