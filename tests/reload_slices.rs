//! A reload off the loop: read and checked on the reload thread, applied by
//! the loop a slice at a time, answered once applied. The `reload.slice`
//! fail point holds the apply between slices (`return`; `return(N)` lets
//! N changes through first) and `reload.prepared` holds the reload thread
//! after its checks (`pause`), so each test looks at a reload half done.
//!
//! Fail points need `--features failpoints`.
#![cfg(feature = "failpoints")]

use crate::util;

use rustix::process::Signal;
use serde_json::{json, Value};
use util::{config, poll_until, Client, Daemon};

/// `allow_job_api` on, and the debug hooks (`debug.failpoint`).
const API: &str = "allow_job_api = true";

fn env(failpoints: &str) -> Vec<(&str, &str)> {
    vec![("TICKD_DEBUG_HOOKS", "1"), ("FAILPOINTS", failpoints)]
}

/// `[[jobs]]` tables named `{prefix}-{i}` for i in `range`, running `cmd`,
/// on a daily cron (never due in a test).
fn jobs(prefix: &str, range: std::ops::Range<usize>, cmd: &str) -> String {
    range
        .map(|i| {
            format!(
                "[[jobs]]\nname = \"{prefix}-{i}\"\ncommand = [\"{cmd}\"]\ncron = \"17 3 * * *\"\n"
            )
        })
        .collect()
}

fn set_failpoint(c: &mut Client, name: &str, actions: &str) {
    c.ok(
        "debug.failpoint",
        json!({ "name": name, "actions": actions }),
    );
}

/// Sends a request on `c` without reading its answer.
fn send(c: &mut Client, id: u64, method: &str) {
    let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
    c.send_raw(format!("{line}\n").as_bytes());
}

