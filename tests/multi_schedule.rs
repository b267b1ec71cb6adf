//! Several schedules in one job and skipped dates, through the real
//! binary: coinciding schedules fire once, `next_runs` merges a cron
//! array, `skip_dates` and `skip_dates_file` (reloaded on SIGHUP) pass
//! over whole days in the job's zone, also across a wall-clock jump
//! (`debug.clock_jump`), and `tickd check` names the mistakes.

use crate::util;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rustix::process::Signal;
use serde_json::{json, Value};
use std::process::Command;
use util::{config, millis, poll_until, Client, Daemon};

fn next_runs(c: &mut Client, job: &str, n: u64) -> Vec<Timestamp> {
    let j = c.ok("jobs.get", json!({ "name": job, "next": n }));
    j["next_runs"]
        .as_array()
        .unwrap_or_else(|| panic!("next_runs: {j}"))
        .iter()
        .map(|t| t.as_str().expect("text").parse().expect("RFC 3339"))
        .collect()
}

/// Today in `zone` (by the real clock) and the day after.
fn today_and_tomorrow(zone: &TimeZone) -> (Date, Date) {
    let today = Timestamp::now().to_zoned(zone.clone()).date();
    (today, today.tomorrow().expect("tomorrow"))
}

/// The `scheduled_at` of every finished run of `job`, in ms, sorted.
fn scheduled(c: &mut Client, job: &str) -> Vec<i64> {
    let j = c.ok("jobs.get", json!({ "name": job }));
    let mut at: Vec<i64> = j["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| !r["scheduled_at"].is_null())
        .map(|r| millis(&r["scheduled_at"]))
        .collect();
    at.sort_unstable();
    at
}

#[test]
fn two_coinciding_schedules_give_one_run() {
    let jobs = r#"
[[jobs]]
name = "both"
every = ["1s", "2s"]
overlap = "allow"
command = ["true"]
"#;
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let at = poll_until("five runs", || {
        let at = scheduled(&mut c, "both");
        (at.len() >= 5).then_some(at)
    });
    // Every second once: never two runs for one due time (the 2 s grid
    // coincides with every other second of the 1 s grid).
    for w in at.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "due times {at:?}");
    }
    let job = c.ok("jobs.get", json!({ "name": "both" }));
    assert_eq!(job["schedule"], json!(["1s", "2s"]));
}

#[test]
fn next_runs_of_a_cron_array_are_merged_without_repeats() {
    let jobs = r#"
[[jobs]]
name = "office"
cron = ["0 9 * * MON-FRI", "30 10 * * SAT", "0 9 * * MON"]
tz = "UTC"
command = ["true"]

[[jobs]]
name = "one"
cron = ["0 9 * * *"]
command = ["true"]
"#;
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let runs = next_runs(&mut c, "office", 14);
    assert_eq!(runs.len(), 14);
    assert!(
        runs.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats: {runs:?}"
    );
    let mut saturdays = 0;
    for t in &runs {
        let z = t.to_zoned(TimeZone::UTC);
        let weekday = z.weekday().to_monday_one_offset();
        match (weekday, z.hour(), z.minute()) {
            (1..=5, 9, 0) => {}
            (6, 10, 30) => saturdays += 1,
            other => panic!("{z} is not a time of any member: {other:?}"),
        }
    }
    assert!(saturdays >= 2, "two weeks hold two Saturdays: {runs:?}");
    // Mondays 09:00 come from two members, and are listed once.
    let mondays = runs
        .iter()
        .filter(|t| t.to_zoned(TimeZone::UTC).weekday().to_monday_one_offset() == 1)
        .count();
    assert!((2..=3).contains(&mondays), "{runs:?}");

    let office = c.ok("jobs.get", json!({ "name": "office" }));
    assert_eq!(
        office["schedule"],
        json!(["0 9 * * MON-FRI", "30 10 * * SAT", "0 9 * * MON"])
    );
    let list = c.ok("jobs.list", json!({}));
    // A plain array, or a page of them.
    let one = list
        .as_array()
        .or_else(|| list["jobs"].as_array())
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == "one")
        .cloned()
        .expect("one");
    assert_eq!(one["schedule"], json!(["0 9 * * *"]), "an array of one");
}

