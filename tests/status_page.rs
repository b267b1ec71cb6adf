//! The status page at `GET /`, checked without a browser: it is
//! self-contained, carries the hooks scripts/browser-test.sh relies on, and
//! every route it polls or posts to answers as the page expects: the
//! polls, the job buttons, a job's next runs (`GET /jobs/NAME?next=N`),
//! the concurrency limits and cancelling a run as the page sends it. (The
//! page itself is driven in headless chromium by scripts/browser-test.sh.)

use crate::util;

use serde_json::json;
use util::http::{get, post, HttpConn};
use util::Daemon;

const JOBS: &str = r#"
[[jobs]]
name = "manual"
kind = "exec"
command = ["sh", "-c", "echo tickd-progress: 0.5; sleep 30"]

[[jobs]]
name = "tick"
kind = "exec"
every = "1h"
command = ["true"]
"#;

#[test]
fn the_page_is_self_contained_and_has_its_test_hooks() {
    let d = Daemon::start(&util::config("", JOBS));
    let page = get(d.addr, "/");
    assert_eq!(page.status, 200);
    let html = page.body;
    // No external assets: nothing is loaded from another origin, and there
    // are no separate script or style files.
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "page references {external}");
    }
    for hook in [
        r#"id="banner""#,
        r#"id="feedback""#,
        r#"id="jobs-filter""#,
        r#"id="jobs-next""#,
        r#"id="jobs-prev""#,
        r#"data-action"#,
        r#""data-job""#,
        r#""data-run""#,
        r#"data-field"#,
        r#"name="viewport""#,
        // Cancelling after a confirmation, a run's output, next runs, limits.
        r#"<dialog id="confirm""#,
        r#"data-action="confirm""#,
        r#"data-action="dismiss""#,
        r#"<dialog id="output""#,
        r#"id="output-text""#,
        r#"id="output-status""#,
        r#"id="limits""#,
        r#""data-next-for""#,
        r#"data-limit"#,
        "showModal()",
        "getReader()",
        "X-Tickd-Output-From",
        "?follow=1&from=",
        "?next=",
    ] {
        assert!(html.contains(hook), "page lacks {hook}");
    }
    // Friendly to a Content-Security-Policy without 'unsafe-eval' (and to
    // one that hashes the page's one script): no inline event handler
    // attributes, no javascript: URLs, no eval.
    for unfriendly in [
        " onclick=",
        " onkeydown=",
        " onload=",
        " onclose=",
        "javascript:",
        "eval(",
        "new Function",
    ] {
        assert!(!html.contains(unfriendly), "page uses {unfriendly}");
    }
    assert_eq!(html.matches("<script>").count(), 1, "one inline script");
}

const ACTING: &str = r#"
[concurrency.db]
max_running = 1

[[jobs]]
name = "slow"
kind = "exec"
concurrency = "db"
command = ["sleep", "30"]

[[jobs]]
name = "nightly"
kind = "exec"
cron = "0 3 * * *"
command = ["true"]
"#;