fn generation(c: &mut Client) -> u64 {
    c.ok("status", json!({}))["config"]["generation"]
        .as_u64()
        .expect("generation")
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn a_reload_held_between_slices_leaves_the_loop_serving_then_answers_every_change() {
    let d = Daemon::start_with_env(
        &config(API, &jobs("old", 0..300, "true")),
        &env("reload.slice=1*return(10)->return"),
    );
    // old-0..99 removed, old-100..199 changed, old-200..299 kept, new-0..99
    // added (the first and last in the file).
    let text = format!(
        "{}{}{}{}",
        jobs("new", 0..50, "true"),
        jobs("old", 100..200, "false"),
        jobs("old", 200..300, "true"),
        jobs("new", 50..100, "true"),
    );
    d.write_config(&config(API, &text));
    let mut asker = d.client();
    send(&mut asker, 1, "reload");
    let mut c = d.client();
    // The first slice (10 removals, in name order) is applied, then held.
    poll_until("the first slice", || {
        (c.call("jobs.get", json!({"name": "old-0"}))["error"]["code"] == json!(-32000))
            .then_some(())
    });
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    assert!(c.ok("jobs.get", json!({"name": "old-99"}))["name"] == "old-99");
    assert_eq!(generation(&mut c), 1, "not applied yet");
    // From the moment the file is accepted, its names are the file's.
    let put = c.call(
        "jobs.put",
        json!({"job": {"name": "new-7", "command": ["true"]}}),
    );
    assert_eq!(put["error"]["code"], json!(-32004), "{put}");
    assert!(
        c.ok(
            "jobs.put",
            json!({"job": {"name": "mine", "command": ["true"]}})
        )["created"]
            == json!(true)
    );

    set_failpoint(&mut c, "reload.slice", "off");
    let answer = asker.read_json();
    assert_eq!(answer["id"], json!(1));
    let report = &answer["result"];
    assert_eq!(report["generation"], json!(2), "{answer}");
    let mut added = names("new", 0..100);
    assert_eq!(report["added"], json!(added), "in the file's order");
    let mut removed = names("old", 0..100);
    removed.sort();
    assert_eq!(report["removed"], json!(removed), "by name");
    assert_eq!(report["changed"], json!(names("old", 100..200)));
    assert_eq!(generation(&mut c), 2);
    let listed = c.ok("jobs.list", json!({}));
    let listed: Vec<&str> = listed
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name"))
        .collect();
    added.extend(names("old", 100..300));
    added.push("mine".into());
    added.sort();
    assert_eq!(listed, added);
}

#[test]
fn reloads_asked_for_during_one_coalesce_into_one_more_answering_each_asker() {
    let d = Daemon::start_with_env(
        &config(API, &jobs("a", 0..5, "true")),
        &env("reload.slice=return"),
    );
    let mut c = d.client();
    d.write_config(&config(API, &jobs("a", 0..6, "true")));
    d.signal(Signal::HUP);
    assert!(d.log.wait_for("read and checked", 0, util::WAIT).is_some());
    // Two more while it is held: the first sets up one more, the second
    // joins it; so do two `reload` requests.
    d.write_config(&config(API, &jobs("a", 0..7, "true")));
    d.signal(Signal::HUP);
    assert!(d
        .log
        .wait_for("another runs after it", 0, util::WAIT)
        .is_some());
    d.signal(Signal::HUP);
    assert!(d.log.wait_for("coalesced", 0, util::WAIT).is_some());
    let mut first = d.client();
    let mut second = d.client();
    send(&mut first, 1, "reload");
    send(&mut second, 1, "reload");
    poll_until("both requests to be coalesced", || {
        let lines = d.log.all();
        (lines.iter().filter(|l| l.contains("coalesced")).count() == 3).then_some(())
    });
    assert_eq!(generation(&mut c), 1);

    set_failpoint(&mut c, "reload.slice", "off");
    for asker in [&mut first, &mut second] {
        let answer = asker.read_json();
        assert_eq!(answer["result"]["generation"], json!(3), "{answer}");
        assert_eq!(answer["result"]["added"], json!(["a-6"]), "{answer}");
    }
    assert_eq!(generation(&mut c), 3);
    // Nothing else was left pending: the next reload is the fourth.
    assert_eq!(c.ok("reload", json!({}))["generation"], json!(4));
    // The log is read from the daemon's stderr on a thread of the test.
    assert!(d
        .log
        .wait_for("config reloaded (generation 4)", 0, util::WAIT)
        .is_some());
    let lines = d.log.all();
    let applied = lines
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count();
    assert_eq!(applied, 3, "{lines:#?}");
}

#[test]
fn an_api_job_put_while_the_file_is_read_fails_the_reload_that_adds_its_name() {
    let d = Daemon::start_with_env(
        &config(API, &jobs("a", 0..2, "true")),
        &env("reload.prepared=pause"),
    );
    let mut c = d.client();
    d.write_config(&config(API, &jobs("a", 0..3, "true")));
    d.signal(Signal::HUP);
    assert!(d.log.wait_for("read and checked", 0, util::WAIT).is_some());
    // The thread has checked the file and waits; the loop has not taken
    // it, so the name is still free.
    let put = c.ok(
        "jobs.put",
        json!({"job": {"name": "a-2", "command": ["true"]}}),
    );
    assert_eq!(put["created"], json!(true));
    set_failpoint(&mut c, "reload.prepared", "off");
    let s = d.wait_status("the reload to be rejected", |s| {
        !s["config"]["last_reload_error"].is_null()
    });
    let why = s["config"]["last_reload_error"].as_str().expect("error");
    assert!(
        why.contains("adds job \"a-2\"") && why.contains("jobs.put"),
        "{why}"
    );
    assert_eq!(s["config"]["generation"], json!(1));
    assert_eq!(
        c.ok("jobs.get", json!({"name": "a-2"}))["source"],
        json!("api")
    );
}

#[test]
fn sigterm_during_a_reload_abandons_it_and_exits_cleanly() {
    let mut d = Daemon::start_with_env(
        &config(API, &jobs("a", 0..50, "true")),
        &env("reload.slice=1*return(5)->return"),
    );
    d.write_config(&config(API, &jobs("b", 0..50, "true")));
    let mut asker = d.client();
    send(&mut asker, 1, "reload");
    assert!(d.log.wait_for("read and checked", 0, util::WAIT).is_some());
    let mut c = d.client();
    poll_until("the first slice", || {
        (c.call("jobs.get", json!({"name": "a-0"}))["error"]["code"] == json!(-32000)).then_some(())
    });
    d.signal(Signal::TERM);
    let answer: Value = asker.read_json();
    assert_eq!(answer["error"]["code"], json!(-32002), "{answer}");
    let status = d.wait_exit(util::WAIT).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(d
        .log
        .wait_for("reload being applied is abandoned", 0, util::WAIT)
        .is_some());
}