#[test]
fn skipped_dates_in_the_job_zone_are_not_in_next_runs() {
    let paris = TimeZone::get("Europe/Paris").expect("zone");
    let (today, tomorrow) = today_and_tomorrow(&paris);
    let jobs = format!(
        r#"
[[jobs]]
name = "hourly"
every = "1h"
tz = "Europe/Paris"
skip_dates = ["{today}", "{tomorrow}"]
command = ["true"]
"#
    );
    let d = Daemon::start(&config("", &jobs));
    let mut c = d.client();
    let runs = next_runs(&mut c, "hourly", 30);
    assert_eq!(runs.len(), 30);
    for t in &runs {
        let day = t.to_zoned(paris.clone()).date();
        assert!(day != today && day != tomorrow, "{t} is on a skipped day");
    }
    let first = runs[0].to_zoned(paris.clone());
    assert_eq!(first.date(), tomorrow.tomorrow().expect("day"), "{first}");
    assert_eq!((first.hour(), first.minute()), (0, 0), "{first}");
    // The wheel is armed past them too.
    let job = c.ok("jobs.get", json!({ "name": "hourly" }));
    let next: Timestamp = job["next_run"]
        .as_str()
        .expect("next_run")
        .parse()
        .expect("time");
    assert_eq!(next, runs[0], "{job}");
}

#[test]
fn a_skip_dates_file_is_read_again_on_reload() {
    let (today, tomorrow) = today_and_tomorrow(&TimeZone::UTC);
    let jobs = r#"
[[jobs]]
name = "hourly"
every = "1h"
tz = "UTC"
skip_dates_file = "HOLIDAYS"
command = ["true"]
"#;
    // The file is read at the start, so it lives in a dir of the test's own.
    let dir = tempfile::tempdir().expect("dir");
    let holidays = dir.path().join("holidays.txt");
    std::fs::write(
        &holidays,
        format!("# closed\n{today}\n\n{tomorrow}  # and this\n"),
    )
    .expect("write");
    let text = config("", jobs).replace("HOLIDAYS", &holidays.display().to_string());
    let d = Daemon::start(&text);
    let mut c = d.client();
    let first = next_runs(&mut c, "hourly", 1)[0];
    assert_eq!(
        first.to_zoned(TimeZone::UTC).date(),
        tomorrow.tomorrow().expect("day")
    );
    std::fs::write(&holidays, "# open after all\n").expect("write");
    d.signal(Signal::HUP);
    let soon = poll_until("the reload to take the file", || {
        let next = next_runs(&mut c, "hourly", 1)[0];
        let d = Timestamp::now().duration_until(next);
        (d.as_secs() <= 3600).then_some(next)
    });
    let job = c.ok("jobs.get", json!({ "name": "hourly" }));
    let armed: Timestamp = job["next_run"]
        .as_str()
        .expect("next_run")
        .parse()
        .expect("time");
    assert_eq!(armed, soon, "re-armed: {job}");

    // A bad line fails the reload and names it; the job keeps its schedule.
    std::fs::write(&holidays, "2026-13-01\n").expect("write");
    let from = d.log.len();
    d.signal(Signal::HUP);
    let (_, line) = d
        .log
        .wait_for(
            "holidays.txt: line 1: \"2026-13-01\" is not a date",
            from,
            util::WAIT,
        )
        .expect("the reload error names the line");
    assert!(line.contains("skip_dates_file"), "{line}");
}