#[test]
fn a_jobs_next_runs_come_from_get_jobs_name_with_next() {
    let d = Daemon::start(&util::config("", ACTING));
    let job = get(d.addr, "/jobs/nightly?next=5").json();
    let next: Vec<&str> = job["next_runs"]
        .as_array()
        .expect("next_runs")
        .iter()
        .map(|t| t.as_str().expect("a time"))
        .collect();
    assert_eq!(next.len(), 5, "{job}");
    assert!(next.windows(2).all(|w| w[0] < w[1]), "ascending: {next:?}");
    assert_eq!(job["next_run"].as_str(), Some(next[0]), "{job}");
    // The same answer as jobs.get over JSON-RPC.
    let rpc = d
        .client()
        .ok("jobs.get", json!({"name": "nightly", "next": 5}));
    assert_eq!(rpc["next_runs"], job["next_runs"]);
    // Without the query, no next_runs; HEAD takes it too.
    assert!(get(d.addr, "/jobs/nightly")
        .json()
        .get("next_runs")
        .is_none());
    let head = HttpConn::connect(d.addr).head("/jobs/nightly?next=2");
    assert_eq!(head.status, 200);
    // A manual job has none.
    let manual = get(d.addr, "/jobs/slow?next=3").json();
    assert_eq!(manual["next_runs"], json!([]));
    // Bad queries: 400 with the JSON-RPC error, naming what is wrong.
    for (query, says) in [
        ("next=0", "next"),
        ("next=1001", "1000"),
        ("next=ten", "next"),
        ("nxt=1", "nxt"),
        ("name=other", "name"),
    ] {
        let r = get(d.addr, &format!("/jobs/nightly?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let message = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains(says), "{query}: {message}");
    }
    assert_eq!(get(d.addr, "/jobs/nope?next=1").status, 404);
}

#[test]
fn limits_show_in_status_and_a_run_is_cancelled_as_the_page_asks() {
    let d = Daemon::start(&util::config("", ACTING));
    let limits = || get(d.addr, "/status").json()["concurrency"].clone();
    assert_eq!(
        limits(),
        json!([{"name": "db", "max_running": 1, "running": 0, "waiting": 0}])
    );
    let run_id = post(d.addr, "/jobs/slow/run", "").json()["run_id"]
        .as_str()
        .expect("run_id")
        .to_string();
    util::poll_until("the run to count against its limit", || {
        (limits()[0]["running"] == json!(1)).then_some(())
    });
    let path = format!("/runs/{run_id}/cancel");
    // What another site's page could send is refused, and cancels nothing.
    let cross =
        HttpConn::connect(d.addr).request("POST", &path, &[("Origin", "http://evil.example")], "");
    assert_eq!(cross.status, 403, "{}", cross.body);
    let form = HttpConn::connect(d.addr).request(
        "POST",
        &path,
        &[
            ("Origin", "http://localhost"),
            ("Content-Type", "text/plain"),
        ],
        "",
    );
    assert_eq!(form.status, 415, "{}", form.body);
    let still = d.client().ok("runs.get", json!({ "run_id": run_id }));
    assert_eq!(still["state"], json!("running"));
    // The page's own request: its Origin, JSON type, no body.
    let cancelled =
        HttpConn::connect(d.addr).request("POST", &path, &[("Origin", "http://localhost")], "");
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json()["state"], json!("cancelled"));
    let rpc = d.client().ok("runs.get", json!({ "run_id": run_id }));
    assert_eq!(rpc["state"], json!("cancelled"));
    util::poll_until("the limit to be free again", || {
        (limits()[0]["running"] == json!(0)).then_some(())
    });
}

#[test]
fn every_route_the_page_uses_answers_as_it_expects() {
    let d = Daemon::start(&util::config("", JOBS));
    // The four polls.
    assert!(get(d.addr, "/status").json()["workers"]["alive"].is_number());
    // One page of jobs, as the pager asks for it.
    let page = get(d.addr, "/jobs?limit=100").json();
    assert_eq!(page["jobs"][0]["name"], json!("manual"));
    assert_eq!(page["next_after"], json!(null));
    let first = get(d.addr, "/jobs?limit=1&prefix=ma").json();
    assert_eq!(first["jobs"][0]["name"], json!("manual"));
    assert_eq!(get(d.addr, "/jobs").json()[0]["name"], json!("manual"));
    assert_eq!(get(d.addr, "/runs?limit=10").json(), json!([]));

    // The buttons.
    let run = post(d.addr, "/jobs/manual/run", "");
    assert_eq!(run.status, 202);
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_string();
    let running = util::poll_until("the run to be listed as running", || {
        let list = get(d.addr, "/runs?state=running").json();
        let first = list.get(0)?.clone();
        (first["progress"] == json!(0.5)).then_some(first)
    });
    assert_eq!(running["run_id"], json!(run_id));
    assert_eq!(running["job"], json!("manual"));
    assert!(running["started_at"].is_string());

    let paused = post(d.addr, "/jobs/tick/pause", "").json();
    assert_eq!(
        paused,
        json!({"name": "tick", "enabled": false, "paused": true, "persistent": false, "next_run": null})
    );
    let resumed = post(d.addr, "/jobs/tick/resume", "").json();
    assert_eq!(resumed["enabled"], json!(true));
    assert_eq!(resumed["paused"], json!(false));

    // A refused action carries a message the page shows as feedback.
    let again = post(d.addr, "/jobs/manual/run", "");
    assert_eq!(again.status, 409);
    assert!(
        again.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("already running")),
        "{}",
        again.body
    );
    let cancelled = d.client().ok("runs.cancel", json!({ "run_id": run_id }));
    assert_eq!(cancelled["state"], json!("cancelled"));
}
