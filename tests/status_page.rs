//! The status page at `GET /`, checked without a browser: it is
//! self-contained, carries the hooks scripts/browser-test.sh relies on, and
//! every route it polls or posts to answers as the page expects. (The page
//! itself is driven in headless chromium by scripts/browser-test.sh.)

use crate::util;

use serde_json::json;
use util::http::{get, post};
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
    ] {
        assert!(html.contains(hook), "page lacks {hook}");
    }
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