/// Through the test clock hook: jump the wall clock into a skipped day
/// and no run is due on it, while a job without skipped days runs on.
#[test]
fn a_jump_into_a_skipped_day_runs_nothing_until_the_next_day() {
    let (_, tomorrow) = today_and_tomorrow(&TimeZone::UTC);
    let jobs = format!(
        r#"
[[jobs]]
name = "closed"
every = "1s"
tz = "UTC"
skip_dates = ["{tomorrow}"]
overlap = "allow"
command = ["true"]

[[jobs]]
name = "open"
every = "1s"
overlap = "allow"
command = ["true"]
"#
    );
    let hooks = &[("TICKD_DEBUG_HOOKS", "1")];
    let d = Daemon::start_with_env(&config("", &jobs), hooks);
    let mut c = d.client();
    poll_until("a run of the closed job", || {
        (!scheduled(&mut c, "closed").is_empty()).then_some(())
    });
    // To 00:00:05 tomorrow (UTC).
    let target = tomorrow
        .to_zoned(TimeZone::UTC)
        .expect("midnight")
        .timestamp()
        .checked_add(jiff::SignedDuration::from_secs(5))
        .expect("time");
    let ms = Timestamp::now().duration_until(target).as_millis();
    c.ok("debug.clock_jump", json!({ "ms": ms as i64 }));
    assert!(d
        .log
        .wait_for("wall clock jumped forward", 0, util::WAIT)
        .is_some());
    let day_start = target.as_millisecond() - 5000;
    let day_end = day_start + 86_400_000;
    // The open job runs on the skipped day's seconds...
    poll_until("three runs of the open job on that day", || {
        let at = scheduled(&mut c, "open");
        (at.iter().filter(|t| **t >= day_start).count() >= 3).then_some(())
    });
    // ...and the closed one ran none of them, and waits for the next day.
    let closed = scheduled(&mut c, "closed");
    assert!(
        closed.iter().all(|t| *t < day_start || *t >= day_end),
        "runs on the skipped day: {closed:?}"
    );
    let job = c.ok("jobs.get", json!({ "name": "closed" }));
    assert_eq!(millis(&job["next_run"]), day_end, "{job}");
}

#[test]
fn an_api_job_takes_arrays_and_skip_dates_but_not_a_file() {
    let d = Daemon::start(&config("allow_job_api = true", ""));
    let mut c = d.client();
    let job = json!({
        "name": "api",
        "command": ["true"],
        "cron": ["0 9 * * *", "0 17 * * *"],
        "tz": "UTC",
        "skip_dates": ["2030-01-01"]
    });
    c.ok("jobs.put", json!({ "job": job }));
    let got = c.ok("jobs.get", json!({ "name": "api", "next": 4 }));
    assert_eq!(got["schedule"], json!(["0 9 * * *", "0 17 * * *"]));
    let runs: Vec<Value> = got["next_runs"].as_array().cloned().expect("next_runs");
    assert_eq!(runs.len(), 4, "{got}");
    let bad = json!({
        "name": "file",
        "command": ["true"],
        "every": "1h",
        "skip_dates_file": "/etc/passwd"
    });
    let answer = c.call("jobs.put", json!({ "job": bad }));
    let message = answer["error"]["data"].to_string() + &answer["error"]["message"].to_string();
    assert!(message.contains("skip_dates_file: not allowed"), "{answer}");
}

#[test]
fn check_names_schedule_mistakes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.toml");
    let text = r#"
[[jobs]]
name = "both"
every = ["1s"]
cron = "* * * * *"
command = ["true"]

[[jobs]]
name = "empty"
every = []
command = ["true"]

[[jobs]]
name = "date"
cron = ["0 9 * * *", "0 17 * * *"]
skip_dates = ["2026-12-25", "25/12/2026"]
command = ["true"]

[[jobs]]
name = "nofile"
every = "1h"
skip_dates_file = "/nonexistent/holidays.txt"
command = ["true"]
"#;
    std::fs::write(&path, text).expect("write");
    let out = Command::new(util::bin())
        .args(["check", "--config", &path.display().to_string()])
        .env_remove("RUST_LOG")
        .output()
        .expect("run tickd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in [
        "jobs[0].cron (job \"both\"): set only one of every and cron",
        "jobs[1].every (job \"empty\"): empty array",
        "jobs[2].skip_dates (job \"date\"): \"25/12/2026\" is not a date",
        "jobs[3].skip_dates_file (job \"nofile\"): cannot read /nonexistent/holidays.txt",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
